// Worker-thread side of ConfigLoader (src/config/off-thread.ts): parsing and validating a large
// file takes hundreds of milliseconds of CPU, which on the main thread would delay every
// group's advertisement. The thread keeps what the last load parsed, so that a reload parses
// only the parts of the file that changed (src/config/incremental.ts).
import { parentPort } from 'node:worker_threads';
import { IncrementalLoader } from './incremental';
import { systemHostInfo } from './host';

const loader = new IncrementalLoader();

parentPort?.on('message', (msg: { id: number; file: string }) => {
  const result = loader.load(msg.file, systemHostInfo());
  parentPort?.postMessage({ id: msg.id, result, stats: loader.last, cached: loader.cached });
});
