import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TrackerConfig } from '../../src/config/types';
import { ClosedError, InvalidArgumentError } from '../../src/errors';
import { KILL_GRACE_MS } from '../../src/hooks/run-process';
import { LOG_PERIOD_MS } from '../../src/util/rate-limited-log';
import { LastLine, OUTPUT_CHARS, type CheckResult, type CheckSpec } from '../../src/track/check';
import { FILE_READ_LIMIT, TrackerSet, type TrackerState } from '../../src/track/tracker-set';
import { FakeClock } from '../helpers/fake-clock';
import { fakeLog, type FakeLog } from '../helpers/fake-log';

// Compiled to dist/test/unit; the shell fixtures stay in the source tree.
const FIXTURES = path.resolve(__dirname, '../../../test/fixtures/track');
const fixture = (name: string): string => path.join(FIXTURES, name);

let tmp = '';
before(() => {
  // git does not always keep file modes.
  for (const name of fs.readdirSync(FIXTURES)) fs.chmodSync(fixture(name), 0o755);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ucarp-track-test-'));
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

type Timing = Partial<Pick<TrackerConfig, 'intervalMs' | 'timeoutMs' | 'rise' | 'fall'>>;
const TIMING = { intervalMs: 1000, timeoutMs: 1000, rise: 1, fall: 1 };

const script = (name: string, argv: string[], t: Timing = {}): TrackerConfig => ({
  name,
  kind: 'script',
  argv,
  ...TIMING,
  ...t,
});
const file = (name: string, p: string, t: Timing = {}): TrackerConfig => ({
  name,
  kind: 'file',
  file: p,
  ...TIMING,
  ...t,
});
const iface = (name: string, ifname: string): TrackerConfig => ({
  name,
  kind: 'interface',
  interface: ifname,
  ...TIMING,
});

/** Every pending promise reaction and I/O callback has run. */
const flush = (): Promise<void> => new Promise((r) => setImmediate(r));

async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function present(pid: number): boolean {
  return fs.existsSync(`/proc/${pid}`);
}

async function readPid(file: string): Promise<number> {
  await until(() => fs.existsSync(file) && fs.readFileSync(file, 'utf8').trim() !== '', file);
  return Number(fs.readFileSync(file, 'utf8'));
}

const OK: CheckResult = {
  ok: true,
  code: 0,
  signal: null,
  timedOut: false,
  aborted: false,
  durationMs: 0,
  output: '',
};
const FAIL: CheckResult = { ...OK, ok: false, code: 1 };

interface FakeCall {
  spec: CheckSpec;
  /** Clock time the check started at. */
  at: number;
  finished: boolean;
  killed: boolean;
  finish(r: CheckResult): void;
  /** With holdKills: lets a kill complete. */
  releaseKill(): void;
}

/** A check runner whose checks end when the test says so. */
class FakeRunner {
  calls: FakeCall[] = [];
  /** Kills wait for releaseKill(), like a tree that takes its grace period to die. */
  holdKills = false;

  readonly run = (spec: CheckSpec) => {
    let resolve: (r: CheckResult) => void = () => undefined;
    const done = new Promise<CheckResult>((r) => (resolve = r));
    let release: () => void = () => undefined;
    const released = new Promise<void>((r) => (release = r));
    const call: FakeCall = {
      spec,
      at: spec.clock.now(),
      finished: false,
      killed: false,
      finish: (r) => {
        call.finished = true;
        resolve(r);
      },
      releaseKill: () => release(),
    };
    this.calls.push(call);
    return {
      done,
      kill: async () => {
        call.killed = true;
        if (!this.holdKills) release();
        await released;
        call.finish({ ...FAIL, code: null, signal: 'SIGTERM', aborted: true });
        await done;
      },
    };
  };

  of(name: string): FakeCall[] {
    return this.calls.filter((c) => c.spec.argv[0] === name);
  }

  last(name: string): FakeCall {
    const calls = this.of(name);
    assert.ok(calls.length > 0, `no check of ${name}`);
    return calls[calls.length - 1];
  }
}

interface Rig {
  set: TrackerSet;
  clock: FakeClock;
  runner: FakeRunner;
  log: FakeLog;
  changes: TrackerState[];
}

function rig(opts: { real?: boolean } = {}): Rig {
  const clock = new FakeClock();
  const runner = new FakeRunner();
  const log = fakeLog();
  const set = new TrackerSet({ log: log.log, clock, ...(opts.real ? {} : { runCheck: runner.run }) });
  const changes: TrackerState[] = [];
  set.on('change', (s) => changes.push(s));
  return { set, clock, runner, log, changes };
}

const state = (set: TrackerSet, name: string): TrackerState => {
  const s = set.get(name);
  assert.ok(s, `no tracker ${name}`);
  return s;
};

/** Ends the running fake check of `name` with `r` and lets the set take the result in. */
async function finish(r: Rig, name: string, result: CheckResult): Promise<void> {
  r.runner.last(name).finish(result);
  await flush();
}

describe('script trackers: rise, fall and changes', () => {
  it('starts not failed, from the clock, with the configured argv', async () => {
    const r = rig();
    r.set.apply([script('hc', ['hc', '-x', 'a b'])]);
    assert.deepEqual(state(r.set, 'hc'), {
      name: 'hc',
      kind: 'script',
      failed: false,
      value: 0,
      since: 1000,
      lastOutput: '',
      checks: 0,
      failures: 0,
    });
    assert.equal(r.runner.calls.length, 0, 'a check ran inside apply()');
    r.clock.advance(0);
    assert.equal(r.runner.calls.length, 1);
    assert.deepEqual(r.runner.calls[0].spec.argv, ['hc', '-x', 'a b']);
    assert.equal(r.runner.calls[0].spec.timeoutMs, 1000);
    await r.set.close();
  });

  it('fails after `fall` consecutive failures and recovers after `rise` consecutive successes', async () => {
    const r = rig();
    r.set.apply([script('hc', ['hc'], { fall: 2, rise: 3 })]);
    const steps: [CheckResult, boolean][] = [
      [FAIL, false],
      [OK, false], // breaks the run of failures
      [FAIL, false],
      [FAIL, true], // second in a row
      [FAIL, true],
      [OK, true],
      [OK, true],
      [FAIL, true], // breaks the run of successes
      [OK, true],
      [OK, true],
      [OK, false], // third in a row
      [OK, false],
    ];
    const expectedChanges: { at: number; failed: boolean }[] = [];
    for (const [i, [result, failed]] of steps.entries()) {
      if (i > 0) r.clock.advance(1000);
      else r.clock.advance(0);
      const was = state(r.set, 'hc').failed;
      await finish(r, 'hc', result);
      const s = state(r.set, 'hc');
      assert.equal(s.failed, failed, `after check ${i + 1}`);
      assert.equal(s.value, failed ? 1 : 0);
      if (was !== failed) expectedChanges.push({ at: r.clock.now(), failed });
    }
    assert.deepEqual(
      r.changes.map((c) => ({ at: c.since, failed: c.failed })),
      expectedChanges,
    );
    assert.equal(expectedChanges.length, 2);
    const s = state(r.set, 'hc');
    assert.equal(s.checks, steps.length);
    assert.equal(s.failures, steps.filter(([res]) => !res.ok).length);
    assert.equal(s.since, expectedChanges[1].at);
    assert.deepEqual(r.log.at('warn'), ['tracker hc failed after 2 failed checks: exit status 1']);
    assert.deepEqual(r.log.at('info'), ['tracker hc is up again after 3 successful checks']);
    await r.set.close();
  });

  it('emits nothing while the state stays the same', async () => {
    const r = rig();
    r.set.apply([script('hc', ['hc'])]);
    r.clock.advance(0);
    for (let i = 0; i < 5; i++) {
      await finish(r, 'hc', { ...OK, output: `line ${i}` });
      r.clock.advance(1000);
    }
    assert.equal(r.changes.length, 0);
    assert.equal(state(r.set, 'hc').lastOutput, 'line 4');
    await finish(r, 'hc', { ...FAIL, output: 'boom' });
    assert.equal(r.changes.length, 1);
    assert.equal(r.changes[0].lastOutput, 'boom');
    for (let i = 0; i < 3; i++) {
      r.clock.advance(1000);
      await finish(r, 'hc', FAIL);
    }
    assert.equal(r.changes.length, 1);
    await r.set.close();
  });

  it('names the reason and the output when it fails', async () => {
    const r = rig();
    r.set.apply([
      script('a', ['a']),
      script('b', ['b']),
      script('c', ['c']),
      script('d', ['d'], { timeoutMs: 700 }),
    ]);
    r.clock.advance(0);
    r.runner.last('a').finish({ ...FAIL, code: 3, output: 'no backend' });
    r.runner.last('b').finish({ ...FAIL, code: null, signal: 'SIGSEGV' });
    r.runner.last('c').finish({ ...FAIL, code: null, spawnError: new Error('spawn c ENOENT') });
    r.runner.last('d').finish({ ...FAIL, code: null, signal: 'SIGTERM', timedOut: true });
    await flush();
    assert.deepEqual(r.log.at('warn'), [
      'tracker a failed after 1 failed checks: exit status 3: no backend',
      'tracker b failed after 1 failed checks: killed by SIGSEGV',
      'tracker c failed after 1 failed checks: cannot run c: spawn c ENOENT',
      'tracker d failed after 1 failed checks: timed out after 700 ms',
    ]);
    await r.set.close();
  });
});

describe('script trackers: scheduling', () => {
  it('starts a check every interval from the previous start, not from its end', async () => {
    const r = rig();
    r.set.apply([script('hc', ['hc'], { intervalMs: 1000 })]);
    r.clock.advance(0);
    r.clock.advance(300);
    await finish(r, 'hc', OK);
    r.clock.advanceTo(1999);
    assert.equal(r.runner.calls.length, 1);
    r.clock.advanceTo(2000);
    assert.equal(r.runner.calls.length, 2);
    assert.deepEqual(
      r.runner.calls.map((c) => c.at),
      [1000, 2000],
    );
    await r.set.close();
  });

  it('never overlaps a hanging check: the next one starts when it ends', async () => {
    const r = rig();
    r.set.apply([script('hc', ['hc'], { intervalMs: 1000, timeoutMs: 60_000 })]);
    r.clock.advance(0);
    r.clock.advance(5500);
    await flush();
    assert.equal(r.runner.calls.length, 1, 'a second check started while the first ran');
    await finish(r, 'hc', OK);
    assert.equal(r.runner.calls.length, 2, 'the overdue check did not start at once');
    assert.equal(r.runner.calls[1].at, 6500);
    await finish(r, 'hc', OK);
    r.clock.advanceTo(7499);
    assert.equal(r.runner.calls.length, 2);
    r.clock.advanceTo(7500);
    assert.equal(r.runner.calls.length, 3);
    await r.set.close();
  });

  it('keeps the other trackers going while one check hangs', async () => {
    const r = rig();
    r.set.apply([script('stuck', ['stuck'], { timeoutMs: 60_000 }), script('fine', ['fine'])]);
    r.clock.advance(0);
    for (let i = 0; i < 3; i++) {
      await finish(r, 'fine', OK);
      r.clock.advance(1000);
    }
    assert.equal(r.runner.of('fine').length, 4);
    assert.equal(r.runner.of('stuck').length, 1);
    await r.set.close();
  });
});

describe('script trackers: real processes', () => {
  it('counts exit 0 as up and anything else as failed, with the last non-blank line', async () => {
    const r = rig({ real: true });
    r.set.apply([
      script('good', [fixture('report.sh'), 'out', '0', 'first', 'fine', '']),
      script('bad', [fixture('report.sh'), 'err', '4', 'checking', 'backend down', '   ']),
    ]);
    r.clock.advance(0);
    await until(() => state(r.set, 'good').checks === 1 && state(r.set, 'bad').checks === 1, 'checks');
    assert.equal(state(r.set, 'good').failed, false);
    assert.equal(state(r.set, 'good').lastOutput, 'fine');
    assert.equal(state(r.set, 'bad').failed, true);
    assert.equal(state(r.set, 'bad').lastOutput, 'backend down');
    assert.deepEqual(r.log.at('warn'), [
      'tracker bad failed after 1 failed checks: exit status 4: backend down',
    ]);
    await r.set.close();
  });

  it('runs argv without a shell', async () => {
    const r = rig({ real: true });
    const marker = path.join(tmp, 'shell-ran');
    r.set.apply([script('args', [fixture('echo-args.sh'), `$(touch ${marker})`, '*', 'a b', ''])]);
    r.clock.advance(0);
    await until(() => state(r.set, 'args').checks === 1, 'check');
    assert.equal(state(r.set, 'args').lastOutput, `<$(touch ${marker})><*><a b><>`);
    assert.equal(fs.existsSync(marker), false);
    await r.set.close();
  });

  it('drains a chatty check so that it cannot block on a full pipe', async () => {
    const r = rig({ real: true });
    r.set.apply([script('chatty', [fixture('chatty.sh')], { timeoutMs: 60_000 })]);
    r.clock.advance(0);
    await until(() => state(r.set, 'chatty').checks === 1, 'check', 10_000);
    assert.equal(state(r.set, 'chatty').failed, false);
    assert.equal(state(r.set, 'chatty').lastOutput, 'all good');
    await r.set.close();
  });

  it('does not block the event loop while a check runs', async () => {
    const r = rig({ real: true });
    r.set.apply([script('slow', [fixture('slow.sh'), '0.5'], { timeoutMs: 60_000 })]);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 10);
    try {
      r.clock.advance(0);
      await until(() => state(r.set, 'slow').checks === 1, 'check');
    } finally {
      clearInterval(timer);
    }
    assert.equal(state(r.set, 'slow').failed, false);
    assert.ok(ticks >= 10, `only ${ticks} timer ticks during a 0.5 s check`);
    await r.set.close();
  });

  it('kills a check that times out with its whole tree, setsid grandchild included', async () => {
    const r = rig({ real: true });
    const prefix = path.join(tmp, 'timeout');
    r.set.apply([script('hang', [fixture('hang-tree.sh'), prefix], { intervalMs: 5000, timeoutMs: 1500 })]);
    r.clock.advance(0);
    const pids = {
      script: await readPid(`${prefix}.script`),
      child: await readPid(`${prefix}.child`),
      grandchild: await readPid(`${prefix}.grandchild`),
    };
    r.clock.advance(1499);
    await new Promise((res) => setTimeout(res, 100));
    for (const [role, pid] of Object.entries(pids))
      assert.ok(present(pid), `${role} killed before the timeout`);
    assert.equal(state(r.set, 'hang').checks, 0);
    const t0 = Date.now();
    r.clock.advance(1);
    await until(() => state(r.set, 'hang').checks === 1, 'the timed-out check', KILL_GRACE_MS + 3000);
    assert.ok(Date.now() - t0 < KILL_GRACE_MS + 2000, `took ${Date.now() - t0} ms`);
    for (const [role, pid] of Object.entries(pids))
      assert.equal(present(pid), false, `${role} ${pid} remains`);
    const s = state(r.set, 'hang');
    assert.equal(s.failed, true);
    assert.equal(s.lastOutput, 'probing backend');
    assert.deepEqual(r.log.at('warn'), [
      'tracker hang failed after 1 failed checks: timed out after 1500 ms: probing backend',
    ]);
    // The next check starts on schedule, from the previous start.
    assert.equal(r.clock.armed()[0]?.at, 1000 + 5000);
    await r.set.close();
  });

  it('counts a program that cannot run as failed and logs it once per period', async () => {
    const r = rig({ real: true });
    const missing = path.join(tmp, 'no-such-check');
    r.set.apply([script('gone', [missing], { intervalMs: 2000 })]);
    r.clock.advance(0);
    for (let n = 1; n <= 5; n++) {
      await until(() => state(r.set, 'gone').checks === n, `check ${n}`);
      if (n < 5) r.clock.advance(2000);
    }
    const errors = r.log.at('error');
    assert.equal(errors.length, 1, errors.join('\n'));
    assert.match(errors[0], new RegExp(`^tracker gone: cannot run ${missing}: .*ENOENT`));
    assert.equal(state(r.set, 'gone').failed, true);
    assert.equal(state(r.set, 'gone').failures, 5);
    // One period after the first report, the next one says how many were held back.
    r.clock.advanceTo(1000 + LOG_PERIOD_MS);
    await until(() => state(r.set, 'gone').checks === 6, 'check 6');
    assert.equal(r.log.at('error').length, 2);
    assert.match(r.log.at('error')[1], /\(4 more since last report\)$/);
    await r.set.close();
  });
});

describe('check output', () => {
  const text = (...pushes: [number, string][]): string => {
    const l = new LastLine();
    for (const [stream, s] of pushes) l.push(stream, Buffer.from(s));
    return l.text();
  };

  it('keeps the last non-blank line, trimmed, a final line without newline included', () => {
    assert.equal(text([0, 'a\nb\n\n  \n']), 'b');
    assert.equal(text([0, 'a\n  b  \r\n']), 'b');
    assert.equal(text([0, 'a\nlast']), 'last');
    assert.equal(text([0, 'a\nla'], [0, 'st\n']), 'last');
    assert.equal(text([0, '']), '');
    assert.equal(text([0, '\n \n']), '');
  });

  it('takes the line written last across stdout and stderr', () => {
    assert.equal(text([0, 'out\n'], [1, 'err\n']), 'err');
    assert.equal(text([1, 'err\n'], [0, 'out\n']), 'out');
    assert.equal(text([1, 'err\n'], [0, 'out\n'], [1, '\n']), 'out');
    // A partial line on one stream does not mix with the other's.
    assert.equal(text([0, 'par'], [1, 'err\n'], [0, 'tial\n']), 'partial');
    assert.equal(text([0, 'partial'], [1, 'err\n']), 'err');
  });

  it(`cuts at ${OUTPUT_CHARS} characters and keeps little of a line without end`, () => {
    const long = 'é'.repeat(OUTPUT_CHARS + 50);
    assert.equal(text([0, `${long}\n`]), 'é'.repeat(OUTPUT_CHARS));
    const l = new LastLine();
    for (let i = 0; i < 1000; i++) l.push(0, Buffer.alloc(1000, 'z'));
    assert.equal(l.text(), 'z'.repeat(OUTPUT_CHARS));
  });

  it('decodes a character split between two chunks', () => {
    const bytes = Buffer.from('ok ✓\n');
    const l = new LastLine();
    l.push(0, bytes.subarray(0, 4));
    l.push(0, bytes.subarray(4));
    assert.equal(l.text(), 'ok ✓');
  });
});

describe('file trackers', () => {
  async function readNow(r: Rig, name: string, write?: string | null): Promise<TrackerState> {
    const p = path.join(tmp, `file-${name}`);
    if (write === null) fs.rmSync(p, { force: true });
    else if (write !== undefined) fs.writeFileSync(p, write);
    const n = state(r.set, name).checks;
    // The first read starts right after apply(), the others every interval.
    r.clock.advance(n === 0 ? 0 : 1000);
    await until(() => state(r.set, name).checks === n + 1, `read ${n + 1}`);
    return state(r.set, name);
  }

  it('follows the integer in the file; missing or empty is 0, garbage leaves the value', async () => {
    const r = rig();
    const p = path.join(tmp, 'file-m');
    fs.rmSync(p, { force: true });
    r.set.apply([file('m', p)]);
    let s = await readNow(r, 'm');
    assert.deepEqual([s.failed, s.value, s.lastOutput], [false, 0, '']);
    s = await readNow(r, 'm', '3\n');
    assert.deepEqual([s.failed, s.value, s.lastOutput], [true, 3, '3']);
    s = await readNow(r, 'm', '  -2 \n');
    assert.deepEqual([s.failed, s.value, s.lastOutput], [true, -2, '-2']);
    s = await readNow(r, 'm', 'drain please');
    assert.deepEqual([s.failed, s.value, s.lastOutput], [true, -2, 'drain please']);
    s = await readNow(r, 'm', '\n\n');
    assert.deepEqual([s.failed, s.value, s.lastOutput], [false, 0, '']);
    s = await readNow(r, 'm', '12abc');
    assert.deepEqual([s.failed, s.value], [false, 0]);
    s = await readNow(r, 'm', '99999999999999999999');
    assert.deepEqual([s.failed, s.value], [false, 0]);
    s = await readNow(r, 'm', '7');
    assert.deepEqual([s.failed, s.value], [true, 7]);
    s = await readNow(r, 'm', '-0');
    assert.equal(Object.is(s.value, 0), true);
    s = await readNow(r, 'm', '5');
    s = await readNow(r, 'm', null);
    assert.deepEqual([s.failed, s.value, s.lastOutput], [false, 0, '']);
    assert.deepEqual(
      r.changes.map((c) => c.value),
      [3, -2, 0, 7, 0, 5, 0],
    );
    assert.equal(s.checks, 11);
    // Not integers: the three garbage reads. Non-zero values: 3, -2, 7, 5.
    assert.equal(s.failures, 3 + 4);
    assert.deepEqual(r.log.at('warn'), [
      `tracker m: ${p} holds 3, was 0`,
      `tracker m: ${p} holds -2, was 3`,
      `tracker m: ${p} does not hold an integer ("drain please"); value stays -2`,
      `tracker m: ${p} holds 7, was 0`,
      `tracker m: ${p} holds 5, was 0`,
    ]);
    assert.deepEqual(r.log.at('info'), [
      `tracker m: ${p} is empty (0), was -2`,
      `tracker m: ${p} holds 0, was 7`,
      `tracker m: ${p} is missing (0), was 5`,
    ]);
    await r.set.close();
  });

  it('warns about garbage once per period', async () => {
    const r = rig();
    const p = path.join(tmp, 'file-g');
    r.set.apply([file('g', p)]);
    await readNow(r, 'g', 'four');
    await readNow(r, 'g', 'five');
    await readNow(r, 'g', 'six');
    assert.deepEqual(r.log.at('warn'), [`tracker g: ${p} does not hold an integer ("four"); value stays 0`]);
    assert.equal(r.changes.length, 0);
    await r.set.close();
  });

  it('does not take a large file, a directory or a FIFO for a value', async () => {
    const r = rig();
    const big = path.join(tmp, 'file-big');
    const dir = path.join(tmp, 'file-dir');
    const fifo = path.join(tmp, 'file-fifo');
    fs.writeFileSync(big, `1${' '.repeat(FILE_READ_LIMIT)}`);
    fs.mkdirSync(dir, { recursive: true });
    const mk = spawnSync('mkfifo', [fifo]);
    assert.equal(mk.status, 0, 'mkfifo');
    r.set.apply([file('big', big), file('dir', dir), file('fifo', fifo)]);
    r.clock.advance(0);
    await until(() => r.set.list().every((s) => s.checks === 1), 'reads');
    for (const s of r.set.list()) {
      assert.deepEqual([s.failed, s.value, s.failures], [false, 0, 1], s.name);
    }
    // The three reads end in any order.
    const warns = r.log.at('warn').sort();
    assert.equal(warns.length, 3, warns.join('\n'));
    assert.match(warns[0], /^tracker big: cannot read .*: larger than 4096 bytes; value stays 0$/);
    assert.match(warns[1], /^tracker dir: cannot read .*: not a regular file; value stays 0$/);
    assert.match(warns[2], /^tracker fifo: cannot read .*: not a regular file; value stays 0$/);
    await r.set.close();
  });

  it('reads every interval', async () => {
    const r = rig();
    const p = path.join(tmp, 'file-i');
    fs.writeFileSync(p, '0');
    r.set.apply([file('i', p, { intervalMs: 5000 })]);
    r.clock.advance(0);
    await until(() => state(r.set, 'i').checks === 1, 'read 1');
    fs.writeFileSync(p, '9');
    r.clock.advance(4999);
    await flush();
    await new Promise((res) => setTimeout(res, 50));
    assert.equal(state(r.set, 'i').checks, 1);
    r.clock.advance(1);
    await until(() => state(r.set, 'i').checks === 2, 'read 2');
    assert.equal(state(r.set, 'i').value, 9);
    await r.set.close();
  });
});

describe('interface trackers', () => {
  it('is failed (missing) until its link is reported, then follows it', async () => {
    const r = rig();
    r.set.apply([iface('up', 'eth1')]);
    assert.deepEqual(
      [state(r.set, 'up').failed, state(r.set, 'up').value, state(r.set, 'up').lastOutput],
      [true, 1, 'missing'],
    );
    r.clock.advance(500);
    r.set.setLink('eth2', true, true);
    assert.equal(state(r.set, 'up').failed, true, 'another interface counted');
    assert.equal(state(r.set, 'up').checks, 0);
    r.set.setLink('eth1', true, true);
    assert.deepEqual(
      [state(r.set, 'up').failed, state(r.set, 'up').value, state(r.set, 'up').lastOutput],
      [false, 0, 'up'],
    );
    assert.equal(state(r.set, 'up').since, 1500);
    r.set.setLink('eth1', true, true);
    r.set.setLink('eth1', true, false);
    assert.deepEqual([state(r.set, 'up').failed, state(r.set, 'up').lastOutput], [true, 'down']);
    r.set.setLink('eth1', false, false);
    assert.deepEqual([state(r.set, 'up').failed, state(r.set, 'up').lastOutput], [true, 'missing']);
    // missing → down: still failed, no change.
    r.set.setLink('eth1', true, false);
    assert.deepEqual(
      r.changes.map((c) => [c.failed, c.lastOutput]),
      [
        [false, 'up'],
        [true, 'down'],
      ],
    );
    assert.equal(state(r.set, 'up').checks, 5);
    assert.equal(state(r.set, 'up').failures, 3);
    assert.deepEqual(r.log.at('info'), ['tracker up: eth1 is up again']);
    assert.deepEqual(r.log.at('warn'), ['tracker up: eth1 is down']);
    await r.set.close();
  });

  it('starts from a link state reported before it was added', async () => {
    const r = rig();
    r.set.setLink('eth1', true, true);
    r.set.setLink('eth3', true, true);
    r.set.setLink('eth3', false, true);
    r.set.apply([iface('a', 'eth1'), iface('b', 'eth3')]);
    assert.deepEqual([state(r.set, 'a').failed, state(r.set, 'a').lastOutput], [false, 'up']);
    assert.deepEqual([state(r.set, 'b').failed, state(r.set, 'b').lastOutput], [true, 'missing']);
    assert.equal(r.changes.length, 0);
    await r.set.close();
  });
});

describe('apply', () => {
  it('adds, keeps unchanged trackers running untouched, restarts changed ones, stops removed ones', async () => {
    const r = rig();
    assert.deepEqual(r.set.apply([script('a', ['a']), script('b', ['b']), script('c', ['c'])]), {
      added: ['a', 'b', 'c'],
      removed: [],
      restarted: [],
      unchanged: 0,
    });
    r.clock.advance(0);
    await finish(r, 'a', FAIL);
    r.runner.last('b').finish(FAIL);
    await flush();
    r.clock.advance(1000);
    // a: failed and in the middle of its second check; b failed; c still in its first check.
    assert.equal(state(r.set, 'a').failed, true);
    assert.equal(state(r.set, 'b').failed, true);
    const changesBefore = r.changes.length;
    const aSince = state(r.set, 'a').since;

    const res = r.set.apply([script('a', ['a']), script('b', ['b'], { fall: 2 }), script('d', ['d'])]);
    assert.deepEqual(res, { added: ['d'], removed: ['c'], restarted: ['b'], unchanged: 1 });
    assert.deepEqual(
      r.set.list().map((s) => s.name),
      ['a', 'b', 'd'],
    );
    assert.equal(r.changes.length, changesBefore, 'apply() emitted');

    // a: same instance, same running check, same state and schedule.
    const aCalls = r.runner.of('a');
    assert.equal(aCalls.length, 2);
    assert.equal(aCalls[1].killed, false);
    assert.deepEqual(
      [state(r.set, 'a').failed, state(r.set, 'a').checks, state(r.set, 'a').since],
      [true, 1, aSince],
    );
    // b: a fresh state; c: its check killed, gone.
    assert.deepEqual(
      [state(r.set, 'b').failed, state(r.set, 'b').checks, state(r.set, 'b').failures],
      [false, 0, 0],
    );
    assert.equal(r.runner.last('c').killed, true);
    assert.equal(r.set.get('c'), undefined);

    await finish(r, 'a', OK);
    assert.equal(state(r.set, 'a').failed, false);
    assert.equal(state(r.set, 'a').checks, 2);
    r.clock.advance(0);
    assert.equal(r.runner.of('b').length, 3, 'the restarted tracker did not start');
    assert.equal(r.runner.of('b')[1].killed, true);
    assert.equal(r.runner.of('d').length, 1);
    // a keeps its own rhythm: next at 2000 + 1000.
    r.clock.advanceTo(2999);
    assert.equal(r.runner.of('a').length, 2);
    r.clock.advanceTo(3000);
    assert.equal(r.runner.of('a').length, 3);
    await r.set.close();
  });

  it('starts a changed tracker only once its old check is dead, and ignores what the old one finds', async () => {
    const r = rig();
    r.runner.holdKills = true;
    r.set.apply([script('hc', ['hc'])]);
    r.clock.advance(0);
    const old = r.runner.last('hc');
    r.set.apply([script('hc', ['hc'], { intervalMs: 2000 })]);
    assert.equal(old.killed, true);
    r.clock.advance(0);
    await flush();
    r.clock.advance(0);
    assert.equal(r.runner.of('hc').length, 1, 'two runs of one check overlapped');
    old.releaseKill();
    await flush();
    r.clock.advance(0);
    assert.equal(r.runner.of('hc').length, 2);
    // The killed check's failure belongs to the old instance.
    assert.equal(state(r.set, 'hc').checks, 0);
    assert.equal(r.changes.length, 0);
    await finish(r, 'hc', OK);
    r.runner.holdKills = false;
    await r.set.close();
  });

  it('drops the result of a removed tracker', async () => {
    const r = rig();
    r.runner.holdKills = true;
    r.set.apply([script('hc', ['hc'])]);
    r.clock.advance(0);
    const call = r.runner.last('hc');
    r.set.apply([]);
    call.finish(FAIL);
    await flush();
    assert.equal(r.changes.length, 0);
    assert.deepEqual(r.log.lines, []);
    assert.deepEqual(r.clock.armed(), []);
    call.releaseKill();
    await r.set.close();
  });

  it('restarts a tracker whose kind changed, and rejects a name given twice', async () => {
    const r = rig();
    r.set.apply([iface('x', 'eth1')]);
    assert.deepEqual(r.set.apply([file('x', '/nonexistent')]).restarted, ['x']);
    assert.equal(state(r.set, 'x').kind, 'file');
    assert.deepEqual(r.set.apply([file('x', '/nonexistent')]).unchanged, 1);
    assert.throws(() => r.set.apply([iface('y', 'eth1'), iface('y', 'eth2')]), InvalidArgumentError);
    await r.set.close();
  });
});

describe('close', () => {
  it('kills a running check with its tree and stops every timer', async () => {
    const r = rig({ real: true });
    const prefix = path.join(tmp, 'close');
    r.set.apply([
      script('hang', [fixture('hang-tree.sh'), prefix], { timeoutMs: 60_000 }),
      file('f', path.join(tmp, 'nothing')),
    ]);
    r.clock.advance(0);
    const pids = {
      script: await readPid(`${prefix}.script`),
      child: await readPid(`${prefix}.child`),
      grandchild: await readPid(`${prefix}.grandchild`),
    };
    await until(() => state(r.set, 'f').checks === 1, 'file read');
    const t0 = Date.now();
    await r.set.close();
    assert.ok(Date.now() - t0 < KILL_GRACE_MS + 2000, `took ${Date.now() - t0} ms`);
    for (const [role, pid] of Object.entries(pids))
      assert.equal(present(pid), false, `${role} ${pid} remains`);
    assert.deepEqual(r.clock.armed(), []);
    assert.deepEqual(r.set.list(), []);
    assert.equal(r.changes.length, 0);
    assert.throws(() => r.set.apply([]), ClosedError);
  });

  it('waits for checks killed by an earlier apply()', async () => {
    const r = rig();
    r.runner.holdKills = true;
    r.set.apply([script('hc', ['hc'])]);
    r.clock.advance(0);
    r.set.apply([]);
    let closed = false;
    const closing = r.set.close().then(() => (closed = true));
    await flush();
    assert.equal(closed, false, 'close() did not wait for the kill');
    r.runner.last('hc').releaseKill();
    await closing;
    assert.equal(closed, true);
  });
});
