// Time as the runtime sees it: a monotonic clock in milliseconds and one-shot timers. Injected
// so that unit tests drive a group with a fake clock instead of waiting.
import { performance } from 'node:perf_hooks';

export type TimerHandle = { readonly __brand: 'TimerHandle' };

export interface Clock {
  now(): number;
  setTimer(fn: () => void, ms: number): TimerHandle;
  clearTimer(handle: TimerHandle): void;
}

export const systemClock: Clock = {
  now: () => performance.now(),
  setTimer: (fn, ms) => setTimeout(fn, ms) as unknown as TimerHandle,
  clearTimer: (h) => clearTimeout(h as unknown as NodeJS.Timeout),
};

/** Microseconds since the Unix epoch, for the counters of replay protection (docs/protocol.md §20). */
export type WallClock = () => bigint;

export const systemWallClock: WallClock = () => BigInt(Date.now()) * 1000n;
