// Pieces shared by bench/scale and bench/reload: the group layouts (255 groups on one
// interface, or thousands over several interfaces and multicast groups), extra L2 segments
// for a Lab, CPU and memory of a set of processes read from /proc, timestamped log lines and
// address events, and per-vhid advertisement gaps from an observer's capture.
import fs from 'node:fs';
import os from 'node:os';
import { execFileSync, type ChildProcess } from 'node:child_process';
import { ip, IPV6_SUBNETS, SUBNETS, type Lab, type Host } from '../test/helpers/netns';
import type { TestGroup } from '../test/helpers/supervisor-proc';
import { CARP6_MULTICAST, CARP_MULTICAST } from '../src/config/settings';
import { epochNow, sleep, type CarpPacket } from './common';

/** Every vhid CARP has on one (interface, multicast group). */
export const MAX_VHID = 255;

/**
 * The virtual address of a vhid, as a /32 on the 192.0.2.0/24 segment: 255 of them plus the
 * hosts' own addresses do not fit one /24, and a /32 needs no matching subnet.
 * vhids 1..128 map to 198.51.100.1..128, vhids 129..255 to 203.0.113.1..127.
 */
export function vipFor(vhid: number): string {
  if (!Number.isInteger(vhid) || vhid < 1 || vhid > MAX_VHID) throw new Error(`vhid ${vhid} out of range`);
  return vhid <= 128 ? `198.51.100.${vhid}` : `203.0.113.${vhid - 128}`;
}

export function groupName(vhid: number): string {
  return `g${vhid}`;
}

/** One group per vhid on `iface`, each holding its own /32. */
export function scaleGroups(vhids: Iterable<number>, advskew: number, iface = 'eth0'): TestGroup[] {
  return [...vhids].map((vhid) => ({
    name: groupName(vhid),
    vhid,
    iface,
    addresses: [`${vipFor(vhid)}/32`],
    advskew,
  }));
}

export function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

/**
 * Most (interface, multicast group) pairs a layout may use: each pair's VIPs are one /24 of
 * 198.18.0.0/16 (`layoutVip`), and the last /24 is kept for the group a reload adds.
 */
export const MAX_SLOTS = 255;
/** Most L2 segments: own addresses of segments past the Lab's three are 198.19.<s>.0/24. */
export const MAX_SEGMENTS = 64;

export type Family = 4 | 6;

/** The multicast destination of a layout's m-th group of vhids: CARP's (and VRRP's) own first. */
export function mcastAddress(m: number, family: Family = 4): string {
  if (family === 6) return m === 0 ? CARP6_MULTICAST : `ff02::12:${m.toString(16)}`;
  return m === 0 ? CARP_MULTICAST : `239.255.0.${m}`;
}

/** The prefix length of one virtual address: a host route of its family. */
export function vipPrefix(vip: string): string {
  return `${vip}/${vip.includes(':') ? 128 : 32}`;
}

/** One group of a layout: where it lives on the wire and the /32 it holds. */
export interface LayoutGroup {
  /** 1-based position in the layout; the group is named `g<index>`. */
  index: number;
  name: string;
  vhid: number;
  /** Index of the interface (eth<k>) and of the multicast destination (`mcastAddress`). */
  iface: number;
  mcast: number;
  vip: string;
}

/**
 * The virtual address of a vhid in slot s (one (interface, multicast group) pair):
 * 198.18.<s>.<vhid>, a /32 that needs no matching subnet on any interface; for IPv6
 * 2001:db8:1<s>::<vhid> (hexadecimal, in the compressed form `ip monitor` prints), a /128 off
 * the Lab's per-segment /64s.
 */
export function layoutVip(slot: number, vhid: number, family: Family = 4): string {
  if (!Number.isInteger(slot) || slot < 0 || slot > MAX_SLOTS) throw new Error(`slot ${slot} out of range`);
  if (!Number.isInteger(vhid) || vhid < 1 || vhid > MAX_VHID) throw new Error(`vhid ${vhid} out of range`);
  return family === 6
    ? `2001:db8:${(0x100 + slot).toString(16)}::${vhid.toString(16)}`
    : `198.18.${slot}.${vhid}`;
}

/**
 * `n` groups spread round-robin over `interfaces` × `mcastGroups` slots, vhids 1..255 in each:
 * 4080 groups on 16 interfaces fill every vhid of every interface, and a small n still puts
 * groups on every interface and destination. Slot s is interface s mod K, destination s div K.
 */
export function scaleLayout(
  n: number,
  interfaces: number,
  mcastGroups: number,
  family: Family = 4,
): LayoutGroup[] {
  const slots = interfaces * mcastGroups;
  if (!Number.isInteger(interfaces) || interfaces < 1 || interfaces > MAX_SEGMENTS)
    throw new Error(`--interfaces must be 1..${MAX_SEGMENTS}`);
  if (!Number.isInteger(mcastGroups) || mcastGroups < 1) throw new Error('--mcast-groups must be at least 1');
  if (slots > MAX_SLOTS) throw new Error(`interfaces x multicast groups must be at most ${MAX_SLOTS}`);
  if (!Number.isInteger(n) || n < 1 || n > slots * MAX_VHID)
    throw new Error(
      `${n} groups do not fit ${interfaces} interface(s) x ${mcastGroups} multicast group(s) x 255 vhids`,
    );
  return Array.from({ length: n }, (_, i) => {
    const slot = i % slots;
    const vhid = Math.floor(i / slots) + 1;
    return {
      index: i + 1,
      name: `g${i + 1}`,
      vhid,
      iface: slot % interfaces,
      mcast: Math.floor(slot / interfaces),
      vip: layoutVip(slot, vhid, family),
    };
  });
}

/** The host's own address on segment s: the Lab's subnets first, then 198.19.<s>.0/24. */
function segmentAddress(segment: number, hostIndex: number): string {
  return segment < SUBNETS.length ? `${SUBNETS[segment]}.${hostIndex}` : `198.19.${segment}.${hostIndex}`;
}

/** The host's own IPv6 address on segment s, continuing the Lab's 2001:db8:<s+1>::/64s. */
function segmentAddress6(segment: number, hostIndex: number): string {
  return segment < IPV6_SUBNETS.length
    ? `${IPV6_SUBNETS[segment]}${hostIndex}`
    : `2001:db8:${(segment + 1).toString(16)}::${hostIndex}`;
}

/**
 * Grows a Lab (created with min(k, 3) segments) to k segments, each its own bridge in the
 * switch namespace, every host getting eth<s>. The veth pairs are made inside the switch
 * namespace, so deleting the Lab's namespaces removes them too.
 */
export async function addSegments(lab: Lab, segments: number, ipv6 = false): Promise<void> {
  if (segments > MAX_SEGMENTS) throw new Error(`at most ${MAX_SEGMENTS} segments`);
  for (let s = lab.hosts[0]?.ifaces.length ?? 0; s < segments; s++) {
    // As the Lab's own IPv6 bridges: without an MLD querier, snooping would only add a variable.
    const snoop = ipv6 ? ['mcast_snooping', '0'] : [];
    await ip('-n', lab.sw, 'link', 'add', `br${s}`, 'type', 'bridge', 'forward_delay', '0', ...snoop);
    await ip('-n', lab.sw, 'link', 'set', `br${s}`, 'up');
    for (const host of lab.hosts) {
      const port = `${lab.prefix}h${host.index}s${s}`;
      const iface = `eth${s}`;
      await ip('-n', lab.sw, 'link', 'add', port, 'type', 'veth', 'peer', 'name', iface, 'netns', host.ns);
      await ip('-n', lab.sw, 'link', 'set', port, 'master', `br${s}`, 'up');
      const addr = segmentAddress(s, host.index);
      await ip('-n', host.ns, 'addr', 'add', `${addr}/24`, 'dev', iface);
      if (ipv6) {
        // The Lab turned duplicate address detection off for interfaces made later (`default`).
        const addr6 = segmentAddress6(s, host.index);
        await ip('-n', host.ns, 'addr', 'add', `${addr6}/64`, 'dev', iface);
        host.ips6.push(addr6);
      }
      await ip('-n', host.ns, 'link', 'set', iface, 'up');
      host.ifaces.push(iface);
      host.ips.push(addr);
      host.swPorts.push(port);
    }
  }
}

/** The parent of a process, or 0 once it is gone. */
function parentOf(pid: number): number {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return 0;
  }
}

/**
 * A process and every descendant of it living in namespace `ns` now: what an implementation
 * costs includes any helper process it starts (a keepalived VRRP child, a spawner).
 */
export function processTree(ns: string, root: number): number[] {
  const inside = pidsIn(ns);
  const parents = new Map(inside.map((pid) => [pid, parentOf(pid)]));
  const within = (pid: number): boolean => {
    for (let p = pid, hops = 0; p > 1 && hops < 64; p = parents.get(p) ?? parentOf(p), hops++)
      if (p === root) return true;
    return false;
  };
  return [root, ...inside.filter((pid) => pid !== root && within(pid))];
}

/** Every process inside a network namespace, e.g. a daemon and the children it forked. */
export function pidsIn(ns: string): number[] {
  const out = execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' });
  return out
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map(Number);
}

/** Clock ticks per second of utime and stime: one tick is the resolution of a CPU reading. */
export const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

/** CPU seconds a process spent in user space and in the kernel. */
export interface CpuTimes {
  user: number;
  system: number;
}

/**
 * CPU time of a process, including its reaped children (an up-script's fork counts against
 * the daemon that ran it). Fields are counted after the command name, which may hold spaces.
 */
export function cpuTimes(pid: number): CpuTimes {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // f[0] is field 3 (state): utime, stime, cutime, cstime are fields 14..17.
  return {
    user: (Number(f[11]) + Number(f[13])) / CLK_TCK,
    system: (Number(f[12]) + Number(f[14])) / CLK_TCK,
  };
}

/** The command name of a process (`comm`), e.g. to check that `ip netns exec` has exec'ed. */
export function commOf(pid: number): string {
  return fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
}

export interface Memory {
  /** Resident set (VmRSS), KiB. */
  rssKb: number;
  /** Peak resident set (VmHWM), KiB. */
  hwmKb: number;
  /** Proportional set size (shared pages divided among their users), KiB. */
  pssKb: number;
}

function kbField(text: string, name: string): number {
  const m = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text);
  if (!m) throw new Error(`no ${name} in /proc`);
  return Number(m[1]);
}

export function memoryOf(pid: number): Memory {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const rollup = fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  return { rssKb: kbField(status, 'VmRSS'), hwmKb: kbField(status, 'VmHWM'), pssKb: kbField(rollup, 'Pss') };
}

/** Summed over processes: what a set of ucarp processes costs together. */
export function totalMemory(pids: readonly number[]): Memory {
  const total: Memory = { rssKb: 0, hwmKb: 0, pssKb: 0 };
  for (const pid of pids) {
    const m = memoryOf(pid);
    total.rssKb += m.rssKb;
    total.hwmKb += m.hwmKb;
    total.pssKb += m.pssKb;
  }
  return total;
}

/** CPU use of a set of processes from construction to `percent()`, in % of one core. */
/**
 * Nanoseconds on a CPU of every thread of `pid` (`/proc/PID/task/TID/schedstat`, first field):
 * utime and stime count 10 ms ticks, too coarse for a daemon using 0.2 % of a core (6 ticks in
 * 30 s); the scheduler's own account has nanoseconds. A thread that ends is no longer listed.
 */
export function runNanoseconds(pid: number): number {
  let sum = 0;
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    try {
      sum += Number(fs.readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      /* the thread ended meanwhile */
    }
  }
  return sum;
}

export class CpuWindow {
  private readonly cpu0: CpuTimes;
  private readonly run0: number;
  private readonly t0 = performance.now();

  constructor(private readonly pids: readonly number[]) {
    this.cpu0 = this.total();
    this.run0 = this.runTotal();
  }

  private runTotal(): number {
    return this.pids.reduce((sum, pid) => sum + runNanoseconds(pid), 0);
  }

  private total(): CpuTimes {
    const sum: CpuTimes = { user: 0, system: 0 };
    for (const pid of this.pids) {
      const t = cpuTimes(pid);
      sum.user += t.user;
      sum.system += t.system;
    }
    return sum;
  }

  /** CPU seconds of the processes up to construction (for a process started then, its start-up). */
  startSeconds(): number {
    return this.cpu0.user + this.cpu0.system;
  }

  /**
   * Since construction: the total from the scheduler's nanoseconds, and the user-space and kernel
   * shares from the (coarser) clock ticks.
   */
  percent(): { total: number; user: number; system: number } {
    const wall = (performance.now() - this.t0) / 1000;
    const now = this.total();
    const user = ((now.user - this.cpu0.user) / wall) * 100;
    const system = ((now.system - this.cpu0.system) / wall) * 100;
    const total = ((this.runTotal() - this.run0) / 1e9 / wall) * 100;
    return { total, user, system };
  }
}

/** The pid of a child started with `ip netns exec`, once it has exec'ed into `comm`. */
export async function execedPid(child: ChildProcess, comm: string, timeoutMs = 5000): Promise<number> {
  const pid = child.pid;
  if (pid === undefined) throw new Error('child has no pid');
  const end = Date.now() + timeoutMs;
  while (commOf(pid) !== comm) {
    if (Date.now() > end) throw new Error(`pid ${pid} is ${commOf(pid)}, expected ${comm}`);
    await sleep(20);
  }
  return pid;
}

/** A log line and the wall-clock time (epoch seconds) at which it reached us. */
export interface TimedLine {
  t: number;
  line: string;
}

/**
 * Timestamps every line a child writes to stdout or stderr as it arrives. A second listener
 * next to SupervisorProc's own, which keeps lines but not their times.
 */
export class LineClock {
  readonly lines: TimedLine[] = [];
  private readonly bufs = new Map<NodeJS.ReadableStream, string>();

  constructor(child: ChildProcess) {
    for (const stream of [child.stdout, child.stderr]) {
      if (!stream) continue;
      this.bufs.set(stream, '');
      stream.on('data', (d: Buffer) => {
        const t = epochNow();
        let buf = (this.bufs.get(stream) ?? '') + d.toString();
        let i: number;
        while ((i = buf.indexOf('\n')) >= 0) {
          this.lines.push({ t, line: buf.slice(0, i) });
          buf = buf.slice(i + 1);
        }
        this.bufs.set(stream, buf);
      });
    }
  }

  /** The first line at index ≥ `from` matching `re`, waiting up to `timeoutMs`. */
  async next(re: RegExp, from: number, timeoutMs: number): Promise<TimedLine> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      for (let i = from; i < this.lines.length; i++) if (re.test(this.lines[i].line)) return this.lines[i];
      if (Date.now() > end) throw new Error(`no log line matching ${re} within ${timeoutMs} ms`);
      await sleep(10);
    }
  }
}

const TRANSITION = /(?:^|\s)(\S+) vhid (\d+) \S+: Switching to state: (\w+)/;

export interface Transition {
  group: string;
  vhid: number;
  state: string;
}

export function parseTransition(line: string): Transition | null {
  const m = TRANSITION.exec(line);
  return m ? { group: m[1], vhid: Number(m[2]), state: m[3] } : null;
}

/** The last logged state of every group, in one pass over a daemon's lines. */
export function groupStates(lines: readonly string[]): Map<string, string> {
  const states = new Map<string, string>();
  for (const l of lines) {
    const tr = parseTransition(l);
    if (tr) states.set(tr.group, tr.state);
  }
  return states;
}

/** An address appearing on or leaving an interface, as `ip -ts -o monitor address` reports it. */
export interface AddrEvent {
  /** When `ip` received the netlink notification, epoch seconds. */
  t: number;
  iface: string;
  address: string;
  deleted: boolean;
}

const MONITOR_LINE =
  /^\[(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(\.\d+)?\] (Deleted )?\d+: (\S+)\s+inet6? ([0-9a-f.:]+)\//;

/**
 * Parses e.g. `[2026-11-25T19:05:34.852508] 1: lo    inet 198.51.100.7/32 scope global lo\ …`.
 * The timestamp is local time with microseconds, which Date.parse would round to milliseconds.
 */
export function parseMonitorLine(line: string): AddrEvent | null {
  const m = MONITOR_LINE.exec(line);
  if (!m) return null;
  const [y, mo, d, h, mi, s] = m.slice(1, 7).map(Number);
  const whole = new Date(y, mo - 1, d, h, mi, s).getTime() / 1000;
  return { t: whole + Number(m[7] ?? 0), iface: m[9], address: m[10], deleted: m[8] !== undefined };
}

/** IPv4 and IPv6 address events inside a Lab host, timestamped by `ip` itself. */
export class AddressMonitor {
  readonly events: AddrEvent[] = [];
  private readonly child: ChildProcess;
  private buf = '';

  constructor(
    private readonly lab: Lab,
    private readonly host: Host,
  ) {
    this.child = lab.spawn(host, 'ip', ['-ts', '-o', 'monitor', 'address']);
    this.child.stdout?.on('data', (d: Buffer) => {
      this.buf += d.toString();
      let i: number;
      while ((i = this.buf.indexOf('\n')) >= 0) {
        const e = parseMonitorLine(this.buf.slice(0, i));
        this.buf = this.buf.slice(i + 1);
        if (e) this.events.push(e);
      }
    });
  }

  /**
   * `ip monitor` prints nothing when it starts listening: add and remove a probe address on
   * the host's loopback until the monitor reports it.
   */
  async ready(probe = '203.0.113.254', timeoutMs = 5000): Promise<void> {
    const end = Date.now() + timeoutMs;
    const seen = () => this.events.some((e) => e.address === probe && !e.deleted);
    while (!seen()) {
      if (this.child.exitCode !== null || Date.now() > end) throw new Error('ip monitor did not start');
      await this.lab.exec(this.host, 'ip', ['addr', 'replace', `${probe}/32`, 'dev', 'lo']);
      await this.lab.exec(this.host, 'ip', ['addr', 'del', `${probe}/32`, 'dev', 'lo']);
      await sleep(50);
    }
  }

  /** When each address in `addresses` first appeared after `since` (epoch seconds). */
  firstAdded(addresses: Iterable<string>, since: number): Map<string, number> {
    const wanted = new Set(addresses);
    const out = new Map<string, number>();
    for (const e of this.events) {
      if (!e.deleted && e.t >= since && wanted.has(e.address) && !out.has(e.address)) out.set(e.address, e.t);
    }
    return out;
  }

  stop(): void {
    this.child.kill('SIGTERM');
  }
}

/** The largest interval between two consecutive advertisements of one vhid, and where. */
export interface Gap {
  vhid: number;
  seconds: number;
  /** Epoch time of the advertisement that ended the gap. */
  at: number;
}

/**
 * Per vhid, the largest gap between consecutive non-bow-out advertisements from `src` whose
 * capture time lies in [from, to]. Gaps at the window's edges are not counted: the window
 * starts and ends with an advertisement of each vhid.
 */
export function largestGaps(
  packets: readonly CarpPacket[],
  src: string,
  vhids: ReadonlySet<number>,
  from: number,
  to: number,
): Map<number, Gap> {
  const last = new Map<number, number>();
  const gaps = new Map<number, Gap>();
  for (const p of packets) {
    if (p.src !== src || !vhids.has(p.vhid) || p.t < from || p.t > to) continue;
    if (p.advbase === 255 && p.advskew === 255) continue;
    const prev = last.get(p.vhid);
    if (prev !== undefined) {
      const seconds = p.t - prev;
      const g = gaps.get(p.vhid);
      if (!g || seconds > g.seconds) gaps.set(p.vhid, { vhid: p.vhid, seconds, at: p.t });
    }
    last.set(p.vhid, p.t);
  }
  return gaps;
}

/** The single largest of `largestGaps`' results. */
export function worstGap(gaps: ReadonlyMap<number, Gap>): Gap | undefined {
  let worst: Gap | undefined;
  for (const g of gaps.values()) if (!worst || g.seconds > worst.seconds) worst = g;
  return worst;
}

/** The 1-minute load average, as uptime(1) shows it. */
export function loadavg(): string {
  return os.loadavg()[0].toFixed(2);
}

export function mb(kb: number): string {
  return (kb / 1024).toFixed(1);
}
