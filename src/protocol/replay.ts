// Replay protection for one CARP group (docs/protocol.md §20). Pure: the caller passes the
// wall clock in, as microseconds since the Unix epoch.
//
// CARP's digest covers the counter but not the IP source, and no implementation checks the
// counter, so a captured advertisement replayed later is as good as a fresh one. With the
// option on, a group remembers the newest counter it accepted and the newest it sent (a fresh
// group counts its start as a send), refuses anything not newer than both, and sends counters
// taken from the wall clock but never below either: counters only grow across the cluster.

/** Counters are unsigned 64-bit on the wire (docs/protocol.md §3). */
const U64_MAX = (1n << 64n) - 1n;

export interface ReplayWindow {
  /** Newest counter accepted from a peer; null until one is. */
  readonly lastAccepted: bigint | null;
  /** Newest counter sent, or the wall clock when the group started if it has sent none. */
  readonly lastSent: bigint;
}

/**
 * A group's window when it starts: its start counts as a send, so that nothing captured before
 * it started is accepted even before it has sent or heard anything.
 */
export function startWindow(wallUs: bigint): ReplayWindow {
  return { lastAccepted: null, lastSent: clamp(wallUs) };
}

/** The newest counter this group has seen or sent; an advertisement must be above it. */
export function newest(w: ReplayWindow): bigint {
  return w.lastAccepted !== null && w.lastAccepted > w.lastSent ? w.lastAccepted : w.lastSent;
}

/** True when an authenticated advertisement with this counter must be rejected as a replay. */
export function isReplay(w: ReplayWindow, counter: bigint): boolean {
  return counter <= newest(w);
}

/** The window after accepting `counter` (which passed isReplay). */
export function accept(w: ReplayWindow, counter: bigint): ReplayWindow {
  return { lastAccepted: counter, lastSent: w.lastSent };
}

/**
 * The counter of the next advertisement: the wall clock, but above everything seen or sent, so
 * that a node whose clock is behind continues from the newest counter it heard.
 */
export function nextCounter(w: ReplayWindow, wallUs: bigint): bigint {
  const above = newest(w) + 1n;
  return clamp(wallUs > above ? wallUs : above);
}

/** The window after sending `counter`. */
export function sent(w: ReplayWindow, counter: bigint): ReplayWindow {
  return { lastAccepted: w.lastAccepted, lastSent: counter };
}

// The wall clock is about 2^50.7 µs today; only a counter pushed to the top by a peer (which
// needs the password) could reach 2^64 − 1, and then it stays there rather than wrapping to 0,
// which every peer would reject as old.
function clamp(c: bigint): bigint {
  if (c < 0n) return 0n;
  return c > U64_MAX ? U64_MAX : c;
}
