// What the IPv4 and IPv6 transports share: one raw socket of the addon (native/rawsock.c) read
// in batches, and a send queue that leaves through sendmmsg(), 64 packets at a time and the
// rest at the end of the current turn (docs/architecture.md, "The edges"). Per-packet outcomes
// go back to each sender's callback, in order, at the end of the turn.
import { errorMessage } from '../errors';
import { native, type RawSocketHandle, type UcarpNative } from '../native';

/** Int32 words per packet in the metadata arrays; the layout of native/rawsock.c. */
export const RAW_META_STRIDE = 12;
/** Receive: bytes received. Send: length. */
export const M_LENGTH = 0;
/** Receive: the IPv6 hop limit (-1 for IPv4). Send: offset in the arena. */
export const M_HOPS = 1;
export const M_OFFSET = 1;
/** IPv6: the arrival interface, or the outgoing one. */
export const M_IFINDEX = 2;
/** Receive: 1 when the datagram was longer than its slot. Send (IPv6): a hop limit, 0 for 255. */
export const M_FLAGS = 3;
/** 16 bytes from this word: the IPv6 source (receive), or the source to send from (zeros: the kernel's pick). */
export const M_SRC = 4;
/** 16 bytes from this word: the IPv6 destination (receive), or where to send (IPv4: 4 bytes). */
export const M_DST = 8;

/** Packets per recvmmsg(); the addon makes at most 4 such calls per wake-up. */
export const RECV_SLOTS = 64;
/** Bytes per receive slot: more than any CARP or VRRP advertisement with its IP header. */
export const RECV_SLOT_SIZE = 2048;
/**
 * The receive buffer: the default (212992 bytes) holds about 280 advertisements as the kernel
 * accounts them, fewer than thousands of groups may send while the loop is busy elsewhere.
 */
export const RECV_BUFFER_BYTES = 4 * 1024 * 1024;
/**
 * Packets queued before they leave at once rather than at the end of the turn: one sendmmsg()
 * worth. In a wake-up serving thousands of groups, the first groups' advertisements then leave
 * while the later ones are still being computed, instead of all waiting for the last.
 */
export const SEND_BATCH = 64;
const ARENA_SIZE = 64 * 1024;

export type TransportOp = 'open' | 'send' | 'join' | 'leave' | 'receive';

/**
 * A failure of a socket operation: the kernel refused it, or the socket is closed. Argument
 * mistakes (not an address, not a multicast group, leave without join) are
 * InvalidArgumentError instead, because they are bugs rather than conditions to count.
 */
export class TransportError extends Error {
  override readonly name = 'TransportError';
  constructor(
    readonly op: TransportOp,
    readonly ifname: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(`${op} on ${ifname}: ${message}`, options);
  }
}

export interface TransportStats {
  /** Packets delivered to 'packet' listeners. */
  received: number;
  /** Dropped because their IP source is one of our local sources (ucarp check 1). */
  droppedOwn: number;
  /** Dropped because shorter than an IPv4 header. */
  droppedShort: number;
  receiveErrors: number;
  /** Calls from the addon: one per recvmmsg() that returned packets or an error. */
  receiveBatches: number;
  sent: number;
  sendErrors: number;
  /** sendmmsg() rounds: each flush of the send queue that had something in it. */
  sendBatches: number;
}

export function emptyTransportStats(): TransportStats {
  return {
    received: 0,
    droppedOwn: 0,
    droppedShort: 0,
    receiveErrors: 0,
    receiveBatches: 0,
    sent: 0,
    sendErrors: 0,
    sendBatches: 0,
  };
}

/** The outcome of one queued packet: null once the kernel took it, or why it did not. */
export type SendDone = (err: TransportError | null) => void;

/** What a transport does with what the socket reads. */
export interface RawBatchSink {
  /** `count` packets are in `rx` slots (RECV_SLOT_SIZE bytes apart) described by `meta`. */
  batch(rx: Buffer, meta: Int32Array, count: number): void;
  receiveError(err: TransportError): void;
  /** The socket stopped by itself (its poll handle failed). */
  closed(): void;
}

/**
 * One raw socket with its receive slots and its send queue. The receive slots and the send
 * arena are allocated once per socket; a packet costs a copy into the arena and, at flush, its
 * share of one system call.
 */
export class RawBatchSocket {
  private readonly n: UcarpNative;
  private readonly handle: RawSocketHandle;
  private readonly rx: Buffer | null;
  private readonly rxMeta: Int32Array | null;
  private arena = Buffer.allocUnsafeSlow(ARENA_SIZE);
  private used = 0;
  private readonly meta = new Int32Array(SEND_BATCH * RAW_META_STRIDE);
  /** The same memory as meta, for the address bytes. */
  private readonly metaBytes = new Uint8Array(this.meta.buffer);
  private readonly results = new Int32Array(SEND_BATCH);
  private count = 0;
  private readonly dones: (SendDone | undefined)[] = [];
  /** Destinations and sources as given, for error messages only. */
  private readonly dsts: string[] = [];
  private readonly srcs: string[] = [];
  /** Senders to tell at the end of the turn, with their outcome (transmit() happened). */
  private told: (SendDone | undefined)[] = [];
  private outcomes: (TransportError | null)[] = [];
  private flushQueued = false;
  private closed = false;
  private readonly flushNow = (): void => {
    this.flushQueued = false;
    this.flush();
  };

  constructor(
    readonly family: 4 | 6,
    readonly ifname: string,
    protocol: number,
    readonly stats: TransportStats,
    sink: RawBatchSink | null,
  ) {
    this.n = native();
    this.rx = sink ? Buffer.allocUnsafeSlow(RECV_SLOTS * RECV_SLOT_SIZE) : null;
    this.rxMeta = sink ? new Int32Array(RECV_SLOTS * RAW_META_STRIDE) : null;
    const rx = this.rx;
    const rxMeta = this.rxMeta;
    try {
      this.handle = this.n.rawOpen(
        family,
        ifname,
        protocol,
        rx,
        rxMeta,
        sink && rx && rxMeta
          ? (count, errno) => {
              if (this.closed) return;
              this.stats.receiveBatches++;
              if (count > 0) sink.batch(rx, rxMeta, count);
              else if (count === 0) {
                this.stats.receiveErrors++;
                sink.receiveError(this.errnoError('receive', errno, 'recvmmsg()'));
              } else {
                this.stats.receiveErrors++;
                sink.receiveError(this.errnoError('receive', errno, 'poll'));
                this.close();
                sink.closed();
              }
            }
          : null,
        RECV_BUFFER_BYTES,
      );
    } catch (e) {
      throw new TransportError('open', ifname, errorMessage(e), { cause: e });
    }
  }

  get isClosed(): boolean {
    return this.closed;
  }

  membership(op: 'join' | 'leave', what: string, group: Buffer, local: Buffer | null, ifindex: number): void {
    try {
      this.n.rawMembership(this.handle, group, local, ifindex, op === 'join');
    } catch (e) {
      throw new TransportError(op, this.ifname, `${what}: ${errorMessage(e)}`, { cause: e });
    }
  }

  /**
   * Room for a packet of `length` bytes: returns the offset in sendArena to write it at. The
   * packet is queued by the commit that must follow before anything else is reserved.
   */
  reserve(length: number): number {
    if (this.used + length > this.arena.length) this.transmit();
    if (length > this.arena.length) this.arena = Buffer.allocUnsafeSlow(length);
    return this.used;
  }

  get sendArena(): Buffer {
    return this.arena;
  }

  /**
   * Queues the packet written at `offset` (from reserve) to the IPv4 destination `dst`
   * (host-order uint32). `done` hears the outcome when the queue is flushed.
   */
  commit4(
    offset: number,
    length: number,
    dst: number,
    dstText: string,
    srcText: string,
    done?: SendDone,
  ): void {
    const base = this.slot(offset, length, 0);
    const b = this.metaBytes;
    const at = (base + M_DST) * 4;
    b[at] = dst >>> 24;
    b[at + 1] = (dst >>> 16) & 0xff;
    b[at + 2] = (dst >>> 8) & 0xff;
    b[at + 3] = dst & 0xff;
    this.queued(offset + length, dstText, srcText, done);
  }

  /** Queues an IPv6 packet to `dst` from `src` (16 bytes each) out of `ifindex`. */
  commit6(
    offset: number,
    length: number,
    dst: Uint8Array,
    src: Uint8Array,
    ifindex: number,
    dstText: string,
    srcText: string,
    done?: SendDone,
  ): void {
    const base = this.slot(offset, length, ifindex);
    this.meta[base + M_FLAGS] = 0;
    this.metaBytes.set(src, (base + M_SRC) * 4);
    this.metaBytes.set(dst, (base + M_DST) * 4);
    this.queued(offset + length, dstText, srcText, done);
  }

  /**
   * Sends everything queued, then tells each sender of this and earlier transmits. Runs by
   * itself at the end of the turn that queued the first packet; call it to send sooner.
   */
  flush(): void {
    this.transmit();
    const dones = this.told;
    const errors = this.outcomes;
    if (dones.length === 0) return;
    this.told = [];
    this.outcomes = [];
    for (let i = 0; i < dones.length; i++) dones[i]?.(errors[i]);
  }

  /**
   * Sends everything queued now, but tells the senders only at the end of the turn (or the
   * next flush): a sender is never called back while it may still be in the middle of sending.
   */
  transmit(): void {
    const count = this.count;
    if (count === 0) return;
    this.count = 0;
    this.used = 0;
    const dones = this.dones.splice(0, count);
    const dsts = this.dsts.splice(0, count);
    const srcs = this.srcs.splice(0, count);
    const closed = this.closed;
    this.stats.sendBatches++;
    let sent = 0;
    let failed: TransportError | null = null;
    if (!closed) {
      try {
        sent = this.n.rawSend(this.handle, this.arena, this.meta, count, this.results);
      } catch (e) {
        failed = new TransportError('send', this.ifname, errorMessage(e), { cause: e });
      }
    }
    this.stats.sent += sent;
    for (let i = 0; i < count; i++) {
      let err: TransportError | null = null;
      if (closed) err = this.closedError();
      else if (failed !== null) err = failed;
      else if (this.results[i] !== 0)
        err = this.errnoError('send', this.results[i], `${srcs[i]} -> ${dsts[i]}`);
      if (err !== null) this.stats.sendErrors++;
      this.told.push(dones[i]);
      this.outcomes.push(err);
    }
  }

  /** Closes the socket once what is queued has been sent, and tells its senders. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.transmit();
    this.closed = true;
    this.n.rawClose(this.handle);
    this.flush();
  }

  closedError(): TransportError {
    return new TransportError('send', this.ifname, 'socket is closed');
  }

  /** Writes a packet's length, offset and interface; the caller adds its addresses, then queued(). */
  private slot(offset: number, length: number, ifindex: number): number {
    const base = this.count * RAW_META_STRIDE;
    const m = this.meta;
    m[base + M_LENGTH] = length;
    m[base + M_OFFSET] = offset;
    m[base + M_IFINDEX] = ifindex;
    return base;
  }

  /** The packet described at the next slot is complete: queue it. */
  private queued(end: number, dst: string, src: string, done: SendDone | undefined): void {
    this.count++;
    this.used = end;
    this.dones.push(done);
    this.dsts.push(dst);
    this.srcs.push(src);
    if (!this.flushQueued) {
      this.flushQueued = true;
      queueMicrotask(this.flushNow);
    }
    if (this.count === SEND_BATCH) this.transmit();
  }

  private errnoError(op: TransportOp, errno: number, what: string): TransportError {
    return new TransportError(op, this.ifname, `${what}: ${this.n.errnoMessage(errno)}`);
  }
}

/**
 * The wire form of the last address text given, parsed only when the text changes: every group
 * of an interface sends to the same few destinations from the same source, so the sockets' send
 * paths parse per change, not per advertisement (both families; the value is copied when queued).
 */
export class LastParsed<T> {
  private text: string | undefined;
  private value!: T;

  constructor(private readonly parse: (text: string) => T) {}

  get(text: string): T {
    if (text !== this.text) {
      this.value = this.parse(text);
      this.text = text;
    }
    return this.value;
  }
}
