// What each control request does to the daemon. The daemon is seen through the narrow
// ControlTarget view (the Supervisor satisfies it), so tests can drive this without sockets.
import type { Override } from '../engine/group';
import type { ScriptStats } from '../hooks/scripts';
import { totalRejects, type RejectCounters } from '../runtime/counters';
import type { GroupStatus, MasterStatus, TrackerStatus } from '../runtime/status';
import type { ReloadOutcome, RestartOutcome } from '../supervisor/reload';
import {
  STATUS_VERSION,
  errorResponse,
  type GroupStatusJson,
  type InterfaceStatusJson,
  type TrackerStatusJson,
  type OverrideCommand,
  type Request,
  type Response,
  type StatusDocument,
} from './protocol';

export interface ControlledGroup {
  status(): GroupStatus;
  readonly scripts: { readonly stats: Readonly<ScriptStats> };
  setOverride(override: Override): void;
}

export interface InterfaceInfo {
  name: string;
  running: boolean;
  groups: number;
  rejects: RejectCounters;
}

export interface ControlTarget {
  readonly file: string;
  /** Still starting its groups: the control socket is open before them. */
  readonly starting: boolean;
  readonly reloads: { readonly ok: number; readonly failed: number };
  readonly groups: {
    list(): ControlledGroup[];
    group(name: string): ControlledGroup | undefined;
    interfaces(): InterfaceInfo[];
    trackers(): TrackerStatus[];
  };
  reload(why: string): Promise<ReloadOutcome>;
  /** ucarpctl restart up to the execve, which the caller does once the answer is out. */
  restart(): Promise<RestartOutcome>;
}

const OVERRIDES: Record<OverrideCommand, Override> = { demote: 'demote', promote: 'promote', reset: 'none' };

/** Copies field by field: the JSON contract must not follow internal renames by accident. */
export function groupJson(g: ControlledGroup): GroupStatusJson {
  const s = g.status();
  const scripts = g.scripts.stats;
  return {
    name: s.name,
    protocol: s.protocol,
    vhid: s.vhid,
    interface: s.interface,
    state: s.state,
    sinceMs: Math.floor(s.sinceMs),
    addresses: [...s.addresses],
    srcip: s.srcip,
    advbase: s.advbase,
    advskew: s.advskew,
    priority: s.priority,
    advertInterval: s.advertInterval,
    override: s.override,
    link: s.link,
    conflicts: [...s.conflicts],
    demotion: s.demotion,
    faults: [...s.faults],
    master: masterJson(s.master),
    sent: s.stats.sent,
    received: s.stats.received,
    sendErrors: s.stats.sendErrors,
    transitions: s.stats.transitions,
    addressRestores: s.stats.addressRestores,
    addressConflicts: s.stats.addressConflicts,
    rejects: { ...s.stats.rejects },
    rejectsTotal: totalRejects(s.stats.rejects),
    scripts: { runs: scripts.runs, failures: scripts.failures, timeouts: scripts.timeouts },
  };
}

function masterJson(m: MasterStatus | null): MasterStatus | null {
  if (m === null) return null;
  return 'priority' in m
    ? { address: m.address, priority: m.priority, advertInterval: m.advertInterval }
    : { address: m.address, advbase: m.advbase, advskew: m.advskew };
}

export function trackerJson(t: TrackerStatus): TrackerStatusJson {
  return {
    name: t.name,
    kind: t.kind,
    failed: t.failed,
    value: t.value,
    sinceMs: Math.floor(t.sinceMs),
    output: t.output,
    checks: t.checks,
    failures: t.failures,
  };
}

export function interfaceJson(i: InterfaceInfo): InterfaceStatusJson {
  return {
    name: i.name,
    running: i.running,
    groups: i.groups,
    rejects: { ...i.rejects },
    rejectsTotal: totalRejects(i.rejects),
  };
}

export function statusDocument(
  t: ControlTarget,
  groups: ControlledGroup[] = t.groups.list(),
): StatusDocument {
  return {
    version: STATUS_VERSION,
    pid: process.pid,
    uptimeMs: Math.floor(process.uptime() * 1000),
    starting: t.starting,
    configFile: t.file,
    reloads: { ok: t.reloads.ok, failed: t.reloads.failed },
    groups: groups.map(groupJson),
    interfaces: t.groups.interfaces().map(interfaceJson),
    trackers: t.groups.trackers().map(trackerJson),
  };
}

function noGroup(name: string) {
  return errorResponse('unknown-group', `no group named ${JSON.stringify(name)}`);
}

export async function handleRequest(t: ControlTarget, req: Request): Promise<Response> {
  switch (req.cmd) {
    case 'status': {
      if (req.group === undefined) return { ok: true, ...statusDocument(t) };
      const g = t.groups.group(req.group);
      return g ? { ok: true, ...statusDocument(t, [g]) } : noGroup(req.group);
    }
    case 'demote':
    case 'promote':
    case 'reset': {
      const g = t.groups.group(req.group);
      if (!g) return noGroup(req.group);
      g.setOverride(OVERRIDES[req.cmd]);
      return { ok: true, group: groupJson(g) };
    }
    case 'reload': {
      const r = await t.reload('ucarpctl');
      if (r.ok) return { ok: true, summary: r.summary, line: r.line };
      return {
        ...errorResponse(
          'config-invalid',
          `configuration rejected with ${r.errors.length} error(s); running groups unchanged`,
        ),
        errors: r.errors,
      };
    }
    case 'restart': {
      const r = await t.restart();
      if (!r.ok) return errorResponse('restart-refused', `restart refused, the daemon runs on: ${r.reason}`);
      return {
        ok: true,
        restarting: true,
        pid: r.pid,
        handedOver: r.groups,
        masters: r.masters,
        line: r.line,
      };
    }
  }
}
