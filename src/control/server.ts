// The control socket: a unix stream socket only root can open (mode 0600). Whatever a client
// sends or fails to read, the daemon answers every complete request or closes the connection;
// no client can make it buffer without bound, block, or throw.
//
// Node exposes no SO_PEERCRED, and adding one would take native code: access control is the
// file mode alone (0600, owned by the daemon's user), which the kernel checks at connect().
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { Logger } from '../util/log';
import { native } from '../native';
import {
  LineSplitter,
  MAX_REQUEST_BYTES,
  errorResponse,
  parseRequest,
  type Request,
  type Response,
} from './protocol';
import { ControlSocketBusyError } from '../errors';

export interface ControlServerOptions {
  path: string;
  handle(req: Request): Promise<Response>;
  log: Logger;
  maxRequestBytes?: number;
  /** A connection with nothing to do for this long is closed. */
  idleTimeoutMs?: number;
  /** Connections beyond this are accepted and closed at once. */
  maxConnections?: number;
  /** A client that leaves this many response bytes unread is disconnected. */
  maxUnreadBytes?: number;
}

const DEFAULTS = {
  maxRequestBytes: MAX_REQUEST_BYTES,
  idleTimeoutMs: 30_000,
  maxConnections: 64,
  maxUnreadBytes: 4 << 20,
};

/** Requests read ahead of the one being handled; past that the socket stops being read. */
const MAX_QUEUED_REQUESTS = 16;
/** Time allowed to a stale-socket probe before the file is considered dead. */
const PROBE_TIMEOUT_MS = 1000;

/** Resolves true when something accepts connections on `p`. */
export function socketAnswers(p: string, timeoutMs = PROBE_TIMEOUT_MS): Promise<boolean> {
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
  private readonly opts: Required<ControlServerOptions>;
  private readonly server: net.Server;
  private readonly conns = new Set<net.Socket>();
  private closed = false;

  private constructor(opts: ControlServerOptions) {
    this.opts = { ...DEFAULTS, ...opts };
    this.server = net.createServer({ allowHalfOpen: true }, (c) => this.accept(c));
    this.server.maxConnections = this.opts.maxConnections;
  }

  get path(): string {
    return this.opts.path;
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

  /** Stops accepting and drops every connection; libuv removes the socket file it bound. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const done = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const c of this.conns) c.destroy();
    await done;
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
      c.setTimeout(1000, () => c.destroy());
      c.end(JSON.stringify(errorResponse('forbidden', 'the control socket is for root only')) + '\n');
      return;
    }
    this.conns.add(c);
    new Connection(c, this.opts, () => this.conns.delete(c));
  }
}

/** One client: requests are handled one at a time, answers written in order. */
class Connection {
  private readonly lines: LineSplitter;
  private readonly queue: string[] = [];
  private busy = false;
  /** The client will send nothing more: close once the queue is answered. */
  private ended = false;
  /** An error answer was sent and our side ended: write nothing else. */
  private failed = false;
  private gone = false;

  constructor(
    private readonly sock: net.Socket,
    private readonly opts: Required<ControlServerOptions>,
    onClose: () => void,
  ) {
    this.lines = new LineSplitter(opts.maxRequestBytes);
    sock.setTimeout(opts.idleTimeoutMs, () => sock.destroy());
    sock.on('data', (chunk: Buffer) => this.onData(chunk));
    sock.on('end', () => this.onEnd());
    // EPIPE, ECONNRESET…: the client went away; nothing to tell anyone.
    sock.on('error', () => sock.destroy());
    sock.on('close', () => {
      this.gone = true;
      onClose();
    });
  }

  private onData(chunk: Buffer): void {
    const lines = this.lines.push(chunk);
    if (lines === 'too-long') {
      this.fail(`request longer than ${this.opts.maxRequestBytes} bytes`);
      return;
    }
    this.queue.push(...lines);
    if (this.queue.length >= MAX_QUEUED_REQUESTS) this.sock.pause();
    void this.drain();
  }

  /** Half-close from the client: answer what it sent, then close our side too. */
  private onEnd(): void {
    const last = this.lines.end();
    if (last !== null) this.queue.push(last);
    this.ended = true;
    void this.drain();
  }

  /** Answers once and closes: what follows the bad data cannot be framed any more. */
  private fail(message: string): void {
    this.queue.length = 0;
    this.ended = true;
    this.failed = true;
    this.sock.removeAllListeners('data');
    this.sock.pause();
    this.sock.end(JSON.stringify(errorResponse('too-long', message)) + '\n');
    // A client that never reads its answer must not keep the connection alive.
    this.sock.setTimeout(1000, () => this.sock.destroy());
  }

  private async drain(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      while (this.queue.length > 0 && !this.gone && !this.failed) {
        const line = this.queue.shift() as string;
        if (this.queue.length < MAX_QUEUED_REQUESTS && !this.ended) this.sock.resume();
        if (line.trim() === '') continue;
        const res = await this.answer(line);
        if (this.gone || this.failed) return;
        this.sock.write(JSON.stringify(res) + '\n');
        if (this.sock.writableLength > this.opts.maxUnreadBytes) {
          this.sock.destroy();
          return;
        }
      }
      if (this.ended && !this.gone && !this.failed) this.sock.end();
    } finally {
      this.busy = false;
    }
  }

  private async answer(line: string): Promise<Response> {
    const parsed = parseRequest(line);
    if (!parsed.ok) return parsed;
    try {
      return await this.opts.handle(parsed.request);
    } catch (e) {
      this.opts.log.error(`control request ${parsed.request.cmd} failed: ${(e as Error).message}`);
      return errorResponse('internal', (e as Error).message);
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
