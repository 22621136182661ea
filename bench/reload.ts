// Reload benchmark (not a test): host A runs a 255-group file and is master of every group,
// host B is backup of the 254 stable ones. 100 reloads (write by rename, then SIGHUP)
// alternately remove and re-add the 255th group. Reported, from tcpdump -tt on a third host:
// write -> the added group's first advertisement, write -> the removed group's bow-out, the
// largest gap between two advertisements of any stable group over the whole run, and the
// stable groups' transitions from the daemons' logs.
// Usage: node dist/bench/reload.js [--reloads N] [--pause MS]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Lab, waitFor } from '../test/helpers/netns';
import { SupervisorProc, configYaml, writeByRename } from '../test/helpers/supervisor-proc';
import { Capture, epochNow, formatTable, isBowOut, ms, parseOptions, sleep, summarize } from './common';
import {
  CpuWindow,
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

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2), ['reloads', 'pause']);
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
