import { InvalidArgumentError } from '../../src/errors';
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import {
  ScriptRunner,
  scriptArgs,
  scriptEnv,
  settleScripts,
  STDERR_LIMIT,
  KILL_GRACE_MS,
} from '../../src/hooks/scripts';
import { createLogger, groupLogger, type Logger } from '../../src/util/log';

// Compiled to dist/test/unit; the shell fixtures stay in the source tree.
const FIXTURES = path.resolve(__dirname, '../../../test/fixtures/scripts');
const fixture = (name: string): string => path.join(FIXTURES, name);
const EXECUTABLE = [
  'args.sh',
  'record.sh',
  'hang.sh',
  'stubborn.sh',
  'fail.sh',
  'noisy.sh',
  'background.sh',
  'setsid-child.sh',
  'daemonize.sh',
  'leave-daemon.sh',
];

let tmp = '';
before(() => {
  // git does not always keep file modes.
  for (const name of EXECUTABLE) fs.chmodSync(fixture(name), 0o755);
  fs.chmodSync(fixture('not-executable.sh'), 0o644);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ucarp-scripts-test-'));
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function testLogger(): { log: Logger; text: () => string } {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (c: Buffer) => (text += c.toString()));
  const base = createLogger({ facility: 'none', debug: true, journal: false, stream });
  return { log: groupLogger(base, { group: 'web', vhid: 10, iface: 'eth0' }), text: () => text };
}

function runner(timeoutMs = 10_000): { r: ScriptRunner; text: () => string } {
  const { log, text } = testLogger();
  return { r: new ScriptRunner({ log, timeoutMs }), text };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A killed child of an orphaned shell may linger as a zombie if nobody reaps it.
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  return !/^\d+ \(.*\) Z/.test(stat);
}

/** The process exists in any form, zombie included. */
function present(pid: number): boolean {
  return fs.existsSync(`/proc/${pid}`);
}

function sessionOf(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[3]);
}

async function readPid(file: string, ms = 5000): Promise<number> {
  assert.ok(
    await waitUntil(() => fs.existsSync(file) && fs.readFileSync(file, 'utf8').trim() !== '', ms),
    file,
  );
  return Number(fs.readFileSync(file, 'utf8'));
}

async function waitUntil(cond: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
  return true;
}

describe('script arguments and environment', () => {
  it('passes ucarp arguments exactly, without any shell interpretation', async () => {
    const { r } = runner();
    const out = path.join(tmp, 'args');
    const marker = path.join(tmp, 'marker');
    const xparam = `$(touch ${marker}) \`touch ${marker}\`; touch ${marker} * "q" 'q' \\ \n`;
    const res = await r.run('up', fixture('args.sh'), ['eth0', '192.0.2.10', xparam], { OUT: out });
    assert.equal(res.ok, true, res.stderr);
    const argv = fs.readFileSync(out, 'utf8').split('\0').slice(0, -1);
    assert.deepEqual(argv, ['eth0', '192.0.2.10', xparam]);
    assert.equal(fs.existsSync(marker), false);
  });

  it('keeps empty arguments', async () => {
    const { r } = runner();
    const out = path.join(tmp, 'args-empty');
    await r.run('down', fixture('args.sh'), ['eth0', '192.0.2.10', ''], { OUT: out });
    assert.deepEqual(fs.readFileSync(out, 'utf8').split('\0').slice(0, -1), ['eth0', '192.0.2.10', '']);
  });

  it('adds the UCARP_* variables, and a run id, to the inherited environment', async () => {
    const { r } = runner();
    const out = path.join(tmp, 'env');
    const env = scriptEnv({
      group: 'web',
      vhid: 10,
      state: 'MASTER',
      addresses: ['192.0.2.10', '192.0.2.11'],
    });
    await r.run('up', fixture('args.sh'), ['eth0', '192.0.2.10'], { ...env, OUT: out });
    assert.match(
      fs.readFileSync(`${out}.env`, 'utf8'),
      /^UCARP_ADDRESSES=192\.0\.2\.10 192\.0\.2\.11\nUCARP_GROUP=web\nUCARP_RUN_ID=\d+\.\d+\nUCARP_STATE=MASTER\nUCARP_VHID=10\n$/,
    );
  });

  it('builds ucarp arguments from the first address, with xparam only when set', () => {
    assert.deepEqual(scriptArgs('eth0', ['192.0.2.10', '192.0.2.11']), ['eth0', '192.0.2.10']);
    assert.deepEqual(scriptArgs('eth0', ['192.0.2.10'], 'extra'), ['eth0', '192.0.2.10', 'extra']);
    assert.deepEqual(scriptArgs('eth0', ['192.0.2.10'], ''), ['eth0', '192.0.2.10', '']);
    assert.throws(() => scriptArgs('eth0', []));
  });
});

describe('script results and logging', () => {
  it('reports success with exit status 0', async () => {
    const { r, text } = runner();
    const res = await r.run('up', fixture('args.sh'), ['eth0', '192.0.2.1'], { OUT: path.join(tmp, 'ok') });
    assert.equal(res.ok, true);
    assert.equal(res.code, 0);
    assert.equal(res.signal, null);
    assert.equal(res.timedOut, false);
    assert.ok(res.durationMs >= 0 && res.durationMs < 10_000);
    assert.match(text(), /\[INFO\] web vhid 10 eth0: up script \S+args\.sh succeeded code=0/);
  });

  it('captures stderr and logs a non-zero status with it', async () => {
    const { r, text } = runner();
    const res = await r.run('down', fixture('fail.sh'), ['eth0', '192.0.2.1']);
    assert.equal(res.ok, false);
    assert.equal(res.code, 3);
    assert.equal(res.stderr, 'something broke\n');
    assert.match(
      text(),
      /\[WARN\] web vhid 10 eth0: down script \S+fail\.sh failed with status 3: something broke/,
    );
    assert.deepEqual(r.stats, { runs: 1, failures: 1, timeouts: 0 });
  });

  it('truncates a large stderr', async () => {
    const { r } = runner();
    const res = await r.run('down', fixture('noisy.sh'), []);
    assert.equal(res.code, 1);
    assert.equal(res.stderr, `${'x'.repeat(STDERR_LIMIT)}... [${100_000 - STDERR_LIMIT} more bytes]`);
  });

  it('turns a nonexistent script into a logged failure', async () => {
    const { r, text } = runner();
    const res = await r.run('up', path.join(tmp, 'no-such-script'), ['eth0', '192.0.2.1']);
    assert.equal(res.ok, false);
    assert.equal(res.code, null);
    assert.equal(res.timedOut, false);
    assert.match(text(), /\[ERROR\] web vhid 10 eth0: cannot run up script \S+no-such-script: .*ENOENT/);
    assert.deepEqual(r.stats, { runs: 1, failures: 1, timeouts: 0 });
  });

  it('turns a path Node refuses to spawn into a logged failure and keeps the queue going', async () => {
    const { r, text } = runner();
    const bad = r.run('up', 'bad\0path', []);
    const next = r.run('down', fixture('fail.sh'), []);
    assert.equal((await bad).ok, false);
    assert.equal((await next).code, 3);
    assert.match(text(), /cannot run up script bad/);
  });

  it('turns a non-executable script into a logged failure', async () => {
    const { r, text } = runner();
    const res = await r.run('up', fixture('not-executable.sh'), []);
    assert.equal(res.ok, false);
    assert.match(text(), /cannot run up script \S+not-executable\.sh: .*EACCES/);
  });

  it('does not wait for background children that keep stderr open', async () => {
    const { r } = runner();
    const pidfile = path.join(tmp, 'bg.pid');
    const t0 = Date.now();
    const res = await r.run('up', fixture('background.sh'), [], { PIDFILE: pidfile });
    try {
      assert.equal(res.ok, true);
      assert.ok(Date.now() - t0 < 10_000);
    } finally {
      process.kill(Number(fs.readFileSync(pidfile, 'utf8')), 'SIGKILL');
    }
  });
});

describe('script serialization', () => {
  it('runs a down script only after a slow up script has finished', async () => {
    const { r } = runner();
    const log = path.join(tmp, 'order');
    const up = r.run('up', fixture('record.sh'), ['up'], { LOG: log, DELAY: '0.3' });
    const down = r.run('down', fixture('record.sh'), ['down'], { LOG: log, DELAY: '0' });
    await Promise.all([up, down]);
    assert.deepEqual(fs.readFileSync(log, 'utf8').split('\n'), [
      'start up',
      'end up',
      'start down',
      'end down',
      '',
    ]);
  });

  it('keeps going after a failed run', async () => {
    const { r } = runner();
    const first = r.run('up', path.join(tmp, 'missing'), []);
    const second = r.run('down', fixture('fail.sh'), []);
    assert.equal((await first).ok, false);
    assert.equal((await second).code, 3);
    assert.deepEqual(r.stats, { runs: 2, failures: 2, timeouts: 0 });
  });

  it('does not block the event loop while a script runs', async () => {
    const { r } = runner();
    let ticks = 0;
    const timer = setInterval(() => ticks++, 10);
    try {
      await r.run('up', fixture('record.sh'), ['x'], { LOG: path.join(tmp, 'loop'), DELAY: '0.5' });
    } finally {
      clearInterval(timer);
    }
    assert.ok(ticks >= 10, `only ${ticks} timer ticks during a 0.5 s script`);
  });
});

describe('script timeout', () => {
  it('kills a hanging script and its children with SIGTERM', async () => {
    const { r, text } = runner(200);
    const pidfile = path.join(tmp, 'hang.pid');
    const t0 = Date.now();
    const res = await r.run('up', fixture('hang.sh'), [], { PIDFILE: pidfile });
    assert.ok(Date.now() - t0 < 200 + KILL_GRACE_MS + 3000, 'took too long');
    assert.equal(res.ok, false);
    assert.equal(res.timedOut, true);
    assert.equal(res.signal, 'SIGTERM');
    assert.ok(
      await waitUntil(() => !alive(Number(fs.readFileSync(pidfile, 'utf8'))), 3000),
      'sleep survived',
    );
    assert.deepEqual(r.stats, { runs: 1, failures: 1, timeouts: 1 });
    assert.match(text(), /\[ERROR\] web vhid 10 eth0: up script \S+hang\.sh killed after 200 ms timeout/);
  });

  it('escalates to SIGKILL when SIGTERM is ignored', async () => {
    const { r } = runner(100);
    const t0 = Date.now();
    const res = await r.run('down', fixture('stubborn.sh'), []);
    const elapsed = Date.now() - t0;
    assert.equal(res.timedOut, true);
    assert.equal(res.signal, 'SIGKILL');
    assert.ok(elapsed >= KILL_GRACE_MS && elapsed < 100 + KILL_GRACE_MS + 3000, `elapsed ${elapsed} ms`);
  });

  it('applies a timeout changed with setTimeout', async () => {
    const { r } = runner(60_000);
    r.setTimeout(100);
    const res = await r.run('up', fixture('hang.sh'), [], { PIDFILE: path.join(tmp, 'hang2.pid') });
    assert.equal(res.timedOut, true);
  });

  it('rejects a timeout that is not positive', () => {
    const { log } = testLogger();
    assert.throws(() => new ScriptRunner({ log, timeoutMs: 0 }), InvalidArgumentError);
    assert.throws(
      () => new ScriptRunner({ log, timeoutMs: 1000 }).setTimeout(Number.NaN),
      InvalidArgumentError,
    );
  });
});

describe('script process trees', () => {
  for (const ignoreTerm of [false, true]) {
    it(`kills a grandchild that left the group with setsid${ignoreTerm ? ', even when SIGTERM is ignored' : ''}, and leaves no zombie`, async () => {
      const { r } = runner(500);
      const pidfile = path.join(tmp, `setsid${ignoreTerm ? '-stubborn' : ''}`);
      const t0 = Date.now();
      const run = r.run('up', fixture('setsid-child.sh'), [], {
        PIDFILE: pidfile,
        ...(ignoreTerm ? { IGNORE_TERM: '1' } : {}),
      });
      const pids = {
        script: await readPid(`${pidfile}.script`),
        child: await readPid(`${pidfile}.child`),
        grandchild: await readPid(`${pidfile}.grandchild`),
      };
      // The case this is about: the grandchild is out of the script's session and group.
      assert.notEqual(sessionOf(pids.grandchild), pids.script);
      const res = await run;
      assert.equal(res.timedOut, true);
      // Nothing is left, not even a zombie, by the time the result is in (and well within the
      // grace period plus a margin).
      const elapsed = Date.now() - t0;
      assert.ok(elapsed < 500 + KILL_GRACE_MS + 1500, `took ${elapsed} ms`);
      for (const [name, pid] of Object.entries(pids))
        assert.equal(present(pid), false, `${name} ${pid} remains`);
      if (ignoreTerm) assert.equal(res.signal, 'SIGKILL');
    });
  }

  it('kills a daemon the script started by double fork, whose parent is gone', async () => {
    const { r } = runner(500);
    const pidfile = path.join(tmp, 'daemonize');
    const run = r.run('up', fixture('daemonize.sh'), [], { PIDFILE: pidfile });
    const daemon = await readPid(`${pidfile}.daemon`);
    const script = await readPid(`${pidfile}.script`);
    const res = await run;
    assert.equal(res.timedOut, true);
    assert.equal(present(script), false, 'script remains');
    assert.equal(present(daemon), false, 'daemon remains');
  });

  it('leaves alone what another script left behind, and reaps it once it dies', async () => {
    const { r: first } = runner();
    const pidfile = path.join(tmp, 'left');
    assert.equal((await first.run('up', fixture('leave-daemon.sh'), [], { PIDFILE: pidfile })).ok, true);
    const daemon = await readPid(`${pidfile}.daemon`);
    try {
      const { r: second } = runner(200);
      const res = await second.run('up', fixture('hang.sh'), [], { PIDFILE: path.join(tmp, 'hang3.pid') });
      assert.equal(res.timedOut, true);
      assert.equal(alive(daemon), true, "the other script's daemon was killed");
    } finally {
      process.kill(daemon, 'SIGKILL');
    }
    // It was adopted by this process (the subreaper): nobody else would reap it.
    assert.ok(await waitUntil(() => !present(daemon), 3000), 'left as a zombie');
  });
});

describe('not waiting for scripts', () => {
  it('serializes runners of one lane: a new runner waits for the old one', async () => {
    const { log } = testLogger();
    const old = new ScriptRunner({ log, timeoutMs: 10_000, lane: 'web' });
    const renewed = new ScriptRunner({ log, timeoutMs: 10_000, lane: 'web' });
    const other = new ScriptRunner({ log, timeoutMs: 10_000, lane: 'db' });
    const order = path.join(tmp, 'lane');
    const a = old.run('down', fixture('record.sh'), ['old-down'], { LOG: order, DELAY: '0.3' });
    const b = renewed.run('up', fixture('record.sh'), ['new-up'], { LOG: order, DELAY: '0' });
    const c = other.run('up', fixture('record.sh'), ['other'], { LOG: order, DELAY: '0' });
    await Promise.all([a, b, c]);
    const lines = fs.readFileSync(order, 'utf8').split('\n');
    assert.ok(lines.indexOf('end old-down') < lines.indexOf('start new-up'), lines.join(','));
    // Another lane does not wait.
    assert.ok(lines.indexOf('start other') < lines.indexOf('end old-down'), lines.join(','));
  });

  it('starts a run only after its `after` gate', async () => {
    const { r } = runner();
    const order = path.join(tmp, 'gate');
    let open = (): void => undefined;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const run = r.run('down', fixture('record.sh'), ['down'], { LOG: order, DELAY: '0' }, { after: gate });
    await new Promise((res) => setTimeout(res, 200));
    assert.equal(fs.existsSync(order), false, 'ran before the gate opened');
    open();
    assert.equal((await run).ok, true);
  });

  it('settleScripts returns at once when nothing runs, and lets a quick script finish', async () => {
    let t0 = Date.now();
    await settleScripts(5000);
    assert.ok(Date.now() - t0 < 100);
    const { r } = runner();
    const run = r.run('up', fixture('record.sh'), ['quick'], { LOG: path.join(tmp, 'quick'), DELAY: '0.2' });
    t0 = Date.now();
    await settleScripts(5000);
    assert.ok(Date.now() - t0 < 2000, `took ${Date.now() - t0} ms`);
    const res = await run;
    assert.equal(res.ok, true);
    assert.equal(res.aborted, false);
  });

  it('settleScripts kills a hanging tree after its bound and cancels what is queued behind it', async () => {
    const { r, text } = runner(60_000);
    const pidfile = path.join(tmp, 'settle');
    const order = path.join(tmp, 'settle-order');
    const up = r.run('up', fixture('setsid-child.sh'), [], { PIDFILE: pidfile });
    const down = r.run('down', fixture('record.sh'), ['down'], { LOG: order, DELAY: '0' });
    const grandchild = await readPid(`${pidfile}.grandchild`);
    const t0 = Date.now();
    await settleScripts(300);
    const elapsed = Date.now() - t0;
    assert.ok(elapsed >= 290 && elapsed < 300 + KILL_GRACE_MS + 1000, `took ${elapsed} ms`);
    const [u, d] = await Promise.all([up, down]);
    assert.equal(u.aborted, true);
    assert.equal(u.timedOut, false);
    assert.equal(d.aborted, true);
    assert.equal(fs.existsSync(order), false, 'the queued script ran');
    assert.equal(present(grandchild), false, 'grandchild remains');
    assert.match(text(), /\[ERROR\] web vhid 10 eth0: up script \S+setsid-child\.sh killed: stopping/);
    assert.match(text(), /\[WARN\] web vhid 10 eth0: down script \S+record\.sh not run: stopping/);
  });
});
