// Unsolicited neighbour advertisements, the IPv6 counterpart of gratuitous ARP
// (docs/protocol.md §21): one complete Ethernet frame per virtual address, sent through the
// interface's packet socket like the ARP frames (net/garp.ts). Pure: builds bytes only.
import { internetChecksum } from '../protocol/checksum';
import { ALL_NODES, ipv6ToBytes } from './ipv6';
import { InvalidArgumentError } from '../errors';

const ETH_P_IPV6 = 0x86dd;
const IPPROTO_ICMPV6 = 58;
const ND_NEIGHBOR_ADVERT = 136;
/** Override: neighbours replace the link-layer address they have for the target. */
const ND_NA_FLAG_OVERRIDE = 0x20000000;
const ND_OPT_TARGET_LINKADDR = 2;
const NA_LENGTH = 32;
export const NA_FRAME_LENGTH = 14 + 40 + NA_LENGTH;

/**
 * An NA for `target` from `src` (an address of the interface, its link-local one by default)
 * to all nodes, override flag set, solicited and router flags clear, with a target link-layer
 * address option carrying `mac`; hop limit 255, or receivers must drop it (RFC 4861 §7.1.2).
 */
export function buildNeighbourAdvert(mac: Buffer, src: string, target: string): Buffer {
  if (mac.length !== 6) throw new InvalidArgumentError(`MAC must be 6 bytes, got ${mac.length}`);
  const f = Buffer.alloc(NA_FRAME_LENGTH);
  const dst = ipv6ToBytes(ALL_NODES);
  // 33:33 + the group's low 32 bits (RFC 2464 §7).
  f[0] = 0x33;
  f[1] = 0x33;
  dst.copy(f, 2, 12, 16);
  mac.copy(f, 6);
  f.writeUInt16BE(ETH_P_IPV6, 12);
  const ip = 14;
  f.writeUInt32BE(6 << 28, ip);
  f.writeUInt16BE(NA_LENGTH, ip + 4);
  f[ip + 6] = IPPROTO_ICMPV6;
  f[ip + 7] = 255;
  ipv6ToBytes(src).copy(f, ip + 8);
  dst.copy(f, ip + 24);
  const icmp = ip + 40;
  f[icmp] = ND_NEIGHBOR_ADVERT;
  f.writeUInt32BE(ND_NA_FLAG_OVERRIDE, icmp + 4);
  ipv6ToBytes(target).copy(f, icmp + 8);
  f[icmp + 24] = ND_OPT_TARGET_LINKADDR;
  f[icmp + 25] = 1; // option length in units of 8 bytes
  mac.copy(f, icmp + 26);
  f.writeUInt16BE(
    icmpv6Checksum(f.subarray(ip + 8, ip + 24), f.subarray(ip + 24, ip + 40), f.subarray(icmp)),
    icmp + 2,
  );
  return f;
}

/** The ICMPv6 checksum: over the pseudo-header (src, dst, length, next header 58), then the message. */
export function icmpv6Checksum(src: Uint8Array, dst: Uint8Array, msg: Uint8Array): number {
  const buf = Buffer.alloc(40 + msg.length);
  buf.set(src, 0);
  buf.set(dst, 16);
  buf.writeUInt32BE(msg.length, 32);
  buf[39] = IPPROTO_ICMPV6;
  buf.set(msg, 40);
  buf.writeUInt16BE(0, 40 + 2);
  return internetChecksum(buf);
}
