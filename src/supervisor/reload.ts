// What a reload reports, shared by the supervisor that performs it and the control socket that
// answers `ucarpctl reload`; it imports nothing from either, so neither imports the other.
import type { ConfigError } from '../config/types';
import type { ApplySummary } from '../runtime/group-set';

export type ReloadOutcome =
  { ok: true; summary: ApplySummary; line: string } | { ok: false; errors: ConfigError[]; text: string };

/** `added 1 (web), removed 0, updated 0, restarted 0, unchanged 99`. */
export function summaryLine(s: ApplySummary): string {
  const part = (label: string, names: string[]) =>
    `${label} ${names.length}${names.length > 0 ? ` (${names.join(', ')})` : ''}`;
  return [
    part('added', s.added),
    part('removed', s.removed),
    part('updated', s.updated),
    part('restarted', s.restarted),
    `unchanged ${s.unchanged}`,
  ].join(', ');
}
