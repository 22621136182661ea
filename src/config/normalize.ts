import type { MergedGroup } from './merge';
import type { Resolved } from './semantic';
import type { AddressConfig, Config, GroupConfig, RawConfig } from './types';

export const DEFAULT_MCAST = '224.0.0.18';
export const BROADCAST = '255.255.255.255';
export const DEFAULT_CONTROL_SOCKET = '/run/ucarp/control.sock';

/** Builds the daemon's view once every check passed: nothing left optional that has a default. */
export function normalize(config: RawConfig, groups: MergedGroup[], resolved: Map<string, Resolved>): Config {
  const out: Config = {
    logging: { level: config.logging?.level ?? 'info', facility: config.logging?.facility ?? 'daemon' },
    control: { socket: config.control?.socket ?? DEFAULT_CONTROL_SOCKET },
    groups: groups.map((g) => normalizeGroup(g, resolved)),
  };
  if (config.metrics) out.metrics = parseListen(config.metrics.listen);
  return out;
}

function normalizeGroup(group: MergedGroup, resolved: Map<string, Resolved>): GroupConfig {
  const s = group.settings;
  const facts = resolved.get(group.name);
  if (!facts || s.interface === undefined) {
    throw new Error(`group ${group.name} normalized before its semantic checks passed`);
  }
  const broadcast = s.broadcast === true;
  const out: GroupConfig = {
    name: group.name,
    vhid: s.vhid,
    interface: s.interface,
    srcip: facts.srcip,
    addresses: s.addresses
      .map(parseCidr)
      .sort((a, b) => ipToInt(a.address) - ipToInt(b.address) || a.prefixlen - b.prefixlen),
    password: facts.password,
    advbase: s.advbase ?? 1,
    advskew: s.advskew ?? 0,
    deadratio: s.deadratio ?? 3,
    preempt: s.preempt ?? false,
    neutral: s.neutral ?? false,
    ignoreifstate: s.ignoreifstate ?? false,
    mcast: broadcast ? BROADCAST : (s.mcast ?? DEFAULT_MCAST),
    broadcast,
    manageAddresses: s.manage_addresses ?? true,
    scriptTimeoutMs: Math.round((s.script_timeout ?? 10) * 1000),
  };
  if (s.upscript !== undefined) out.upscript = s.upscript;
  if (s.downscript !== undefined) out.downscript = s.downscript;
  if (s.xparam !== undefined) out.xparam = s.xparam;
  return out;
}

function parseCidr(cidr: string): AddressConfig {
  const [address, prefix] = cidr.split('/');
  return { address, prefixlen: Number(prefix) };
}

/** Numeric value of a dotted quad, so that 192.0.2.9 sorts before 192.0.2.10. */
export function ipToInt(ip: string): number {
  return ip.split('.').reduce((acc, octet) => acc * 256 + Number(octet), 0);
}

function parseListen(listen: string): { host: string; port: number } {
  const colon = listen.lastIndexOf(':');
  const host = listen.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
  return { host, port: Number(listen.slice(colon + 1)) };
}
