// Up/down scripts the way ucarp runs them: executed directly (no shell) with the arguments
// `<interface> <address> [<xparam>]`. Unlike ucarp, a script never blocks the daemon: runs are
// asynchronous, serialized per runner (one runner per group, so a down-script waits for a
// running up-script) and killed after a timeout.

import { spawn, type ChildProcessByStdio } from 'node:child_process';
import type { Readable } from 'node:stream';
import type { Logger } from '../util/log';
import { InvalidArgumentError } from '../errors';

export type ScriptKind = 'up' | 'down';

export interface ScriptResult {
  /** Exited on its own with status 0. */
  ok: boolean;
  code: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  durationMs: number;
  /** Captured stderr, cut to STDERR_LIMIT bytes. */
  stderr: string;
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
}

/** How much of a script's stderr is kept (and logged). */
export const STDERR_LIMIT = 4096;
/** Between SIGTERM and SIGKILL when a script overruns its timeout. */
export const KILL_GRACE_MS = 2000;
// After the script exits, how long to wait for its pipes to drain. A script that leaves a
// background child holding stderr open must not hold the group's queue hostage.
const DRAIN_MS = 200;

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
  state: 'MASTER' | 'BACKUP';
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

/**
 * One runner per group, built with that group's logger (groupLogger) so that every line
 * names the group, vhid and interface.
 */
export class ScriptRunner {
  private readonly log: Logger;
  private timeoutMs: number;
  private tail: Promise<unknown> = Promise.resolve();
  private readonly counters: ScriptStats = { runs: 0, failures: 0, timeouts: 0 };

  constructor(opts: ScriptRunnerOptions) {
    this.log = opts.log;
    this.timeoutMs = ScriptRunner.checkTimeout(opts.timeoutMs);
  }

  get stats(): Readonly<ScriptStats> {
    return { ...this.counters };
  }

  /** Applies to runs that start after the call. */
  setTimeout(ms: number): void {
    this.timeoutMs = ScriptRunner.checkTimeout(ms);
  }

  /** Queues a run behind the ones already queued; never rejects. */
  run(kind: ScriptKind, path: string, args: string[], env?: Record<string, string>): Promise<ScriptResult> {
    const result = this.tail.then(() => this.execute(kind, path, args, env));
    this.tail = result;
    return result;
  }

  private static checkTimeout(ms: number): number {
    if (!Number.isFinite(ms) || ms <= 0) throw new RangeError(`script timeout must be > 0 ms, got ${ms}`);
    return ms;
  }

  private execute(
    kind: ScriptKind,
    path: string,
    args: string[],
    env: Record<string, string> | undefined,
  ): Promise<ScriptResult> {
    const timeoutMs = this.timeoutMs;
    const started = performance.now();
    this.counters.runs++;
    this.log.debug(`running ${kind} script ${path} ${args.join(' ')}`);

    let child: ChildProcessByStdio<null, Readable, Readable>;
    try {
      // Own process group (detached), so that a timeout also kills what a shell script
      // started: `sleep` under `sh` would otherwise outlive it and keep the pipes open.
      child = spawn(path, args, {
        env: env === undefined ? process.env : { ...process.env, ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true,
      });
    } catch (err) {
      // Arguments Node refuses outright (a NUL byte in the path, say) throw instead of
      // emitting 'error'; the queue must go on all the same.
      const result: ScriptResult = {
        ok: false,
        code: null,
        signal: null,
        timedOut: false,
        durationMs: Math.round(performance.now() - started),
        stderr: '',
      };
      this.account(kind, path, result, timeoutMs, err instanceof Error ? err : new Error(String(err)));
      return Promise.resolve(result);
    }

    return new Promise<ScriptResult>((resolve) => {
      const stderr = new BoundedBuffer(STDERR_LIMIT);
      let timedOut = false;
      let settled = false;
      let killTimer: NodeJS.Timeout | undefined;
      let drainTimer: NodeJS.Timeout | undefined;
      let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;

      child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
      // stdout is not part of the result; reading it keeps a chatty script from blocking
      // on a full pipe.
      child.stdout.resume();

      const killGroup = (signal: NodeJS.Signals): void => {
        if (child.pid === undefined) return;
        try {
          process.kill(-child.pid, signal);
        } catch {
          // Already gone.
        }
      };

      const timeoutTimer = setTimeout(() => {
        timedOut = true;
        killGroup('SIGTERM');
        killTimer = setTimeout(() => killGroup('SIGKILL'), KILL_GRACE_MS);
      }, timeoutMs);

      const finish = (code: number | null, signal: NodeJS.Signals | null, spawnError?: Error): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timeoutTimer);
        clearTimeout(killTimer);
        clearTimeout(drainTimer);
        child.stdout.destroy();
        child.stderr.destroy();
        const result: ScriptResult = {
          ok: spawnError === undefined && !timedOut && code === 0,
          code,
          signal,
          timedOut,
          durationMs: Math.round(performance.now() - started),
          stderr: stderr.text(),
        };
        this.account(kind, path, result, timeoutMs, spawnError);
        resolve(result);
      };

      child.on('error', (err) => finish(null, null, err));
      child.on('exit', (code, signal) => {
        exit = { code, signal };
        // Only the group leader is known to be gone; stop the SIGKILL escalation from
        // targeting a process group id that may no longer exist.
        clearTimeout(killTimer);
        drainTimer = setTimeout(() => finish(code, signal), DRAIN_MS);
      });
      child.on('close', () => {
        if (exit !== undefined) finish(exit.code, exit.signal);
      });
    });
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
    } else if (r.signal !== null) {
      this.log.warn(`${kind} script ${path} killed by ${r.signal}${tail}`, meta);
    } else {
      this.log.warn(`${kind} script ${path} failed with status ${r.code}${tail}`, meta);
    }
  }
}
