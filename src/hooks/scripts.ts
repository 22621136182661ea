// Up/down scripts the way ucarp runs them: executed directly (no shell) with the arguments
// `<interface> <address> [<xparam>]`. Unlike ucarp, a script never blocks the daemon: runs are
// asynchronous, serialized per lane (one lane per group name, so a down-script waits for a
// running up-script, also across a restart of the group) and killed after a timeout, with
// every process they started (src/hooks/run-process.ts). Nobody has to wait for a script: a
// reload leaves a slow one to finish in the background, and a stopping daemon waits a bounded
// time for all of them (settleScripts).

import type { Logger } from '../util/log';
import type { CarpState } from '../engine/group';
import { InvalidArgumentError } from '../errors';
import { runProcess } from './run-process';

export { KILL_GRACE_MS } from './run-process';

export type ScriptKind = 'up' | 'down' | 'notify';

export interface ScriptResult {
  /** Exited on its own with status 0. */
  ok: boolean;
  code: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  durationMs: number;
  /** Captured stderr, cut to STDERR_LIMIT bytes. */
  stderr: string;
  /** Killed, or never started, because settleScripts() ran out of time. */
  aborted: boolean;
}

export interface ScriptStats {
  runs: number;
  /** Every run that was not ok, timeouts included. */
  failures: number;
  timeouts: number;
}

export interface ScriptRunnerOptions {
  log: Logger;
  timeoutMs: number;
  /**
   * Runners with the same lane never run scripts at the same time: a group restarted on
   * reload gets a new runner, and its up-script must not overtake the old instance's
   * down-script. Default: a lane of its own.
   */
  lane?: string;
}

export interface RunOptions {
  /** The run starts only once this settles too (e.g. the group's addresses are released). */
  after?: Promise<unknown>;
}

/** How much of a script's stderr is kept (and logged). */
export const STDERR_LIMIT = 4096;
// After a stop has killed what it had to, how long to give the cancelled runs to log that they
// did not run.
const CANCEL_LOG_MS = 200;

/**
 * ucarp passes exactly one address. A group with several addresses passes the FIRST one, so
 * that scripts written for ucarp keep working; the full list is in UCARP_ADDRESSES
 * (see scriptEnv). An xparam, even an empty one, is passed as the third argument, as ucarp does.
 */
export function scriptArgs(iface: string, addresses: readonly string[], xparam?: string): string[] {
  if (addresses.length === 0) throw new InvalidArgumentError('a script needs at least one address');
  return xparam === undefined ? [iface, addresses[0]] : [iface, addresses[0], xparam];
}

/** Extra environment for scripts of multi-address groups. */
export function scriptEnv(ctx: {
  group: string;
  vhid: number;
  state: CarpState;
  addresses: readonly string[];
}): Record<string, string> {
  return {
    UCARP_GROUP: ctx.group,
    UCARP_VHID: String(ctx.vhid),
    UCARP_STATE: ctx.state,
    UCARP_ADDRESSES: ctx.addresses.join(' '),
  };
}

class BoundedBuffer {
  private chunks: Buffer[] = [];
  private kept = 0;
  dropped = 0;

  constructor(private readonly limit: number) {}

  push(chunk: Buffer): void {
    const room = this.limit - this.kept;
    if (room > 0) {
      const part = chunk.length > room ? chunk.subarray(0, room) : chunk;
      this.chunks.push(part);
      this.kept += part.length;
    }
    this.dropped += Math.max(0, chunk.length - Math.max(0, room));
  }

  text(): string {
    const s = Buffer.concat(this.chunks).toString('utf8');
    return this.dropped > 0 ? `${s}... [${this.dropped} more bytes]` : s;
  }
}

/** A run that settleScripts() may cancel (queued) or kill (running). */
interface Entry {
  cancelled: boolean;
  /** Set while the script runs: kills its whole tree, resolves once the result is logged. */
  abort?: () => Promise<void>;
}

interface Lane {
  tail: Promise<unknown>;
  entries: Set<Entry>;
}

/**
 * Every lane with a run queued or running, in this process. Process-wide on purpose: the
 * subreaper flag that keeps script orphans findable is process-wide too, and a daemon that
 * stops must find the scripts of groups that a reload removed earlier.
 */
const lanes = new Map<string | symbol, Lane>();

/** Resolves once all of `promises` have settled, or after `ms`, whichever comes first. */
async function settledWithin(promises: Promise<unknown>[], ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    Promise.allSettled(promises),
    new Promise((r) => {
      timer = setTimeout(r, ms);
    }),
  ]);
  clearTimeout(timer);
}

/**
 * Waits until no script runs or is queued anywhere in this process, at most `waitMs`, and
 * says whether that happened; nothing is killed (ucarpctl restart refuses instead).
 */
export async function scriptsIdle(waitMs: number): Promise<boolean> {
  const deadline = performance.now() + waitMs;
  for (;;) {
    const pending = [...lanes.values()].map((l) => l.tail);
    if (pending.length === 0) return true;
    const left = deadline - performance.now();
    if (left <= 0) return false;
    await settledWithin(pending, left);
  }
}

/**
 * Waits until no script runs or is queued anywhere in this process, at most `waitMs`; then
 * cancels the runs not started and kills the running ones with their whole process trees
 * (SIGTERM, SIGKILL after KILL_GRACE_MS), and resolves once their results are logged. So it
 * returns within about waitMs + KILL_GRACE_MS. Runs queued after that are not affected.
 */
export async function settleScripts(waitMs: number): Promise<void> {
  const deadline = performance.now() + waitMs;
  const entries = new Set<Entry>();
  for (;;) {
    for (const lane of lanes.values()) for (const e of lane.entries) entries.add(e);
    const pending = [...lanes.values()].map((l) => l.tail);
    const left = deadline - performance.now();
    if (pending.length === 0 || left <= 0) break;
    await settledWithin(pending, left);
  }
  const kills: Promise<void>[] = [];
  for (const e of entries) {
    e.cancelled = true;
    if (e.abort) kills.push(e.abort());
  }
  await Promise.all(kills);
  // The cancelled runs log that they did not run as soon as the run before them is over,
  // which is now; a moment for that, so that the lines are written before the process exits.
  await settledWithin(
    [...lanes.values()].map((l) => l.tail),
    CANCEL_LOG_MS,
  );
}

/**
 * One runner per group, built with that group's logger (groupLogger) so that every line
 * names the group, vhid and interface.
 */
export class ScriptRunner {
  private readonly log: Logger;
  private timeoutMs: number;
  private readonly lane: string | symbol;
  private readonly counters: ScriptStats = { runs: 0, failures: 0, timeouts: 0 };

  constructor(opts: ScriptRunnerOptions) {
    this.log = opts.log;
    this.timeoutMs = ScriptRunner.checkTimeout(opts.timeoutMs);
    this.lane = opts.lane ?? Symbol('script lane');
  }

  get stats(): Readonly<ScriptStats> {
    return { ...this.counters };
  }

  /** Applies to runs that start after the call. */
  setTimeout(ms: number): void {
    this.timeoutMs = ScriptRunner.checkTimeout(ms);
  }

  /** Queues a run behind the ones already queued in its lane; never rejects. */
  run(
    kind: ScriptKind,
    path: string,
    args: string[],
    env?: Record<string, string>,
    opts: RunOptions = {},
  ): Promise<ScriptResult> {
    let lane = lanes.get(this.lane);
    if (!lane) {
      lane = { tail: Promise.resolve(), entries: new Set() };
      lanes.set(this.lane, lane);
    }
    const entry: Entry = { cancelled: false };
    lane.entries.add(entry);
    const gate = opts.after === undefined ? lane.tail : Promise.allSettled([lane.tail, opts.after]);
    const result = gate
      .then(() => (entry.cancelled ? this.cancelled(kind, path) : this.execute(kind, path, args, env, entry)))
      .finally(() => {
        lane.entries.delete(entry);
        if (lane.tail === result && lanes.get(this.lane) === lane) lanes.delete(this.lane);
      });
    lane.tail = result;
    return result;
  }

  private cancelled(kind: ScriptKind, path: string): ScriptResult {
    this.log.warn(`${kind} script ${path} not run: stopping`);
    return { ok: false, code: null, signal: null, timedOut: false, durationMs: 0, stderr: '', aborted: true };
  }

  private static checkTimeout(ms: number): number {
    if (!Number.isFinite(ms) || ms <= 0)
      throw new InvalidArgumentError(`script timeout must be > 0 ms, got ${ms}`);
    return ms;
  }

  private execute(
    kind: ScriptKind,
    path: string,
    args: string[],
    env: Record<string, string> | undefined,
    entry: Entry,
  ): Promise<ScriptResult> {
    const timeoutMs = this.timeoutMs;
    this.counters.runs++;
    this.log.debug(`running ${kind} script ${path} ${args.join(' ')}`);
    const stderr = new BoundedBuffer(STDERR_LIMIT);
    const proc = runProcess({
      file: path,
      args,
      env,
      timeoutMs,
      onStderr: (chunk) => stderr.push(chunk),
      onKillError: (e) => this.log.error(`killing ${kind} script ${path}: ${e.message}`),
    });
    const result = proc.done.then((r): ScriptResult => {
      entry.abort = undefined;
      const out: ScriptResult = {
        ok: r.ok,
        code: r.code,
        signal: r.signal,
        timedOut: r.timedOut,
        durationMs: r.durationMs,
        stderr: stderr.text(),
        aborted: r.aborted,
      };
      this.account(kind, path, out, timeoutMs, r.spawnError);
      return out;
    });
    // settleScripts() waits on this: the result must be logged by the time it resolves.
    entry.abort = () => proc.abort().then(() => result.then(() => undefined));
    return result;
  }

  private account(
    kind: ScriptKind,
    path: string,
    r: ScriptResult,
    timeoutMs: number,
    spawnError?: Error,
  ): void {
    const meta = { code: r.code, signal: r.signal, durationMs: r.durationMs };
    const tail = r.stderr === '' ? '' : `: ${r.stderr.trimEnd()}`;
    if (r.timedOut) this.counters.timeouts++;
    if (r.ok) {
      this.log.info(`${kind} script ${path} succeeded`, meta);
      if (r.stderr !== '') this.log.debug(`${kind} script ${path} stderr${tail}`);
      return;
    }
    this.counters.failures++;
    if (spawnError !== undefined) {
      this.log.error(`cannot run ${kind} script ${path}: ${spawnError.message}`);
    } else if (r.timedOut) {
      this.log.error(`${kind} script ${path} killed after ${timeoutMs} ms timeout${tail}`, meta);
    } else if (r.aborted) {
      this.log.error(`${kind} script ${path} killed: stopping${tail}`, meta);
    } else if (r.signal !== null) {
      this.log.warn(`${kind} script ${path} killed by ${r.signal}${tail}`, meta);
    } else {
      this.log.warn(`${kind} script ${path} failed with status ${r.code}${tail}`, meta);
    }
  }
}
