// One demo host's ucarp supervisor (`bin/ucarp -c FILE` inside the host's namespace): start,
// signals, its log read line by line with the time each state change was seen, and its status
// over the control socket.
import { performance } from 'node:perf_hooks';
import type { ChildProcess } from 'node:child_process';
import { request } from '../control/client';
import type { StatusDocument } from '../control/protocol';
import type { CarpState } from '../engine/group';
import type { Lab, LabHost } from './lab';
import { LabError } from '../errors';

/** Enough log to explain a failure. */
const KEEP_LINES = 200;
/** A status poll that takes longer than this means the daemon is stuck or gone. */
const STATUS_TIMEOUT_MS = 2000;

const TRANSITION = /\s(\S+) vhid \d+ \S+: Switching to state: (INIT|BACKUP|MASTER)(?: \(([^)]*)\))?/;

export interface Transition {
  /** performance.now() when the line arrived. */
  t: number;
  group: string;
  state: CarpState;
  reason: string;
}

export class DemoDaemon {
  readonly lines: string[] = [];
  readonly transitions: Transition[] = [];
  private child: ChildProcess | undefined;
  private buf = '';
  private stopping = false;
  /** Set when the process ends without having been asked to. */
  crashed: string | undefined;

  constructor(
    readonly lab: Lab,
    readonly host: LabHost,
    readonly file: string,
    readonly socket: string,
    private readonly ucarpBin: string,
  ) {}

  get name(): string {
    return this.host.name;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Starts the daemon; returns the time it was started. */
  start(): number {
    if (this.running) throw new LabError(`ucarp already runs on ${this.name}`);
    this.stopping = false;
    this.crashed = undefined;
    this.buf = '';
    const child = this.lab.spawn(this.host, process.execPath, [this.ucarpBin, '-c', this.file]);
    const t = performance.now();
    this.child = child;
    const onData = (d: Buffer) => this.take(d.toString());
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.on('exit', (code, sig) => {
      if (!this.stopping) this.crashed = sig ? `killed by ${sig}` : `exited with status ${code}`;
    });
    return t;
  }

  /** Sends a signal that is meant to end the daemon; returns the time it was sent. */
  stop(sig: 'SIGKILL' | 'SIGTERM'): number {
    this.stopping = true;
    const t = performance.now();
    this.child?.kill(sig);
    return t;
  }

  /** Resolves when the process is gone (at once if it never ran). */
  exited(): Promise<void> {
    const c = this.child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return Promise.resolve();
    return new Promise((resolve) => c.once('exit', () => resolve()));
  }

  /** The daemon's status document, or null when it is down or does not answer (yet). */
  async status(): Promise<StatusDocument | null> {
    if (!this.running) return null;
    try {
      const res = await request(this.socket, { cmd: 'status' }, STATUS_TIMEOUT_MS);
      if (!res.ok || !('groups' in res)) return null;
      return res;
    } catch {
      return null;
    }
  }

  /** First change of `group` to `state` logged at or after `since`. */
  transitionTo(group: string, state: CarpState, since: number): Transition | undefined {
    return this.transitions.find((x) => x.t >= since && x.group === group && x.state === state);
  }

  tail(n = 15): string {
    return this.lines.slice(-n).join('\n');
  }

  private take(text: string): void {
    const t = performance.now();
    this.buf += text;
    let nl: number;
    while ((nl = this.buf.indexOf('\n')) >= 0) {
      const line = this.buf.slice(0, nl);
      this.buf = this.buf.slice(nl + 1);
      this.lines.push(line);
      if (this.lines.length > KEEP_LINES) this.lines.shift();
      const m = TRANSITION.exec(line);
      if (m) this.transitions.push({ t, group: m[1], state: m[2] as CarpState, reason: m[3] ?? '' });
    }
  }
}
