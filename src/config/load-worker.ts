// Worker-thread side of ConfigLoader (src/config/off-thread.ts): parsing and validating a large
// file takes hundreds of milliseconds of CPU, which on the main thread would delay every
// group's advertisement. The thread keeps what the last load parsed, so that a reload parses
// only the parts of the file that changed (src/config/incremental.ts), and sends only the
// groups that changed since the result the main thread holds.
import { setPriority } from 'node:os';
import { parentPort } from 'node:worker_threads';
import { IncrementalLoader } from './incremental';
import { systemHostInfo } from './host';
import { encodeResult, LOADER_NICE, type LoadRequest, type SentGroups } from './off-thread';
import { garbageCollector } from '../util/collect-garbage';

// Per thread on Linux: the main thread, which times every advertisement, keeps its own.
try {
  setPriority(0, LOADER_NICE);
} catch {
  // Refused (a seccomp filter): the parse only competes for the CPU as before.
}

/**
 * The thread sits idle between loads, and V8 collects an idle heap only when something
 * allocates: what a parse of the whole file of 4080 groups left (~35 MB of the old generation)
 * stayed in the daemon's memory in some runs and not in others (docs/performance.md, issue 11).
 * Only after such a parse: an incremental reload leaves little, and the collection's helper
 * threads, which do not run at the loader's nice value, would compete with the main thread
 * while it applies the reload.
 */
const collect = garbageCollector();

const loader = new IncrementalLoader();
let sent: SentGroups | undefined;

parentPort?.on('message', (msg: LoadRequest) => {
  const result = loader.load(msg.file, systemHostInfo());
  const reply = encodeResult(msg, result, sent);
  if (result.ok) sent = { seq: msg.id, groups: new Map(result.config.groups.map((g) => [g.name, g])) };
  parentPort?.postMessage({ ...reply, stats: loader.last, cached: loader.cached });
  // After the reply: the main thread is not kept waiting for it.
  if (collect !== null && loader.last?.path === 'full') setImmediate(collect);
});
