// Client side of the control socket: one request, one answer, then the connection is closed.
import fs from 'node:fs';
import net from 'node:net';
import type { Request, Response } from './protocol';

export { DEFAULT_CONTROL_SOCKET as DEFAULT_SOCKET } from '../config/settings';
/** Longer than any reload takes; only a wedged daemon hits it. */
const DEFAULT_TIMEOUT_MS = 30_000;

export type ClientErrorKind = 'not-running' | 'permission' | 'timeout' | 'protocol' | 'io';

export class ControlClientError extends Error {
  constructor(
    readonly kind: ClientErrorKind,
    message: string,
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
