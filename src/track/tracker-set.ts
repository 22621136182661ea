// The running health trackers (keepalived's track_script, track_interface and track_file), by
// name, with the reload diff. What a group makes of them is src/track/health.ts; feeding the
// results to the groups is the owner's business (it listens to 'change').
//
// Script and file trackers poll: a check starts every interval, measured from the previous
// check's start, and never overlaps the previous one (an overrunning check delays the next one
// to its own end instead of piling up processes). Script checks are child processes
// (src/track/check.ts), file checks asynchronous reads: nothing here ever blocks the event loop
// that the groups' advertisements share. Interface trackers do not poll at all: the owner feeds
// link changes from its rtnetlink monitor through setLink(), and they follow them at once.

import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import type { TrackerConfig } from '../config/types';
import { ClosedError, InvalidArgumentError, errorMessage } from '../errors';
import { systemClock, type Clock, type TimerHandle } from '../runtime/clock';
import type { Logger } from '../util/log';
import { LOG_PERIOD_MS, RateLimitedLog } from '../util/rate-limited-log';

/** A rate-limited writer of lines: one per tracker name and period, with the count left out. */
interface Limited {
  report(key: string, line: string): void;
}

function limited(write: (line: string) => void, clock: Clock): Limited {
  const r = new RateLimitedLog<string>(LOG_PERIOD_MS, () => clock.now());
  return { report: (key, line) => void r.report(key, (more) => write(`${line}${more}`)) };
}
import { clip, processCheckRunner, type CheckResult, type CheckRunner } from './check';

export interface TrackerState {
  name: string;
  kind: 'script' | 'interface' | 'file';
  failed: boolean;
  /** A file tracker's integer (0 for a missing or empty file); otherwise 1 when failed, else 0. */
  value: number;
  /** Clock milliseconds of the last change of `failed` or `value` (or of the tracker's start). */
  since: number;
  /**
   * Script: the last non-blank line of the last check's stdout/stderr; file: the trimmed
   * content; interface: 'up', 'down' or 'missing'. At most 200 characters.
   */
  lastOutput: string;
  /** Checks completed (for an interface tracker: link states received). */
  checks: number;
  /**
   * Checks that failed: a script that did not exit 0 in time; a file that held a value other
   * than 0 or could not be read as an integer; a link that was not up.
   */
  failures: number;
}

export interface ApplyResult {
  added: string[];
  removed: string[];
  restarted: string[];
  unchanged: number;
}

export interface TrackerSetDeps {
  log: Logger;
  clock?: Clock;
  /** Runs one script check. Default: a child process (src/track/check.ts). */
  runCheck?: CheckRunner;
}

/** More than any integer file needs; a larger file is not one (and /dev/zero never ends). */
export const FILE_READ_LIMIT = 4096;

type ScriptConfig = TrackerConfig & { kind: 'script' };
type FileConfig = TrackerConfig & { kind: 'file' };
type InterfaceConfig = TrackerConfig & { kind: 'interface' };

interface Link {
  present: boolean;
  running: boolean;
}

/** What every tracker instance gets from its set. */
interface Context {
  log: Logger;
  clock: Clock;
  runCheck: CheckRunner;
  /** Spawn failures and unreadable files: the same error every interval is one line per period. */
  limitedError: Limited;
  limitedWarn: Limited;
  emit(state: TrackerState): void;
  link(ifname: string): Link | undefined;
}

function sameConfig(a: TrackerConfig, b: TrackerConfig): boolean {
  if (
    a.name !== b.name ||
    a.intervalMs !== b.intervalMs ||
    a.timeoutMs !== b.timeoutMs ||
    a.rise !== b.rise ||
    a.fall !== b.fall
  )
    return false;
  if (a.kind === 'script' && b.kind === 'script')
    return a.argv.length === b.argv.length && a.argv.every((w, i) => w === b.argv[i]);
  if (a.kind === 'interface' && b.kind === 'interface') return a.interface === b.interface;
  if (a.kind === 'file' && b.kind === 'file') return a.file === b.file;
  return false;
}

/** One configured tracker, from start to stop. A changed tracker is a new instance. */
abstract class Tracker<C extends TrackerConfig = TrackerConfig> {
  protected readonly s: TrackerState;
  protected stopped = false;

  constructor(
    readonly cfg: C,
    protected readonly ctx: Context,
  ) {
    this.s = {
      name: cfg.name,
      kind: cfg.kind,
      failed: false,
      value: 0,
      since: ctx.clock.now(),
      lastOutput: '',
      checks: 0,
      failures: 0,
    };
  }

  get state(): TrackerState {
    return { ...this.s };
  }

  /** A check is under way that stop() has to kill. */
  abstract get busy(): boolean;

  /** `after`: the previous instance of this name is not gone yet; no check before it is. */
  abstract start(after?: Promise<void>): void;

  /** Resolves once nothing of the tracker runs any more. */
  abstract stop(): Promise<void>;

  /** After the start the only place `failed`/`value` change: logged and announced on a change. */
  protected set(failed: boolean, value: number, message: string): void {
    if (failed === this.s.failed && value === this.s.value) return;
    this.s.failed = failed;
    this.s.value = value;
    this.s.since = this.ctx.clock.now();
    if (failed) this.ctx.log.warn(message);
    else this.ctx.log.info(message);
    this.ctx.emit(this.state);
  }
}

/** A tracker that checks every interval: script and file. */
abstract class PolledTracker<C extends TrackerConfig> extends Tracker<C> {
  private timer: TimerHandle | undefined;
  private running: { done: Promise<void>; kill(): Promise<void> } | undefined;
  private startedAt = 0;

  get busy(): boolean {
    return this.running !== undefined;
  }

  /** Starts one check; `done` settles once its result has been applied (unless stopped). */
  protected abstract check(): { done: Promise<void>; kill(): Promise<void> };

  start(after?: Promise<void>): void {
    // Never inside apply(): the first check runs from the clock, like every later one.
    if (after === undefined) this.arm(0);
    else void after.then(() => this.arm(0));
  }

  stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== undefined) this.ctx.clock.clearTimer(this.timer);
    this.timer = undefined;
    return this.running === undefined ? Promise.resolve() : this.running.kill();
  }

  private arm(ms: number): void {
    if (this.stopped) return;
    this.timer = this.ctx.clock.setTimer(() => {
      this.timer = undefined;
      this.begin();
    }, ms);
  }

  private begin(): void {
    if (this.stopped) return;
    this.startedAt = this.ctx.clock.now();
    const run = this.check();
    this.running = run;
    // finally: the checks go on even after a 'change' listener threw (its error still surfaces,
    // as an unhandled rejection).
    void run.done.finally(() => {
      this.running = undefined;
      if (this.stopped) return;
      // At least 1 ms: src/config/normalize.ts rounds an interval under 0.5 ms down to 0, which
      // would run checks back to back, a busy loop of processes or reads.
      const wait = this.startedAt + Math.max(1, this.cfg.intervalMs) - this.ctx.clock.now();
      if (wait <= 0) this.begin();
      else this.arm(wait);
    });
  }
}

class ScriptTracker extends PolledTracker<ScriptConfig> {
  private successes = 0;
  private failuresInRow = 0;

  protected check(): { done: Promise<void>; kill(): Promise<void> } {
    const name = this.cfg.name;
    const proc = this.ctx.runCheck({
      argv: this.cfg.argv,
      timeoutMs: Math.max(1, this.cfg.timeoutMs),
      clock: this.ctx.clock,
      onKillError: (e) => this.ctx.log.error(`tracker ${name}: killing its check: ${e.message}`),
    });
    return {
      done: proc.done.then((r) => {
        if (!this.stopped) this.observe(r);
      }),
      kill: () => proc.kill(),
    };
  }

  private why(r: CheckResult): string {
    if (r.spawnError !== undefined) return `cannot run ${this.cfg.argv[0]}: ${r.spawnError.message}`;
    if (r.timedOut) return `timed out after ${this.cfg.timeoutMs} ms`;
    if (r.signal !== null) return `killed by ${r.signal}`;
    return `exit status ${r.code}`;
  }

  private observe(r: CheckResult): void {
    const { name, rise, fall } = this.cfg;
    this.s.checks++;
    this.s.lastOutput = r.output;
    const tail = r.output === '' ? '' : `: ${r.output}`;
    if (r.ok) {
      this.successes++;
      this.failuresInRow = 0;
      if (this.s.failed && this.successes >= rise)
        this.set(false, 0, `tracker ${name} is up again after ${this.successes} successful checks`);
      return;
    }
    this.s.failures++;
    this.successes = 0;
    this.failuresInRow++;
    const why = this.why(r);
    // The same spawn error every interval is a configuration problem, not news.
    if (r.spawnError !== undefined) this.ctx.limitedError.report(name, `tracker ${name}: ${why}`);
    else this.ctx.log.debug(`tracker ${name} check failed: ${why}${tail}`);
    if (!this.s.failed && this.failuresInRow >= fall)
      this.set(true, 1, `tracker ${name} failed after ${this.failuresInRow} failed checks: ${why}${tail}`);
  }
}

type FileRead = { kind: 'text'; text: string } | { kind: 'missing' } | { kind: 'error'; message: string };

/**
 * At most FILE_READ_LIMIT + 1 bytes. O_NONBLOCK: opening a FIFO without a writer would otherwise
 * hold a thread of libuv's pool until one comes.
 */
async function readSmall(file: string): Promise<FileRead> {
  let fh: fs.promises.FileHandle;
  try {
    fh = await fs.promises.open(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return { kind: 'missing' };
    return { kind: 'error', message: errorMessage(e) };
  }
  try {
    // A FIFO or a device is no file of integers, and reading one could block or never end.
    if (!(await fh.stat()).isFile()) return { kind: 'error', message: 'not a regular file' };
    const buf = Buffer.alloc(FILE_READ_LIMIT + 1);
    let n = 0;
    while (n < buf.length) {
      const { bytesRead } = await fh.read(buf, n, buf.length - n, null);
      if (bytesRead === 0) break;
      n += bytesRead;
    }
    if (n > FILE_READ_LIMIT) return { kind: 'error', message: `larger than ${FILE_READ_LIMIT} bytes` };
    return { kind: 'text', text: buf.subarray(0, n).toString('utf8') };
  } catch (e) {
    return { kind: 'error', message: errorMessage(e) };
  } finally {
    await fh.close().catch(() => undefined);
  }
}

class FileTracker extends PolledTracker<FileConfig> {
  protected check(): { done: Promise<void>; kill(): Promise<void> } {
    return {
      done: readSmall(this.cfg.file).then((r) => {
        if (!this.stopped) this.observe(r);
      }),
      // A read cannot be cancelled, and waiting for one stuck on a dead NFS server would hold
      // up a reload or a stop: its result is dropped instead (stopped is set).
      kill: () => Promise.resolve(),
    };
  }

  private observe(r: FileRead): void {
    const { name, file } = this.cfg;
    this.s.checks++;
    let value: number;
    let what: string;
    if (r.kind === 'missing') {
      this.s.lastOutput = '';
      value = 0;
      what = 'is missing (0)';
    } else if (r.kind === 'error') {
      this.s.failures++;
      this.ctx.limitedWarn.report(
        name,
        `tracker ${name}: cannot read ${file}: ${r.message}; value stays ${this.s.value}`,
      );
      return;
    } else {
      const text = r.text.trim();
      this.s.lastOutput = clip(text);
      const n = /^-?\d+$/.test(text) ? Number(text) : text === '' ? 0 : Number.NaN;
      if (!Number.isSafeInteger(n)) {
        this.s.failures++;
        this.ctx.limitedWarn.report(
          name,
          `tracker ${name}: ${file} does not hold an integer (${JSON.stringify(clip(text))}); value stays ${this.s.value}`,
        );
        return;
      }
      // -0 is 0.
      value = n === 0 ? 0 : n;
      what = text === '' ? 'is empty (0)' : `holds ${value}`;
    }
    if (value !== 0) this.s.failures++;
    const was = this.s.value;
    this.set(value !== 0, value, `tracker ${name}: ${file} ${what}, was ${was}`);
  }
}

class InterfaceTracker extends Tracker<InterfaceConfig> {
  constructor(cfg: InterfaceConfig, ctx: Context) {
    super(cfg, ctx);
    // Not a change: the state it starts in, from what the set already knows of the link.
    const link = linkWord(ctx.link(cfg.interface));
    this.s.lastOutput = link;
    this.s.failed = link !== 'up';
    this.s.value = this.s.failed ? 1 : 0;
  }

  get busy(): boolean {
    return false;
  }

  start(): void {}

  stop(): Promise<void> {
    this.stopped = true;
    return Promise.resolve();
  }

  onLink(link: Link | undefined): void {
    if (this.stopped) return;
    const word = linkWord(link);
    this.s.checks++;
    this.s.lastOutput = word;
    const failed = word !== 'up';
    if (failed) this.s.failures++;
    const { name, interface: ifname } = this.cfg;
    this.set(failed, failed ? 1 : 0, `tracker ${name}: ${ifname} is ${failed ? word : 'up again'}`);
  }
}

function linkWord(link: Link | undefined): 'up' | 'down' | 'missing' {
  if (link === undefined || !link.present) return 'missing';
  return link.running ? 'up' : 'down';
}

export class TrackerSet extends EventEmitter<{ change: [state: TrackerState] }> {
  private trackers = new Map<string, Tracker>();
  private readonly links = new Map<string, Link>();
  /** Stops not finished yet (a killed check's tree can take KILL_GRACE_MS to go): close() waits. */
  private readonly stopping = new Set<Promise<void>>();
  private readonly ctx: Context;
  private closed = false;

  constructor(deps: TrackerSetDeps) {
    super();
    const clock = deps.clock ?? systemClock;
    this.ctx = {
      log: deps.log,
      clock,
      runCheck: deps.runCheck ?? processCheckRunner,
      limitedError: limited((line) => deps.log.error(line), clock),
      limitedWarn: limited((line) => deps.log.warn(line), clock),
      emit: (state) => this.emit('change', state),
      link: (ifname) => this.links.get(ifname),
    };
  }

  /**
   * Makes the running set match `configs`, by name: new trackers start, removed ones stop (a
   * running check is killed), changed ones start over with a fresh state, unchanged ones go on
   * untouched. Emits no 'change' for what it starts: the caller reads the states afterwards.
   */
  apply(configs: readonly TrackerConfig[]): ApplyResult {
    if (this.closed) throw new ClosedError('tracker set is closed');
    const names = new Set<string>();
    for (const c of configs) {
      if (names.has(c.name)) throw new InvalidArgumentError(`tracker ${c.name} configured twice`);
      names.add(c.name);
    }
    const out: ApplyResult = { added: [], removed: [], restarted: [], unchanged: 0 };
    const next = new Map<string, Tracker>();
    for (const cfg of configs) {
      const old = this.trackers.get(cfg.name);
      if (old && sameConfig(old.cfg, cfg)) {
        next.set(cfg.name, old);
        out.unchanged++;
        continue;
      }
      let after: Promise<void> | undefined;
      if (old) {
        // The new instance waits until the old check is dead: two runs of one check never
        // overlap, not even across a reload.
        const busy = old.busy;
        const stopped = this.retire(old);
        if (busy) after = stopped;
        out.restarted.push(cfg.name);
      } else {
        out.added.push(cfg.name);
      }
      const t = this.create(cfg);
      next.set(cfg.name, t);
      t.start(after);
    }
    for (const [name, old] of this.trackers) {
      if (next.has(name)) continue;
      this.retire(old);
      out.removed.push(name);
    }
    this.trackers = next;
    return out;
  }

  /**
   * The link state of an interface, from the owner's rtnetlink monitor. Remembered: a tracker
   * added later for this interface starts from it.
   */
  setLink(ifname: string, present: boolean, running: boolean): void {
    if (this.closed) return;
    const link = present ? { present, running } : undefined;
    if (link) this.links.set(ifname, link);
    else this.links.delete(ifname);
    for (const t of this.trackers.values()) {
      if (t instanceof InterfaceTracker && t.cfg.interface === ifname) t.onLink(link);
    }
  }

  get(name: string): TrackerState | undefined {
    return this.trackers.get(name)?.state;
  }

  /** In the order of the last apply(). */
  list(): TrackerState[] {
    return [...this.trackers.values()].map((t) => t.state);
  }

  /** Stops every tracker and kills running checks; resolves once they are gone. */
  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.trackers.values()) this.retire(t);
    this.trackers.clear();
    await Promise.all([...this.stopping]);
  }

  private create(cfg: TrackerConfig): Tracker {
    switch (cfg.kind) {
      case 'script':
        return new ScriptTracker(cfg, this.ctx);
      case 'file':
        return new FileTracker(cfg, this.ctx);
      case 'interface':
        return new InterfaceTracker(cfg, this.ctx);
    }
  }

  private retire(t: Tracker): Promise<void> {
    const p = t.stop();
    this.stopping.add(p);
    void p.finally(() => this.stopping.delete(p));
    return p;
  }
}
