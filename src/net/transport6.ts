// The IPv6 counterpart of transport.ts: one raw IPv6 socket for next header 112 per interface,
// through the addon (a raw IPv6 socket delivers no IPv6 header, and the hop limit and the
// destination only arrive as ancillary data of recvmsg()). Protocol-neutral: every datagram
// goes to 'packet' with its source, destination, hop limit and interface; the hub parses it.
import { EventEmitter } from 'node:events';
import { errorMessage } from '../errors';
import { native, type Raw6Socket, type UcarpNative } from '../native';
import { IPPROTO_CARP } from '../protocol/carp';
import { bytesToIpv6, ipv6ToBytes, isMulticast6 } from './ipv6';
import { TransportError, emptyTransportStats, type TransportStats } from './transport';

export interface Packet6 {
  /** The datagram after the IPv6 header (a fresh copy: keep it if needed). */
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
  private closed = false;

  private constructor(
    readonly ifname: string,
    private readonly n: UcarpNative,
    private readonly sock: Raw6Socket,
  ) {
    super();
  }

  /** Opens the socket; a TransportError (op 'open') when the interface or IPv6 is missing. */
  static open(ifname: string, protocol = IPPROTO_CARP): Interface6Socket {
    const n = native();
    // The listener exists before the socket it listens to: it reaches the wrapper through this box.
    const box: { self?: Interface6Socket } = {};
    let sock: Raw6Socket;
    try {
      sock = n.raw6Open(ifname, protocol, (payload, src, dst, hopLimit, ifindex, errno) =>
        box.self?.onDatagram(payload, src, dst, hopLimit, ifindex, errno),
      );
    } catch (e) {
      throw new TransportError('open', ifname, errorMessage(e), { cause: e });
    }
    box.self = new Interface6Socket(ifname, n, sock);
    return box.self;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  get joinedGroups(): string[] {
    return [...this.memberships.keys()];
  }

  /** Adds one user of multicast `group` on `ifindex`; only the first joins in the kernel. */
  join(group: string, ifindex: number): void {
    if (!isMulticast6(group)) throw new RangeError(`not an IPv6 multicast group: ${group}`);
    if (!Number.isInteger(ifindex) || ifindex <= 0) throw new RangeError(`bad ifindex: ${ifindex}`);
    if (this.closed) throw new TransportError('join', this.ifname, 'socket is closed');
    const key = bytesToIpv6(ipv6ToBytes(group));
    const m = this.memberships.get(key);
    if (m) {
      m.refs++;
      return;
    }
    const g = ipv6ToBytes(group);
    try {
      this.n.raw6Membership(this.sock, g, ifindex, true);
    } catch (e) {
      throw new TransportError('join', this.ifname, `IPV6_JOIN_GROUP ${group}: ${errorMessage(e)}`, {
        cause: e,
      });
    }
    this.memberships.set(key, { refs: 1, ifindex, group: g });
  }

  leave(group: string): void {
    if (this.closed) return;
    const key = bytesToIpv6(ipv6ToBytes(group));
    const m = this.memberships.get(key);
    if (!m) throw new RangeError(`${group} is not joined on ${this.ifname}`);
    if (--m.refs > 0) return;
    this.memberships.delete(key);
    try {
      this.n.raw6Membership(this.sock, m.group, m.ifindex, false);
    } catch (e) {
      throw new TransportError('leave', this.ifname, `IPV6_LEAVE_GROUP ${group}: ${errorMessage(e)}`, {
        cause: e,
      });
    }
  }

  addLocalSource(addr: string): void {
    const a = bytesToIpv6(ipv6ToBytes(addr));
    this.localSources.set(a, (this.localSources.get(a) ?? 0) + 1);
  }

  removeLocalSource(addr: string): void {
    const a = bytesToIpv6(ipv6ToBytes(addr));
    const n = this.localSources.get(a);
    if (n === undefined) throw new RangeError(`${addr} is not a local source on ${this.ifname}`);
    if (n > 1) this.localSources.set(a, n - 1);
    else this.localSources.delete(a);
  }

  /** Sends `payload` from `src` to `dst` out of `ifindex`; synchronous, throws on refusal. */
  send(payload: Buffer, dst: string, src: string, ifindex: number): void {
    if (this.closed) {
      this.stats.sendErrors++;
      throw new TransportError('send', this.ifname, 'socket is closed');
    }
    try {
      this.n.raw6Send(this.sock, payload, ipv6ToBytes(dst), ipv6ToBytes(src), ifindex);
    } catch (e) {
      this.stats.sendErrors++;
      throw new TransportError('send', this.ifname, `${src} -> ${dst}: ${errorMessage(e)}`, { cause: e });
    }
    this.stats.sent++;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.n.raw6Close(this.sock);
    this.memberships.clear();
    this.emit('close');
  }

  private onDatagram(
    payload: Buffer | null,
    src: Buffer | null,
    dst: Buffer | null,
    hopLimit: number,
    ifindex: number,
    errno: number,
  ): void {
    if (this.closed) return;
    if (payload === null || src === null || dst === null) {
      this.stats.receiveErrors++;
      this.emit(
        'receiveError',
        new TransportError('receive', this.ifname, `recvmsg() failed: errno ${errno}`),
      );
      return;
    }
    const source = bytesToIpv6(src);
    if (this.localSources.size !== 0 && this.localSources.has(source)) {
      this.stats.droppedOwn++;
      return;
    }
    this.stats.received++;
    this.emit('packet', { payload, src: source, dst: bytesToIpv6(dst), hopLimit, ifindex });
  }
}
