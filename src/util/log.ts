// Logging like ucarp's: human-readable lines on stderr plus syslog with a chosen facility.
// Under systemd (JOURNAL_STREAM set) lines go to stdout with sd-daemon `<N>` priority prefixes
// instead, and syslog is skipped because journald already captures stdout.

import fs from 'node:fs';
import type { Writable } from 'node:stream';
import winston from 'winston';
import type TransportStream from 'winston-transport';
import { MESSAGE } from 'triple-beam';
import { InvalidArgumentError } from '../errors';

export type Logger = winston.Logger;
export type LogLevel = 'error' | 'warn' | 'info' | 'debug';

/** Facility names accepted by `--facility` and the config file (Linux numbering). */
export const SYSLOG_FACILITIES = [
  'kern',
  'user',
  'mail',
  'daemon',
  'auth',
  'syslog',
  'lpr',
  'news',
  'uucp',
  'cron',
  'authpriv',
  'ftp',
  'local0',
  'local1',
  'local2',
  'local3',
  'local4',
  'local5',
  'local6',
  'local7',
] as const;
export type SyslogFacility = (typeof SYSLOG_FACILITIES)[number];

// Linux <syslog.h> codes. glossy (winston-syslog's producer) numbers some facilities
// differently (no cron/authpriv, kern ignored), so the transport gets our own producer.
const FACILITY_CODES: Record<SyslogFacility, number> = {
  kern: 0,
  user: 1,
  mail: 2,
  daemon: 3,
  auth: 4,
  syslog: 5,
  lpr: 6,
  news: 7,
  uucp: 8,
  cron: 9,
  authpriv: 10,
  ftp: 11,
  local0: 16,
  local1: 17,
  local2: 18,
  local3: 19,
  local4: 20,
  local5: 21,
  local6: 22,
  local7: 23,
};

const LEVELS: Record<LogLevel, number> = { error: 0, warn: 1, info: 2, debug: 3 };
// syslog(3) severities; also the sd-daemon(3) `<N>` prefixes journald understands.
const SEVERITY: Record<string, number> = { error: 3, warn: 4, warning: 4, info: 6, debug: 7 };
const LABEL: Record<string, string> = { error: 'ERROR', warn: 'WARN', info: 'INFO', debug: 'DEBUG' };

export const DEFAULT_SYSLOG_PATH = '/dev/log';

export function isSyslogFacility(name: string): name is SyslogFacility {
  return (SYSLOG_FACILITIES as readonly string[]).includes(name);
}

export interface LoggerOptions {
  /** A name from SYSLOG_FACILITIES, or 'none' for no syslog. */
  facility: string;
  /** Forces level 'debug' (ucarp's --debug). */
  debug: boolean;
  level?: LogLevel;
  /** syslog app name; default 'ucarp'. */
  ident?: string;
  /** false: no stderr/stdout lines (e.g. when daemonized). Default true. */
  console?: boolean;
  /** Default: whether JOURNAL_STREAM is set in the environment. */
  journal?: boolean;
  /** Where console lines go; default process.stderr, or process.stdout in journal mode. */
  stream?: Writable;
  /** Default /dev/log; if it does not exist, syslog is skipped silently. */
  syslogPath?: string;
}

// ---------------------------------------------------------------- line format

const CONTEXT_KEYS = new Set(['group', 'vhid', 'iface']);
const INTERNAL_KEYS = new Set(['level', 'message', 'timestamp', 'splat', 'stack']);

function contextPrefix(info: winston.Logform.TransformableInfo): string {
  const parts: string[] = [];
  if (info.group !== undefined) parts.push(String(info.group));
  if (info.vhid !== undefined) parts.push(`vhid ${String(info.vhid)}`);
  if (info.iface !== undefined) parts.push(String(info.iface));
  return parts.length > 0 ? `${parts.join(' ')}: ` : '';
}

function formatValue(v: unknown): string {
  if (typeof v === 'string') return /\s/.test(v) || v === '' ? JSON.stringify(v) : v;
  if (v instanceof Error) return JSON.stringify(v.message);
  return JSON.stringify(v) ?? String(v);
}

// Metadata other than the context becomes trailing key=value pairs, so nothing passed to a
// log call is silently lost.
function extraFields(info: winston.Logform.TransformableInfo): string {
  const parts: string[] = [];
  for (const key of Object.keys(info)) {
    if (CONTEXT_KEYS.has(key) || INTERNAL_KEYS.has(key) || info[key] === undefined) continue;
    parts.push(`${key}=${formatValue(info[key])}`);
  }
  const fields = parts.length > 0 ? ` ${parts.join(' ')}` : '';
  return typeof info.stack === 'string' ? `${fields}\n${info.stack}` : fields;
}

export type LineStyle = 'stderr' | 'journal' | 'syslog';

/**
 * Renders the whole line for one transport, verbatim. Secrets are kept out of log lines at
 * their source (nothing formats a password into a message), not masked here: masking every
 * occurrence of a password also masks the same characters in timestamps, group names and
 * addresses, and where the masks fall tells a short password away.
 */
export function lineFormat(style: LineStyle): winston.Logform.Format {
  return winston.format((info) => {
    const level = String(info.level);
    const body = `${contextPrefix(info)}${String(info.message)}${extraFields(info)}`;
    let line: string;
    if (style === 'stderr') {
      line = `${new Date().toISOString()} [${LABEL[level] ?? level.toUpperCase()}] ${body}`;
    } else if (style === 'journal') {
      // journald stamps and stores the priority itself; a multi-line message keeps its
      // priority only on the first line, so continuation lines are indented instead.
      line = `<${SEVERITY[level] ?? 6}>${body.replace(/\n/g, '\n  ')}`;
    } else {
      line = body;
    }
    (info as Record<string | symbol, unknown>)[MESSAGE] = line;
    return info;
  })();
}

// ---------------------------------------------------------------- syslog

export interface ProduceOptions {
  severity: string;
  appName?: string;
  date: Date;
  message: string;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/**
 * RFC 3164 as glibc's syslog(3) writes it to /dev/log: `<PRI>Mmm dd hh:mm:ss ident[pid]: msg`,
 * without a hostname (the local daemon adds it; with one, journald would take the hostname
 * for the identifier).
 */
export function rfc3164Line(facility: SyslogFacility, o: ProduceOptions & { pid: number }): string {
  const d = o.date;
  const pri = FACILITY_CODES[facility] * 8 + (SEVERITY[o.severity] ?? 6);
  const pad = (n: number): string => String(n).padStart(2, '0');
  const stamp = `${MONTHS[d.getMonth()]} ${String(d.getDate()).padStart(2, ' ')} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  return `<${pri}>${stamp} ${o.appName ?? 'ucarp'}[${o.pid}]: ${o.message}`;
}

interface SyslogTransport extends TransportStream {
  queue: unknown[];
}
type SyslogCtor = new (opts: Record<string, unknown>) => SyslogTransport;

function syslogTransport(facility: SyslogFacility, path: string, ident: string): SyslogTransport {
  // winston-syslog ships no type declarations.
  const { Syslog } = require('winston-syslog') as { Syslog: SyslogCtor };
  class Producer {
    produce(o: ProduceOptions): string {
      return rfc3164Line(facility, { ...o, appName: ident, pid: process.pid });
    }
  }
  return new Syslog({
    protocol: 'unix',
    path,
    facility,
    app_name: ident,
    type: 'RFC3164',
    customProducer: Producer,
    format: lineFormat('syslog'),
  });
}

// ---------------------------------------------------------------- logger

/**
 * Throws on an unknown facility. Call `logger.close()` before exiting: the syslog socket
 * keeps the event loop alive while it is open.
 */
export function createLogger(opts: LoggerOptions): Logger {
  const facility = opts.facility.toLowerCase();
  if (facility !== 'none' && !isSyslogFacility(facility)) {
    throw new InvalidArgumentError(`Unknown syslog facility: [${opts.facility}]`);
  }
  const journal = opts.journal ?? Boolean(process.env.JOURNAL_STREAM);
  const ident = opts.ident ?? 'ucarp';
  const transports: TransportStream[] = [];

  if (opts.console !== false) {
    const stream = opts.stream ?? (journal ? process.stdout : process.stderr);
    transports.push(
      new winston.transports.Stream({
        stream,
        format: lineFormat(journal ? 'journal' : 'stderr'),
        eol: '\n',
      }),
    );
  }

  let syslog: SyslogTransport | undefined;
  const syslogPath = opts.syslogPath ?? DEFAULT_SYSLOG_PATH;
  if (!journal && isSyslogFacility(facility) && fs.existsSync(syslogPath)) {
    syslog = syslogTransport(facility, syslogPath, ident);
    transports.push(syslog);
  }

  if (transports.length === 0) {
    // winston complains on every call when it has no transport at all.
    transports.push(new winston.transports.Console({ silent: true }));
  }

  const logger = winston.createLogger({
    levels: LEVELS,
    level: opts.debug ? 'debug' : (opts.level ?? 'info'),
    // Each transport renders its own line; only Errors need unpacking (message, stack) first.
    format: winston.format.errors({ stack: true }),
    transports,
    exitOnError: false,
  });

  // A logger must never take the daemon down: a failing syslog send is dropped. With the
  // 'unix' protocol winston-syslog queues failed messages but never resends them, so the
  // queue is emptied to keep a dead syslog daemon from growing memory without bound.
  logger.on('error', (_err: unknown, transport?: unknown) => {
    if (transport !== undefined && transport === syslog) syslog.queue.length = 0;
  });
  return logger;
}

export interface GroupContext {
  group?: string;
  vhid?: number;
  iface?: string;
}

/** A child logger whose lines start with `<group> vhid <vhid> <iface>: `. */
export function groupLogger(base: Logger, ctx: GroupContext): Logger {
  const meta: Record<string, string | number> = {};
  if (ctx.group !== undefined) meta.group = ctx.group;
  if (ctx.vhid !== undefined) meta.vhid = ctx.vhid;
  if (ctx.iface !== undefined) meta.iface = ctx.iface;
  return base.child(meta);
}
