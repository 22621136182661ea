// Gratuitous ARP, exactly as ucarp sends it (docs/protocol.md §14): a broadcast ARP request
// whose sender and target are both the virtual address, from the interface's own MAC.
import { ipv4ToBytes } from './ipv4';
import { native } from '../native';
import { buildNeighbourAdvert } from './ndp';
import { ClosedError, InvalidArgumentError } from '../errors';

const ETH_P_ARP = 0x0806;
const ETH_P_IP = 0x0800;
const ARPHRD_ETHER = 1;
const ARPOP_REQUEST = 1;
/** Shortest legal Ethernet frame without FCS; shorter frames are runts on the wire. */
export const MIN_FRAME_LENGTH = 60;

export function buildGratuitousArp(mac: Buffer, ipv4: string): Buffer {
  if (mac.length !== 6) throw new InvalidArgumentError(`MAC must be 6 bytes, got ${mac.length}`);
  const ip = ipv4ToBytes(ipv4);
  const frame = Buffer.alloc(MIN_FRAME_LENGTH);
  frame.fill(0xff, 0, 6);
  mac.copy(frame, 6);
  frame.writeUInt16BE(ETH_P_ARP, 12);
  frame.writeUInt16BE(ARPHRD_ETHER, 14);
  frame.writeUInt16BE(ETH_P_IP, 16);
  frame[18] = 6; // hardware address length
  frame[19] = 4; // protocol address length
  frame.writeUInt16BE(ARPOP_REQUEST, 20);
  mac.copy(frame, 22);
  ip.copy(frame, 28);
  mac.copy(frame, 32);
  ip.copy(frame, 38);
  return frame;
}

/**
 * Sends gratuitous ARPs on one interface. The packet socket is opened on first use and kept,
 * and a burst leaves through sendmmsg(), 64 frames per system call and one call into the
 * addon, so a failover of hundreds of addresses costs no socket churn and few system calls.
 */
export class GarpSender {
  private fd: number | undefined;
  private closed = false;
  private readonly mac: Buffer;
  /** Frames queued for flush(), and who to tell: each caller's count of frames. */
  private pending: Buffer[] = [];
  private waiting: { frames: number; done: (err: Error | null) => void }[] = [];

  constructor(
    readonly ifindex: number,
    mac: Buffer,
  ) {
    if (!Number.isInteger(ifindex) || ifindex <= 0) throw new InvalidArgumentError(`bad ifindex ${ifindex}`);
    if (mac.length !== 6) throw new InvalidArgumentError(`MAC must be 6 bytes, got ${mac.length}`);
    this.mac = Buffer.from(mac);
  }

  /**
   * One frame per address. Frames are built before anything is sent, so a bad address throws
   * without a partial burst; a send error throws after the frames before it went out.
   */
  send(addresses: string[]): void {
    if (this.closed) throw new ClosedError('GarpSender is closed');
    this.sendFrames(addresses.map((a) => buildGratuitousArp(this.mac, a)));
  }

  /**
   * The IPv6 counterpart of send(): one unsolicited neighbour advertisement per address, from
   * `src` (an address of this interface), through the same packet socket.
   */
  sendNeighbourAdverts(targets: string[], src: string): void {
    if (this.closed) throw new ClosedError('GarpSender is closed');
    this.sendFrames(targets.map((t) => buildNeighbourAdvert(this.mac, src, t)));
  }

  /**
   * Like send(), but the frames wait for flush() and leave with every other caller's in one
   * burst; `done` hears the outcome then. A bad address throws at once.
   */
  queue(addresses: string[], done: (err: Error | null) => void): void {
    if (this.closed) throw new ClosedError('GarpSender is closed');
    this.enqueue(
      addresses.map((a) => buildGratuitousArp(this.mac, a)),
      done,
    );
  }

  /** Like sendNeighbourAdverts(), queued as queue() is. */
  queueNeighbourAdverts(targets: string[], src: string, done: (err: Error | null) => void): void {
    if (this.closed) throw new ClosedError('GarpSender is closed');
    this.enqueue(
      targets.map((t) => buildNeighbourAdvert(this.mac, src, t)),
      done,
    );
  }

  /**
   * Sends every queued frame in order (sendmmsg(), 64 per call) and tells each caller. A
   * refusal fails the whole burst: the addon stops at the refused frame and the socket is
   * reopened for the next one.
   */
  flush(): void {
    const frames = this.pending;
    const waiting = this.waiting;
    if (waiting.length === 0) return;
    this.pending = [];
    this.waiting = [];
    let err: Error | null = null;
    try {
      this.sendFrames(frames);
    } catch (e) {
      err = e as Error;
    }
    for (const w of waiting) w.done(err);
  }

  /** Frames waiting for flush(). */
  get queuedFrames(): number {
    return this.pending.length;
  }

  private enqueue(frames: Buffer[], done: (err: Error | null) => void): void {
    for (const f of frames) this.pending.push(f);
    this.waiting.push({ frames: frames.length, done });
  }

  private sendFrames(frames: Buffer[]): void {
    if (frames.length === 0) return;
    const n = native();
    const fd = this.open();
    try {
      n.packetSendMany(fd, frames);
    } catch (e) {
      // A socket bound to a vanished interface never recovers; the next burst reopens it.
      this.dropSocket();
      throw e;
    }
  }

  /** Opens the packet socket now, so that the first takeover does not pay for it. */
  open(): number {
    if (this.closed) throw new ClosedError('GarpSender is closed');
    if (this.fd === undefined) this.fd = native().packetOpen(this.ifindex);
    return this.fd;
  }

  /** Closes the socket; what is still queued fails. */
  close(): void {
    this.closed = true;
    this.dropSocket();
    const waiting = this.waiting;
    this.pending = [];
    this.waiting = [];
    for (const w of waiting) w.done(new ClosedError('GarpSender is closed'));
  }

  private dropSocket(): void {
    if (this.fd === undefined) return;
    const fd = this.fd;
    this.fd = undefined;
    native().close(fd);
  }
}
