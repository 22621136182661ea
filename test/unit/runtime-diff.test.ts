import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { diffGroups } from '../../src/runtime/diff';
import { normalizeGroup } from '../../src/config/normalize';
import type { GroupConfig } from '../../src/config/types';

function g(name: string, patch: Record<string, unknown> = {}, password = 'pw'): GroupConfig {
  return normalizeGroup(
    name,
    { vhid: 1, interface: 'eth0', addresses: ['192.0.2.100/24'], ...patch },
    { srcip: '192.0.2.1', password },
  );
}

const running = (...groups: GroupConfig[]) => new Map(groups.map((c) => [c.name, c]));
const names = (cs: GroupConfig[]) => cs.map((c) => c.name);

describe('diffGroups', () => {
  it('leaves identical groups alone', () => {
    const d = diffGroups(running(g('a'), g('b', { vhid: 2 })), [g('a'), g('b', { vhid: 2 })]);
    assert.deepEqual(d, {
      added: [],
      removed: [],
      updated: [],
      restarted: [],
      changed: new Map(),
      unchanged: 2,
    });
  });

  it('VRRP: priority and interval change in place; the protocol is identity', () => {
    const v = (patch: Record<string, unknown> = {}) => g('r', { protocol: 'vrrp3', ...patch }, '');
    for (const patch of [{ priority: 200 }, { advert_interval: 0.5 }, { preempt: false }]) {
      const d = diffGroups(running(v()), [v(patch)]);
      assert.deepEqual(names(d.updated), ['r'], JSON.stringify(patch));
    }
    assert.deepEqual(d0(running(g('r', {}, '')), [v()]), ['r']);
    function d0(cur: Map<string, GroupConfig>, next: GroupConfig[]): string[] {
      return names(diffGroups(cur, next).restarted);
    }
  });

  it('adds and removes by name', () => {
    const d = diffGroups(running(g('a'), g('b', { vhid: 2 })), [g('a'), g('c', { vhid: 3 })]);
    assert.deepEqual(names(d.added), ['c']);
    assert.deepEqual(d.removed, ['b']);
    assert.equal(d.unchanged, 1);
  });

  it('timing, preempt, scripts and timeouts change in place', () => {
    for (const patch of [
      { advskew: 20 },
      { advbase: 2 },
      { deadratio: 5 },
      { preempt: true },
      { neutral: true },
      { ignoreifstate: true },
      { upscript: '/bin/up' },
      { xparam: 'x' },
      { script_timeout: 3 },
      { track: ['t'] },
      { sync_group: 'edge' },
      { peers: ['192.0.2.2'] },
      { notify: '/bin/notify' },
    ]) {
      const d = diffGroups(running(g('a')), [g('a', patch)]);
      assert.deepEqual(names(d.updated), ['a'], JSON.stringify(patch));
      assert.equal(d.changed.get('a')?.length, 1, JSON.stringify(patch));
      assert.deepEqual(names(d.restarted), [], JSON.stringify(patch));
    }
  });

  it('identity on the wire or on the host restarts only that group', () => {
    for (const [patch, password] of [
      [{ vhid: 9 }, 'pw'],
      [{ interface: 'eth1' }, 'pw'],
      [{ addresses: ['192.0.2.101/24'] }, 'pw'],
      [{ mcast: '239.0.0.1' }, 'pw'],
      [{ broadcast: true }, 'pw'],
      [{ manage_addresses: false }, 'pw'],
      [{ replay_protection: true }, 'pw'],
      [{}, 'other'],
    ] as const) {
      const d = diffGroups(running(g('a'), g('b', { vhid: 2 })), [
        g('a', patch, password),
        g('b', { vhid: 2 }),
      ]);
      assert.deepEqual(names(d.restarted), ['a'], JSON.stringify(patch));
      assert.equal(d.unchanged, 1);
    }
  });

  it('a rename is a removal and an addition', () => {
    const d = diffGroups(running(g('old')), [g('new')]);
    assert.deepEqual(d.removed, ['old']);
    assert.deepEqual(names(d.added), ['new']);
  });
});
