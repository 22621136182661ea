// One program run without a shell, with a timeout after which it is killed with every process
// it started (src/hooks/process-tree.ts). The up/down scripts (src/hooks/scripts.ts) and the
// script trackers (src/track/tracker-set.ts) both run through here, so that spawning, draining,
// timing out and killing a tree exist once.

import { spawn, type ChildProcessByStdio } from 'node:child_process';
import type { Readable } from 'node:stream';
import { systemClock, type Clock } from '../runtime/clock';
import { ProcessTree, RUN_TOKEN_VAR, becomeSubreaper, trackSpawned, untrackSpawned } from './process-tree';

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
  /** It never ran: the file is missing, not executable, or Node refused the arguments. */
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

  let child: ChildProcessByStdio<null, Readable, Readable>;
  try {
    // Own session and process group (detached): its members are found by those ids, and the
    // program cannot signal the daemon's group.
    child = spawn(spec.file, spec.args, {
      env: { ...process.env, ...spec.env, [RUN_TOKEN_VAR]: token },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
  } catch (err) {
    // Arguments Node refuses outright (a NUL byte in the path, say) throw instead of emitting
    // 'error'; callers get the same kind of result as for any other spawn failure.
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

    child.on('error', (err) => finish(null, null, err));
    child.on('exit', (code, signal) => {
      exit = { code, signal };
      if (pid !== undefined) untrackSpawned(pid);
      tree?.leaderExited();
      // The program is done; what it left in the background (a daemon it started) is allowed
      // to stay, unless a kill is already under way.
      clock.clearTimer(timeoutTimer);
      drainTimer = setTimeout(() => finishAfterKill(code, signal), DRAIN_MS);
    });
    child.on('close', () => {
      if (exit !== undefined) finishAfterKill(exit.code, exit.signal);
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
