// One program run without a shell, with a timeout after which it is killed with every process
// it started (src/hooks/process-tree.ts). The up/down scripts (src/hooks/scripts.ts) and the
// script trackers (src/track/tracker-set.ts) both run through here, so that spawning, draining,
// timing out and killing a tree exist once.

import { systemClock, type Clock } from '../runtime/clock';
import { ProcessTree, RUN_TOKEN_VAR, becomeSubreaper, trackSpawned, untrackSpawned } from './process-tree';
import { spawnChild, type SpawnedChild } from './spawn-child';

/** Between SIGTERM and SIGKILL when a process overruns its timeout. */
export const KILL_GRACE_MS = 2000;
// After the process exits, how long to wait for its pipes to drain. A program that leaves a
// background child holding stderr open must not hold its caller hostage.
const DRAIN_MS = 200;

export interface ProcessSpec {
  file: string;
  args: readonly string[];
  /** Added to this process's environment. */
  env?: Record<string, string>;
  timeoutMs: number;
  /**
   * Arms the timeout and measures the duration. Default: the system clock; trackers pass theirs
   * so that tests with a fake clock decide when a check times out.
   */
  clock?: Clock;
  /**
   * Both streams are always read to the end, whether or not these are given: a chatty program
   * must never block on a full pipe.
   */
  onStdout?: (chunk: Buffer) => void;
  onStderr?: (chunk: Buffer) => void;
  /** Killing the tree failed (reading /proc, say); the run still ends. */
  onKillError?: (err: Error) => void;
}

export interface ProcessResult {
  /** Exited on its own with status 0. */
  ok: boolean;
  code: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  /** Killed through abort(). */
  aborted: boolean;
  durationMs: number;
  /** It never ran: the file is missing, not executable, or the arguments hold a NUL byte. */
  spawnError?: Error;
}

export interface RunningProcess {
  /** Settles once the process, and any tree being killed, is gone; never rejects. */
  readonly done: Promise<ProcessResult>;
  /**
   * Kills the whole tree (SIGTERM, SIGKILL after KILL_GRACE_MS) unless the program has already
   * exited, and resolves once `done` has settled.
   */
  abort(): Promise<void>;
}

let runSeq = 0;

export function runProcess(spec: ProcessSpec): RunningProcess {
  const clock = spec.clock ?? systemClock;
  const started = clock.now();
  const elapsed = (): number => Math.round(clock.now() - started);
  // Before the first spawn, so that even that program's orphans come back to us.
  becomeSubreaper();
  const token = `${process.pid}.${++runSeq}`;

  let child: SpawnedChild;
  try {
    // Own session and process group: its members are found by those ids, and the program
    // cannot signal the daemon's group.
    child = spawnChild(spec.file, spec.args, { ...process.env, ...spec.env, [RUN_TOKEN_VAR]: token });
  } catch (err) {
    // A program that cannot run (missing, not executable, a NUL byte in the path): callers get
    // the same kind of result as for any other spawn failure.
    const done = Promise.resolve<ProcessResult>({
      ok: false,
      code: null,
      signal: null,
      timedOut: false,
      aborted: false,
      durationMs: elapsed(),
      spawnError: err instanceof Error ? err : new Error(String(err)),
    });
    return { done, abort: () => done.then(() => undefined) };
  }

  const pid = child.pid;
  const tree = pid === undefined ? undefined : new ProcessTree(pid, token);
  if (pid !== undefined) trackSpawned(pid);

  let timedOut = false;
  let aborted = false;
  let killing: Promise<void> | undefined;
  let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;

  const killTree = (): Promise<void> => {
    if (killing === undefined) {
      const k = tree === undefined ? Promise.resolve() : tree.kill(KILL_GRACE_MS);
      killing = k.catch((e: Error) => spec.onKillError?.(e));
    }
    return killing;
  };

  const done = new Promise<ProcessResult>((resolve) => {
    let settled = false;
    let drainTimer: NodeJS.Timeout | undefined;

    const { onStdout, onStderr } = spec;
    if (onStdout) child.stdout.on('data', onStdout);
    else child.stdout.resume();
    if (onStderr) child.stderr.on('data', onStderr);
    else child.stderr.resume();

    const timeoutTimer = clock.setTimer(() => {
      timedOut = true;
      void killTree();
    }, spec.timeoutMs);

    const finish = (code: number | null, signal: NodeJS.Signals | null, spawnError?: Error): void => {
      if (settled) return;
      settled = true;
      clock.clearTimer(timeoutTimer);
      clearTimeout(drainTimer);
      child.stdout.destroy();
      child.stderr.destroy();
      const result: ProcessResult = {
        ok: spawnError === undefined && !timedOut && !aborted && code === 0,
        code,
        signal,
        timedOut,
        aborted,
        durationMs: elapsed(),
      };
      if (spawnError !== undefined) result.spawnError = spawnError;
      resolve(result);
    };

    // The tree's processes are gone once a kill has run: a result then means nothing of the
    // program is left.
    const finishAfterKill = (code: number | null, signal: NodeJS.Signals | null): void => {
      if (killing) void killing.then(() => finish(code, signal));
      else finish(code, signal);
    };

    // Both pipes at their end (closed by the program and by whatever it left running).
    let openStreams = 2;
    const streamClosed = (): void => {
      openStreams--;
      if (openStreams === 0 && exit !== undefined) finishAfterKill(exit.code, exit.signal);
    };
    for (const stream of [child.stdout, child.stderr]) {
      stream.on('close', streamClosed);
      // A read error only ends the stream early; the exit status still settles the run.
      stream.on('error', () => undefined);
    }
    child.onEnd(({ code, signal, error }) => {
      if (error !== undefined) {
        finish(null, null, error);
        return;
      }
      exit = { code, signal };
      if (pid !== undefined) untrackSpawned(pid);
      tree?.leaderExited();
      // The program is done; what it left in the background (a daemon it started) is allowed
      // to stay, unless a kill is already under way.
      clock.clearTimer(timeoutTimer);
      if (openStreams === 0) finishAfterKill(code, signal);
      else drainTimer = setTimeout(() => finishAfterKill(code, signal), DRAIN_MS);
    });
  });

  return {
    done,
    abort: () => {
      if (exit === undefined) {
        aborted = true;
        void killTree();
      }
      return done.then(() => undefined);
    },
  };
}
