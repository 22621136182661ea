import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { TrackRef } from '../../src/config/types';
import { InvalidArgumentError } from '../../src/errors';
import { groupHealth, syncHealth, type SyncMember } from '../../src/track/health';
import type { TrackerState } from '../../src/track/tracker-set';

function tracker(
  name: string,
  kind: TrackerState['kind'],
  failed: boolean,
  value = failed ? 1 : 0,
): TrackerState {
  return { name, kind, failed, value, since: 0, lastOutput: '', checks: 1, failures: 0 };
}

const lookup =
  (...states: TrackerState[]) =>
  (name: string): TrackerState | undefined =>
    states.find((s) => s.name === name);

const ref = (tracker: string, weight: number | null = null): TrackRef => ({ tracker, weight });

describe('groupHealth', () => {
  it('is healthy with nothing tracked, or with nothing failed', () => {
    assert.deepEqual(groupHealth([], lookup()), { fault: false, demotion: 0, failed: [] });
    const states = lookup(
      tracker('s', 'script', false),
      tracker('i', 'interface', false),
      tracker('f', 'file', false, 0),
    );
    assert.deepEqual(groupHealth([ref('s'), ref('i', 50), ref('f'), ref('f', 3)], states), {
      fault: false,
      demotion: 0,
      failed: [],
    });
  });

  it('is a fault when a tracker followed without weight fails', () => {
    for (const kind of ['script', 'interface'] as const) {
      assert.deepEqual(groupHealth([ref('t')], lookup(tracker('t', kind, true))), {
        fault: true,
        demotion: 0,
        failed: ['t'],
      });
    }
  });

  it('adds the weight of a failed script or interface tracker followed with one', () => {
    for (const kind of ['script', 'interface'] as const) {
      assert.deepEqual(groupHealth([ref('t', 50)], lookup(tracker('t', kind, true))), {
        fault: false,
        demotion: 50,
        failed: ['t'],
      });
    }
  });

  it('takes a file tracker as failed when its value is not 0, whatever `failed` says', () => {
    for (const value of [3, -1]) {
      assert.deepEqual(groupHealth([ref('m')], lookup(tracker('m', 'file', false, value))), {
        fault: true,
        demotion: 0,
        failed: ['m'],
      });
    }
    assert.deepEqual(groupHealth([ref('m')], lookup(tracker('m', 'file', true, 0))), {
      fault: false,
      demotion: 0,
      failed: [],
    });
  });

  it('adds a file value times the weight, never less than 0', () => {
    assert.deepEqual(groupHealth([ref('m', 10)], lookup(tracker('m', 'file', true, 3))), {
      fault: false,
      demotion: 30,
      failed: ['m'],
    });
    assert.deepEqual(groupHealth([ref('m', 10)], lookup(tracker('m', 'file', true, -4))), {
      fault: false,
      demotion: 0,
      failed: ['m'],
    });
    assert.deepEqual(groupHealth([ref('m', 10)], lookup(tracker('m', 'file', false, 0))).demotion, 0);
  });

  it('sums every demotion, faults on any unweighted failure, and lists failures in track order', () => {
    const states = lookup(
      tracker('maint', 'file', true, 2),
      tracker('haproxy', 'script', true),
      tracker('uplink', 'interface', true),
      tracker('db', 'script', false),
      tracker('spare', 'interface', true),
    );
    const track = [ref('uplink', 50), ref('db'), ref('maint', 7), ref('haproxy'), ref('spare', 1)];
    assert.deepEqual(groupHealth(track, states), {
      fault: true,
      demotion: 50 + 2 * 7 + 1,
      failed: ['uplink', 'maint', 'haproxy', 'spare'],
    });
    // The same without the unweighted failure: no fault, the same demotion.
    assert.deepEqual(groupHealth(track.slice(0, 3), states), {
      fault: false,
      demotion: 50 + 14,
      failed: ['uplink', 'maint'],
    });
  });

  it('counts a tracker it does not know as failed', () => {
    assert.deepEqual(groupHealth([ref('ghost')], lookup()), { fault: true, demotion: 0, failed: ['ghost'] });
    assert.deepEqual(groupHealth([ref('ghost', 20)], lookup()), {
      fault: false,
      demotion: 20,
      failed: ['ghost'],
    });
  });
});

describe('syncHealth', () => {
  const member = (name: string, syncGroup: string | undefined, ownFault = false, demotion = 0): SyncMember =>
    syncGroup === undefined ? { name, ownFault, demotion } : { name, syncGroup, ownFault, demotion };

  it('leaves a group without sync group alone', () => {
    const out = syncHealth([member('a', undefined, true, 30), member('b', undefined, false, 5)]);
    assert.deepEqual(Object.fromEntries(out), {
      a: { syncFault: false, demotion: 30 },
      b: { syncFault: false, demotion: 5 },
    });
  });

  it('puts the other members in sync fault, not the faulty group itself', () => {
    const out = syncHealth([member('a', 'edge', true), member('b', 'edge'), member('c', 'edge')]);
    assert.deepEqual(
      [...out].map(([n, h]) => [n, h.syncFault]),
      [
        ['a', false],
        ['b', true],
        ['c', true],
      ],
    );
  });

  it('puts every member in sync fault when two have faults of their own', () => {
    const out = syncHealth([member('a', 'edge', true), member('b', 'edge', true), member('c', 'edge')]);
    assert.deepEqual(
      [...out.values()].map((h) => h.syncFault),
      [true, true, true],
    );
  });

  it('keeps sync groups apart, and groups without one out of them', () => {
    const out = syncHealth([
      member('a', 'edge', true, 40),
      member('b', 'edge'),
      member('c', 'core', false, 10),
      member('d', 'core'),
      member('e', undefined),
    ]);
    assert.deepEqual(Object.fromEntries(out), {
      a: { syncFault: false, demotion: 40 },
      b: { syncFault: true, demotion: 40 },
      c: { syncFault: false, demotion: 10 },
      d: { syncFault: false, demotion: 10 },
      e: { syncFault: false, demotion: 0 },
    });
  });

  it('gives every member the highest demotion of its sync group, its own included', () => {
    const out = syncHealth([
      member('a', 'edge', false, 5),
      member('b', 'edge', false, 25),
      member('c', 'edge'),
    ]);
    assert.deepEqual(
      [...out.values()].map((h) => h.demotion),
      [25, 25, 25],
    );
    assert.deepEqual(syncHealth([member('solo', 'edge', true, 12)]).get('solo'), {
      syncFault: false,
      demotion: 12,
    });
  });

  it('rejects a group listed twice', () => {
    assert.throws(() => syncHealth([member('a', 'edge'), member('a', 'core')]), InvalidArgumentError);
  });
});
