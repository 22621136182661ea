// The control socket's wire format: one JSON object per line in each direction, one response
// per request, in order; after {"cmd":"events"} the connection becomes a one-way stream of
// events (see the event stream contract below). Everything a client may send is checked here,
// so the server never hands anything but a well-formed Request to the daemon.
import type { ConfigError } from '../config/types';
import type { ApplySummary } from '../runtime/group-set';
import type { GroupStats, GroupStatus, TrackerStatus } from '../runtime/status';
import type { ScriptStats } from '../hooks/scripts';
import type { RejectCounters } from '../runtime/counters';
import type { StampedEvent } from '../runtime/events';

/** A request line longer than this is refused and the connection closed. */
export const MAX_REQUEST_BYTES = 64 * 1024;

/** Bumped only when a field changes meaning or disappears; new fields do not bump it. */
export const STATUS_VERSION = 1;

/** Same rule as the configuration's group names. */
const GROUP_NAME = /^[A-Za-z0-9_.-]{1,64}$/;

export type OverrideCommand = 'demote' | 'promote' | 'reset';
export const COMMANDS = ['status', 'demote', 'promote', 'reset', 'reload', 'restart', 'events'] as const;
export type Command = (typeof COMMANDS)[number];

/** A request answered once, by the daemon's handler (src/control/commands.ts). */
export type Request =
  | { cmd: 'status'; group?: string }
  | { cmd: OverrideCommand; group: string }
  | { cmd: 'reload' }
  | { cmd: 'restart' };
/** A request the server itself turns into a stream (src/control/server.ts); no other keys. */
export interface EventsRequest {
  cmd: 'events';
}
/** Anything a client may send. */
export type ControlRequest = Request | EventsRequest;

export type ErrorCode =
  | 'bad-request'
  | 'unknown-command'
  | 'unknown-group'
  | 'too-long'
  | 'config-invalid'
  | 'restart-refused'
  | 'forbidden'
  | 'internal';

export interface ErrorResponse {
  ok: false;
  code: ErrorCode;
  error: string;
  /** Only with code 'config-invalid': every problem of the rejected file. */
  errors?: ConfigError[];
}

/*
 * Status document, the answer to {"cmd":"status"} and the output of `ucarpctl status --json`.
 * Stable: fields are only ever added; STATUS_VERSION changes if one changes meaning.
 *
 *   version        1
 *   pid            process id of the daemon
 *   uptimeMs       whole milliseconds since this image of the daemon started (ucarpctl restart
 *                  keeps the pid and starts a new image)
 *   starting       true while the daemon is still starting its groups (the socket answers first)
 *   configFile     the configuration file the daemon runs from
 *   reloads        { ok, failed }: reloads since start (SIGHUP, file change, ucarpctl reload)
 *   groups[]       one per group, in configuration order:
 *     name           group name (the key under `groups:`)
 *     protocol       "carp" | "vrrp3"
 *     vhid           1..255 (the VRID of a VRRP group)
 *     interface      network interface the group runs on
 *     state          "INIT" | "BACKUP" | "MASTER" | "FAULT"
 *     sinceMs        whole milliseconds spent in the current state
 *     addresses      virtual addresses, "a.b.c.d/prefix", sorted
 *     srcip          source address of this host's advertisements
 *     advbase        advbase this host advertises now
 *     advskew        advskew this host advertises now (0 when promoted, 255 when demoted)
 *     priority       VRRP: the priority this host advertises now (254 when promoted, 1 when
 *                    demoted, lowered by tracker weights down to 1); null for CARP
 *     advertInterval VRRP: seconds between advertisements; null for CARP
 *     override       "none" | "demote" | "promote" (set by ucarpctl, cleared by reset or reload)
 *     link           "up" | "down" | "missing" (the interface does not exist: the group waits for it)
 *     demotion       added to advskew by tracker weights (the sync group's highest; capped at 240
 *                    when advertised)
 *     faults         what holds the group in FAULT: failed trackers, "no carrier",
 *                    "interface missing", "sync group NAME"; [] when nothing does
 *     conflicts      virtual addresses on this host while not master that this daemon did not
 *                    add (it removes those it added); [] normally
 *     master         current master as { address, advbase, advskew } (CARP) or
 *                    { address, priority, advertInterval } (VRRP), this host's own values
 *                    when it is master, or null when no master is known
 *     sent           advertisements sent
 *     received       valid advertisements received
 *     sendErrors     advertisements the kernel refused to send
 *     transitions    state changes
 *     addressRestores  times a virtual address removed by someone else was put back (master)
 *     addressConflicts times a virtual address was found here while not master
 *     rejects        { short, ttl, version, type, length, vhid, destination, peer, checksum, digest,
 *                    replay, interval }:
 *                    advertisements for this group rejected, by reason (every key present)
 *     rejectsTotal   sum of rejects
 *     scripts        { runs, failures, timeouts } of its up/down scripts
 *   interfaces[]   one per interface in use:
 *     name           interface name
 *     running        carrier up
 *     groups         number of groups on it
 *     rejects        same keys as above: packets no group could be blamed for (unknown vhid,
 *                    other destination, malformed)
 *     rejectsTotal   sum of rejects
 *   trackers[]     one per tracker, in file order:
 *     name, kind     the tracker's name; "script" | "interface" | "file"
 *     failed         whether it counts as failed now (after rise/fall)
 *     value          a file tracker's integer; 1 when failed, else 0, for the others
 *     sinceMs        whole milliseconds since failed or value last changed
 *     output         last output line (script), content (file), "up"/"down"/"missing" (interface)
 *     checks, failures  checks run, and those that failed
 */
/** The runtime's status with its counters flattened, plus totals and script counters. */
export type GroupStatusJson = Omit<GroupStatus, 'stats'> &
  GroupStats & {
    rejectsTotal: number;
    scripts: ScriptStats;
  };

export interface InterfaceStatusJson {
  name: string;
  running: boolean;
  groups: number;
  rejects: RejectCounters;
  rejectsTotal: number;
}

export interface StatusDocument {
  version: number;
  pid: number;
  uptimeMs: number;
  starting: boolean;
  configFile: string;
  reloads: { ok: number; failed: number };
  groups: GroupStatusJson[];
  interfaces: InterfaceStatusJson[];
  trackers: TrackerStatusJson[];
}

export type TrackerStatusJson = TrackerStatus;

export type StatusResponse = { ok: true } & StatusDocument;
/** Answer to demote/promote/reset: the group as it is right after the change. */
export interface OverrideResponse {
  ok: true;
  group: GroupStatusJson;
}
export interface ReloadResponse {
  ok: true;
  summary: ApplySummary;
  /** The summary line the daemon logged. */
  line: string;
}

/**
 * Answer to restart: the groups are handed over and the daemon replaces itself (same pid)
 * right after this answer; it answers again once the new image has started them.
 * Refused (code 'restart-refused': the code on disk rejects the file, a script is running),
 * the daemon runs on unchanged.
 */
export interface RestartResponse {
  ok: true;
  restarting: true;
  pid: number;
  /** Groups handed over, and how many of them are master. */
  handedOver: number;
  masters: number;
  line: string;
}

export type Response = StatusResponse | OverrideResponse | ReloadResponse | RestartResponse | ErrorResponse;

/*
 * Event stream, the answer to {"cmd":"events"} and the output of `ucarpctl events --json`.
 *
 * The server first answers {"ok":true,"subscribed":true} (or an ErrorResponse, e.g.
 * unknown-command from a server without an event bus), then writes one line per event as the
 * daemon publishes it (src/runtime/events.ts), in the order published, from the moment of the
 * answer on (nothing earlier is replayed). Every event has:
 *
 *   type        "transition" | "tracker" | "conflict" | "restore" | "reload" (more may be added:
 *               a client skips types it does not know)
 *   time        ISO 8601 UTC wall-clock time the daemon published it, millisecond precision
 *
 * and by type (group events carry group, vhid, interface as in the status document):
 *
 *   transition  group, vhid, interface, from, to ("INIT" | "BACKUP" | "MASTER" | "FAULT"),
 *               reason (the transition reasons of docs/operations.md, e.g. "master-down")
 *     {"type":"transition","group":"web","vhid":10,"interface":"eth0","from":"BACKUP",
 *      "to":"MASTER","reason":"master-down","time":"2026-11-26T23:10:04.123Z"}
 *   tracker     tracker (name), failed, value (what the check reported), output (at most 200
 *               characters of it)
 *     {"type":"tracker","tracker":"haproxy","failed":true,"value":1,"output":"connection refused",
 *      "time":"…"}
 *   conflict    group, vhid, interface, address: a virtual address found on this host while the
 *               group is not master; removed: true when the daemon removed it (it had added it),
 *               false when it left it (someone else added it)
 *     {"type":"conflict","group":"web","vhid":10,"interface":"eth0","address":"192.0.2.100",
 *      "removed":true,"time":"…"}
 *   restore     group, vhid, interface, address: removed by someone else while master, put back
 *     {"type":"restore","group":"web","vhid":10,"interface":"eth0","address":"192.0.2.100","time":"…"}
 *   reload      ok, line (the summary line the daemon logged, or why the file was rejected)
 *     {"type":"reload","ok":true,"line":"reload (SIGHUP): added 0, removed 0, …","time":"…"}
 *
 * The stream ends (the server ends or closes the connection) when the client closes its side
 * (a half-close counts: the server cannot tell it from a client gone, so a subscriber keeps its
 * writing side open), when the daemon stops (events of the stop itself are only logged), or when
 * the client leaves more than CONTROL_LIMITS.maxEventBacklogBytes unread (src/control/server.ts).
 * Anything the client sends after the request is read and ignored, a second request included:
 * the stream carries events only. It has no request deadline and no idle timeout.
 */
export interface SubscribedResponse {
  ok: true;
  subscribed: true;
}
/** One line of the stream after SubscribedResponse. */
export type EventLine = StampedEvent;

export type ParseResult = { ok: true; request: ControlRequest } | ErrorResponse;

export function errorResponse(code: ErrorCode, error: string): ErrorResponse {
  return { ok: false, code, error };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Checks one request line (without its newline). */
export function parseRequest(line: string): ParseResult {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return errorResponse('bad-request', 'request is not valid JSON');
  }
  if (!isRecord(v)) return errorResponse('bad-request', 'request must be a JSON object');
  const { cmd } = v;
  if (typeof cmd !== 'string') return errorResponse('bad-request', 'request needs a string "cmd"');
  const extra = Object.keys(v).filter((k) => k !== 'cmd' && k !== 'group');
  const group = v.group;
  if (!isCommand(cmd))
    return errorResponse(
      'unknown-command',
      `unknown command ${JSON.stringify(cmd.slice(0, 64))}: expected ${COMMANDS.join(', ')}`,
    );
  const bare = cmd === 'reload' || cmd === 'restart' || cmd === 'events';
  if (bare && group !== undefined) extra.push('group');
  if (extra.length > 0)
    return errorResponse('bad-request', `unexpected key(s) for ${cmd}: ${extra.join(', ')}`);
  if (bare) return { ok: true, request: { cmd } };
  if (cmd === 'status' && group === undefined) return { ok: true, request: { cmd } };
  if (!isGroupName(group)) return errorResponse('bad-request', `${cmd} needs "group": a group name`);
  return { ok: true, request: { cmd, group } };
}

function isCommand(v: string): v is Command {
  return (COMMANDS as readonly string[]).includes(v);
}

export function isGroupName(v: unknown): v is string {
  return typeof v === 'string' && GROUP_NAME.test(v);
}

/**
 * Splits a byte stream into lines without ever holding more than `max` bytes of an unfinished
 * one: a client cannot make the daemon buffer an endless line.
 */
export class LineSplitter {
  private parts: Buffer[] = [];
  private size = 0;

  constructor(private readonly max: number = MAX_REQUEST_BYTES) {}

  /** Complete lines in `chunk`, or 'too-long' once the unfinished line exceeds the cap. */
  push(chunk: Buffer): string[] | 'too-long' {
    const lines: string[] = [];
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(0x0a, start);
      if (nl < 0) break;
      const piece = chunk.subarray(start, nl);
      if (this.size + piece.length > this.max) return 'too-long';
      lines.push(this.take(piece));
      start = nl + 1;
    }
    const rest = chunk.subarray(start);
    if (this.size + rest.length > this.max) return 'too-long';
    if (rest.length > 0) {
      // Copy: the socket may reuse its buffer.
      this.parts.push(Buffer.from(rest));
      this.size += rest.length;
    }
    return lines;
  }

  /** What remains after the peer stopped sending (a last line without newline). */
  end(): string | null {
    if (this.size === 0) return null;
    return this.take(Buffer.alloc(0));
  }

  private take(tail: Buffer): string {
    const line = (this.parts.length > 0 ? Buffer.concat([...this.parts, tail]) : tail).toString('utf8');
    this.parts = [];
    this.size = 0;
    return line.endsWith('\r') ? line.slice(0, -1) : line;
  }
}
