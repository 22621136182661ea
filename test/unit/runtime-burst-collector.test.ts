import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BURST_QUIET_MS, BURST_TRANSITIONS, BurstCollector } from '../../src/runtime/burst-collector';
import { FakeClock } from '../helpers/fake-clock';

function setup() {
  const clock = new FakeClock();
  const at: number[] = [];
  const told: number[] = [];
  const b = new BurstCollector(
    () => at.push(clock.now()),
    clock,
    (n) => told.push(n),
  );
  return { clock, at, told, b };
}

test('BurstCollector: one collection once a burst has been quiet for BURST_QUIET_MS', () => {
  const { clock, at, told, b } = setup();
  const t0 = clock.now();
  // A start-up: every group leaves INIT, and a dead time later most become master.
  for (let i = 0; i < 4080; i++) b.note();
  assert.equal(clock.armed().length, 1, 'one timer, not one per transition');
  clock.advanceTo(t0 + 3000);
  for (let i = 0; i < 4080; i++) b.note();
  clock.advanceTo(t0 + 3000 + BURST_QUIET_MS - 1);
  assert.deepEqual(at, []);
  clock.advanceTo(t0 + 3000 + BURST_QUIET_MS);
  assert.deepEqual(at, [t0 + 3000 + BURST_QUIET_MS]);
  assert.deepEqual(told, [8160]);
  assert.deepEqual(clock.armed(), []);
  // The count starts again: a small burst later is not one.
  for (let i = 0; i < BURST_TRANSITIONS - 1; i++) b.note();
  clock.advanceTo(clock.now() + 60_000);
  assert.equal(at.length, 1);
  b.note();
  clock.advanceTo(clock.now() + BURST_QUIET_MS);
  assert.equal(at.length, 2);
});

test('BurstCollector: nothing below BURST_TRANSITIONS, nothing without a collector, nothing after close', () => {
  const small = setup();
  for (let i = 0; i < BURST_TRANSITIONS - 1; i++) small.b.note();
  assert.deepEqual(small.clock.armed(), []);
  const clock = new FakeClock();
  const none = new BurstCollector(null, clock);
  for (let i = 0; i < 2 * BURST_TRANSITIONS; i++) none.note();
  assert.deepEqual(clock.armed(), []);
  const closed = setup();
  for (let i = 0; i < BURST_TRANSITIONS; i++) closed.b.note();
  closed.b.close();
  assert.deepEqual(closed.clock.armed(), []);
  closed.clock.advanceTo(closed.clock.now() + 2 * BURST_QUIET_MS);
  assert.deepEqual(closed.at, []);
});
