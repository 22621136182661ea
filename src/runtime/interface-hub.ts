// Everything one interface shares among its groups: one raw socket, one packet socket for
// gratuitous ARP, the carrier state, and the (protocol, destination, vhid) → group
// demultiplexer: CARP and VRRPv3 share IP protocol 112 and are told apart by version first, so
// a CARP group and a VRRP group may use the same number on one interface.
//
// The hub outlives the interface: when the interface is deleted its sockets are closed
// (detach) and the groups stay registered; when an interface of that name appears again, on
// whatever new index, the sockets and every membership are set up again (attach).
import { parseFraming, parseFraming6, CARP_VERSION, type RejectReason } from '../protocol/carp';
import { isVrrpIpv4, parseVrrpFraming, parseVrrpFraming6, VRRP_VERSION } from '../protocol/vrrp';
import { InterfaceSocket } from '../net/transport';
import { SEND_BATCH, type SendDone } from '../net/raw-batch';
import { Interface6Socket, type Packet6 } from '../net/transport6';
import { Ipv6ValueMemo, familyOf, isMulticast6 } from '../net/ipv6';
import { GarpSender } from '../net/garp';
import { ipv4ToInt, isMulticast } from '../net/ipv4';
import type { LinkInfo } from '../net/rtnl';
import type { Logger } from '../util/log';
import type { GroupRuntime } from './group-runtime';
import { DemuxTable } from './demux-table';
import type { GroupConfig } from '../config/types';
import { emptyRejects, type RejectCounters } from './counters';
import { ClosedError, VhidInUseError, errorMessage } from '../errors';

/** What the demultiplexer needs of a group. */
export type HubGroup = Pick<GroupRuntime, 'config' | 'onPacket' | 'reject'>;

/** (vhid, protocol) as one small integer: vhid × 2, plus 1 for VRRP. */
function vhidKey(vhid: number, version: number): number {
  return vhid * 2 + (version === VRRP_VERSION ? 1 : 0);
}

function otherVersion(version: number): number {
  return version === VRRP_VERSION ? CARP_VERSION : VRRP_VERSION;
}

function groupVersion(c: GroupConfig): number {
  return c.protocol === 'vrrp3' ? VRRP_VERSION : CARP_VERSION;
}

/**
 * Where a group's advertisements arrive: its multicast (or broadcast) destination, or for a
 * unicast group this host's own source address, which its peers send to. IPv4 as a number,
 * IPv6 in canonical text (docs/protocol.md §21, §22).
 */
interface GroupKey {
  v6: boolean;
  dst: number | string;
  vhid: number;
  version: number;
}

function groupKey(c: GroupConfig): GroupKey {
  const v6 = isV6(c);
  const unicast = c.peers.length > 0;
  const dst = v6
    ? unicast
      ? c.srcip
      : c.destination
    : unicast
      ? c.srcip === ''
        ? 0
        : ipv4ToInt(c.srcip)
      : ipv4ToInt(c.destination);
  return { v6, dst, vhid: c.vhid, version: groupVersion(c) };
}

function isV6(c: GroupConfig): boolean {
  return familyOf(c.addresses[0].address) === 6;
}

function where(c: GroupConfig): string {
  const proto = c.protocol === 'vrrp3' ? ' (vrrp3)' : '';
  return (c.peers.length > 0 ? `unicast ${c.srcip}` : c.destination) + proto;
}

/** The interface's sockets as the hub uses them; tests hand in fakes. */
export type HubSocket = Pick<
  InterfaceSocket,
  'on' | 'join' | 'leave' | 'addLocalSource' | 'removeLocalSource' | 'queue' | 'transmit' | 'close'
>;
export type HubSocket6 = Pick<
  Interface6Socket,
  'on' | 'join' | 'leave' | 'addLocalSource' | 'removeLocalSource' | 'queue' | 'transmit' | 'close'
>;
export type HubGarp = Pick<
  GarpSender,
  'open' | 'queue' | 'queueNeighbourAdverts' | 'flush' | 'queuedFrames' | 'close'
>;

export interface HubDeps {
  openSocket(ifname: string): HubSocket;
  /** The raw IPv6 socket, opened when the first IPv6 group registers. */
  openSocket6(ifname: string): HubSocket6;
  garpSender(link: LinkInfo): HubGarp;
}

const realSockets: HubDeps = {
  openSocket: (ifname) => InterfaceSocket.open(ifname),
  openSocket6: (ifname) => Interface6Socket.open(ifname),
  garpSender: (link) => new GarpSender(link.index, link.mac),
};

interface Attached {
  link: LinkInfo;
  sock: HubSocket;
  /** Only while IPv6 groups exist: a host without IPv6 keeps running its IPv4 groups. */
  sock6: HubSocket6 | undefined;
  garp: HubGarp;
}

export class InterfaceHub {
  /** Rejections no single group can be blamed for (framing errors, unknown vhid…). */
  readonly rejects: RejectCounters = emptyRejects();
  running = false;
  private attached: Attached | undefined;
  private readonly groups = new DemuxTable<number, HubGroup>();
  private readonly groups6 = new DemuxTable<string, HubGroup>();
  /** The IPv6 sources and destinations heard, as numbers: parsed once each, not per packet. */
  private readonly v6Values = new Ipv6ValueMemo();
  /** Each group's demultiplexing key, as added (its source or peers may change later). */
  private readonly keys = new Map<HubGroup, GroupKey>();
  /** What each group registered on the current socket: its source and any membership. */
  private readonly sources = new Map<HubGroup, { src: string; joined: string | null }>();
  /**
   * (vhid, protocol) → number of groups using it on any destination, to tell 'destination'
   * from 'vhid'; keyed vhid × 2 + (1 for VRRP).
   */
  private readonly vhids = new Map<number, number>();

  constructor(
    readonly ifname: string,
    private readonly log: Logger,
    private readonly deps: HubDeps = realSockets,
  ) {}

  get size(): number {
    return this.groups.size + this.groups6.size;
  }

  /** The interface exists and the hub's sockets are open on it. */
  get present(): boolean {
    return this.attached !== undefined;
  }

  /** The index the sockets are bound to, if any. */
  get index(): number | undefined {
    return this.attached?.link.index;
  }

  /**
   * Opens the sockets on `link` and joins every group's multicast address there. Throws (and
   * stays detached) when the socket cannot be opened; the caller retries on the next link event.
   */
  attach(link: LinkInfo): void {
    if (this.attached) this.detach();
    const sock = this.deps.openSocket(this.ifname);
    const garp = this.deps.garpSender(link);
    try {
      garp.open();
    } catch (e) {
      // Not fatal here: the first takeover retries and logs if it still fails.
      this.log.warn(`cannot open a packet socket on ${this.ifname} yet: ${errorMessage(e)}`);
    }
    sock.on('packet', (buf) => this.onPacket(buf));
    sock.on('receiveError', (err) => this.log.warn(`receive error on ${this.ifname}: ${err.message}`));
    this.attached = { link, sock, sock6: undefined, garp };
    this.running = link.running;
    for (const g of this.groups.values()) this.register(g);
    // IPv6 groups too: their socket, membership and source went with the old interface.
    for (const g of this.groups6.values()) this.register(g);
  }

  /** The interface is gone: its sockets and memberships went with it. */
  detach(): void {
    const a = this.attached;
    if (!a) return;
    this.attached = undefined;
    this.running = false;
    this.sources.clear();
    a.sock.close();
    a.sock6?.close();
    a.garp.close();
  }

  add(g: HubGroup): void {
    const c = g.config;
    const key = groupKey(c);
    const taken = this.lookup(key);
    if (taken !== undefined && taken !== g)
      throw new VhidInUseError(`vhid ${c.vhid} to ${where(c)} is already in use on ${this.ifname}`);
    if (key.v6) this.groups6.set(key.dst as string, key.vhid, key.version, g);
    else this.groups.set(key.dst as number, key.vhid, key.version, g);
    this.keys.set(g, key);
    const vk = vhidKey(c.vhid, groupVersion(c));
    this.vhids.set(vk, (this.vhids.get(vk) ?? 0) + 1);
    if (this.attached) this.register(g);
  }

  remove(g: HubGroup): void {
    const key = this.keys.get(g);
    if (key === undefined || this.lookup(key) !== g) return;
    if (key.v6) this.groups6.delete(key.dst as string, key.vhid, key.version);
    else this.groups.delete(key.dst as number, key.vhid, key.version);
    this.keys.delete(g);
    const vk = vhidKey(g.config.vhid, groupVersion(g.config));
    const n = (this.vhids.get(vk) ?? 1) - 1;
    if (n > 0) this.vhids.set(vk, n);
    else this.vhids.delete(vk);
    this.unregister(g);
  }

  private lookup(k: GroupKey): HubGroup | undefined {
    return k.v6
      ? this.groups6.get(k.dst as string, k.vhid, k.version)
      : this.groups.get(k.dst as number, k.vhid, k.version);
  }

  /**
   * A group's source or peers changed (a source learnt once its interface had an address, a
   * peer list edited on reload): register it again under what it is now.
   */
  refresh(g: HubGroup): void {
    if (!this.keys.has(g)) return;
    this.remove(g);
    this.add(g);
  }

  /**
   * Queues one advertisement: it leaves with the rest of the turn's in one sendmmsg() and
   * `done` hears the outcome then. Throws when there is no socket to queue it on.
   */
  send(payload: Buffer, dst: string, src: string, done: SendDone): void {
    const a = this.attached;
    if (!a) throw new ClosedError(`interface ${this.ifname} does not exist`);
    // Configuration text, already validated: only IPv6 has colons (familyOf parses, per packet).
    if (!dst.includes(':')) a.sock.queue(payload, dst, src, done);
    else if (a.sock6) a.sock6.queue(payload, dst, src, a.link.index, done);
    else throw new ClosedError(`no IPv6 socket on ${this.ifname}`);
  }

  /**
   * Announces `addresses` on the link: gratuitous ARP for IPv4 ones, unsolicited neighbour
   * advertisements from `src` for IPv6 ones (docs/protocol.md §14, §21). The frames of every
   * group that takes over in this turn leave together at its end, after the advertisements
   * queued before them; `done` hears the outcome then.
   */
  sendGarp(addresses: string[], src: string, done: (err: Error | null) => void): void {
    const a = this.attached;
    if (!a) throw new ClosedError(`interface ${this.ifname} does not exist`);
    const v4 = addresses.filter((x) => familyOf(x) === 4);
    const v6 = addresses.filter((x) => familyOf(x) === 6);
    let left = (v4.length > 0 ? 1 : 0) + (v6.length > 0 ? 1 : 0);
    let first: Error | null = null;
    const part = (err: Error | null): void => {
      first ??= err;
      if (--left === 0) done(first);
    };
    if (v4.length > 0) a.garp.queue(v4, part);
    if (v6.length > 0) a.garp.queueNeighbourAdverts(v6, src, part);
    // A sendmmsg() worth goes at once, as advertisements do, so that the first groups of a
    // takeover of thousands are not held until the last one has been computed.
    if (a.garp.queuedFrames >= SEND_BATCH) this.flushGarp();
    if (this.garpQueued) return;
    this.garpQueued = true;
    queueMicrotask(this.flushGarp);
  }

  private garpQueued = false;
  private readonly flushGarp = (): void => {
    this.garpQueued = false;
    const a = this.attached;
    if (!a) return;
    // A takeover's advertisement goes before its announcement, as ucarp sends them.
    a.sock.transmit();
    a.sock6?.transmit();
    a.garp.flush();
  };

  close(): void {
    this.detach();
  }

  /**
   * Own source (so our packets are dropped) and multicast membership of one group. A unicast
   * group joins nothing: its advertisements arrive addressed to this host.
   */
  private register(g: HubGroup): void {
    const a = this.attached;
    const c = g.config;
    if (!a || c.srcip === '' || this.sources.has(g)) return;
    try {
      if (isV6(c)) {
        const sock6 = this.socket6(a);
        const joined = c.peers.length === 0 && isMulticast6(c.destination) ? c.destination : null;
        if (joined !== null) sock6.join(joined, a.link.index);
        sock6.addLocalSource(c.srcip);
        this.sources.set(g, { src: c.srcip, joined });
        return;
      }
      const joined = c.peers.length === 0 && isMulticast(ipv4ToInt(c.destination)) ? c.destination : null;
      if (joined !== null) a.sock.join(joined, c.srcip, a.link.index);
      a.sock.addLocalSource(c.srcip);
      this.sources.set(g, { src: c.srcip, joined });
    } catch (e) {
      this.log.error(
        `group ${c.name}: cannot listen for vhid ${c.vhid} on ${this.ifname}: ${errorMessage(e)}`,
      );
    }
  }

  private unregister(g: HubGroup): void {
    const a = this.attached;
    const reg = this.sources.get(g);
    if (!a || reg === undefined) return;
    this.sources.delete(g);
    if (familyOf(reg.src) === 6) {
      a.sock6?.removeLocalSource(reg.src);
      if (reg.joined !== null) a.sock6?.leave(reg.joined);
      return;
    }
    a.sock.removeLocalSource(reg.src);
    if (reg.joined !== null) a.sock.leave(reg.joined);
  }

  /** The IPv6 socket, opened on first use; it lives until the interface goes. */
  private socket6(a: Attached): HubSocket6 {
    if (a.sock6) return a.sock6;
    const sock6 = this.deps.openSocket6(this.ifname);
    sock6.on('packet', (pkt) => this.onPacket6(pkt));
    sock6.on('receiveError', (err) => this.log.warn(`receive error on ${this.ifname}: ${err.message}`));
    a.sock6 = sock6;
    return sock6;
  }

  /** The IPv6 path: the same checks and counters as onPacket, the addresses from the socket. */
  private onPacket6(pkt: Packet6): void {
    const src = this.v6Values.get(pkt.src);
    const dst = this.v6Values.get(pkt.dst);
    const version =
      pkt.payload.length > 0 && pkt.payload[0] >> 4 === VRRP_VERSION ? VRRP_VERSION : CARP_VERSION;
    const f =
      version === VRRP_VERSION
        ? parseVrrpFraming6(pkt.payload, pkt.hopLimit, src, dst)
        : parseFraming6(pkt.payload, pkt.hopLimit, src, dst);
    if (!f.ok) {
      this.rejects[f.reason]++;
      if (pkt.payload.length >= 2) {
        const vhid = pkt.payload[1];
        const g =
          this.groups6.get(pkt.dst, vhid, version) ?? this.groups6.get(pkt.dst, vhid, otherVersion(version));
        g?.reject(f.reason, src);
      }
      return;
    }
    const g = this.groups6.get(pkt.dst, f.framing.vhid, version);
    if (g) {
      g.onPacket(pkt.payload, f.framing);
      return;
    }
    const other = this.groups6.get(pkt.dst, f.framing.vhid, otherVersion(version));
    if (other) {
      this.rejects.version++;
      other.reject('version', src);
      return;
    }
    this.rejects[this.vhids.has(vhidKey(f.framing.vhid, version)) ? 'destination' : 'vhid']++;
  }

  private onPacket(buf: Buffer): void {
    const version = isVrrpIpv4(buf) ? VRRP_VERSION : CARP_VERSION;
    const f = version === VRRP_VERSION ? parseVrrpFraming(buf) : parseFraming(buf);
    if (!f.ok) {
      this.blame(buf, f.reason, version);
      return;
    }
    const { framing } = f;
    const g = this.groups.get(framing.dst, framing.vhid, version);
    if (g) {
      g.onPacket(buf, framing);
      return;
    }
    // The other protocol on a group's own destination and number: a peer configured for
    // CARP where we run VRRP or the reverse, worth telling that group's operator.
    const other = this.groups.get(framing.dst, framing.vhid, otherVersion(version));
    if (other) {
      this.rejects.version++;
      other.reject('version', framing.src);
      return;
    }
    // Another group's traffic (ucarp ignores it silently); counted, never logged one by one.
    this.rejects[this.vhids.has(vhidKey(framing.vhid, version)) ? 'destination' : 'vhid']++;
  }

  /** A malformed packet counts on the interface, and on its group too when it names one. */
  private blame(buf: Buffer, reason: RejectReason, version: number): void {
    this.rejects[reason]++;
    if (buf.length < 20) return;
    const ihl = (buf[0] & 0x0f) * 4;
    if (buf.length < ihl + 2) return;
    const dst = buf.readUInt32BE(16);
    const g =
      this.groups.get(dst, buf[ihl + 1], version) ??
      this.groups.get(dst, buf[ihl + 1], otherVersion(version));
    g?.reject(reason, buf.readUInt32BE(12));
  }
}
