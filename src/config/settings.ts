// Every default, limit and well-known address of a group's settings, written once. The JSON
// Schema's `default`, `minimum` and `maximum` are checked against this module by
// test/unit/config-settings.test.ts; both front ends (YAML and ucarp's command line) take their
// defaults from here through config/normalize.ts.

/** CARP's IPv4 multicast group (docs/protocol.md §1). */
export const CARP_MULTICAST = '224.0.0.18';
/** CARP's IPv6 multicast group, an IPv6 group's default `mcast` (docs/protocol.md §21). */
export const CARP6_MULTICAST = 'ff02::12';
/** Where advertisements go in broadcast mode (ucarp's --nomcast). */
export const BROADCAST_ADDRESS = '255.255.255.255';

export const DEFAULT_CONFIG_PATH = '/etc/ucarp.yaml';
export const DEFAULT_CONTROL_SOCKET = '/run/ucarp/control.sock';

/** ucarp pads the key to 20 bytes and refuses passwords that fill it (docs/protocol.md §3). */
export { MAX_PASSWORD_BYTES } from '../protocol/carp';
/** Linux IFNAMSIZ minus the terminating NUL. */
export const MAX_IFNAME_BYTES = 15;

/** Optional group settings with a fixed default, by their YAML key. */
export const GROUP_DEFAULTS = {
  protocol: 'carp',
  /** VRRP only. */
  priority: 100,
  /** VRRP only; seconds. */
  advert_interval: 1,
  advbase: 1,
  advskew: 0,
  deadratio: 3,
  preempt: false,
  neutral: false,
  ignoreifstate: false,
  mcast: CARP_MULTICAST,
  broadcast: false,
  manage_addresses: true,
  /** Off: ucarp starts its counter at random and would be rejected (docs/protocol.md §20). */
  replay_protection: false,
  /** Seconds. */
  script_timeout: 10,
} as const;

/** Bounds of the numeric group settings, in the JSON Schema's own keywords, by YAML key. */
export const GROUP_LIMITS = {
  vhid: { minimum: 1, maximum: 255 },
  advbase: { minimum: 0, maximum: 255 },
  advskew: { minimum: 0, maximum: 255 },
  deadratio: { minimum: 1 },
  priority: { minimum: 1, maximum: 255 },
  /** Seconds: VRRPv3's 12-bit interval in centiseconds (docs/protocol.md §22). */
  advert_interval: { minimum: 0.01, maximum: 40.95 },
  script_timeout: { exclusiveMinimum: 0, maximum: 3600 },
} as const;

/** Tracker settings with a fixed default, by YAML key (`timeout` defaults to the interval). */
export const TRACKER_DEFAULTS = {
  /** Seconds. */
  interval: 2,
  rise: 1,
  fall: 1,
} as const;

export const TRACKER_LIMITS = {
  interval: { exclusiveMinimum: 0, maximum: 3600 },
  timeout: { exclusiveMinimum: 0, maximum: 3600 },
  rise: { minimum: 1, maximum: 100 },
  fall: { minimum: 1, maximum: 100 },
} as const;

/**
 * Defaults that differ by protocol: RFC 5798 §5.2 makes preemption the default for VRRP, while
 * ucarp's is off. The schema's `default` is CARP's.
 */
export const VRRP3_DEFAULTS = { preempt: true } as const;

/**
 * Keys of a group that only one protocol reads: set in the group itself for the other protocol
 * they are an error; inherited from `defaults` they are ignored.
 */
export const PROTOCOL_KEYS = {
  carp: ['advbase', 'advskew', 'deadratio', 'password', 'password_file', 'replay_protection'],
  vrrp3: ['priority', 'advert_interval'],
} as const;

export const LOGGING_DEFAULTS = { level: 'info', facility: 'daemon' } as const;

/** ucarpctl restart (docs/operations.md, Upgrades): the daemon replacing itself in place. */
export const RESTART_LIMITS = {
  /**
   * A handover older than this is ignored: it can only come from a restart whose new image
   * failed to start for that long, and every peer has taken over meanwhile.
   */
  handoverMaxAgeMs: 10_000,
  /** Time for running up/down scripts to finish before a restart is refused. */
  scriptWaitMs: 5_000,
  /** Time for the new code to check the configuration (`ucarp --check-config`). */
  checkTimeoutMs: 30_000,
  /** How long `ucarpctl restart` waits for the daemon's answer, beyond the two waits above. */
  answerMarginMs: 5_000,
  /** How long `ucarpctl restart` then waits for the new image to answer with its groups started. */
  newImageWaitMs: 30_000,
} as const;

/**
 * The daemon answers `restart` only after waiting for scripts and checking the new code, so
 * the client must wait for both: a shorter wait would report a failure for a restart that then
 * happens.
 */
export const RESTART_ANSWER_WAIT_MS =
  RESTART_LIMITS.scriptWaitMs + RESTART_LIMITS.checkTimeoutMs + RESTART_LIMITS.answerMarginMs;
