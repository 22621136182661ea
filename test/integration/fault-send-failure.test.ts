// Fault: every advertisement refused by the kernel. An nftables rule in the host's namespace
// drops protocol 112 on output, so each sendto() of the 5 masters fails with EPERM for ~13 s:
// every second at first, then about every 2 s once the engine advertises the failing group
// with advskew 240 (src/engine/group.ts). The warnings used to come one per failure; they must
// come at most once per group per 10 s, the second with the count of those left out, while
// every failure is still counted in the status.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Lab, waitFor, type Host } from '../helpers/netns';
import { ROOT } from '../helpers/carp-proc';
import { SupervisorProc, configYaml, type TestGroup } from '../helpers/supervisor-proc';
import type { StatusDocument } from '../../src/control/protocol';

const exec = promisify(execFile);
const UCARPCTL = path.join(ROOT, 'bin/ucarpctl');
const FAULT_MS = 12_500;
const GROUPS = 5;

const labs: Lab[] = [];
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ucarp-sendfail-'));
after(async () => {
  for (const l of labs) await l.destroy();
  fs.rmSync(tmp, { recursive: true, force: true });
});

async function nft(h: Host, ...args: string[]): Promise<void> {
  await exec('ip', ['netns', 'exec', h.ns, 'nft', ...args]);
}

async function status(h: Host, socket: string): Promise<StatusDocument> {
  const { stdout } = await exec('ip', [
    'netns',
    'exec',
    h.ns,
    process.execPath,
    UCARPCTL,
    '--socket',
    socket,
    'status',
    '--json',
  ]);
  return JSON.parse(stdout) as StatusDocument;
}

test(
  'send failures of 5 masters are logged at most once per group per 10 s, with a count',
  { timeout: 120_000 },
  async (t) => {
    const lab = await Lab.create({ hosts: 1 });
    labs.push(lab);
    const [h1] = lab.hosts;
    const socket = path.join(tmp, 'run', 'control.sock');
    const file = path.join(tmp, 'ucarp.yaml');
    const groups: TestGroup[] = Array.from({ length: GROUPS }, (_, i) => ({
      name: `g${i + 1}`,
      vhid: 10 + i,
      iface: 'eth0',
      addresses: [`192.0.2.${100 + i}/24`],
    }));
    fs.writeFileSync(file, configYaml(groups, { socket }));
    const daemon = new SupervisorProc(lab, h1, file);
    for (const g of groups)
      await daemon.waitLine(new RegExp(`${g.name} vhid \\d+ eth0: Switching to state: MASTER`));

    const before = await status(h1, socket);
    const fromLine = daemon.lines.length;
    await nft(h1, 'add', 'table', 'inet', 'fault');
    await nft(
      h1,
      'add',
      'chain',
      'inet',
      'fault',
      'out',
      '{ type filter hook output priority 0; policy accept; }',
    );
    await nft(h1, 'add', 'rule', 'inet', 'fault', 'out', 'ip', 'protocol', '112', 'drop');
    const t0 = Date.now();
    const failed = () => daemon.lines.slice(fromLine).filter((l) => /sending advertisement failed/.test(l));
    const perGroup = (g: TestGroup) => failed().filter((l) => l.includes(` ${g.name} vhid ${g.vhid} eth0: `));
    await waitFor(() => groups.every((g) => perGroup(g).length >= 1), 5000, 'the first failures');
    // About 12 s from the first failures: past the first period (the second line is due about
    // 11.7 s in, at the first failure 10 s or more after the first), well before a third one.
    await new Promise((r) => setTimeout(r, FAULT_MS));
    await waitFor(() => groups.every((g) => perGroup(g).length >= 2), 5000, 'a second line').catch(
      () => undefined,
    );
    const during = await status(h1, socket);
    const logged = failed();
    await nft(h1, 'delete', 'table', 'inet', 'fault');
    const faultMs = Date.now() - t0;

    const failures = during.groups.map((g, i) => g.sendErrors - before.groups[i].sendErrors);
    t.diagnostic(
      `${failures.reduce((a, b) => a + b, 0)} failed sends in ${(faultMs / 1000).toFixed(1)} s, ${logged.length} warning lines`,
    );
    for (const [i, g] of groups.entries()) {
      assert.ok(failures[i] >= 6, `${g.name}: ${failures[i]} failed sends counted`);
      const mine = logged.filter((l) => l.includes(` ${g.name} vhid ${g.vhid} eth0: `));
      assert.equal(mine.length, 2, `${g.name}:\n${mine.join('\n')}`);
      assert.match(mine[0], /sending advertisement failed: .*Operation not permitted$/);
      const more = /Operation not permitted \((\d+) more since last report\)$/.exec(mine[1]);
      assert.ok(more, mine[1]);
      assert.ok(Number(more[1]) >= 3 && Number(more[1]) < failures[i], mine[1]);
      const gap = Date.parse(mine[1].slice(0, 24)) - Date.parse(mine[0].slice(0, 24));
      assert.ok(gap >= 10_000, `${g.name}: lines ${gap} ms apart`);
    }
    assert.equal(logged.length, 2 * GROUPS, logged.join('\n'));

    // Sends work again once the rule is gone, and the groups never left MASTER.
    const resumed = await status(h1, socket);
    await waitFor(
      async () => {
        const now = await status(h1, socket);
        return now.groups.every((g, i) => g.sent > resumed.groups[i].sent);
      },
      5000,
      'advertisements to go out again',
      200,
    );
    assert.deepEqual(
      (await status(h1, socket)).groups.map((g) => g.state),
      Array(GROUPS).fill('MASTER'),
    );
    assert.equal(daemon.exited, false);
  },
);
