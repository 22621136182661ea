// Shared by the fault suite (test/integration/fault-*.test.ts). The project's promise is that
// every virtual address is on exactly one host, the master; these helpers run one daemon per
// host, read who holds what from every host's kernel (not from our own status), time how long
// until that holds again, parse the daemons' transition lines, and do faults to interfaces.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { Lab, Host, SUBNETS, ip, waitFor } from './netns';
import { OUR_UCARP } from './carp-proc';
import { SupervisorProc, TestGroup, configYaml, writeByRename } from './supervisor-proc';
import type { GroupStatusJson, StatusDocument } from '../../src/control/protocol';

export const OUR_UCARPCTL = path.join(path.dirname(OUR_UCARP), 'ucarpctl');

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

export function run(cmd: string, args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(cmd, args, { maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** One host's daemon: its file, its socket (and so its address record), its process. */
export class Node {
  readonly dir: string;
  readonly file: string;
  readonly socket: string;
  proc!: SupervisorProc;

  constructor(
    readonly lab: Lab,
    readonly host: Host,
    root: string,
    public groups: TestGroup[],
    /** Top-level YAML added to the file (e.g. `trackers:`). */
    public top = '',
  ) {
    this.dir = path.join(root, `h${host.index}`);
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o755 });
    this.file = path.join(this.dir, 'ucarp.yaml');
    this.socket = path.join(this.dir, 'run', 'control.sock');
    this.write();
  }

  /** The file's text for `groups` (default: the current ones). */
  config(groups: TestGroup[] = this.groups): string {
    return configYaml(groups, { socket: this.socket, extraTop: this.top || undefined });
  }

  write(groups: TestGroup[] = this.groups): void {
    this.groups = groups;
    writeByRename(this.file, this.config(groups));
  }

  start(): SupervisorProc {
    this.proc = new SupervisorProc(this.lab, this.host, this.file);
    return this.proc;
  }

  async stop(): Promise<void> {
    if (!this.proc || this.proc.exited) return;
    this.proc.signal('SIGTERM');
    await this.proc.exit();
  }

  ctl(...args: string[]): Promise<Run> {
    return run('ip', [
      'netns',
      'exec',
      this.host.ns,
      process.execPath,
      OUR_UCARPCTL,
      '--socket',
      this.socket,
      ...args,
    ]);
  }

  async status(): Promise<StatusDocument> {
    const r = await this.ctl('status', '--json');
    if (r.code !== 0) throw new Error(`ucarpctl status on ${this.host.ns}: ${r.stderr}`);
    return JSON.parse(r.stdout) as StatusDocument;
  }

  async group(name: string): Promise<GroupStatusJson> {
    const g = (await this.status()).groups.find((x) => x.name === name);
    if (!g) throw new Error(`no group ${name} on ${this.host.ns}`);
    return g;
  }

  async waitState(name: string, state: string, timeoutMs = 15_000): Promise<GroupStatusJson> {
    let last: GroupStatusJson | undefined;
    await waitFor(
      async () => {
        // The daemon may still be starting (no socket yet): keep polling.
        last = await this.group(name).catch(() => undefined);
        return last?.state === state;
      },
      timeoutMs,
      `${name} on ${this.host.ns} to be ${state} (last: ${JSON.stringify(last)})`,
      100,
    );
    return last as GroupStatusJson;
  }

  /** Waits until every named group is in its state; on timeout says what the daemon logged. */
  async waitAll(states: Record<string, string>, timeoutMs = 15_000): Promise<void> {
    try {
      await waitFor(
        async () => {
          for (const [name, state] of Object.entries(states)) if (!(await this.is(name, state))) return false;
          return true;
        },
        timeoutMs,
        `${JSON.stringify(states)} on ${this.host.ns}`,
        100,
      );
    } catch (e) {
      const tail = this.proc ? this.proc.lines.slice(-25).join('\n') : '(not started)';
      throw new Error(`${(e as Error).message}; last lines:\n${tail}`);
    }
  }

  async has(address: string): Promise<boolean> {
    return (await this.lab.addresses(this.host)).includes(address);
  }

  /** Is the group in `state` according to the daemon (not the log)? */
  async is(name: string, state: string): Promise<boolean> {
    try {
      return (await this.group(name)).state === state;
    } catch {
      return false;
    }
  }
}

/**
 * Two hosts on one segment, each with its daemon and its own directory under a fresh temp
 * dir; `after()` stops both and deletes everything.
 */
export class Pair {
  lab!: Lab;
  n1!: Node;
  n2!: Node;
  readonly root: string;

  constructor(tag: string) {
    this.root = fs.mkdtempSync(path.join(os.tmpdir(), `ucarp-${tag}-`));
  }

  /**
   * Starts both daemons. With `first`, h2 starts only once h1 has these states: under load one
   * node's start-up can lag another's by more than their advskew difference, and a group
   * without preempt then stays with whoever came first.
   */
  async start(
    g1: TestGroup[],
    g2: TestGroup[],
    first?: Record<string, string>,
    opts: { top1?: string; top2?: string; segments?: number; ipv6?: boolean } = {},
  ): Promise<void> {
    this.lab = await Lab.create({ hosts: 2, segments: opts.segments ?? 1, ipv6: opts.ipv6 });
    this.n1 = new Node(this.lab, this.lab.host(1), this.root, g1, opts.top1);
    this.n2 = new Node(this.lab, this.lab.host(2), this.root, g2, opts.top2);
    this.n1.start();
    if (first) await this.n1.waitAll(first, 20_000);
    this.n2.start();
  }

  async after(): Promise<void> {
    await this.n1?.stop().catch(() => undefined);
    await this.n2?.stop().catch(() => undefined);
    await this.lab?.destroy();
    fs.rmSync(this.root, { recursive: true, force: true });
  }
}

/** The namespaces holding `address` now. */
export async function holdersOf(lab: Lab, address: string): Promise<string[]> {
  return (await holders(lab)).get(address) ?? [];
}

/** Deletes a host's interface on segment s (its veth pair goes with it). */
export async function deleteInterface(lab: Lab, h: Host, segment = 0): Promise<void> {
  await ip('-n', h.ns, 'link', 'del', h.ifaces[segment]);
}

/** Creates the host's interface on segment s again, as Lab did: new index, same name and address. */
export async function createInterface(lab: Lab, h: Host, segment = 0, address = true): Promise<void> {
  const port = h.swPorts[segment];
  const iface = h.ifaces[segment];
  await ip('link', 'add', port, 'type', 'veth', 'peer', 'name', iface, 'netns', h.ns);
  await ip('link', 'set', port, 'netns', lab.sw);
  await ip('-n', lab.sw, 'link', 'set', port, 'master', `br${segment}`, 'up');
  if (address) await ip('-n', h.ns, 'addr', 'add', `${SUBNETS[segment]}.${h.index}/24`, 'dev', iface);
  await ip('-n', h.ns, 'link', 'set', iface, 'up');
}

export async function ifindex(h: Host, iface: string): Promise<number> {
  const out = JSON.parse(await ip('-n', h.ns, '-j', 'link', 'show', 'dev', iface)) as { ifindex: number }[];
  return out[0].ifindex;
}

export const vip = (g: TestGroup): string => g.addresses[0].split('/')[0];

/**
 * Address → namespaces holding it, from the IPv4 addresses `ip -j addr` shows on every interface
 * of every host (Lab.addresses). Hosts are read in parallel so that one poll is a near-instant
 * picture of the whole segment.
 */
export async function holders(lab: Lab, hosts: Host[] = lab.hosts): Promise<Map<string, string[]>> {
  const per = await Promise.all(
    hosts.map(async (h) => {
      const links = JSON.parse(await ip('-n', h.ns, '-j', '-4', 'addr', 'show')) as {
        addr_info?: { local: string }[];
      }[];
      return { ns: h.ns, addrs: links.flatMap((l) => (l.addr_info ?? []).map((a) => a.local)) };
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

/** Polling, rtnetlink and log latency on a loaded test machine. */
export const MARGIN_MS = 500;

/**
 * `count` groups on eth0 where h1 (advskew `skew1`) is the preferred master and h2 (`skew2`)
 * the backup; the first half preempt on h1, the second half do not.
 */
export function preemptSplit(o: {
  count: number;
  prefix: string;
  firstVhid: number;
  firstOctet: number;
  skew1: number;
  skew2: number;
}): {
  groupsFor(host: 1 | 2): TestGroup[];
  preempts(i: number): boolean;
} {
  const preempts = (i: number) => i < o.count / 2;
  return {
    preempts,
    groupsFor: (host) =>
      Array.from({ length: o.count }, (_, i) => ({
        name: `${o.prefix}${i}`,
        vhid: o.firstVhid + i,
        iface: 'eth0',
        addresses: [`192.0.2.${o.firstOctet + i}/24`],
        advskew: host === 1 ? o.skew1 : o.skew2,
        preempt: host === 1 ? preempts(i) : false,
      })),
  };
}

/** One daemon per host of `lab`, each with its own file and socket in `dir`, all started at once. */
export function startDaemons(
  lab: Lab,
  dir: string,
  groupsFor: (host: number) => TestGroup[],
): SupervisorProc[] {
  return lab.hosts.map((h) => {
    const f = path.join(dir, `h${h.index}.yaml`);
    fs.writeFileSync(f, configYaml(groupsFor(h.index), { socket: path.join(dir, `h${h.index}.sock`) }));
    return new SupervisorProc(lab, h, f);
  });
}
