// Many rtnetlink change requests in one datagram. A mass takeover adds thousands of addresses
// at once; the kernel handles the messages of one sendmsg() one after the other, within that
// call, so a batch costs the daemon one system call and one timer instead of one of each per
// address. Only the last message of a datagram asks for an ACK (NLM_F_ACK): the kernel answers
// every other message only when it fails, and those answers are queued before the last one's
// ACK, so that ACK settles the whole datagram. Each caller still gets its own result, matched
// by sequence number, and the socket receives one ACK per datagram instead of one per address
// (docs/performance.md, "Mass failover").
import { getSystemErrorName } from 'node:util';
import { formatMessage, parseError, Flags, MessageType, type NetlinkMessage } from 'netlink';
import { ClosedError, KernelError } from '../errors';

/** Where a batch goes: its socket, and that socket's sequence numbers. */
export interface BatchTransport {
  /**
   * Sends one datagram now (the kernel has handled it when this returns); throws when it
   * cannot be sent.
   */
  send(datagram: Buffer): void;
  /**
   * Hands every answer already queued on the socket to `onMessage`, now. The kernel answers
   * within `send`, so a burst past the in-flight bound goes on at once instead of waiting for
   * the answers to be read in the poll phase.
   */
  receive?(): void;
  /** A sequence number no other request on the socket is waiting for. */
  nextSeq(): number;
}

export interface NetlinkBatchOptions {
  /** Messages per datagram at most. */
  maxPerDatagram: number;
  /**
   * Messages sent and not yet settled at most: each may still be answered by an error message
   * waiting in the receive buffer.
   */
  maxInFlight: number;
  /** A datagram whose last message the kernel never acknowledges fails after this long. */
  timeoutMs: number;
  /**
   * Runs a flush of a partial datagram at the end of the current synchronous run; default
   * queueMicrotask, so the requests made together go together. A full datagram goes at once.
   */
  schedule?: (flush: () => void) => void;
}

interface Pending {
  type: number;
  flags: number;
  payload: Uint8Array[];
  resolve: () => void;
  reject: (e: Error) => void;
  seq: number;
  datagram?: Datagram;
}

/** One datagram in flight: its messages still unsettled, the one that carries the ACK, its timer. */
interface Datagram {
  members: Pending[];
  last: Pending;
  timer: NodeJS.Timeout;
}

const ALIGN = 4;

/** The messages as one datagram, each padded to NLMSG_ALIGN as the kernel walks them. */
export function frameBatch(
  messages: readonly { type: number; flags: number; seq: number; payload: Uint8Array[] }[],
): Buffer {
  const parts: Uint8Array[] = [];
  for (const m of messages) {
    const msg = formatMessage({ type: m.type, flags: m.flags, seq: m.seq, port: 0, data: m.payload });
    let length = 0;
    for (const p of msg) length += p.length;
    parts.push(...msg);
    const pad = (ALIGN - (length % ALIGN)) % ALIGN;
    if (pad > 0) parts.push(Buffer.alloc(pad));
  }
  return Buffer.concat(parts);
}

/** The kernel's answer to one message: undefined for success, else its errno name. */
export function ackError(msg: NetlinkMessage): string | undefined {
  const { errno } = parseError(msg.data, msg.flags);
  if (errno === 0) return undefined;
  try {
    return getSystemErrorName(errno < 0 ? errno : -errno);
  } catch {
    return String(errno);
  }
}

export class NetlinkBatch {
  private readonly queue: Pending[] = [];
  private readonly inFlight = new Map<number, Pending>();
  private scheduled = false;
  private closed = false;
  /** Inside transport.receive(): answers settle, and the flush running goes on by itself. */
  private receiving = false;
  private readonly schedule: (flush: () => void) => void;

  constructor(
    private readonly transport: BatchTransport,
    private readonly opts: NetlinkBatchOptions,
  ) {
    this.schedule = opts.schedule ?? queueMicrotask;
  }

  /** Number of messages queued or not yet settled. */
  get pending(): number {
    return this.queue.length + this.inFlight.size;
  }

  /**
   * Queues one request (REQUEST is added to `flags`, ACK where the datagram needs it); resolves
   * once the kernel has applied it, rejects with a KernelError carrying the errno it answered.
   */
  request(type: number, flags: number, payload: Uint8Array[]): Promise<void> {
    if (this.closed) return Promise.reject(new ClosedError('rtnetlink socket is closed'));
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ type, flags: flags | Flags.REQUEST, payload, resolve, reject, seq: 0 });
      // A full datagram leaves now: in a mass takeover the requests come from one long
      // synchronous run of expiring timers, and the first addresses must not wait for its end.
      if (this.queue.length >= this.opts.maxPerDatagram && !this.receiving) this.flush();
      else this.later();
    });
  }

  /** Takes a message from the socket; true when it answered one of ours. */
  onMessage(msg: NetlinkMessage): boolean {
    if (msg.type !== MessageType.ERROR) return false;
    const p = this.inFlight.get(msg.seq);
    if (!p) return false;
    let errno: string | undefined;
    let bad: Error | undefined;
    try {
      errno = ackError(msg);
    } catch (e) {
      bad = e as Error;
    }
    this.settle(
      p,
      bad ??
        (errno === undefined
          ? undefined
          : new KernelError(errno, `the kernel refused the request: ${errno}`)),
    );
    // The last message's answer comes after every error of the datagram: the rest succeeded.
    const d = p.datagram;
    if (d && d.last === p) {
      clearTimeout(d.timer);
      for (const m of d.members) if (this.inFlight.get(m.seq) === m) this.settle(m, undefined);
    }
    this.refill();
    return true;
  }

  /** Fails everything queued or in flight. */
  close(): void {
    this.closed = true;
    const err = new ClosedError('rtnetlink socket is closed');
    for (const p of this.queue.splice(0)) p.reject(err);
    for (const p of [...this.inFlight.values()]) {
      if (p.datagram) clearTimeout(p.datagram.timer);
      this.settle(p, err);
    }
  }

  /** Sends what the in-flight bound allows, in datagrams of at most maxPerDatagram. */
  flush(): void {
    this.scheduled = false;
    if (this.closed) return;
    while (this.queue.length > 0) {
      let room = this.room();
      if (room <= 0 && this.transport.receive !== undefined && !this.receiving) {
        this.receiving = true;
        try {
          this.transport.receive();
        } finally {
          this.receiving = false;
        }
        room = this.room();
      }
      if (room <= 0) return;
      const batch = this.queue.splice(0, room);
      for (const p of batch) {
        p.seq = this.transport.nextSeq();
        this.inFlight.set(p.seq, p);
      }
      this.send(batch);
    }
  }

  /** Messages the next datagram may carry. */
  private room(): number {
    return Math.min(this.opts.maxInFlight - this.inFlight.size, this.opts.maxPerDatagram);
  }

  private send(batch: Pending[]): void {
    const last = batch[batch.length - 1];
    let datagram: Buffer;
    try {
      datagram = frameBatch(batch.map((p) => (p === last ? { ...p, flags: p.flags | Flags.ACK } : p)));
    } catch (e) {
      for (const p of batch) this.settle(p, e as Error);
      this.refill();
      return;
    }
    // It keeps the process alive while requests wait, as the `netlink` package's own do.
    const timer = setTimeout(
      () =>
        this.fail(
          batch,
          new KernelError('ETIMEDOUT', `no answer from the kernel after ${this.opts.timeoutMs} ms`),
        ),
      this.opts.timeoutMs,
    );
    const d: Datagram = { members: batch, last, timer };
    for (const p of batch) p.datagram = d;
    try {
      this.transport.send(datagram);
    } catch (e) {
      this.fail(batch, e as Error);
    }
  }

  /** Rejects those of `batch` still unsettled. */
  private fail(batch: Pending[], err: Error): void {
    const d = batch[0]?.datagram;
    if (d) clearTimeout(d.timer);
    for (const p of batch) if (this.inFlight.get(p.seq) === p) this.settle(p, err);
    this.refill();
  }

  private settle(p: Pending, err: Error | undefined): void {
    if (this.inFlight.get(p.seq) === p) this.inFlight.delete(p.seq);
    if (err) p.reject(err);
    else p.resolve();
  }

  private refill(): void {
    if (this.queue.length > 0 && !this.receiving) this.later(true);
  }

  private later(fromAck = false): void {
    if (this.scheduled) return;
    this.scheduled = true;
    // After an answer, the others read in the same poll phase free room first: the refill
    // waits for the check phase, so that they go out together.
    if (fromAck) setImmediate(() => this.flush());
    else this.schedule(() => this.flush());
  }
}
