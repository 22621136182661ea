// What a running group reports about itself: the shapes behind `ucarpctl status`, metrics and
// ucarp's SIGUSR1 line.
import type { CarpState, Override } from '../engine/group';
import type { Protocol } from '../config/types';
import { emptyRejects, formatRejects, totalRejects, type RejectCounters } from './counters';

export interface GroupStats {
  sent: number;
  received: number;
  sendErrors: number;
  transitions: number;
  /** A master's address removed by someone else and put back. */
  addressRestores: number;
  /** An address of ours found on this host while not master. */
  addressConflicts: number;
  rejects: RejectCounters;
}

/** The master as its advertisements describe it: CARP's timing or VRRP's priority and interval (s). */
export type MasterStatus =
  | { address: string; advbase: number; advskew: number }
  | { address: string; priority: number; advertInterval: number };

export interface GroupStatus {
  name: string;
  protocol: Protocol;
  vhid: number;
  interface: string;
  state: CarpState;
  /** Milliseconds spent in the current state. */
  sinceMs: number;
  addresses: string[];
  srcip: string;
  /** CARP: what this host advertises now (for VRRP, the unused configured values). */
  advbase: number;
  advskew: number;
  /** VRRP: the priority advertised now (after overrides and tracker weights); null for CARP. */
  priority: number | null;
  /** VRRP: seconds between advertisements; null for CARP. */
  advertInterval: number | null;
  override: Override;
  /** The interface's carrier, or 'missing' while it does not exist (the group waits). */
  link: 'up' | 'down' | 'missing';
  /** Addresses of this group on this host while it is not master (not added by us). */
  conflicts: string[];
  /** Added to advskew by tracker weights (before the 240 cap), the sync group's highest. */
  demotion: number;
  /** What holds the group in FAULT: failed trackers, 'no carrier', 'interface missing', its sync group. */
  faults: string[];
  master: MasterStatus | null;
  stats: GroupStats;
}

/** A health tracker as `ucarpctl status` shows it. */
export interface TrackerStatus {
  name: string;
  kind: 'script' | 'interface' | 'file';
  failed: boolean;
  value: number;
  /** Milliseconds since `failed` or `value` last changed. */
  sinceMs: number;
  /** The last output line (script), content (file) or link state (interface). */
  output: string;
  checks: number;
  failures: number;
}

export function emptyStats(): GroupStats {
  return {
    sent: 0,
    received: 0,
    sendErrors: 0,
    transitions: 0,
    addressRestores: 0,
    addressConflicts: 0,
    rejects: emptyRejects(),
  };
}

/** ucarp's SIGUSR1 line, plus the counters ucarp does not keep. */
export function statusLine(g: { status(): GroupStatus }): string {
  const s = g.status();
  const rejects = totalRejects(s.stats.rejects);
  return (
    `${s.state} on ${s.interface} id ${s.vhid}` +
    ` sent=${s.stats.sent} received=${s.stats.received} rejects=${rejects}` +
    (rejects > 0 ? ` (${formatRejects(s.stats.rejects)})` : '')
  );
}
