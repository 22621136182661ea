// The one way a group's settings become a GroupConfig: the YAML front end (after its checks)
// and ucarp's command line (src/cli/ucarp.ts) both come through normalizeGroup, so a default
// or a derived value is decided here and nowhere else.
import { canonicalIp, compareAddresses, familyOf } from '../net/ipv6';
import { InternalError } from '../errors';
import type { MergedGroup } from './merge';
import type { Resolved } from './semantic';
import {
  BROADCAST_ADDRESS,
  CARP6_MULTICAST,
  DEFAULT_CONTROL_SOCKET,
  GROUP_DEFAULTS,
  LOGGING_DEFAULTS,
  TRACKER_DEFAULTS,
  VRRP3_DEFAULTS,
} from './settings';
import type {
  AddressConfig,
  Config,
  GroupConfig,
  RawConfig,
  RawGroup,
  RawTracker,
  TrackerConfig,
} from './types';

/** How one group is normalized: normalizeGroup, or a cache of it (src/config/incremental.ts). */
export type GroupNormalizer = (group: MergedGroup, config: RawConfig, facts: Resolved) => GroupConfig;

const normalizeMerged: GroupNormalizer = (g, _config, facts) => normalizeGroup(g.name, g.settings, facts);

/** Builds the daemon's view once every check passed: nothing left optional that has a default. */
export function normalize(
  config: RawConfig,
  groups: MergedGroup[],
  resolved: Map<string, Resolved>,
  group: GroupNormalizer = normalizeMerged,
): Config {
  const out: Config = {
    logging: {
      level: config.logging?.level ?? LOGGING_DEFAULTS.level,
      facility: config.logging?.facility ?? LOGGING_DEFAULTS.facility,
    },
    control: { socket: config.control?.socket ?? DEFAULT_CONTROL_SOCKET },
    trackers: Object.entries(config.trackers ?? {}).map(([name, t]) => normalizeTracker(name, t)),
    groups: groups.map((g) => {
      const facts = resolved.get(g.name);
      if (!facts) throw new InternalError(`group ${g.name} normalized before its semantic checks passed`);
      return group(g, config, facts);
    }),
  };
  if (config.metrics) out.metrics = parseListen(config.metrics.listen);
  return out;
}

/** A tracker with its kind made explicit and its defaults applied. */
export function normalizeTracker(name: string, t: RawTracker): TrackerConfig {
  const d = TRACKER_DEFAULTS;
  const intervalMs = Math.round((t.interval ?? d.interval) * 1000);
  const timing = {
    name,
    intervalMs,
    timeoutMs: t.timeout === undefined ? intervalMs : Math.round(t.timeout * 1000),
    rise: t.rise ?? d.rise,
    fall: t.fall ?? d.fall,
  };
  if (t.script !== undefined) {
    const argv = typeof t.script === 'string' ? t.script.split(' ').filter((w) => w !== '') : [...t.script];
    return { ...timing, kind: 'script', argv };
  }
  if (t.interface !== undefined) return { ...timing, kind: 'interface', interface: t.interface };
  if (t.file !== undefined) return { ...timing, kind: 'file', file: t.file };
  throw new InternalError(`tracker ${name} normalized before its semantic checks passed`);
}

/**
 * One group's settings as written (defaults already merged in), plus what the checks resolved
 * from the host (source address, password), with every default applied.
 */
export function normalizeGroup(name: string, s: RawGroup, facts: Resolved): GroupConfig {
  if (s.interface === undefined) throw new InternalError(`group ${name} has no interface`);
  const d = GROUP_DEFAULTS;
  const broadcast = s.broadcast ?? d.broadcast;
  const protocol = s.protocol ?? d.protocol;
  const preempt = protocol === 'vrrp3' ? VRRP3_DEFAULTS.preempt : d.preempt;
  // Every address of an IPv6 group in canonical text: the kernel reports them so, and the hub,
  // the record and the reconciliation compare strings (docs/protocol.md §21).
  const v6 = s.addresses.length > 0 && familyOf(s.addresses[0]) === 6;
  const out: GroupConfig = {
    name,
    protocol,
    vhid: s.vhid,
    interface: s.interface,
    srcip: facts.srcip === '' ? '' : canonicalIp(facts.srcip),
    addresses: s.addresses
      .map(parseCidr)
      .sort((a, b) => compareAddresses(a.address, b.address) || a.prefixlen - b.prefixlen),
    password: facts.password,
    advbase: s.advbase ?? d.advbase,
    advskew: s.advskew ?? d.advskew,
    deadratio: s.deadratio ?? d.deadratio,
    priority: s.priority ?? d.priority,
    advertInterval: Math.round((s.advert_interval ?? d.advert_interval) * 100),
    preempt: s.preempt ?? preempt,
    neutral: s.neutral ?? d.neutral,
    ignoreifstate: s.ignoreifstate ?? d.ignoreifstate,
    destination: broadcast ? BROADCAST_ADDRESS : canonicalIp(s.mcast ?? (v6 ? CARP6_MULTICAST : d.mcast)),
    broadcast,
    manageAddresses: s.manage_addresses ?? d.manage_addresses,
    scriptTimeoutMs: Math.round((s.script_timeout ?? d.script_timeout) * 1000),
    track: (s.track ?? []).map((t) =>
      typeof t === 'string' ? { tracker: t, weight: null } : { tracker: t.tracker, weight: t.weight ?? null },
    ),
    peers: (s.peers ?? []).map(canonicalIp),
    replayProtection: s.replay_protection ?? d.replay_protection,
  };
  if (s.sync_group !== undefined) out.syncGroup = s.sync_group;
  if (s.notify !== undefined) out.notify = s.notify;
  if (s.upscript !== undefined) out.upscript = s.upscript;
  if (s.downscript !== undefined) out.downscript = s.downscript;
  if (s.xparam !== undefined) out.xparam = s.xparam;
  return out;
}

/** `192.0.2.10/24`; an address without a prefix is a host address (/32, /128), as ucarp's --addr. */
function parseCidr(cidr: string): AddressConfig {
  const [address, prefix] = cidr.split('/');
  const v6 = familyOf(address) === 6;
  return {
    address: canonicalIp(address),
    prefixlen: prefix === undefined ? (v6 ? 128 : 32) : Number(prefix),
  };
}

function parseListen(listen: string): { host: string; port: number } {
  const colon = listen.lastIndexOf(':');
  const host = listen.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
  return { host, port: Number(listen.slice(colon + 1)) };
}
