// Client side of the control socket: one request, one answer, then the connection is closed;
// or one `events` request and the stream that follows, until either side ends it.
import fs from 'node:fs';
import net from 'node:net';
import { LineSplitter, type ErrorResponse, type EventLine, type Request, type Response } from './protocol';

export { DEFAULT_CONTROL_SOCKET as DEFAULT_SOCKET } from '../config/settings';
/** Longer than any reload takes; only a wedged daemon hits it. */
const DEFAULT_TIMEOUT_MS = 30_000;

/** No event line comes near this; it only bounds what a broken server could make us hold. */
const MAX_EVENT_LINE_BYTES = 1 << 20;

/** 'refused': the daemon answered with an error (its answer is in `response`). */
export type ClientErrorKind = 'not-running' | 'permission' | 'timeout' | 'protocol' | 'io' | 'refused';

export class ControlClientError extends Error {
  constructor(
    readonly kind: ClientErrorKind,
    message: string,
    readonly response?: ErrorResponse,
  ) {
    super(message);
  }
}

/**
 * The daemon binds its socket once: after control.socket is edited, a reload does not move
 * it, so the daemon may well be running while the configured path does not exist.
 */
function noSocket(socketPath: string): ControlClientError {
  return new ControlClientError(
    'not-running',
    `no socket at ${socketPath} (is the ucarp daemon running? If control.socket was changed, ` +
      'the daemon keeps the path it started with until it is restarted)',
  );
}

function connectError(socketPath: string, e: NodeJS.ErrnoException): ControlClientError {
  switch (e.code) {
    case 'ENOENT':
    case 'ENOTDIR':
      return noSocket(socketPath);
    case 'ECONNREFUSED':
      return refused(socketPath);
    case 'EACCES':
    case 'EPERM':
      return new ControlClientError(
        'permission',
        `permission denied on ${socketPath}: the control socket is for root only`,
      );
    default:
      return new ControlClientError('io', `${socketPath}: ${e.message}`);
  }
}

/**
 * Linux refuses a connection both to a socket file nobody listens on (left by a daemon that
 * was killed) and to a path that is not a socket at all; the fix differs, so tell them apart.
 */
function refused(socketPath: string): ControlClientError {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(socketPath);
  } catch {
    // Removed between connect() and here: a daemon shutting down.
    return noSocket(socketPath);
  }
  if (!st.isSocket()) {
    return new ControlClientError('io', `${socketPath} is not a socket (check control.socket or --socket)`);
  }
  return new ControlClientError(
    'not-running',
    `stale socket at ${socketPath}: nobody is listening (the ucarp daemon is not running, or it crashed)`,
  );
}

export function request(socketPath: string, req: Request, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<Response> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(socketPath);
    const chunks: Buffer[] = [];
    let connected = false;
    let settled = false;
    const settle = (err: ControlClientError | null, res?: Response) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(res as Response);
    };
    const timer = setTimeout(
      () => settle(new ControlClientError('timeout', `no answer from ${socketPath} within ${timeoutMs} ms`)),
      timeoutMs,
    );
    sock.on('connect', () => {
      connected = true;
      sock.end(JSON.stringify(req) + '\n');
    });
    sock.on('data', (c: Buffer) => {
      chunks.push(c);
      if (c.includes(0x0a)) finish();
    });
    sock.on('end', () => finish());
    sock.on('error', (e: NodeJS.ErrnoException) => {
      if (!connected) settle(connectError(socketPath, e));
      // The daemon closed on us (it refused the request, or is stopping): say what we got.
      else if (e.code === 'EPIPE' || e.code === 'ECONNRESET') finish();
      else settle(new ControlClientError('io', `${socketPath}: ${e.message}`));
    });
    function finish(): void {
      const text = Buffer.concat(chunks).toString('utf8');
      const nl = text.indexOf('\n');
      if (nl < 0) {
        settle(new ControlClientError('protocol', `${socketPath}: connection closed without an answer`));
        return;
      }
      try {
        settle(null, JSON.parse(text.slice(0, nl)) as Response);
      } catch {
        settle(new ControlClientError('protocol', `${socketPath}: answer is not valid JSON`));
      }
    }
  });
}

export interface SubscribeOptions {
  /** Aborting closes the stream from our side; the promise then resolves. */
  signal?: AbortSignal;
  /** Time allowed for the daemon to confirm the subscription; none once it has. */
  timeoutMs?: number;
}

/**
 * Follows the daemon's event stream (src/control/protocol.ts): `onEvent` gets each event and
 * its line exactly as received. Resolves when the stream ends, by the daemon (it is stopping,
 * or dropped us) or by `signal`; rejects like request() when the daemon cannot be reached, with
 * kind 'refused' when it answers the subscription with an error, and with what `onEvent` throws.
 */
export function subscribe(
  socketPath: string,
  onEvent: (ev: EventLine, line: string) => void,
  opts: SubscribeOptions = {},
): Promise<void> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    if (opts.signal?.aborted) {
      resolve();
      return;
    }
    const sock = net.connect(socketPath);
    const lines = new LineSplitter(MAX_EVENT_LINE_BYTES);
    let connected = false;
    let subscribed = false;
    let settled = false;
    const onAbort = () => settle(null);
    const settle = (err: Error | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      sock.destroy();
      if (err) reject(err);
      else resolve();
    };
    opts.signal?.addEventListener('abort', onAbort);
    const timer = setTimeout(
      () => settle(new ControlClientError('timeout', `no answer from ${socketPath} within ${timeoutMs} ms`)),
      timeoutMs,
    );
    sock.on('connect', () => {
      connected = true;
      // No end(): the daemon takes our end of the connection for the end of the subscription.
      sock.write(JSON.stringify({ cmd: 'events' }) + '\n');
    });
    sock.on('data', (chunk: Buffer) => {
      const got = lines.push(chunk);
      if (got === 'too-long') {
        settle(
          new ControlClientError(
            'protocol',
            `${socketPath}: a line longer than ${MAX_EVENT_LINE_BYTES} bytes`,
          ),
        );
        return;
      }
      for (const line of got) {
        if (settled) return;
        if (line.trim() === '') continue;
        let v: unknown;
        try {
          v = JSON.parse(line);
        } catch {
          settle(new ControlClientError('protocol', `${socketPath}: answer is not valid JSON`));
          return;
        }
        if (!subscribed) {
          const res = v as Response | { ok: true; subscribed: true };
          if (!res.ok) {
            settle(new ControlClientError('refused', res.error, res));
            return;
          }
          if (!('subscribed' in res) || res.subscribed !== true) {
            settle(new ControlClientError('protocol', `${socketPath}: unexpected answer to events`));
            return;
          }
          subscribed = true;
          clearTimeout(timer);
          continue;
        }
        try {
          onEvent(v as EventLine, line);
        } catch (e) {
          settle(e as Error);
          return;
        }
      }
    });
    const ended = () =>
      settle(
        subscribed
          ? null
          : new ControlClientError('protocol', `${socketPath}: connection closed without an answer`),
      );
    sock.on('end', ended);
    sock.on('close', ended);
    sock.on('error', (e: NodeJS.ErrnoException) => {
      if (!connected) settle(connectError(socketPath, e));
      // The daemon closed on us: a stream it ended, or a subscription it did not answer.
      else if (e.code === 'EPIPE' || e.code === 'ECONNRESET') ended();
      else settle(new ControlClientError('io', `${socketPath}: ${e.message}`));
    });
  });
}
