// Fault: someone removes a MASTER's virtual address (`ip addr del`, a network manager, a
// script): the daemon puts it back at once, says so, and counts it.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Lab, ip, waitFor } from '../helpers/netns';
import { Node, holdersOf } from '../helpers/fault';

describe('a MASTER’s address removed by hand → restored at once', () => {
  let lab: Lab;
  let n1: Node;
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'ucarp-fault-del-'));

  before(async () => {
    lab = await Lab.create({ hosts: 1 });
    n1 = new Node(lab, lab.host(1), root, [
      { name: 'web', vhid: 10, iface: 'eth0', addresses: ['192.0.2.100/24', '192.0.2.102/24'] },
    ]);
    n1.start();
    await waitFor(async () => (await holdersOf(lab, '192.0.2.102')).length === 1, 15000, 'web master');
  });

  after(async () => {
    await n1?.stop().catch(() => undefined);
    await lab?.destroy();
    fs.rmSync(root, { recursive: true, force: true });
  });

  it('is back within 200 ms, logged as a warning and counted in status', async (t) => {
    const t0 = Date.now();
    await ip('-n', lab.host(1).ns, 'addr', 'del', '192.0.2.102/24', 'dev', 'eth0');
    await waitFor(
      async () => (await holdersOf(lab, '192.0.2.102')).length === 1,
      2000,
      'address restored',
      5,
    );
    const ms = Date.now() - t0;
    t.diagnostic(`address removed by hand → back after ${ms} ms`);
    assert.ok(ms < 200, `restored after ${ms} ms`);
    const g = await n1.group('web');
    assert.equal(g.state, 'MASTER');
    assert.equal(g.addressRestores, 1);
    assert.ok(n1.proc.lines.some((l) => /WARN.*web vhid 10 eth0: 192\.0\.2\.102\/24 was removed/.test(l)));
    assert.deepEqual(await holdersOf(lab, '192.0.2.100'), [lab.host(1).ns]);
  });
});
