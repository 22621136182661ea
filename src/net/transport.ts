// Raw-socket transport for CARP advertisements (IP protocol 112): one socket per interface,
// shared by every CARP group on that interface (docs/architecture.md, "The edges"), writing
// the IPv4 header ucarp sends (docs/protocol.md §2). Read and written in batches through the
// addon (raw-batch.ts). No CARP parsing here.
import { EventEmitter } from 'node:events';
import {
  IPPROTO_CARP,
  IPV4_MIN_HEADER_LEN,
  buildIpv4Header,
  intToIpv4,
  ipv4ToBytes,
  ipv4ToInt,
  isMulticast,
} from './ipv4';
import {
  M_LENGTH,
  RAW_META_STRIDE,
  RECV_SLOT_SIZE,
  LastParsed,
  RawBatchSocket,
  TransportError,
  emptyTransportStats,
  type SendDone,
  type TransportOp,
  type TransportStats,
} from './raw-batch';

import { InvalidArgumentError } from '../errors';

const IFNAMSIZ = 16;
const MAX_PAYLOAD = 0xffff - IPV4_MIN_HEADER_LEN;

/**
 * The addon's handle is only held by this object: once nothing references it, a garbage
 * collection would close the descriptor. Holding every open socket here makes the lifetime
 * explicit, as with Node's own sockets: open until close(), whoever keeps a reference.
 */
const openSockets = new Set<InterfaceSocket>();

export interface InterfaceSocketEvents {
  /**
   * `buf` starts with the IPv4 header. It is a view into the socket's receive slots and is
   * overwritten by a later batch: use or copy it before the listener returns. `ipSrc(buf)`
   * gives the source as a uint32.
   */
  packet: [buf: Buffer];
  /** A failed receive; the socket stays open. */
  receiveError: [err: Error];
  /** The socket was closed, by close() or because its poll handle failed. */
  close: [];
}

interface Membership {
  refs: number;
  ifindex: number;
  group: Buffer;
  local: Buffer;
}

/**
 * One raw IPv4 socket for protocol 112 bound to one interface. Every CARP group on the
 * interface shares it: multicast memberships and local source addresses are reference-counted
 * so that each group adds and removes its own without disturbing the others.
 *
 * Sending uses IP_HDRINCL: each call writes its own IPv4 header (TTL 255, TOS 0x10, DF, the
 * given source), which is what ucarp puts on the wire, and lets groups with different source
 * addresses share the socket without per-send setsockopt(). Linux fills the id and recomputes
 * the checksum and total length; SO_BINDTODEVICE picks the outgoing interface.
 *
 * Receiving, one wake-up drains the socket with recvmmsg() and this object walks the batch: a
 * packet costs a Buffer view of its slot, the own-source check a uint32 read from the header
 * looked up in a Map. Sending, queue() copies the packet into the socket's send arena and the
 * turn's packets leave through sendmmsg(), 64 at a time (raw-batch.ts).
 *
 * Like a Node socket, an open InterfaceSocket keeps the process alive until close().
 */
export class InterfaceSocket extends EventEmitter<InterfaceSocketEvents> {
  readonly stats: TransportStats = emptyTransportStats();
  private readonly memberships = new Map<number, Membership>();
  /** uint32 source address -> number of users. */
  private readonly localSources = new Map<number, number>();
  private readonly sock: RawBatchSocket;
  private closed = false;
  private readonly dstInt = new LastParsed(ipv4ToInt);
  private readonly srcInt = new LastParsed(ipv4ToInt);

  private constructor(readonly ifname: string) {
    super();
    this.sock = new RawBatchSocket(4, ifname, IPPROTO_CARP, this.stats, {
      batch: (rx, meta, count) => this.onBatch(rx, meta, count),
      receiveError: (err) => this.emit('receiveError', err),
      closed: () => this.markClosed(),
    });
    openSockets.add(this);
  }

  /**
   * Opens the socket for `ifname`. Needs CAP_NET_RAW; fails with a TransportError (op 'open')
   * when the interface does not exist or an option is refused. Each call opens a new socket:
   * the caller keeps one per interface.
   */
  static open(ifname: string): InterfaceSocket {
    const name = Buffer.from(ifname, 'utf8');
    if (name.length === 0 || name.length >= IFNAMSIZ || name.includes(0)) {
      throw new InvalidArgumentError(`bad interface name: ${JSON.stringify(ifname)}`);
    }
    return new InterfaceSocket(ifname);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Groups with a kernel membership on this socket, as dotted quads. */
  get joinedGroups(): string[] {
    return [...this.memberships.keys()].map(intToIpv4);
  }

  /**
   * Adds one user of multicast `group`; only the first one makes the kernel membership
   * (IP_ADD_MEMBERSHIP with an ip_mreqn of `localAddr` and `ifindex`). Later users must give
   * the same ifindex; their localAddr is not used, the kernel membership being per group.
   */
  join(group: string, localAddr: string, ifindex: number): void {
    const g = ipv4ToInt(group);
    ipv4ToInt(localAddr); // an InvalidArgumentError when it is not an address
    if (!isMulticast(g)) throw new InvalidArgumentError(`not a multicast group: ${group}`);
    if (!Number.isInteger(ifindex) || ifindex <= 0 || ifindex > 0x7fffffff) {
      throw new InvalidArgumentError(`bad ifindex: ${ifindex}`);
    }
    this.assertOpen('join');
    const m = this.memberships.get(g);
    if (m) {
      if (m.ifindex !== ifindex) {
        throw new InvalidArgumentError(
          `${group} already joined on ifindex ${m.ifindex}, not ${ifindex} (${this.ifname})`,
        );
      }
      m.refs++;
      return;
    }
    const m2 = { refs: 1, ifindex, group: ipv4ToBytes(group), local: ipv4ToBytes(localAddr) };
    this.sock.membership('join', `IP_ADD_MEMBERSHIP ${group}`, m2.group, m2.local, ifindex);
    this.memberships.set(g, m2);
  }

  /**
   * Removes one user of `group`; the last one drops the kernel membership. After close() it
   * does nothing (closing released every membership). Leaving a group never joined is an
   * InvalidArgumentError.
   */
  leave(group: string): void {
    const g = ipv4ToInt(group);
    if (this.closed) return;
    const m = this.memberships.get(g);
    if (!m) throw new InvalidArgumentError(`${group} is not joined on ${this.ifname}`);
    if (--m.refs > 0) return;
    // Forget it first: if the drop fails (the interface vanished, taking the membership with
    // it), a later join must start afresh.
    this.memberships.delete(g);
    this.sock.membership('leave', `IP_DROP_MEMBERSHIP ${group}`, m.group, m.local, m.ifindex);
  }

  /** Adds one user of local source `addr`: packets from it are never delivered. */
  addLocalSource(addr: string): void {
    const a = ipv4ToInt(addr);
    this.localSources.set(a, (this.localSources.get(a) ?? 0) + 1);
  }

  /** Removes one user of `addr`; packets from it are delivered again once none is left. */
  removeLocalSource(addr: string): void {
    const a = ipv4ToInt(addr);
    const n = this.localSources.get(a);
    if (n === undefined) throw new InvalidArgumentError(`${addr} is not a local source on ${this.ifname}`);
    if (n > 1) this.localSources.set(a, n - 1);
    else this.localSources.delete(a);
  }

  /**
   * Sends `payload` (the CARP header) in an IPv4 packet from `src` to `dst` (a multicast group,
   * 255.255.255.255 or a unicast peer) out of this interface, now, after anything queued.
   * Synchronous: returns once the kernel took the packet. A refusal (interface down, no buffer
   * space, socket closed…) throws a TransportError with op 'send' and counts in
   * stats.sendErrors; the socket stays usable.
   */
  send(payload: Uint8Array, dst: string, src: string): void {
    const outcome: { err: TransportError | null } = { err: null };
    this.queue(payload, dst, src, (err) => (outcome.err = err));
    this.sock.flush();
    if (outcome.err) throw outcome.err;
  }

  /**
   * Like send(), but the packet waits in the send arena until 64 are queued or the current
   * turn ends (or a flush()), and leaves with the others queued meanwhile in one sendmmsg();
   * `done` hears the outcome at the end of the turn. On a closed socket it throws at once.
   */
  queue(payload: Uint8Array, dst: string, src: string, done?: SendDone): void {
    const d = this.dstInt.get(dst);
    const s = this.srcInt.get(src);
    if (payload.length > MAX_PAYLOAD) throw new InvalidArgumentError(`payload too long: ${payload.length}`);
    if (this.closed) {
      this.stats.sendErrors++;
      throw this.sock.closedError();
    }
    const total = IPV4_MIN_HEADER_LEN + payload.length;
    const at = this.sock.reserve(total);
    const arena = this.sock.sendArena;
    buildIpv4Header({ src: s, dst: d, payloadLength: payload.length }, arena, at);
    arena.set(payload, at + IPV4_MIN_HEADER_LEN);
    this.sock.commit4(at, total, d, dst, src, done);
  }

  /** Sends what is queued now rather than at the end of the turn. */
  flush(): void {
    this.sock.flush();
  }

  /** Sends what is queued now; the senders hear at the end of the turn (RawBatchSocket.transmit). */
  transmit(): void {
    this.sock.transmit();
  }

  /**
   * Closes the socket; the kernel releases its memberships with it (ip_mc_drop_socket), so
   * nothing is left joined and no handle keeps the event loop alive. What was still queued
   * fails. Idempotent.
   */
  close(): void {
    if (this.closed) return;
    this.sock.close();
    this.markClosed();
  }

  private markClosed(): void {
    if (this.closed) return;
    this.closed = true;
    openSockets.delete(this);
    this.memberships.clear();
    this.emit('close');
  }

  private assertOpen(op: TransportOp): void {
    if (this.closed) throw new TransportError(op, this.ifname, 'socket is closed');
  }

  /** One recvmmsg()'s packets, in order; a listener may close the socket half-way. */
  private onBatch(rx: Buffer, meta: Int32Array, count: number): void {
    for (let i = 0; i < count && !this.closed; i++) {
      const length = meta[i * RAW_META_STRIDE + M_LENGTH];
      const at = i * RECV_SLOT_SIZE;
      if (length < IPV4_MIN_HEADER_LEN) {
        this.stats.droppedShort++;
        continue;
      }
      if (this.localSources.size !== 0 && this.localSources.has(rx.readUInt32BE(at + 12))) {
        this.stats.droppedOwn++;
        continue;
      }
      this.stats.received++;
      this.emit('packet', rx.subarray(at, at + length));
    }
  }
}
