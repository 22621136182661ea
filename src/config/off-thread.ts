// Loads configuration files in one long-lived worker thread, so that a reload never blocks
// the event loop that times advertisements. Falls back to loading in-thread if the worker
// cannot run.
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { loadConfig } from './load';
import { systemHostInfo } from './host';
import type { LoadResult } from './types';

/**
 * The worker's own heap costs tens of MB; reloads come in bursts, so it is kept for a while
 * after the last one and then let go.
 */
const IDLE_MS = 10_000;

export class ConfigLoader {
  private worker: Worker | undefined;
  private idle: NodeJS.Timeout | undefined;
  private seq = 0;
  private readonly waiting = new Map<number, { file: string; resolve: (r: LoadResult) => void }>();

  load(file: string): Promise<LoadResult> {
    const w = this.ensureWorker();
    if (!w) return Promise.resolve(loadConfig(file, systemHostInfo()));
    const id = ++this.seq;
    if (this.idle) clearTimeout(this.idle);
    return new Promise<LoadResult>((resolve) => {
      this.waiting.set(id, { file, resolve });
      w.postMessage({ id, file });
    }).finally(() => {
      if (this.waiting.size > 0) return;
      this.idle = setTimeout(() => void this.close(), IDLE_MS);
      this.idle.unref();
    });
  }

  close(): Promise<number> | undefined {
    if (this.idle) clearTimeout(this.idle);
    const w = this.worker;
    this.worker = undefined;
    return w?.terminate();
  }

  private ensureWorker(): Worker | undefined {
    if (this.worker) return this.worker;
    try {
      const w = new Worker(path.join(__dirname, 'load-worker.js'));
      // An idle loader must not keep the daemon alive on its own.
      w.unref();
      w.on('message', (m: { id: number; result: LoadResult }) => {
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
