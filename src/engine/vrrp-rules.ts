// The rules in which VRRPv3 (RFC 5798 §6; docs/protocol.md §22) differs from CARP: who is
// better, how long a backup waits, what a backup does with an advertisement. Pure arithmetic;
// engine/group.ts applies them to a group's state.

/** Priority a master advertises when it leaves: backups wait only their skew time. */
export const SHUTDOWN_PRIORITY = 0;
/** The address owner's priority: master at start, never preempted. */
export const OWNER_PRIORITY = 255;
/** The lowest priority a working router advertises: where demotion and send failures stop. */
export const MIN_PRIORITY = 1;
/** `ucarpctl promote` on a VRRP group: the best a non-owner can advertise. */
export const PROMOTED_PRIORITY = 254;

/** Centiseconds to milliseconds. */
export function csToMs(cs: number): number {
  return cs * 10;
}

/** Skew_Time = ((256 − Priority) × Master_Adver_Interval) / 256, in ms (not rounded, as keepalived). */
export function skewMs(priority: number, masterIntervalCs: number): number {
  return csToMs(((256 - priority) * masterIntervalCs) / 256);
}

/** Master_Down_Interval = 3 × Master_Adver_Interval + Skew_Time, in ms. */
export function masterDownIntervalMs(priority: number, masterIntervalCs: number): number {
  return csToMs(3 * masterIntervalCs) + skewMs(priority, masterIntervalCs);
}

/**
 * The priority put on the wire: the configured one, raised by promote (never to the owner's
 * 255, which would mean "master at start"), 1 when demoted or when sends keep failing, and
 * lowered by tracker weights down to 1 (never raised by them).
 */
export function effectivePriority(o: {
  priority: number;
  override: 'none' | 'demote' | 'promote';
  demotion: number;
  suppressed: boolean;
}): number {
  let p = o.priority;
  if (o.override === 'promote') p = Math.max(p, PROMOTED_PRIORITY);
  if (o.override === 'demote') p = MIN_PRIORITY;
  if (o.demotion > 0) p = Math.min(p, Math.max(MIN_PRIORITY, p - o.demotion));
  if (o.suppressed) p = MIN_PRIORITY;
  return p;
}

/**
 * Whether an advertisement beats this master (§6.4.3): a higher priority, or the same
 * priority from a higher primary address (compared as unsigned integers in network order).
 */
export function senderWins(
  theirs: number,
  theirSrc: number | bigint,
  ours: number,
  ourSrc: number | bigint,
): boolean {
  return theirs > ours || (theirs === ours && theirSrc > ourSrc);
}

/**
 * What a backup does with a non-zero advertisement (§6.4.2): follow it (reset the down timer
 * and learn the master's interval), or, preempting and better than the sender, discard it so
 * that the master-down timer runs out and this router takes over.
 */
export function backupFollows(theirs: number, ours: number, preempt: boolean): boolean {
  return !preempt || theirs >= ours;
}
