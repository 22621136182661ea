/** Shapes of the configuration: as written (after schema validation) and as the daemon uses it. */

export type LogLevel = 'error' | 'warn' | 'info' | 'debug';

/**
 * One problem found in a configuration file. `line` and `column` are 1-based; both are 0 when the
 * problem concerns the file as a whole (it cannot be read). `path` is the key path of the node,
 * like `groups.web.addresses[0]`, or '' when no key is concerned (YAML syntax errors).
 */
export interface ConfigError {
  file: string;
  line: number;
  column: number;
  path: string;
  message: string;
}

/** What the loader needs to know about one network interface of this host. */
export interface HostInterface {
  /** IPv4 addresses without prefix, the primary address first. */
  addresses: string[];
  /** IPv6 addresses in canonical text, when known (a link without carrier may not say). */
  addresses6?: string[];
}

/** The host facts semantic checks depend on, injected so that tests can use a fake host. */
export interface HostInfo {
  interfaces(): Map<string, HostInterface>;
}

export interface AddressConfig {
  address: string;
  prefixlen: number;
}

/** A health check, normalized: exactly one kind, every time in milliseconds. */
export type TrackerConfig = {
  name: string;
  intervalMs: number;
  timeoutMs: number;
  rise: number;
  fall: number;
} & (
  | { kind: 'script'; argv: string[] }
  | { kind: 'interface'; interface: string }
  | { kind: 'file'; file: string }
);

/** A group's use of a tracker: without weight a failure means FAULT, with one a demotion. */
export interface TrackRef {
  tracker: string;
  weight: number | null;
}

export type Protocol = 'carp' | 'vrrp3';

/** A group with every value resolved: defaults merged, password read, srcip chosen. */
export interface GroupConfig {
  name: string;
  /** CARP (ucarp 1.5.2) or VRRPv3 (RFC 5798, keepalived's `vrrp_version 3`). */
  protocol: Protocol;
  /** CARP's vhid, VRRP's VRID. */
  vhid: number;
  interface: string;
  srcip: string;
  /** Sorted ascending by address, as the advertisement digest covers them. */
  addresses: AddressConfig[];
  /** CARP only; '' for VRRP, which has no authentication. */
  password: string;
  advbase: number;
  advskew: number;
  deadratio: number;
  /** VRRP only: 1..255, 255 being the address owner. */
  priority: number;
  /** VRRP only: the advertisement interval in centiseconds (1..4095). */
  advertInterval: number;
  preempt: boolean;
  neutral: boolean;
  ignoreifstate: boolean;
  /** Where advertisements go: the multicast group, or the broadcast address when `broadcast`. */
  destination: string;
  broadcast: boolean;
  manageAddresses: boolean;
  upscript?: string;
  downscript?: string;
  xparam?: string;
  scriptTimeoutMs: number;
  /** Trackers followed, in file order. */
  track: TrackRef[];
  syncGroup?: string;
  /** Unicast peers; empty: advertisements go to `destination`. */
  peers: string[];
  notify?: string;
  /** Reject advertisements whose counter is not newer (docs/protocol.md §20). */
  replayProtection: boolean;
}

export interface Config {
  logging: { level: LogLevel; facility: string };
  control: { socket: string };
  metrics?: { host: string; port: number };
  /** In file order. */
  groups: GroupConfig[];
  /** In file order. */
  trackers: TrackerConfig[];
}

export type LoadResult =
  | { ok: true; config: Config; warnings: ConfigError[] }
  | { ok: false; errors: ConfigError[]; warnings: ConfigError[] };

/** Group settings as written, in a group or in `defaults`. */
export interface RawSettings {
  protocol?: Protocol;
  priority?: number;
  /** Seconds, in centisecond steps. */
  advert_interval?: number;
  interface?: string;
  srcip?: string;
  password?: string;
  password_file?: string;
  advbase?: number;
  advskew?: number;
  deadratio?: number;
  preempt?: boolean;
  neutral?: boolean;
  ignoreifstate?: boolean;
  mcast?: string;
  broadcast?: boolean;
  manage_addresses?: boolean;
  upscript?: string;
  downscript?: string;
  xparam?: string;
  script_timeout?: number;
  track?: (string | { tracker: string; weight?: number })[];
  sync_group?: string;
  peers?: string[];
  notify?: string;
  replay_protection?: boolean;
}

export interface RawTracker {
  script?: string | string[];
  interface?: string;
  file?: string;
  interval?: number;
  timeout?: number;
  rise?: number;
  fall?: number;
}

export interface RawGroup extends RawSettings {
  vhid: number;
  addresses: string[];
}

/** The document once it has passed the JSON Schema. */
export interface RawConfig {
  defaults?: RawSettings;
  logging?: { level?: LogLevel; facility?: string };
  control?: { socket?: string };
  metrics?: { listen: string };
  trackers?: Record<string, RawTracker>;
  groups: Record<string, RawGroup>;
}
