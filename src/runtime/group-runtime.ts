// The driver of one group (CARP or VRRPv3): feeds the pure engine (engine/group.ts) with packets, link
// changes and timer wake-ups through dispatch(), and carries out every action it returns
// (send, gratuitous ARP, transitions with their addresses and scripts). dispatch() is the only
// way into the engine.
import type { AddressConfig, GroupConfig } from '../config/types';
import {
  authPrefix,
  authPrefix6,
  type SourceAddress,
  writeAdvertisement,
  counterHalves,
  counterOf,
  passwordKey,
  checkAdvertisementWith,
  CARP_ADVBASE_AT,
  CARP_ADVSKEW_AT,
  CARP_COUNTER_AT,
  CARP_HEADER_LEN,
  CARP_VERSION,
  type Framing,
  type RejectReason,
} from '../protocol/carp';
import { VRRP_HEADER_LEN, checkVrrp, encodeVrrp, vrrpInterval, vrrpPseudoSum } from '../protocol/vrrp';
import { onesSum } from '../protocol/checksum';
import { PreparedDigest } from '../protocol/hmac-sha1';
import { native } from '../native';
import {
  ENGINE_SETTINGS,
  advertisedTiming,
  advertisedPriority,
  initialState,
  linkFault,
  earliestDeadline,
  nextDeadline,
  step,
  afterSteadyTimers,
  steadyAdvert,
  steadyAdvertAt,
  steadyDeadline,
  steadyTimer,
  type Action,
  type CarpState,
  type Event,
  type GroupParams,
  type GroupState,
  type Override,
  type ResumeState,
  type SteadyAdvert,
  type SteadyTimer,
  type TransitionReason,
} from '../engine/group';
import {
  accept,
  isReplay,
  newest,
  nextCounter,
  sent,
  startWindow,
  type ReplayWindow,
} from '../protocol/replay';
import { errorMessage } from '../errors';
import { randomBytes } from 'node:crypto';
import { ipv4ToBytes, ipv4ToInt } from '../net/ipv4';
import { bigIntToBytes, familyOf, formatSource, ipv6ToBytes, sourceOf } from '../net/ipv6';
import type { Logger } from '../util/log';
import { LOG_PERIOD_MS, RateLimitedLog } from '../util/rate-limited-log';
import { AfterBatch } from '../util/after-batch';
import type { EventBus } from './events';
import { systemClock, systemWallClock, type Clock, type WallClock } from './clock';
import { Scheduler, type ScheduledTask } from './scheduler';
import { GroupEffects, type AddressIo } from './group-effects';
import { emptyStats, type GroupStats, type GroupStatus, type MasterStatus } from './status';
import type { MasterInfo } from '../engine/group';

/** What a group needs from the world; the group set wires real sockets, tests fake it. */
export interface GroupIo extends AddressIo {
  /**
   * Sends one advertisement. Throws when it cannot even be queued; otherwise calls `done`
   * exactly once, with null or the refusal, before the end of the current turn (sends are
   * batched: docs/architecture.md, "The edges").
   */
  send(payload: Buffer, dst: string, src: string, done: (err: Error | null) => void): void;
  /**
   * Announces the addresses: gratuitous ARP, or for IPv6 neighbour advertisements from `src`.
   * Throws when it cannot even be queued; a failure later in the turn goes to `done`.
   */
  garp(addresses: string[], src: string, done: (err: Error | null) => void): void;
}

export interface GroupDeps {
  io: GroupIo;
  log: Logger;
  clock?: Clock;
  /** The one timer of all groups; default: the one shared by every group on `clock`. */
  scheduler?: Scheduler;
  /** Where counters start with replay protection on (docs/protocol.md §20). */
  wallClock?: WallClock;
  /** Where transition log lines wait for the current batch to end (shared by a group set). */
  afterBatch?: AfterBatch;
  /** Where transitions, conflicts and restores are announced (`ucarpctl events`). */
  events?: EventBus;
  /** Told of each transition (the group set's burst collector). */
  onTransition?: () => void;
}

export interface StopOptions {
  /** A master sends the advbase/advskew 255 bow-out so that a backup takes over at once. */
  bowOut: boolean;
  /** Run the downscript when leaving MASTER (ucarp's --shutdown). */
  downscript: boolean;
  /** Remove managed addresses (always, except when the process dies). */
  releaseAddresses: boolean;
}

const U64 = (1n << 64n) - 1n;
/** Events that carry nothing: one object each, not one per dispatch. */
const TIMER: Event = { type: 'timer' };

/** The engine's view of a group's settings. */
export function groupParams(cfg: GroupConfig): GroupParams {
  // Built by adding the fields in one order to a fresh object, never by a spread: every group's
  // parameters then share one hidden class. A spread gave each group its own, so at thousands of
  // groups the engine's loads of these fields missed V8's lookup cache on every packet
  // (docs/performance.md, "One hidden class per kind of object").
  const params = Object.fromEntries(ENGINE_SETTINGS.map((k) => [k, cfg[k]])) as GroupParams;
  // An unknown source (the interface has no address yet) compares as 0.0.0.0 (::) until learnt.
  const unknown = familyOf(cfg.addresses[0].address) === 6 ? 0n : 0;
  params.srcip = cfg.srcip === '' ? unknown : sourceOf(cfg.srcip);
  return params;
}

type SendFailure = 'send';

/** An address as the bytes of the VRRP pseudo-header: 4 for IPv4, 16 for IPv6. */
function addressBytes(addr: string): Buffer {
  return familyOf(addr) === 6 ? ipv6ToBytes(addr) : ipv4ToBytes(addr);
}

function masterStatus(m: MasterInfo): MasterStatus {
  return 'priority' in m
    ? { address: formatSource(m.src), priority: m.priority, advertInterval: m.interval / 100 }
    : { address: formatSource(m.src), advbase: m.advbase, advskew: m.advskew };
}

export class GroupRuntime {
  // The fields a received advertisement reads come first, in the object's first two cache
  // lines (class fields are laid out in declaration order): at thousands of groups each packet
  // finds its group's objects cold (docs/performance.md, issue 11).
  /** Unicast peers as integers for the per-packet check; null for a multicast group. */
  private peers: Set<SourceAddress> | null = null;
  /** HMAC-SHA1 with the key's pads and the constant prefix prepared once (docs/protocol.md §5). */
  private readonly digest: PreparedDigest;
  /** With replay protection on, the newest counters accepted and sent; null when off. */
  private replay: ReplayWindow | null;
  /**
   * Replay protection off: the counter of the last advertisement heard, as its two 32-bit
   * halves (signed), taken as the counter only when needed (counterNow, sending), not once per
   * packet. Signed: a small integer stays in the object, where an unsigned one above 2^31 would
   * be a number boxed elsewhere.
   */
  private heardHigh = 0;
  private heardLow = 0;
  private counterHeard = false;
  /** The counter last sent or carried on from, as two signed 32-bit halves (as heard's). */
  private counterHigh = 0;
  private counterLow = 0;
  readonly stats: GroupStats = emptyStats();
  /**
   * What the engine says a steady advertisement would do in the current state (null: step
   * every advertisement), and when the last one not yet stepped arrived (-1: none).
   */
  private steady: SteadyAdvert | null = null;
  private heardAt = -1;
  /**
   * A master's counterpart: what the engine says a steady timer would send (null: step every
   * timer), and the deadline the timers carried out but not stepped have moved to (-1: none).
   */
  private steadyTimer: SteadyTimer | null = null;
  private advertAt = -1;
  private dispatching = false;
  private readonly clock: Clock;
  /** This group's place in the shared scheduler: its timer event, when the engine wants it. */
  private readonly timer: ScheduledTask;
  private s: GroupState;
  private cfg: GroupConfig;
  private readonly wallClock: WallClock;
  private readonly out = Buffer.alloc(CARP_HEADER_LEN);
  /** The CARP payload for every destination: one buffer, rewritten per advertisement. */
  private readonly carpOut = (): Buffer => this.out;
  private readonly io: GroupIo;
  private readonly log: Logger;
  private readonly afterBatch: AfterBatch;
  private readonly events: EventBus | undefined;
  private readonly onTransition: (() => void) | undefined;
  private readonly effects: GroupEffects;
  private readonly warnings: RateLimitedLog<RejectReason | SendFailure>;
  /** Events raised while an earlier one is being carried out wait here, in order. */
  private readonly queue: Event[] = [];
  private stopping: StopOptions | null = null;
  /** Where each advertisement goes: the peers, or the one multicast/broadcast destination. */
  private destinations: readonly string[] = [];
  /** VRRP: the destinations and the virtual addresses as bytes, for the pseudo-header checksum. */
  private vrrpDestinations: readonly Buffer[] = [];
  private vrrpAddresses: readonly Buffer[] = [];
  /**
   * VRRP: this node's source as bytes, for the checksum. Zeros while it is unknown: the group
   * cannot be heard then anyway, and its send fails as CARP's would.
   */
  private vrrpSource: Buffer = Buffer.alloc(0);
  /** VRRP: the advertisement, rewritten per destination as CARP's `out`. */
  private vrrpOut: Buffer = Buffer.alloc(0);
  /** Trackers that are failed now, as last reported by setHealth. */
  private failedTrackers: string[] = [];
  /** Addresses of this group present on this host while it is not master. */
  private readonly conflicts = new Set<string>();

  constructor(cfg: GroupConfig, deps: GroupDeps) {
    this.cfg = cfg;
    this.io = deps.io;
    this.log = deps.log;
    this.clock = deps.clock ?? systemClock;
    this.timer = (deps.scheduler ?? Scheduler.for(this.clock)).task(() => this.fire());
    this.afterBatch = deps.afterBatch ?? new AfterBatch();
    this.events = deps.events;
    this.onTransition = deps.onTransition;
    const key = passwordKey(cfg.password);
    const prefix =
      familyOf(cfg.addresses[0].address) === 6
        ? authPrefix6(
            cfg.vhid,
            cfg.addresses.map((a) => ipv6ToBytes(a.address)),
          )
        : authPrefix({ key, vhid: cfg.vhid, addresses: cfg.addresses.map((a) => ipv4ToInt(a.address)) });
    this.digest = new PreparedDigest(key, prefix, native().carpDigest);
    const start = randomBytes(8);
    this.counterHigh = start.readInt32BE(0);
    this.counterLow = start.readInt32BE(4);
    this.wallClock = deps.wallClock ?? systemWallClock;
    this.replay = cfg.replayProtection ? startWindow(this.wallClock()) : null;
    this.s = initialState(groupParams(cfg), this.clock.now());
    this.usePeers(cfg);
    this.effects = new GroupEffects(cfg, deps.io, deps.log);
    this.warnings = new RateLimitedLog(LOG_PERIOD_MS, () => this.clock.now());
  }

  get config(): GroupConfig {
    return this.cfg;
  }

  get state(): CarpState {
    return this.s.state;
  }

  get scripts(): GroupEffects['scripts'] {
    return this.effects.scripts;
  }

  /**
   * Leaves INIT. `resume`: what the daemon's previous image handed over (ucarpctl restart),
   * the state to carry on in and the counter to carry on from.
   */
  start(linkUp: boolean, present = true, resume?: { state: ResumeState; counter: bigint }): void {
    if (resume) this.carryOn(resume.counter & U64);
    this.dispatch({ type: 'start', linkUp, present, resume: resume?.state });
  }

  /**
   * Counters carry on from the previous image's. With replay protection, the handed-over
   * counter is the newest the old window had seen or sent: every peer has accepted up to it,
   * so the next one must be above it even if the wall clock went back (docs/protocol.md §20).
   */
  private carryOn(counter: bigint): void {
    if (this.replay === null) {
      this.useCounter(counter);
      this.counterHeard = false;
      return;
    }
    if (counter > this.replay.lastSent) this.replay = sent(this.replay, counter);
  }

  /**
   * The daemon is replacing itself: a master advertises once more, then the group stops where
   * it is, its addresses and scripts untouched. Returns what the next image needs to carry on.
   */
  freeze(): { state: CarpState; counter: bigint } {
    this.dispatch({ type: 'freeze' });
    this.clearTimer();
    return { state: this.s.state, counter: this.replay !== null ? newest(this.replay) : this.counterNow() };
  }

  /** A packet the interface demultiplexed to this group; framing is already checked. */
  onPacket(pkt: Buffer, framing: Framing): void {
    // A unicast group listens to its peers only (FreeBSD carp's `peer`): anyone else who
    // knows the password and the vhid could otherwise take part from anywhere.
    if (this.peers !== null && !this.peers.has(framing.src)) {
      this.reject('peer', framing.src);
      return;
    }
    if (framing.version !== CARP_VERSION) {
      this.onVrrpPacket(pkt, framing);
      return;
    }
    const off = framing.offset;
    const reason = checkAdvertisementWith(pkt, off, this.digest);
    if (reason !== null) {
      this.reject(reason, framing.src);
      return;
    }
    if (this.replay !== null) {
      const counter = pkt.readBigUInt64BE(off + CARP_COUNTER_AT);
      // Whatever its source: the source is not covered by the digest (docs/protocol.md §20).
      if (isReplay(this.replay, counter)) {
        this.reject('replay', framing.src, `counter ${counter} is not newer than ${newest(this.replay)}`);
        return;
      }
      this.replay = accept(this.replay, counter);
    } else {
      const at = off + CARP_COUNTER_AT;
      this.heardHigh = (pkt[at] << 24) | (pkt[at + 1] << 16) | (pkt[at + 2] << 8) | pkt[at + 3];
      this.heardLow = (pkt[at + 4] << 24) | (pkt[at + 5] << 16) | (pkt[at + 6] << 8) | pkt[at + 7];
      this.counterHeard = true;
    }
    this.stats.received++;
    const advbase = pkt[off + CARP_ADVBASE_AT];
    const advskew = pkt[off + CARP_ADVSKEW_AT];
    const st = this.steady;
    if (
      st !== null &&
      st.event.type === 'advert' &&
      st.event.src === framing.src &&
      st.event.advbase === advbase &&
      st.event.advskew === advskew
    ) {
      this.defer(st);
      return;
    }
    this.dispatch({ type: 'advert', src: framing.src, advbase, advskew });
  }

  /**
   * A steady advertisement (engine/group.ts, steadyAdvert) is not stepped now: the next event
   * steps the last of them at its own time first, which gives the state stepping each would
   * have, and meanwhile the timer is where that state would put it.
   */
  private defer(st: SteadyAdvert): void {
    if (this.dispatching) {
      this.dispatch(st.event);
      return;
    }
    const now = this.clock.now();
    this.heardAt = now;
    const at = steadyDeadline(st, now);
    this.timer.set(at, at);
  }

  /** The counter to continue from without replay protection: the last heard or sent. */
  private counterNow(): bigint {
    this.takeHeard();
    return counterOf(this.counterHigh, this.counterLow);
  }

  private useCounter(counter: bigint): void {
    const c = counterHalves(counter);
    this.counterHigh = c.high;
    this.counterLow = c.low;
  }

  /** A counter heard since the last send is the one to continue from. */
  private takeHeard(): void {
    if (!this.counterHeard) return;
    this.counterHigh = this.heardHigh;
    this.counterLow = this.heardLow;
    this.counterHeard = false;
  }

  private onVrrpPacket(pkt: Buffer, framing: Framing): void {
    // The pseudo-header is the IP header's own source and destination: the IPv4 header's bytes
    // 12 to 20, or for IPv6 (no header here) the addresses the socket reported.
    const off = framing.offset;
    const v6 = typeof framing.src === 'bigint' && typeof framing.dst === 'bigint';
    const addresses = v6
      ? onesSum(bigIntToBytes(framing.src as bigint)) + onesSum(bigIntToBytes(framing.dst as bigint))
      : onesSum(pkt, 12, 20);
    const reason = checkVrrp(pkt, off, v6 ? 16 : 4, vrrpPseudoSum(addresses, pkt.length - off));
    if (reason !== null) {
      this.reject(reason, framing.src);
      return;
    }
    this.stats.received++;
    const priority = pkt[off + 2];
    const interval = vrrpInterval(pkt, off);
    const st = this.steady;
    if (
      st !== null &&
      st.event.type === 'vrrpAdvert' &&
      st.event.src === framing.src &&
      st.event.priority === priority &&
      st.event.interval === interval
    ) {
      this.defer(st);
      return;
    }
    this.dispatch({ type: 'vrrpAdvert', src: framing.src, priority, interval });
  }

  /** A rejected packet attributed to this group (its vhid and destination matched). */
  reject(reason: RejectReason, src: SourceAddress, detail?: string): void {
    this.stats.rejects[reason]++;
    const hint =
      reason === 'digest'
        ? ': check vhid, password and virtual IP address'
        : reason === 'replay'
          ? `: ${detail ?? ''} (a replay, or a peer without replay_protection or with its clock behind)`
          : reason === 'version'
            ? ` (this group speaks ${this.cfg.protocol})`
            : '';
    this.warnings.report(reason, (more) =>
      this.log.warn(`rejected advertisement from ${formatSource(src)}: bad ${reason}${hint}${more}`),
    );
  }

  onLink(up: boolean): void {
    if (up === this.s.linkUp) return;
    this.log.info(`carrier ${up ? 'up' : 'down'}`);
    this.dispatch({ type: 'link', up });
  }

  /** The interface was deleted, or appeared again (possibly on a new index). */
  onInterface(present: boolean, linkUp: boolean): void {
    if (present === this.s.present && linkUp === this.s.linkUp) return;
    if (present !== this.s.present) {
      const what = present ? 'appeared; electing' : 'is gone; leaving MASTER and waiting for it';
      this.log.warn(`interface ${this.cfg.interface} ${what}`);
    }
    this.dispatch({ type: 'interface', present, linkUp });
  }

  /** The source address, learnt when the interface got one (srcip was not in the file). */
  setSource(srcip: string): void {
    if (srcip === this.cfg.srcip) return;
    this.cfg = { ...this.cfg, srcip };
    this.usePeers(this.cfg);
    this.log.info(`advertising from ${srcip}`);
    this.dispatch({ type: 'update', params: groupParams(this.cfg) });
  }

  /**
   * What the trackers and the sync group say (group-set.ts computes it); stepped only when it
   * changes. `failed` names the trackers behind it, for status.
   */
  setHealth(h: { trackFault: boolean; syncFault: boolean; demotion: number; failed: string[] }): void {
    this.failedTrackers = h.failed;
    const s = this.s;
    if (s.trackFault === h.trackFault && s.syncFault === h.syncFault && s.demotion === h.demotion) return;
    this.dispatch({ type: 'health', trackFault: h.trackFault, syncFault: h.syncFault, demotion: h.demotion });
  }

  /** Carrier or interface missing: this group's own fault that no tracker decides. */
  linkFault(): boolean {
    return linkFault(this.s);
  }

  /** Whether the kernel should hold this group's addresses now. */
  wantsAddresses(): boolean {
    return this.s.state === 'MASTER' && this.cfg.manageAddresses && this.stopping === null;
  }

  /** Resolves once the address changes and scripts queued so far are done. */
  effectsSettled(): Promise<void> {
    return this.effects.settled();
  }

  /** Someone removed an address of this MASTER: put it back and announce it. */
  restoreAddress(a: AddressConfig): void {
    this.stats.addressRestores++;
    this.events?.publish({ type: 'restore', ...this.ref(), address: a.address });
    this.log.warn(
      `${a.address}/${a.prefixlen} was removed from ${this.cfg.interface} behind our back; restoring it`,
    );
    this.effects.addAddresses([a]);
    this.dispatchGarp();
  }

  /** One of our addresses is on this host while we are not master. */
  noteConflict(a: AddressConfig, removing: boolean): void {
    const isNew = !this.conflicts.has(a.address);
    if (!removing) this.conflicts.add(a.address);
    if (!isNew && !removing) return;
    this.stats.addressConflicts++;
    this.events?.publish({ type: 'conflict', ...this.ref(), address: a.address, removed: removing });
    const what = removing
      ? 'removing it (this daemon added it)'
      : 'leaving it (not added by this daemon: remove it by hand)';
    this.log.warn(`${a.address}/${a.prefixlen} is on ${this.cfg.interface} while ${this.s.state}: ${what}`);
  }

  clearConflict(address: string): void {
    this.conflicts.delete(address);
  }

  /** ucarp's SIGUSR2: hand mastership over once. */
  stepDown(): void {
    this.dispatch({ type: 'stepDown' });
  }

  /** ucarpctl demote/promote/reset. */
  setOverride(override: Override): void {
    // A reload clears every group's override: an unchanged one is no step (the engine would
    // make none of it either), 4080 dispatches less in the reload's synchronous stretch.
    if (override === this.s.override) return;
    this.dispatch({ type: 'override', override });
  }

  /**
   * Applies settings that the protocol allows to change in place (timing, preempt, scripts,
   * xparam, timeout) without touching the state. Identity changes need a new runtime.
   */
  update(cfg: GroupConfig): void {
    this.cfg = cfg;
    this.usePeers(cfg);
    this.effects.update(cfg);
    this.dispatch({ type: 'update', params: groupParams(cfg) });
  }

  /**
   * Leaves the group; resolves when its addresses are released. Its scripts (the downscript,
   * queued behind a running upscript) are left to finish or time out in the background, so
   * that a reload never waits for them: a daemon that exits bounds them with settleScripts().
   */
  async stop(opts: StopOptions): Promise<void> {
    const released = this.effects.beginLeaving();
    this.stopping = opts;
    this.dispatch({ type: 'stop', bowOut: opts.bowOut });
    this.clearTimer();
    if (opts.releaseAddresses && this.cfg.manageAddresses) this.effects.changeAddresses(false);
    await released();
  }

  status(): GroupStatus {
    const timing = advertisedTiming(this.s);
    const m = this.s.master;
    const vrrp = this.cfg.protocol === 'vrrp3';
    return {
      name: this.cfg.name,
      protocol: this.cfg.protocol,
      vhid: this.cfg.vhid,
      interface: this.cfg.interface,
      state: this.s.state,
      sinceMs: Math.max(0, this.clock.now() - this.s.since),
      addresses: this.cfg.addresses.map((a) => `${a.address}/${a.prefixlen}`),
      srcip: this.cfg.srcip,
      advbase: timing.advbase,
      advskew: timing.advskew,
      priority: vrrp ? advertisedPriority(this.s) : null,
      advertInterval: vrrp ? this.cfg.advertInterval / 100 : null,
      override: this.s.override,
      link: !this.s.present ? 'missing' : this.s.linkUp ? 'up' : 'down',
      conflicts: [...this.conflicts],
      demotion: this.s.demotion,
      faults: this.faultReasons(),
      master: m === null ? null : masterStatus(m),
      stats: this.stats,
    };
  }

  /**
   * The one way into the engine. An event raised while carrying out another one's actions
   * (the outcome of a send) is queued and stepped after them, so step never re-enters.
   */
  private dispatch(ev: Event): void {
    this.queue.push(ev);
    if (this.dispatching) return;
    this.dispatching = true;
    try {
      if (this.heardAt >= 0 && this.steady !== null) {
        // The deferred advertisement, at the time it arrived; it has no actions.
        const r = step(this.s, this.steady.event, this.heardAt);
        this.s = r.state;
        for (const a of r.actions) this.perform(a);
      }
      this.heardAt = -1;
      // The master's timers carried out since the last dispatch, their sends already done.
      if (this.advertAt >= 0 && this.steadyTimer !== null) this.s = afterSteadyTimers(this.s, this.advertAt);
      this.advertAt = -1;
      for (let next = this.queue.shift(); next !== undefined; next = this.queue.shift()) {
        const r = step(this.s, next, this.clock.now());
        this.s = r.state;
        for (const a of r.actions) this.perform(a);
      }
    } finally {
      this.dispatching = false;
    }
    this.steady = steadyAdvert(this.s);
    this.steadyTimer = steadyTimer(this.s);
    this.arm();
  }

  /**
   * The timer event. A master's steady one (engine/group.ts, steadyTimer) is carried out
   * without a step: its advertisement sent, the deadline moved as the step would move it; the
   * next dispatch applies the moved deadline to the state first.
   */
  private fire(): void {
    const st = this.steadyTimer;
    if (st !== null && !this.dispatching) {
      const from = this.advertAt >= 0 ? this.advertAt : this.s.advertAt;
      const next = from === null ? null : steadyAdvertAt(st, from, this.clock.now());
      if (next !== null) {
        this.advertAt = next;
        // Before sending: a send that fails at once dispatches, which re-arms from the state.
        this.timer.set(next - st.slackMs, next);
        this.perform(st.action);
        return;
      }
    }
    this.dispatch(TIMER);
  }

  /**
   * Hands the engine's next deadline to the scheduler as a window: a master's advertisement
   * may be served from its slack on (with others due then), a backup's deadline only when due.
   */
  private arm(): void {
    const latest = nextDeadline(this.s);
    if (latest === null) this.timer.cancel();
    else this.timer.set(earliestDeadline(this.s) ?? latest, latest);
  }

  private clearTimer(): void {
    this.timer.cancel();
  }

  private perform(a: Action): void {
    switch (a.type) {
      case 'send':
        this.sendAdvertisement(a.advbase, a.advskew);
        break;
      case 'sendVrrp':
        this.sendVrrp(a.priority, a.interval);
        break;
      case 'garp':
        this.dispatchGarp();
        break;
      case 'transition':
        this.transition(a.from, a.to, a.reason, a.runScript);
        break;
    }
  }

  /** Why the group is (or would be) in FAULT: failed trackers, the link, its sync group. */
  private faultReasons(): string[] {
    const out = this.s.trackFault ? [...this.failedTrackers] : [];
    if (!this.s.present) out.push('interface missing');
    else if (linkFault(this.s)) out.push('no carrier');
    if (this.s.syncFault) out.push(`sync group ${this.cfg.syncGroup ?? ''}`.trim());
    return out;
  }

  /** Computed once per configuration and source: the send and receive paths only look them up. */
  private usePeers(cfg: GroupConfig): void {
    this.peers = cfg.peers.length > 0 ? new Set(cfg.peers.map(sourceOf)) : null;
    this.destinations = cfg.peers.length > 0 ? cfg.peers : [cfg.destination];
    this.vrrpDestinations = this.destinations.map(addressBytes);
    this.vrrpAddresses = cfg.addresses.map((a) => addressBytes(a.address));
    this.vrrpSource =
      cfg.srcip === '' ? Buffer.alloc(this.vrrpDestinations[0].length) : addressBytes(cfg.srcip);
    this.vrrpOut = Buffer.alloc(VRRP_HEADER_LEN + this.vrrpSource.length * this.vrrpAddresses.length);
  }

  private ref(): { group: string; vhid: number; interface: string } {
    return { group: this.cfg.name, vhid: this.cfg.vhid, interface: this.cfg.interface };
  }

  private dispatchGarp(): void {
    try {
      this.io.garp(
        this.cfg.addresses.map((x) => x.address),
        this.cfg.srcip,
        this.garpDone,
      );
    } catch (e) {
      this.garpFailed(e);
    }
  }

  private readonly garpDone = (err: Error | null): void => {
    if (err !== null) this.garpFailed(err);
  };

  private garpFailed(e: unknown): void {
    // IPv6 groups announce with neighbour advertisements (GroupIo.garp).
    const what = familyOf(this.cfg.addresses[0].address) === 6 ? 'neighbour advertisement' : 'gratuitous ARP';
    this.log.error(`${what} failed: ${errorMessage(e)}`);
  }

  private sendAdvertisement(advbase: number, advskew: number): void {
    if (this.replay !== null) {
      const counter = nextCounter(this.replay, this.wallClock());
      this.replay = sent(this.replay, counter);
      this.useCounter(counter);
    } else {
      // Plus one, modulo 2^64, in halves: no BigInt per advertisement.
      this.takeHeard();
      this.counterLow = (this.counterLow + 1) | 0;
      if (this.counterLow === 0) this.counterHigh = (this.counterHigh + 1) | 0;
    }
    writeAdvertisement(
      this.out,
      this.digest,
      this.cfg.vhid,
      advbase,
      advskew,
      0,
      this.counterHigh,
      this.counterLow,
    );
    this.sendToAll(this.carpOut);
  }

  /** A VRRPv3 advertisement: checksummed per destination, as the pseudo-header includes it. */
  private sendVrrp(priority: number, interval: number): void {
    const c = this.cfg;
    const adv = { vrid: c.vhid, priority, interval, addresses: this.vrrpAddresses };
    this.sendToAll((i) => encodeVrrp(adv, this.vrrpSource, this.vrrpDestinations[i], this.vrrpOut));
  }

  private sendToAll(payload: (index: number) => Buffer): void {
    // A multicast group's one copy is told to a callback made once (the master's steady path).
    if (this.peers === null) {
      try {
        this.io.send(payload(0), this.destinations[0], this.cfg.srcip, this.sentMulticast);
      } catch (e) {
        this.sentMulticast(e);
      }
      return;
    }
    // A unicast group sends the same advertisement to each peer; it counts as sent when at
    // least one copy left, so one unreachable peer does not suppress the group. The outcome
    // is known when the turn's batch has been sent; the engine hears it then.
    const round = { pending: this.destinations.length, ok: false };
    for (let i = 0; i < this.destinations.length; i++) {
      const dst = this.destinations[i];
      const done = (err: unknown): void => {
        if (err === null) round.ok = true;
        else this.sendFailed(dst, err);
        if (--round.pending === 0) this.sendSettled(round.ok);
      };
      try {
        this.io.send(payload(i), dst, this.cfg.srcip, done);
      } catch (e) {
        done(e);
      }
    }
  }

  private readonly sentMulticast = (err: unknown): void => {
    if (err !== null) this.sendFailed(this.cfg.destination, err);
    this.sendSettled(err === null);
  };

  private sendFailed(dst: string, e: unknown): void {
    this.stats.sendErrors++;
    const to = this.cfg.peers.length > 0 ? ` to ${dst}` : '';
    this.warnings.report('send', (more) =>
      this.log.warn(`sending advertisement${to} failed: ${errorMessage(e)}${more}`),
    );
  }

  private sendSettled(ok: boolean): void {
    if (ok) this.stats.sent++;
    // Successes only matter while failures are being counted; skipping them keeps the
    // steady state at one engine step per advertisement.
    if (ok && this.s.sendFailures === 0 && !this.s.suppressed) return;
    this.dispatch({ type: 'sendResult', ok });
  }

  private transition(from: CarpState, to: CarpState, reason: TransitionReason, runScript: boolean): void {
    this.stats.transitions++;
    this.onTransition?.();
    const line = `Switching to state: ${to} (${reason})`;
    this.afterBatch.defer(() =>
      to === 'MASTER' || from === 'MASTER' ? this.log.warn(line) : this.log.info(line),
    );
    this.afterBatch.defer(() =>
      this.events?.publish({ type: 'transition', ...this.ref(), from, to, reason }),
    );
    // Carried on over a restart: the state did not change for anyone outside this process.
    if (reason !== 'restart') this.effects.notify(to);
    const stop = this.stopping;
    const manage = this.cfg.manageAddresses && (!stop || stop.releaseAddresses);
    if (to === 'MASTER') {
      // Also on a restart: the address record of this image learns them (adding is idempotent).
      if (manage) this.effects.changeAddresses(true);
      if (runScript) this.effects.runScript('up', to);
    } else {
      // BACKUP or FAULT: a master's addresses go; at start, whatever a crashed run left.
      if (manage && !stop) this.effects.changeAddresses(false);
      if (runScript && (!stop || stop.downscript)) this.effects.runScript('down', to);
    }
  }
}
