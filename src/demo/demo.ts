// `npm run demo`: three hosts in network namespaces run the ucarp supervisor with
// config/demo.yaml. The demo shows who is master of what, crashes one daemon and measures the
// takeover, restarts it, stops another gracefully, reloads a changed configuration, and
// removes everything it created: at the end, on an error, and on Ctrl-C.
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Document } from 'yaml';
import { run as ucarpctl } from '../cli/ucarpctl';
import { AddressWatch } from './addr-watch';
import {
  hostDocument,
  loadTemplate,
  masterDownMs,
  preferredHost,
  type DemoTemplate,
  type PlanGroup,
} from './config';
import { DemoDaemon } from './daemon';
import { Lab, runPrefix } from './lab';
import { LiveView, columns, groupOn, masterMap, renderTable, unsettled, type Snapshot } from './view';
import { LabError, errorMessage } from '../errors';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const UCARP = path.join(ROOT, 'bin', 'ucarp');
const TEMPLATE = path.join(ROOT, 'config', 'demo.yaml');

const POLL_MS = 100;
const REFRESH_MS = 500;
/** Far above any master-down time in the template: only a broken cluster hits it. */
const SETTLE_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 5_000;

// The script, written for the hosts and groups of config/demo.yaml.
/** Step 3 kills this host's daemon, step 4 restarts it. */
const CRASH = 'h1';
/** Step 5 stops this host's daemon with SIGTERM, then restarts it. */
const GRACEFUL = 'h2';
/** The change step 6 makes on one host: a new preference and a new group. */
const RELOAD = {
  host: 'h3',
  group: 'db',
  advskew: 200,
  added: { name: 'ntp', vhid: 60, addresses: ['192.0.2.150/24'] },
};

const out = (s = '') => process.stdout.write(s + '\n');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ms = (x: number) => `${Math.round(x)} ms`;

function preflight(): string | null {
  if (process.platform !== 'linux') return 'the demo needs Linux network namespaces';
  if (process.getuid?.() !== 0)
    return 'the demo creates network namespaces and must run as root (sudo npm run demo)';
  try {
    execFileSync('ip', ['-V'], { stdio: 'ignore' });
  } catch {
    return "the demo needs the 'ip' command of iproute2 (Debian/Ubuntu: apt-get install iproute2)";
  }
  return null;
}

function writeByRename(file: string, text: string): void {
  const tmp = `${file}.new`;
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
}

/** `ucarp --check-config` inside a host, where eth0 and the host's address exist. */
function checkConfig(ns: string, file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      'ip',
      ['netns', 'exec', ns, process.execPath, UCARP, '--check-config', '-c', file],
      (err, so, se) => {
        if (err) reject(new LabError(`${file} fails ucarp --check-config:\n${se || err.message}`));
        else resolve(so.trim());
      },
    );
  });
}

interface Move {
  group: string;
  from: string | undefined;
  to: string;
  /** From the action to the new master's "Switching to state: MASTER" log line. */
  stateMs: number | undefined;
  /** From the action to the last of the group's addresses appearing on the new master. */
  addressMs: number | undefined;
  reason: string;
  /** Other hosts that became MASTER of the group meanwhile and stepped back. */
  briefly: string[];
}

class Demo {
  lab: Lab | undefined;
  tmp: string | undefined;
  private readonly t: DemoTemplate;
  private readonly groups: PlanGroup[];
  private readonly daemons = new Map<string, DemoDaemon>();
  private readonly docs = new Map<string, Document>();
  private readonly live = new Set<string>();
  private watch: AddressWatch | undefined;
  private readonly view = new LiveView(process.stdout, process.stdout.isTTY === true);
  private readonly began = performance.now();

  constructor() {
    this.t = loadTemplate(TEMPLATE);
    this.groups = [...this.t.groups];
  }

  private get hosts(): string[] {
    return this.t.hosts.map((h) => h.name);
  }

  private daemon(host: string): DemoDaemon {
    const d = this.daemons.get(host);
    if (!d) throw new LabError(`no demo host ${host}`);
    return d;
  }

  async run(): Promise<void> {
    out(`ucarp demo: ${this.hosts.length} hosts, ${this.groups.length} CARP groups, failovers measured live`);
    out(`configuration template: ${path.relative(process.cwd(), TEMPLATE) || TEMPLATE}`);
    await this.build();
    await this.startAll();
    await this.crash(CRASH);
    this.section(4, `${CRASH} comes back: restart its daemon`);
    await this.restart(CRASH);
    await this.gracefulStop(GRACEFUL);
    out();
    out(`  ${GRACEFUL} comes back: restart its daemon`);
    await this.restart(GRACEFUL);
    await this.reload();
  }

  // 1. The lab, the per-host files, and their check.
  private async build(): Promise<void> {
    this.section(1, `Lab: ${this.hosts.length} hosts on one bridge, each in its own network namespace`);
    const lab = Lab.create(runPrefix(), this.t.hosts, (l) => (this.lab = l));
    out(`  namespaces: ${lab.namespaces.join(' ')}`);
    this.watch = new AddressWatch(lab);
    this.tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ucdemo-'));
    out(`  files: ${this.tmp}`);
    for (const h of lab.hosts) {
      const file = path.join(this.tmp, `${h.name}.yaml`);
      const socket = path.join(this.tmp, `${h.name}.sock`);
      const doc = hostDocument(this.t, h, socket);
      fs.writeFileSync(file, String(doc));
      this.docs.set(h.name, doc);
      this.daemons.set(h.name, new DemoDaemon(lab, h, file, socket, UCARP));
    }
    out();
    out('  advskew per host (the lowest is the preferred master):');
    const rows = [['', ...this.groups.map((g) => g.name)]];
    for (const h of lab.hosts)
      rows.push([`${h.name} ${h.address}`, ...this.groups.map((g) => String(g.advskew.get(h.name) ?? '-'))]);
    for (const l of columns(rows)) out(`    ${l}`);
    out();
    const checks = await Promise.all(lab.hosts.map((h) => checkConfig(h.ns, this.daemon(h.name).file)));
    for (const [i, c] of checks.entries())
      out(`  ${lab.hosts[i].name}: ucarp --check-config: ${c.replace(/^.*: /, '')}`);
  }

  // 2. All daemons at once, until every group has exactly one master.
  private async startAll(): Promise<void> {
    this.section(2, 'Start ucarp on every host and wait for one master per group');
    const t0 = performance.now();
    for (const h of this.hosts) {
      this.daemon(h).start();
      this.live.add(h);
    }
    out('  every group starts as BACKUP; the host with the lowest advskew times out first');
    out('  (after 3 x advbase + advskew/256 s without advertisements) and becomes MASTER.');
    out();
    const snap = await this.settle('one master per group', true);
    const settled = performance.now() - t0;
    // A few more refreshes: the table is live, and nothing moves once settled.
    for (let i = 0; i < 2; i++) {
      await sleep(REFRESH_MS);
      this.view.show(this.title(), renderTable(await this.snapshot()));
    }
    this.view.release();
    const masters = masterMap(snap);
    out(
      `  settled ${ms(settled)} after start: ${this.groups.map((g) => `${g.name} on ${masters.get(g.name)}`).join(', ')}`,
    );
    const sock = this.daemon(this.hosts[0]).socket;
    out();
    out(`  what an operator on ${this.hosts[0]} sees:  ucarpctl --socket ${sock} status`);
    const r = await ucarpctl(['--socket', sock, 'status']);
    if (r.code !== 0) throw new LabError(`ucarpctl status failed: ${r.stderr}`);
    for (const l of r.stdout.trimEnd().split('\n')) out(`    ${l}`);
  }

  // 3. SIGKILL: no goodbye, the backups notice the silence.
  private async crash(host: string): Promise<void> {
    this.section(3, `Crash: SIGKILL the daemon on ${host} (it cannot say goodbye)`);
    const before = masterMap(await this.snapshot());
    const t0 = this.daemon(host).stop('SIGKILL');
    this.live.delete(host);
    const snap = await this.settle(`the groups of ${host} to move`, false);
    const moves = this.moves(before, snap, t0);
    for (const m of moves) {
      const g = this.plan(m.group);
      const st = groupOn(snap, m.to, m.group);
      const bound = st ? masterDownMs(g, st.advbase, st.advskew) : undefined;
      const took = m.addressMs ?? m.stateMs;
      const verdict =
        took === undefined || bound === undefined
          ? ''
          : took <= bound
            ? 'within'
            : `${ms(took - bound)} over`;
      out(
        `  takeover ${m.group}: ${m.from} -> ${m.to} in ${took === undefined ? '?' : ms(took)}` +
          this.detail(m),
      );
      if (bound !== undefined && st)
        out(
          `      bound ${ms(bound)} = ${g.deadratio} x ${st.advbase} s + ${st.advskew}/256 s (${m.to}'s master-down time): ${verdict}`,
        );
    }
    if (moves.length > 0)
      out(
        `  (a backup's timer runs from ${host}'s last advertisement, sent up to one interval before the kill)`,
      );
    const elsewhere = this.groups.filter((g) => before.get(g.name) !== host).map((g) => g.name);
    this.reportQuiet(elsewhere, t0, `not mastered by ${host}`);
    const stale = this.groupAddressesOn(snap, host);
    if (stale.length > 0)
      out(
        `  ${host} still holds ${stale.join(', ')}: a killed daemon cannot remove them; its next start does.`,
      );
    this.printTable(snap);
  }

  // A daemon comes back: preempting groups return to it, the others stay.
  private async restart(host: string): Promise<void> {
    const before = masterMap(await this.snapshot());
    const t0 = this.daemon(host).start();
    this.live.add(host);
    const snap = await this.settle(`${host} to rejoin`, false);
    const removed = this.watch?.removed(host, t0) ?? [];
    if (removed.length > 0)
      out(`  at start it removed the addresses it is not master for: ${removed.join(', ')}`);
    const moves = this.moves(before, snap, t0);
    for (const m of moves) {
      const took = m.addressMs ?? m.stateMs;
      out(
        `  ${m.group}: ${m.from} -> ${m.to} ${took === undefined ? '?' : ms(took)} after the restart` +
          this.detail(m),
      );
    }
    for (const g of this.groups) {
      const master = masterMap(snap).get(g.name);
      if (!g.advskew.has(host) || master === host) continue;
      const pref = preferredHost(g, this.live) === host;
      out(
        `  ${g.name}: ${host} is BACKUP, ${master} stays master` +
          (pref && !g.preempt ? ` (${host} has the lowest advskew, but preempt is off)` : ''),
      );
    }
    this.printTable(snap);
  }

  // 5. SIGTERM: the daemon bows out with an advertisement the backups act on at once.
  private async gracefulStop(host: string): Promise<void> {
    this.section(5, `Graceful stop: SIGTERM the daemon on ${host}`);
    const before = masterMap(await this.snapshot());
    const t0 = this.daemon(host).stop('SIGTERM');
    this.live.delete(host);
    const snap = await this.settle(`the groups of ${host} to move`, false);
    for (const m of this.moves(before, snap, t0)) {
      const g = this.plan(m.group);
      const st = groupOn(snap, m.to, m.group);
      const crash = st ? ` (a crash would take up to ${ms(masterDownMs(g, st.advbase, st.advskew))})` : '';
      const took = m.addressMs ?? m.stateMs;
      out(`  takeover ${m.group}: ${m.from} -> ${m.to} in ${took === undefined ? '?' : ms(took)}${crash}`);
    }
    await this.exited(host);
    const removed = this.watch?.removed(host, t0) ?? [];
    out(`  ${host} advertised advskew 255 on its way out and removed ${removed.join(', ') || 'nothing'};`);
    out('  the backups took over at once instead of waiting for their master-down timer.');
    const elsewhere = this.groups.filter((g) => before.get(g.name) !== host).map((g) => g.name);
    this.reportQuiet(elsewhere, t0, `not mastered by ${host}`);
    this.printTable(snap);
  }

  // 6. Edit one host's file, check it, install it, `ucarpctl reload`.
  private async reload(): Promise<void> {
    const { host, group, advskew, added } = RELOAD;
    const d = this.daemon(host);
    const g = this.plan(group);
    const old = g.advskew.get(host);
    this.section(6, `Reload: change ${host}'s configuration while everything runs`);
    out(`  edit ${d.file}:`);
    out(`    groups.${group}.advskew: ${old} -> ${advskew}   (${host} gives up its preference for ${group})`);
    out(
      `    groups.${added.name}: new, vhid ${added.vhid}, ${added.addresses.join(', ')}   (only ${host} runs it)`,
    );
    const doc = this.docs.get(host) as Document;
    doc.setIn(['groups', group, 'advskew'], advskew);
    doc.setIn(['groups', added.name], doc.createNode({ vhid: added.vhid, addresses: added.addresses }));
    // Checked under another name first: the daemon watches its file and would reload it at once.
    const next = `${d.file}.next`;
    fs.writeFileSync(next, String(doc));
    const check = await checkConfig(d.host.ns, next);
    out(`  ucarp --check-config: ${check.replace(/^.*: /, '')}`);
    g.advskew.set(host, advskew);
    this.groups.push({
      name: added.name,
      vhid: added.vhid,
      addresses: added.addresses,
      preempt: false,
      advbase: g.advbase,
      deadratio: g.deadratio,
      advskew: new Map([[host, 0]]),
    });
    const before = masterMap(await this.snapshot());
    fs.rmSync(next);
    writeByRename(d.file, String(doc));
    const t0 = performance.now();
    out(`  $ ucarpctl --socket ${d.socket} reload`);
    const r = await ucarpctl(['--socket', d.socket, 'reload']);
    if (r.code !== 0) throw new LabError(`ucarpctl reload failed:\n${r.stderr}`);
    for (const l of r.stdout.trimEnd().split('\n')) out(`  ${l}`);
    const snap = await this.settle('the reload to take effect', false);
    for (const m of this.moves(before, snap, t0)) {
      const took = m.addressMs ?? m.stateMs;
      const what = m.from ? `${m.from} -> ${m.to}` : `new, master on ${m.to}`;
      out(
        `  ${m.group}: ${what} ${took === undefined ? '' : ms(took) + ' after the reload'}${this.detail(m)}`,
      );
    }
    const untouched = this.groups.filter((x) => x.name !== group && x.name !== added.name).map((x) => x.name);
    this.reportQuiet(untouched, t0, 'not changed by the reload');
    this.printTable(snap);
  }

  /** Stops the daemons (they bow out and remove their addresses), then removes the lab. */
  async finish(): Promise<void> {
    this.section(7, 'Clean up');
    const running = [...this.daemons.values()].filter((d) => d.running);
    for (const d of running) d.stop('SIGTERM');
    await Promise.race([Promise.all(running.map((d) => d.exited())), sleep(STOP_TIMEOUT_MS)]);
    out(`  stopped ${running.length} daemon(s): ${running.map((d) => d.name).join(', ')}`);
    for (const line of teardown()) out(`  ${line}`);
    out();
    out(`demo finished in ${((performance.now() - this.began) / 1000).toFixed(1)} s`);
  }

  /** The last lines of every daemon's log, to explain a failure. */
  logs(): string {
    return [...this.daemons.values()]
      .filter((d) => d.lines.length > 0)
      .map((d) => `--- ucarp on ${d.name} (last lines) ---\n${d.tail()}`)
      .join('\n');
  }

  private section(n: number, title: string): void {
    out();
    out(`[${n}] ${title}`);
  }

  private title(): string {
    const t = ((performance.now() - this.began) / 1000).toFixed(1);
    return `status at ${t} s, from the control sockets (per host: state and advskew)`;
  }

  private plan(name: string): PlanGroup {
    const g = this.groups.find((x) => x.name === name);
    if (!g) throw new LabError(`no group ${name} in the plan`);
    return g;
  }

  private async snapshot(): Promise<Snapshot> {
    const lab = this.lab as Lab;
    const status = new Map(
      await Promise.all(
        this.hosts
          .filter((h) => this.live.has(h))
          .map(async (h) => [h, await this.daemon(h).status()] as const),
      ),
    );
    const addresses = new Map(
      await Promise.all(lab.hosts.map(async (h) => [h.name, await lab.addresses(h)] as const)),
    );
    return { hosts: this.hosts, groups: this.groups, live: new Set(this.live), status, addresses };
  }

  /**
   * Polls until the cluster matches the plan. With `live` the table is refreshed meanwhile;
   * otherwise only a terminal sees it refresh (a log gets the settled table once).
   */
  private async settle(what: string, live: boolean): Promise<Snapshot> {
    const end = performance.now() + SETTLE_TIMEOUT_MS;
    let drawn = 0;
    for (;;) {
      for (const h of this.live) {
        const d = this.daemon(h);
        if (d.crashed) throw new LabError(`ucarp on ${h} ${d.crashed}`);
      }
      const snap = await this.snapshot();
      const why = unsettled(snap);
      const now = performance.now();
      if ((live || process.stdout.isTTY) && (now - drawn >= REFRESH_MS || why.length === 0)) {
        this.view.show(this.title(), renderTable(snap));
        drawn = now;
      }
      if (why.length === 0) return snap;
      if (now > end)
        throw new LabError(
          `no settled cluster after ${SETTLE_TIMEOUT_MS} ms waiting for ${what}: ${why.join('; ')}`,
        );
      await sleep(POLL_MS);
    }
  }

  private printTable(snap: Snapshot): void {
    out();
    // On a terminal the table just refreshed in place is this one already.
    if (!process.stdout.isTTY) this.view.show(this.title(), renderTable(snap));
    this.view.release();
  }

  /** Groups whose master differs from `before`, with the times measured from `t0`. */
  private moves(before: Map<string, string>, after: Snapshot, t0: number): Move[] {
    const now = masterMap(after);
    const moves: Move[] = [];
    for (const g of this.groups) {
      const to = now.get(g.name);
      if (!to || before.get(g.name) === to) continue;
      const tr = this.daemon(to).transitionTo(g.name, 'MASTER', t0);
      const times = g.addresses.map((a) => this.watch?.added(to, a.split('/')[0], t0));
      const addressMs = times.every((x) => x !== undefined)
        ? Math.max(...(times as number[])) - t0
        : undefined;
      moves.push({
        group: g.name,
        from: before.get(g.name),
        to,
        stateMs: tr ? tr.t - t0 : undefined,
        addressMs,
        reason: tr?.reason ?? '',
        briefly: this.hosts.filter((h) => h !== to && this.daemon(h).transitionTo(g.name, 'MASTER', t0)),
      });
    }
    return moves;
  }

  /** How the time was measured and why the group moved. */
  private detail(m: Move): string {
    const parts: string[] = [];
    if (m.addressMs !== undefined) parts.push(`address up on ${m.to}`);
    else if (m.stateMs !== undefined) parts.push(`MASTER logged by ${m.to}`);
    if (m.reason) parts.push(`reason: ${m.reason}`);
    if (m.briefly.length > 0)
      parts.push(`${m.briefly.join(', ')} took it too, then yielded to ${m.to}'s shorter interval`);
    return parts.length > 0 ? `  (${parts.join('; ')})` : '';
  }

  /** Says which of `groups` had no state change on any host since `t0`, and which did. */
  private reportQuiet(groups: string[], t0: number, why: string): void {
    const changed = groups.filter((name) =>
      [...this.daemons.values()].some((d) => d.transitions.some((tr) => tr.t >= t0 && tr.group === name)),
    );
    const quiet = groups.filter((name) => !changed.includes(name));
    if (quiet.length > 0) out(`  no state change on any host for ${quiet.join(', ')} (${why})`);
    if (changed.length > 0) out(`  state changes meanwhile in ${changed.join(', ')} (${why})`);
  }

  private groupAddressesOn(snap: Snapshot, host: string): string[] {
    const mine = new Set(this.groups.flatMap((g) => g.addresses.map((a) => a.split('/')[0])));
    return (snap.addresses.get(host) ?? []).filter((a) => mine.has(a));
  }

  private async exited(host: string): Promise<void> {
    await Promise.race([this.daemon(host).exited(), sleep(STOP_TIMEOUT_MS)]);
    if (this.daemon(host).running) throw new LabError(`ucarp on ${host} did not exit after SIGTERM`);
  }
}

// Teardown is reachable from the normal end, an error, a signal and process exit; whichever
// comes first does the work.
let current: Demo | undefined;
let tornDown = false;

function teardown(): string[] {
  if (tornDown || !current) return [];
  tornDown = true;
  const done: string[] = [];
  const { lab, tmp } = current;
  if (lab) {
    lab.destroySync();
    done.push(`deleted namespaces: ${lab.namespaces.join(' ')}`);
  }
  if (tmp) {
    fs.rmSync(tmp, { recursive: true, force: true });
    done.push(`removed ${tmp}`);
  }
  return done;
}

function onSignal(sig: NodeJS.Signals, code: number): void {
  process.stdout.write(`\n${sig}: stopping the demo and removing what it created\n`);
  for (const line of teardown()) process.stdout.write(`  ${line}\n`);
  process.exit(code);
}

export async function main(): Promise<number> {
  const problem = preflight();
  if (problem) {
    process.stderr.write(`demo: ${problem}\n`);
    return 1;
  }
  process.on('SIGINT', () => onSignal('SIGINT', 130));
  process.on('SIGTERM', () => onSignal('SIGTERM', 143));
  process.on('SIGHUP', () => onSignal('SIGHUP', 129));
  process.on('exit', () => teardown());
  process.on('uncaughtException', (e) => {
    process.stderr.write(`demo failed: ${e.stack ?? e.message}\n`);
    for (const line of teardown()) process.stderr.write(`  ${line}\n`);
    process.exit(1);
  });
  let demo: Demo;
  try {
    demo = new Demo();
  } catch (e) {
    process.stderr.write(`demo: ${errorMessage(e)}\n`);
    return 1;
  }
  current = demo;
  try {
    await demo.run();
    await demo.finish();
    return 0;
  } catch (e) {
    process.stdout.write('\n');
    process.stderr.write(`demo failed: ${errorMessage(e)}\n`);
    const logs = demo.logs();
    if (logs) process.stderr.write(logs + '\n');
    for (const line of teardown()) process.stderr.write(`  ${line}\n`);
    return 1;
  }
}

if (require.main === module) {
  void main().then((code) => process.exit(code));
}
