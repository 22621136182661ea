// Client side of the control socket: one request, one answer, then the connection is closed.
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

function connectError(socketPath: string, e: NodeJS.ErrnoException): ControlClientError {
  switch (e.code) {
    case 'ENOENT':
    case 'ECONNREFUSED':
    case 'ENOTDIR':
      return new ControlClientError('not-running', `ucarp daemon not running (no socket at ${socketPath})`);
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
