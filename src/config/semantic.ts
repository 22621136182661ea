// Named imports: a namespace import reads each function through a getter, thousands of times
// per load.
import { isIP, isIPv4, isIPv6 } from 'node:net';
import * as path from 'node:path';
import { formatPath, type KeyPath } from './errors';
import type { MergedGroup } from './merge';
import type { Locator } from './parse';
import type { ConfigError, HostInfo, RawConfig, RawSettings } from './types';
import { CARP6_MULTICAST, GROUP_DEFAULTS, MAX_PASSWORD_BYTES, PROTOCOL_KEYS } from './settings';
import { readPasswordFile } from './password-file';
import { canonicalIp, canonicalIpv6, type AddressFamily } from '../net/ipv6';
export const PASSWORD_TOO_LONG = `must be at most ${MAX_PASSWORD_BYTES} bytes (ucarp rejects longer passwords)`;

/** What the checks learned that normalization needs: per group name. */
export interface Resolved {
  password: string;
  srcip: string;
}

export interface SemanticResult {
  errors: ConfigError[];
  warnings: ConfigError[];
  resolved: Map<string, Resolved>;
}

export interface SemanticContext {
  source: Locator;
  host: HostInfo;
  /** Directory relative password_file paths are resolved against: the configuration's own. */
  baseDir: string;
}

/**
 * Checks that need the whole file or the host, run once the schema has passed. Error messages
 * name files and keys but never a password, not even its length.
 */
export function checkSemantics(
  config: RawConfig,
  groups: MergedGroup[],
  ctx: SemanticContext,
): SemanticResult {
  const result: SemanticResult = { errors: [], warnings: [], resolved: new Map() };
  const fail = (at: KeyPath, target: 'key' | 'value', message: string): void => {
    result.errors.push(ctx.source.error(at, target, message));
  };
  const warn = (at: KeyPath, target: 'key' | 'value', message: string): void => {
    result.warnings.push(ctx.source.error(at, target, message));
  };

  if (config.defaults) checkDestination(config.defaults, ['defaults'], fail);
  checkMetrics(config, fail);
  checkTrackers(config, fail);
  const trackerNames = Object.keys(config.trackers ?? {});

  const interfaces = ctx.host.interfaces();
  const passwordFiles = new PasswordFiles(ctx, result);
  const destinations = new Map<string, string>();
  const addressOwners = new Map<string, string>();
  // Each address's host part, computed once: thousands of groups are checked on every reload.
  const hostParts = groups.map((g) => g.settings.addresses.map(hostPart));
  // After a crash our virtual addresses may still sit on the interface: never mistake one for ours.
  const virtual = new Set(hostParts.flat());
  const own = new OwnAddresses(interfaces, virtual);

  groups.forEach((group, groupIndex) => {
    const s = group.settings;
    const protocol = s.protocol ?? GROUP_DEFAULTS.protocol;
    checkDestination(config.groups[group.name], group.path, fail);
    checkProtocolKeys(config.groups[group.name], group.path, protocol, fail);

    // VRRPv3 has no authentication (RFC 5798 §5.1); a password inherited from defaults is ignored.
    const password = protocol === 'vrrp3' ? '' : resolvePassword(group, ctx.source, passwordFiles, fail);
    if (s.advert_interval !== undefined && !wholeCentiseconds(s.advert_interval)) {
      fail(group.where('advert_interval'), 'value', 'must be a whole number of centiseconds (e.g. 0.25)');
    }
    if (protocol === 'carp' && s.advbase === 0 && (s.advskew ?? 0) === 0) {
      const inherited = group.where('advbase')[0] === 'defaults';
      fail(
        group.where('advbase'),
        'value',
        `0 requires advskew > 0${inherited ? ` (group '${group.name}' has advskew 0)` : ''}`,
      );
    }

    const family = checkFamilies(group, fail);
    let srcip: string | undefined;
    if (s.interface === undefined) {
      fail(group.path, 'value', "must have required property 'interface' (in the group or in defaults)");
    } else if (family === undefined) {
      // The family decides the source and the destination: nothing sensible to check them against.
    } else {
      srcip =
        family === 6
          ? resolveSrcip6(group, s.interface, interfaces, own, fail, warn)
          : resolveSrcip(group, s.interface, interfaces, own, fail, warn);
      // Unicast advertisements arrive addressed to this host: one key per source address.
      const destination =
        (s.peers ?? []).length > 0
          ? `unicast to ${srcip ?? 'this host'}`
          : s.broadcast
            ? 'broadcast'
            : canonicalIp(s.mcast ?? (family === 6 ? CARP6_MULTICAST : GROUP_DEFAULTS.mcast));
      const key = `${s.interface} ${destination} ${protocol} ${s.vhid}`;
      const owner = destinations.get(key);
      if (owner !== undefined) {
        fail(
          [...group.path, 'vhid'],
          'value',
          `vhid ${s.vhid} is already used on ${s.interface} (${destination}${protocol === 'vrrp3' ? ', vrrp3' : ''}) by group '${owner}'`,
        );
      } else {
        destinations.set(key, group.name);
      }
    }

    hostParts[groupIndex].forEach((ip, index) => {
      const at: KeyPath = [...group.path, 'addresses', index];
      const owner = addressOwners.get(ip);
      if (owner === group.name) fail(at, 'value', `${ip} is listed twice in this group`);
      else if (owner !== undefined) fail(at, 'value', `${ip} is already used by group '${owner}'`);
      else addressOwners.set(ip, group.name);
      // Releasing a virtual address on becoming backup would take the host's own address away.
      if (ip === srcip) fail(at, 'value', `${ip} is this host's own address on ${s.interface} (srcip)`);
    });

    checkTrack(group, trackerNames, fail);
    (s.peers ?? []).forEach((peer, index) => {
      if (srcip !== undefined && srcip !== '' && canonicalIp(peer) === canonicalIp(srcip))
        fail([...group.where('peers'), index], 'value', `${peer} is this host's own address (srcip)`);
    });

    if (password !== undefined && srcip !== undefined) result.resolved.set(group.name, { password, srcip });
  });
  return result;
}

type Fail = (at: KeyPath, target: 'key' | 'value', message: string) => void;

/** Keys of the other protocol written in the group itself (inherited ones are ignored). */
function checkProtocolKeys(group: RawSettings, at: KeyPath, protocol: 'carp' | 'vrrp3', fail: Fail): void {
  const other = protocol === 'carp' ? 'vrrp3' : 'carp';
  for (const key of PROTOCOL_KEYS[other]) {
    if (group[key] !== undefined)
      fail([...at, key], 'key', `applies to protocol ${other} only; this group's protocol is ${protocol}`);
  }
}

function wholeCentiseconds(seconds: number): boolean {
  return Math.abs(seconds * 100 - Math.round(seconds * 100)) < 1e-6;
}

/** The address part of `addr/prefix`, in canonical text (one IPv6 address has many spellings). */
function hostPart(cidr: string): string {
  const ip = cidr.split('/')[0];
  // isIP's answer is the family: canonicalIp would test the address again.
  return isIP(ip) === 6 ? canonicalIpv6(ip) : ip;
}

const FAMILY_NAME = { 4: 'IPv4', 6: 'IPv6' } as const;

/**
 * A group is of one family, its first address's (docs/protocol.md §21): every other address,
 * srcip, mcast and peers must be of it too, and broadcast exists for IPv4 only. Returns the
 * family, or undefined when the first address is not a valid address at all.
 */
function checkFamilies(group: MergedGroup, fail: Fail): AddressFamily | undefined {
  const s = group.settings;
  const first = s.addresses[0]?.split('/')[0];
  if (first === undefined || isIP(first) === 0) {
    if (first !== undefined) fail([...group.path, 'addresses', 0], 'value', `${first} is not an IP address`);
    return undefined;
  }
  const family = isIP(first) as AddressFamily;
  const name = FAMILY_NAME[family];
  const other = (what: string) =>
    `${what} is ${FAMILY_NAME[family === 4 ? 6 : 4]}, but this group is ${name} (its first address is ${first}): a group is of one family`;
  const check = (value: string, at: KeyPath) => {
    const valueFamily = isIP(value);
    if (valueFamily === 0) fail(at, 'value', `${value} is not an IP address`);
    else if (valueFamily !== family) fail(at, 'value', other(value));
  };
  s.addresses.forEach((cidr, index) => {
    if (index > 0) check(cidr.split('/')[0], [...group.path, 'addresses', index]);
  });
  if (s.srcip !== undefined) check(s.srcip, group.where('srcip'));
  if (s.mcast !== undefined) check(s.mcast, group.where('mcast'));
  (s.peers ?? []).forEach((peer, index) => check(peer, [...group.where('peers'), index]));
  if (family === 6 && s.broadcast === true)
    fail(
      group.where('broadcast'),
      'value',
      `IPv6 has no broadcast: an IPv6 group sends to mcast (${CARP6_MULTICAST})`,
    );
  return family;
}

/**
 * An IPv6 group advertises from the interface's link-local address, learnt when the group
 * starts (it may still be in duplicate address detection now); a srcip given must be on the
 * interface when the host says which IPv6 addresses it has.
 */
/**
 * Each interface's own addresses as resolving a source asks for them, worked out once per load:
 * an interface also carries the virtual addresses of its groups, thousands on one interface,
 * and filtering its list once per group made a reload quadratic (issue 11: 0.5 s of CPU at 4080
 * groups on one interface).
 */
class OwnAddresses {
  private readonly v4 = new Map<string, { list: string[]; set: Set<string>; primary: string | undefined }>();
  private readonly v6 = new Map<string, Set<string> | undefined>();

  constructor(
    private readonly interfaces: Map<string, { addresses: string[]; addresses6?: string[] }>,
    /** Our virtual addresses, which a crash may have left behind: never a source. */
    private readonly virtual: Set<string>,
  ) {}

  /** IPv4 addresses of interface `name`, and the first that is not one of our virtual ones. */
  ipv4(name: string): { list: string[]; set: Set<string>; primary: string | undefined } {
    let e = this.v4.get(name);
    if (e === undefined) {
      const list = (this.interfaces.get(name)?.addresses ?? []).filter((a) => isIPv4(a));
      e = { list, set: new Set(list), primary: list.find((a) => !this.virtual.has(a)) };
      this.v4.set(name, e);
    }
    return e;
  }

  /** IPv6 addresses of interface `name` in canonical text, when the host says. */
  ipv6(name: string): Set<string> | undefined {
    if (!this.v6.has(name)) {
      const list = this.interfaces.get(name)?.addresses6;
      this.v6.set(name, list === undefined ? undefined : new Set(list));
    }
    return this.v6.get(name);
  }
}

function resolveSrcip6(
  group: MergedGroup,
  name: string,
  interfaces: Map<string, { addresses: string[]; addresses6?: string[] }>,
  addresses: OwnAddresses,
  fail: Fail,
  warn: Fail,
): string {
  const srcip = group.settings.srcip;
  if (!interfaces.has(name)) {
    warn(
      group.where('interface'),
      'value',
      `no interface named ${name} on this host yet; the group waits for it to appear`,
    );
    return srcip === undefined ? '' : canonicalIp(srcip);
  }
  if (srcip === undefined) return '';
  const own = addresses.ipv6(name);
  if (own !== undefined && !own.has(canonicalIp(srcip))) {
    const has = own.size > 0 ? `it has ${[...own].join(', ')}` : 'it has no IPv6 address';
    fail(group.where('srcip'), 'value', `${srcip} is not an address of ${name} (${has})`);
    return srcip;
  }
  return canonicalIp(srcip);
}

function checkDestination(section: RawSettings, at: KeyPath, fail: Fail): void {
  if (section.mcast !== undefined && section.broadcast === true) {
    fail([...at, 'broadcast'], 'key', 'cannot be combined with mcast in the same section; use one of them');
  }
}

const TRACKER_KINDS = ['script', 'interface', 'file'] as const;

function checkTrackers(config: RawConfig, fail: Fail): void {
  for (const [name, t] of Object.entries(config.trackers ?? {})) {
    const at: KeyPath = ['trackers', name];
    const kinds = TRACKER_KINDS.filter((k) => t[k] !== undefined);
    if (kinds.length !== 1) {
      const found = kinds.length === 0 ? 'none' : kinds.join(' and ');
      fail(
        kinds.length === 0 ? at : [...at, kinds[1]],
        kinds.length === 0 ? 'value' : 'key',
        `a tracker needs exactly one of script, interface, file (found ${found})`,
      );
      continue;
    }
    if (t.script !== undefined) {
      const argv = typeof t.script === 'string' ? t.script.split(' ').filter((w) => w !== '') : t.script;
      if (argv.length === 0 || !argv[0].startsWith('/'))
        fail([...at, 'script'], 'value', 'the program must be an absolute path');
    } else if (t.timeout !== undefined) {
      fail([...at, 'timeout'], 'key', 'only a script tracker has a timeout');
    }
  }
}

function checkTrack(group: MergedGroup, trackers: string[], fail: Fail): void {
  const seen = new Set<string>();
  (group.settings.track ?? []).forEach((ref, index) => {
    const name = typeof ref === 'string' ? ref : ref.tracker;
    const at: KeyPath = [...group.where('track'), index];
    if (!trackers.includes(name)) {
      const known =
        trackers.length > 0 ? ` (trackers: ${trackers.join(', ')})` : ' (no trackers are defined)';
      fail(at, 'value', `no tracker named ${name}${known}`);
    } else if (seen.has(name)) {
      fail(at, 'value', `${name} is tracked twice`);
    }
    seen.add(name);
  });
}

function checkMetrics(config: RawConfig, fail: Fail): void {
  const listen = config.metrics?.listen;
  const bracketed = listen?.match(/^\[(.*)\]:\d+$/);
  if (bracketed && !isIPv6(bracketed[1]))
    fail(['metrics', 'listen'], 'value', 'must contain a valid IPv6 address');
}

function resolvePassword(
  group: MergedGroup,
  source: Locator,
  files: PasswordFiles,
  fail: Fail,
): string | undefined {
  const s = group.settings;
  if (s.password === undefined && s.password_file === undefined) {
    fail(group.path, 'value', "must have one of 'password' or 'password_file' (in the group or in defaults)");
    return undefined;
  }
  if (s.password !== undefined && s.password_file !== undefined) {
    const [first, second] = [group.where('password'), group.where('password_file')].sort(
      (a, b) => source.locate(a, 'key').offset - source.locate(b, 'key').offset,
    );
    fail(
      second,
      'key',
      `cannot be combined with ${formatPath(first)}; set exactly one of password and password_file`,
    );
    return undefined;
  }
  if (s.password !== undefined) {
    if (Buffer.byteLength(s.password, 'utf8') > MAX_PASSWORD_BYTES) {
      fail(group.where('password'), 'value', PASSWORD_TOO_LONG);
      return undefined;
    }
    return s.password;
  }
  return files.read(s.password_file as string, group.where('password_file'));
}

/** Reads each password file once however many groups share it, as ucarp --passfile would. */
class PasswordFiles {
  private readonly cache = new Map<string, string | undefined>();

  constructor(
    private readonly ctx: SemanticContext,
    private readonly result: SemanticResult,
  ) {}

  read(file: string, at: KeyPath): string | undefined {
    const full = path.resolve(this.ctx.baseDir, file);
    const cacheKey = `${formatPath(at)} ${full}`;
    if (!this.cache.has(cacheKey)) this.cache.set(cacheKey, this.load(full, at));
    return this.cache.get(cacheKey);
  }

  private load(full: string, at: KeyPath): string | undefined {
    const r = readPasswordFile(full);
    if (!r.ok && r.stage !== 'empty') {
      this.result.errors.push(this.ctx.source.error(at, 'value', `cannot read ${full} (${r.error.code})`));
      return undefined;
    }
    if (!r.ok || r.password.length === 0) {
      this.result.errors.push(this.ctx.source.error(at, 'value', `the first line of ${full} is empty`));
      return undefined;
    }
    if ((r.mode & 0o004) !== 0) {
      const perms = (r.mode & 0o777).toString(8).padStart(4, '0');
      this.result.warnings.push(
        this.ctx.source.error(
          at,
          'value',
          `${full} is readable by everyone (mode ${perms}); run chmod o-r ${full}`,
        ),
      );
    }
    const password = r.password;
    if (Buffer.byteLength(password, 'utf8') > MAX_PASSWORD_BYTES) {
      this.result.errors.push(
        this.ctx.source.error(
          at,
          'value',
          `the password in ${full} is longer than ${MAX_PASSWORD_BYTES} bytes (ucarp rejects it)`,
        ),
      );
      return undefined;
    }
    return password;
  }
}

function resolveSrcip(
  group: MergedGroup,
  name: string,
  interfaces: Map<string, { addresses: string[] }>,
  addresses: OwnAddresses,
  fail: Fail,
  warn: Fail,
): string | undefined {
  if (!interfaces.has(name)) {
    // VLANs, bonds and hot-plugged links appear after boot: the group waits for its interface
    // (and, without srcip, learns its source address from it then).
    warn(
      group.where('interface'),
      'value',
      `no interface named ${name} on this host yet; the group waits for it to appear`,
    );
    return group.settings.srcip ?? '';
  }
  const own = addresses.ipv4(name);
  const srcip = group.settings.srcip;
  if (srcip === undefined) {
    const primary = own.primary;
    if (primary === undefined) {
      fail(
        group.where('interface'),
        'value',
        `${name} has no IPv4 address of its own to advertise from; add one or set srcip`,
      );
    }
    return primary;
  }
  if (!own.set.has(srcip)) {
    const has = own.list.length > 0 ? `it has ${own.list.join(', ')}` : 'it has no IPv4 address';
    fail(group.where('srcip'), 'value', `${srcip} is not an address of ${name} (${has})`);
    return undefined;
  }
  return srcip;
}
