// Fault: local clients holding the control socket. 64 connections that each send one byte
// every 5 s used to fill every slot the daemon allowed, for as long as they kept going; each
// `ucarpctl status` was then closed unanswered. The real daemon runs in a network namespace,
// the attacker in another process, and the real bin/ucarpctl is timed under the attack.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Lab, waitFor } from '../helpers/netns';
import { ROOT } from '../helpers/carp-proc';
import { SupervisorProc, configYaml } from '../helpers/supervisor-proc';
import type { StatusDocument } from '../../src/control/protocol';

const UCARPCTL = path.join(ROOT, 'bin/ucarpctl');
const SLOWLORIS = path.join(ROOT, 'dist/test/fixtures/slowloris.js');
const ATTACKERS = 64;
const BYTE_EVERY_MS = 5000;
const ATTACK_MS = 15_000;

const labs: Lab[] = [];
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ucarp-lockout-'));
after(async () => {
  for (const l of labs) await l.destroy();
  fs.rmSync(tmp, { recursive: true, force: true });
});

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

function run(cmd: string, args: string[]): Promise<Run> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 20_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout, stderr, ms: performance.now() - t0 });
    });
  });
}

function lines(child: ChildProcess): string[] {
  const out: string[] = [];
  let buf = '';
  child.stdout?.on('data', (d: Buffer) => {
    buf += d.toString();
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      out.push(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  });
  return out;
}

test(
  'ucarpctl status answers within 1 s while 64 local clients trickle a byte every 5 s',
  { timeout: 120_000 },
  async (t) => {
    const lab = await Lab.create({ hosts: 1 });
    labs.push(lab);
    const [h1] = lab.hosts;
    const socket = path.join(tmp, 'run', 'control.sock');
    const file = path.join(tmp, 'ucarp.yaml');
    const groups = [
      { name: 'web', vhid: 10, iface: 'eth0', addresses: ['192.0.2.100/24'] },
      { name: 'db', vhid: 20, iface: 'eth0', addresses: ['192.0.2.120/24'] },
    ];
    fs.writeFileSync(file, configYaml(groups, { socket }));
    const daemon = new SupervisorProc(lab, h1, file);
    const ctl = () =>
      run('ip', ['netns', 'exec', h1.ns, process.execPath, UCARPCTL, '--socket', socket, 'status', '--json']);
    await waitFor(async () => (await ctl()).code === 0, 15_000, 'the control socket to answer', 200);
    await daemon.waitLine(/web vhid 10 eth0: Switching to state: MASTER/);
    await daemon.waitLine(/db vhid 20 eth0: Switching to state: MASTER/);
    const quiet = await ctl();
    assert.equal(quiet.code, 0, quiet.stderr);

    const attacker = lab.spawn(h1, process.execPath, [
      SLOWLORIS,
      socket,
      String(ATTACKERS),
      String(BYTE_EVERY_MS),
    ]);
    const said = lines(attacker);
    await waitFor(() => said.includes('ready'), 10_000, 'the attackers to connect');
    const fromLine = daemon.lines.length;

    const runs: Run[] = [];
    const end = performance.now() + ATTACK_MS;
    while (performance.now() < end) {
      const r = await ctl();
      runs.push(r);
      assert.equal(r.code, 0, `ucarpctl status under attack, after ${runs.length - 1} answers: ${r.stderr}`);
      const doc = JSON.parse(r.stdout) as StatusDocument;
      assert.deepEqual(
        doc.groups.map((g) => [g.name, g.state]),
        [
          ['web', 'MASTER'],
          ['db', 'MASTER'],
        ],
      );
      await new Promise((res) => setTimeout(res, 500));
    }
    attacker.kill('SIGTERM');
    await new Promise((res) => attacker.once('exit', res));
    const totals = JSON.parse(said[said.length - 1]) as { connects: number; drops: number };

    const slowest = Math.max(...runs.map((r) => r.ms));
    const median = runs.map((r) => r.ms).sort((a, b) => a - b)[Math.floor(runs.length / 2)];
    t.diagnostic(
      `${runs.length} ucarpctl runs over ${ATTACK_MS / 1000} s of attack: median ${median.toFixed(0)} ms, ` +
        `slowest ${slowest.toFixed(0)} ms (process start included; quiet ${quiet.ms.toFixed(0)} ms); ` +
        `attackers connected ${totals.connects} times, dropped ${totals.drops} times`,
    );
    assert.ok(slowest < 1000, `slowest ucarpctl status took ${slowest} ms`);
    // The request deadline (2 s from connect) cut every attacker, repeatedly, although each
    // kept sending; a few more drops are evictions made for ucarpctl.
    assert.ok(totals.drops >= ATTACKERS * 5, `attackers dropped ${totals.drops} times`);
    // Logged, but once per 10 s per kind, not once per dropped client.
    const dropLines = daemon.lines.slice(fromLine).filter((l) => /control socket: closed/.test(l));
    assert.ok(dropLines.length >= 1 && dropLines.length <= 6, dropLines.join('\n'));
    assert.equal(daemon.exited, false);
  },
);
