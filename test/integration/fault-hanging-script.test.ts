// Hanging up/down scripts against the real daemon (`bin/ucarp -c`) in a network namespace: a
// reload never waits for them, a timed-out script is killed with every process it started
// (setsid'd ones included), and a stopping daemon waits for its downscripts only a bounded time.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Lab, type Host } from '../helpers/netns';
import { ROOT } from '../helpers/carp-proc';
import { SupervisorProc, configYaml, writeByRename, type TestGroup } from '../helpers/supervisor-proc';
import { STOP_SCRIPT_WAIT_MS } from '../../src/runtime/group-set';

const UCARPCTL = path.join(ROOT, 'bin/ucarpctl');

interface ScriptProc {
  group: string;
  state: string;
  role: 'script' | 'grandchild';
  pid: number;
}

describe('hanging scripts', { timeout: 120_000 }, () => {
  let lab: Lab;
  let host: Host;
  let d: SupervisorProc;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ucarp-hang-'));
  const file = path.join(dir, 'ucarp.yaml');
  const socket = path.join(dir, 'control.sock');
  const log = path.join(dir, 'procs.log');
  const hang = path.join(dir, 'hang.sh');
  const quick = path.join(dir, 'quick.sh');

  /** Every process the scripts reported, as they reported it. */
  function procs(): ScriptProc[] {
    if (!fs.existsSync(log)) return [];
    return fs
      .readFileSync(log, 'utf8')
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => {
        const [group, state, role, pid] = l.split(' ');
        return { group, state, role: role as ScriptProc['role'], pid: Number(pid) };
      });
  }

  const present = (pid: number) => fs.existsSync(`/proc/${pid}`);

  async function waitProcs(
    pred: (p: ScriptProc[]) => boolean,
    ms: number,
    what: string,
  ): Promise<ScriptProc[]> {
    const until = Date.now() + ms;
    for (;;) {
      const p = procs();
      if (pred(p)) return p;
      if (Date.now() > until)
        throw new Error(`timed out waiting for ${what}; log:\n${d.lines.slice(-20).join('\n')}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  function ctl(...args: string[]): Promise<{ code: number; stdout: string; stderr: string; ms: number }> {
    const t0 = performance.now();
    return new Promise((resolve) => {
      execFile(
        'ip',
        ['netns', 'exec', host.ns, process.execPath, UCARPCTL, '--socket', socket, ...args],
        (err, stdout, stderr) => {
          const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
          resolve({ code, stdout, stderr, ms: performance.now() - t0 });
        },
      );
    });
  }

  const web = (vhid: number): TestGroup => ({
    name: 'web',
    vhid,
    iface: 'eth0',
    addresses: ['192.0.2.100/24'],
    extra: { upscript: hang, downscript: hang, script_timeout: 30, neutral: true },
  });
  // Its upscript hangs past a short timeout.
  const db: TestGroup = {
    name: 'db',
    vhid: 20,
    iface: 'eth0',
    addresses: ['192.0.2.120/24'],
    extra: { upscript: hang, script_timeout: 1 },
  };
  // Its downscript hangs past the daemon's stop bound. (neutral: no downscript at start.)
  const ntp: TestGroup = {
    name: 'ntp',
    vhid: 30,
    iface: 'eth0',
    addresses: ['192.0.2.130/24'],
    extra: { upscript: quick, downscript: hang, script_timeout: 30, neutral: true },
  };

  before(async () => {
    // Each script reports itself and a grandchild that leaves its session (setsid), then hangs.
    fs.writeFileSync(
      hang,
      [
        '#!/bin/sh',
        `setsid sh -c 'echo "$UCARP_GROUP $UCARP_STATE grandchild $$" >> ${log}; exec sleep 60' &`,
        `echo "$UCARP_GROUP $UCARP_STATE script $$" >> ${log}`,
        'exec sleep 60',
        '',
      ].join('\n'),
      { mode: 0o755 },
    );
    fs.writeFileSync(quick, `#!/bin/sh\necho "$UCARP_GROUP $UCARP_STATE script $$" >> ${log}\n`, {
      mode: 0o755,
    });
    lab = await Lab.create({ hosts: 1 });
    host = lab.host(1);
    fs.writeFileSync(file, configYaml([web(10)], { socket }));
    d = new SupervisorProc(lab, host, file);
  });

  after(async () => {
    await lab.destroy();
    // Only on failure is anything left: the processes our daemon's scripts reported.
    for (const p of procs()) {
      try {
        if (present(p.pid)) process.kill(p.pid, 'SIGKILL');
      } catch {
        // Gone meanwhile.
      }
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('a reload that restarts a group whose upscript hangs, and adds groups, does not wait for it', async (t) => {
    const [up] = await waitProcs(
      (p) => p.some((x) => x.group === 'web' && x.role === 'script'),
      15_000,
      "web's upscript",
    );
    assert.equal(up.state, 'MASTER');
    const from = d.lines.length;
    writeByRename(file, configYaml([web(11), db, ntp], { socket }));
    const r = await ctl('reload');
    t.diagnostic(`ucarpctl reload: ${Math.round(r.ms)} ms`);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /added 2 \(db, ntp\), removed 0, updated 0, restarted 1 \(web\)/);
    assert.ok(r.ms < 1000, `ucarpctl reload took ${Math.round(r.ms)} ms`);
    // The added groups run, and the old upscript is left to finish in the background.
    await d.waitLine(/\sdb vhid 20 eth0: Switching to state: BACKUP/, from, 5000);
    await d.waitLine(/\sntp vhid 30 eth0: Switching to state: BACKUP/, from, 5000);
    assert.equal(present(up.pid), true, 'the reload killed the old upscript');
  });

  it('a timed-out script is killed with its setsid grandchild', async () => {
    const from = d.lines.length;
    const mine = (p: ScriptProc[]) => p.filter((x) => x.group === 'db' && x.state === 'MASTER');
    const tree = await waitProcs((p) => mine(p).length === 2, 15_000, "db's upscript and grandchild");
    await d.waitLine(/\sdb vhid 20 eth0: up script \S+ killed after 1000 ms timeout/, from, 10_000);
    for (const p of mine(tree)) assert.equal(present(p.pid), false, `${p.role} ${p.pid} remains`);
  });

  it('SIGTERM waits for a hanging downscript at most the stated bound, then kills every script tree', async (t) => {
    await waitProcs(
      (p) => p.some((x) => x.group === 'ntp' && x.state === 'MASTER'),
      15_000,
      "ntp's upscript",
    );
    const from = d.lines.length;
    const t0 = performance.now();
    d.signal('SIGTERM');
    await waitProcs(
      (p) => p.filter((x) => x.group === 'ntp' && x.state === 'BACKUP').length === 2,
      5000,
      "ntp's downscript",
    );
    await d.exit(STOP_SCRIPT_WAIT_MS + 10_000);
    const ms = performance.now() - t0;
    t.diagnostic(`SIGTERM to exit: ${Math.round(ms)} ms`);
    assert.ok(ms < STOP_SCRIPT_WAIT_MS + 2000, `SIGTERM took ${Math.round(ms)} ms`);
    const lines = d.lines.slice(from).join('\n');
    assert.match(lines, /\sntp vhid 30 eth0: down script \S+ killed: stopping/);
    // The old web instance's upscript, left running by the reload, is stopped as well.
    assert.match(lines, /\sweb vhid 10 eth0: up script \S+ killed: stopping/);
    for (const p of procs())
      assert.equal(present(p.pid), false, `${p.group} ${p.state} ${p.role} ${p.pid} remains`);
  });
});
