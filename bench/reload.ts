// Reload benchmark (not a test): host A runs a 255-group file and is master of every group,
// host B is backup of the 254 stable ones. 100 reloads (write by rename, then SIGHUP)
// alternately remove and re-add the 255th group. Reported, from tcpdump -tt on a third host:
// write -> the added group's first advertisement, write -> the removed group's bow-out, the
// largest gap between two advertisements of any stable group over the whole run, and the
// stable groups' transitions from the daemons' logs.
// Usage: node dist/bench/reload.js [--reloads N] [--pause MS]
//
// With --sizes (e.g. --sizes 255,4080): the CPU of reloads by file size instead. One daemon,
// its groups over 16 interfaces (255 per interface, as bench/scale lays them out), master of
// all; its file rewritten by rename (the watcher reloads it) to add, then remove, one group,
// --reloads times. Reported per reload: write -> summary, the daemon's CPU (every thread; and
// its main thread alone) over 2.5 s from the write minus its rate over the 2.5 s before the
// write, and the largest interval between two advertisements of any other group around it,
// captured on a second host. The first reload is the one right after start-up. --daemon PATH
// runs another build's bin/ucarp (the code before a change).
// Usage: node dist/bench/reload.js --sizes 255,4080 [--reloads 6] [--daemon PATH]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Lab, waitFor } from '../test/helpers/netns';
import { SupervisorProc, configYaml, writeByRename } from '../test/helpers/supervisor-proc';
import { Capture, epochNow, formatTable, isBowOut, ms, parseOptions, sleep, summarize } from './common';
import { OUR_UCARP } from '../test/helpers/carp-proc';
import { ourGroups } from './scale-fleets';
import {
  CpuWindow,
  MAX_SLOTS,
  addSegments,
  CLK_TCK,
  cpuTimes,
  layoutVip,
  mcastAddress,
  processTree,
  scaleLayout,
  type LayoutGroup,
  LineClock,
  MAX_VHID,
  execedPid,
  groupName,
  groupStates,
  largestGaps,
  loadavg,
  mb,
  memoryOf,
  parseTransition,
  range,
  scaleGroups,
  worstGap,
} from './scale-lib';

const STABLE = range(1, MAX_VHID - 1);
/** The group that comes and goes; only A has it, so B never contends for it. */
const TOGGLED = MAX_VHID;
const ADVBASE = 1;
const DEADRATIO = 3;
const MASTER_SKEW = 0;
const BACKUP_SKEW = 100;
/**
 * A new group starts as backup and may advertise only after its master-down timeout
 * (deadratio x advbase + advskew/256): the protocol's share of write -> first advertisement.
 */
const START_BOUND_S = DEADRATIO * ADVBASE + MASTER_SKEW / 256;
const TARGETS = { gapMs: ADVBASE * 1000 + 20, transitions: 0 };
const SETTLE_MS = 3000;

interface ReloadSample {
  kind: 'add' | 'remove';
  /** Write -> the daemon's reload summary line reaching us, ms. */
  toSummary: number;
  /** Write -> first advertisement (add) or bow-out (remove) on the wire, ms. */
  toWire: number;
}

function summaryRow(label: string, values: number[], target = '', verdict = ''): string[] {
  if (values.length === 0) return [label, '0', '-', '-', '-', '-', target, verdict];
  const s = summarize(values);
  return [label, String(s.n), ms(s.min), ms(s.median), ms(s.p95), ms(s.max), target, verdict];
}

/** The reload CPU window, as docs/performance.md "Reload CPU and load time by size" measured it. */
const CPU_WINDOW_MS = 2500;
const SIZE_PAUSE_MS = 4500;
const PER_INTERFACE = 255;

/** CPU seconds of the daemon's main thread alone (the event loop that times advertisements). */
function mainThreadCpu(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/task/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / CLK_TCK;
}

interface SizeSample {
  kind: 'add' | 'remove';
  toSummaryMs: number;
  cpuMs: number;
  /** The main thread's share, over its own steady rate. */
  mainMs: number;
  gapMs: number | undefined;
}

async function bySize(n: number, reloads: number, daemon: string): Promise<string[][]> {
  const interfaces = Math.max(1, Math.min(16, Math.ceil(n / PER_INTERFACE)));
  const groups = scaleLayout(n, interfaces, 1);
  // A destination no layout uses, on the first interface.
  const extra: LayoutGroup = {
    index: n + 1,
    name: `g${n + 1}`,
    vhid: 1,
    iface: 0,
    mcast: MAX_SLOTS,
    vip: layoutVip(MAX_SLOTS, 1),
  };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ucarp-reload-size-'));
  const lab = await Lab.create({ hosts: 2, segments: Math.min(interfaces, 3) });
  const load0 = loadavg();
  try {
    await addSegments(lab, interfaces);
    const [hA, hB] = [lab.host(1), lab.host(2)];
    const file = path.join(dir, 'ucarp.yaml');
    const socket = path.join(dir, 'a.sock');
    const yaml = (gs: readonly LayoutGroup[]) =>
      configYaml(ourGroups(gs, 'master', { protocol: 'carp', family: 4 }), { socket });
    fs.writeFileSync(file, yaml(groups));
    const child = lab.spawn(hA, process.execPath, [daemon, '-c', file]);
    const clock = new LineClock(child);
    const pid = await execedPid(child, 'node');
    const masters = () => {
      const states = new Map<string, string>();
      for (const { line } of clock.lines) {
        const t = parseTransition(line);
        if (t) states.set(t.group, t.state);
      }
      return [...states.values()].filter((s) => s === 'MASTER').length;
    };
    await waitFor(() => masters() >= n, 60000 + n * 20, `every group MASTER on ${hA.ns}`, 200);
    const caps = hB.ifaces.map((iface) => new Capture(lab, hB, iface));
    await Promise.all(caps.map((c) => c.ready()));
    await sleep(SETTLE_MS);
    const cpu = () =>
      processTree(hA.ns, pid).reduce((sum, p) => sum + cpuTimes(p).user + cpuTimes(p).system, 0);
    /** CPU seconds per second of the whole daemon and of its main thread over `windowMs`. */
    const rates = async (windowMs: number) => {
      const [c0, m0, t0] = [cpu(), mainThreadCpu(pid), epochNow()];
      await sleep(windowMs);
      const dt = epochNow() - t0;
      return { all: (cpu() - c0) / dt, main: (mainThreadCpu(pid) - m0) / dt };
    };
    const memBefore = memoryOf(pid);
    const samples: SizeSample[] = [];
    // Packets from a second before the first write on.
    await sleep(ADVBASE * 1000);
    const marks = caps.map((c) => c.packets.length);
    const srcs = new Set(hA.ips);
    const stable = new Set(groups.map((g) => `${g.iface} ${mcastAddress(g.mcast)} ${g.vhid}`));
    for (let i = 0; i < reloads; i++) {
      const kind = i % 2 === 0 ? 'add' : 'remove';
      // The steady rate just before each reload (a start-up's tail or the group added by the
      // previous reload taking over would bias a single measurement made once).
      const steady = await rates(CPU_WINDOW_MS);
      const mark = clock.lines.length;
      const c0 = cpu();
      const m0 = mainThreadCpu(pid);
      const t0 = epochNow();
      writeByRename(file, yaml(kind === 'add' ? [...groups, extra] : groups));
      const summary = await clock.next(
        new RegExp(`reload \\(.*\\): .*${kind === 'add' ? 'added' : 'removed'} 1 \\(${extra.name}\\)`),
        mark,
        30000,
      );
      await sleep(Math.max(0, t0 * 1000 + CPU_WINDOW_MS - epochNow() * 1000));
      const cpuMs = (cpu() - c0 - steady.all * (epochNow() - t0)) * 1000;
      const mainMs = (mainThreadCpu(pid) - m0 - steady.main * (epochNow() - t0)) * 1000;
      // Past the added group's takeover (its dead time after the reload) before the next
      // baseline window.
      await sleep(SIZE_PAUSE_MS - CPU_WINDOW_MS + ADVBASE * 1000);
      // Every other group's largest interval, from a second before the write to now.
      let gap: number | undefined;
      caps.forEach((c, iface) => {
        const last = new Map<string, number>();
        for (let k = marks[iface]; k < c.packets.length; k++) {
          const p = c.packets[k];
          const key = `${iface} ${p.dst} ${p.vhid}`;
          if (!srcs.has(p.src) || p.t < t0 - ADVBASE || !stable.has(key)) continue;
          const prev = last.get(key);
          if (prev !== undefined && (gap === undefined || (p.t - prev) * 1000 > gap))
            gap = (p.t - prev) * 1000;
          last.set(key, p.t);
        }
      });
      samples.push({ kind, toSummaryMs: (summary.t - t0) * 1000, cpuMs, mainMs, gapMs: gap });
      process.stderr.write(
        `${n} groups, reload ${i + 1}/${reloads} (${kind}): summary ${ms(samples[i].toSummaryMs)} ms, CPU ${ms(cpuMs)} ms (main thread ${ms(mainMs)}), largest interval ${gap === undefined ? '-' : ms(gap)} ms\n`,
      );
    }
    const memAfter = memoryOf(pid);
    for (const c of caps) c.stop();
    return samples.map((x, i) => [
      String(n),
      i === 0 ? 'first' : x.kind,
      ms(x.toSummaryMs),
      ms(x.cpuMs),
      ms(x.mainMs),
      x.gapMs === undefined ? '-' : ms(x.gapMs),
      i === 0 ? `${mb(memBefore.rssKb)} -> ${mb(memAfter.rssKb)}` : '',
      i === 0 ? `${load0} -> ${loadavg()}` : '',
    ]);
  } finally {
    await lab.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function sizes(list: number[], reloads: number, daemon: string): Promise<void> {
  const rows: string[][] = [];
  for (const n of list) rows.push(...(await bySize(n, reloads, daemon)));
  process.stdout.write(
    `reload CPU by size: ${daemon}, ${new Date().toISOString()}\n` +
      formatTable(
        [
          'groups',
          'reload',
          'write -> summary ms',
          'CPU ms',
          'main thread ms',
          'largest interval ms',
          'RSS MB',
          'load average',
        ],
        rows,
      ) +
      '\n',
  );
}

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2), ['reloads', 'pause', 'sizes', 'daemon']);
  if (opts.has('sizes')) {
    const list = String(opts.get('sizes')).split(',').map(Number);
    if (list.some((n) => !Number.isInteger(n) || n < 1 || n > 16 * PER_INTERFACE))
      throw new Error('--sizes takes group counts 1..4080');
    return sizes(list, Number(opts.get('reloads') ?? 6), String(opts.get('daemon') ?? OUR_UCARP));
  }
  const reloads = Number(opts.get('reloads') ?? 100);
  const pauseMs = Number(opts.get('pause') ?? 500);
  if (!Number.isInteger(reloads) || reloads < 1) throw new Error('--reloads must be a positive whole number');
  if (!(pauseMs >= 0)) throw new Error('--pause must be a number of milliseconds');
  const started = new Date();
  // Other work on the machine delays a daemon's wake-ups: the figures are read next to it.
  const load0 = loadavg();

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ucarp-reload-'));
  const lab = await Lab.create({ hosts: 3 });
  try {
    const [hA, hB, hC] = [lab.host(1), lab.host(2), lab.host(3)];
    const cap = new Capture(lab, hC);
    await cap.ready();

    const fileA = path.join(dir, 'a', 'ucarp.yaml');
    const fileB = path.join(dir, 'b', 'ucarp.yaml');
    fs.mkdirSync(path.dirname(fileA));
    fs.mkdirSync(path.dirname(fileB));
    const socketA = path.join(dir, 'a.sock');
    const yamlA = (withToggled: boolean) =>
      configYaml(scaleGroups(withToggled ? [...STABLE, TOGGLED] : STABLE, MASTER_SKEW), { socket: socketA });
    fs.writeFileSync(fileA, yamlA(true));
    fs.writeFileSync(
      fileB,
      configYaml(scaleGroups(STABLE, BACKUP_SKEW), { socket: path.join(dir, 'b.sock') }),
    );

    process.stderr.write(`starting ${STABLE.length + 1} groups on ${hA.ns} (master)\n`);
    const a = new SupervisorProc(lab, hA, fileA);
    const clockA = new LineClock(a.child);
    const pidA = await execedPid(a.child, 'node');
    const everyState = (p: SupervisorProc, state: string, n: number) => () =>
      [...groupStates(p.lines).values()].filter((s) => s === state).length === n;
    await waitFor(everyState(a, 'MASTER', STABLE.length + 1), 60000, `every group MASTER on ${hA.ns}`, 100);
    process.stderr.write(`starting ${STABLE.length} groups on ${hB.ns} (backup)\n`);
    const b = new SupervisorProc(lab, hB, fileB);
    await waitFor(everyState(b, 'BACKUP', STABLE.length), 60000, `every group BACKUP on ${hB.ns}`, 100);
    await sleep(SETTLE_MS);

    const fromA = a.lines.length;
    const fromB = b.lines.length;
    const runFrom = epochNow();
    const cpuA = new CpuWindow([pidA]);
    const memBefore = memoryOf(pidA);
    const srcA = hA.ips[0];
    const toggledName = groupName(TOGGLED);
    const samples: ReloadSample[] = [];
    let present = true;
    for (let i = 0; i < reloads; i++) {
      present = !present;
      const kind = present ? 'add' : 'remove';
      const mark = cap.packets.length;
      const lineMark = clockA.lines.length;
      const t0 = epochNow();
      writeByRename(fileA, yamlA(present));
      a.signal('SIGHUP');
      const summary = await clockA.next(
        new RegExp(`reload \\(.*\\): .*${present ? 'added' : 'removed'} 1 \\(${toggledName}\\)`),
        lineMark,
        10000,
      );
      const wire = await cap.next(
        (p) => p.src === srcA && p.vhid === TOGGLED && (present ? !isBowOut(p) : isBowOut(p)),
        mark,
        (START_BOUND_S + 10) * 1000,
      );
      const sample = { kind, toSummary: (summary.t - t0) * 1000, toWire: (wire.t - t0) * 1000 } as const;
      samples.push(sample);
      process.stderr.write(
        `reload ${i + 1}/${reloads} (${kind}): summary ${ms(sample.toSummary)} ms, on the wire ${ms(sample.toWire)} ms\n`,
      );
      // Lets the watcher's debounced file-change reload (of the same content) run before the
      // next write, so each sample measures one change.
      await sleep(pauseMs);
    }
    const runTo = epochNow();
    const cpuPercent = cpuA.percent();
    const memAfter = memoryOf(pidA);
    cap.stop();

    const gaps = largestGaps(cap.packets, srcA, new Set(STABLE), runFrom, runTo);
    const worst = worstGap(gaps);
    const overTarget = [...gaps.values()].filter((g) => g.seconds * 1000 > TARGETS.gapMs).length;
    const stableTransitions = (lines: string[]) =>
      lines.map(parseTransition).filter((t) => t !== null && t.group !== toggledName).length;
    const transA = stableTransitions(a.lines.slice(fromA));
    const transB = stableTransitions(b.lines.slice(fromB));
    const reloadLines = a.lines.slice(fromA).filter((l) => /reload \(/.test(l));
    const rejected = reloadLines.filter((l) => /rejected/.test(l)).length;

    const adds = samples.filter((s) => s.kind === 'add');
    const removes = samples.filter((s) => s.kind === 'remove');
    const worstGapMs = worst ? worst.seconds * 1000 : 0;
    const rows = [
      summaryRow(
        'add: write -> first advertisement',
        adds.map((s) => s.toWire),
      ),
      summaryRow(
        `add: same, minus the ${START_BOUND_S * 1000} ms start bound`,
        adds.map((s) => s.toWire - START_BOUND_S * 1000),
      ),
      summaryRow(
        'add: write -> reload summary logged',
        adds.map((s) => s.toSummary),
      ),
      summaryRow(
        'remove: write -> bow-out advertisement',
        removes.map((s) => s.toWire),
      ),
      summaryRow(
        'remove: write -> reload summary logged',
        removes.map((s) => s.toSummary),
      ),
    ];
    const cpu = os.cpus();
    process.stdout.write(
      [
        `reload benchmark: ${reloads} reloads (write by rename + SIGHUP, ${pauseMs} ms pause), ${STABLE.length} stable groups + ${toggledName} toggled on A; ` +
          `A advskew ${MASTER_SKEW}, B advskew ${BACKUP_SKEW} (stable groups only), advbase ${ADVBASE}, deadratio ${DEADRATIO}`,
        `machine: ${cpu.length} x ${cpu[0]?.model ?? 'unknown CPU'}, Linux ${os.release()}, node ${process.version}, started ${started.toISOString()}, load average ${load0} -> ${loadavg()}`,
        '',
        formatTable(['reload latency (ms)', 'n', 'min', 'median', 'p95', 'max', 'target', 'verdict'], rows),
        '',
        formatTable(
          ['stable groups over the run', 'value', 'target', 'verdict'],
          [
            [
              'largest advertisement gap, ms',
              ms(worstGapMs),
              `<= ${TARGETS.gapMs}`,
              worstGapMs <= TARGETS.gapMs ? 'met' : 'MISSED',
            ],
            [
              'groups with a gap over the target',
              String(overTarget),
              '0',
              overTarget === 0 ? 'met' : 'MISSED',
            ],
            [
              'transitions on A',
              String(transA),
              String(TARGETS.transitions),
              transA === 0 ? 'met' : 'MISSED',
            ],
            [
              'transitions on B',
              String(transB),
              String(TARGETS.transitions),
              transB === 0 ? 'met' : 'MISSED',
            ],
          ],
        ),
        worst
          ? `largest gap: ${groupName(worst.vhid)}, ending ${ms((worst.at - runFrom) * 1000, 0)} ms into the run`
          : '',
        `run: ${ms((runTo - runFrom) * 1000, 0)} ms, ${reloadLines.length} reload lines on A (${rejected} rejected), ` +
          `A's CPU ${cpuPercent.total.toFixed(2)} % of one core, RSS ${mb(memBefore.rssKb)} -> ${mb(memAfter.rssKb)} MB`,
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
