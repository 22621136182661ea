// Runs a set of CARP groups: one InterfaceHub per interface, one GroupRuntime per group, one
// rtnetlink socket for addresses and one link monitor for carrier. apply() moves from the
// running set to a new one touching only what differs, which is what reload is made of.
import type { GroupConfig } from '../config/types';
import { Rtnl, LinkMonitor, type LinkInfo } from '../net/netlink';
import { groupLogger, type Logger } from '../util/log';
import { GroupRuntime, type GroupIo, type StopOptions } from './group-runtime';
import { InterfaceHub } from './interface-hub';
import { diffGroups, type GroupDiff } from './diff';
import type { CarpState, Override } from '../engine/group';
import { settleScripts } from '../hooks/scripts';

/**
 * How long a stopping daemon waits for the downscripts before killing what is left of every
 * script (then up to KILL_GRACE_MS in src/hooks/scripts.ts more). systemd/ucarp.service's
 * TimeoutStopSec= (30 s) must stay above their sum, or systemd kills us before we exit.
 */
export const STOP_SCRIPT_WAIT_MS = 10_000;

export interface DaemonOptions {
  log: Logger;
  /** How groups leave when the daemon stops. */
  stopPolicy: StopOptions;
  onTransition?(group: GroupRuntime, from: CarpState, to: CarpState, reason: string): void;
}

export interface ApplySummary {
  added: string[];
  removed: string[];
  updated: string[];
  restarted: string[];
  unchanged: number;
}

export class Daemon {
  private readonly rtnl = new Rtnl();
  private readonly monitor = new LinkMonitor();
  private readonly hubs = new Map<string, InterfaceHub>();
  private readonly groups = new Map<string, GroupRuntime>();
  private links = new Map<string, LinkInfo>();
  private started = false;
  private stopped = false;

  constructor(private readonly opts: DaemonOptions) {
    this.monitor.on('link', (info, removed) => this.onLink(info, removed));
    this.monitor.on('error', (e) => this.opts.log.warn(`link monitor: ${e.message}`));
  }

  /** Starts the link monitor, then every group. */
  async start(groups: GroupConfig[]): Promise<ApplySummary> {
    if (this.started) throw new Error('daemon already started');
    this.started = true;
    for (const l of await this.monitor.start()) this.links.set(l.name, l);
    return this.apply(groups);
  }

  list(): GroupRuntime[] {
    return [...this.groups.values()];
  }

  group(name: string): GroupRuntime | undefined {
    return this.groups.get(name);
  }

  /** Interface-level counters (packets no group can be blamed for). */
  interfaces(): { name: string; running: boolean; rejects: InterfaceHub['rejects']; groups: number }[] {
    return [...this.hubs.values()].map((h) => ({
      name: h.ifname,
      running: h.running,
      rejects: h.rejects,
      groups: h.size,
    }));
  }

  /**
   * Moves to `next`: added groups start, removed ones leave (a master bows out and releases
   * its addresses), changed ones are updated in place or restarted; the rest is not touched.
   */
  async apply(next: GroupConfig[]): Promise<ApplySummary> {
    const current = new Map([...this.groups].map(([n, g]) => [n, g.config]));
    const d: GroupDiff = diffGroups(current, next);
    // Removals first, so that a vhid or address moving between groups is free again.
    const leaving = [...d.removed, ...d.restarted.map((c) => c.name)];
    await Promise.all(leaving.map((name) => this.removeGroup(name)));
    for (const cfg of d.updated) this.groups.get(cfg.name)?.update(cfg);
    for (const cfg of [...d.restarted, ...d.added]) await this.addGroup(cfg);
    this.closeIdleHubs();
    return {
      added: d.added.map((c) => c.name),
      removed: d.removed,
      updated: d.updated.map((c) => c.name),
      restarted: d.restarted.map((c) => c.name),
      unchanged: d.unchanged,
    };
  }

  demoteAll(): void {
    for (const g of this.groups.values()) if (g.state === 'MASTER') g.demote();
  }

  setOverride(name: string, override: Override): boolean {
    const g = this.groups.get(name);
    if (!g) return false;
    g.setOverride(override);
    return true;
  }

  async stop(policy: StopOptions = this.opts.stopPolicy): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await Promise.all([...this.groups.keys()].map((n) => this.removeGroup(n, policy)));
    // Also the scripts of groups that reloads removed earlier and left running.
    await settleScripts(STOP_SCRIPT_WAIT_MS);
    for (const h of this.hubs.values()) h.close();
    this.hubs.clear();
    this.monitor.close();
    this.rtnl.close();
  }

  private async addGroup(cfg: GroupConfig): Promise<void> {
    const hub = await this.hub(cfg.interface);
    const log = groupLogger(this.opts.log, { group: cfg.name, vhid: cfg.vhid, iface: cfg.interface });
    const io: GroupIo = {
      send: (payload, dst, src) => hub.send(payload, dst, src),
      garp: (addresses) => hub.garp.send(addresses),
      addAddress: (ifname, address, prefixlen) => this.rtnl.addAddress(ifname, address, prefixlen),
      delAddress: (ifname, address, prefixlen) => this.rtnl.delAddress(ifname, address, prefixlen),
      onTransition: this.opts.onTransition,
    };
    const g = new GroupRuntime(cfg, io, log);
    hub.add(g);
    this.groups.set(cfg.name, g);
    g.start(hub.running);
  }

  private async removeGroup(name: string, policy: StopOptions = this.opts.stopPolicy): Promise<void> {
    const g = this.groups.get(name);
    if (!g) return;
    this.groups.delete(name);
    // Stop first: the bow-out still needs the socket and the membership.
    await g.stop(policy);
    this.hubs.get(g.config.interface)?.remove(g);
  }

  private async hub(ifname: string): Promise<InterfaceHub> {
    const have = this.hubs.get(ifname);
    if (have) return have;
    const link = this.links.get(ifname) ?? (await this.rtnl.link(ifname));
    if (!link) throw new Error(`interface ${ifname} does not exist`);
    const hub = new InterfaceHub(ifname, link, this.opts.log);
    this.hubs.set(ifname, hub);
    return hub;
  }

  private closeIdleHubs(): void {
    for (const [name, h] of this.hubs) {
      if (h.size === 0) {
        h.close();
        this.hubs.delete(name);
      }
    }
  }

  private onLink(info: LinkInfo, removed: boolean): void {
    if (removed) this.links.delete(info.name);
    else this.links.set(info.name, info);
    const hub = this.hubs.get(info.name);
    if (!hub || hub.running === info.running) return;
    hub.running = info.running;
    for (const g of this.groups.values()) if (g.config.interface === info.name) g.onLink(info.running);
  }
}
