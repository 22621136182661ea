// Raw-socket transport for CARP advertisements (IP protocol 112): one socket per interface,
// shared by every CARP group on that interface (docs/architecture.md, "The edges"), writing
// the IPv4 header ucarp sends (docs/protocol.md §2). No CARP parsing here.
import { EventEmitter } from 'node:events';
import { errorMessage } from '../errors';
import { endianness } from 'node:os';
import {
  IPPROTO_CARP,
  IPV4_MIN_HEADER_LEN,
  buildIpv4Header,
  intToIpv4,
  ipSrc,
  ipv4ToInt,
  isMulticast,
} from './ipv4';

// Linux socket option numbers (<asm-generic/socket.h>, <linux/in.h>). raw-socket exports only
// some of them, so all are spelled out here for one consistent source.
const SOL_SOCKET = 1;
const SO_BROADCAST = 6;
const SO_BINDTODEVICE = 25;
const IPPROTO_IP = 0;
const IP_HDRINCL = 3;
const IP_MULTICAST_LOOP = 34;
const IP_ADD_MEMBERSHIP = 35;
const IP_DROP_MEMBERSHIP = 36;
const IP_MULTICAST_ALL = 49;
const IFNAMSIZ = 16;
const IP_MREQN_LEN = 12;
const MAX_PAYLOAD = 0xffff - IPV4_MIN_HEADER_LEN;

/** The slice of raw-socket's API used here (the package ships no type declarations). */
interface RawSocket extends EventEmitter {
  /** The native handle; its send() is a synchronous sendto() that throws on failure. */
  wrap: {
    send(buf: Buffer, offset: number, length: number, address: string, cb: (bytes: number) => void): void;
  };
  setOption(level: number, option: number, value: number): void;
  setOption(level: number, option: number, value: Buffer, length: number): void;
  close(): RawSocket;
}

interface RawSocketModule {
  createSocket(opts: { protocol: number; addressFamily?: number; bufferSize?: number }): RawSocket;
  AddressFamily: { IPv4: number };
}

const raw = require('raw-socket') as RawSocketModule;

/**
 * raw-socket's native wrap is only weakly held: once nothing references it, a garbage
 * collection destroys it and silently closes the descriptor. Holding every open socket here
 * makes the lifetime explicit, as with Node's own sockets: open until close(), whoever keeps a
 * reference.
 */
const openSockets = new Set<InterfaceSocket>();

export type TransportOp = 'open' | 'send' | 'join' | 'leave' | 'receive';

/**
 * A failure of a socket operation: the kernel refused it, or the socket is closed. Argument
 * mistakes (not an address, not a multicast group, leave without join) are TypeError or
 * RangeError instead, because they are bugs rather than conditions to count.
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

export function emptyTransportStats(): TransportStats {
  return { received: 0, droppedOwn: 0, droppedShort: 0, receiveErrors: 0, sent: 0, sendErrors: 0 };
}

export interface TransportStats {
  /** Packets delivered to 'packet' listeners. */
  received: number;
  /** Dropped because their IP source is one of our local sources (ucarp check 1). */
  droppedOwn: number;
  /** Dropped because shorter than an IPv4 header. */
  droppedShort: number;
  receiveErrors: number;
  sent: number;
  sendErrors: number;
}

export interface InterfaceSocketEvents {
  /**
   * `buf` starts with the IPv4 header. It is a view into the socket's one receive buffer and is
   * overwritten by the next packet: use or copy it before the listener returns. `src` is the
   * IP source as raw-socket already formats it for recvfrom(); `ipSrc(buf)` gives the uint32.
   */
  packet: [buf: Buffer, src: string];
  /** A failed recvfrom(); the socket stays open. */
  receiveError: [err: Error];
  /** The socket was closed, by close() or because its poll handle failed. */
  close: [];
}

interface Membership {
  refs: number;
  ifindex: number;
  /** The struct ip_mreqn given to IP_ADD_MEMBERSHIP, kept for the matching drop. */
  mreqn: Buffer;
}

function ipMreqn(group: number, local: number, ifindex: number): Buffer {
  const b = Buffer.alloc(IP_MREQN_LEN);
  b.writeUInt32BE(group, 0);
  b.writeUInt32BE(local, 4);
  // imr_ifindex is a plain C int, in host byte order unlike the addresses.
  if (endianness() === 'LE') b.writeInt32LE(ifindex, 8);
  else b.writeInt32BE(ifindex, 8);
  return b;
}

/** raw-socket's native send calls back synchronously; InterfaceSocket.send reports by throwing instead. */
const ignoreSendResult = (): undefined => undefined;

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
 * The receive path allocates nothing beyond raw-socket's own per-packet Buffer view and source
 * string: the own-source check compares a uint32 read from the header with a Map key.
 *
 * Like a Node socket, an open InterfaceSocket keeps the process alive until close().
 */
export class InterfaceSocket extends EventEmitter<InterfaceSocketEvents> {
  readonly stats: TransportStats = emptyTransportStats();
  private readonly memberships = new Map<number, Membership>();
  /** uint32 source address -> number of users. */
  private readonly localSources = new Map<number, number>();
  /** Reused for every send: sendto() copies it into the kernel before returning. */
  private scratch = Buffer.alloc(IPV4_MIN_HEADER_LEN + 64);
  private closed = false;

  private constructor(
    readonly ifname: string,
    private readonly sock: RawSocket,
  ) {
    super();
    sock.on('message', (buf: Buffer, src: string) => this.onMessage(buf, src));
    // raw-socket emits 'error' both for a failed recvfrom() (socket still open) and for a failed
    // poll handle (it then closes the socket, and 'close' follows).
    sock.on('error', (err: Error) => {
      this.stats.receiveErrors++;
      this.emit('receiveError', err);
    });
    sock.on('close', () => this.markClosed());
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
      throw new RangeError(`bad interface name: ${JSON.stringify(ifname)}`);
    }
    let sock: RawSocket;
    try {
      sock = raw.createSocket({ protocol: IPPROTO_CARP, addressFamily: raw.AddressFamily.IPv4 });
    } catch (e) {
      throw new TransportError('open', ifname, `socket(): ${errorMessage(e)}`, { cause: e });
    }
    const options: [string, () => void][] = [
      ['SO_BINDTODEVICE', () => sock.setOption(SOL_SOCKET, SO_BINDTODEVICE, name, name.length)],
      ['IP_HDRINCL', () => sock.setOption(IPPROTO_IP, IP_HDRINCL, 1)],
      // Our multicasts must not come back to any local socket (ucarp disables the loop too);
      // broadcasts are looped regardless, which is what the local-source filter is for.
      ['IP_MULTICAST_LOOP', () => sock.setOption(IPPROTO_IP, IP_MULTICAST_LOOP, 0)],
      // By default Linux hands a raw socket every multicast group any socket of the host joined
      // on the interface; with 0 it gets only the groups joined through join() here.
      ['IP_MULTICAST_ALL', () => sock.setOption(IPPROTO_IP, IP_MULTICAST_ALL, 0)],
      // --nomcast sends to 255.255.255.255, which the kernel refuses (EACCES) without it.
      ['SO_BROADCAST', () => sock.setOption(SOL_SOCKET, SO_BROADCAST, 1)],
    ];
    for (const [what, set] of options) {
      try {
        set();
      } catch (e) {
        sock.close();
        throw new TransportError('open', ifname, `${what}: ${errorMessage(e)}`, { cause: e });
      }
    }
    return new InterfaceSocket(ifname, sock);
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
    const local = ipv4ToInt(localAddr);
    if (!isMulticast(g)) throw new RangeError(`not a multicast group: ${group}`);
    if (!Number.isInteger(ifindex) || ifindex <= 0 || ifindex > 0x7fffffff) {
      throw new RangeError(`bad ifindex: ${ifindex}`);
    }
    this.assertOpen('join');
    const m = this.memberships.get(g);
    if (m) {
      if (m.ifindex !== ifindex) {
        throw new RangeError(
          `${group} already joined on ifindex ${m.ifindex}, not ${ifindex} (${this.ifname})`,
        );
      }
      m.refs++;
      return;
    }
    const mreqn = ipMreqn(g, local, ifindex);
    try {
      this.sock.setOption(IPPROTO_IP, IP_ADD_MEMBERSHIP, mreqn, mreqn.length);
    } catch (e) {
      throw new TransportError('join', this.ifname, `IP_ADD_MEMBERSHIP ${group}: ${errorMessage(e)}`, {
        cause: e,
      });
    }
    this.memberships.set(g, { refs: 1, ifindex, mreqn });
  }

  /**
   * Removes one user of `group`; the last one drops the kernel membership. After close() it
   * does nothing (closing released every membership). Leaving a group never joined is a
   * RangeError.
   */
  leave(group: string): void {
    const g = ipv4ToInt(group);
    if (this.closed) return;
    const m = this.memberships.get(g);
    if (!m) throw new RangeError(`${group} is not joined on ${this.ifname}`);
    if (--m.refs > 0) return;
    // Forget it first: if the drop fails (the interface vanished, taking the membership with
    // it), a later join must start afresh.
    this.memberships.delete(g);
    try {
      this.sock.setOption(IPPROTO_IP, IP_DROP_MEMBERSHIP, m.mreqn, m.mreqn.length);
    } catch (e) {
      throw new TransportError('leave', this.ifname, `IP_DROP_MEMBERSHIP ${group}: ${errorMessage(e)}`, {
        cause: e,
      });
    }
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
    if (n === undefined) throw new RangeError(`${addr} is not a local source on ${this.ifname}`);
    if (n > 1) this.localSources.set(a, n - 1);
    else this.localSources.delete(a);
  }

  /**
   * Sends `payload` (the CARP header) in an IPv4 packet from `src` to `dst` (a multicast group,
   * 255.255.255.255 or a unicast peer) out of this interface. Synchronous: returns once the
   * kernel took the packet. A refusal (interface down, no buffer space, socket closed…) throws
   * a TransportError with op 'send' and counts in stats.sendErrors; the socket stays usable.
   */
  send(payload: Uint8Array, dst: string, src: string): void {
    const d = ipv4ToInt(dst);
    const s = ipv4ToInt(src);
    if (payload.length > MAX_PAYLOAD) throw new RangeError(`payload too long: ${payload.length}`);
    if (this.closed) {
      this.stats.sendErrors++;
      throw new TransportError('send', this.ifname, 'socket is closed');
    }
    const total = IPV4_MIN_HEADER_LEN + payload.length;
    if (this.scratch.length < total) this.scratch = Buffer.alloc(total);
    buildIpv4Header({ src: s, dst: d, payloadLength: payload.length }, this.scratch, 0);
    this.scratch.set(payload, IPV4_MIN_HEADER_LEN);
    try {
      // Not raw-socket's Socket.send(): that one queues the request until the poll handle
      // reports the socket writable and reports the outcome later, while the engine counts
      // failed sends in a row and needs the outcome now. The native send is the same sendto().
      this.sock.wrap.send(this.scratch, 0, total, dst, ignoreSendResult);
    } catch (e) {
      this.stats.sendErrors++;
      throw new TransportError('send', this.ifname, `${src} -> ${dst}: ${errorMessage(e)}`, { cause: e });
    }
    this.stats.sent++;
  }

  /**
   * Closes the socket; the kernel releases its memberships with it (ip_mc_drop_socket), so
   * nothing is left joined and no handle keeps the event loop alive. Idempotent.
   */
  close(): void {
    if (this.closed) return;
    this.sock.close();
    // raw-socket emits 'close' synchronously from close(); this covers a future async one.
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

  private onMessage(buf: Buffer, src: string): void {
    if (buf.length < IPV4_MIN_HEADER_LEN) {
      this.stats.droppedShort++;
      return;
    }
    if (this.localSources.size !== 0 && this.localSources.has(ipSrc(buf))) {
      this.stats.droppedOwn++;
      return;
    }
    this.stats.received++;
    this.emit('packet', buf, src);
  }
}
