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

  close(): void {
    this.closed = true;
    this.dropSocket();
  }

  private dropSocket(): void {
    if (this.fd === undefined) return;
    const fd = this.fd;
    this.fd = undefined;
    native().close(fd);
  }
}
