// The groups of one bench host under each implementation the scale bench compares: our daemon
// (one process, one YAML file), Debian's ucarp 1.5.2 (one process per group) and keepalived
// 2.2.7 (one VRRPv2 vrrp_instance per group in one configuration). Each fleet reports the
// state lines of its groups with the time they reached us, its processes, and a hard kill.
import fs from 'node:fs';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import type { Lab, Host } from '../test/helpers/netns';
import { SupervisorProc, configYaml, type TestGroup } from '../test/helpers/supervisor-proc';
import { DEBIAN_UCARP } from '../test/helpers/carp-proc';
import { epochNow, sleep } from './common';
import { masterDownIntervalMs } from '../src/engine/vrrp-rules';
import {
  execedPid,
  mcastAddress,
  parseTransition,
  processTree,
  vipPrefix,
  type Family,
  type LayoutGroup,
} from './scale-lib';

export type Impl = 'ours' | 'ucarp' | 'keepalived';
export const IMPLS: readonly Impl[] = ['ours', 'ucarp', 'keepalived'];
export type Role = 'master' | 'backup';
/** What our daemon runs; keepalived always runs VRRP (v2 for CARP over IPv4, else v3). */
export type Protocol = 'carp' | 'vrrp3';

/** The protocol and address family of a run, the same for every group. */
export interface Flavor {
  protocol: Protocol;
  family: Family;
}

export const KEEPALIVED = '/usr/sbin/keepalived';
export const ADVBASE = 1;
export const DEADRATIO = 3;

/**
 * How each implementation is told who is master, and the master-down timeout that follows
 * from it (docs/protocol.md §8 for CARP; VRRPv2's is 3 × advert_int + (256 − priority)/256 s):
 * the least time the protocol lets a backup wait before taking over, or a fresh master before
 * claiming its groups.
 */
export interface RoleSettings {
  /** CARP advskew, or VRRP priority. */
  value: number;
  masterDownS: number;
}

/** Whether `impl` runs VRRP in a run of `flavor`. */
export function speaksVrrp(impl: Impl, flavor: Flavor): boolean {
  return impl === 'keepalived' || flavor.protocol === 'vrrp3';
}

export function roleSettings(impl: Impl, role: Role, flavor: Flavor): RoleSettings {
  if (speaksVrrp(impl, flavor)) {
    const priority = role === 'master' ? 200 : 100;
    return { value: priority, masterDownS: masterDownIntervalMs(priority, ADVBASE * 100) / 1000 };
  }
  const advskew = role === 'master' ? 0 : 100;
  return { value: advskew, masterDownS: DEADRATIO * ADVBASE + advskew / 256 };
}

export interface StateChange {
  group: string;
  state: string;
}

/** Every group's state as its log lines tell it, with the time each line reached us. */
export class StateLog {
  private readonly current = new Map<string, string>();
  private readonly counts = new Map<string, number>();
  /** Epoch seconds of each group's first state line. */
  readonly firstAt = new Map<string, number>();
  /** Per state, epoch seconds at which each group first entered it. */
  private readonly enteredAt = new Map<string, Map<string, number>>();
  transitions = 0;
  /** The last lines of every attached process, for an error message. */
  readonly tail: string[] = [];

  constructor(private readonly parse: (line: string) => StateChange | null) {}

  /** Follows a child's output; `group` names the group of a one-group process (ucarp). */
  attach(child: ChildProcess, group?: string): void {
    for (const stream of [child.stdout, child.stderr]) {
      let buf = '';
      stream?.on('data', (d: Buffer) => {
        const t = epochNow();
        buf += d.toString();
        let i: number;
        while ((i = buf.indexOf('\n')) >= 0) {
          this.line(buf.slice(0, i), t, group);
          buf = buf.slice(i + 1);
        }
      });
    }
  }

  private line(line: string, t: number, group: string | undefined): void {
    this.tail.push(line);
    if (this.tail.length > 20) this.tail.shift();
    const change = this.parse(line);
    if (!change) return;
    const name = group ?? change.group;
    const before = this.current.get(name);
    if (before === change.state) return;
    if (before !== undefined) this.counts.set(before, (this.counts.get(before) ?? 0) - 1);
    this.counts.set(change.state, (this.counts.get(change.state) ?? 0) + 1);
    this.current.set(name, change.state);
    this.transitions++;
    if (!this.firstAt.has(name)) this.firstAt.set(name, t);
    let entered = this.enteredAt.get(change.state);
    if (!entered) this.enteredAt.set(change.state, (entered = new Map()));
    if (!entered.has(name)) entered.set(name, t);
  }

  count(state: string): number {
    return this.counts.get(state) ?? 0;
  }

  /** When the last of the groups logged its first state, epoch seconds. */
  lastFirst(): number {
    return Math.max(...this.firstAt.values());
  }

  /** When the last of the groups first entered `state`, epoch seconds. */
  lastEntered(state: string): number {
    return Math.max(...(this.enteredAt.get(state) ?? new Map<string, number>()).values());
  }
}

/**
 * SIGKILL of every process, the last listed first: children before the parent that started
 * them, since a keepalived VRRP child whose parent dies alone leaves gracefully (priority 0).
 */
function killAll(pids: readonly number[]): void {
  for (const pid of [...pids].reverse()) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
}

export interface Fleet {
  readonly impl: Impl;
  readonly host: Host;
  readonly log: StateLog;
  /** When the bench started the implementation, epoch seconds. */
  readonly spawnedAt: number;
  /** Every process of the implementation on this host. */
  pids(): number[];
  /** SIGKILL of every process at once: a host that dies, not one that leaves. */
  kill(): void;
  describe(): string;
}

export interface FleetSpec {
  lab: Lab;
  host: Host;
  /** A directory of the bench's own for configuration, sockets and pid files. */
  dir: string;
  role: Role;
  groups: readonly LayoutGroup[];
  flavor: Flavor;
}

/**
 * Our daemon's groups as YAML: `mcast` only where a layout leaves the protocol's own group;
 * VRRPv3 groups with their priority (the password in the file's defaults does not apply).
 */
export function ourGroups(groups: readonly LayoutGroup[], role: Role, flavor: Flavor): TestGroup[] {
  const value = roleSettings('ours', role, flavor).value;
  const vrrp = flavor.protocol === 'vrrp3';
  return groups.map((g) => ({
    name: g.name,
    vhid: g.vhid,
    iface: `eth${g.iface}`,
    addresses: [vipPrefix(g.vip)],
    ...(vrrp ? {} : { advskew: value }),
    extra: {
      ...(vrrp ? { protocol: 'vrrp3', priority: value } : {}),
      ...(g.mcast === 0 ? {} : { mcast: mcastAddress(g.mcast, flavor.family) }),
    },
  }));
}

export class OurFleet implements Fleet {
  readonly impl = 'ours';
  readonly host: Host;
  readonly log = new StateLog(parseTransition);
  readonly spawnedAt: number;
  readonly file: string;
  readonly proc: SupervisorProc;
  private readonly socket: string;
  private readonly role: Role;
  private readonly flavor: Flavor;
  pid = 0;

  constructor(spec: FleetSpec) {
    this.host = spec.host;
    this.file = path.join(spec.dir, spec.host.ns, 'ucarp.yaml');
    fs.mkdirSync(path.dirname(this.file), { recursive: true });
    this.socket = path.join(spec.dir, `${spec.host.ns}.sock`);
    this.role = spec.role;
    this.flavor = spec.flavor;
    fs.writeFileSync(this.file, this.yaml(spec.groups));
    this.spawnedAt = epochNow();
    this.proc = new SupervisorProc(spec.lab, spec.host, this.file);
    this.log.attach(this.proc.child);
  }

  /** This host's configuration file with `groups`, e.g. for a reload. */
  yaml(groups: readonly LayoutGroup[]): string {
    return configYaml(ourGroups(groups, this.role, this.flavor), { socket: this.socket });
  }

  async started(): Promise<void> {
    this.pid = await execedPid(this.proc.child, 'node');
  }

  pids(): number[] {
    return processTree(this.host.ns, this.pid);
  }

  kill(): void {
    killAll(this.pids());
  }

  describe(): string {
    return `last lines of our daemon on ${this.host.ns}:\n${this.log.tail.join('\n')}`;
  }
}

/** ucarp 1.5.2, one process per group, its address added by its up-script. */
class UcarpFleet implements Fleet {
  readonly impl = 'ucarp';
  readonly host: Host;
  readonly log = new StateLog((l) => {
    const m = /Switching to state:? (MASTER|BACKUP)/.exec(l);
    return m ? { group: '', state: m[1] } : null;
  });
  readonly spawnedAt: number;
  private readonly children: ChildProcess[];
  private pidList: number[] = [];

  constructor(spec: FleetSpec) {
    this.host = spec.host;
    const up = path.join(spec.dir, 'vip-up.sh');
    const down = path.join(spec.dir, 'vip-down.sh');
    // ucarp runs its scripts with (interface, address, xparam).
    fs.writeFileSync(up, '#!/bin/sh\nexec ip addr add "$2"/32 dev "$1"\n', { mode: 0o755 });
    fs.writeFileSync(down, '#!/bin/sh\nip addr del "$2"/32 dev "$1" 2>/dev/null\nexit 0\n', { mode: 0o755 });
    const advskew = roleSettings('ucarp', spec.role, spec.flavor).value;
    this.spawnedAt = epochNow();
    this.children = spec.groups.map((g) => {
      const args = [
        ...['-i', `eth${g.iface}`, '-s', spec.host.ips[g.iface], '-v', String(g.vhid)],
        // ucarp 1.5.2's help lists -m, but only the long --mcast is accepted.
        ...['-p', 's3cret', '-a', g.vip, ...(g.mcast === 0 ? [] : [`--mcast=${mcastAddress(g.mcast)}`])],
        ...['-b', String(ADVBASE), '-k', String(advskew), '-f', 'none', '-u', up, '-d', down],
      ];
      const child = spec.lab.spawn(spec.host, DEBIAN_UCARP, args);
      this.log.attach(child, g.name);
      return child;
    });
  }

  async started(): Promise<void> {
    this.pidList = await Promise.all(this.children.map((c) => execedPid(c, 'ucarp')));
  }

  pids(): number[] {
    return this.pidList;
  }

  kill(): void {
    for (const c of this.children) c.kill('SIGKILL');
  }

  describe(): string {
    return `last lines of ucarp on ${this.host.ns}:\n${this.log.tail.join('\n')}`;
  }
}

/**
 * keepalived's configuration for one host: one vrrp_instance per group, every instance
 * starting as BACKUP so that priority alone decides, as advskew does for CARP. VRRPv2 beside
 * CARP over IPv4 (the comparison), VRRPv3 beside our VRRPv3 or IPv6 (VRRPv2 has no
 * IPv6). `vrrp_garp_master_repeat 1` sends one gratuitous ARP (or NA) per address on
 * takeover, as we do.
 */
export function keepalivedConfig(
  groups: readonly LayoutGroup[],
  role: Role,
  routerId: string,
  flavor: Flavor,
): string {
  const priority = roleSettings('keepalived', role, flavor).value;
  const v3 = flavor.protocol === 'vrrp3' || flavor.family === 6;
  const lines = [
    'global_defs {',
    `  router_id ${routerId}`,
    `  vrrp_version ${v3 ? 3 : 2}`,
    '  vrrp_garp_master_repeat 1',
    '}',
  ];
  for (const g of groups) {
    lines.push(
      `vrrp_instance ${g.name} {`,
      '  state BACKUP',
      `  interface eth${g.iface}`,
      `  virtual_router_id ${g.vhid}`,
      `  priority ${priority}`,
      `  advert_int ${ADVBASE}`,
      ...(flavor.family === 6 ? ['  native_ipv6'] : []),
      ...(g.mcast === 0 ? [] : [`  mcast_dst_ip ${mcastAddress(g.mcast, flavor.family)}`]),
      `  virtual_ipaddress {`,
      `    ${vipPrefix(g.vip)} dev eth${g.iface}`,
      '  }',
      '}',
    );
  }
  return lines.join('\n') + '\n';
}

/** keepalived's "(g1) Entering MASTER STATE" and "(g1) Entering BACKUP STATE (init)". */
export function parseKeepalivedState(line: string): StateChange | null {
  const m = /\((\S+)\) Entering (MASTER|BACKUP|FAULT) STATE/.exec(line);
  return m ? { group: m[1], state: m[2] } : null;
}

/**
 * keepalived 2.2.7 in the foreground (-n), logging to stderr (-l, -D for every transition),
 * VRRP only: a parent that forks one VRRP child, both counted.
 */
class KeepalivedFleet implements Fleet {
  readonly impl = 'keepalived';
  readonly host: Host;
  readonly log = new StateLog(parseKeepalivedState);
  readonly spawnedAt: number;
  private readonly child: ChildProcess;
  private pidList: number[] = [];

  constructor(spec: FleetSpec) {
    this.host = spec.host;
    const base = path.join(spec.dir, `${spec.host.ns}-keepalived`);
    fs.writeFileSync(`${base}.conf`, keepalivedConfig(spec.groups, spec.role, spec.host.ns, spec.flavor));
    this.spawnedAt = epochNow();
    this.child = spec.lab.spawn(spec.host, KEEPALIVED, [
      ...['-n', '-l', '-D', '--vrrp', '-f', `${base}.conf`],
      ...['-p', `${base}.pid`, '-r', `${base}-vrrp.pid`, '-c', `${base}-check.pid`],
    ]);
    this.log.attach(this.child);
  }

  async started(timeoutMs = 10000): Promise<void> {
    const parent = await execedPid(this.child, 'keepalived');
    const end = Date.now() + timeoutMs;
    for (;;) {
      const tree = processTree(this.host.ns, parent);
      if (tree.length >= 2) {
        this.pidList = tree;
        return;
      }
      if (this.child.exitCode !== null || Date.now() > end)
        throw new Error(
          `keepalived's VRRP child did not start on ${this.host.ns}\n${this.log.tail.join('\n')}`,
        );
      await sleep(20);
    }
  }

  pids(): number[] {
    return this.pidList;
  }

  kill(): void {
    killAll(this.pidList);
  }

  describe(): string {
    return `last lines of keepalived on ${this.host.ns}:\n${this.log.tail.join('\n')}`;
  }
}

export async function startFleet(impl: Impl, spec: FleetSpec): Promise<Fleet> {
  const f =
    impl === 'ours'
      ? new OurFleet(spec)
      : impl === 'ucarp'
        ? new UcarpFleet(spec)
        : new KeepalivedFleet(spec);
  await f.started();
  return f;
}
