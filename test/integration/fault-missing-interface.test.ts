// Fault: a group's interface does not exist when the daemon starts (a VLAN, a bond or a
// hot-plugged link that appears after boot). The check passes with a warning, the other
// groups run, the group waits visibly and starts when the interface appears.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Lab, waitFor } from '../helpers/netns';
import { OUR_UCARP } from '../helpers/carp-proc';
import type { TestGroup } from '../helpers/supervisor-proc';
import { Node, createInterface, deleteInterface, holdersOf, run } from '../helpers/fault';

const groups: TestGroup[] = [
  { name: 'web', vhid: 10, iface: 'eth0', addresses: ['192.0.2.100/24'] },
  { name: 'late', vhid: 11, iface: 'eth1', addresses: ['198.51.100.100/24'] },
];

describe('a group whose interface appears after start', () => {
  let lab: Lab;
  let n1: Node;
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'ucarp-fault-late-'));

  before(async () => {
    lab = await Lab.create({ hosts: 1, segments: 2 });
    await deleteInterface(lab, lab.host(1), 1);
    n1 = new Node(lab, lab.host(1), root, groups);
  });

  after(async () => {
    await n1?.stop().catch(() => undefined);
    await lab?.destroy();
    fs.rmSync(root, { recursive: true, force: true });
  });

  it('--check-config passes with a warning naming file, line and column', async () => {
    const r = await run('ip', [
      'netns',
      'exec',
      lab.host(1).ns,
      process.execPath,
      OUR_UCARP,
      '-t',
      '-c',
      n1.file,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stderr,
      new RegExp(
        `${n1.file.replace(/[.]/g, '\\.')}:\\d+:\\d+: warning: groups\\.late\\.interface: no interface named eth1`,
      ),
    );
  });

  it('the other group runs; the waiting one says so in status and in the log', async () => {
    n1.start();
    await waitFor(async () => (await holdersOf(lab, '192.0.2.100')).length === 1, 15000, 'web master');
    const late = await n1.group('late');
    assert.equal(late.link, 'missing');
    assert.notEqual(late.state, 'MASTER');
    assert.ok(
      n1.proc.lines.some((l) => /late vhid 11 eth1: interface eth1 does not exist; the group waits/.test(l)),
    );
  });

  it('when the interface appears the group learns its source and elects', async (t) => {
    const t0 = Date.now();
    await createInterface(lab, lab.host(1), 1);
    await waitFor(async () => (await holdersOf(lab, '198.51.100.100')).length === 1, 8000, 'late master');
    t.diagnostic(`interface created → group master after ${Date.now() - t0} ms (dead time 3 s)`);
    const late = await n1.group('late');
    assert.equal(late.state, 'MASTER');
    assert.equal(late.srcip, '198.51.100.1');
    assert.equal(late.link, 'up');
  });
});
