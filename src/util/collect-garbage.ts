// A full garbage collection on demand, for the two places that know a heap holds mostly
// garbage V8 will not look at for a long time: the configuration loader thread after a load
// (src/config/load-worker.ts) and the daemon after a burst of transitions
// (src/runtime/burst-collector.ts). Node gives `gc` only to a process started with
// --expose-gc, which neither the unit nor a worker thread can be; a context created after the
// flag is set has it.
import v8 from 'node:v8';
import vm from 'node:vm';

let collector: (() => void) | null | undefined;

/** The collector, or null where this Node does not give one (the heap is then left to V8). */
export function garbageCollector(): (() => void) | null {
  if (collector !== undefined) return collector;
  try {
    v8.setFlagsFromString('--expose-gc');
    const gc: unknown = vm.runInNewContext('gc');
    collector = typeof gc === 'function' ? (gc as () => void) : null;
  } catch {
    collector = null;
  }
  return collector;
}
