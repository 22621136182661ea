import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { normalizeGroup } from '../../src/config/normalize';
import type { GroupConfig } from '../../src/config/types';
import { RESTART_LIMITS } from '../../src/config/settings';
import {
  groupIdentity,
  handoverPath,
  parseHandover,
  resumeGroups,
  takeHandover,
  writeHandover,
  type Handover,
} from '../../src/runtime/handover';
import { tempDir } from '../helpers/temp-dir';

function cfg(name: string, patch: Record<string, unknown> = {}, srcip = '192.0.2.1'): GroupConfig {
  return normalizeGroup(
    name,
    { vhid: 10, interface: 'eth0', addresses: ['192.0.2.100/24'], ...patch },
    { srcip, password: 'secret' },
  );
}

const SALT = '00112233445566778899aabbccddeeff';

function handover(groups: GroupConfig[], states: string[], writtenAtMs = 1000): Handover {
  return {
    version: 1,
    pid: 42,
    writtenAtMs,
    salt: SALT,
    groups: groups.map((g, i) => ({
      name: g.name,
      state: states[i] as 'MASTER' | 'BACKUP',
      counter: String(1000 + i),
      identity: groupIdentity(g, SALT),
    })),
  };
}

const tmp = tempDir('handover-');

describe('restart handover', () => {
  it('lives next to the control socket and keeps the password out', () => {
    assert.equal(handoverPath('/run/ucarp/control.sock'), '/run/ucarp/control.handover.json');
    const id = groupIdentity(cfg('web'), SALT);
    assert.equal('password' in id, false);
    assert.deepEqual(Object.keys(id).sort(), [
      'addresses',
      'broadcast',
      'destination',
      'interface',
      'manageAddresses',
      'passwordDigest',
      'protocol',
      'replayProtection',
      'srcip',
      'vhid',
    ]);
    assert.equal(JSON.stringify(id).includes('secret'), false);
  });

  it('is taken once, by the process that wrote it, while fresh', () => {
    const file = path.join(tmp, 'control.handover.json');
    const h = handover([cfg('web')], ['MASTER']);
    writeHandover(file, h);
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    assert.deepEqual(takeHandover(file, 42, 1500).handover, h);
    assert.equal(fs.existsSync(file), false, 'deleted once read');
    assert.deepEqual(takeHandover(file, 42, 1500), { handover: null });

    writeHandover(file, h);
    assert.match(takeHandover(file, 43, 1500).why ?? '', /written by pid 42, not this process/);
    assert.equal(fs.existsSync(file), false, 'deleted even when refused');
    const stale = 1000 + RESTART_LIMITS.handoverMaxAgeMs + 1;
    assert.match(parseHandover(JSON.stringify(h), 42, stale).ok ? '' : 'old', /old/);
    assert.equal(parseHandover('{"version":2}', 42, 1500).ok, false);
    assert.equal(parseHandover('nope', 42, 1500).ok, false);
  });

  it('drops malformed group entries', () => {
    const h = handover([cfg('web'), cfg('db', { vhid: 11 })], ['MASTER', 'BACKUP']);
    const text = JSON.stringify({
      ...h,
      groups: [
        ...h.groups,
        { name: 'x', state: 'FAULT', counter: '1', identity: {} },
        { name: 'y', state: 'MASTER', counter: '-1', identity: {} },
        { name: 'z', state: 'MASTER', counter: '18446744073709551616', identity: {} },
      ],
    });
    const r = parseHandover(text, 42, 1500);
    assert.ok(r.ok);
    assert.deepEqual(
      r.handover.groups.map((g) => g.name),
      ['web', 'db'],
    );
  });

  it('a group carries on only with the same identity, a master only within its dead time', () => {
    const web = cfg('web');
    const db = cfg('db', { vhid: 11, addresses: ['192.0.2.101/24'] });
    const h = handover([web, db], ['MASTER', 'BACKUP']);
    const r = resumeGroups(h, [web, db, cfg('new', { vhid: 12, addresses: ['192.0.2.102/24'] })], 1500);
    assert.deepEqual([...r.keys()], ['web', 'db']);
    assert.deepEqual(r.get('web'), { state: 'MASTER', counter: 1000n, srcip: '192.0.2.1' });
    assert.equal(r.get('db')?.state, 'BACKUP');
    // Timing and preempt may change across a restart, identity may not.
    assert.equal(resumeGroups(h, [cfg('web', { advskew: 20, preempt: true })], 1500).size, 1);
    assert.equal(resumeGroups(h, [cfg('web', { addresses: ['192.0.2.109/24'] })], 1500).size, 0);
    assert.equal(resumeGroups(h, [cfg('web', { vhid: 99 })], 1500).size, 0);
    assert.equal(resumeGroups(h, [{ ...web, password: 'changed' }], 1500).size, 0);
    // advbase 1 × deadratio 3: a peer may have declared the master down after 3 s.
    assert.equal(resumeGroups(h, [web], 1000 + 2999).size, 1);
    assert.equal(resumeGroups(h, [web], 1000 + 3000).size, 0);
    assert.equal(resumeGroups(h, [db], 1000 + 3000).size, 1, 'a backup elects as usual anyway');
  });

  it('a source learnt from the interface carries over when the file names none', () => {
    const learnt = cfg('web', {}, '192.0.2.7');
    const h = handover([learnt], ['MASTER']);
    const r = resumeGroups(h, [cfg('web', {}, '')], 1500);
    assert.equal(r.get('web')?.srcip, '192.0.2.7');
  });
});
