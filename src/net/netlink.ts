// rtnetlink edge: links, IPv4 addresses and carrier notifications of the network namespace
// the process runs in. Requests are a thin promise layer over the `netlink` package (no forking
// of `ip`); notifications arrive through the project's addon (see LinkMonitor).
import { EventEmitter } from 'node:events';
import { isIPv4 } from 'node:net';
import { constants as osConstants } from 'node:os';
import {
  createRtNetlink,
  FlagsNew,
  parseMessages,
  rt,
  type NetlinkMessage,
  type RtNetlinkSocket,
} from 'netlink';
import { native, type NetlinkSubscription } from './native';

export interface LinkInfo {
  index: number;
  name: string;
  /** Hardware address; empty for interfaces without one. */
  mac: Buffer;
  /** IFF_UP: administratively up. */
  up: boolean;
  /** IFF_RUNNING: operationally up (carrier), which is what ucarp checks. */
  running: boolean;
}

export interface Ipv4Address {
  ifname: string;
  index: number;
  address: string;
  prefixlen: number;
}

const AF_INET = 2;
/** A request the kernel never answers (lost ACK) must not hang a failover forever. */
const REQUEST_TIMEOUT_MS = 5000;
/**
 * Requests in flight at once. Pipelining hides the round trip, but every ACK waits in the
 * socket's receive buffer until read, and an overrun there would make the kernel drop ACKs
 * and flag the socket (which the `netlink` package's native code does not survive). A bound
 * keeps a burst far below the default buffer size.
 */
const MAX_IN_FLIGHT = 128;
/** Room for MAX_IN_FLIGHT ACKs with a wide margin (the kernel caps it at net.core.rmem_max × 2). */
const REQUEST_RCVBUF = 1 << 20;
/** Room for a burst of link changes (many VLANs flapping with their parent). */
const MONITOR_RCVBUF = 1 << 20;

function linkInfo(msg: rt.LinkMessage): LinkInfo {
  const flags = msg.data.flags ?? {};
  return {
    index: msg.data.index ?? 0,
    name: msg.attrs.ifname ?? '',
    mac: msg.attrs.address ? Buffer.from(msg.attrs.address) : Buffer.alloc(0),
    up: flags.up === true,
    running: flags.running === true,
  };
}

function ipv4ToBuffer(address: string): Buffer {
  if (!isIPv4(address)) throw new Error(`not an IPv4 address: ${address}`);
  return Buffer.from(address.split('.').map(Number));
}

function checkPrefix(prefixlen: number): void {
  if (!Number.isInteger(prefixlen) || prefixlen < 0 || prefixlen > 32) {
    throw new Error(`bad IPv4 prefix length: ${prefixlen}`);
  }
}

/** The netlink package reports kernel errors as `Error('Request rejected: EEXIST')`. */
function isKernelError(e: unknown, ...codes: string[]): boolean {
  if (!(e instanceof Error)) return false;
  const m = /^Request rejected: (\w+)$/.exec(e.message);
  return m !== null && codes.includes(m[1]);
}

/** Small FIFO semaphore. */
class Limiter {
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly max: number) {}

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.max) await new Promise<void>((r) => this.waiting.push(r));
    this.active++;
    try {
      return await fn();
    } finally {
      this.active--;
      this.waiting.shift()?.();
    }
  }
}

/**
 * rtnetlink in the current network namespace. Calls may run concurrently: changes are
 * pipelined (up to MAX_IN_FLIGHT), which is what makes a 255-address failover fast.
 *
 * Dumps get a socket of their own, one at a time: the kernel refuses a second dump on a socket
 * (EBUSY), and the `netlink` package loses a multi-datagram dump if any other reply (an ACK)
 * arrives between its parts.
 */
export class Rtnl {
  private readonly sock: RtNetlinkSocket;
  private readonly dumpSock: RtNetlinkSocket;
  private readonly limiter = new Limiter(MAX_IN_FLIGHT);
  private readonly dumpLimiter = new Limiter(1);
  /** name → ifindex, refreshed on a miss or when the kernel says the index is gone. */
  private readonly indexes = new Map<string, number>();
  private readonly lookups = new Map<string, Promise<number>>();
  private closed = false;

  constructor() {
    this.sock = createRtNetlink({ recvBufferSize: REQUEST_RCVBUF, sendBufferSize: 0 });
    this.dumpSock = createRtNetlink();
    // Without a listener an asynchronous socket error would crash the process; requests
    // still fail on their own through their timeout.
    this.sock.socket.on('error', () => undefined);
    this.dumpSock.socket.on('error', () => undefined);
  }

  async links(): Promise<LinkInfo[]> {
    const msgs = await this.dump((o) => this.dumpSock.getLinks(undefined, undefined, o));
    const links = msgs.map(linkInfo);
    this.indexes.clear();
    for (const l of links) this.indexes.set(l.name, l.index);
    return links;
  }

  async link(name: string): Promise<LinkInfo | undefined> {
    try {
      const msgs = await this.request((o) => this.sock.getLink({}, { ifname: name }, o));
      const link = msgs.map(linkInfo).find((l) => l.name === name);
      if (link) this.indexes.set(link.name, link.index);
      return link;
    } catch (e) {
      if (isKernelError(e, 'ENODEV')) return undefined;
      throw e;
    }
  }

  async ipv4Addresses(ifname?: string): Promise<Ipv4Address[]> {
    const links = await this.links();
    const names = new Map(links.map((l) => [l.index, l.name]));
    const msgs = await this.dump((o) => this.dumpSock.getAddresses({ family: AF_INET }, undefined, o));
    const out: Ipv4Address[] = [];
    for (const m of msgs) {
      const raw = m.attrs.local ?? m.attrs.address;
      if (m.data.family !== AF_INET || !raw || raw.length !== 4) continue;
      const index = m.data.index ?? 0;
      const name = names.get(index) ?? '';
      if (ifname !== undefined && name !== ifname) continue;
      out.push({ ifname: name, index, address: [...raw].join('.'), prefixlen: m.data.prefixlen ?? 0 });
    }
    return out;
  }

  /** Adds address/prefixlen to ifname; an address already there counts as success. */
  async addAddress(ifname: string, address: string, prefixlen: number): Promise<void> {
    const addr = ipv4ToBuffer(address);
    checkPrefix(prefixlen);
    await this.withIndex(ifname, async (index) => {
      try {
        await this.request((o) =>
          this.sock.newAddress(
            { family: AF_INET, prefixlen, index, scope: 0 },
            { local: addr, address: addr },
            { ...o, flags: FlagsNew.CREATE | FlagsNew.EXCL },
          ),
        );
      } catch (e) {
        if (!isKernelError(e, 'EEXIST')) throw e;
      }
    });
  }

  /** Removes address/prefixlen from ifname; an address already gone counts as success. */
  async delAddress(ifname: string, address: string, prefixlen: number): Promise<void> {
    const addr = ipv4ToBuffer(address);
    checkPrefix(prefixlen);
    await this.withIndex(ifname, async (index) => {
      try {
        await this.request((o) =>
          this.sock.delAddress({ family: AF_INET, prefixlen, index }, { local: addr, address: addr }, o),
        );
      } catch (e) {
        if (!isKernelError(e, 'EADDRNOTAVAIL', 'ENOENT')) throw e;
      }
    });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.sock.socket.close();
    this.dumpSock.socket.close();
  }

  private request<T>(fn: (options: { timeout: number }) => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new Error('rtnetlink socket is closed'));
    return this.limiter.run(() => fn({ timeout: REQUEST_TIMEOUT_MS }));
  }

  private dump<T>(fn: (options: { timeout: number }) => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new Error('rtnetlink socket is closed'));
    return this.dumpLimiter.run(() => fn({ timeout: REQUEST_TIMEOUT_MS }));
  }

  /**
   * Runs fn with the interface's index. A cached index can be stale when the interface was
   * recreated (same name, new index): the kernel then answers ENODEV, and one retry with a
   * fresh lookup settles it.
   */
  private async withIndex(ifname: string, fn: (index: number) => Promise<void>): Promise<void> {
    const cached = this.indexes.get(ifname);
    if (cached !== undefined) {
      try {
        return await fn(cached);
      } catch (e) {
        if (!isKernelError(e, 'ENODEV')) throw e;
        if (this.indexes.get(ifname) === cached) this.indexes.delete(ifname);
      }
    }
    return fn(await this.lookup(ifname));
  }

  /** One kernel lookup per name however many calls wait for it (a burst starts cold). */
  private lookup(ifname: string): Promise<number> {
    let p = this.lookups.get(ifname);
    if (!p) {
      p = this.link(ifname)
        .then((link) => {
          if (!link) throw new Error(`no such interface: ${ifname}`);
          return link.index;
        })
        .finally(() => this.lookups.delete(ifname));
      this.lookups.set(ifname, p);
    }
    return p;
  }
}

export interface LinkMonitorOptions {
  /** Keep the process alive while the monitor runs (default false: a daemon has other handles). */
  ref?: boolean;
  /** SO_RCVBUF in bytes (default 1 MiB; forced past net.core.rmem_max with CAP_NET_ADMIN). */
  recvBufferSize?: number;
}

export interface LinkMonitorEvents {
  /** Every RTM_NEWLINK/RTM_DELLINK; a removed link is reported with up and running false. */
  link: [info: LinkInfo, removed: boolean];
  /**
   * Notifications were lost (receive buffer overrun) and every link was re-read; 'link' events
   * for all of them, and for links that vanished meanwhile, precede this one.
   */
  resync: [links: LinkInfo[]];
  /** Emitted only while someone listens: a monitor must not crash its process. */
  error: [err: Error];
}

/** Legacy bind() group bitmask for RTNLGRP_LINK. */
const RTMGRP_LINK = 1;

/**
 * Link notifications (RTNLGRP_LINK) of the current namespace, so carrier changes arrive as
 * events instead of being polled. Events are not deduplicated: the kernel also notifies on
 * changes unrelated to carrier, and consumers compare against the state they hold.
 *
 * Notifications come through the project's addon rather than the `netlink` package, whose
 * native code aborts the process when a subscribed socket overruns; snapshots use an Rtnl.
 */
export class LinkMonitor extends EventEmitter<LinkMonitorEvents> {
  private sub: NetlinkSubscription | undefined;
  private rtnl: Rtnl | undefined;
  private readonly ref: boolean;
  private readonly recvBufferSize: number;
  /** Last state seen per ifindex, to report links whose removal a lost notification hid. */
  private readonly known = new Map<number, LinkInfo>();
  private resyncing = false;
  private resyncAgain = false;

  constructor(options: LinkMonitorOptions = {}) {
    super();
    this.ref = options.ref ?? false;
    this.recvBufferSize = options.recvBufferSize ?? MONITOR_RCVBUF;
  }

  /**
   * Subscribes, then returns the current links. Subscribing first means no change can fall
   * between the snapshot and the events; notifications queued meanwhile follow as events.
   */
  async start(): Promise<LinkInfo[]> {
    if (this.rtnl) throw new Error('LinkMonitor already started');
    this.rtnl = new Rtnl();
    this.subscribe();
    const links = await this.rtnl.links();
    for (const l of links) if (!this.known.has(l.index)) this.known.set(l.index, l);
    return links;
  }

  close(): void {
    if (this.sub) native().netlinkUnsubscribe(this.sub);
    this.sub = undefined;
    this.rtnl?.close();
    this.rtnl = undefined;
  }

  private subscribe(): void {
    const sub = native().netlinkSubscribe(RTMGRP_LINK, this.recvBufferSize, (data, errno) => {
      if (this.sub !== sub) return;
      if (data) this.onDatagram(data);
      else this.onLoss(errno);
    });
    this.sub = sub;
    if (this.ref) native().netlinkSetRef(sub, true);
  }

  private report(info: LinkInfo, removed: boolean): void {
    if (removed) {
      info.up = false;
      info.running = false;
      this.known.delete(info.index);
    } else {
      this.known.set(info.index, info);
    }
    this.emit('link', info, removed);
  }

  private onDatagram(data: Buffer): void {
    let msgs: NetlinkMessage[];
    try {
      msgs = parseMessages(data);
    } catch (e) {
      this.emitError(e);
      return;
    }
    for (const m of msgs) {
      if (m.type !== rt.MessageType.NEWLINK && m.type !== rt.MessageType.DELLINK) continue;
      let info: LinkInfo;
      try {
        info = linkInfo(rt.parseLinkMessage(m.data));
      } catch (e) {
        this.emitError(e);
        continue;
      }
      this.report(info, m.type === rt.MessageType.DELLINK);
    }
  }

  /**
   * Notifications were dropped: the only way to be right again is to re-read every link and
   * report it as if it had changed. A subscription that failed outright is replaced first.
   */
  private onLoss(errno: number): void {
    const { ENOBUFS, EMSGSIZE } = osConstants.errno;
    if (errno !== ENOBUFS && errno !== EMSGSIZE) {
      this.emitError(new Error(`link notifications failed (errno ${errno}); resubscribing`));
      if (this.sub) native().netlinkUnsubscribe(this.sub);
      this.sub = undefined;
      try {
        this.subscribe();
      } catch (e) {
        this.emitError(e);
        return;
      }
    }
    if (this.resyncing) {
      // Lost more while re-reading: the dump in flight may already be stale.
      this.resyncAgain = true;
      return;
    }
    void this.resync();
  }

  private async resync(): Promise<void> {
    this.resyncing = true;
    try {
      do {
        this.resyncAgain = false;
        if (!this.rtnl) return;
        const links = await this.rtnl.links();
        if (!this.rtnl) return;
        const present = new Set(links.map((l) => l.index));
        for (const [index, old] of [...this.known]) {
          if (!present.has(index)) this.report({ ...old }, true);
        }
        for (const l of links) this.report(l, false);
        this.emit('resync', links);
      } while (this.resyncAgain);
    } catch (e) {
      if (this.rtnl) this.emitError(e);
    } finally {
      this.resyncing = false;
    }
  }

  private emitError(e: unknown): void {
    if (this.listenerCount('error') > 0) this.emit('error', e instanceof Error ? e : new Error(String(e)));
  }
}
