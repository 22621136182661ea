// One group's state machine (docs/protocol.md §8–§13 for CARP, §22 for VRRPv3), as a pure
// function of (state, event, now). FAULT, health, sync groups, overrides, stop and send
// failures are shared; what differs by protocol (timing, who is better, the shutdown
// advertisement) branches on params.protocol, VRRP's arithmetic living in vrrp-rules.ts.
// Times are milliseconds on a monotonic clock supplied by the caller; intervals are kept in
// 1/256 s units so that comparisons are exact integer comparisons.

import type { GroupConfig } from '../config/types';
import type { SourceAddress } from '../protocol/carp';
import {
  SHUTDOWN_PRIORITY,
  OWNER_PRIORITY,
  backupFollows,
  csToMs,
  effectivePriority,
  masterDownIntervalMs,
  senderWins,
  skewMs,
} from './vrrp-rules';

export const CARP_STATES = ['INIT', 'BACKUP', 'MASTER', 'FAULT'] as const;
export type CarpState = (typeof CARP_STATES)[number];

/** The settings of a GroupConfig the state machine decides with, taken as they are. */
export const ENGINE_SETTINGS = [
  'vhid',
  'advbase',
  'advskew',
  'deadratio',
  'preempt',
  'neutral',
  'ignoreifstate',
  'protocol',
  'priority',
  'advertInterval',
] as const satisfies readonly (keyof GroupConfig)[];

export type GroupParams = Pick<GroupConfig, (typeof ENGINE_SETTINGS)[number]> & {
  /**
   * This node's source address: an IPv4 address as an unsigned 32-bit integer (big-endian
   * reading), an IPv6 address as a 128-bit value. A group is of one family, so the tie-break
   * (§10) only ever compares two of a kind.
   */
  srcip: SourceAddress;
};

/** Operator override (ucarpctl demote/promote); cleared by reset or reload. */
export type Override = 'none' | 'demote' | 'promote';

/** What an advertisement says of its sender, CARP's and VRRPv3's (interval in cs). */
type CarpSender = { src: SourceAddress; advbase: number; advskew: number };
type VrrpSender = { src: SourceAddress; priority: number; interval: number };

/** The master as its advertisements describe it: CARP timing, or VRRP priority and interval. */
export type MasterInfo = CarpSender | VrrpSender;

export interface GroupState {
  readonly params: GroupParams;
  readonly state: CarpState;
  /** When the current state was entered. */
  readonly since: number;
  readonly linkUp: boolean;
  /** The interface exists (it can be deleted and re-created while the group runs). */
  readonly present: boolean;
  /** A tracker this group follows without weight has failed. */
  readonly trackFault: boolean;
  /** Another member of this group's sync group is in FAULT on this host. */
  readonly syncFault: boolean;
  /** Added to the advertised advskew (tracker weights), capped as advertisedTiming says. */
  readonly demotion: number;
  readonly stopped: boolean;
  /** MASTER: when the next advertisement is due. */
  readonly advertAt: number | null;
  /** BACKUP: when the master is declared dead. */
  readonly masterDownAt: number | null;
  /** BACKUP timer base: the last valid advertisement from another node, or when we started listening. */
  readonly lastAdvertAt: number | null;
  /** After a step-down (SIGUSR2), no takeover before this time. */
  readonly holdUntil: number;
  /** Periodic advertisements left before the delayed gratuitous ARP; 0 = none pending. */
  readonly delayedGarp: number;
  readonly sendFailures: number;
  readonly sendSuccesses: number;
  /** True while advertising advskew 240 because sends keep failing. */
  readonly suppressed: boolean;
  readonly override: Override;
  /** The node currently believed master (null when unknown); src = own srcip when MASTER. */
  readonly master: MasterInfo | null;
  /** VRRP: Master_Adver_Interval in centiseconds, learnt from the master's advertisements. */
  readonly masterInterval: number;
  /** VRRP: the master sent priority 0; the backup waits only its skew time. */
  readonly shutdownSeen: boolean;
}

export type Event =
  /**
   * Leave INIT with the interface as the runtime found it when it started listening. `resume`:
   * the state the previous image of this daemon handed over (ucarpctl restart) — the group
   * carries on in it rather than electing, and nothing changed for anyone outside.
   */
  | { type: 'start'; linkUp: boolean; present: boolean; resume?: ResumeState }
  | { type: 'timer' }
  | { type: 'advert'; src: SourceAddress; advbase: number; advskew: number }
  /** A VRRPv3 advertisement (already checksummed); interval in centiseconds. */
  | { type: 'vrrpAdvert'; src: SourceAddress; priority: number; interval: number }
  | { type: 'link'; up: boolean }
  /** The interface disappeared, or (re)appeared with the given carrier. */
  | { type: 'interface'; present: boolean; linkUp: boolean }
  /** What the trackers (and the sync group) say now. */
  | { type: 'health'; trackFault: boolean; syncFault: boolean; demotion: number }
  /** ucarp's SIGUSR2: give mastership away once and hold off for DEMOTE_HOLD_MS. */
  | { type: 'stepDown' }
  | { type: 'override'; override: Override }
  | { type: 'sendResult'; ok: boolean }
  | { type: 'update'; params: GroupParams }
  | { type: 'stop'; bowOut: boolean }
  /**
   * The daemon is about to replace itself (ucarpctl restart): a master advertises once more,
   * so that every peer's master-down timer starts from now, and the group stops where it is:
   * no bow-out, no transition, no timer.
   */
  | { type: 'freeze' };

/** What a group can carry over a restart of the daemon (FAULT and INIT are elected afresh). */
export type ResumeState = 'MASTER' | 'BACKUP';

export type TransitionReason =
  | 'start'
  | 'master-down'
  | 'preempt'
  | 'master-timing-out'
  | 'better-master'
  | 'link-down'
  | 'interface-gone'
  | 'interface-back'
  /** A tracker (or the sync group) failed. */
  | 'fault'
  | 'fault-cleared'
  | 'link-up'
  /** ucarpctl demote: the lasting advskew-255 override. */
  | 'demote'
  /** SIGUSR2: a one-off hand-over. */
  | 'step-down'
  | 'stop'
  /** Carried on from the daemon's previous image (ucarpctl restart): no change on the wire. */
  | 'restart';

export type Action =
  | { type: 'send'; advbase: number; advskew: number }
  /** A VRRPv3 advertisement; interval in centiseconds. */
  | { type: 'sendVrrp'; priority: number; interval: number }
  | { type: 'garp' }
  | { type: 'transition'; from: CarpState; to: CarpState; reason: TransitionReason; runScript: boolean };

export interface StepResult {
  state: GroupState;
  actions: Action[];
}

/** The bow-out advertisement: receivers take over at once, the sender schedules no more. */
export const BOW_OUT = { advbase: 255, advskew: 255 } as const;
/** CARP's largest meaningful advskew: where send failures and demotion stop (docs/protocol.md §12). */
export const CARP_MAXSKEW = 240;
export const SUPPRESSED_ADVSKEW = CARP_MAXSKEW;
export const DEMOTE_HOLD_MS = 3000;
const SEND_STREAK = 3;
/** Periodic advertisements after which the second gratuitous ARP goes out. */
const DELAYED_GARP_ADVERTS = 2;
/**
 * How early a master's periodic advertisement may go out, so that one wake-up of the runtime's
 * scheduler serves every advertisement due within this window (docs/protocol.md §8). Never
 * more than a tenth of the interval, so a short VRRP interval keeps its rhythm; a backup's
 * master-down deadline has no slack at all.
 */
export const ADVERT_SLACK_MS = 5;
const ADVERT_SLACK_FRACTION = 10;

/** (advbase, advskew) as a time in 1/256 s: "shorter is better". */
export function intervalUnits(advbase: number, advskew: number): number {
  return advbase * 256 + advskew;
}

export function unitsToMs(units: number): number {
  return (units * 1000) / 256;
}

/** ucarp compares s_addr in host byte order; on x86 that is the address read little-endian. */
export function ucarpAddressOrder(addr: number): number {
  return (
    (((addr & 0xff) << 24) |
      (((addr >>> 8) & 0xff) << 16) |
      (((addr >>> 16) & 0xff) << 8) |
      (addr >>> 24)) >>>
    0
  );
}

/**
 * The tie-break order of a source (§10): ucarp's little-endian reading for IPv4, the address's
 * own big-endian value for IPv6, where there is no ucarp to agree with (§21).
 */
export function sourceOrder(addr: SourceAddress): number | bigint {
  return typeof addr === 'bigint' ? addr : ucarpAddressOrder(addr);
}

/** The (advbase, advskew) this node puts on the wire now. */
export function advertisedTiming(s: GroupState): { advbase: number; advskew: number } {
  let advskew = s.params.advskew;
  if (s.override === 'promote') advskew = 0;
  if (s.override === 'demote') advskew = 255;
  // FreeBSD carp's demotion: never past 240, and never an improvement for a group already
  // above it (docs/protocol.md §12).
  if (s.demotion > 0) advskew = Math.max(advskew, Math.min(advskew + s.demotion, CARP_MAXSKEW));
  if (s.suppressed) advskew = Math.max(advskew, SUPPRESSED_ADVSKEW);
  return { advbase: s.params.advbase, advskew };
}

/** The VRRP priority this node puts on the wire now (vrrp-rules.ts). */
export function advertisedPriority(s: GroupState): number {
  return effectivePriority({
    priority: s.params.priority,
    override: s.override,
    demotion: s.demotion,
    suppressed: s.suppressed,
  });
}

function isVrrp(s: GroupState): boolean {
  return s.params.protocol === 'vrrp3';
}

/** The periodic advertisement of this protocol. */
function advertAction(s: GroupState): Action {
  return isVrrp(s)
    ? { type: 'sendVrrp', priority: advertisedPriority(s), interval: s.params.advertInterval }
    : sendAction(advertisedTiming(s));
}

/** A CARP advertisement to send: a literal, not a spread (the master's per-advertisement path). */
function sendAction(t: { advbase: number; advskew: number }): Action {
  return { type: 'send', advbase: t.advbase, advskew: t.advskew };
}

/** What a leaving master sends: CARP's bow-out, VRRP's priority 0. */
function bowOutAction(s: GroupState): Action {
  return isVrrp(s)
    ? { type: 'sendVrrp', priority: SHUTDOWN_PRIORITY, interval: s.params.advertInterval }
    : sendAction(BOW_OUT);
}

function preempts(s: GroupState): boolean {
  if (s.override === 'promote') return true;
  if (s.override === 'demote') return false;
  return s.params.preempt;
}

export function advertIntervalMs(s: GroupState): number {
  if (isVrrp(s)) return csToMs(s.params.advertInterval);
  const t = advertisedTiming(s);
  return unitsToMs(intervalUnits(t.advbase, t.advskew));
}

export function masterDownMs(s: GroupState): number {
  if (isVrrp(s)) {
    const p = advertisedPriority(s);
    return s.shutdownSeen ? skewMs(p, s.masterInterval) : masterDownIntervalMs(p, s.masterInterval);
  }
  const t = advertisedTiming(s);
  return unitsToMs(intervalUnits(t.advbase * s.params.deadratio, t.advskew));
}

export function initialState(params: GroupParams, now: number, linkUp = true, present = true): GroupState {
  return {
    params,
    state: 'INIT',
    since: now,
    linkUp,
    present,
    trackFault: false,
    syncFault: false,
    demotion: 0,
    stopped: false,
    advertAt: null,
    masterDownAt: null,
    lastAdvertAt: null,
    holdUntil: 0,
    delayedGarp: 0,
    sendFailures: 0,
    sendSuccesses: 0,
    suppressed: false,
    override: 'none',
    master: null,
    masterInterval: params.advertInterval,
    shutdownSeen: false,
  };
}

/** The earliest deadline the caller must wake the group at, or null. */
export function nextDeadline(s: GroupState): number | null {
  if (s.advertAt === null) return s.masterDownAt;
  if (s.masterDownAt === null) return s.advertAt;
  return Math.min(s.advertAt, s.masterDownAt);
}

/** How much earlier than advertAt this master's periodic advertisement may go (never for a backup). */
export function advertSlackMs(s: GroupState): number {
  return Math.min(ADVERT_SLACK_MS, advertIntervalMs(s) / ADVERT_SLACK_FRACTION);
}

/**
 * The earliest time a timer event does anything: advertAt less the slack for a master,
 * masterDownAt exactly for a backup; null when no timer is pending. A wake-up between this and
 * nextDeadline is served as if on time.
 */
export function earliestDeadline(s: GroupState): number | null {
  const advert = s.advertAt === null ? null : s.advertAt - advertSlackMs(s);
  if (advert === null) return s.masterDownAt;
  if (s.masterDownAt === null) return advert;
  return Math.min(advert, s.masterDownAt);
}

function selfMaster(s: GroupState): MasterInfo {
  if (isVrrp(s))
    return { src: s.params.srcip, priority: advertisedPriority(s), interval: s.params.advertInterval };
  return { src: s.params.srcip, ...advertisedTiming(s) };
}

function linkActive(s: GroupState): boolean {
  // ignoreifstate forgives a missing carrier, never a missing interface: nothing can be sent
  // or heard on it, so a master there would be a second master.
  return s.present && (s.linkUp || s.params.ignoreifstate);
}

/** No carrier (without ignoreifstate) or no interface: what a tracker has no say in. */
export function linkFault(s: GroupState): boolean {
  return !linkActive(s);
}

/** This group's own reasons to be in FAULT (the sync group's aside). */
export function ownFault(s: GroupState): boolean {
  return s.trackFault || !linkActive(s);
}

function faulty(s: GroupState): boolean {
  return ownFault(s) || s.syncFault;
}

function becomeFault(
  s: GroupState,
  now: number,
  reason: TransitionReason,
  runScript: boolean,
  actions: Action[],
): GroupState {
  actions.push({ type: 'transition', from: s.state, to: 'FAULT', reason, runScript });
  return {
    ...s,
    state: 'FAULT',
    since: now,
    advertAt: null,
    masterDownAt: null,
    lastAdvertAt: null,
    delayedGarp: 0,
    master: null,
  };
}

/**
 * After any change of what FAULT depends on (carrier, interface, trackers, sync group): enter
 * or leave FAULT. A master that can still reach the segment bows out first, so a backup takes
 * over at once; over a dead link nothing would arrive, and the peer waits its dead time.
 * Leaving FAULT is BACKUP with a full dead time of listening, then the normal election.
 */
function settleFault(next: GroupState, now: number, reason: TransitionReason, actions: Action[]): GroupState {
  if (next.stopped || next.state === 'INIT') return next;
  if (faulty(next)) {
    if (next.state === 'FAULT') return next;
    const wasMaster = next.state === 'MASTER';
    if (wasMaster && linkActive(next)) actions.push(bowOutAction(next));
    return becomeFault(next, now, reason, wasMaster, actions);
  }
  if (next.state !== 'FAULT') return next;
  actions.push({ type: 'transition', from: 'FAULT', to: 'BACKUP', reason, runScript: false });
  const listening = { ...next, lastAdvertAt: now, ...freshMasterTiming(next) };
  return { ...listening, state: 'BACKUP', since: now, masterDownAt: backupDeadline(listening, now) };
}

/** VRRP: a backup that has heard no master yet assumes the master advertises as it would. */
function freshMasterTiming(s: GroupState): Pick<GroupState, 'masterInterval' | 'shutdownSeen'> {
  return { masterInterval: s.params.advertInterval, shutdownSeen: false };
}

function backupDeadline(s: GroupState, now: number): number {
  const base = s.lastAdvertAt ?? now;
  return Math.max(base + masterDownMs(s), s.holdUntil);
}

function becomeMaster(s: GroupState, now: number, reason: TransitionReason, actions: Action[]): GroupState {
  const next: GroupState = {
    ...s,
    state: 'MASTER',
    since: now,
    masterDownAt: null,
    delayedGarp: DELAYED_GARP_ADVERTS,
  };
  const timed = { ...next, advertAt: now + advertIntervalMs(next) };
  // The advertisement first: it is what stops the other nodes' timers, and in a mass
  // takeover every microsecond before it is spent by all the groups still waiting.
  actions.push(
    advertAction(timed),
    { type: 'garp' },
    { type: 'transition', from: s.state, to: 'MASTER', reason, runScript: true },
  );
  return { ...timed, master: selfMaster(timed) };
}

function becomeBackup(
  s: GroupState,
  now: number,
  reason: TransitionReason,
  runScript: boolean,
  actions: Action[],
): GroupState {
  actions.push({ type: 'transition', from: s.state, to: 'BACKUP', reason, runScript });
  const next: GroupState = {
    ...s,
    state: 'BACKUP',
    since: now,
    advertAt: null,
    delayedGarp: 0,
    lastAdvertAt: s.lastAdvertAt ?? now,
    master: s.state === 'MASTER' ? null : s.master,
    ...(s.state === 'BACKUP' ? {} : freshMasterTiming(s)),
  };
  return { ...next, masterDownAt: linkActive(next) && !next.stopped ? backupDeadline(next, now) : null };
}

/**
 * A master handed over by the previous image: it advertises at once (the peers' timers have run
 * since its last advertisement before the restart) and keeps its addresses; no gratuitous ARP
 * and no upscript, since nothing moved (docs/protocol.md §11).
 */
function resumeMaster(s: GroupState, now: number, actions: Action[]): GroupState {
  const next: GroupState = { ...s, state: 'MASTER', since: now, masterDownAt: null, delayedGarp: 0 };
  const timed = { ...next, advertAt: now + advertIntervalMs(next) };
  actions.push(advertAction(timed), {
    type: 'transition',
    from: s.state,
    to: 'MASTER',
    reason: 'restart',
    runScript: false,
  });
  return { ...timed, master: selfMaster(timed) };
}

function onTimer(s: GroupState, now: number, actions: Action[]): GroupState {
  if (s.state === 'BACKUP' && s.masterDownAt !== null && now >= s.masterDownAt) {
    return becomeMaster({ ...s, lastAdvertAt: null }, now, 'master-down', actions);
  }
  if (s.state === 'MASTER' && s.advertAt !== null && now >= s.advertAt - advertSlackMs(s)) {
    actions.push(advertAction(s));
    let delayedGarp = s.delayedGarp;
    if (delayedGarp > 0) {
      delayedGarp -= 1;
      if (delayedGarp === 0) actions.push({ type: 'garp' });
    }
    const advertAt = followingAdvertAt(s.advertAt, advertIntervalMs(s), now);
    return steady(s, advertAt, s.masterDownAt, s.lastAdvertAt, delayedGarp, s.master);
  }
  return s;
}

/**
 * Drift-free: the next deadline follows the previous deadline, not "now" (sent early within
 * the slack or late, the rhythm stays); only after a stall longer than an interval do we
 * resynchronise instead of sending a burst.
 */
function followingAdvertAt(advertAt: number, intervalMs: number, now: number): number {
  const next = advertAt + intervalMs;
  return next <= now ? now + intervalMs : next;
}

/**
 * A master's periodic advertisement when stepping its timer would only send it and move
 * advertAt along (no gratuitous ARP due with it, no master-down deadline): the runtime may
 * carry such timers out without stepping them and step nothing until its next event, when
 * `afterSteadyTimers` gives the state that stepping each would have given (docs/architecture.md,
 * "Deferred steady advertisements"). Null when the next timer could do anything else.
 */
export interface SteadyTimer {
  /** The advertisement each such timer sends: the action onTimer would return. */
  readonly action: Action;
  readonly intervalMs: number;
  /** How early it may go: advertSlackMs. */
  readonly slackMs: number;
}

export function steadyTimer(s: GroupState): SteadyTimer | null {
  if (s.state !== 'MASTER' || s.stopped || s.advertAt === null || s.masterDownAt !== null) return null;
  if (s.delayedGarp !== 0) return null;
  return { action: advertAction(s), intervalMs: advertIntervalMs(s), slackMs: advertSlackMs(s) };
}

/**
 * Where a steady timer at `now` moves the deadline `advertAt` (onTimer's rule), or null when it
 * is not due yet and would do nothing.
 */
export function steadyAdvertAt(st: SteadyTimer, advertAt: number, now: number): number | null {
  return now >= advertAt - st.slackMs ? followingAdvertAt(advertAt, st.intervalMs, now) : null;
}

/** The state after steady timers (steadyTimer) have moved its deadline to `advertAt`. */
export function afterSteadyTimers(s: GroupState, advertAt: number): GroupState {
  return steady(s, advertAt, s.masterDownAt, s.lastAdvertAt, s.delayedGarp, s.master);
}

/** Only a running master or backup on an active link acts on what it hears, whatever the protocol. */
function hearsAdverts(s: GroupState): boolean {
  return !s.stopped && s.state !== 'INIT' && s.state !== 'FAULT' && linkActive(s);
}

function onAdvert(s: GroupState, ev: CarpSender, now: number, actions: Action[]): GroupState {
  if (!hearsAdverts(s)) return s;
  const mine = advertisedTiming(s);
  const ours = intervalUnits(mine.advbase, mine.advskew);
  const theirs = intervalUnits(ev.advbase, ev.advskew);

  if (s.state === 'MASTER') {
    const senderLower = sourceOrder(ev.src) < sourceOrder(s.params.srcip);
    if (theirs < ours || (theirs === ours && senderLower)) {
      // Tell the others once more who we were, so that a third node does not time out.
      actions.push(sendAction(mine));
      const backup = becomeBackup({ ...s, lastAdvertAt: now }, now, 'better-master', true, actions);
      return { ...backup, master: masterOf(null, ev) };
    }
    // A worse master is out there: re-assert our address now and once more later.
    actions.push({ type: 'garp' });
    return { ...s, delayedGarp: DELAYED_GARP_ADVERTS };
  }

  // BACKUP
  const held = now < s.holdUntil;
  if (!held && preempts(s) && theirs > ours) {
    return becomeMaster({ ...s, lastAdvertAt: null }, now, 'preempt', actions);
  }
  const deadUnits = intervalUnits(mine.advbase * s.params.deadratio, mine.advskew);
  if (!held && theirs > deadUnits) {
    return becomeMaster({ ...s, lastAdvertAt: null }, now, 'master-timing-out', actions);
  }
  // The steady path, once per advertisement per backup: one new state, the master's description
  // kept when unchanged; the deadline is backupDeadline's with lastAdvertAt = now.
  const master = masterOf(s.master, ev);
  return heard(s, now, master, Math.max(now + masterDownMs(s), s.holdUntil));
}

/**
 * The state after one of the two steady steps, a backup hearing its master or a master sending
 * its advertisement, spelt out field by field rather than spread: a literal of all fields in one
 * order gets one hidden class with the fields in the object, where a spread of a state whose
 * fields changed representation (null to a number) is copied property by property into a
 * growing backing store (issue 11: the per-packet cost of both hosts).
 */
function steady(
  s: GroupState,
  advertAt: number | null,
  masterDownAt: number | null,
  lastAdvertAt: number | null,
  delayedGarp: number,
  master: MasterInfo | null,
): GroupState {
  return {
    params: s.params,
    state: s.state,
    since: s.since,
    linkUp: s.linkUp,
    present: s.present,
    trackFault: s.trackFault,
    syncFault: s.syncFault,
    demotion: s.demotion,
    stopped: s.stopped,
    advertAt,
    masterDownAt,
    lastAdvertAt,
    holdUntil: s.holdUntil,
    delayedGarp,
    sendFailures: s.sendFailures,
    sendSuccesses: s.sendSuccesses,
    suppressed: s.suppressed,
    override: s.override,
    master,
    masterInterval: s.masterInterval,
    shutdownSeen: s.shutdownSeen,
  };
}

/** A backup's state after a master's advertisement: heard now, the deadline moved. */
function heard(s: GroupState, now: number, master: MasterInfo | null, masterDownAt: number): GroupState {
  return steady(s, s.advertAt, masterDownAt, now, s.delayedGarp, master);
}

/**
 * The advertisement a backup hears from its master every interval, when stepping it would only
 * move the backup's deadline: the same master with the same timing, followed whatever the hold
 * (no preemption, no time-out), no action. The runtime may step the last of a run of these
 * instead of each (docs/architecture.md, "Deferred steady advertisements"): stepping them one
 * by one or only the last gives the same state, and in between the deadline is `steadyDeadline`.
 * Null when the next advertisement could do anything else.
 */
export interface SteadyAdvert {
  /** The advertisement as its event, built from the master's description. */
  readonly event: Extract<Event, { type: 'advert' | 'vrrpAdvert' }>;
  /** The dead time heard from then on, and the step-down hold it never ends before. */
  readonly deadMs: number;
  readonly holdUntil: number;
}

export function steadyAdvert(s: GroupState): SteadyAdvert | null {
  const m = s.master;
  if (s.state !== 'BACKUP' || m === null || s.advertAt !== null || !hearsAdverts(s)) return null;
  const event = steadyEvent(s, m);
  return event === null ? null : { event, deadMs: masterDownMs(s), holdUntil: s.holdUntil };
}

/** The advertisement a backup's master `m` sends, when hearing it again would only be followed. */
function steadyEvent(s: GroupState, m: MasterInfo): SteadyAdvert['event'] | null {
  if (isVrrp(s)) {
    if (!('priority' in m) || m.priority === SHUTDOWN_PRIORITY) return null;
    if (m.interval !== s.masterInterval || s.shutdownSeen) return null;
    if (!backupFollows(m.priority, advertisedPriority(s), preempts(s))) return null;
    return { type: 'vrrpAdvert', src: m.src, priority: m.priority, interval: m.interval };
  }
  if (!('advbase' in m)) return null;
  const mine = advertisedTiming(s);
  const theirs = intervalUnits(m.advbase, m.advskew);
  if (preempts(s) && theirs > intervalUnits(mine.advbase, mine.advskew)) return null;
  if (theirs > intervalUnits(mine.advbase * s.params.deadratio, mine.advskew)) return null;
  return { type: 'advert', src: m.src, advbase: m.advbase, advskew: m.advskew };
}

/** A backup's deadline after hearing `steady`'s advertisement at `at`: onAdvert's steady path. */
export function steadyDeadline(steady: SteadyAdvert, at: number): number {
  return Math.max(at + steady.deadMs, steady.holdUntil);
}

/**
 * The master an advertisement describes: `kept` itself when it describes the same one (the
 * steady path builds no object per packet), else a new description.
 */
function masterOf(kept: MasterInfo | null, ev: CarpSender | VrrpSender): MasterInfo {
  if (kept !== null && sameMaster(kept, ev)) return kept;
  return 'advbase' in ev
    ? { src: ev.src, advbase: ev.advbase, advskew: ev.advskew }
    : { src: ev.src, priority: ev.priority, interval: ev.interval };
}

/** Whether `m` describes the sender of `ev` with the timing (and VRRP priority) it sends. */
function sameMaster(m: MasterInfo, ev: CarpSender | VrrpSender): boolean {
  if (m.src !== ev.src) return false;
  if ('advbase' in ev) return 'advbase' in m && m.advbase === ev.advbase && m.advskew === ev.advskew;
  return 'priority' in m && m.priority === ev.priority && m.interval === ev.interval;
}

/** A VRRPv3 advertisement (RFC 5798 §6.4.2–§6.4.3, docs/protocol.md §22). */
function onVrrpAdvert(s: GroupState, ev: VrrpSender, now: number, actions: Action[]): GroupState {
  if (!hearsAdverts(s)) return s;
  const mine = advertisedPriority(s);
  if (s.state === 'MASTER') {
    if (ev.priority !== SHUTDOWN_PRIORITY && senderWins(ev.priority, ev.src, mine, s.params.srcip)) {
      const backup = becomeBackup({ ...s, lastAdvertAt: now }, now, 'better-master', true, actions);
      const learnt = {
        ...backup,
        master: masterOf(null, ev),
        masterInterval: ev.interval,
        shutdownSeen: false,
      };
      return { ...learnt, masterDownAt: backupDeadline(learnt, now) };
    }
    // A leaving or a worse master: advertise now so that it (and every backup) hears us
    // without waiting for our next interval, and re-assert our addresses as CARP does.
    actions.push(advertAction(s));
    if (ev.priority === SHUTDOWN_PRIORITY) return { ...s, advertAt: now + advertIntervalMs(s) };
    actions.push({ type: 'garp' });
    return { ...s, advertAt: now + advertIntervalMs(s), delayedGarp: DELAYED_GARP_ADVERTS };
  }

  // BACKUP
  const held = now < s.holdUntil;
  if (ev.priority === SHUTDOWN_PRIORITY) {
    const next = { ...s, lastAdvertAt: now, shutdownSeen: true, master: null };
    return { ...next, masterDownAt: backupDeadline(next, now) };
  }
  if (!held && !backupFollows(ev.priority, mine, preempts(s))) return s;
  if (s.masterInterval === ev.interval && !s.shutdownSeen) {
    // The steady path, as for CARP: the master's interval and so the deadline's length are
    // unchanged, and its description is kept when it is the same master.
    const master = masterOf(s.master, ev);
    return heard(s, now, master, Math.max(now + masterDownMs(s), s.holdUntil));
  }
  const next = {
    ...s,
    lastAdvertAt: now,
    master: masterOf(null, ev),
    masterInterval: ev.interval,
    shutdownSeen: false,
  };
  return { ...next, masterDownAt: backupDeadline(next, now) };
}

export function step(s: GroupState, ev: Event, now: number): StepResult {
  const actions: Action[] = [];
  let next = s;
  switch (ev.type) {
    case 'start':
      if (s.state === 'INIT' && !s.stopped) {
        const ready = { ...s, linkUp: ev.linkUp, present: ev.present };
        // RFC 5798 §6.4.1: the address owner is master at once.
        const owner = isVrrp(ready) && advertisedPriority(ready) === OWNER_PRIORITY;
        if (faulty(ready)) next = becomeFault(ready, now, 'start', !s.params.neutral, actions);
        else if (ev.resume === 'MASTER') next = resumeMaster(ready, now, actions);
        else if (ev.resume === 'BACKUP') next = becomeBackup(ready, now, 'restart', false, actions);
        else if (owner) next = becomeMaster(ready, now, 'start', actions);
        else next = becomeBackup(ready, now, 'start', !s.params.neutral, actions);
      }
      break;
    case 'timer':
      if (!s.stopped) next = onTimer(s, now, actions);
      break;
    case 'advert':
      if (!isVrrp(s)) next = onAdvert(s, ev, now, actions);
      break;
    case 'vrrpAdvert':
      if (isVrrp(s)) next = onVrrpAdvert(s, ev, now, actions);
      break;
    case 'interface':
      next = onInterface(s, ev.present, ev.linkUp, now, actions);
      break;
    case 'link':
      if (ev.up === s.linkUp) break;
      next = settleFault({ ...s, linkUp: ev.up }, now, ev.up ? 'link-up' : 'link-down', actions);
      break;
    case 'health': {
      const demotion = Math.max(0, Math.floor(ev.demotion));
      const changed = { ...s, trackFault: ev.trackFault, syncFault: ev.syncFault, demotion };
      next = demotion !== s.demotion ? retime(s, changed, now) : changed;
      const cleared = !faulty(next) && s.state === 'FAULT';
      next = settleFault(next, now, cleared ? 'fault-cleared' : 'fault', actions);
      break;
    }
    case 'stepDown':
      // ucarp's SIGUSR2: give mastership away and stay out of elections for 3 s. Unlike
      // ucarp we bow out on the wire, so a backup takes over now rather than ~3 s later.
      next = { ...s, holdUntil: now + DEMOTE_HOLD_MS };
      if (s.state === 'MASTER') next = handOver(next, now, 'step-down', actions);
      else if (next.masterDownAt !== null) next = { ...next, masterDownAt: backupDeadline(next, now) };
      break;
    case 'override':
      if (ev.override === s.override) break;
      next = retime(s, { ...s, override: ev.override }, now);
      if (ev.override === 'demote' && s.state === 'MASTER') next = handOver(next, now, 'demote', actions);
      break;
    case 'sendResult':
      next = onSendResult(s, ev.ok, now);
      break;
    case 'update':
      next = retime(s, { ...s, params: ev.params }, now);
      break;
    case 'stop':
      if (s.stopped) break;
      if (s.state === 'MASTER' && ev.bowOut) actions.push(bowOutAction(s));
      next = { ...s, stopped: true };
      if (s.state === 'MASTER') {
        next = becomeBackup(next, now, 'stop', true, actions);
      }
      next = { ...next, advertAt: null, masterDownAt: null };
      break;
    case 'freeze':
      if (s.stopped) break;
      if (s.state === 'MASTER' && linkActive(s)) actions.push(advertAction(s));
      next = { ...s, stopped: true, advertAt: null, masterDownAt: null };
      break;
  }
  return { state: next, actions };
}

function onInterface(
  s: GroupState,
  present: boolean,
  linkUp: boolean,
  now: number,
  actions: Action[],
): GroupState {
  if (present === s.present)
    return s.linkUp === linkUp
      ? s
      : settleFault({ ...s, linkUp }, now, linkUp ? 'link-up' : 'link-down', actions);
  return settleFault({ ...s, present, linkUp }, now, present ? 'interface-back' : 'interface-gone', actions);
}

function handOver(s: GroupState, now: number, reason: TransitionReason, actions: Action[]): GroupState {
  actions.push(bowOutAction(s));
  return becomeBackup({ ...s, lastAdvertAt: now }, now, reason, true, actions);
}

/** Re-derives deadlines after a change of timing parameters, without a state change. */
function retime(prev: GroupState, next: GroupState, now: number): GroupState {
  if (next.stopped) return next;
  if (next.state === 'MASTER' && prev.advertAt !== null) {
    const start = prev.advertAt - advertIntervalMs(prev);
    return { ...next, advertAt: Math.max(start + advertIntervalMs(next), now), master: selfMaster(next) };
  }
  if (next.state === 'BACKUP' && prev.masterDownAt !== null) {
    return { ...next, masterDownAt: backupDeadline(next, now) };
  }
  return next;
}

function onSendResult(s: GroupState, ok: boolean, now: number): GroupState {
  if (ok) {
    const sendSuccesses = s.sendSuccesses + 1;
    const clear = s.suppressed && sendSuccesses >= SEND_STREAK;
    const next = { ...s, sendFailures: 0, sendSuccesses, suppressed: clear ? false : s.suppressed };
    return clear ? retime(s, next, now) : next;
  }
  const sendFailures = s.sendFailures + 1;
  const suppress = !s.suppressed && sendFailures >= SEND_STREAK;
  const next = { ...s, sendSuccesses: 0, sendFailures, suppressed: suppress ? true : s.suppressed };
  return suppress ? retime(s, next, now) : next;
}
