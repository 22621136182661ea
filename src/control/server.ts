// The control socket: a unix stream socket only root can open (mode 0600, and the peer's uid
// checked with SO_PEERCRED through native/). Whatever a client sends or fails to read, the
// daemon answers every complete request or closes the connection; no client can make it buffer
// without bound, block, throw, or hold the socket so that ucarpctl cannot get an answer. That
// holds for event subscribers too (`ucarpctl events`): they are fed from inside the daemon's
// own code paths, so a slow one is dropped rather than buffered for.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Logger } from '../util/log';
import type { EventBus, StampedEvent } from '../runtime/events';
import { RateLimitedLog } from '../util/rate-limited-log';
import { native } from '../native';
import {
  LineSplitter,
  MAX_REQUEST_BYTES,
  errorResponse,
  parseRequest,
  type ErrorCode,
  type Request,
  type Response,
  type SubscribedResponse,
} from './protocol';
import { ControlSocketBusyError, errorMessage } from '../errors';

/**
 * Every limit of the control socket, in one place. Only root can connect, but a local root
 * process gone wrong (a stuck agent, a loop of half-written requests) must still not be able to
 * keep `ucarpctl` out: each request has a bounded time to arrive, however its bytes trickle in,
 * and a new connection at the cap displaces the one that has waited longest for a request.
 */
export const CONTROL_LIMITS = {
  /** A request line longer than this is refused and the connection closed. */
  maxRequestBytes: MAX_REQUEST_BYTES,
  /**
   * A complete request line must arrive within this long of the moment the server starts
   * waiting for it (connect, or the previous answer); bytes arriving meanwhile do not extend it.
   * ucarpctl sends its whole request as soon as it is connected.
   */
  requestDeadlineMs: 2000,
  /** Connections at once; one more evicts an idle one (see ControlServer.evict). */
  maxConnections: 64,
  /** A connection with no traffic either way for this long is closed. */
  idleTimeoutMs: 30_000,
  /** A client that leaves this many response bytes unread is disconnected. */
  maxUnreadBytes: 4 << 20,
  /** Requests read ahead of the one being handled; past that the socket stops being read. */
  maxQueuedRequests: 16,
  /** Time a client gets to read a final error answer before the connection is cut. */
  lingerMs: 1000,
  /** Time allowed to a stale-socket probe before the file is considered dead. */
  probeTimeoutMs: 1000,
  /**
   * An event subscriber that leaves this many bytes unread (beyond what the kernel holds for
   * it) is dropped: events are written from inside the daemon as they happen, and neither
   * waiting for a reader nor buffering for it without bound is acceptable there. A mass
   * failover of 255 groups is about 50 KiB of events, so a live reader never comes near it.
   */
  maxEventBacklogBytes: 1 << 20,
} as const;

export interface ControlServerOptions {
  path: string;
  handle(req: Request): Promise<Response>;
  log: Logger;
  maxRequestBytes?: number;
  /** See CONTROL_LIMITS.requestDeadlineMs. */
  requestDeadlineMs?: number;
  /** A connection with nothing to do for this long is closed. */
  idleTimeoutMs?: number;
  /** Connections at once; a new one past this evicts an idle one. */
  maxConnections?: number;
  /** A client that leaves this many response bytes unread is disconnected. */
  maxUnreadBytes?: number;
  /** The daemon's events; without it an `events` request is refused (unknown-command). */
  events?: EventBus;
  /** Called once an answer has been handed to the kernel (ucarpctl restart waits for it). */
  answered?(req: Request, res: Response): void;
  /** See CONTROL_LIMITS.maxEventBacklogBytes. */
  maxEventBacklogBytes?: number;
}

type Settings = Required<Omit<ControlServerOptions, 'events' | 'answered'>> &
  Pick<ControlServerOptions, 'events' | 'answered'>;

const DEFAULTS = {
  maxRequestBytes: CONTROL_LIMITS.maxRequestBytes,
  requestDeadlineMs: CONTROL_LIMITS.requestDeadlineMs,
  idleTimeoutMs: CONTROL_LIMITS.idleTimeoutMs,
  maxConnections: CONTROL_LIMITS.maxConnections,
  maxUnreadBytes: CONTROL_LIMITS.maxUnreadBytes,
  maxEventBacklogBytes: CONTROL_LIMITS.maxEventBacklogBytes,
};

/** Resolves true when something accepts connections on `p`. */
export function socketAnswers(
  p: string,
  timeoutMs: number = CONTROL_LIMITS.probeTimeoutMs,
): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(p);
    const done = (answers: boolean) => {
      s.destroy();
      clearTimeout(timer);
      resolve(answers);
    };
    // A listener whose backlog is full may not accept within the timeout: it is still alive.
    const timer = setTimeout(() => done(true), timeoutMs);
    s.once('connect', () => done(true));
    s.once('error', (e: NodeJS.ErrnoException) => done(e.code === 'EAGAIN'));
  });
}

export class ControlServer {
  private readonly opts: Settings;
  private readonly server: net.Server;
  private readonly conns = new Set<Connection>();
  /** Connections streaming events, in subscription order. */
  private readonly subscribers = new Set<Connection>();
  /** Clients dropped for the limits: a flood of them must not flood the log as well. */
  private readonly drops = new RateLimitedLog<
    'deadline' | 'evicted' | 'evicted-subscriber' | 'slow-subscriber'
  >();
  private closed = false;
  /**
   * One bus listener for every subscriber, attached only while there is one: the bus skips an
   * event nobody listens to (src/runtime/events.ts), each event is serialized once however many
   * follow it, and 64 subscribers do not trip EventEmitter's leak warning.
   */
  private readonly onEvent = (ev: StampedEvent): void => this.fanOut(ev);

  private constructor(opts: ControlServerOptions) {
    this.opts = { ...DEFAULTS, ...opts };
    // No server.maxConnections: Node would close every connection past it, ucarpctl's too,
    // for as long as the slots stay taken. accept() makes room instead.
    this.server = net.createServer({ allowHalfOpen: true }, (c) => this.accept(c));
  }

  get path(): string {
    return this.opts.path;
  }

  /** Connections streaming events now. */
  get subscriberCount(): number {
    return this.subscribers.size;
  }

  /**
   * Creates the socket. A leftover file is removed only when nothing answers on it; when
   * another daemon answers, this rejects and leaves it alone.
   */
  static async open(opts: ControlServerOptions): Promise<ControlServer> {
    const s = new ControlServer(opts);
    await s.listen();
    return s;
  }

  private async listen(): Promise<void> {
    const p = this.opts.path;
    fs.mkdirSync(path.dirname(p), { recursive: true, mode: 0o755 });
    let st: fs.Stats | null = null;
    try {
      st = fs.lstatSync(p);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    if (st) {
      if (!st.isSocket())
        throw new ControlSocketBusyError(`control socket ${p} exists and is not a socket; not removing it`);
      if (await socketAnswers(p))
        throw new ControlSocketBusyError(`another ucarp daemon is running (its control socket ${p} answers)`);
      fs.unlinkSync(p);
      this.opts.log.info(`removed stale control socket ${p}`);
    }
    await new Promise<void>((resolve, reject) => {
      const onError = (e: Error) => reject(e);
      this.server.once('error', onError);
      // bind() creates the file with the umask applied: with 0177 it never exists with more
      // than 0600, not even between bind() and the chmod below. listen() binds synchronously,
      // so no other code runs under this umask.
      const old = process.umask(0o177);
      try {
        this.server.listen(p, () => {
          this.server.off('error', onError);
          resolve();
        });
      } finally {
        process.umask(old);
      }
    });
    fs.chmodSync(p, 0o600);
    this.server.on('error', (e) => this.opts.log.error(`control socket ${p}: ${e.message}`));
    this.opts.log.info(`control socket listening on ${p}`);
  }

  /**
   * Stops accepting and drops every connection; libuv removes the socket file it bound. Event
   * streams are ended rather than cut, so a subscriber reads every event sent before the end;
   * one that does not read is cut after CONTROL_LIMITS.lingerMs.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const done = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const c of this.conns) {
      if (this.subscribers.has(c)) c.endStream();
      else c.destroy();
    }
    this.conns.clear();
    this.unsubscribeAll();
    await done;
  }

  private subscribe(c: Connection): boolean {
    const bus = this.opts.events;
    if (!bus || this.closed) return false;
    if (this.subscribers.size === 0) bus.on('event', this.onEvent);
    this.subscribers.add(c);
    return true;
  }

  private unsubscribe(c: Connection): void {
    if (!this.subscribers.delete(c) || this.subscribers.size > 0) return;
    this.opts.events?.off('event', this.onEvent);
  }

  private unsubscribeAll(): void {
    this.subscribers.clear();
    this.opts.events?.off('event', this.onEvent);
  }

  /**
   * Runs inside publish(), that is inside whatever daemon code published (a group's dispatch, a
   * reload): nothing may throw back into it, and nothing here waits.
   */
  private fanOut(ev: StampedEvent): void {
    let line: string;
    try {
      line = JSON.stringify(ev) + '\n';
    } catch (e) {
      this.opts.log.error(`control socket: cannot serialize a ${ev.type} event: ${errorMessage(e)}`);
      return;
    }
    // Deleting the current entry while iterating a Set is well defined: a dropped subscriber
    // leaves the set from inside send().
    for (const c of this.subscribers) {
      try {
        c.send(line);
      } catch (e) {
        this.unsubscribe(c);
        c.destroy();
        this.opts.log.error(`control socket: event subscriber failed: ${errorMessage(e)}`);
      }
    }
  }

  private accept(c: net.Socket): void {
    if (this.closed) {
      c.destroy();
      return;
    }
    // Mode 0600 already keeps other users out; the peer's uid is checked as well so that a
    // socket file whose mode was loosened by hand still answers only root and our own user.
    const uid = peerUid(c);
    if (uid !== 0 && uid !== process.geteuid?.()) {
      this.opts.log.warn(`control socket: refused a client running as uid ${uid ?? 'unknown'}`);
      // Read and drop what it sends, so that its end arrives and closing cannot reset the
      // answer away; a client that never ends is cut after a second.
      c.on('data', () => undefined);
      c.on('end', () => c.destroy());
      c.on('error', () => c.destroy());
      c.setTimeout(CONTROL_LIMITS.lingerMs, () => c.destroy());
      c.end(JSON.stringify(errorResponse('forbidden', 'the control socket is for root only')) + '\n');
      return;
    }
    if (this.conns.size >= this.opts.maxConnections) this.evict();
    const conn: Connection = new Connection(c, this.opts, {
      onClose: () => {
        this.conns.delete(conn);
        this.unsubscribe(conn);
      },
      subscribe: () => this.subscribe(conn),
      unsubscribe: () => this.unsubscribe(conn),
      onSlow: () =>
        this.drops.report('slow-subscriber', (more) =>
          this.opts.log.warn(
            `control socket: dropped an event subscriber that left more than ` +
              `${this.opts.maxEventBacklogBytes} bytes unread${more}`,
          ),
        ),
      onDeadline: () =>
        this.drops.report('deadline', (more) =>
          this.opts.log.warn(
            `control socket: closed a connection that sent no complete request within ` +
              `${this.opts.requestDeadlineMs} ms${more}`,
          ),
        ),
    });
    this.conns.add(conn);
  }

  /**
   * Makes room for a new connection. First to go is one already answered and closing, then the
   * one that has waited longest for a request (a client that never sends, or trickles bytes),
   * then, when every slot is handling a request, the oldest of those: the newcomer is more
   * likely ucarpctl than any of them. Event subscribers go last, the oldest first: a monitor
   * following the stream is doing what it should, but must not keep ucarpctl out either.
   */
  private evict(): void {
    let victim: Connection | undefined;
    for (const c of this.conns) {
      if (!victim || c.tier < victim.tier || (c.tier === victim.tier && c.since < victim.since)) victim = c;
    }
    if (!victim) return;
    const subscriber = victim.tier === Tier.Subscribed;
    // Counted out now: its 'close' event comes later, after this connection is accepted.
    this.conns.delete(victim);
    this.unsubscribe(victim);
    victim.destroy();
    this.drops.report(subscriber ? 'evicted-subscriber' : 'evicted', (more) =>
      this.opts.log.warn(
        `control socket: ${this.opts.maxConnections} connections open, closed ` +
          `${subscriber ? 'the oldest event subscriber' : 'the idlest'} to accept a new one${more}`,
      ),
    );
  }
}

/** Eviction order of a connection (see ControlServer.evict): lower goes first. */
const enum Tier {
  Closing = 0,
  Waiting = 1,
  Handling = 2,
  Subscribed = 3,
}

interface ConnectionEvents {
  onClose(): void;
  /** The request deadline passed: the connection is being closed. */
  onDeadline(): void;
  /** Starts feeding this connection events; false when the server has none to give. */
  subscribe(): boolean;
  unsubscribe(): void;
  /** The connection was dropped for leaving too many event bytes unread. */
  onSlow(): void;
}

const SUBSCRIBED: SubscribedResponse = { ok: true, subscribed: true };

/**
 * One client: requests are handled one at a time, answers written in order, until an `events`
 * request turns it into a one-way stream for good.
 */
class Connection {
  private readonly lines: LineSplitter;
  private readonly queue: string[] = [];
  private readonly openedAt = performance.now();
  private busy = false;
  /** The client will send nothing more: close once the queue is answered. */
  private ended = false;
  /** An error answer was sent and our side ended: write nothing else. */
  private failed = false;
  private gone = false;
  /** When the server started waiting for the next request, or null while it has one. */
  private waitingSince: number | null = null;
  private deadline: NodeJS.Timeout | undefined;
  /** When it subscribed to events, or null while it is a request connection. */
  private subscribedAt: number | null = null;
  private linger: NodeJS.Timeout | undefined;

  constructor(
    private readonly sock: net.Socket,
    private readonly opts: Settings,
    private readonly events: ConnectionEvents,
  ) {
    this.lines = new LineSplitter(opts.maxRequestBytes);
    sock.setTimeout(opts.idleTimeoutMs, () => sock.destroy());
    sock.on('data', (chunk: Buffer) => this.onData(chunk));
    sock.on('end', () => this.onEnd());
    // EPIPE, ECONNRESET…: the client went away; nothing to tell anyone.
    sock.on('error', () => sock.destroy());
    sock.on('close', () => {
      this.gone = true;
      this.stopWaiting();
      if (this.linger) clearTimeout(this.linger);
      events.onClose();
    });
    this.waitForRequest();
  }

  get tier(): Tier {
    // Our side ended (final answer, error or timeout): only the client's close is awaited.
    if (this.gone || this.sock.writableEnded) return Tier.Closing;
    if (this.subscribedAt !== null) return Tier.Subscribed;
    return this.waitingSince !== null ? Tier.Waiting : Tier.Handling;
  }

  /** Since it subscribed, else since it has been waiting for a request, else since it was opened. */
  get since(): number {
    return this.subscribedAt ?? this.waitingSince ?? this.openedAt;
  }

  destroy(): void {
    this.sock.destroy();
  }

  /** Writes one event line; drops the connection when the client has fallen too far behind. */
  send(line: string): void {
    if (this.gone || this.sock.destroyed || this.sock.writableEnded) return;
    this.sock.write(line);
    // writableLength is what Node holds once the kernel's buffer is full: only a client that
    // stopped reading gets here, and every further event would be kept for it.
    if (this.sock.writableLength > this.opts.maxEventBacklogBytes) {
      this.events.unsubscribe();
      this.sock.destroy();
      this.events.onSlow();
    }
  }

  /**
   * Ends an event stream: what was written is still delivered, then the connection closes; a
   * client that does not read it is cut after lingerMs.
   */
  endStream(): void {
    this.events.unsubscribe();
    if (this.gone || this.sock.writableEnded) return;
    this.sock.end();
    this.linger = setTimeout(() => this.sock.destroy(), CONTROL_LIMITS.lingerMs);
  }

  /**
   * Turns the connection into an event stream. Requests queued behind `events` are dropped and
   * later input is read and ignored: an answer in the middle of the stream could not be told
   * from an event by a client reading lines. Reading goes on so that the client's end is seen
   * (and its unsubscription with it) even when no event is ever written.
   */
  private startStream(): boolean {
    if (!this.events.subscribe()) return false;
    this.subscribedAt = performance.now();
    this.queue.length = 0;
    this.stopWaiting();
    // No traffic either way is the normal state of a quiet daemon's stream.
    this.sock.setTimeout(0);
    this.sock.removeAllListeners('data');
    this.sock.on('data', () => undefined);
    this.sock.resume();
    this.sock.write(JSON.stringify(SUBSCRIBED) + '\n');
    if (this.ended) this.endStream();
    return true;
  }

  /** Arms the deadline once, from now: later bytes of the same request do not move it. */
  private waitForRequest(): void {
    if (this.waitingSince !== null) return;
    this.waitingSince = performance.now();
    this.deadline = setTimeout(() => {
      this.deadline = undefined;
      this.events.onDeadline();
      this.fail('bad-request', `no complete request within ${this.opts.requestDeadlineMs} ms`);
    }, this.opts.requestDeadlineMs);
  }

  private stopWaiting(): void {
    if (this.deadline) clearTimeout(this.deadline);
    this.deadline = undefined;
    this.waitingSince = null;
  }

  private onData(chunk: Buffer): void {
    const lines = this.lines.push(chunk);
    if (lines === 'too-long') {
      this.fail('too-long', `request longer than ${this.opts.maxRequestBytes} bytes`);
      return;
    }
    // Blank lines are no request: a client sending only newlines must not beat the deadline.
    for (const line of lines) if (line.trim() !== '') this.queue.push(line);
    if (this.queue.length === 0) return;
    this.stopWaiting();
    if (this.queue.length >= CONTROL_LIMITS.maxQueuedRequests) this.sock.pause();
    void this.drain();
  }

  /** Half-close from the client: answer what it sent, then close our side too. */
  private onEnd(): void {
    if (this.subscribedAt !== null) {
      this.endStream();
      return;
    }
    const last = this.lines.end();
    if (last !== null && last.trim() !== '') this.queue.push(last);
    this.ended = true;
    this.stopWaiting();
    void this.drain();
  }

  /** Answers once and closes: what follows the bad data cannot be framed any more. */
  private fail(code: ErrorCode, message: string): void {
    this.stopWaiting();
    this.queue.length = 0;
    this.ended = true;
    this.failed = true;
    this.sock.removeAllListeners('data');
    this.sock.pause();
    this.sock.end(JSON.stringify(errorResponse(code, message)) + '\n');
    // A client that never reads its answer must not keep the connection alive.
    this.sock.setTimeout(CONTROL_LIMITS.lingerMs, () => this.sock.destroy());
  }

  private async drain(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      while (this.queue.length > 0 && !this.gone && !this.failed) {
        const line = this.queue.shift() as string;
        if (this.queue.length < CONTROL_LIMITS.maxQueuedRequests && !this.ended) this.sock.resume();
        const parsed = parseRequest(line);
        let res: Response;
        if (!parsed.ok) res = parsed;
        else if (parsed.request.cmd !== 'events') res = await this.answer(parsed.request);
        else if (this.startStream()) return;
        else res = errorResponse('unknown-command', 'this control socket does not stream events');
        if (this.gone || this.failed) return;
        const req = parsed.ok ? parsed.request : null;
        const answered = this.opts.answered;
        this.sock.write(JSON.stringify(res) + '\n', (err) => {
          if (!err && req !== null && req.cmd !== 'events' && answered) answered(req, res);
        });
        if (this.sock.writableLength > this.opts.maxUnreadBytes) {
          this.sock.destroy();
          return;
        }
      }
      if (this.gone || this.failed) return;
      if (this.ended) this.sock.end();
      else this.waitForRequest();
    } finally {
      this.busy = false;
    }
  }

  private async answer(req: Request): Promise<Response> {
    try {
      return await this.opts.handle(req);
    } catch (e) {
      this.opts.log.error(`control request ${req.cmd} failed: ${errorMessage(e)}`);
      return errorResponse('internal', errorMessage(e));
    }
  }
}

/**
 * The uid of a unix-socket client (Node keeps the descriptor on its internal pipe handle), or
 * undefined when it cannot be told: such a client is refused.
 */
function peerUid(c: net.Socket): number | undefined {
  const fd = (c as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) return undefined;
  try {
    return native().peerUid(fd);
  } catch {
    return undefined;
  }
}
