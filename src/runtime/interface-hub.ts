// Everything one interface shares among its groups: one raw socket, one packet socket for
// gratuitous ARP, the carrier state, and the (destination, vhid) → group demultiplexer.
import { parseFraming, type RejectReason } from '../protocol/carp';
import { InterfaceSocket } from '../net/transport';
import { GarpSender } from '../net/garp';
import { ipv4ToInt, isMulticast } from '../net/ipv4';
import type { LinkInfo } from '../net/rtnl';
import type { Logger } from '../util/log';
import type { GroupRuntime } from './group-runtime';

/** What the demultiplexer needs of a group. */
export type HubGroup = Pick<GroupRuntime, 'config' | 'onPacket' | 'reject'>;
import { emptyRejects, type RejectCounters } from './counters';
import { VhidInUseError } from '../errors';

/** dst fits in 32 bits and vhid in 8: the sum is an exact integer key, no string building. */
function demuxKey(dst: number, vhid: number): number {
  return dst * 256 + vhid;
}

/** The interface's sockets as the hub uses them; tests hand in fakes. */
export type HubSocket = Pick<
  InterfaceSocket,
  'on' | 'join' | 'leave' | 'addLocalSource' | 'removeLocalSource' | 'send' | 'close'
>;
export type HubGarp = Pick<GarpSender, 'open' | 'send' | 'close'>;

export interface HubDeps {
  openSocket(ifname: string): HubSocket;
  garpSender(link: LinkInfo): HubGarp;
}

const realSockets: HubDeps = {
  openSocket: (ifname) => InterfaceSocket.open(ifname),
  garpSender: (link) => new GarpSender(link.index, link.mac),
};

export class InterfaceHub {
  readonly sock: HubSocket;
  readonly garp: HubGarp;
  /** Rejections no single group can be blamed for (framing errors, unknown vhid…). */
  readonly rejects: RejectCounters = emptyRejects();
  running: boolean;
  private readonly groups = new Map<number, HubGroup>();
  /** vhid → number of groups using it on any destination, to tell 'destination' from 'vhid'. */
  private readonly vhids = new Map<number, number>();

  constructor(
    readonly ifname: string,
    readonly link: LinkInfo,
    private readonly log: Logger,
    deps: HubDeps = realSockets,
  ) {
    this.running = link.running;
    this.sock = deps.openSocket(ifname);
    this.garp = deps.garpSender(link);
    try {
      this.garp.open();
    } catch (e) {
      // Not fatal here: the first takeover retries and logs if it still fails.
      this.log.warn(`cannot open a packet socket on ${ifname} yet: ${(e as Error).message}`);
    }
    this.sock.on('packet', (buf) => this.onPacket(buf));
    this.sock.on('receiveError', (err) => this.log.warn(`receive error on ${ifname}: ${err.message}`));
  }

  get size(): number {
    return this.groups.size;
  }

  add(g: HubGroup): void {
    const c = g.config;
    const key = demuxKey(ipv4ToInt(c.destination), c.vhid);
    if (this.groups.has(key))
      throw new VhidInUseError(`vhid ${c.vhid} to ${c.destination} is already in use on ${this.ifname}`);
    if (isMulticast(ipv4ToInt(c.destination))) this.sock.join(c.destination, c.srcip, this.link.index);
    this.sock.addLocalSource(c.srcip);
    this.groups.set(key, g);
    this.vhids.set(c.vhid, (this.vhids.get(c.vhid) ?? 0) + 1);
  }

  remove(g: HubGroup): void {
    const c = g.config;
    const key = demuxKey(ipv4ToInt(c.destination), c.vhid);
    if (this.groups.get(key) !== g) return;
    this.groups.delete(key);
    const n = (this.vhids.get(c.vhid) ?? 1) - 1;
    if (n > 0) this.vhids.set(c.vhid, n);
    else this.vhids.delete(c.vhid);
    this.sock.removeLocalSource(c.srcip);
    if (isMulticast(ipv4ToInt(c.destination))) this.sock.leave(c.destination);
  }

  send(payload: Buffer, dst: string, src: string): void {
    this.sock.send(payload, dst, src);
  }

  close(): void {
    this.sock.close();
    this.garp.close();
  }

  private onPacket(buf: Buffer): void {
    const f = parseFraming(buf);
    if (!f.ok) {
      this.blame(buf, f.reason);
      return;
    }
    const { framing } = f;
    const g = this.groups.get(demuxKey(framing.dst, framing.vhid));
    if (g) {
      g.onPacket(buf, framing);
      return;
    }
    // Another group's traffic (ucarp ignores it silently); counted, never logged one by one.
    this.rejects[this.vhids.has(framing.vhid) ? 'destination' : 'vhid']++;
  }

  /** A malformed packet counts on the interface, and on its group too when it names one. */
  private blame(buf: Buffer, reason: RejectReason): void {
    this.rejects[reason]++;
    if (buf.length < 20) return;
    const ihl = (buf[0] & 0x0f) * 4;
    if (buf.length < ihl + 2) return;
    const dst = buf.readUInt32BE(16);
    const g = this.groups.get(demuxKey(dst, buf[ihl + 1]));
    g?.reject(reason, buf.readUInt32BE(12));
  }
}
