// Deferred work after a batch (util/after-batch.ts): in order, later than the caller, and at
// most a bounded number per turn, so thousands of transition logs never block the loop.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AfterBatch, AFTER_BATCH_PER_TURN } from '../../src/util/after-batch';

/** A scheduler whose turns the test runs by hand. */
function manual() {
  const turns: (() => void)[] = [];
  return {
    schedule: (run: () => void) => void turns.push(run),
    /** Runs the turns booked so far; returns how many there were. */
    turn(): number {
      const now = turns.splice(0);
      for (const t of now) t();
      return now.length;
    },
    get booked() {
      return turns.length;
    },
  };
}

describe('AfterBatch', () => {
  it('runs deferred work later, in order, with one booked turn however much is deferred', () => {
    const m = manual();
    const b = new AfterBatch(m.schedule, 10);
    const ran: number[] = [];
    for (let i = 0; i < 5; i++) b.defer(() => ran.push(i));
    assert.deepEqual(ran, []);
    assert.equal(m.booked, 1);
    m.turn();
    assert.deepEqual(ran, [0, 1, 2, 3, 4]);
    assert.equal(m.booked, 0);
  });

  it('runs at most perTurn items a turn and the rest in the following turns', () => {
    const m = manual();
    const b = new AfterBatch(m.schedule, 64);
    const ran: number[] = [];
    for (let i = 0; i < 4080; i++) b.defer(() => ran.push(i));
    const perTurn: number[] = [];
    while (m.booked > 0) {
      const before = ran.length;
      m.turn();
      perTurn.push(ran.length - before);
    }
    assert.equal(perTurn.length, Math.ceil(4080 / 64));
    assert.ok(perTurn.every((n) => n <= 64));
    assert.deepEqual(
      ran,
      Array.from({ length: 4080 }, (_, i) => i),
    );
  });

  it('work deferred while a turn runs keeps its place behind what waits', () => {
    const m = manual();
    const b = new AfterBatch(m.schedule, 2);
    const ran: string[] = [];
    b.defer(() => {
      ran.push('a');
      b.defer(() => ran.push('late'));
    });
    b.defer(() => ran.push('b'));
    b.defer(() => ran.push('c'));
    while (m.turn() > 0);
    assert.deepEqual(ran, ['a', 'b', 'c', 'late']);
  });

  it('flush runs everything at once', () => {
    const m = manual();
    const b = new AfterBatch(m.schedule, 1);
    const ran: number[] = [];
    for (let i = 0; i < 3; i++) b.defer(() => ran.push(i));
    b.flush();
    assert.deepEqual(ran, [0, 1, 2]);
    m.turn();
    assert.deepEqual(ran, [0, 1, 2]);
  });

  it('defaults to setImmediate and a bounded share per turn', async () => {
    const b = new AfterBatch();
    let n = 0;
    for (let i = 0; i < AFTER_BATCH_PER_TURN + 1; i++) b.defer(() => n++);
    await new Promise((r) => setImmediate(r));
    assert.equal(n, AFTER_BATCH_PER_TURN);
    await new Promise((r) => setImmediate(r));
    assert.equal(n, AFTER_BATCH_PER_TURN + 1);
  });
});
