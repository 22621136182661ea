// `npm run demo` end to end: the compiled demo runs as a child process, as `npm run demo` runs
// it, and must finish, measure, reload and leave nothing behind, also when interrupted.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { readableCopy } from '../helpers/readable-copy';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const DEMO = path.join(ROOT, 'dist', 'src', 'demo', 'demo.js');

interface DemoRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs the demo; with `interruptAt`, sends SIGINT once stdout matches it. `root` is the tree
 * to run it from (default: this checkout).
 */
function runDemo(opts: { interruptAt?: RegExp; argv0?: string[]; root?: string } = {}): Promise<DemoRun> {
  return new Promise((resolve, reject) => {
    const [cmd, ...pre] = opts.argv0 ?? [process.execPath];
    const demo = opts.root === undefined ? DEMO : path.join(opts.root, 'dist', 'src', 'demo', 'demo.js');
    const child = spawn(cmd, [...pre, ...(opts.argv0 ? [process.execPath] : []), demo], {
      stdio: ['ignore', 'pipe', 'pipe'],
      cwd: opts.root,
    });
    let stdout = '';
    let stderr = '';
    let interrupted = false;
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      if (opts.interruptAt && !interrupted && opts.interruptAt.test(stdout)) {
        interrupted = true;
        child.kill('SIGINT');
      }
    });
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

function namespacesStartingWith(prefix: string): string[] {
  return execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .split('\n')
    .map((l) => l.split(' ')[0])
    .filter((n) => n !== '' && n.startsWith(prefix));
}

/** The namespace prefix and temporary directory the run announced. */
function created(r: DemoRun): { prefix: string; tmp: string } {
  const ns = /namespaces: (\S+)-sw /.exec(r.stdout);
  const tmp = /files: (\S+)/.exec(r.stdout);
  assert.ok(ns && tmp, `the demo names what it creates:\n${r.stdout}\n${r.stderr}`);
  assert.match(ns[1], /^ucdemo/);
  return { prefix: ns[1], tmp: tmp[1] };
}

/** Processes whose command line mentions `text` (the demo's daemons name their files). */
function processesMentioning(text: string): number[] {
  const pids: number[] = [];
  for (const p of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      if (fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(text)) pids.push(Number(p));
    } catch {
      // Exited while we looked.
    }
  }
  return pids;
}

function assertNothingLeft(r: DemoRun): void {
  const { prefix, tmp } = created(r);
  assert.deepEqual(namespacesStartingWith(prefix), [], 'no namespace of the run is left');
  assert.equal(fs.existsSync(tmp), false, `${tmp} is removed`);
  assert.deepEqual(processesMentioning(tmp), [], 'no daemon of the run is left');
}

describe('npm run demo', { timeout: 300_000 }, () => {
  it(
    'runs to completion: one master per group, measured takeovers, a reload, nothing left behind',
    { timeout: 120_000 },
    async () => {
      const r = await runDemo();
      assert.equal(r.code, 0, `exit status 0\n${r.stdout}\n${r.stderr}`);
      assert.equal(r.stderr, '');
      // Each host's generated file passes the daemon's own check.
      assert.equal(r.stdout.match(/h\d: ucarp --check-config: configuration OK, 4 group\(s\)/g)?.length, 3);
      assert.match(r.stdout, /settled \d+ ms after start: web on h1, api on h2, db on h3, mail on h\d/);
      // The live table and the operator's view.
      assert.match(r.stdout, /GROUP\s+VHID\s+ADDRESS\s+PREEMPT\s+h1\s+h2\s+h3\s+MASTER\s+ADDRESS ON/);
      assert.match(r.stdout, /^\s+web\s+10\s+eth0\s+MASTER\s/m);

      // Crash of h1: web moves to its next preference, measured against the master-down bound.
      const crash = /takeover web: h1 -> h2 in (\d+) ms .*\n\s+bound (\d+) ms = 3 x 1 s \+ 50\/256 s/.exec(
        r.stdout,
      );
      assert.ok(crash, r.stdout);
      assert.equal(Number(crash[2]), 3195);
      assert.ok(Number(crash[1]) < 10_000, 'sanity: a takeover within seconds');
      assert.match(r.stdout, /h1 still holds [^\n]*192\.0\.2\.100/);

      // Restart: preempt brings web back, mail (no preempt) stays.
      assert.match(r.stdout, /web: h2 -> h1 \d+ ms after the restart .*reason: preempt/);
      assert.match(r.stdout, /at start it removed the addresses it is not master for: .*192\.0\.2\.100/);

      // Graceful stop: the bow-out beats any master-down timer (the shortest here is 3 s).
      const graceful = /takeover api: h2 -> h3 in (\d+) ms \(a crash would take up to 3195 ms\)/.exec(
        r.stdout,
      );
      assert.ok(graceful, r.stdout);
      assert.ok(Number(graceful[1]) < 3000, `bow-out took ${graceful[1]} ms`);
      assert.match(r.stdout, /api: h3 -> h2 \d+ ms after the restart/);

      // Reload through ucarpctl: its summary line, then the new preference and the new group.
      assert.match(
        r.stdout,
        /reload \(ucarpctl\): added 1 \(ntp\), removed 0, updated 1 \(db: advskew\), restarted 0, unchanged 3\n/,
      );
      assert.match(r.stdout, /db: h3 -> h1 \d+ ms after the reload/);
      assert.match(r.stdout, /ntp: new, master on h3 \d+ ms after the reload/);
      assert.match(r.stdout, /^\s+ntp\s+60\s+192\.0\.2\.150\s+no\s+-\s+-\s+MASTER 0\s+h3\s+h3$/m);

      assert.match(r.stdout, /stopped 3 daemon\(s\)/);
      assert.match(r.stdout, /demo finished in \d+\.\d s\n$/);
      assertNothingLeft(r);
    },
  );

  it(
    'Ctrl-C midway removes every namespace, process and file, and exits 130',
    { timeout: 120_000 },
    async () => {
      const r = await runDemo({ interruptAt: /\[3\] Crash/ });
      assert.equal(r.code, 130, `${r.stdout}\n${r.stderr}`);
      assert.match(
        r.stdout,
        /SIGINT: stopping the demo and removing what it created\n\s+deleted namespaces: ucdemo/,
      );
      assert.doesNotMatch(r.stdout, /demo finished/);
      assertNothingLeft(r);
    },
  );

  it('refuses to run without root, with a clear message and nothing created', async () => {
    // nobody may not be able to enter the checkout (a clone under /root).
    const copy = readableCopy();
    let r: DemoRun;
    try {
      r = await runDemo({
        argv0: ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'],
        root: copy.root,
      });
    } finally {
      copy.remove();
    }
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.equal(
      r.stderr,
      'demo: the demo creates network namespaces and must run as root (sudo npm run demo)\n',
    );
  });
});
