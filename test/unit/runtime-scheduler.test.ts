// The one timer of all groups (src/runtime/scheduler.ts) on a fake clock: windows served
// together, exact deadlines never early, one armed timer whatever the number of tasks.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Scheduler } from '../../src/runtime/scheduler';
import { FakeClock } from '../helpers/fake-clock';
import { mulberry32 } from '../helpers/sim';

function setup() {
  const clock = new FakeClock();
  const sched = new Scheduler(clock);
  const runs: { name: string; at: number }[] = [];
  const task = (name: string, then?: () => void) =>
    sched.task(() => {
      runs.push({ name, at: clock.now() });
      then?.();
    });
  return { clock, sched, runs, task };
}

describe('Scheduler', () => {
  it('serves every task whose window is open in one wake-up', () => {
    const { clock, sched, runs, task } = setup();
    const t0 = clock.now();
    // Three masters due 0, 2 and 4 ms apart with a 5 ms slack: one wake-up at the first deadline.
    task('a').set(t0 + 995, t0 + 1000);
    task('b').set(t0 + 997, t0 + 1002);
    task('c').set(t0 + 999, t0 + 1004);
    assert.equal(clock.armed().length, 1);
    clock.advanceTo(t0 + 1010);
    assert.deepEqual(
      runs.map((r) => `${r.name}@${r.at - t0}`),
      ['a@1000', 'b@1000', 'c@1000'],
    );
    assert.equal(sched.wakeups, 1);
    assert.equal(sched.served, 3);
  });

  it('serves backups whose deadlines moved later (each advertisement heard) at their last deadline, in order', () => {
    const { clock, runs, task } = setup();
    const t0 = clock.now();
    const a = task('a');
    const b = task('b');
    const c = task('c');
    a.set(t0 + 3000, t0 + 3000);
    b.set(t0 + 3100, t0 + 3100);
    c.set(t0 + 3200, t0 + 3200);
    // Each hears its master again and again: a ends up last, b and c on one instant, c set first.
    for (let k = 1; k <= 5; k++) a.set(t0 + 3000 + 200 * k, t0 + 3000 + 200 * k);
    c.set(t0 + 3500, t0 + 3500);
    b.set(t0 + 3500, t0 + 3500);
    clock.advanceTo(t0 + 3499);
    assert.equal(runs.length, 0);
    clock.advanceTo(t0 + 5000);
    assert.deepEqual(
      runs.map((r) => `${r.name}@${r.at - t0}`),
      ['c@3500', 'b@3500', 'a@4000'],
    );
  });

  it('never serves an exact deadline (a backup) early, even when a wake-up falls just before it', () => {
    const { clock, runs, task } = setup();
    const t0 = clock.now();
    task('master').set(t0 + 995, t0 + 1000);
    task('backup').set(t0 + 1002, t0 + 1002);
    clock.advanceTo(t0 + 1010);
    assert.deepEqual(
      runs.map((r) => `${r.name}@${r.at - t0}`),
      ['master@1000', 'backup@1002'],
    );
  });

  it('aims a long exact wait a little early, then re-arms for the remainder', () => {
    const { clock, runs, task } = setup();
    const t0 = clock.now();
    task('backup').set(t0 + 3000, t0 + 3000);
    assert.deepEqual(clock.armed(), [{ at: t0 + 2993, ms: 2993 }]);
    clock.advanceTo(t0 + 2993);
    assert.deepEqual(runs, []);
    assert.deepEqual(clock.armed(), [{ at: t0 + 3000, ms: 7 }]);
    clock.advanceTo(t0 + 3000);
    assert.deepEqual(runs, [{ name: 'backup', at: t0 + 3000 }]);
    assert.deepEqual(clock.armed(), []);
  });

  it('aims a window at its latest time: a master does not pay for an early wake-up', () => {
    const { clock, task } = setup();
    const t0 = clock.now();
    task('master').set(t0 + 2995, t0 + 3000);
    assert.deepEqual(clock.armed(), [{ at: t0 + 3000, ms: 3000 }]);
  });

  it('keeps one timer for many tasks, and none once all are cancelled', () => {
    const { clock, sched, task } = setup();
    const t0 = clock.now();
    const tasks = Array.from({ length: 300 }, (_, i) => task(`t${i}`));
    tasks.forEach((t, i) => t.set(t0 + 100 + i, t0 + 100 + i));
    assert.equal(clock.armed().length, 1);
    assert.equal(sched.size, 300);
    tasks.forEach((t) => t.cancel());
    assert.equal(sched.size, 0);
    assert.deepEqual(clock.armed(), []);
  });

  it('a task moved or cancelled by another served in the same wake-up is not run', () => {
    const { clock, runs, task } = setup();
    const t0 = clock.now();
    const b = task('b');
    const c = task('c');
    task('a', () => {
      b.cancel();
      c.set(t0 + 2000, t0 + 2000);
    }).set(t0 + 995, t0 + 1000);
    b.set(t0 + 996, t0 + 1001);
    c.set(t0 + 997, t0 + 1002);
    clock.advanceTo(t0 + 1500);
    assert.deepEqual(runs, [{ name: 'a', at: t0 + 1000 }]);
    clock.advanceTo(t0 + 2000);
    assert.deepEqual(runs.at(-1), { name: 'c', at: t0 + 2000 });
  });

  it('a task that throws does not cost the others their wake-up', () => {
    const { clock, runs, task } = setup();
    const t0 = clock.now();
    task('bad', () => {
      throw new RangeError('boom');
    }).set(t0 + 995, t0 + 1000);
    task('good').set(t0 + 996, t0 + 1001);
    assert.throws(() => clock.advanceTo(t0 + 1000), /boom/);
    assert.deepEqual(
      runs.map((r) => r.name),
      ['bad', 'good'],
    );
  });

  it('random schedules: each task runs once, in its window, never before earliest (exact ones on time)', () => {
    const { clock, task } = setup();
    const rand = mulberry32(7);
    const t0 = clock.now();
    const want = new Map<string, { earliest: number; latest: number }>();
    const seen = new Map<string, number>();
    const tasks = Array.from({ length: 400 }, (_, i) => {
      const name = `t${i}`;
      return {
        name,
        t: task(name, () => {
          assert.ok(!seen.has(name), `${name} ran twice`);
          seen.set(name, clock.now());
        }),
      };
    });
    for (const { name, t } of tasks) {
      // Set a few times (the last one counts), some cancelled.
      for (let k = 0; k < 3; k++) {
        const latest = t0 + 10 + Math.floor(rand() * 5000);
        const earliest = rand() < 0.5 ? latest : latest - 5;
        t.set(earliest, latest);
        want.set(name, { earliest, latest });
      }
      if (rand() < 0.1) {
        t.cancel();
        want.delete(name);
      }
    }
    clock.advanceTo(t0 + 6000);
    assert.deepEqual([...seen.keys()].sort(), [...want.keys()].sort());
    for (const [name, w] of want) {
      const at = seen.get(name)!;
      assert.ok(at >= w.earliest, `${name} ran at ${at} before ${w.earliest}`);
      assert.ok(at <= w.latest, `${name} ran at ${at} after ${w.latest}`);
      if (w.earliest === w.latest) assert.equal(at, w.latest);
    }
  });

  it('groups on one clock share one scheduler', () => {
    const clock = new FakeClock();
    assert.equal(Scheduler.for(clock), Scheduler.for(clock));
    assert.notEqual(Scheduler.for(clock), Scheduler.for(new FakeClock()));
  });
});
