// Shared by the fault suite (test/integration/fault-*.test.ts). The project's promise is that
// every virtual address is on exactly one host, the master; these helpers read who holds what
// from every host's kernel (not from our own status), time how long until that holds again,
// and parse the daemons' transition lines with their timestamps.
import assert from 'node:assert/strict';
import { Lab, Host } from './netns';
import { SupervisorProc, TestGroup } from './supervisor-proc';

export const vip = (g: TestGroup): string => g.addresses[0].split('/')[0];

/**
 * Address → namespaces holding it, from the IPv4 addresses `ip -j addr` shows on every interface
 * of every host (Lab.addresses). Hosts are read in parallel so that one poll is a near-instant
 * picture of the whole segment.
 */
export async function holders(lab: Lab, hosts: Host[] = lab.hosts): Promise<Map<string, string[]>> {
  const per = await Promise.all(
    hosts.map(async (h) => {
      const addrs: string[] = [];
      for (const iface of h.ifaces) addrs.push(...(await lab.addresses(h, iface)));
      return { ns: h.ns, addrs };
    }),
  );
  const m = new Map<string, string[]>();
  for (const { ns, addrs } of per) for (const a of addrs) m.set(a, [...(m.get(a) ?? []), ns]);
  for (const v of m.values()) v.sort();
  return m;
}

/**
 * What differs from `expected` (address → the namespaces that must hold it, sorted); empty when
 * the kernel state is exactly as expected.
 */
export function mismatches(h: Map<string, string[]>, expected: Map<string, string[]>): string[] {
  const out: string[] = [];
  for (const [a, want] of expected) {
    const got = h.get(a) ?? [];
    if (got.join() !== [...want].sort().join())
      out.push(`${a} on [${got.join(', ')}], want [${want.join(', ')}]`);
  }
  return out;
}

/** One holder per address: address → [that host's namespace]. */
export function singleHolders(owner: Map<string, Host>): Map<string, string[]> {
  return new Map([...owner].map(([a, h]) => [a, [h.ns]]));
}

/**
 * Polls the kernel until it shows `expected`; returns the time (Date.now()) of the end of the
 * first poll that did, so a bound checked against it is never flattered by the poll.
 */
export async function reached(
  lab: Lab,
  expected: Map<string, string[]>,
  timeoutMs: number,
  what: string,
): Promise<number> {
  const end = Date.now() + timeoutMs;
  let last: string[] = [];
  for (;;) {
    last = mismatches(await holders(lab), expected);
    const now = Date.now();
    if (last.length === 0) return now;
    if (now > end)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}:\n${last.join('\n')}`);
    await sleep(10);
  }
}

/**
 * Polls the kernel until it has shown `expected` in every sample for `quietMs` in a row, and
 * returns when that final run began (the end of its first poll, so a bound checked against it
 * is never flattered by the poll), the same per address, and how many samples the run took. A
 * state that is reached, lost (a late takeover, a flap) and reached again counts from the last
 * time: the figure is how long until one holder per address for good, not a first glimpse.
 */
export async function settled(
  lab: Lab,
  expected: Map<string, string[]>,
  quietMs: number,
  timeoutMs: number,
  what: string,
): Promise<{ at: number; perAddress: Map<string, number>; samples: number }> {
  const end = Date.now() + timeoutMs;
  // Per address: end of the first poll of its current run of good samples; absent while bad.
  const since = new Map<string, number>();
  let since0: number | null = null;
  let samples = 0;
  for (;;) {
    const h = await holders(lab);
    const now = Date.now();
    for (const [a, want] of expected) {
      if (mismatches(h, new Map([[a, want]])).length > 0) since.delete(a);
      else if (!since.has(a)) since.set(a, now);
    }
    if (since.size === expected.size) {
      if (since0 === null) since0 = now;
      samples++;
      if (now - since0 >= quietMs) return { at: since0, perAddress: since, samples };
    } else {
      since0 = null;
      samples = 0;
    }
    if (now > end) {
      const last = mismatches(h, expected);
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what} for ${quietMs} ms:\n${last.join('\n')}`,
      );
    }
    await sleep(10);
  }
}

/**
 * Samples the kernel for `durationMs` and fails on the first sample that differs from
 * `expected`: "at all times", as far as a poll every few tens of ms can see. Returns the number
 * of samples taken, so a caller can show that the window was really observed.
 */
export async function holdsFor(
  lab: Lab,
  expected: Map<string, string[]>,
  durationMs: number,
  what: string,
): Promise<number> {
  const end = Date.now() + durationMs;
  let n = 0;
  while (Date.now() < end) {
    const bad = mismatches(await holders(lab), expected);
    n++;
    assert.deepEqual(bad, [], `${what} (sample ${n})`);
    await sleep(25);
  }
  return n;
}

export function assertAlive(...daemons: SupervisorProc[]): void {
  for (const d of daemons) {
    assert.equal(d.exited, false, `daemon on ${d.host.ns} exited:\n${d.lines.slice(-20).join('\n')}`);
    // exited is set from the child's exit event; signal 0 asks the kernel directly.
    assert.doesNotThrow(() => process.kill(d.child.pid ?? -1, 0), `daemon on ${d.host.ns} is gone`);
  }
}

export interface Transition {
  at: number;
  group: string;
  state: string;
  reason: string;
}

const TRANSITION = /^(\S+Z) \[\w+\] (\S+) vhid \d+ \S+: Switching to state: (\w+) \(([\w-]+)\)/;

/** The transitions a daemon logged since line `from`, with the daemon's own timestamps. */
export function transitions(d: SupervisorProc, from = 0): Transition[] {
  const out: Transition[] = [];
  for (const l of d.lines.slice(from)) {
    const m = TRANSITION.exec(l);
    if (m) out.push({ at: Date.parse(m[1]), group: m[2], state: m[3], reason: m[4] });
  }
  return out;
}

/** Dead time in ms for advbase 1 and deadratio 3, the defaults every fault test uses (docs/protocol.md §8). */
export const deadTimeMs = (advskew: number): number => 3000 + (advskew * 1000) / 256;
/** Advertisement interval in ms for advbase 1 (docs/protocol.md §8). */
export const intervalMs = (advskew: number): number => 1000 + (advskew * 1000) / 256;

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
