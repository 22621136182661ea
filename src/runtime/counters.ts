import { REJECT_REASONS, type RejectReason } from '../protocol/carp';

export type RejectCounters = Record<RejectReason, number>;

export function emptyRejects(): RejectCounters {
  return Object.fromEntries(REJECT_REASONS.map((r) => [r, 0])) as RejectCounters;
}

export function totalRejects(c: RejectCounters): number {
  let n = 0;
  for (const r of REJECT_REASONS) n += c[r];
  return n;
}

/** `ttl=1 digest=2`, only the non-zero ones. */
export function formatRejects(c: RejectCounters): string {
  return REJECT_REASONS.filter((r) => c[r] > 0)
    .map((r) => `${r}=${c[r]}`)
    .join(' ');
}
