// Worker-thread side of loadConfigOffThread(): parsing and validating a large file takes tens
// of milliseconds of CPU, which on the main thread would delay every group's advertisement.
import { parentPort } from 'node:worker_threads';
import { loadConfig } from './load';
import { systemHostInfo } from './host';

parentPort?.on('message', (msg: { id: number; file: string }) => {
  parentPort?.postMessage({ id: msg.id, result: loadConfig(msg.file, systemHostInfo()) });
});
