// `ucarpctl`: asks the running supervisor what it thinks, and tells it what to do, over its
// control socket, or follows what happens in it (`events`). Exit status: 0 done (for events:
// stopped by a signal or by the daemon), 1 the daemon refused (no such group, invalid
// configuration), 2 usage error or the daemon cannot be reached.
import fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import { parse as parseYaml } from 'yaml';
import { formatError } from '../config/errors';
import { errorMessage } from '../errors';
import { RESTART_ANSWER_WAIT_MS, RESTART_LIMITS } from '../config/settings';
import { ControlClientError, DEFAULT_SOCKET, request, subscribe } from '../control/client';
import type {
  ControlRequest,
  ErrorResponse,
  EventLine,
  GroupStatusJson,
  OverrideResponse,
  ReloadResponse,
  Request,
  RestartResponse,
  Response,
  StatusDocument,
} from '../control/protocol';
import { isGroupName } from '../control/protocol';
import { REJECT_REASONS, type RejectReason } from '../protocol/carp';
import { formatRejects, type RejectCounters } from '../runtime/counters';
import { MIN_PRIORITY, PROMOTED_PRIORITY } from '../engine/vrrp-rules';

export const USAGE = `Usage: ucarpctl [--socket PATH | -c FILE] COMMAND

Commands:
  status [GROUP] [--json]  state of every group (or one); --json prints the status document
  demote GROUP             advertise advskew 255 (VRRP: priority ${MIN_PRIORITY}) and hand mastership over,
                           until reset or reload
  promote GROUP            advertise advskew 0 (VRRP: priority ${PROMOTED_PRIORITY}) and preempt, until reset
                           or reload
  reset GROUP              drop a demote/promote override
  reload                   reload the configuration (as SIGHUP); prints every error if rejected
  restart                  replace the daemon with the code now installed, same pid, without a
                           failover: masters stay masters (refused if the new code rejects the
                           configuration); waits until the new daemon answers
  events [--json]          follow transitions, tracker changes, address conflicts and restores
                           and reloads as they happen, one line each, until Ctrl-C; --json
                           prints the daemon's event lines as received

Options:
  -s, --socket PATH   control socket (default: from -c FILE, else ${DEFAULT_SOCKET})
  -c, --config FILE   read the control socket path from this configuration file
  -h, --help          this text
`;

export type CtlArgs =
  | { kind: 'help' }
  | { kind: 'error'; message: string }
  | { kind: 'run'; socket?: string; config?: string; request: ControlRequest; json: boolean };

export function parseCtlArgs(argv: string[]): CtlArgs {
  let socket: string | undefined;
  let config: string | undefined;
  let json = false;
  const words: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = (): string | undefined => {
      const eq = a.indexOf('=');
      if (a.startsWith('--') && eq > 0) return a.slice(eq + 1);
      i++;
      return argv[i];
    };
    const name = a.startsWith('--') && a.includes('=') ? a.slice(0, a.indexOf('=')) : a;
    switch (name) {
      case '-h':
      case '--help':
        return { kind: 'help' };
      case '-s':
      case '--socket':
        socket = value();
        if (!socket) return { kind: 'error', message: `${name} needs a path` };
        break;
      case '-c':
      case '--config':
        config = value();
        if (!config) return { kind: 'error', message: `${name} needs a file` };
        break;
      case '--json':
        json = true;
        break;
      default:
        if (a.startsWith('-') && a !== '-') return { kind: 'error', message: `unknown option ${a}` };
        words.push(a);
    }
  }
  const [cmd, ...rest] = words;
  if (!cmd) return { kind: 'error', message: 'no command given' };
  const tooMany = (n: number) => (rest.length > n ? `too many arguments for ${cmd}` : null);
  const run = (req: ControlRequest): CtlArgs => ({ kind: 'run', socket, config, request: req, json });
  if (json && cmd !== 'status' && cmd !== 'events')
    return { kind: 'error', message: '--json applies to status and events only' };
  switch (cmd) {
    case 'status': {
      const err = tooMany(1);
      if (err) return { kind: 'error', message: err };
      if (rest[0] !== undefined && !isGroupName(rest[0]))
        return { kind: 'error', message: `invalid group name ${JSON.stringify(rest[0])}` };
      return run(rest[0] === undefined ? { cmd } : { cmd, group: rest[0] });
    }
    case 'demote':
    case 'promote':
    case 'reset': {
      const err = tooMany(1);
      if (err) return { kind: 'error', message: err };
      if (rest[0] === undefined) return { kind: 'error', message: `${cmd} needs a GROUP` };
      if (!isGroupName(rest[0]))
        return { kind: 'error', message: `invalid group name ${JSON.stringify(rest[0])}` };
      return run({ cmd, group: rest[0] });
    }
    case 'reload':
    case 'restart':
    case 'events': {
      const err = tooMany(0);
      return err ? { kind: 'error', message: err } : run({ cmd });
    }
    default:
      return { kind: 'error', message: `unknown command ${cmd}` };
  }
}

/**
 * The socket path a configuration file names. Only that key is read, without validating the
 * rest: `ucarpctl -c FILE reload` must reach the daemon precisely when FILE is broken.
 */
export function socketFromConfig(file: string): string {
  const doc: unknown = parseYaml(fs.readFileSync(file, 'utf8'), { uniqueKeys: false });
  if (typeof doc === 'object' && doc !== null && 'control' in doc) {
    const control = (doc as { control: unknown }).control;
    if (typeof control === 'object' && control !== null && 'socket' in control) {
      const s = (control as { socket: unknown }).socket;
      if (typeof s === 'string' && s !== '') return s;
    }
  }
  return DEFAULT_SOCKET;
}

/** `45s`, `3m07s`, `2h05m`, `4d03h`: two units at most, enough to read at a glance. */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  const pad = (n: number) => String(n).padStart(2, '0');
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${pad(s % 60)}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${pad(Math.floor((s % 3600) / 60))}m`;
  return `${Math.floor(s / 86400)}d${pad(Math.floor((s % 86400) / 3600))}h`;
}

function stateCell(g: GroupStatusJson): string {
  const notes: string[] = [];
  if (g.override !== 'none') notes.push(`${g.override}d`);
  if (g.state === 'FAULT' && g.faults.length > 0) notes.push(g.faults.join(', '));
  if (g.demotion > 0) notes.push(g.priority !== null ? `demoted -${g.demotion}` : `demoted +${g.demotion}`);
  return notes.length > 0 ? `${g.state} (${notes.join('; ')})` : g.state;
}

function masterCell(g: GroupStatusJson): string {
  if (!g.master) return '-';
  const self = g.state === 'MASTER' ? ' (self)' : '';
  const m = g.master;
  // VRRP: "prio 150"; CARP: advbase/advskew.
  return 'priority' in m
    ? `${m.address}${self} prio ${m.priority}`
    : `${m.address}${self} ${m.advbase}/${m.advskew}`;
}

function rejectsCell(g: GroupStatusJson): string {
  return g.rejectsTotal === 0 ? '0' : `${g.rejectsTotal} (${formatRejects(g.rejects)})`;
}

/** Left-aligned columns separated by two spaces; numbers right-aligned. */
function table(header: string[], rows: string[][], numeric: Set<number>): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (numeric.has(i) ? c.padStart(widths[i]) : c.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

export function formatStatus(doc: StatusDocument): string {
  if (doc.groups.length === 0) return 'no groups\n';
  const header = [
    'GROUP',
    'VHID',
    'IFACE',
    'STATE',
    'SINCE',
    'ADDRESSES',
    'MASTER',
    'SENT',
    'RECV',
    'REJECTS',
  ];
  const rows = doc.groups.map((g) => [
    g.name,
    // A VRRP group's number is its VRID; CARP and VRRP may share a number on one interface.
    g.protocol === 'vrrp3' ? `vrrp ${g.vhid}` : String(g.vhid),
    g.interface,
    stateCell(g),
    formatDuration(g.sinceMs),
    g.addresses.join(','),
    masterCell(g),
    String(g.sent),
    String(g.received),
    rejectsCell(g),
  ]);
  let out = table(header, rows, new Set([1, 7, 8]));
  if (doc.trackers.length > 0) {
    out +=
      '\n' +
      table(
        ['TRACKER', 'KIND', 'STATE', 'SINCE', 'OUTPUT'],
        doc.trackers.map((t) => [
          t.name,
          t.kind,
          t.failed ? 'FAILED' : 'up',
          formatDuration(t.sinceMs),
          t.kind === 'file' ? `${t.value}` : t.output,
        ]),
        new Set(),
      );
  }
  for (const i of doc.interfaces) {
    if (i.rejectsTotal > 0)
      out += `${i.name}: ${i.rejectsTotal} packet(s) for no group of ours (${interfaceRejects(i.rejects)})\n`;
  }
  return out;
}

/**
 * Count first, and the two demultiplexing reasons spelled out: `reason=N` would print
 * `vhid=45` for 45 packets, which reads as "vhid 45".
 */
function interfaceRejects(c: RejectCounters): string {
  const label: Partial<Record<RejectReason, string>> = {
    vhid: 'unknown vhid',
    destination: 'other destination',
  };
  return REJECT_REASONS.filter((r) => c[r] > 0)
    .map((r) => `${c[r]} ${label[r] ?? r}`)
    .join(', ');
}

function describeOverride(r: OverrideResponse): string {
  const g = r.group;
  const what = g.override === 'none' ? 'override cleared' : `${g.override}d`;
  const advertising =
    g.priority !== null ? `priority ${g.priority}` : `advbase ${g.advbase} advskew ${g.advskew}`;
  const line = `${g.name}: ${what}; now ${g.state}, advertising ${advertising}\n`;
  return g.override === 'promote' && g.state === 'BACKUP' ? line + promoteOutlook(g) : line;
}

/**
 * Why a promoted group is still BACKUP. Promotion only lowers our advskew to 0 and makes us
 * preempt, and a backup preempts only a master whose interval is strictly longer than ours
 * (docs/protocol.md §9, §13): against a peer that ties, "promoted; now BACKUP" would look like
 * a silent failure.
 */
function promoteOutlook(g: GroupStatusJson): string {
  const m = g.master;
  if (!m) return '';
  if ('priority' in m) {
    // VRRP: a preempting backup ignores a lower priority and takes over when its down timer
    // runs out (docs/protocol.md §22); a tie goes to the higher address.
    const prio = `the master ${m.address} advertises priority ${m.priority}`;
    return m.priority < (g.priority ?? 0)
      ? `  ${prio}, lower than ours: we take over when its advertisements time out\n`
      : `  not taking over: ${prio}, not lower than our ${g.priority ?? 0}\n`;
  }
  // Intervals in 1/256 s, compared as the engine compares them (docs/protocol.md §8).
  const ours = g.advbase * 256 + g.advskew;
  const theirs = m.advbase * 256 + m.advskew;
  const master = `the master ${m.address} advertises advbase ${m.advbase} advskew ${m.advskew}`;
  if (theirs > ours)
    return `  ${master}, a longer interval than ours: we take over at its next advertisement\n`;
  if (theirs === ours) {
    return (
      `  not taking over: ${master}, as good an interval as ours, and promotion cannot beat a tie ` +
      '(a backup preempts only a longer interval; between two masters CARP breaks a tie by address, ' +
      'see docs/protocol.md §10)\n'
    );
  }
  return (
    `  not taking over: ${master}, a shorter interval than ours; promotion sets advskew 0 ` +
    `but keeps advbase ${g.advbase}\n`
  );
}

/** Tracker output and reload lines are one line each; a file tracker's content may not be. */
function oneLine(s: string): string {
  return s.replace(/\s*[\r\n]+\s*/g, ' | ').trim();
}

/**
 * One human line per event, led by the daemon's timestamp; group events name the group as the
 * daemon's log does (docs/operations.md, Logs). A type this version does not know is shown as
 * its JSON rather than dropped: a newer daemon may publish more.
 */
export function formatEvent(ev: EventLine): string {
  const where = (g: { group: string; vhid: number; interface: string }) =>
    `${g.group} vhid ${g.vhid} ${g.interface}`;
  let what: string;
  switch (ev.type) {
    case 'transition':
      what = `${where(ev)}: ${ev.from} -> ${ev.to} (${ev.reason})`;
      break;
    case 'tracker': {
      const out = oneLine(ev.output);
      what = `tracker ${ev.tracker} ${ev.failed ? 'failed' : 'ok'} (value ${ev.value})${out ? `: ${out}` : ''}`;
      break;
    }
    case 'conflict':
      what = `${where(ev)}: conflict ${ev.address} (${ev.removed ? 'removed' : 'left in place: not added by this daemon'})`;
      break;
    case 'restore':
      what = `${where(ev)}: restored ${ev.address} (removed behind our back)`;
      break;
    case 'reload':
      what = `reload: ${oneLine(ev.line)}`;
      break;
    default: {
      const { time: _time, ...rest } = ev as { time: string; type: string };
      what = `${rest.type}: ${JSON.stringify(rest)}`;
    }
  }
  return `${ev.time} ${what}`;
}

export interface CtlOutput {
  code: number;
  stdout: string;
  stderr: string;
}

/** Turns the daemon's answer into what the user sees and the exit status. */
export function render(req: Request, res: Response, json: boolean): CtlOutput {
  if (!res.ok) return renderError(res);
  switch (req.cmd) {
    case 'status': {
      // The document without the envelope's "ok": what --json promises is the document.
      const { ok: _ok, ...doc } = res as { ok: true } & StatusDocument;
      return { code: 0, stdout: json ? JSON.stringify(doc, null, 2) + '\n' : formatStatus(doc), stderr: '' };
    }
    case 'demote':
    case 'promote':
    case 'reset':
      return { code: 0, stdout: describeOverride(res as OverrideResponse), stderr: '' };
    case 'reload':
    case 'restart':
      return { code: 0, stdout: (res as ReloadResponse | RestartResponse).line + '\n', stderr: '' };
  }
}

const RESTART_POLL_MS = 50;

/**
 * After the restart answer: polls until a daemon answers that started after it (a new image:
 * its uptime is shorter than the wait so far) and has started its groups, and says what it runs.
 */
export async function awaitNewImage(
  socket: string,
  waitMs = RESTART_LIMITS.newImageWaitMs,
): Promise<CtlOutput> {
  const t0 = performance.now();
  let last = '';
  while (performance.now() - t0 < waitMs) {
    const asked = performance.now();
    try {
      const res = await request(socket, { cmd: 'status' }, Math.max(1, waitMs - (asked - t0)));
      if (res.ok && 'uptimeMs' in res && res.uptimeMs <= performance.now() - t0 && !res.starting) {
        const count = (st: string) => res.groups.filter((g) => g.state === st).length;
        const states = ['MASTER', 'BACKUP', 'FAULT', 'INIT'].map((st) => `${count(st)} ${st}`).join(', ');
        const took = ((performance.now() - t0) / 1000).toFixed(2);
        return {
          code: 0,
          stdout: `restarted: pid ${res.pid}, ${res.groups.length} group(s): ${states} (${took} s)\n`,
          stderr: '',
        };
      }
    } catch (e) {
      last = errorMessage(e);
    }
    await new Promise((r) => setTimeout(r, RESTART_POLL_MS));
  }
  return {
    code: 1,
    stdout: '',
    stderr: `ucarpctl: the restarted daemon did not answer within ${waitMs / 1000} s${last ? ` (${last})` : ''}: see its log\n`,
  };
}

function renderError(res: ErrorResponse): CtlOutput {
  let stderr = `ucarpctl: ${res.error}\n`;
  if (res.errors) stderr = res.errors.map((e) => formatError(e) + '\n').join('') + stderr;
  return { code: 1, stdout: '', stderr };
}

/** Where `events` writes as events arrive, and what stops it (main() wires SIGINT/SIGTERM). */
export interface CtlStream {
  write(text: string): void;
  signal?: AbortSignal;
}

const STREAM_ENDED =
  'ucarpctl: the daemon ended the event stream (it is stopping, or this reader fell too far behind)\n';

async function follow(socket: string, json: boolean, io: CtlStream): Promise<CtlOutput> {
  await subscribe(socket, (ev, line) => io.write((json ? line : formatEvent(ev)) + '\n'), {
    signal: io.signal,
  });
  return { code: 0, stdout: '', stderr: io.signal?.aborted ? '' : STREAM_ENDED };
}

/**
 * Runs one command. Its output is returned, except for `events`, which writes each line to
 * `io` as it arrives and returns once the stream ends.
 */
export async function run(
  argv: string[],
  io: CtlStream = { write: (t) => process.stdout.write(t) },
): Promise<CtlOutput> {
  const args = parseCtlArgs(argv);
  if (args.kind === 'help') return { code: 0, stdout: USAGE, stderr: '' };
  if (args.kind === 'error') return { code: 2, stdout: '', stderr: `ucarpctl: ${args.message}\n${USAGE}` };
  let socket = args.socket;
  if (socket === undefined && args.config !== undefined) {
    try {
      socket = socketFromConfig(args.config);
    } catch (e) {
      return {
        code: 2,
        stdout: '',
        stderr: `ucarpctl: cannot read ${args.config}: ${errorMessage(e)}\n`,
      };
    }
  }
  socket ??= DEFAULT_SOCKET;
  const req = args.request;
  try {
    if (req.cmd === 'events') return await follow(socket, args.json, io);
    const res = await request(socket, req, req.cmd === 'restart' ? RESTART_ANSWER_WAIT_MS : undefined);
    const out = render(req, res, args.json);
    if (req.cmd !== 'restart' || out.code !== 0) return out;
    const back = await awaitNewImage(socket);
    return { code: back.code, stdout: out.stdout + back.stdout, stderr: back.stderr };
  } catch (e) {
    if (e instanceof ControlClientError) {
      if (e.response) return renderError(e.response);
      return { code: 2, stdout: '', stderr: `ucarpctl: ${e.message}\n` };
    }
    throw e;
  }
}

export function main(argv: string[]): void {
  const stop = new AbortController();
  const args = parseCtlArgs(argv);
  if (args.kind === 'run' && args.request.cmd === 'events') {
    // Ctrl-C, SIGTERM or a reader that went away (`ucarpctl events | head`) are how `events`
    // is meant to stop: each ends the stream and exits 0. Other commands keep the default
    // dispositions: Ctrl-C interrupts them as usual.
    for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => stop.abort());
    process.stdout.on('error', () => stop.abort());
  }
  const io: CtlStream = {
    write: (t) => {
      if (!stop.signal.aborted) process.stdout.write(t);
    },
    signal: stop.signal,
  };
  run(argv, io).then(
    (o) => {
      process.stdout.write(o.stdout);
      process.stderr.write(o.stderr);
      process.exitCode = o.code;
    },
    (e: unknown) => {
      process.stderr.write(`ucarpctl: ${errorMessage(e)}\n`);
      process.exitCode = 2;
    },
  );
}
