// What the trackers' states mean for the groups: pure functions, so that the owner can
// recompute every group's health on any 'change' of src/track/tracker-set.ts and the rules can be
// tested without processes or timers. The engine (src/engine/group.ts) takes the result as its
// `health` event and caps the demoted advskew at 240 itself.

import { InvalidArgumentError } from '../errors';
import type { TrackRef } from '../config/types';
import type { TrackerState } from './tracker-set';

export interface GroupHealth {
  /** A tracker followed without weight has failed: the group belongs in FAULT. */
  fault: boolean;
  /** To add to the advertised advskew. */
  demotion: number;
  /** Names of the failed trackers, in the order of `track`. */
  failed: string[];
}

export interface SyncMember {
  name: string;
  syncGroup?: string;
  /** This group's own reasons for FAULT (trackers, link), not its sync group's. */
  ownFault: boolean;
  demotion: number;
}

export interface SyncHealth {
  /** Another member of the group's sync group has a fault of its own. */
  syncFault: boolean;
  /** The highest demotion in the sync group (the group's own without one). */
  demotion: number;
}

function isFailed(s: TrackerState): boolean {
  // A file tracker's value is what counts, whatever `failed` says.
  return s.kind === 'file' ? s.value !== 0 : s.failed;
}

export function groupHealth(
  track: readonly TrackRef[],
  state: (name: string) => TrackerState | undefined,
): GroupHealth {
  const out: GroupHealth = { fault: false, demotion: 0, failed: [] };
  for (const ref of track) {
    const s = state(ref.tracker);
    // A name the set does not know (a reload half-way, a bug) must not make a group look healthy.
    if (s !== undefined && !isFailed(s)) continue;
    out.failed.push(ref.tracker);
    if (ref.weight === null) out.fault = true;
    // A negative value in a file is an operator's "no demotion", never a promotion.
    else if (s !== undefined && s.kind === 'file') out.demotion += Math.max(0, s.value) * ref.weight;
    else out.demotion += ref.weight;
  }
  return out;
}

/**
 * Members of one sync group stand and fall together: one with a fault of its own puts the others
 * in FAULT as well, and all of them advertise the largest demotion among them, so that a peer
 * host takes over all of them or none.
 */
export function syncHealth(members: readonly SyncMember[]): Map<string, SyncHealth> {
  const groups = new Map<string, { faults: number; demotion: number }>();
  const names = new Set<string>();
  for (const m of members) {
    if (names.has(m.name)) throw new InvalidArgumentError(`group ${m.name} listed twice`);
    names.add(m.name);
    if (m.syncGroup === undefined) continue;
    const g = groups.get(m.syncGroup) ?? { faults: 0, demotion: -Infinity };
    if (m.ownFault) g.faults++;
    g.demotion = Math.max(g.demotion, m.demotion);
    groups.set(m.syncGroup, g);
  }
  const out = new Map<string, SyncHealth>();
  for (const m of members) {
    const g = m.syncGroup === undefined ? undefined : groups.get(m.syncGroup);
    out.set(
      m.name,
      g === undefined
        ? { syncFault: false, demotion: m.demotion }
        : { syncFault: g.faults - (m.ownFault ? 1 : 0) > 0, demotion: g.demotion },
    );
  }
  return out;
}
