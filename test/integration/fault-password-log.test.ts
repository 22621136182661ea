// Fault: passwords and log lines. The daemon used to register every password with the logger,
// which replaced each occurrence in every line by ***: with password "1" the timestamps came
// out as 2026-******-26T2***:***2:4***, a group named 1 as ***, and where the stars fell told
// the password. Meanwhile what did not go through the logger (--check-config, ucarpctl reload)
// printed a password that YAML had read as a tag or an alias, quoted in the error message.
// Real daemons in network namespaces go through start, failover, reload and rejected files.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Lab, waitFor, type Host } from '../helpers/netns';
import { CarpProc, ROOT, carpArgs } from '../helpers/carp-proc';
import { SupervisorProc, configYaml, writeByRename, type TestGroup } from '../helpers/supervisor-proc';
import type { StatusDocument } from '../../src/control/protocol';

const UCARPCTL = path.join(ROOT, 'bin/ucarpctl');
const UCARP = path.join(ROOT, 'bin/ucarp');
/** A log line as written to stderr: an ISO timestamp, then the level. */
const STAMPED = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) \[(ERROR|WARN|INFO|DEBUG)\] /;

const labs: Lab[] = [];
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ucarp-pwlog-'));
after(async () => {
  for (const l of labs) await l.destroy();
  fs.rmSync(tmp, { recursive: true, force: true });
});

interface Run {
  code: number;
  out: string;
}

function run(h: Host, cmd: string, args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile('ip', ['netns', 'exec', h.ns, cmd, ...args], { timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, out: stdout + stderr });
    });
  });
}

class Node {
  readonly file: string;
  readonly socket: string;
  proc!: SupervisorProc;

  constructor(
    readonly lab: Lab,
    readonly host: Host,
    readonly name: string,
  ) {
    const dir = path.join(tmp, name);
    fs.mkdirSync(dir);
    this.file = path.join(dir, 'ucarp.yaml');
    this.socket = path.join(dir, 'run', 'control.sock');
  }

  write(groups: TestGroup[]): void {
    const extra = { srcip: this.host.ips[0] };
    writeByRename(
      this.file,
      configYaml(
        groups.map((g) => ({ ...g, extra: { ...extra, ...g.extra } })),
        { socket: this.socket },
      ),
    );
  }

  start(env: NodeJS.ProcessEnv = process.env): void {
    this.proc = new SupervisorProc(this.lab, this.host, this.file, env);
  }

  ctl(...args: string[]): Promise<Run> {
    return run(this.host, process.execPath, [UCARPCTL, '--socket', this.socket, ...args]);
  }

  async waitState(group: string, state: string): Promise<void> {
    await this.proc.waitLine(new RegExp(`(^|[ >])${group} vhid \\d+ eth0: Switching to state: ${state}`));
  }

  /** Waits for states as ucarpctl reports them, whatever the log lines look like. */
  async waitStatus(states: Record<string, string>): Promise<void> {
    let last = '';
    await waitFor(
      async () => {
        const r = await this.ctl('status', '--json');
        if (r.code !== 0) return false;
        const doc = JSON.parse(r.out) as StatusDocument;
        last = JSON.stringify(doc.groups.map((g) => [g.name, g.state]));
        return doc.groups.every((g) => states[g.name] === undefined || states[g.name] === g.state);
      },
      15_000,
      `${this.name} to reach ${JSON.stringify(states)} (last ${last})`,
      100,
    );
  }

  /** Every line stamped with a real time, nothing masked; the rejected file's errors aside. */
  assertIntact(since: number): void {
    for (const line of this.proc.lines) {
      assert.ok(!line.includes('*'), `${this.name}: ${line}`);
      if (line.startsWith(this.file)) continue;
      const m = STAMPED.exec(line);
      assert.ok(m, `${this.name}: timestamp intact: ${line}`);
      const t = Date.parse(m[1]);
      assert.ok(t >= since - 1000 && t <= Date.now() + 1000, `${this.name}: a real timestamp: ${line}`);
    }
  }
}

describe('passwords and log lines', { timeout: 240_000 }, () => {
  it('password "1" and a group named 1: lines stay intact through failover, reload and a bad file', async () => {
    const started = Date.now();
    const lab = await Lab.create({ hosts: 2 });
    labs.push(lab);
    const groups = (advskew: number, one: Partial<TestGroup> = {}): TestGroup[] => [
      { name: '1', vhid: 10, iface: 'eth0', addresses: ['192.0.2.100/24'], password: '"1"', advskew, ...one },
      { name: 'web', vhid: 20, iface: 'eth0', addresses: ['192.0.2.120/24'], password: '"1"', advskew },
    ];
    const n1 = new Node(lab, lab.hosts[0], 'one-h1');
    const n2 = new Node(lab, lab.hosts[1], 'one-h2');
    n1.write(groups(0));
    n2.write(groups(100));
    n1.start();
    await n1.waitStatus({ '1': 'MASTER', web: 'MASTER' });
    n2.start();
    await n2.waitStatus({ '1': 'BACKUP', web: 'BACKUP' });
    n1.assertIntact(started);
    n2.assertIntact(started);
    assert.ok(
      n1.proc.lines.some((l) =>
        / \[WARN\] 1 vhid 10 eth0: Switching to state: MASTER \(master-down\)$/.test(l),
      ),
      n1.proc.lines.join('\n'),
    );

    // Failover: the master leaves (bow-out), the backup takes over at once.
    n1.proc.signal('SIGTERM');
    await n1.proc.exit();
    await n2.proc.waitLine(/^\S+ \[WARN\] 1 vhid 10 eth0: Switching to state: MASTER \(master-timing-out\)$/);
    await n2.proc.waitLine(
      /^\S+ \[WARN\] web vhid 20 eth0: Switching to state: MASTER \(master-timing-out\)$/,
    );

    // Reload: group 1 changes in place.
    n2.write(groups(100, { advskew: 11 }));
    n2.proc.signal('SIGHUP');
    await n2.proc.waitLine(/^\S+ \[INFO\] reload \((SIGHUP|file change)\): .*updated 1 \(1: advskew\),/);
    // A bad file: a 20-byte password for group 1, rejected whole.
    n2.write(groups(100, { advskew: 11, password: '"11111111111111111111"' }));
    n2.proc.signal('SIGHUP');
    await n2.proc.waitLine(
      /^\S+ \[ERROR\] reload \((SIGHUP|file change)\) rejected, running groups unchanged:$/,
    );
    await n2.proc.waitLine(/: groups\.1\.password: must be at most 19 bytes/);
    n2.proc.signal('SIGUSR1');
    await n2.proc.waitLine(/^\S+ \[INFO\] 1: MASTER on eth0 id 10 /);

    const status = await n2.ctl('status', '--json');
    assert.equal(status.code, 0, status.out);
    const doc = JSON.parse(status.out) as StatusDocument;
    assert.deepEqual(
      doc.groups.map((g) => [g.name, g.vhid, g.state, g.addresses, g.advskew]),
      [
        ['1', 10, 'MASTER', ['192.0.2.100/24'], 11],
        ['web', 20, 'MASTER', ['192.0.2.120/24'], 100],
      ],
    );
    const text = await n2.ctl('status');
    assert.match(text.out, /^1 +10 +eth0 +MASTER/m);

    for (const n of [n1, n2]) {
      assert.ok(n.proc.lines.length >= 8, n.proc.lines.join('\n'));
      n.assertIntact(started);
    }
  });

  it('a distinctive password never shows: logs, journal lines, status JSON, --check-config, ucarpctl reload', async () => {
    const PW = 'Zq9#kP';
    // Any of these in the output would be the password or a piece cut from it.
    const PIECES = [PW, 'Zq9', 'q9#', '#kP'];
    const lab = await Lab.create({ hosts: 3 });
    labs.push(lab);
    const [h1, h2, h3] = lab.hosts;
    const groups = (advskew: number, password = `'${PW}'`): TestGroup[] => [
      { name: 'web', vhid: 10, iface: 'eth0', addresses: ['192.0.2.100/24'], password, advskew },
      { name: 'db', vhid: 20, iface: 'eth0', addresses: ['192.0.2.120/24'], password, advskew },
    ];
    const outputs: { what: string; text: string }[] = [];
    const n1 = new Node(lab, h1, 'pw-h1');
    const n2 = new Node(lab, h2, 'pw-h2');
    n1.write(groups(0));
    n2.write(groups(100));
    // n1 logs as under systemd: journal lines on stdout.
    n1.start({ ...process.env, JOURNAL_STREAM: '8:12345' });
    await n1.waitState('web', 'MASTER');
    await n1.waitState('db', 'MASTER');
    n2.start();
    await n2.waitState('web', 'BACKUP');
    await n2.waitState('db', 'BACKUP');

    // A peer in ucarp's command-line mode with another password that contains this one: both
    // daemons log digest rejects, and its own lines must not show its password either.
    const intruder = new CarpProc(lab, h3, 'ours', carpArgs(h3, { vhid: 10, pass: `${PW}x`, advskew: 200 }));
    await n1.proc.waitLine(/web vhid 10 eth0: rejected advertisement from 192\.0\.2\.3: bad digest/);
    await n2.proc.waitLine(/web vhid 10 eth0: rejected advertisement from 192\.0\.2\.3: bad digest/);
    intruder.kill('SIGUSR1');
    await intruder.waitLine(/on eth0 id 10 /);
    intruder.kill('SIGTERM');
    await intruder.exit();

    for (const n of [n1, n2]) {
      for (const args of [['status', '--json'], ['status']]) {
        const r = await n.ctl(...args);
        assert.equal(r.code, 0, r.out);
        outputs.push({ what: `${n.name}: ucarpctl ${args.join(' ')}`, text: r.out });
      }
      n.proc.signal('SIGUSR1');
      await n.proc.waitLine(/web: (MASTER|BACKUP) on eth0 id 10 /);
    }

    // Reload in place, then files with errors on the password key itself.
    n2.write(groups(50));
    n2.proc.signal('SIGHUP');
    await n2.proc.waitLine(/reload \((SIGHUP|file change)\): .*updated 2 \(web: advskew, db: advskew\)/);
    const broken = [
      `!${PW}`, // a tag to YAML
      `*${PW}`, // an alias
      `"\\u${PW}"`, // a bad escape
      `'${PW}${PW}${PW}${PW}'`, // too long
    ];
    for (const [i, password] of broken.entries()) {
      const bad = path.join(tmp, `bad-${i}.yaml`);
      const cfg = configYaml(
        groups(50, password).map((g) => ({ ...g, extra: { srcip: h2.ips[0] } })),
        { socket: n2.socket },
      );
      fs.writeFileSync(bad, cfg);
      const check = await run(h2, process.execPath, [UCARP, '--check-config', '-c', bad]);
      assert.equal(check.code, 1, check.out);
      assert.match(check.out, /^\S+bad-\d\.yaml:\d+:\d+: /);
      outputs.push({ what: `--check-config with password: ${password}`, text: check.out });
      const before = n2.proc.lines.length;
      writeByRename(n2.file, cfg);
      n2.proc.signal('SIGHUP');
      await n2.proc.waitLine(/reload \((SIGHUP|file change)\) rejected, running groups unchanged:/, before);
      const reload = await n2.ctl('reload');
      assert.equal(reload.code, 1, reload.out);
      outputs.push({ what: `ucarpctl reload with password: ${password}`, text: reload.out });
    }
    const restored = n2.proc.lines.length;
    n2.write(groups(50));
    n2.proc.signal('SIGHUP');
    await n2.proc.waitLine(/reload \((SIGHUP|file change)\): .*unchanged 2/, restored);

    // Failover.
    n1.proc.signal('SIGTERM');
    await n1.proc.exit();
    await n2.waitState('web', 'MASTER \\(master-timing-out\\)');

    // ucarp's command line with a misspelt --pass: the error must not quote its value.
    const cli = await run(h2, process.execPath, [UCARP, `--pas=${PW}`, '-v', '1']);
    assert.equal(cli.code, 1);
    outputs.push({ what: 'ucarp --pas=…', text: cli.out });

    outputs.push({ what: 'daemon h1 (journal)', text: n1.proc.lines.join('\n') });
    outputs.push({ what: 'daemon h2 (stderr)', text: n2.proc.lines.join('\n') });
    outputs.push({ what: 'ucarp -p on h3', text: intruder.lines.join('\n') });
    for (const { what, text } of outputs) {
      for (const piece of PIECES) assert.ok(!text.includes(piece), `${what} shows ${piece}:\n${text}`);
    }
    assert.match(cli.out, /^ucarp: option '--pas' is ambiguous/);
    // The lines themselves are whole: journal priorities, stderr timestamps, group names.
    for (const line of n1.proc.lines) assert.match(line, /^<[3-7]>|^ {2}/, line);
    assert.ok(n1.proc.lines.some((l) => /^<4>web vhid 10 eth0: Switching to state: MASTER/.test(l)));
    for (const line of n2.proc.lines) if (!line.startsWith(n2.file)) assert.match(line, STAMPED, line);
    await waitFor(
      () => n2.proc.lines.some((l) => /db vhid 20 eth0: Switching to state: MASTER/.test(l)),
      5000,
    );
  });
});
