// Scale benchmark (not a test): 255 groups, host A master of all, host B backup of all. After a
// steady state it reports what the daemons cost (CPU % of one core, RSS, PSS), then SIGKILLs
// A and reports, per group, how long after A's last advertisement (tcpdump -tt on a third
// host) the address is present on B (`ip -ts monitor address` inside B), minus the protocol
// bound. Usage: node dist/bench/scale.js [--steady SECONDS] [--impl ours|ucarp] [--csv FILE]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Lab, waitFor, type Host } from '../test/helpers/netns';
import { SupervisorProc, configYaml } from '../test/helpers/supervisor-proc';
import { CarpProc, carpArgs } from '../test/helpers/carp-proc';
import {
  Capture,
  epochNow,
  formatTable,
  isBowOut,
  ms,
  parseOptions,
  sleep,
  summarize,
  type Summary,
} from './common';
import {
  AddressMonitor,
  CpuWindow,
  MAX_VHID,
  execedPid,
  groupName,
  groupStates,
  largestGaps,
  loadavg,
  mb,
  range,
  scaleGroups,
  totalMemory,
  vipFor,
  worstGap,
  type Memory,
} from './scale-lib';

const VHIDS = range(1, MAX_VHID);
const VIPS = VHIDS.map(vipFor);
const MASTER_SKEW = 0;
const BACKUP_SKEW = 100;
const ADVBASE = 1;
const DEADRATIO = 3;
/** B's master-down timeout (docs/protocol.md §8): the least takeover delay the protocol allows. */
const BOUND_S = DEADRATIO * ADVBASE + BACKUP_SKEW / 256;
const TARGETS = { cpuPercent: 1, rssMb: 80, lateMs: 100 };
/** Both sides see a few advertisements before measuring, so timers and caches are warm. */
const SETTLE_MS = 3000;
/** Capture window, after the CPU window, for the advertisement-gap check. */
const GAP_WINDOW_MS = 10_000;

type Impl = 'ours' | 'ucarp';

/** The 255 groups of one host, whichever implementation runs them. */
interface Fleet {
  readonly host: Host;
  pids(): number[];
  /** Groups whose last logged state is `state`. */
  count(state: 'MASTER' | 'BACKUP'): number;
  /** State changes logged so far, all groups together. */
  transitions(): number;
  kill(): void;
  describe(): string;
}

class OurFleet implements Fleet {
  private readonly proc: SupervisorProc;
  private pid = 0;

  constructor(
    lab: Lab,
    readonly host: Host,
    dir: string,
    advskew: number,
  ) {
    const file = path.join(dir, host.ns, 'ucarp.yaml');
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(
      file,
      configYaml(scaleGroups(VHIDS, advskew, host.ifaces[0]), { socket: path.join(dir, `${host.ns}.sock`) }),
    );
    this.proc = new SupervisorProc(lab, host, file);
  }

  async started(): Promise<void> {
    this.pid = await execedPid(this.proc.child, 'node');
  }

  pids(): number[] {
    return [this.pid];
  }

  count(state: string): number {
    let n = 0;
    for (const s of groupStates(this.proc.lines).values()) if (s === state) n++;
    return n;
  }

  transitions(): number {
    return this.proc.transitions(undefined).length;
  }

  kill(): void {
    this.proc.signal('SIGKILL');
  }

  describe(): string {
    return `last lines of ${this.host.ns}:\n${this.proc.lines.slice(-10).join('\n')}`;
  }
}

/** ucarp 1.5.2 (Debian), one process per group, addresses added by its up-script. */
class UcarpFleet implements Fleet {
  private readonly procs: CarpProc[];
  private pidList: number[] = [];

  constructor(
    lab: Lab,
    readonly host: Host,
    dir: string,
    advskew: number,
  ) {
    const up = path.join(dir, 'vip-up.sh');
    const down = path.join(dir, 'vip-down.sh');
    // ucarp runs its scripts with (interface, address, xparam).
    fs.writeFileSync(up, '#!/bin/sh\nexec ip addr add "$2"/32 dev "$1"\n', { mode: 0o755 });
    fs.writeFileSync(down, '#!/bin/sh\nip addr del "$2"/32 dev "$1" 2>/dev/null\nexit 0\n', { mode: 0o755 });
    this.procs = VHIDS.map(
      (vhid) =>
        new CarpProc(
          lab,
          host,
          'ucarp',
          carpArgs(host, {
            vhid,
            addr: vipFor(vhid),
            advbase: ADVBASE,
            advskew,
            extra: ['-u', up, '-d', down],
          }),
        ),
    );
  }

  async started(): Promise<void> {
    this.pidList = await Promise.all(this.procs.map((p) => execedPid(p.child, 'ucarp')));
  }

  pids(): number[] {
    return this.pidList;
  }

  count(state: string): number {
    return this.procs.filter((p) => p.state === state).length;
  }

  transitions(): number {
    return this.procs.reduce((n, p) => n + p.history.length, 0);
  }

  kill(): void {
    for (const p of this.procs) p.kill('SIGKILL');
  }

  describe(): string {
    const bad = this.procs.find((p) => p.exited || p.state === 'INIT');
    return bad ? `e.g. ${bad.host.ns} vhid ${this.procs.indexOf(bad) + 1}:\n${bad.lines.join('\n')}` : '';
  }
}

async function startFleet(lab: Lab, impl: Impl, host: Host, dir: string, advskew: number): Promise<Fleet> {
  const f = impl === 'ours' ? new OurFleet(lab, host, dir, advskew) : new UcarpFleet(lab, host, dir, advskew);
  await f.started();
  return f;
}

async function waitAll(f: Fleet, state: 'MASTER' | 'BACKUP', timeoutMs: number): Promise<void> {
  try {
    await waitFor(
      () => f.count(state) === VHIDS.length,
      timeoutMs,
      `${VHIDS.length} groups ${state} on ${f.host.ns}`,
      100,
    );
  } catch (e) {
    throw new Error(`${(e as Error).message} (${f.count(state)} are)\n${f.describe()}`);
  }
}

interface Cost {
  cpu: { total: number; user: number; system: number };
  memory: Memory;
}

interface Failover {
  /** Per vhid: address present on B − A's last advertisement − bound, seconds. */
  present: Map<number, number>;
  /** Per vhid: B's first advertisement − A's last − bound, seconds. */
  advert: Map<number, number>;
  /** Per vhid: A's last advertisement, epoch seconds. */
  lastA: Map<number, number>;
}

async function failover(lab: Lab, cap: Capture, a: Fleet, b: Fleet): Promise<Failover> {
  const monitor = new AddressMonitor(lab, b.host);
  await monitor.ready();
  const mark = cap.packets.length;
  const killedAt = epochNow();
  a.kill();
  const srcA = a.host.ips[0];
  const srcB = b.host.ips[0];
  const deadline = (BOUND_S + 10) * 1000;
  await waitFor(
    () => monitor.firstAdded(VIPS, killedAt).size === VIPS.length,
    deadline,
    'every address on B',
    50,
  ).catch((e: Error) =>
    process.stderr.write(`${e.message}: ${monitor.firstAdded(VIPS, killedAt).size} arrived\n`),
  );
  const firstB = new Map<number, number>();
  await waitFor(
    () => {
      for (let i = mark; i < cap.packets.length; i++) {
        const p = cap.packets[i];
        if (p.src === srcB && !firstB.has(p.vhid)) firstB.set(p.vhid, p.t);
      }
      return firstB.size === VHIDS.length;
    },
    5000,
    "B's first advertisement of every group",
    50,
  ).catch((e: Error) => process.stderr.write(`${e.message}: ${firstB.size} seen\n`));
  monitor.stop();

  const lastA = new Map<number, number>();
  for (const p of cap.packets) if (p.src === srcA && !isBowOut(p)) lastA.set(p.vhid, p.t);
  const presentAt = monitor.firstAdded(VIPS, killedAt);
  const present = new Map<number, number>();
  const advert = new Map<number, number>();
  for (const vhid of VHIDS) {
    const last = lastA.get(vhid);
    if (last === undefined) throw new Error(`no advertisement of vhid ${vhid} from ${srcA} captured`);
    const at = presentAt.get(vipFor(vhid));
    if (at !== undefined) present.set(vhid, at - last - BOUND_S);
    const first = firstB.get(vhid);
    if (first !== undefined) advert.set(vhid, first - last - BOUND_S);
  }
  return { present, advert, lastA };
}

function failoverRow(
  label: string,
  values: Map<number, number>,
  target: string,
  met: boolean | null,
): string[] {
  const verdict = met === null ? '' : met ? 'met' : 'MISSED';
  if (values.size === 0) return [label, '0', '-', '-', '-', '-', target, verdict];
  const s: Summary = summarize([...values.values()].map((x) => x * 1000));
  return [label, String(s.n), ms(s.min), ms(s.median), ms(s.p95), ms(s.max), target, verdict];
}

/** One line per group, for plotting or for finding a pattern in the late ones. */
function writeCsv(file: string, f: Failover): void {
  const cell = (x: number | undefined) => (x === undefined ? '' : (x * 1000).toFixed(3));
  const lines = ['vhid,last_adv_from_a_epoch_s,adv_from_b_after_bound_ms,address_on_b_after_bound_ms'];
  for (const vhid of VHIDS) {
    lines.push(
      `${vhid},${f.lastA.get(vhid)?.toFixed(6) ?? ''},${cell(f.advert.get(vhid))},${cell(f.present.get(vhid))}`,
    );
  }
  fs.writeFileSync(file, lines.join('\n') + '\n');
}

function verdict(met: boolean, reference: boolean): string {
  return reference ? 'reference' : met ? 'met' : 'MISSED';
}

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2), ['steady', 'impl', 'csv']);
  const steadyS = Number(opts.get('steady') ?? 60);
  if (!(steadyS > 0)) throw new Error('--steady must be a positive number of seconds');
  const impl = (opts.get('impl') ?? 'ours') as Impl;
  if (impl !== 'ours' && impl !== 'ucarp') throw new Error('--impl must be ours or ucarp');
  const reference = impl === 'ucarp';
  const started = new Date();
  // Other work on the machine delays a daemon's wake-ups: the figures are read next to it.
  const load0 = loadavg();

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ucarp-scale-'));
  const lab = await Lab.create({ hosts: 3 });
  try {
    const [hA, hB, hC] = [lab.host(1), lab.host(2), lab.host(3)];

    process.stderr.write(`starting ${VHIDS.length} ${impl} groups on ${hA.ns} (master)\n`);
    const a = await startFleet(lab, impl, hA, dir, MASTER_SKEW);
    await waitAll(a, 'MASTER', 60000);
    process.stderr.write(`starting ${VHIDS.length} ${impl} groups on ${hB.ns} (backup)\n`);
    const b = await startFleet(lab, impl, hB, dir, BACKUP_SKEW);
    await waitAll(b, 'BACKUP', 60000);
    await sleep(SETTLE_MS);
    const onB = new Set(await lab.addresses(hB));
    const onA = new Set(await lab.addresses(hA));
    const misplaced = VIPS.filter((v) => onB.has(v) || !onA.has(v));
    if (misplaced.length > 0)
      throw new Error(`addresses not (only) on A before the kill: ${misplaced.join(' ')}`);

    process.stderr.write(`steady state for ${steadyS} s\n`);
    const transitions0 = a.transitions() + b.transitions();
    const cpuA = new CpuWindow(a.pids());
    const cpuB = new CpuWindow(b.pids());
    await sleep(steadyS * 1000);
    const costA: Cost = { cpu: cpuA.percent(), memory: totalMemory(a.pids()) };
    const costB: Cost = { cpu: cpuB.percent(), memory: totalMemory(b.pids()) };
    // The observer starts only now: on veth every packet it captures is cloned in the sender's
    // system call, which would bill tcpdump's cost to the daemons measured above.
    const cap = new Capture(lab, hC);
    await cap.ready();
    const gapFrom = epochNow();
    await sleep(GAP_WINDOW_MS);
    const steadyTo = epochNow();
    const steadyTransitions = a.transitions() + b.transitions() - transitions0;
    const steadyGap = worstGap(largestGaps(cap.packets, hA.ips[0], new Set(VHIDS), gapFrom, steadyTo));
    const steadyAdverts = cap.packets.filter((p) => p.src === hA.ips[0] && p.t >= gapFrom && p.t <= steadyTo);

    process.stderr.write(`SIGKILL of ${hA.ns}'s ${impl === 'ours' ? 'daemon' : 'ucarp processes'}\n`);
    const f = await failover(lab, cap, a, b);
    cap.stop();

    const csv = opts.get('csv');
    if (csv) writeCsv(csv, f);
    const late = [...f.present.values()].filter((x) => x * 1000 <= TARGETS.lateMs).length;
    const cpu = os.cpus();
    const costRows = [
      [
        'CPU, % of one core',
        costA.cpu.total.toFixed(2),
        costB.cpu.total.toFixed(2),
        `A <= ${TARGETS.cpuPercent}`,
        verdict(costA.cpu.total <= TARGETS.cpuPercent, reference),
      ],
      [
        '  of which user / kernel',
        `${costA.cpu.user.toFixed(2)} / ${costA.cpu.system.toFixed(2)}`,
        `${costB.cpu.user.toFixed(2)} / ${costB.cpu.system.toFixed(2)}`,
        '',
        '',
      ],
      [
        'RSS (VmRSS), MB',
        mb(costA.memory.rssKb),
        mb(costB.memory.rssKb),
        `<= ${TARGETS.rssMb}`,
        verdict(Math.max(costA.memory.rssKb, costB.memory.rssKb) / 1024 <= TARGETS.rssMb, reference),
      ],
      ['peak RSS (VmHWM), MB', mb(costA.memory.hwmKb), mb(costB.memory.hwmKb), '', ''],
      ['PSS (smaps_rollup), MB', mb(costA.memory.pssKb), mb(costB.memory.pssKb), '', ''],
    ];
    const failRows = [
      failoverRow(
        'address on B - last adv of A - bound',
        f.present,
        `all <= ${TARGETS.lateMs}`,
        reference ? null : late === VHIDS.length,
      ),
      failoverRow('first adv of B - last adv of A - bound', f.advert, '', null),
    ];
    const procs = impl === 'ours' ? 'one daemon per host' : `${VHIDS.length} ucarp processes per host`;
    const worstPresent = [...f.present.entries()].sort((x, y) => y[1] - x[1]).slice(0, 5);
    process.stdout.write(
      [
        `scale benchmark: impl=${impl} (${procs}), ${VHIDS.length} groups on eth0, A advskew ${MASTER_SKEW}, B advskew ${BACKUP_SKEW}, advbase ${ADVBASE}, deadratio ${DEADRATIO}`,
        `machine: ${cpu.length} x ${cpu[0]?.model ?? 'unknown CPU'}, Linux ${os.release()}, node ${process.version}, started ${started.toISOString()}, load average ${load0} -> ${loadavg()}`,
        '',
        `steady state: ${steadyS} s, ${steadyAdverts.length} advertisements from A (${(steadyAdverts.length / (steadyTo - gapFrom)).toFixed(1)}/s in the ${GAP_WINDOW_MS / 1000} s capture window), ` +
          `largest gap of one vhid ${steadyGap ? ms(steadyGap.seconds * 1000) : '-'} ms, ${steadyTransitions} transitions`,
        formatTable(['cost', 'host A', 'host B', 'target', 'verdict'], costRows),
        '',
        `SIGKILL of A: protocol bound ${DEADRATIO} x ${ADVBASE} + ${BACKUP_SKEW}/256 = ${(BOUND_S * 1000).toFixed(3)} ms; ` +
          `adv times from tcpdump -tt on a third host, address times from ip -ts monitor on B`,
        formatTable(
          ['after the bound (ms)', 'n', 'min', 'median', 'p95', 'max', 'target', 'verdict'],
          failRows,
        ),
        `addresses present on B by bound + ${TARGETS.lateMs} ms: ${late} / ${VHIDS.length}` +
          (f.present.size < VHIDS.length ? ` (${VHIDS.length - f.present.size} never arrived)` : ''),
        `latest: ${worstPresent.map(([v, x]) => `${groupName(v)} ${ms(x * 1000)}`).join(', ')} ms`,
        '',
      ].join('\n'),
    );
  } finally {
    await lab.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`bench failed: ${e instanceof Error ? e.stack : String(e)}\n`);
  process.exit(1);
});
