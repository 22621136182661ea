// Scale benchmark (not a test): N groups (one /32 each) spread over K interfaces (each its own
// bridge) and M multicast destinations, host A master of all, host B backup of all, run for
// each implementation in turn in the same invocation: ours, keepalived 2.2.7 (VRRPv2, one
// vrrp_instance per group) and, for up to 255 groups, Debian's ucarp 1.5.2. Per run: start-up
// (spawn -> every group running, and -> every group in its role), CPU % of one core of every
// process of the implementation on each host over the steady window, PSS and RSS at its end,
// the largest advertisement gap seen by tcpdump -tt on a third host, for ours the cost of a
// reload that adds one group, and a mass failover: SIGKILL of everything on A, then per group
// the time from A's last advertisement to the address on B (`ip -ts monitor address`) minus
// the protocol bound. Prints one table per size with every implementation side by side.
// --protocol vrrp3 runs our groups as VRRPv3 (priority 200 on A, 100 on B) and keepalived as
// VRRPv3 too; --family 6 gives every group an IPv6 address (keepalived VRRPv3, native_ipv6).
// Usage: node dist/bench/scale.js [--groups 255[,1020,...]] [--interfaces K] [--mcast-groups M]
//        [--impl all|ours|keepalived|ucarp[,...]] [--protocol carp|vrrp3] [--family 4|6]
//        [--steady SECONDS] [--reload 1|0] [--csv FILE]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Lab, waitFor, type Host } from '../test/helpers/netns';
import { writeByRename } from '../test/helpers/supervisor-proc';
import {
  Capture,
  epochNow,
  formatTable,
  isBowOut,
  ms,
  parseOptions,
  sleep,
  summarize,
  type CarpPacket,
} from './common';
import {
  AddressMonitor,
  CpuWindow,
  LineClock,
  MAX_SLOTS,
  MAX_VHID,
  addSegments,
  cpuTimes,
  layoutVip,
  loadavg,
  mb,
  mcastAddress,
  scaleLayout,
  totalMemory,
  type LayoutGroup,
  type Memory,
} from './scale-lib';
import {
  ADVBASE,
  DEADRATIO,
  IMPLS,
  OurFleet,
  roleSettings,
  speaksVrrp,
  startFleet,
  type Flavor,
  type Fleet,
  type Impl,
  type Protocol,
} from './scale-fleets';

const TARGETS = {
  /** ≤ 255 groups: % of one core on each host, absolute. */
  cpuSmallPercent: 0.5,
  pssSmallMb: 80,
  pssLargeMb: 150,
  /** Every address on B by the bound plus this. */
  lateMaxMs: 250,
  lateMedianMs: 100,
  startupMs: 2000,
  reloadCpuMs: 200,
  reloadGapMs: ADVBASE * 1000 + 20,
};
/**
 * How long after both sides are in their roles the steady window starts. A JIT runtime spends
 * its first seconds compiling and collecting start-up garbage (on our backup at 255 groups
 * ≈ 1.8 % of a core 5–10 s after start, ≈ 0.2 % from 15 s on), and V8's memory reducer then
 * compacts each heap (the daemon's and its configuration loader's) three times, once, 8–25 s
 * after start (docs/performance.md, "Start-up garbage"): start-up, not steady state. The window
 * starts after it, and all of that is reported on its own row ("CPU spawn -> steady window").
 */
const SETTLE_MS = 30_000;
/** Capture window, after the CPU window, for the advertisement-gap check. */
const GAP_WINDOW_MS = 10_000;
/** How long after a reload's summary line its CPU is still counted (address, socket, timers). */
const RELOAD_TAIL_MS = 500;

interface Size {
  groups: number;
  interfaces: number;
  mcastGroups: number;
  flavor: Flavor;
}

function sizeLabel(s: Size): string {
  const what = `${s.flavor.protocol === 'vrrp3' ? 'VRRPv3' : 'CARP'} IPv${s.flavor.family}`;
  return `${s.groups} ${what} groups on ${s.interfaces} interface(s) x ${s.mcastGroups} multicast group(s)`;
}

/** The key under which the observer sees a group: segment, destination, vhid. */
function keyOf(segment: number, dst: string, vhid: number): string {
  return `${segment} ${dst} ${vhid}`;
}

function groupKey(g: LayoutGroup, family: Flavor['family']): string {
  return keyOf(g.iface, mcastAddress(g.mcast, family), g.vhid);
}

/** tcpdump on every segment of the observer host. */
class Observer {
  private readonly caps: Capture[];

  constructor(lab: Lab, host: Host, family: Flavor['family']) {
    const filter = family === 6 ? 'ip6 proto 112' : 'ip proto 112';
    this.caps = host.ifaces.map((iface) => new Capture(lab, host, iface, filter));
  }

  async ready(): Promise<void> {
    await Promise.all(this.caps.map((c) => c.ready()));
  }

  marks(): number[] {
    return this.caps.map((c) => c.packets.length);
  }

  /** Every packet captured from `from` (per segment) on, with its segment. */
  forEach(fn: (p: CarpPacket, segment: number) => void, from?: readonly number[]): void {
    this.caps.forEach((c, s) => {
      for (let i = from?.[s] ?? 0; i < c.packets.length; i++) fn(c.packets[i], s);
    });
  }

  stop(): void {
    for (const c of this.caps) c.stop();
  }
}

/**
 * Per group key, the largest gap between consecutive advertisements from `srcs` with capture
 * times in [from, to]; gaps at the window's edges are not counted.
 */
function largestGap(
  obs: Observer,
  srcs: ReadonlySet<string>,
  keys: ReadonlySet<string>,
  from: number,
  to: number,
): { key: string; seconds: number } | undefined {
  const last = new Map<string, number>();
  let worst: { key: string; seconds: number } | undefined;
  obs.forEach((p, s) => {
    if (!srcs.has(p.src) || p.t < from || p.t > to) return;
    const key = keyOf(s, p.dst, p.vhid);
    if (!keys.has(key)) return;
    const prev = last.get(key);
    if (prev !== undefined && (!worst || p.t - prev > worst.seconds)) worst = { key, seconds: p.t - prev };
    last.set(key, p.t);
  });
  return worst;
}

/** Addresses of one family on every interface of a host. */
async function hostAddresses(lab: Lab, h: Host, family: Flavor['family']): Promise<Set<string>> {
  const out = await lab.exec(h, 'ip', ['-j', `-${family}`, 'addr', 'show']);
  const parsed = JSON.parse(out) as { addr_info?: { local: string }[] }[];
  return new Set(parsed.flatMap((l) => (l.addr_info ?? []).map((a) => a.local)));
}

/**
 * A host's advertisement sources as tcpdump prints them: its address on each segment, or for
 * IPv6 its link-local ones (docs/protocol.md §21; keepalived's native_ipv6 does the same).
 */
async function advertSources(lab: Lab, h: Host, family: Flavor['family']): Promise<Set<string>> {
  if (family === 4) return new Set(h.ips);
  const all = await Promise.all(h.ifaces.map((i) => lab.addresses6(h, i)));
  return new Set(all.flat().filter((a) => a.startsWith('fe80:')));
}

async function waitAll(f: Fleet, state: string, n: number, timeoutMs: number): Promise<void> {
  try {
    await waitFor(
      () => f.log.count(state) === n,
      timeoutMs,
      `${n} ${f.impl} groups ${state} on ${f.host.ns}`,
      50,
    );
  } catch (e) {
    throw new Error(`${(e as Error).message} (${f.log.count(state)} are)\n${f.describe()}`);
  }
}

interface Cost {
  cpu: { total: number; user: number; system: number };
  memory: Memory;
  /** Spawn -> every group logged its first state, ms. */
  runningMs: number;
  /** Spawn -> every group in its role (MASTER on A, BACKUP on B), minus the protocol's wait, ms. */
  inRoleMs: number;
  /** CPU of the implementation from its spawn to the steady window, ms. */
  warmupCpuMs: number;
}

/** Per group name. */
interface Failover {
  /** Per group: address present on B − A's last advertisement − bound, seconds. */
  present: Map<string, number>;
  /** Per group: B's first advertisement − A's last − bound, seconds. */
  advert: Map<string, number>;
  lastA: Map<string, number>;
}

interface ReloadCost {
  /** Write -> the reload's summary line, ms. */
  toSummaryMs: number;
  /** CPU of A from the write to RELOAD_TAIL_MS after the summary, less the steady rate, ms. */
  cpuMs: number;
  /** Largest advertisement interval of an existing group around the reload, ms. */
  worstGapMs: number | undefined;
}

interface RunResult {
  impl: Impl;
  size: Size;
  boundS: number;
  startBoundS: number;
  a: Cost;
  b: Cost;
  advertsPerS: number;
  worstGapMs: number | undefined;
  steadyTransitions: number;
  /** Groups whose address was not on A alone after start-up (a reference may not settle). */
  misplaced: number;
  reload?: ReloadCost;
  failover: Failover;
  load: string;
  groups: LayoutGroup[];
}

async function failover(
  lab: Lab,
  obs: Observer,
  a: Fleet,
  b: Fleet,
  groups: readonly LayoutGroup[],
  boundS: number,
  flavor: Flavor,
): Promise<Failover> {
  const monitor = new AddressMonitor(lab, b.host);
  await monitor.ready();
  const marks = obs.marks();
  const vips = groups.map((g) => g.vip);
  const killedAt = epochNow();
  a.kill();
  const srcA = await advertSources(lab, a.host, flavor.family);
  const srcB = await advertSources(lab, b.host, flavor.family);
  await waitFor(
    () => monitor.firstAdded(vips, killedAt).size === vips.length,
    (boundS + 10) * 1000,
    'every address on B',
    50,
  ).catch((e: Error) =>
    process.stderr.write(`${e.message}: ${monitor.firstAdded(vips, killedAt).size} arrived\n`),
  );
  const firstB = new Map<string, number>();
  const seen = [...marks];
  await waitFor(
    () => {
      obs.forEach((p, s) => {
        const key = keyOf(s, p.dst, p.vhid);
        if (srcB.has(p.src) && !firstB.has(key)) firstB.set(key, p.t);
      }, seen);
      seen.splice(0, seen.length, ...obs.marks());
      return firstB.size >= groups.length;
    },
    5000,
    "B's first advertisement of every group",
    50,
  ).catch((e: Error) => process.stderr.write(`${e.message}: ${firstB.size} seen\n`));
  monitor.stop();

  const lastA = new Map<string, number>();
  // VRRP leaving on purpose sends priority 0; a SIGKILLed host sends nothing more.
  const vrrp = speaksVrrp(a.impl, flavor);
  obs.forEach((p, s) => {
    if (srcA.has(p.src) && !isBowOut(p) && !(vrrp && p.advskew === 0))
      lastA.set(keyOf(s, p.dst, p.vhid), p.t);
  });
  const presentAt = monitor.firstAdded(vips, killedAt);
  const present = new Map<string, number>();
  const advert = new Map<string, number>();
  const lastOfA = new Map<string, number>();
  for (const g of groups) {
    const key = groupKey(g, flavor.family);
    const last = lastA.get(key);
    if (last === undefined)
      throw new Error(`no advertisement of ${g.name} (${key}) from ${a.host.ns} captured`);
    lastOfA.set(g.name, last);
    const at = presentAt.get(g.vip);
    if (at !== undefined) present.set(g.name, at - last - boundS);
    const first = firstB.get(key);
    if (first !== undefined) advert.set(g.name, first - last - boundS);
  }
  return { present, advert, lastA: lastOfA };
}

/** Adds one group to A's file (a destination no layout uses, so B never contends) and reloads. */
async function reloadOne(
  a: OurFleet,
  groups: readonly LayoutGroup[],
  obs: Observer,
  steadyCpuPercent: number,
  srcA: ReadonlySet<string>,
  family: Flavor['family'],
): Promise<ReloadCost> {
  const extra: LayoutGroup = {
    index: groups.length + 1,
    name: `g${groups.length + 1}`,
    vhid: 1,
    iface: 0,
    mcast: MAX_SLOTS,
    vip: layoutVip(MAX_SLOTS, 1, family),
  };
  const yaml = a.yaml([...groups, extra]);
  const clock = new LineClock(a.proc.child);
  const cpu = () => a.pids().reduce((sum, pid) => sum + cpuTimes(pid).user + cpuTimes(pid).system, 0);
  const cpu0 = cpu();
  const t0 = epochNow();
  // The file watcher reloads a file written by rename: one reload, as an editor or a config
  // manager would cause (a SIGHUP on top would run a second one).
  writeByRename(a.file, yaml);
  const summary = await clock.next(new RegExp(`reload \\(.*\\): added 1 \\(${extra.name}\\)`), 0, 30000);
  await sleep(RELOAD_TAIL_MS);
  const t1 = epochNow();
  const cpuMs = (cpu() - cpu0) * 1000 - (steadyCpuPercent / 100) * (t1 - t0) * 1000;
  // Every existing group's interval around the reload, from a second before the write to
  // past the next advertisement after it settled.
  await sleep(ADVBASE * 1000 + 500);
  const keys = new Set(groups.map((g) => groupKey(g, family)));
  const gap = largestGap(obs, srcA, keys, t0 - ADVBASE, epochNow());
  return { toSummaryMs: (summary.t - t0) * 1000, cpuMs, worstGapMs: gap ? gap.seconds * 1000 : undefined };
}

async function runOne(impl: Impl, size: Size, steadyS: number, withReload: boolean): Promise<RunResult> {
  const { flavor } = size;
  const family = flavor.family;
  const groups = scaleLayout(size.groups, size.interfaces, size.mcastGroups, family);
  const load0 = loadavg();
  const boundS = roleSettings(impl, 'backup', flavor).masterDownS;
  const startBoundS = roleSettings(impl, 'master', flavor).masterDownS;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ucarp-scale-'));
  const lab = await Lab.create({ hosts: 3, segments: Math.min(size.interfaces, 3), ipv6: family === 6 });
  const fleets: Fleet[] = [];
  try {
    await addSegments(lab, size.interfaces, family === 6);
    const [hA, hB, hC] = [lab.host(1), lab.host(2), lab.host(3)];
    const n = groups.length;
    const startTimeout = 60000 + n * 20;

    process.stderr.write(`[${impl}, ${sizeLabel(size)}] starting ${hA.ns} (master)\n`);
    const a = await startFleet(impl, { lab, host: hA, dir, role: 'master', groups, flavor });
    fleets.push(a);
    await waitAll(a, 'MASTER', n, startTimeout);
    process.stderr.write(`[${impl}] starting ${hB.ns} (backup)\n`);
    const b = await startFleet(impl, { lab, host: hB, dir, role: 'backup', groups, flavor });
    fleets.push(b);
    await waitAll(b, 'BACKUP', n, startTimeout);
    const costOf = (f: Fleet, role: 'MASTER' | 'BACKUP', waitS: number) => ({
      runningMs: (f.log.lastFirst() - f.spawnedAt) * 1000,
      inRoleMs: (f.log.lastEntered(role) - f.spawnedAt - waitS) * 1000,
    });
    const startA = costOf(a, 'MASTER', startBoundS);
    const startB = costOf(b, 'BACKUP', 0);
    await sleep(SETTLE_MS);
    const onA = await hostAddresses(lab, hA, family);
    const onB = await hostAddresses(lab, hB, family);
    const misplaced = groups.filter((g) => onB.has(g.vip) || !onA.has(g.vip));
    if (misplaced.length > 0)
      process.stderr.write(
        `[${impl}] ${misplaced.length} addresses not (only) on A before the kill, e.g. ${misplaced
          .slice(0, 5)
          .map((g) => g.vip)
          .join(' ')}\n`,
      );

    process.stderr.write(`[${impl}] steady state for ${steadyS} s\n`);
    const transitions0 = a.log.transitions + b.log.transitions;
    const cpuA = new CpuWindow(a.pids());
    const cpuB = new CpuWindow(b.pids());
    await sleep(steadyS * 1000);
    const warm = (w: CpuWindow) => ({ warmupCpuMs: w.startSeconds() * 1000 });
    const costA: Cost = { cpu: cpuA.percent(), memory: totalMemory(a.pids()), ...startA, ...warm(cpuA) };
    const costB: Cost = { cpu: cpuB.percent(), memory: totalMemory(b.pids()), ...startB, ...warm(cpuB) };
    // The observer starts only now: on veth every packet it captures is cloned in the sender's
    // system call, which would bill tcpdump's cost to the daemons measured above.
    const obs = new Observer(lab, hC, family);
    try {
      await obs.ready();
      const gapFrom = epochNow();
      const cpuWithObserver = new CpuWindow(a.pids());
      await sleep(GAP_WINDOW_MS);
      const steadyTo = epochNow();
      const withObserver = cpuWithObserver.percent().total;
      const steadyTransitions = a.log.transitions + b.log.transitions - transitions0;
      const srcA = await advertSources(lab, hA, family);
      const gap = largestGap(obs, srcA, new Set(groups.map((g) => groupKey(g, family))), gapFrom, steadyTo);
      let adverts = 0;
      obs.forEach((p) => {
        if (srcA.has(p.src) && p.t >= gapFrom && p.t <= steadyTo) adverts++;
      });

      let reload: ReloadCost | undefined;
      if (withReload && a instanceof OurFleet) {
        process.stderr.write(`[${impl}] reload adding one group to ${hA.ns}\n`);
        reload = await reloadOne(a, groups, obs, withObserver, srcA, family).catch((e: Error) => {
          process.stderr.write(`[${impl}] reload not measured: ${e.message}\n`);
          return undefined;
        });
      }

      process.stderr.write(`[${impl}] SIGKILL of every ${impl} process on ${hA.ns}\n`);
      const f = await failover(lab, obs, a, b, groups, boundS, flavor);
      return {
        impl,
        size,
        boundS,
        startBoundS,
        a: costA,
        b: costB,
        advertsPerS: adverts / (steadyTo - gapFrom),
        worstGapMs: gap ? gap.seconds * 1000 : undefined,
        steadyTransitions,
        misplaced: misplaced.length,
        reload,
        failover: f,
        load: `${load0} -> ${loadavg()}`,
        groups,
      };
    } finally {
      obs.stop();
    }
  } finally {
    for (const f of fleets) f.kill();
    await lab.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const ROLE_COLUMNS = ['master host', 'backup host'] as const;

function verdictText(misses: string[]): string {
  return misses.length === 0 ? 'met' : `MISSED (${misses.join(', ')})`;
}

/** One table for one size: every implementation's master and backup host side by side. */
function sizeTables(results: readonly RunResult[]): string {
  const size = results[0].size;
  const n = size.groups;
  const ours = results.find((r) => r.impl === 'ours');
  const ka = results.find((r) => r.impl === 'keepalived');
  const headers = [
    '',
    ...results.flatMap((r) => ROLE_COLUMNS.map((c) => `${r.impl} ${c}`)),
    'target (ours)',
    'verdict',
  ];
  const cells = (f: (c: Cost, r: RunResult, master: boolean) => string) =>
    results.flatMap((r) => [f(r.a, r, true), f(r.b, r, false)]);
  const small = n <= MAX_VHID;

  const cpuMisses: string[] = [];
  if (ours && ka) {
    for (const [role, o, k] of [
      ['master', ours.a.cpu.total, ka.a.cpu.total],
      ['backup', ours.b.cpu.total, ka.b.cpu.total],
    ] as const) {
      if (o >= k) cpuMisses.push(`${role} vs keepalived`);
    }
  }
  if (ours && small && Math.max(ours.a.cpu.total, ours.b.cpu.total) > TARGETS.cpuSmallPercent)
    cpuMisses.push(`over ${TARGETS.cpuSmallPercent} %`);
  const pssMb = small ? TARGETS.pssSmallMb : TARGETS.pssLargeMb;
  const pssMiss = ours ? Math.max(ours.a.memory.pssKb, ours.b.memory.pssKb) / 1024 > pssMb : false;
  const startMiss = ours ? Math.max(ours.a.runningMs, ours.b.runningMs) > TARGETS.startupMs : false;
  const cpuTarget = `< keepalived same role${small ? `, <= ${TARGETS.cpuSmallPercent}` : ''}`;

  const costRows = [
    [
      'CPU, % of one core (schedstat)',
      ...cells((c) => c.cpu.total.toFixed(3)),
      ka ? cpuTarget : cpuTarget.replace(/^< keepalived same role, /, ''),
      // Without keepalived in the run (and above 255 groups, no absolute target) nothing was compared.
      ours && (ka || small) ? verdictText(cpuMisses) : ours ? 'not compared' : '',
    ],
    [
      '  user / kernel (clock ticks)',
      ...cells((c) => `${c.cpu.user.toFixed(2)} / ${c.cpu.system.toFixed(2)}`),
      '',
      '',
    ],
    ['  per group, us of CPU per s', ...cells((c) => ((c.cpu.total / 100 / n) * 1e6).toFixed(1)), '', ''],
    [
      'PSS, MB',
      ...cells((c) => mb(c.memory.pssKb)),
      `<= ${pssMb}`,
      ours ? verdictText(pssMiss ? ['PSS'] : []) : '',
    ],
    ['  per group, KB', ...cells((c) => (c.memory.pssKb / n).toFixed(1)), '', ''],
    ['RSS, MB', ...cells((c) => mb(c.memory.rssKb)), '', ''],
    [
      'start: spawn -> all running, ms',
      ...cells((c) => c.runningMs.toFixed(0)),
      `<= ${TARGETS.startupMs}`,
      ours ? verdictText(startMiss ? ['start-up'] : []) : '',
    ],
    ['start: all in role - bound, ms', ...cells((c) => c.inRoleMs.toFixed(0)), '', ''],
    [`start: CPU spawn -> steady window, ms`, ...cells((c) => c.warmupCpuMs.toFixed(0)), '', ''],
    ['adverts/s seen from A', ...cells((_, r, master) => (master ? r.advertsPerS.toFixed(1) : '-')), '', ''],
    [
      'largest adv gap of a group, ms',
      ...cells((_, r, master) => (master && r.worstGapMs !== undefined ? ms(r.worstGapMs) : '-')),
      '',
      '',
    ],
    [
      'transitions in steady state',
      ...cells((_, r, master) => (master ? String(r.steadyTransitions) : '-')),
      '0',
      ours ? verdictText(ours.steadyTransitions > 0 ? ['transitions'] : []) : '',
    ],
    [
      'addresses not on A alone at start',
      ...cells((_, r, master) => (master ? String(r.misplaced) : '-')),
      '0',
      ours ? verdictText(ours.misplaced > 0 ? ['misplaced'] : []) : '',
    ],
  ];

  const failRows = results.map((r) => {
    const f = r.failover;
    const vals = [...f.present.values()].map((x) => x * 1000);
    const within = vals.filter((x) => x <= TARGETS.lateMaxMs).length;
    const adv = [...f.advert.values()].map((x) => x * 1000);
    const s = vals.length > 0 ? summarize(vals) : undefined;
    const misses: string[] = [];
    if (within < n) misses.push(`${n - within} late`);
    if (!s || s.median > TARGETS.lateMedianMs) misses.push('median');
    return [
      r.impl,
      (r.boundS * 1000).toFixed(3),
      `${vals.length}/${n}`,
      `${within}/${n}`,
      s ? ms(s.min) : '-',
      s ? ms(s.median) : '-',
      s ? ms(s.p95) : '-',
      s ? ms(s.max) : '-',
      adv.length > 0 ? ms(summarize(adv).median) : '-',
      r.impl === 'ours' ? verdictText(misses) : 'reference',
    ];
  });

  const out = [
    `== ${sizeLabel(size)}: A master (advskew 0 / priority 200), B backup (advskew 100 / priority 100), interval 1 s ==`,
    ...results.map((r) => `${r.impl}: load average ${r.load}`),
    formatTable(headers, costRows),
    '',
    `SIGKILL of A, per group: address on B (ip -ts monitor) - A's last advertisement (tcpdump -tt on C) - bound, ms; ` +
      `target: all <= ${TARGETS.lateMaxMs}, median <= ${TARGETS.lateMedianMs}`,
    formatTable(
      [
        'impl',
        'bound',
        'moved',
        `by +${TARGETS.lateMaxMs}`,
        'min',
        'median',
        'p95',
        'max',
        'B adv median',
        'verdict',
      ],
      failRows,
    ),
  ];
  if (ours?.reload) {
    const rl = ours.reload;
    const misses = [
      ...(rl.cpuMs > TARGETS.reloadCpuMs ? ['CPU'] : []),
      ...(rl.worstGapMs === undefined || rl.worstGapMs > TARGETS.reloadGapMs ? ['gap'] : []),
    ];
    out.push(
      '',
      `ours, reload adding group ${n + 1} to A (file written by rename, the watcher reloads): ` +
        `summary after ${ms(rl.toSummaryMs)} ms, CPU ${ms(rl.cpuMs)} ms over the steady rate (<= ${TARGETS.reloadCpuMs}), ` +
        `largest interval of an existing group ${rl.worstGapMs === undefined ? '-' : ms(rl.worstGapMs)} ms (<= ${TARGETS.reloadGapMs}): ${verdictText(misses)}`,
    );
  }
  for (const r of results) {
    const latest = [...r.failover.present.entries()].sort((x, y) => y[1] - x[1]).slice(0, 5);
    const missing = r.groups.filter((g) => !r.failover.present.has(g.name)).length;
    out.push(
      `${r.impl}: latest ${latest.map(([name, x]) => `${name} ${ms(x * 1000)}`).join(', ')} ms` +
        (missing > 0 ? `; ${missing} never arrived` : ''),
    );
  }
  out.push('');
  return out.join('\n');
}

/** Per-group cost of every run, so sizes can be compared: linear means a flat column. */
function perGroupTable(results: readonly RunResult[]): string {
  const rows = results.map((r) => {
    const n = r.size.groups;
    const us = (c: Cost) => ((c.cpu.total / 100 / n) * 1e6).toFixed(1);
    const kb = (c: Cost) => (c.memory.pssKb / n).toFixed(1);
    return [sizeLabel(r.size), r.impl, us(r.a), us(r.b), kb(r.a), kb(r.b)];
  });
  return formatTable(['size', 'impl', 'CPU us/s per group A', 'B', 'PSS KB per group A', 'B'], rows);
}

function writeCsv(file: string, results: readonly RunResult[]): void {
  const cell = (x: number | undefined) => (x === undefined ? '' : (x * 1000).toFixed(3));
  const lines = [
    'impl,groups,interfaces,mcast_groups,group,interface,destination,vhid,last_adv_from_a_epoch_s,adv_from_b_after_bound_ms,address_on_b_after_bound_ms',
  ];
  for (const r of results) {
    for (const g of r.groups) {
      lines.push(
        [
          r.impl,
          r.size.groups,
          r.size.interfaces,
          r.size.mcastGroups,
          g.name,
          `eth${g.iface}`,
          mcastAddress(g.mcast, r.size.flavor.family),
          g.vhid,
          r.failover.lastA.get(g.name)?.toFixed(6) ?? '',
          cell(r.failover.advert.get(g.name)),
          cell(r.failover.present.get(g.name)),
        ].join(','),
      );
    }
  }
  fs.writeFileSync(file, lines.join('\n') + '\n');
}

function parseImpls(text: string): Impl[] {
  const names = text === 'all' ? ['ours', 'keepalived'] : text.split(',');
  for (const name of names)
    if (!IMPLS.includes(name as Impl))
      throw new Error(`--impl: ${name} is not one of all, ${IMPLS.join(', ')}`);
  return names as Impl[];
}

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2), [
    'steady',
    'impl',
    'csv',
    'groups',
    'interfaces',
    'mcast-groups',
    'reload',
    'protocol',
    'family',
  ]);
  const steadyS = Number(opts.get('steady') ?? 30);
  if (!(steadyS > 0)) throw new Error('--steady must be a positive number of seconds');
  const impls = parseImpls(opts.get('impl') ?? 'all');
  const withReload = (opts.get('reload') ?? '1') !== '0';
  const mcastGroups = Number(opts.get('mcast-groups') ?? 1);
  const protocol = (opts.get('protocol') ?? 'carp') as Protocol;
  if (protocol !== 'carp' && protocol !== 'vrrp3') throw new Error('--protocol must be carp or vrrp3');
  const family = Number(opts.get('family') ?? 4);
  if (family !== 4 && family !== 6) throw new Error('--family must be 4 or 6');
  const flavor: Flavor = { protocol, family };
  const sizes: Size[] = (opts.get('groups') ?? String(MAX_VHID)).split(',').map((text) => {
    const groups = Number(text);
    // Default: as few interfaces as hold the groups, 255 vhids per (interface, destination).
    const interfaces = Number(opts.get('interfaces') ?? Math.ceil(groups / (MAX_VHID * mcastGroups)));
    scaleLayout(groups, interfaces, mcastGroups, family);
    return { groups, interfaces, mcastGroups, flavor };
  });
  // One process per group: 1020 Debian ucarp processes per host would need gigabytes.
  if (impls.includes('ucarp') && sizes.some((s) => s.groups > MAX_VHID))
    throw new Error(`--impl ucarp runs one process per group: only up to ${MAX_VHID} groups`);
  if (impls.includes('ucarp') && (protocol !== 'carp' || family !== 4))
    throw new Error('--impl ucarp speaks CARP over IPv4 only');

  const started = new Date();
  const load0 = loadavg();
  const cpu = os.cpus();
  const results: RunResult[] = [];
  const printed: string[] = [
    `scale benchmark: ${impls.join(', ')}; ${protocol === 'vrrp3' ? 'VRRPv3' : 'CARP'} over IPv${family}; steady window ${steadyS} s; ` +
      (protocol === 'vrrp3' ? `advert_interval ${ADVBASE}` : `advbase ${ADVBASE}, deadratio ${DEADRATIO}`),
    `machine: ${cpu.length} x ${cpu[0]?.model ?? 'unknown CPU'}, Linux ${os.release()}, node ${process.version}, started ${started.toISOString()}, load average at start ${load0}`,
    '',
  ];
  for (const size of sizes) {
    const runs: RunResult[] = [];
    for (const impl of impls) {
      // One implementation failing (e.g. never settling at some size) leaves the others' figures.
      try {
        runs.push(await runOne(impl, size, steadyS, withReload));
      } catch (e) {
        const line = `${impl}, ${sizeLabel(size)}: failed: ${(e as Error).message}`;
        printed.push(line, '');
        process.stderr.write(`${line}\n`);
      }
    }
    if (runs.length === 0) continue;
    results.push(...runs);
    const table = sizeTables(runs);
    printed.push(table);
    // Each size as soon as it is done: a large run takes many minutes.
    process.stderr.write(`${table}\n`);
  }
  printed.push(
    'per-group cost (CPU in microseconds of CPU per second, PSS in KB):',
    perGroupTable(results),
    '',
  );
  printed.push(`finished ${new Date().toISOString()}, load average ${loadavg()}`);
  const csv = opts.get('csv');
  if (csv) writeCsv(csv, results);
  process.stdout.write(printed.join('\n') + '\n');
}

main().catch((e: unknown) => {
  process.stderr.write(`bench failed: ${e instanceof Error ? e.stack : String(e)}\n`);
  process.exit(1);
});
