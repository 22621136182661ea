// ucarp 1.5.2's command line, parsed the way its glibc getopt_long does, plus two options of
// our own for the multi-group supervisor (--config/-c, --check-config/-t).
//
// Checked against Debian's /usr/sbin/ucarp 1.5.2. Where this parser differs on purpose:
// - `-m` is accepted for --mcast: ucarp's --help documents it, but its getopt string lacks it.
// - advbase/advskew outside 0..255 are errors; ucarp silently keeps the low 8 bits.
// - numbers with trailing garbage ("5abc") are errors; ucarp's strtoul reads what it can.
//   0x hex and 0-prefixed octal are accepted like strtoul(..., 0) does.
// - operands (ucarp ignores them silently) produce a warning.
// - no interface means "not chosen": ucarp asks libpcap for a default device, which is left
//   to the caller.

import net from 'node:net';
import { isSyslogFacility, type SyslogFacility } from '../util/log';
import { readPasswordFile } from '../config/password-file';
import {
  DEFAULT_CONFIG_PATH,
  GROUP_DEFAULTS,
  GROUP_LIMITS,
  LOGGING_DEFAULTS,
  MAX_IFNAME_BYTES,
  MAX_PASSWORD_BYTES,
} from '../config/settings';
import type { RawGroup } from '../config/types';

/** Group settings ucarp takes under the YAML key's name and meaning. */
type SharedSetting =
  | 'srcip'
  | 'password'
  | 'vhid'
  | 'advbase'
  | 'advskew'
  | 'deadratio'
  | 'preempt'
  | 'neutral'
  | 'ignoreifstate'
  | 'mcast';

export type UcarpOptions = Required<Pick<RawGroup, SharedSetting>> &
  Pick<RawGroup, 'interface' | 'upscript' | 'downscript' | 'xparam'> & {
    /** The one virtual address (-a), without prefix. */
    addr: string;
    /** -M: broadcast instead of multicast. */
    nomcast: boolean;
    shutdown: boolean;
    daemonize: boolean;
    facility: SyslogFacility | 'none';
    debug: boolean;
  };

export type ParseResult =
  | { kind: 'run'; opts: UcarpOptions; warnings: string[] }
  | { kind: 'help'; text: string }
  | { kind: 'supervisor'; configPath: string; checkOnly: boolean }
  | { kind: 'error'; message: string };

export type Key =
  | 'interface'
  | 'srcip'
  | 'mcast'
  | 'vhid'
  | 'pass'
  | 'preempt'
  | 'neutral'
  | 'addr'
  | 'help'
  | 'advbase'
  | 'advskew'
  | 'upscript'
  | 'downscript'
  | 'deadratio'
  | 'debug'
  | 'shutdown'
  | 'facility'
  | 'daemonize'
  | 'ignoreifstate'
  | 'nomcast'
  | 'passfile'
  | 'xparam'
  | 'config'
  | 'checkConfig';

export interface OptSpec {
  long: string;
  short: string;
  arg: boolean;
  key: Key;
}

// ucarp's long_options order: getopt_long lists ambiguous candidates in this order. The
// multicast option is really called "mcastip"; "--mcast" works as an unambiguous prefix.
export const OPTIONS: readonly OptSpec[] = [
  { long: 'interface', short: 'i', arg: true, key: 'interface' },
  { long: 'srcip', short: 's', arg: true, key: 'srcip' },
  { long: 'mcastip', short: 'm', arg: true, key: 'mcast' },
  { long: 'vhid', short: 'v', arg: true, key: 'vhid' },
  { long: 'pass', short: 'p', arg: true, key: 'pass' },
  { long: 'preempt', short: 'P', arg: false, key: 'preempt' },
  { long: 'neutral', short: 'n', arg: false, key: 'neutral' },
  { long: 'addr', short: 'a', arg: true, key: 'addr' },
  { long: 'help', short: 'h', arg: false, key: 'help' },
  { long: 'advbase', short: 'b', arg: true, key: 'advbase' },
  { long: 'advskew', short: 'k', arg: true, key: 'advskew' },
  { long: 'upscript', short: 'u', arg: true, key: 'upscript' },
  { long: 'downscript', short: 'd', arg: true, key: 'downscript' },
  { long: 'deadratio', short: 'r', arg: true, key: 'deadratio' },
  { long: 'debug', short: 'D', arg: false, key: 'debug' },
  { long: 'shutdown', short: 'z', arg: false, key: 'shutdown' },
  { long: 'facility', short: 'f', arg: true, key: 'facility' },
  { long: 'daemonize', short: 'B', arg: false, key: 'daemonize' },
  { long: 'ignoreifstate', short: 'S', arg: false, key: 'ignoreifstate' },
  { long: 'nomcast', short: 'M', arg: false, key: 'nomcast' },
  { long: 'passfile', short: 'o', arg: true, key: 'passfile' },
  { long: 'xparam', short: 'x', arg: true, key: 'xparam' },
  { long: 'config', short: 'c', arg: true, key: 'config' },
  { long: 'check-config', short: 't', arg: false, key: 'checkConfig' },
];

const SUPERVISOR_KEYS: ReadonlySet<Key> = new Set(['config', 'checkConfig']);

export const USAGE_LINES = [
  '--interface=<if> (-i <if>): bind interface <if>',
  '--srcip=<ip> (-s <ip>): source (real) IP address of that host',
  `--mcast=<ip> (-m <ip>): multicast group IP address (default ${GROUP_DEFAULTS.mcast})`,
  '--vhid=<id> (-v <id>): virtual IP identifier (1-255)',
  '--pass=<pass> (-p <pass>): password',
  '--passfile=<file> (-o <file>): read password from file',
  '--preempt (-P): becomes a master as soon as possible',
  "--neutral (-n): don't run downscript at start if backup",
  '--addr=<ip> (-a <ip>): virtual shared IP address',
  '--help (-h): summary of command-line options',
  '--advbase=<seconds> (-b <seconds>): advertisement frequency',
  '--advskew=<skew> (-k <skew>): advertisement skew (0-255)',
  '--upscript=<file> (-u <file>): run <file> to become a master',
  '--downscript=<file> (-d <file>): run <file> to become a backup',
  '--deadratio=<ratio> (-r <ratio>): ratio to consider a host as dead',
  '--debug (-D): enable debug output',
  '--shutdown (-z): call shutdown script at exit',
  '--daemonize (-B): run in background',
  '--ignoreifstate (-S): ignore interface state (down, no carrier)',
  '--nomcast (-M): use broadcast (instead of multicast) advertisements',
  '--facility=<facility> (-f): set syslog facility (default=daemon)',
  '--xparam=<value> (-x): extra parameter to send to up/down scripts',
  '',
  'Supervisor mode (many groups from one file; not in ucarp):',
  '',
  `--config=<file> (-c <file>): run the groups of <file> (default ${DEFAULT_CONFIG_PATH})`,
  '--check-config (-t): only check the configuration file, then exit',
];

export function usage(): string {
  return [
    '',
    'ucarp - CARP for Linux, command line compatible with ucarp 1.5.2',
    '',
    ...USAGE_LINES,
    '',
    'Sample usage:',
    '',
    'Manage the 10.1.1.252 shared virtual address on interface eth0, with',
    '1 as a virtual address identifier, mypassword as a password, and',
    '10.1.1.1 as a real permanent address for this host.',
    'Call /etc/vip-up.sh when the host becomes a master, and',
    '/etc/vip-down.sh when the virtual IP address has to be disabled.',
    '',
    'ucarp --interface=eth0 --srcip=10.1.1.1 --vhid=1 --pass=mypassword \\',
    '      --addr=10.1.1.252 \\',
    '      --upscript=/etc/vip-up.sh --downscript=/etc/vip-down.sh',
    '',
    'Many groups: ucarp --config=/etc/ucarp.yaml',
    '',
  ].join('\n');
}

// ---------------------------------------------------------------- getopt_long

interface Occurrence {
  spec: OptSpec;
  value: string;
  /** How the user wrote it, for messages. */
  shown: string;
}

type Token = { occurrence: Occurrence } | { operand: string } | { error: string };

/**
 * Splits argv like glibc getopt_long with permutation: options anywhere, operands collected,
 * `--` ends the options, bundled short flags, `-v5` and `-v 5`, `--vhid=5` and `--vhid 5`,
 * unambiguous long prefixes (an exact name wins over longer names it prefixes).
 */
function* tokenize(argv: readonly string[]): Generator<Token> {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') {
      for (const rest of argv.slice(i + 1)) yield { operand: rest };
      return;
    }
    if (a.startsWith('--')) {
      const body = a.slice(2);
      const eq = body.indexOf('=');
      const name = eq < 0 ? body : body.slice(0, eq);
      const exact = OPTIONS.find((o) => o.long === name);
      const candidates = exact ? [exact] : OPTIONS.filter((o) => o.long.startsWith(name));
      // glibc quotes the whole word, `=value` included; here the value is left out, since the
      // option meant may be --pass (`--pas=…` is ambiguous, `--pasword=…` unknown).
      const written = `--${name}`;
      if (candidates.length === 0) {
        yield { error: `unrecognized option '${written}'` };
        return;
      }
      if (candidates.length > 1) {
        const list = candidates.map((o) => `'--${o.long}'`).join(' ');
        yield { error: `option '${written}' is ambiguous; possibilities: ${list}` };
        return;
      }
      const spec = candidates[0];
      const shown = `--${spec.long}`;
      if (!spec.arg) {
        if (eq >= 0) {
          yield { error: `option '${shown}' doesn't allow an argument` };
          return;
        }
        yield { occurrence: { spec, value: '', shown } };
        continue;
      }
      // A required argument is taken from the next word even if that starts with '-'.
      const value = eq >= 0 ? body.slice(eq + 1) : argv[++i];
      if (value === undefined) {
        yield { error: `option '${shown}' requires an argument` };
        return;
      }
      yield { occurrence: { spec, value, shown } };
      continue;
    }
    if (a.startsWith('-') && a.length > 1) {
      for (let j = 1; j < a.length; j++) {
        const ch = a[j];
        const spec = OPTIONS.find((o) => o.short === ch);
        if (spec === undefined) {
          yield { error: `invalid option -- '${ch}'` };
          return;
        }
        const shown = `-${ch}`;
        if (!spec.arg) {
          yield { occurrence: { spec, value: '', shown } };
          continue;
        }
        const rest = a.slice(j + 1);
        const value = rest !== '' ? rest : argv[++i];
        if (value === undefined) {
          yield { error: `option requires an argument -- '${ch}'` };
          return;
        }
        yield { occurrence: { spec, value, shown } };
        break;
      }
      continue;
    }
    yield { operand: a };
  }
}

// ---------------------------------------------------------------- values

/** strtoul(s, NULL, 0) without its leniency: the whole string must be a number. */
export function parseCNumber(s: string): number | undefined {
  const m = /^\s*\+?(?:0[xX]([0-9a-fA-F]+)|(0[0-7]*)|([1-9][0-9]*))$/.exec(s);
  if (m === null) return undefined;
  if (m[1] !== undefined) return parseInt(m[1], 16);
  if (m[2] !== undefined) return parseInt(m[2], 8);
  return parseInt(m[3], 10);
}

function inRange(s: string, min: number, max: number): number | undefined {
  const n = parseCNumber(s);
  return n !== undefined && n >= min && n <= max ? n : undefined;
}

const STRERROR: Record<string, string> = {
  ENOENT: 'No such file or directory',
  EACCES: 'Permission denied',
  EPERM: 'Operation not permitted',
  EISDIR: 'Is a directory',
  ENOTDIR: 'Not a directory',
  ELOOP: 'Too many levels of symbolic links',
  ENAMETOOLONG: 'File name too long',
};

function strerror(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  return (e.code !== undefined ? STRERROR[e.code] : undefined) ?? e.message;
}

function readPassfile(file: string): { password: string } | { error: string } {
  const r = readPasswordFile(file);
  if (r.ok) return { password: r.password };
  if (r.stage === 'open')
    return { error: `unable to open passfile ${file} for reading: ${strerror(r.error)}` };
  if (r.stage === 'read') return { error: `error reading passfile ${file}: ${strerror(r.error)}` };
  return { error: `error reading passfile ${file}: unexpected end of file` };
}

function parseFacility(value: string): SyslogFacility | 'none' | undefined {
  const name = value.toLowerCase();
  if (name === 'none') return 'none';
  // glibc's facilitynames also knows "security", the old name of auth.
  if (name === 'security') return 'auth';
  return isSyslogFacility(name) ? name : undefined;
}

// ---------------------------------------------------------------- parse

/** The options while they are being read: the required ones may still be missing. */
type MandatoryKey = 'srcip' | 'vhid' | 'password' | 'addr';
type Draft = Omit<UcarpOptions, MandatoryKey> &
  Partial<Pick<UcarpOptions, MandatoryKey>> & {
    configPath?: string;
    checkOnly: boolean;
  };

type Step = { error: string } | { help: true } | undefined;

function apply(d: Draft, o: Occurrence, warnings: string[]): Step {
  const v = o.value;
  const address = (): string | { error: string } =>
    net.isIPv4(v) ? v : { error: `Invalid address: [${v}]` };
  switch (o.spec.key) {
    case 'help':
      return { help: true };
    case 'interface':
      // ucarp treats an empty name like no name.
      d.interface = v === '' ? undefined : v;
      return;
    case 'srcip':
    case 'mcast':
    case 'addr': {
      const ip = address();
      if (typeof ip !== 'string') return ip;
      if (o.spec.key === 'srcip') d.srcip = ip;
      else if (o.spec.key === 'mcast') d.mcast = ip;
      else d.addr = ip;
      return;
    }
    case 'vhid': {
      const { minimum, maximum } = GROUP_LIMITS.vhid;
      const n = inRange(v, minimum, maximum);
      if (n === undefined) return { error: `vhid must be between ${minimum} and ${maximum}.` };
      d.vhid = n;
      return;
    }
    case 'pass':
      d.password = v;
      return;
    case 'passfile': {
      const r = readPassfile(v);
      if ('error' in r) return r;
      d.password = r.password;
      return;
    }
    case 'advbase':
    case 'advskew': {
      const n = inRange(v, 0, 255);
      if (n === undefined) return { error: `${o.spec.key} must be between 0 and 255.` };
      d[o.spec.key] = n;
      return;
    }
    case 'deadratio': {
      // Zero is refused later, in ucarp's order; what is not a number at all is refused now.
      const n = inRange(v, 0, 0xffffffff);
      if (n === undefined) return { error: `Invalid dead ratio: [${v}]` };
      d.deadratio = n;
      return;
    }
    case 'upscript':
      d.upscript = v === '' ? undefined : v;
      return;
    case 'downscript':
      d.downscript = v === '' ? undefined : v;
      return;
    case 'facility': {
      // ucarp logs an unknown facility and keeps going with the previous one.
      const f = parseFacility(v);
      if (f === undefined) warnings.push(`Unknown syslog facility: [${v}]`);
      else d.facility = f;
      return;
    }
    case 'xparam':
      d.xparam = v;
      return;
    case 'config':
      d.configPath = v;
      return;
    case 'preempt':
    case 'neutral':
    case 'debug':
    case 'shutdown':
    case 'daemonize':
    case 'ignoreifstate':
    case 'nomcast':
      d[o.spec.key] = true;
      return;
    case 'checkConfig':
      d.checkOnly = true;
      return;
  }
}

/** ucarp's checks after option parsing, in its order. */
function finalCheck(d: Draft, warnings: string[]): { opts: UcarpOptions } | { error: string } {
  if (d.vhid === undefined) return { error: 'You must supply a valid virtual host id' };
  if (d.password === undefined || d.password === '') return { error: 'You must supply a password' };
  if (d.advbase === 0 && d.advskew === 0) return { error: 'You must supply an advertisement time base' };
  if (d.srcip === undefined || d.srcip === '0.0.0.0') {
    return { error: 'You must supply a persistent source address' };
  }
  if (d.addr === undefined || d.addr === '0.0.0.0')
    return { error: 'You must supply a virtual host address' };
  if (d.upscript === undefined) warnings.push('Warning: no script called when going up');
  if (d.downscript === undefined) warnings.push('Warning: no script called when going down');
  if (d.deadratio <= 0) return { error: "Dead ratio can't be zero" };
  if (Buffer.byteLength(d.password) > MAX_PASSWORD_BYTES) return { error: 'Password too long' };
  if (d.interface !== undefined && Buffer.byteLength(d.interface) > MAX_IFNAME_BYTES) {
    return { error: 'Interface name too long' };
  }
  const opts: UcarpOptions = {
    srcip: d.srcip,
    mcast: d.mcast,
    vhid: d.vhid,
    password: d.password,
    preempt: d.preempt,
    neutral: d.neutral,
    addr: d.addr,
    advbase: d.advbase,
    advskew: d.advskew,
    deadratio: d.deadratio,
    shutdown: d.shutdown,
    daemonize: d.daemonize,
    ignoreifstate: d.ignoreifstate,
    nomcast: d.nomcast,
    facility: d.facility,
    debug: d.debug,
  };
  if (d.interface !== undefined) opts.interface = d.interface;
  if (d.upscript !== undefined) opts.upscript = d.upscript;
  if (d.downscript !== undefined) opts.downscript = d.downscript;
  if (d.xparam !== undefined) opts.xparam = d.xparam;
  return { opts };
}

/**
 * Parses the arguments after the program name (process.argv.slice(2)). Errors come in
 * ucarp's order: problems with an option's value as the options are read, left to right;
 * then missing vhid, password, time base, source address, virtual address; then dead ratio,
 * password length, interface name length. No arguments at all means help, as in ucarp.
 */
export function parseUcarpArgs(argv: string[]): ParseResult {
  if (argv.length === 0) return { kind: 'help', text: usage() };
  const g = GROUP_DEFAULTS;
  const d: Draft = {
    mcast: g.mcast,
    preempt: g.preempt,
    neutral: g.neutral,
    advbase: g.advbase,
    advskew: g.advskew,
    deadratio: g.deadratio,
    shutdown: false,
    daemonize: false,
    ignoreifstate: g.ignoreifstate,
    nomcast: g.broadcast,
    facility: LOGGING_DEFAULTS.facility,
    debug: false,
    checkOnly: false,
  };
  const warnings: string[] = [];
  const operands: string[] = [];
  let firstUcarpOption: string | undefined;
  let supervisor = false;

  for (const t of tokenize(argv)) {
    if ('error' in t) return { kind: 'error', message: t.error };
    if ('operand' in t) {
      operands.push(t.operand);
      continue;
    }
    const o = t.occurrence;
    if (SUPERVISOR_KEYS.has(o.spec.key)) supervisor = true;
    else if (o.spec.key !== 'help') firstUcarpOption ??= o.shown;
    const step = apply(d, o, warnings);
    if (step === undefined) continue;
    if ('help' in step) return { kind: 'help', text: usage() };
    return { kind: 'error', message: step.error };
  }

  if (supervisor) {
    if (firstUcarpOption !== undefined) {
      return {
        kind: 'error',
        message: `--config and --check-config cannot be combined with ucarp options (${firstUcarpOption})`,
      };
    }
    if (operands.length > 0) return { kind: 'error', message: `unexpected argument: [${operands[0]}]` };
    return { kind: 'supervisor', configPath: d.configPath ?? DEFAULT_CONFIG_PATH, checkOnly: d.checkOnly };
  }

  const checked = finalCheck(d, warnings);
  if ('error' in checked) return { kind: 'error', message: checked.error };
  for (const op of operands) warnings.push(`ignoring extra argument: [${op}]`);
  return { kind: 'run', opts: checked.opts, warnings };
}
