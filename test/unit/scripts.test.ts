import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { ScriptRunner, scriptArgs, scriptEnv, STDERR_LIMIT, KILL_GRACE_MS } from '../../src/hooks/scripts';
import { createLogger, groupLogger, type Logger } from '../../src/util/log';

// Compiled to dist/test/unit; the shell fixtures stay in the source tree.
const FIXTURES = path.resolve(__dirname, '../../../test/fixtures/scripts');
const fixture = (name: string): string => path.join(FIXTURES, name);
const EXECUTABLE = ['args.sh', 'record.sh', 'hang.sh', 'stubborn.sh', 'fail.sh', 'noisy.sh', 'background.sh'];

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

  it('adds the UCARP_* variables to the inherited environment', async () => {
    const { r } = runner();
    const out = path.join(tmp, 'env');
    const env = scriptEnv({
      group: 'web',
      vhid: 10,
      state: 'MASTER',
      addresses: ['192.0.2.10', '192.0.2.11'],
    });
    await r.run('up', fixture('args.sh'), ['eth0', '192.0.2.10'], { ...env, OUT: out });
    assert.equal(
      fs.readFileSync(`${out}.env`, 'utf8'),
      'UCARP_ADDRESSES=192.0.2.10 192.0.2.11\nUCARP_GROUP=web\nUCARP_STATE=MASTER\nUCARP_VHID=10\n',
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
    assert.throws(() => new ScriptRunner({ log, timeoutMs: 0 }), RangeError);
    assert.throws(() => new ScriptRunner({ log, timeoutMs: 1000 }).setTimeout(Number.NaN), RangeError);
  });
});
