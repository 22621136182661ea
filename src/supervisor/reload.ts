// What a reload reports, shared by the supervisor that performs it and the control socket that
// answers `ucarpctl reload`; it imports nothing from either, so neither imports the other.
import type { ConfigError } from '../config/types';
import type { ApplySummary } from '../runtime/group-set';

export type ReloadOutcome =
  { ok: true; summary: ApplySummary; line: string } | { ok: false; errors: ConfigError[]; text: string };

/**
 * What ucarpctl restart reports: the daemon handed its groups over and is about to replace
 * itself (execve), or it refused and runs on unchanged.
 */
export type RestartOutcome =
  { ok: true; pid: number; groups: number; masters: number; line: string } | { ok: false; reason: string };

/** What changed among the trackers on a reload. */
export interface TrackerSummary {
  added: string[];
  removed: string[];
  restarted: string[];
}

/**
 * `added 1 (web), removed 0, updated 1 (db: track, peers), restarted 0, unchanged 98`, then
 * the trackers that changed, if any: `; trackers: restarted 1 (haproxy)`.
 */
export function summaryLine(s: ApplySummary, t?: TrackerSummary): string {
  const part = (label: string, names: string[]) =>
    `${label} ${names.length}${names.length > 0 ? ` (${names.join(', ')})` : ''}`;
  const updated = s.updated.map((n) => {
    const keys = s.changed[n] ?? [];
    return keys.length > 0 ? `${n}: ${keys.join(', ')}` : n;
  });
  const line = [
    part('added', s.added),
    part('removed', s.removed),
    part('updated', updated),
    part('restarted', s.restarted),
    `unchanged ${s.unchanged}`,
  ].join(', ');
  if (!t) return line;
  const tracked = [part('added', t.added), part('removed', t.removed), part('restarted', t.restarted)].filter(
    (p) => !p.endsWith(' 0'),
  );
  return tracked.length > 0 ? `${line}; trackers: ${tracked.join(', ')}` : line;
}
