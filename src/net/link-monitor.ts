// Link notifications (RTNLGRP_LINK) and, on request, IPv4 address notifications
// (RTNLGRP_IPV4_IFADDR) of the current network namespace: carrier changes, interfaces
// appearing or vanishing and addresses added or removed by anyone arrive as events instead of
// being polled.
import { EventEmitter } from 'node:events';
import { constants as osConstants } from 'node:os';
import { parseMessages, rt, type NetlinkMessage } from 'netlink';
import { native, type NetlinkSubscription } from '../native';
import { AlreadyStartedError, InternalError, KernelError } from '../errors';
import { Rtnl, addressOf, linkInfo, type LinkInfo } from './rtnl';

/** Room for a burst of link changes (many VLANs flapping with their parent). */
const MONITOR_RCVBUF = 1 << 20;

export interface LinkMonitorOptions {
  /** Keep the process alive while the monitor runs (default false: a daemon has other handles). */
  ref?: boolean;
  /** SO_RCVBUF in bytes (default 1 MiB; forced past net.core.rmem_max with CAP_NET_ADMIN). */
  recvBufferSize?: number;
  /** Also report IPv4 and IPv6 addresses added and removed (default false). */
  addresses?: boolean;
}

export interface AddressEvent {
  index: number;
  /** Dotted quad, or IPv6 in canonical text. */
  address: string;
  prefixlen: number;
  removed: boolean;
  family: 4 | 6;
  /** IPv6: duplicate address detection still running (a new event follows when it ends). */
  tentative: boolean;
}

export interface LinkMonitorEvents {
  /** Every RTM_NEWLINK/RTM_DELLINK; a removed link is reported with up and running false. */
  link: [info: LinkInfo, removed: boolean];
  /** Every RTM_NEWADDR/RTM_DELADDR of an IPv4 or IPv6 address (with the `addresses` option). */
  address: [event: AddressEvent];
  /**
   * Notifications were lost (receive buffer overrun) and every link was re-read; 'link' events
   * for all of them, and for links that vanished meanwhile, precede this one.
   */
  resync: [links: LinkInfo[]];
  /** Emitted only while someone listens: a monitor must not crash its process. */
  error: [err: Error];
}

/** Legacy bind() group bitmasks for RTNLGRP_LINK and RTNLGRP_IPV4_IFADDR. */
const RTMGRP_LINK = 0x1;
const RTMGRP_IPV4_IFADDR = 0x10;
const RTMGRP_IPV6_IFADDR = 0x100;

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
  private readonly groups: number;
  /** Last state seen per ifindex, to report links whose removal a lost notification hid. */
  private readonly known = new Map<number, LinkInfo>();
  private resyncing = false;
  private resyncAgain = false;

  constructor(options: LinkMonitorOptions = {}) {
    super();
    this.ref = options.ref ?? false;
    this.recvBufferSize = options.recvBufferSize ?? MONITOR_RCVBUF;
    this.groups = RTMGRP_LINK | (options.addresses ? RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR : 0);
  }

  /**
   * Subscribes, then returns the current links. Subscribing first means no change can fall
   * between the snapshot and the events; notifications queued meanwhile follow as events.
   */
  async start(): Promise<LinkInfo[]> {
    if (this.rtnl) throw new AlreadyStartedError('LinkMonitor already started');
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
    const sub = native().netlinkSubscribe(this.groups, this.recvBufferSize, (data, errno) => {
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
      if (m.type === rt.MessageType.NEWADDR || m.type === rt.MessageType.DELADDR) {
        this.onAddress(m);
        continue;
      }
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

  private onAddress(m: NetlinkMessage): void {
    let msg: rt.AddressMessage;
    try {
      msg = rt.parseAddressMessage(m.data);
    } catch (e) {
      this.emitError(e);
      return;
    }
    const a = addressOf(msg);
    if (!a) return;
    this.emit('address', { ...a, removed: m.type === rt.MessageType.DELADDR });
  }

  /**
   * Notifications were dropped: the only way to be right again is to re-read every link and
   * report it as if it had changed. A subscription that failed outright is replaced first.
   */
  private onLoss(errno: number): void {
    const { ENOBUFS, EMSGSIZE } = osConstants.errno;
    if (errno !== ENOBUFS && errno !== EMSGSIZE) {
      const name = Object.entries(osConstants.errno).find(([, v]) => v === errno)?.[0] ?? `errno ${errno}`;
      this.emitError(new KernelError(name, `link notifications failed (${name}); resubscribing`));
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
    if (this.listenerCount('error') > 0)
      this.emit('error', e instanceof Error ? e : new InternalError(String(e)));
  }
}
