// rtnetlink requests: links and IPv4 addresses of the network namespace the process runs in,
// as a thin promise layer over the `netlink` package (no forking of `ip`). Notifications are
// net/link-monitor.ts's job.
import { ipv4ToBytes } from './ipv4';
import { bytesToIpv6, familyOf, ipv6ToBytes } from './ipv6';
import { constants as osConstants } from 'node:os';
import { AttrStream, createRtNetlink, FlagsNew, parseMessages, rt, type RtNetlinkSocket } from 'netlink';
import { NetlinkBatch } from './netlink-batch';
import { native, type NetlinkSubscription } from '../native';
import { ClosedError, InterfaceNotFoundError, InvalidArgumentError, KernelError } from '../errors';

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

/** An address of either family; IPv6 ones in canonical text. */
export interface IpAddress extends Ipv4Address {
  family: 4 | 6;
  /** IPv6 only: duplicate address detection has not finished; the kernel will not send from it. */
  tentative: boolean;
}

const AF_INET = 2;
const AF_INET6 = 10;

/** One RTM_NEWADDR/RTM_DELADDR message as an address; undefined for other families. */
export function addressOf(m: rt.AddressMessage): Omit<IpAddress, 'ifname'> | undefined {
  const raw = m.attrs.local ?? m.attrs.address;
  const base = { index: m.data.index ?? 0, prefixlen: m.data.prefixlen ?? 0 };
  if (m.data.family === AF_INET && raw?.length === 4)
    return { ...base, family: 4, address: [...raw].join('.'), tentative: false };
  if (m.data.family !== AF_INET6 || raw?.length !== 16) return undefined;
  // The 8-bit ifaddrmsg flags, and IFA_FLAGS (32 bits) where the kernel sends them.
  const tentative = m.data.flags?.tentative === true || m.attrs.flags?.tentative === true;
  return { ...base, family: 6, address: bytesToIpv6(raw), tentative };
}

/** Nested in IFLA_AF_SPEC's AF_INET entry: the interface's IPv4 devconf values. */
const IFLA_INET_CONF = 1;
/** Index of promote_secondaries in that devconf array (linux/ip.h). */
const IPV4_DEVCONF_PROMOTE_SECONDARIES = 20;
/** A request the kernel never answers (lost ACK) must not hang a failover forever. */
const REQUEST_TIMEOUT_MS = 5000;
/**
 * Requests in flight at once. Pipelining hides the round trip, but every ACK waits in the
 * socket's receive buffer until read, and an overrun there would make the kernel drop ACKs
 * and flag the socket (which the `netlink` package's native code does not survive). A bound
 * keeps a burst far below the default buffer size.
 */
const MAX_IN_FLIGHT = 128;
/** Address changes per datagram: a mass takeover's additions go out a batch at a time. */
const MAX_PER_DATAGRAM = 64;
/**
 * Address changes sent and not yet settled. Only failures and each datagram's last message
 * are answered, so the receive buffer holds at most this many answers (≈ 1.2 KB each with the
 * echoed request): 300 KB, within the 416 KB a default net.core.rmem_max allows. A burst past
 * it does not wait: the kernel answers within sendto(), and those answers are read at once.
 */
const MAX_BATCH_IN_FLIGHT = 256;
/** Room for MAX_IN_FLIGHT ACKs with a wide margin (the kernel caps it at net.core.rmem_max × 2). */
const REQUEST_RCVBUF = 1 << 20;

export function linkInfo(msg: rt.LinkMessage): LinkInfo {
  const flags = msg.data.flags ?? {};
  return {
    index: msg.data.index ?? 0,
    name: msg.attrs.ifname ?? '',
    mac: msg.attrs.address ? Buffer.from(msg.attrs.address) : Buffer.alloc(0),
    up: flags.up === true,
    running: flags.running === true,
  };
}

function checkPrefix(prefixlen: number, family: 4 | 6 = 4): void {
  const max = family === 6 ? 128 : 32;
  if (!Number.isInteger(prefixlen) || prefixlen < 0 || prefixlen > max) {
    throw new InvalidArgumentError(`bad IPv${family} prefix length: ${prefixlen}`);
  }
}

/** The request fields of one address: family, bytes, and for IPv6 no DAD (§21). */
function addressRequest(address: string, prefixlen: number) {
  const family = familyOf(address);
  checkPrefix(prefixlen, family);
  const bytes = family === 6 ? ipv6ToBytes(address) : ipv4ToBytes(address);
  return { af: family === 6 ? AF_INET6 : AF_INET, bytes, v6: family === 6 };
}

/**
 * The `netlink` package reports a kernel refusal only as `Error('Request rejected: EEXIST')`:
 * this is the one place that reads that text, turning it into a KernelError callers can
 * compare by errno.
 */
function toKernelError(e: unknown): unknown {
  if (!(e instanceof Error) || e instanceof KernelError) return e;
  const m = /^Request rejected: (\w+)$/.exec(e.message);
  return m ? new KernelError(m[1], `the kernel refused the request: ${m[1]}`, { cause: e }) : e;
}

function isKernelError(e: unknown, ...errnos: string[]): boolean {
  return e instanceof KernelError && errnos.includes(e.errno);
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
 * pipelined (up to MAX_IN_FLIGHT), which is what makes a 255-address failover fast, and the
 * address changes requested in one turn of the event loop share datagrams (netlink-batch.ts),
 * which is what makes a 4080-address one fast.
 *
 * Dumps get a socket of their own, one at a time: the kernel refuses a second dump on a socket
 * (EBUSY), and the `netlink` package loses a multi-datagram dump if any other reply (an ACK)
 * arrives between its parts.
 */
export class Rtnl {
  private readonly sock: RtNetlinkSocket;
  private readonly dumpSock: RtNetlinkSocket;
  /**
   * The address changes' own socket (the addon's): the `netlink` package sends one datagram
   * and queues the next behind its completion callback, which runs only in the poll phase,
   * so the datagrams of a burst would wait for the burst to end; this one sends at once.
   */
  private batchSock: NetlinkSubscription;
  private batchSeq = 0;
  private readonly limiter = new Limiter(MAX_IN_FLIGHT);
  /** Address changes, batched (MAX_BATCH_IN_FLIGHT answers at most, besides `limiter`'s). */
  private readonly batch: NetlinkBatch;
  private readonly dumpLimiter = new Limiter(1);
  /** name → ifindex, refreshed on a miss or when the kernel says the index is gone. */
  private readonly indexes = new Map<string, number>();
  private readonly lookups = new Map<string, Promise<number>>();
  private closed = false;

  /**
   * `beforeChange` runs right before each datagram of address changes goes to the kernel:
   * the address record is written there (runtime/address-record.ts).
   */
  constructor(private readonly opts: { beforeChange?: () => void } = {}) {
    this.sock = createRtNetlink({ recvBufferSize: REQUEST_RCVBUF, sendBufferSize: 0 });
    this.dumpSock = createRtNetlink();
    // Without a listener an asynchronous socket error would crash the process; requests
    // still fail on their own through their timeout.
    this.sock.socket.on('error', () => undefined);
    this.dumpSock.socket.on('error', () => undefined);
    this.batch = new NetlinkBatch(
      {
        send: (datagram) => {
          this.opts.beforeChange?.();
          try {
            native().netlinkSend(this.batchSock, datagram);
          } catch (e) {
            const errno = (e as NodeJS.ErrnoException).code ?? 'EIO';
            throw new KernelError(errno, `sending the request failed: ${errno}`, { cause: e });
          }
        },
        receive: () => {
          try {
            for (
              let d = native().netlinkReceive(this.batchSock);
              d;
              d = native().netlinkReceive(this.batchSock)
            )
              this.onAnswers(d);
          } catch {
            // Lost answers (ENOBUFS): their requests time out, as when the listener sees it.
          }
        },
        nextSeq: () => (this.batchSeq = (this.batchSeq + 1) >>> 0),
      },
      { maxPerDatagram: MAX_PER_DATAGRAM, maxInFlight: MAX_BATCH_IN_FLIGHT, timeoutMs: REQUEST_TIMEOUT_MS },
    );
    this.batchSock = this.openBatchSocket();
  }

  /** A NETLINK_ROUTE socket in no multicast group: it receives only the answers to the batch. */
  private openBatchSocket(): NetlinkSubscription {
    const sub = native().netlinkSubscribe(0, REQUEST_RCVBUF, (data, errno) => {
      if (sub !== this.batchSock) return;
      if (data) {
        this.onAnswers(data);
        return;
      }
      // Lost answers (ENOBUFS) leave their requests to the timeout. Any other errno stopped
      // the socket: later requests get a new one, those in flight time out.
      const { ENOBUFS, EMSGSIZE } = osConstants.errno;
      if (errno !== ENOBUFS && errno !== EMSGSIZE && !this.closed) {
        native().netlinkUnsubscribe(sub);
        this.batchSock = this.openBatchSocket();
      }
    });
    return sub;
  }

  private onAnswers(data: Buffer): void {
    // The kernel's own framing; should it ever be malformed, its requests time out.
    let msgs;
    try {
      msgs = parseMessages(data);
    } catch {
      return;
    }
    for (const m of msgs) this.batch.onMessage(m);
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

  /** Every IPv4 and IPv6 address (of `ifname` when given). */
  async addresses(ifname?: string): Promise<IpAddress[]> {
    const links = await this.links();
    const names = new Map(links.map((l) => [l.index, l.name]));
    const msgs = await this.dump((o) => this.dumpSock.getAddresses({}, undefined, o));
    const out: IpAddress[] = [];
    for (const m of msgs) {
      const a = addressOf(m);
      if (!a) continue;
      const name = names.get(a.index) ?? '';
      if (ifname !== undefined && name !== ifname) continue;
      out.push({ ...a, ifname: name });
    }
    return out;
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
    const { af, bytes: addr, v6 } = addressRequest(address, prefixlen);
    await this.withIndex(ifname, async (index) => {
      try {
        // A virtual IPv6 address must serve at once, not after duplicate address detection,
        // and the peer that held it a moment ago would make DAD fail (docs/protocol.md §21).
        await this.changeAddress(
          rt.MessageType.NEWADDR,
          FlagsNew.CREATE | FlagsNew.EXCL,
          v6
            ? { family: af, prefixlen, index, scope: 0, flags: { nodad: true } }
            : { family: af, prefixlen, index, scope: 0 },
          v6 ? { address: addr, flags: { nodad: true } } : { local: addr, address: addr },
        );
      } catch (e) {
        if (!isKernelError(e, 'EEXIST')) throw e;
      }
    });
  }

  /** Removes address/prefixlen from ifname; an address already gone counts as success. */
  async delAddress(ifname: string, address: string, prefixlen: number): Promise<void> {
    const { af, bytes: addr, v6 } = addressRequest(address, prefixlen);
    await this.withIndex(ifname, async (index) => {
      try {
        await this.changeAddress(
          rt.MessageType.DELADDR,
          0,
          { family: af, prefixlen, index },
          v6 ? { address: addr } : { local: addr, address: addr },
        );
      } catch (e) {
        if (!isKernelError(e, 'EADDRNOTAVAIL', 'ENOENT')) throw e;
      }
    });
  }

  /**
   * Turns on net.ipv4.conf.<ifname>.promote_secondaries. Without it, removing the first address
   * of a subnet also removes every other address in that subnet: one group leaving would take
   * another group's virtual address with it. Set through rtnetlink (IFLA_AF_SPEC → AF_INET →
   * IFLA_INET_CONF) because the unit's ProtectKernelTunables=yes makes /proc/sys read-only.
   */
  async setPromoteSecondaries(ifname: string): Promise<void> {
    const conf = Buffer.alloc(8);
    conf.writeUInt16LE(8, 0);
    conf.writeUInt16LE(IPV4_DEVCONF_PROMOTE_SECONDARIES, 2);
    conf.writeUInt32LE(1, 4);
    const inet = Buffer.concat([Buffer.from([4 + conf.length, 0, IFLA_INET_CONF, 0]), conf]);
    await this.withIndex(ifname, async (index) => {
      await this.request((o) => this.sock.setLink({ index }, { afSpec: new Map([[AF_INET, inet]]) }, o));
    });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.batch.close();
    native().netlinkUnsubscribe(this.batchSock);
    this.sock.socket.close();
    this.dumpSock.socket.close();
  }

  private request<T>(fn: (options: { timeout: number }) => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new ClosedError('rtnetlink socket is closed'));
    return this.limiter.run(() =>
      fn({ timeout: REQUEST_TIMEOUT_MS }).catch((e: unknown) => {
        throw toKernelError(e);
      }),
    );
  }

  private changeAddress(
    type: number,
    flags: number,
    data: rt.Address,
    attrs: rt.AddressAttrs,
  ): Promise<void> {
    if (this.closed) return Promise.reject(new ClosedError('rtnetlink socket is closed'));
    const msg = new AttrStream();
    rt.formatAddressMessage({ kind: 'address', data, attrs }, msg);
    return this.batch.request(type, flags, msg.bufs);
  }

  private dump<T>(fn: (options: { timeout: number }) => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new ClosedError('rtnetlink socket is closed'));
    return this.dumpLimiter.run(() =>
      fn({ timeout: REQUEST_TIMEOUT_MS }).catch((e: unknown) => {
        throw toKernelError(e);
      }),
    );
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
          if (!link) throw new InterfaceNotFoundError(ifname);
          return link.index;
        })
        .finally(() => this.lookups.delete(ifname));
      this.lookups.set(ifname, p);
    }
    return p;
  }
}
