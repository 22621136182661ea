// Loads configuration files in one worker thread, so that a load never blocks the event loop
// that times advertisements. Falls back to loading in-thread if the worker cannot run.
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { IncrementalLoader, type LoadStats } from './incremental';
import { loadConfig } from './load';
import { systemHostInfo } from './host';
import type { GroupConfig, LoadResult } from './types';

/**
 * A worker whose file is not in the shape a reload can parse in part (src/config/slices.ts)
 * holds nothing worth its heap: it is let go this long after its last load.
 */
const IDLE_MS = 10_000;

export interface LoadRequest {
  id: number;
  file: string;
  /** The id of the last successful result this side holds, which a reply may build on. */
  base?: number;
}

/** The groups of the last successful result the worker sent, by name, and its id. */
export interface SentGroups {
  seq: number;
  groups: ReadonlyMap<string, GroupConfig>;
}

/**
 * A result on its way between threads. Copying 4080 groups each way costs the main thread
 * tens of milliseconds per reload; a group that is the very object of the result the request
 * builds on travels as its name instead (`groups`), and the main thread puts its own copy of
 * that result's group back in. A group is the same object only when its slice, the defaults
 * and its resolved facts are unchanged (src/config/incremental.ts).
 */
export interface LoadReply {
  id: number;
  result: LoadResult;
  /** With `base`: the groups in order, a name standing for that group of result `base`. */
  groups?: Array<GroupConfig | string>;
  base?: number;
}

/**
 * The thread stays for the daemon's life. With V8's default young generation its heap kept
 * ~100 MB of RSS after parsing 4080 groups whole; with a small one it returns to ~25 MB within
 * seconds (docs/performance.md, "Reload CPU and load time by size").
 */
const WORKER_LIMITS = { maxYoungGenerationSizeMb: 4 };

/**
 * The loader thread's nice value. On a small machine a reload's parse competes for a core with
 * the main thread, which times every advertisement: at 4080 groups on two cores an existing
 * group's advertisement came 27 ms late in most reloads, and on time with the loader at nice 10
 * (docs/performance.md, "Reload gap at 4080"). Raising one's own nice value needs no privilege.
 */
export const LOADER_NICE = 10;

interface WorkerReply extends LoadReply {
  stats: LoadStats;
  /** The worker keeps slices for the next load. */
  cached: boolean;
}

/** The reply to `request`: only changes when the requester holds the result `sent`. */
export function encodeResult(
  request: LoadRequest,
  result: LoadResult,
  sent: SentGroups | undefined,
): LoadReply {
  if (!result.ok || sent === undefined || request.base !== sent.seq) return { id: request.id, result };
  const groups = result.config.groups.map((g) => (sent.groups.get(g.name) === g ? g.name : g));
  return {
    id: request.id,
    result: { ...result, config: { ...result.config, groups: [] } },
    groups,
    base: sent.seq,
  };
}

/** The result a reply stands for, given the groups of result `held` (the reply's base). */
export function decodeResult(reply: LoadReply, held: SentGroups | undefined): LoadResult | undefined {
  if (reply.groups === undefined || !reply.result.ok) return reply.result;
  if (held === undefined || held.seq !== reply.base) return undefined;
  const groups: GroupConfig[] = [];
  for (const g of reply.groups) {
    const group = typeof g === 'string' ? held.groups.get(g) : g;
    if (group === undefined) return undefined;
    groups.push(group);
  }
  return { ...reply.result, config: { ...reply.result.config, groups } };
}

export class ConfigLoader {
  private worker: Worker | undefined;
  private idle: NodeJS.Timeout | undefined;
  private seq = 0;
  private readonly waiting = new Map<number, { file: string; resolve: (r: LoadResult) => void }>();
  /** Used when no worker can be started: the slices live in this thread then. */
  private inThread: IncrementalLoader | undefined;
  /** Whether the worker keeps slices of the file: then it stays, reloads parse only changes. */
  private cached = false;
  /** How the last load was done; for tests and the bench. */
  last: LoadStats | undefined;
  /** The groups of the last successful result from the worker, which its replies build on. */
  private held: SentGroups | undefined;

  load(file: string): Promise<LoadResult> {
    const w = this.ensureWorker();
    if (!w) {
      this.inThread ??= new IncrementalLoader();
      const result = this.inThread.load(file, systemHostInfo());
      this.last = this.inThread.last;
      return Promise.resolve(result);
    }
    const id = ++this.seq;
    if (this.idle) clearTimeout(this.idle);
    return new Promise<LoadResult>((resolve) => {
      this.waiting.set(id, { file, resolve });
      const request: LoadRequest = { id, file, base: this.held?.seq };
      w.postMessage(request);
    }).finally(() => {
      if (this.waiting.size > 0 || this.cached) return;
      this.idle = setTimeout(() => void this.close(), IDLE_MS);
      this.idle.unref();
    });
  }

  close(): Promise<number> | undefined {
    if (this.idle) clearTimeout(this.idle);
    const w = this.worker;
    this.worker = undefined;
    this.cached = false;
    return w?.terminate();
  }

  private ensureWorker(): Worker | undefined {
    if (this.worker) return this.worker;
    try {
      const w = new Worker(path.join(__dirname, 'load-worker.js'), { resourceLimits: WORKER_LIMITS });
      // An idle loader must not keep the daemon alive on its own.
      w.unref();
      w.on('message', (m: WorkerReply) => {
        this.cached = m.cached;
        this.last = m.stats;
        // Replies come in the order of the requests, and the worker builds on a result only
        // when it sent nothing since: the base is the result held here. Were it not, the file
        // is loaded here instead, which is slower but right.
        const file = this.waiting.get(m.id)?.file ?? '';
        const result = decodeResult(m, this.held) ?? loadConfig(file, systemHostInfo());
        if (result.ok)
          this.held = { seq: m.id, groups: new Map(result.config.groups.map((g) => [g.name, g])) };
        this.waiting.get(m.id)?.resolve(result);
        this.waiting.delete(m.id);
      });
      // A worker let go by close() exits too: only the current one's death is a failure.
      w.on('error', () => this.worker === w && this.fail());
      w.on('exit', () => this.worker === w && this.fail());
      this.worker = w;
      return w;
    } catch {
      return undefined;
    }
  }

  /** The worker died: answer everything it owed in-thread, start a new one next time. */
  private fail(): void {
    this.worker = undefined;
    this.cached = false;
    for (const [id, { file, resolve }] of this.waiting) {
      this.waiting.delete(id);
      const error = {
        file,
        line: 0,
        column: 0,
        path: '',
        message: 'the configuration loader thread crashed',
      };
      resolve({ ok: false, errors: [error], warnings: [] });
    }
  }
}
