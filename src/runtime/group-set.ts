// The set of running CARP groups: one InterfaceHub per interface, one GroupRuntime per group,
// one rtnetlink socket for addresses and one monitor for links and addresses. apply() moves
// from the running set to a new one touching only what differs, which is what reload is made
// of. The set also keeps the kernel equal to what the groups' states say: interfaces that
// vanish and come back, virtual addresses removed or added behind our back, and addresses a
// crashed run left behind (address-record.ts).
import { isDeepStrictEqual } from 'node:util';
import type { AddressConfig, GroupConfig, TrackerConfig } from '../config/types';
import { Rtnl, type LinkInfo } from '../net/rtnl';
import { LinkMonitor, type AddressEvent } from '../net/link-monitor';
import { groupLogger, type Logger } from '../util/log';
import { GroupRuntime, type GroupIo, type StopOptions } from './group-runtime';
import { AfterBatch } from '../util/after-batch';
import { InterfaceHub } from './interface-hub';
import { diffGroups, type GroupDiff } from './diff';
import { AddressRecord } from './address-record';
import { TrackerSet, type ApplyResult } from '../track/tracker-set';
import type { TrackerStatus } from './status';
import { performance } from 'node:perf_hooks';
import { groupHealth, syncHealth } from '../track/health';
import { EventBus } from './events';
import type { CarpState, Override } from '../engine/group';
import { AlreadyStartedError, ClosedError, errorMessage } from '../errors';
import type { GroupResume } from './handover';
import { familyOf, isLinkLocal6 } from '../net/ipv6';
import { settleScripts } from '../hooks/scripts';
import { BurstCollector } from './burst-collector';
import { systemClock } from './clock';
import { garbageCollector } from '../util/collect-garbage';

/**
 * How long a stopping daemon waits for the downscripts before killing what is left of every
 * script (then up to KILL_GRACE_MS in src/hooks/scripts.ts more). systemd/ucarp.service's
 * TimeoutStopSec= (30 s) must stay above their sum, or systemd kills us before we exit.
 */
export const STOP_SCRIPT_WAIT_MS = 10_000;

export interface GroupSetOptions {
  log: Logger;
  /** How groups leave when the set stops. */
  stopPolicy: StopOptions;
  /** Where the record of added addresses lives; null keeps none (ucarp mode). */
  recordFile?: string | null;
  /** The daemon's event stream; a private one when not given. */
  events?: EventBus;
}

export interface ApplySummary {
  added: string[];
  removed: string[];
  updated: string[];
  /** Which settings changed in each updated group. */
  changed: Record<string, string[]>;
  restarted: string[];
  unchanged: number;
}

/** A virtual address as the kernel names it: interface and address (prefix aside). */
const addressKey = (ifname: string, address: string) => `${ifname} ${address}`;

export class GroupSet {
  /** The record's lines are written before each datagram of address changes leaves. */
  private readonly rtnl = new Rtnl({ beforeChange: () => this.record.sync() });
  private readonly monitor = new LinkMonitor({ addresses: true });
  private readonly hubs = new Map<string, InterfaceHub>();
  private readonly groups = new Map<string, GroupRuntime>();
  /** Managed virtual addresses → the group that owns them. */
  private readonly owners = new Map<string, GroupRuntime>();
  private links = new Map<string, LinkInfo>();
  /** ifindex → name, so that each address notification finds its interface in O(1). */
  private readonly linkNames = new Map<number, string>();
  private readonly afterBatch = new AfterBatch();
  private readonly bursts: BurstCollector;
  private readonly record: AddressRecord;
  readonly events: EventBus;
  private readonly trackerSet: TrackerSet;
  private started = false;
  private stopped = false;
  /** At start after ucarpctl restart: how each group carries on (handover.ts); then empty. */
  private resuming = new Map<string, GroupResume>();

  constructor(private readonly opts: GroupSetOptions) {
    this.record = new AddressRecord(opts.recordFile ?? null, opts.log);
    this.events = opts.events ?? new EventBus();
    this.trackerSet = new TrackerSet({ log: opts.log });
    this.bursts = new BurstCollector(garbageCollector(), systemClock, (n, ms) =>
      opts.log.debug(`collected garbage after a burst of ${n} transitions (${ms.toFixed(1)} ms)`),
    );
    this.trackerSet.on('change', (st) => {
      this.events.publish({
        type: 'tracker',
        tracker: st.name,
        failed: st.failed,
        value: st.value,
        output: st.lastOutput,
      });
      this.updateHealth();
    });
    this.monitor.on('link', (info, removed) => this.onLink(info, removed));
    this.monitor.on('address', (ev) => this.onAddress(ev));
    this.monitor.on('resync', () => void this.reconcileAll());
    this.monitor.on('error', (e) => this.opts.log.warn(`link monitor: ${e.message}`));
  }

  /**
   * Starts the monitor, removes what an earlier run recorded and did not remove (it is master
   * of nothing yet), then starts every group. After ucarpctl restart, `resume` says which
   * groups carry on in the state the previous image handed over: a master's addresses stay.
   */
  async start(
    groups: GroupConfig[],
    trackers: readonly TrackerConfig[] = [],
    resume: ReadonlyMap<string, GroupResume> = new Map(),
  ): Promise<ApplySummary> {
    if (this.started) throw new AlreadyStartedError('group set already started');
    this.started = true;
    for (const l of await this.monitor.start()) {
      this.setLink(l);
      this.trackerSet.setLink(l.name, true, l.running);
    }
    this.trackerSet.apply(trackers);
    this.resuming = new Map(resume);
    const kept = new Set<string>();
    for (const cfg of groups) {
      if (this.resuming.get(cfg.name)?.state !== 'MASTER' || !cfg.manageAddresses) continue;
      for (const a of cfg.addresses) kept.add(`${addressKey(cfg.interface, a.address)}/${a.prefixlen}`);
    }
    await this.removeLeftovers(kept);
    // A source the previous image learnt is used at once: waiting to learn it again would
    // hold the group in FAULT meanwhile.
    const summary = await this.apply(
      groups.map((c) => {
        const r = this.resuming.get(c.name);
        return r && c.srcip === '' && r.srcip !== '' ? { ...c, srcip: r.srcip } : c;
      }),
    );
    this.resuming.clear();
    void this.reconcileAll();
    return summary;
  }

  /**
   * ucarpctl restart: every group stops where it is (a master advertises once more), with no
   * bow-out, no address released and no script; nothing watches links, addresses or trackers
   * any more. Returns each group's configuration, state and counter for the next image.
   */
  async freeze(): Promise<{ config: GroupConfig; state: CarpState; counter: bigint }[]> {
    if (this.stopped) throw new ClosedError('group set already stopped');
    this.stopped = true;
    // First: an address notification now must not make a frozen group remove anything.
    this.monitor.close();
    const groups = [...this.groups.values()];
    const out = groups.map((g) => ({ config: g.config, ...g.freeze() }));
    await this.trackerSet.close();
    await Promise.all(groups.map((g) => g.effectsSettled()));
    for (const h of this.hubs.values()) h.close();
    this.hubs.clear();
    this.record.close();
    this.rtnl.close();
    return out;
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
    // A source learnt at run time (no srcip in the file) is not a change of the file.
    const fileView = (c: GroupConfig) => {
      const running = current.get(c.name);
      return running && c.srcip === '' && running.srcip !== '' ? { ...c, srcip: running.srcip } : c;
    };
    const d: GroupDiff = diffGroups(current, next.map(fileView));
    // Removals first, so that a vhid or address moving between groups is free again.
    const leaving = [...d.removed, ...d.restarted.map((c) => c.name)];
    await Promise.all(leaving.map((name) => this.removeGroup(name)));
    for (const cfg of d.updated) {
      const g = this.groups.get(cfg.name);
      if (!g) continue;
      const repeer = !isDeepStrictEqual(g.config.peers, cfg.peers);
      g.update(cfg);
      // A new peer list moves the group between multicast and unicast demultiplexing.
      if (repeer) this.hubs.get(cfg.interface)?.refresh(g);
    }
    for (const cfg of [...d.restarted, ...d.added]) this.addGroup(cfg);
    this.closeIdleHubs();
    // track and sync_group may have changed in place, and added groups need their health.
    this.updateHealth();
    return {
      added: d.added.map((c) => c.name),
      removed: d.removed,
      updated: d.updated.map((c) => c.name),
      changed: Object.fromEntries(d.changed),
      restarted: d.restarted.map((c) => c.name),
      unchanged: d.unchanged,
    };
  }

  /**
   * Moves to a new set of trackers (before apply() on reload, so that the groups' new `track`
   * finds them): a changed tracker restarts alone, the others keep their state.
   */
  applyTrackers(configs: readonly TrackerConfig[]): ApplyResult {
    const r = this.trackerSet.apply(configs);
    // Unchanged trackers change no group's health; apply() works it out for the new groups
    // (at 4080 groups each pass is milliseconds of a reload's one synchronous stretch).
    if (r.added.length + r.removed.length + r.restarted.length > 0) this.updateHealth();
    return r;
  }

  trackers(): TrackerStatus[] {
    const now = performance.now();
    return this.trackerSet.list().map((t) => ({
      name: t.name,
      kind: t.kind,
      failed: t.failed,
      value: t.value,
      sinceMs: Math.max(0, now - t.since),
      output: t.lastOutput,
      checks: t.checks,
      failures: t.failures,
    }));
  }

  /**
   * Each group's FAULT and demotion from its trackers, spread over its sync group: a member
   * whose own reason holds it in FAULT (a tracker, or its link) holds every other member too,
   * and every member advertises the set's highest demotion, so a weight cannot split the set.
   */
  private updateHealth(): void {
    const groups = [...this.groups.values()];
    const own = groups.map((g) => groupHealth(g.config.track, (n) => this.trackerSet.get(n)));
    const sync = syncHealth(
      groups.map((g, i) => ({
        name: g.config.name,
        syncGroup: g.config.syncGroup,
        ownFault: own[i].fault || g.linkFault(),
        demotion: own[i].demotion,
      })),
    );
    groups.forEach((g, i) => {
      const s = sync.get(g.config.name);
      g.setHealth({
        trackFault: own[i].fault,
        syncFault: s?.syncFault ?? false,
        demotion: s?.demotion ?? own[i].demotion,
        failed: own[i].failed,
      });
    });
  }

  /** ucarp's SIGUSR2 for every group: masters hand over once. */
  stepDownAll(): void {
    for (const g of this.groups.values()) if (g.state === 'MASTER') g.stepDown();
  }

  /** Ends every ucarpctl demote/promote (they last until reset or a successful reload). */
  clearOverrides(): void {
    for (const g of this.groups.values()) g.setOverride('none');
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
    await this.trackerSet.close();
    // Also the scripts of groups that reloads removed earlier and left running.
    await settleScripts(STOP_SCRIPT_WAIT_MS);
    for (const h of this.hubs.values()) h.close();
    this.hubs.clear();
    this.bursts.close();
    this.monitor.close();
    this.record.close();
    this.rtnl.close();
  }

  private readonly noteTransition = (): void => this.bursts.note();

  private addGroup(cfg: GroupConfig): void {
    const hub = this.hub(cfg.interface);
    const log = groupLogger(this.opts.log, { group: cfg.name, vhid: cfg.vhid, iface: cfg.interface });
    const io: GroupIo = {
      send: (payload, dst, src, done) => hub.send(payload, dst, src, done),
      garp: (addresses, src, done) => hub.sendGarp(addresses, src, done),
      addAddress: (ifname, address, prefixlen) => this.addAddress(cfg.name, ifname, address, prefixlen),
      delAddress: (ifname, address, prefixlen) => this.delAddress(ifname, address, prefixlen),
    };
    const g = new GroupRuntime(cfg, {
      io,
      log,
      afterBatch: this.afterBatch,
      events: this.events,
      onTransition: this.noteTransition,
    });
    hub.add(g);
    this.groups.set(cfg.name, g);
    if (cfg.manageAddresses)
      for (const a of cfg.addresses) this.owners.set(addressKey(cfg.interface, a.address), g);
    if (hub.present && cfg.srcip === '') void this.learnSource(g, hub);
    if (!hub.present) log.warn(`interface ${cfg.interface} does not exist; the group waits for it`);
    g.start(hub.running, hub.present && g.config.srcip !== '', this.resuming.get(cfg.name));
  }

  private async removeGroup(name: string, policy: StopOptions = this.opts.stopPolicy): Promise<void> {
    const g = this.groups.get(name);
    if (!g) return;
    this.groups.delete(name);
    for (const a of g.config.addresses) {
      const k = addressKey(g.config.interface, a.address);
      if (this.owners.get(k) === g) this.owners.delete(k);
    }
    // Stop first: the bow-out still needs the socket and the membership.
    await g.stop(policy);
    this.hubs.get(g.config.interface)?.remove(g);
  }

  /** The hub of `ifname`, attached when the interface exists; it waits for it otherwise. */
  private hub(ifname: string): InterfaceHub {
    const have = this.hubs.get(ifname);
    if (have) return have;
    const hub = new InterfaceHub(ifname, this.opts.log);
    this.hubs.set(ifname, hub);
    const link = this.links.get(ifname);
    if (link) this.attach(hub, link);
    return hub;
  }

  private attach(hub: InterfaceHub, link: LinkInfo): boolean {
    try {
      hub.attach(link);
    } catch (e) {
      this.opts.log.error(`cannot open sockets on ${hub.ifname} (index ${link.index}): ${errorMessage(e)}`);
      return false;
    }
    // Without it, removing the first address of a subnet takes every other one with it.
    this.rtnl
      .setPromoteSecondaries(hub.ifname)
      .catch((e: Error) =>
        this.opts.log.warn(`cannot enable promote_secondaries on ${hub.ifname}: ${e.message}`),
      );
    return true;
  }

  private closeIdleHubs(): void {
    for (const [name, h] of this.hubs) {
      if (h.size === 0) {
        h.close();
        this.hubs.delete(name);
      }
    }
  }

  private groupsOn(ifname: string): GroupRuntime[] {
    return [...this.groups.values()].filter((g) => g.config.interface === ifname);
  }

  private onLink(info: LinkInfo, removed: boolean): void {
    this.trackerSet.setLink(info.name, !removed, !removed && info.running);
    this.onLinkGroups(info, removed);
    // A member's carrier is also its sync group's business.
    this.updateHealth();
  }

  private onLinkGroups(info: LinkInfo, removed: boolean): void {
    const hub = this.hubs.get(info.name);
    if (removed) {
      if (this.links.get(info.name)?.index === info.index) this.links.delete(info.name);
      if (this.linkNames.get(info.index) === info.name) this.linkNames.delete(info.index);
      if (!hub || hub.index !== info.index) return;
      hub.detach();
      for (const g of this.groupsOn(info.name)) g.onInterface(false, false);
      return;
    }
    this.setLink(info);
    if (!hub) return;
    if (hub.index !== info.index) {
      // New, or re-created under the same name: sockets bound to the old index hear nothing.
      if (!this.attach(hub, info)) return;
      for (const g of this.groupsOn(info.name)) {
        if (g.config.srcip === '') void this.learnSource(g, hub);
        else g.onInterface(true, info.running);
      }
      return;
    }
    if (hub.running === info.running) return;
    hub.running = info.running;
    for (const g of this.groupsOn(info.name)) g.onLink(info.running);
  }

  /**
   * A group without srcip in the file advertises from its interface's first own address,
   * which a freshly created interface may not have yet: then the group waits for one. An IPv6
   * group advertises from the interface's link-local address once DAD has passed
   * (docs/protocol.md §21).
   */
  private async learnSource(g: GroupRuntime, hub: InterfaceHub): Promise<void> {
    const ifname = g.config.interface;
    const virtual = new Set([...this.owners.keys()]);
    let own: string | undefined;
    try {
      own =
        familyOf(g.config.addresses[0].address) === 6
          ? (await this.rtnl.addresses(ifname)).find(
              (a) => a.family === 6 && !a.tentative && isLinkLocal6(a.address),
            )?.address
          : (await this.rtnl.ipv4Addresses(ifname))
              .map((a) => a.address)
              .find((a) => !virtual.has(addressKey(ifname, a)));
    } catch (e) {
      this.opts.log.warn(`cannot read the addresses of ${ifname}: ${errorMessage(e)}`);
    }
    if (own === undefined || this.groups.get(g.config.name) !== g || !hub.present) return;
    g.setSource(own);
    hub.refresh(g);
    g.onInterface(true, hub.running);
    this.updateHealth();
  }

  // ------------------------------------------------------------ addresses

  private async addAddress(group: string, ifname: string, address: string, prefixlen: number): Promise<void> {
    // Recorded before the kernel has it (written before the datagram leaves); both within this
    // call, so that the request joins the datagram being filled now (docs/performance.md,
    // "Mass failover").
    this.record.add({ ifname, address, prefixlen, group });
    await this.rtnl.addAddress(ifname, address, prefixlen);
  }

  /** Only what our record says we added: an address an operator put there is never touched. */
  private async delAddress(ifname: string, address: string, prefixlen: number): Promise<void> {
    if (!this.record.has({ ifname, address, prefixlen })) return;
    await this.rtnl.delAddress(ifname, address, prefixlen);
    this.record.remove({ ifname, address, prefixlen });
  }

  /** `kept`: addresses of masters carrying on over a restart ("ifname address/prefix"). */
  private async removeLeftovers(kept: ReadonlySet<string> = new Set()): Promise<void> {
    const left = this.record.load();
    await Promise.all(
      left.map(async (a) => {
        if (kept.has(`${addressKey(a.ifname, a.address)}/${a.prefixlen}`)) return;
        try {
          await this.rtnl.delAddress(a.ifname, a.address, a.prefixlen);
          this.opts.log.warn(
            `removed ${a.address}/${a.prefixlen} from ${a.ifname}, left by an earlier run (group ${a.group})`,
          );
          this.record.remove(a);
        } catch (e) {
          // The interface is gone, and the address with it.
          this.record.remove(a);
          this.opts.log.debug(`leftover ${a.address}/${a.prefixlen} on ${a.ifname}: ${errorMessage(e)}`);
        }
      }),
    );
  }

  private setLink(info: LinkInfo): void {
    this.links.set(info.name, info);
    this.linkNames.set(info.index, info.name);
  }

  private ifname(index: number): string | undefined {
    return this.linkNames.get(index);
  }

  private onAddress(ev: AddressEvent): void {
    const ifname = this.ifname(ev.index);
    if (ifname === undefined) return;
    const g = this.owners.get(addressKey(ifname, ev.address));
    if (g) {
      this.checkAddress(g, ifname, ev.address, !ev.removed);
      return;
    }
    // A group waiting for a source address: the interface just got one.
    if (!ev.removed) {
      const hub = this.hubs.get(ifname);
      if (hub?.present)
        for (const w of this.groupsOn(ifname)) if (w.config.srcip === '') void this.learnSource(w, hub);
    }
  }

  /** Compares one managed address in the kernel with what its group's state says. */
  private checkAddress(g: GroupRuntime, ifname: string, address: string, present: boolean): void {
    const a = g.config.addresses.find((x) => x.address === address);
    if (!a || this.groups.get(g.config.name) !== g) return;
    if (g.wantsAddresses()) {
      g.clearConflict(address);
      if (!present) void this.restore(g, ifname, a);
      return;
    }
    if (!present) {
      g.clearConflict(address);
      return;
    }
    // Present while not master. Our own changes may still be in flight: judge once they are done.
    void g.effectsSettled().then(() => this.judgeConflict(g, ifname, a));
  }

  /**
   * Puts back an address someone removed from a master. A deleted interface takes its
   * addresses first and reports itself gone after them: check it is still there.
   */
  private async restore(g: GroupRuntime, ifname: string, a: AddressConfig): Promise<void> {
    const hub = this.hubs.get(ifname);
    const link = await this.rtnl.link(ifname).catch(() => undefined);
    if (!link || !hub || link.index !== hub.index || !g.wantsAddresses()) return;
    g.restoreAddress(a);
  }

  private async judgeConflict(g: GroupRuntime, ifname: string, a: AddressConfig): Promise<void> {
    if (this.groups.get(g.config.name) !== g || g.wantsAddresses()) return;
    let still: boolean;
    try {
      still = (await this.rtnl.addresses(ifname)).some((x) => x.address === a.address);
    } catch {
      return;
    }
    if (!still || g.wantsAddresses()) return;
    const ours = this.record.has({ ifname, address: a.address, prefixlen: a.prefixlen });
    g.noteConflict(a, ours);
    if (ours) await this.delAddress(ifname, a.address, a.prefixlen).catch(() => undefined);
  }

  /** Every managed address against the kernel: at start and after lost notifications. */
  private async reconcileAll(): Promise<void> {
    let present: Set<string>;
    try {
      present = new Set((await this.rtnl.addresses()).map((a) => addressKey(a.ifname, a.address)));
    } catch (e) {
      this.opts.log.warn(`cannot read addresses to reconcile: ${errorMessage(e)}`);
      return;
    }
    for (const [k, g] of this.owners) {
      const [ifname, address] = k.split(' ');
      if (!this.hubs.get(ifname)?.present) continue;
      this.checkAddress(g, ifname, address, present.has(k));
    }
  }
}
