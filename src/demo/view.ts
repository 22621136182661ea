// What the demo knows about the cluster at one instant (every daemon's status document and the
// addresses really present on every host), whether that is the settled state the plan
// predicts, and the table that shows it.
import type { GroupStatusJson, StatusDocument } from '../control/protocol';
import { preferredHost, type PlanGroup } from './config';

export interface Snapshot {
  hosts: readonly string[];
  groups: readonly PlanGroup[];
  /** Hosts whose daemon is meant to be running. */
  live: ReadonlySet<string>;
  /** Status per live host; null while it does not answer. */
  status: ReadonlyMap<string, StatusDocument | null>;
  /** IPv4 addresses on each host's interface, every host (down ones too). */
  addresses: ReadonlyMap<string, readonly string[]>;
}

const bare = (a: string) => a.split('/')[0];

export function groupOn(s: Snapshot, host: string, group: string): GroupStatusJson | undefined {
  return s.status.get(host)?.groups.find((g) => g.name === group);
}

/** Live hosts that report MASTER for the group. */
export function mastersOf(s: Snapshot, g: PlanGroup): string[] {
  return s.hosts.filter((h) => s.live.has(h) && groupOn(s, h, g.name)?.state === 'MASTER');
}

/** Hosts (down ones included) holding at least one of the group's addresses. */
export function holdersOf(s: Snapshot, g: PlanGroup): string[] {
  const mine = new Set(g.addresses.map(bare));
  return s.hosts.filter((h) => (s.addresses.get(h) ?? []).some((a) => mine.has(a)));
}

/**
 * Why the cluster is not settled yet; empty once it is. Settled: every live daemon answers and
 * runs its groups, every group has exactly one master, a preempting group's master is its
 * preferred live host, and the master (and no other live host) holds the group's addresses.
 */
export function unsettled(s: Snapshot): string[] {
  const why: string[] = [];
  for (const h of s.hosts) if (s.live.has(h) && !s.status.get(h)) why.push(`${h} does not answer yet`);
  for (const g of s.groups) {
    const runners = [...g.advskew.keys()].filter((h) => s.live.has(h) && s.status.get(h));
    if (runners.length === 0) continue;
    const missing = runners.filter((h) => (groupOn(s, h, g.name)?.state ?? 'INIT') === 'INIT');
    if (missing.length > 0) {
      why.push(`${g.name} is starting on ${missing.join(', ')}`);
      continue;
    }
    const masters = mastersOf(s, g);
    if (masters.length !== 1) {
      why.push(`${g.name} has ${masters.length} masters`);
      continue;
    }
    const preferred = preferredHost(g, s.live);
    if (g.preempt && masters[0] !== preferred)
      why.push(`${g.name} is on ${masters[0]}, its preferred host ${preferred} preempts`);
    for (const a of g.addresses.map(bare)) {
      const on = s.hosts.filter((h) => s.live.has(h) && (s.addresses.get(h) ?? []).includes(a));
      if (on.length !== 1 || on[0] !== masters[0]) why.push(`${a} is on ${on.join(', ') || 'no host'}`);
    }
  }
  return why;
}

/** The current master of every group that has exactly one. */
export function masterMap(s: Snapshot): Map<string, string> {
  const m = new Map<string, string>();
  for (const g of s.groups) {
    const masters = mastersOf(s, g);
    if (masters.length === 1) m.set(g.name, masters[0]);
  }
  return m;
}

function hostCell(s: Snapshot, host: string, g: PlanGroup): string {
  if (!g.advskew.has(host)) return '-';
  if (!s.live.has(host)) return 'down';
  const st = groupOn(s, host, g.name);
  // No answer on the control socket yet, or the group not yet created.
  if (!st) return 'starting';
  return `${st.state} ${st.advskew}`;
}

/** Left-aligned columns, two spaces apart, no trailing blanks. */
export function columns(rows: string[][]): string[] {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return rows.map((r) =>
    r
      .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i])))
      .join('  ')
      .trimEnd(),
  );
}

/** One row per group: each host's state and advskew, the master, who holds the addresses. */
export function renderTable(s: Snapshot): string[] {
  const head = ['GROUP', 'VHID', 'ADDRESS', 'PREEMPT', ...s.hosts, 'MASTER', 'ADDRESS ON'];
  const rows = s.groups.map((g) => {
    const first = bare(g.addresses[0] ?? '-');
    const address = g.addresses.length > 1 ? `${first} +${g.addresses.length - 1}` : first;
    const masters = mastersOf(s, g);
    const holders = holdersOf(s, g).map((h) => (s.live.has(h) ? h : `${h} (stale)`));
    return [
      g.name,
      String(g.vhid),
      address,
      g.preempt ? 'yes' : 'no',
      ...s.hosts.map((h) => hostCell(s, h, g)),
      masters.length > 0 ? masters.join('+') : 'none',
      holders.join(', ') || '-',
    ];
  });
  return columns([head, ...rows]);
}

interface Out {
  write(s: string): unknown;
  /** Terminal width, when it is a terminal. */
  columns?: number;
}

/**
 * A table that refreshes. On a terminal it is redrawn in place; elsewhere (a log, a test, a
 * pipe) a new copy is printed only when its content changed, so the output stays readable.
 */
export class LiveView {
  /** Terminal rows the last drawing took, wrapped lines counted as the terminal shows them. */
  private drawn = 0;
  private last = '';

  constructor(
    private readonly out: Out,
    private readonly tty: boolean,
  ) {}

  show(title: string, lines: string[]): void {
    const body = lines.join('\n');
    if (this.tty) {
      if (this.drawn > 0) this.out.write(`\x1b[${this.drawn}A\x1b[0J`);
    } else if (body === this.last) {
      return;
    }
    const text = [title, ...lines].map((l) => `  ${l}`);
    this.out.write(text.map((l) => l + '\n').join(''));
    const width = this.out.columns ?? 0;
    this.drawn = text.reduce((n, l) => n + (width > 0 ? Math.max(1, Math.ceil(l.length / width)) : 1), 0);
    this.last = body;
  }

  /** Whatever comes next is printed below the table, which stays as it is. */
  release(): void {
    this.drawn = 0;
    this.last = '';
  }
}
