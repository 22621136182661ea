// Starting one program for run-process.ts. Node's child_process.spawn forks the whole daemon
// (libuv's uv_spawn): copying the page tables of a 60-90 MB process and waiting for the exec
// took 2-4 ms, the largest part of the time from a takeover to its up-script
// (docs/performance.md, "Up-script"). The addon's posix_spawn shares the memory instead. Where it
// cannot be used (no addon, a kernel without pidfd_open) child_process.spawn does the same job.
import { spawn as nodeSpawn } from 'node:child_process';
import net from 'node:net';
import os from 'node:os';
import type { Readable } from 'node:stream';
import { InvalidArgumentError, SpawnError } from '../errors';
import { native } from '../native';

/** How a child ended: its exit status once reaped, or why it never ran. */
export interface ChildEnd {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** It never ran (only from the child_process fallback; the addon throws instead). */
  error?: Error;
}

export interface SpawnedChild {
  /** Undefined only when the fallback could not start the program (an `error` end follows). */
  readonly pid: number | undefined;
  readonly stdout: Readable;
  readonly stderr: Readable;
  /** Which way it was started: the addon's posix_spawn or child_process.spawn. */
  readonly via: 'posix_spawn' | 'child_process';
  /** Called once, after the child is reaped (or failed to start). */
  onEnd(listener: (end: ChildEnd) => void): void;
}

const SIGNAL_NAMES = new Map<number, NodeJS.Signals>(
  Object.entries(os.constants.signals).map(([name, n]) => [n, name as NodeJS.Signals]),
);

/** Errors that say posix_spawn (or its pidfd watch) is unusable here, not that the program is. */
const FALL_BACK_ON = new Set(['ENOSYS', 'EPERM', 'MODULE_NOT_FOUND']);

/** Set once posix_spawn is found unusable here: every later start goes through Node. */
let nativeUnusable = false;

/**
 * Starts `file` with `args` and exactly `env`, without a shell, in a session and process group
 * of its own (so its tree can be found and signalled as one, src/hooks/process-tree.ts), stdin
 * on /dev/null, stdout and stderr on pipes. Throws SpawnError when the program cannot run.
 */
export function spawnChild(file: string, args: readonly string[], env: NodeJS.ProcessEnv): SpawnedChild {
  const envp = envLines(env);
  // A C string ends at the first NUL: refused, as child_process.spawn refuses it.
  if ([file, ...args, ...envp].some((s) => s.includes('\0')))
    throw new InvalidArgumentError(`spawn ${file.split('\0')[0]}: arguments must not contain NUL bytes`);
  if (!nativeUnusable) {
    try {
      return viaAddon(file, args, envp);
    } catch (err) {
      // EPERM: a seccomp filter (a unit's SystemCallFilter=) may refuse what posix_spawn uses
      // but not what Node uses; a program that really is not permitted fails there too.
      const code = (err as NodeJS.ErrnoException).code;
      if (code === undefined || !FALL_BACK_ON.has(code)) throw spawnFailure(file, err);
      nativeUnusable = true;
    }
  }
  return viaChildProcess(file, args, env);
}

/** Both ways of starting a program, for tests that hold them to the same contract. */
export const SPAWNERS = {
  posix_spawn: (file: string, args: readonly string[], env: NodeJS.ProcessEnv): SpawnedChild => {
    try {
      return viaAddon(file, args, envLines(env));
    } catch (err) {
      throw spawnFailure(file, err);
    }
  },
  child_process: viaChildProcess,
} as const;

/** The addon's errno error as a SpawnError; anything else (a bug) as it was thrown. */
function spawnFailure(file: string, err: unknown): unknown {
  const code = (err as NodeJS.ErrnoException).code;
  return code === undefined ? err : new SpawnError(code, `spawn ${file} ${code}`, { cause: err });
}

function envLines(env: NodeJS.ProcessEnv): string[] {
  return Object.entries(env)
    .filter((e): e is [string, string] => e[1] !== undefined)
    .map(([k, v]) => `${k}=${v}`);
}

function viaAddon(file: string, args: readonly string[], envp: string[]): SpawnedChild {
  let listener: ((end: ChildEnd) => void) | undefined;
  let ended: ChildEnd | undefined;
  const started = native().spawn(file, [file, ...args], envp, (code, signal) => {
    ended = { code: code >= 0 ? code : null, signal: SIGNAL_NAMES.get(signal) ?? null };
    listener?.(ended);
  });
  // A pipe's read end: libuv reads it without blocking, and closes it with the socket.
  const stream = (fd: number): Readable => new net.Socket({ fd, readable: true, writable: false });
  return {
    pid: started.pid,
    stdout: stream(started.stdout),
    stderr: stream(started.stderr),
    via: 'posix_spawn',
    onEnd(l) {
      listener = l;
      if (ended) l(ended);
    },
  };
}

function viaChildProcess(file: string, args: readonly string[], env: NodeJS.ProcessEnv): SpawnedChild {
  // detached: setsid() in the child, as POSIX_SPAWN_SETSID.
  const child = nodeSpawn(file, args, { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  return {
    pid: child.pid,
    stdout: child.stdout,
    stderr: child.stderr,
    via: 'child_process',
    onEnd(l) {
      let done = false;
      const once = (end: ChildEnd): void => {
        if (done) return;
        done = true;
        l(end);
      };
      child.on('error', (error) => once({ code: null, signal: null, error }));
      child.on('exit', (code, signal) => once({ code, signal }));
    },
  };
}
