// The IPv6 counterpart of transport.ts: one raw IPv6 socket for next header 112 per interface,
// through the addon (a raw IPv6 socket delivers no IPv6 header, and the hop limit and the
// destination only arrive as ancillary data), read and written in batches (raw-batch.ts). Protocol-neutral: every datagram
// goes to 'packet' with its source, destination, hop limit and interface; the hub parses it.
import { EventEmitter } from 'node:events';
import { IPPROTO_CARP } from '../protocol/carp';
import { Ipv6TextMemo, bytesToIpv6, ipv6ToBytes, isMulticast6 } from './ipv6';
import {
  M_DST,
  M_HOPS,
  M_IFINDEX,
  M_LENGTH,
  M_SRC,
  RAW_META_STRIDE,
  RECV_SLOT_SIZE,
  LastParsed,
  RawBatchSocket,
  TransportError,
  emptyTransportStats,
  type SendDone,
  type TransportStats,
} from './raw-batch';
import { InvalidArgumentError } from '../errors';

export interface Packet6 {
  /**
   * The datagram after the IPv6 header: a view into the socket's receive slots, overwritten by
   * a later batch; copy it to keep it beyond the listener.
   */
  payload: Buffer;
  /** Source and destination in canonical text (docs/protocol.md §21). */
  src: string;
  dst: string;
  hopLimit: number;
  ifindex: number;
}

export interface Interface6SocketEvents {
  packet: [pkt: Packet6];
  receiveError: [err: Error];
  close: [];
}

interface Membership6 {
  refs: number;
  ifindex: number;
  group: Buffer;
}

/**
 * One raw IPv6 socket for protocol 112 bound to one interface, shared by every IPv6 group on
 * it: memberships and local sources are reference-counted as in InterfaceSocket. Sends carry
 * the group's own source in IPV6_PKTINFO; the kernel writes the IPv6 header (hop limit 255 set
 * on the socket). Our own packets are filtered by source, as on the IPv4 path.
 */
export class Interface6Socket extends EventEmitter<Interface6SocketEvents> {
  readonly stats: TransportStats = emptyTransportStats();
  private readonly memberships = new Map<string, Membership6>();
  private readonly localSources = new Map<string, number>();
  private readonly sock: RawBatchSocket;
  private readonly srcText = new Ipv6TextMemo();
  private readonly dstText = new Ipv6TextMemo();
  private readonly dstBytes = new LastParsed(ipv6ToBytes);
  private readonly srcBytes = new LastParsed(ipv6ToBytes);
  private closed = false;

  private constructor(
    readonly ifname: string,
    protocol: number,
  ) {
    super();
    this.sock = new RawBatchSocket(6, ifname, protocol, this.stats, {
      batch: (rx, meta, count) => this.onBatch(rx, meta, count),
      receiveError: (err) => this.emit('receiveError', err),
      closed: () => this.markClosed(),
    });
  }

  /** Opens the socket; a TransportError (op 'open') when the interface or IPv6 is missing. */
  static open(ifname: string, protocol = IPPROTO_CARP): Interface6Socket {
    return new Interface6Socket(ifname, protocol);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  get joinedGroups(): string[] {
    return [...this.memberships.keys()];
  }

  /** Adds one user of multicast `group` on `ifindex`; only the first joins in the kernel. */
  join(group: string, ifindex: number): void {
    if (!isMulticast6(group)) throw new InvalidArgumentError(`not an IPv6 multicast group: ${group}`);
    if (!Number.isInteger(ifindex) || ifindex <= 0) throw new InvalidArgumentError(`bad ifindex: ${ifindex}`);
    if (this.closed) throw new TransportError('join', this.ifname, 'socket is closed');
    const key = bytesToIpv6(ipv6ToBytes(group));
    const m = this.memberships.get(key);
    if (m) {
      m.refs++;
      return;
    }
    const g = ipv6ToBytes(group);
    this.sock.membership('join', `IPV6_JOIN_GROUP ${group}`, g, null, ifindex);
    this.memberships.set(key, { refs: 1, ifindex, group: g });
  }

  leave(group: string): void {
    if (this.closed) return;
    const key = bytesToIpv6(ipv6ToBytes(group));
    const m = this.memberships.get(key);
    if (!m) throw new InvalidArgumentError(`${group} is not joined on ${this.ifname}`);
    if (--m.refs > 0) return;
    this.memberships.delete(key);
    this.sock.membership('leave', `IPV6_LEAVE_GROUP ${group}`, m.group, null, m.ifindex);
  }

  addLocalSource(addr: string): void {
    const a = bytesToIpv6(ipv6ToBytes(addr));
    this.localSources.set(a, (this.localSources.get(a) ?? 0) + 1);
  }

  removeLocalSource(addr: string): void {
    const a = bytesToIpv6(ipv6ToBytes(addr));
    const n = this.localSources.get(a);
    if (n === undefined) throw new InvalidArgumentError(`${addr} is not a local source on ${this.ifname}`);
    if (n > 1) this.localSources.set(a, n - 1);
    else this.localSources.delete(a);
  }

  /** Sends `payload` from `src` to `dst` out of `ifindex`, now; synchronous, throws on refusal. */
  send(payload: Buffer, dst: string, src: string, ifindex: number): void {
    const outcome: { err: TransportError | null } = { err: null };
    this.queue(payload, dst, src, ifindex, (err) => (outcome.err = err));
    this.sock.flush();
    if (outcome.err) throw outcome.err;
  }

  /** Queues `payload` for the end of the turn's sendmmsg() (see InterfaceSocket.queue). */
  queue(payload: Buffer, dst: string, src: string, ifindex: number, done?: SendDone): void {
    const d = this.dstBytes.get(dst);
    const s = this.srcBytes.get(src);
    if (this.closed) {
      this.stats.sendErrors++;
      throw this.sock.closedError();
    }
    const at = this.sock.reserve(payload.length);
    this.sock.sendArena.set(payload, at);
    this.sock.commit6(at, payload.length, d, s, ifindex, dst, src, done);
  }

  flush(): void {
    this.sock.flush();
  }

  /** Sends what is queued now; the senders hear at the end of the turn (RawBatchSocket.transmit). */
  transmit(): void {
    this.sock.transmit();
  }

  close(): void {
    if (this.closed) return;
    this.sock.close();
    this.markClosed();
  }

  private markClosed(): void {
    if (this.closed) return;
    this.closed = true;
    this.memberships.clear();
    this.emit('close');
  }

  /** One recvmmsg()'s datagrams, in order; a listener may close the socket half-way. */
  private onBatch(rx: Buffer, meta: Int32Array, count: number): void {
    const bytes = Buffer.from(meta.buffer, meta.byteOffset, meta.byteLength);
    for (let i = 0; i < count && !this.closed; i++) {
      const m = i * RAW_META_STRIDE;
      const source = this.srcText.read(bytes, (m + M_SRC) * 4);
      if (this.localSources.size !== 0 && this.localSources.has(source)) {
        this.stats.droppedOwn++;
        continue;
      }
      this.stats.received++;
      const at = i * RECV_SLOT_SIZE;
      this.emit('packet', {
        payload: rx.subarray(at, at + meta[m + M_LENGTH]),
        src: source,
        dst: this.dstText.read(bytes, (m + M_DST) * 4),
        hopLimit: meta[m + M_HOPS],
        ifindex: meta[m + M_IFINDEX],
      });
    }
  }
}
