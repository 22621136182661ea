// Loads configuration files in one worker thread, so that a load never blocks the event loop
// that times advertisements. Falls back to loading in-thread if the worker cannot run.
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { IncrementalLoader, type LoadStats } from './incremental';
import { systemHostInfo } from './host';
import type { LoadResult } from './types';

/**
 * A worker whose file is not in the shape a reload can parse in part (src/config/slices.ts)
 * holds nothing worth its heap: it is let go this long after its last load.
 */
const IDLE_MS = 10_000;

interface WorkerReply {
  id: number;
  result: LoadResult;
  stats: LoadStats;
  /** The worker keeps slices for the next load. */
  cached: boolean;
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
      w.postMessage({ id, file });
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
      const w = new Worker(path.join(__dirname, 'load-worker.js'));
      // An idle loader must not keep the daemon alive on its own.
      w.unref();
      w.on('message', (m: WorkerReply) => {
        this.cached = m.cached;
        this.last = m.stats;
        this.waiting.get(m.id)?.resolve(m.result);
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
