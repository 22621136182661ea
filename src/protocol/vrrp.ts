// VRRPv3 advertisement codec (RFC 5798 §5; docs/protocol.md §22). Pure: no sockets, no clock.
// The address family is a parameter: the checksum's pseudo-header takes the source and
// destination as bytes (4 for IPv4, 16 for IPv6) and is laid out accordingly.
import { foldChecksum, onesSum } from './checksum';
import {
  frameIpv4,
  frameIpv6,
  IPPROTO_CARP,
  type FramingResult,
  type FramingRules,
  type RejectReason,
} from './carp';
import { InvalidArgumentError } from '../errors';

export const VRRP_VERSION = 3;
export const VRRP_TYPE_ADVERTISEMENT = 1;
export const VRRP_TTL = 255;
/** CARP took VRRP's number: one raw socket per family receives both (docs/protocol.md §22). */
export const IPPROTO_VRRP = IPPROTO_CARP;
/** Version/type, VRID, priority, count, 4 bits reserved + 12 bits interval, checksum. */
export const VRRP_HEADER_LEN = 8;
/** The 12-bit Max Advertise Interval, in centiseconds. */
export const VRRP_MAX_INTERVAL_CS = 0xfff;

export interface VrrpAdvertisement {
  vrid: number;
  priority: number;
  /** Max Advertise Interval in centiseconds (1..4095). */
  interval: number;
  /** The virtual addresses, each 4 (IPv4) or 16 (IPv6) bytes. */
  addresses: readonly Uint8Array[];
}

export type VrrpVerifyResult = { ok: true; adv: VrrpAdvertisement } | { ok: false; reason: RejectReason };

/**
 * The unfolded sum of the pseudo-header (RFC 768 for IPv4, RFC 8200 §8.1 for IPv6) of a
 * message of `length` bytes, given its addresses' sum (onesSum of source and destination):
 * plus the protocol and the length (IPv6's 32-bit length as two words; the same sum for
 * IPv4's 16-bit one).
 */
export function vrrpPseudoSum(addressSum: number, length: number): number {
  return addressSum + IPPROTO_VRRP + (length >>> 16) + (length & 0xffff);
}

/** The pseudo-header's addresses' sum, checking that they are both of one family. */
function addressSum(src: Uint8Array, dst: Uint8Array): number {
  if (src.length !== dst.length || (src.length !== 4 && src.length !== 16))
    throw new InvalidArgumentError('pseudo-header addresses must both be 4 or 16 bytes');
  return onesSum(src) + onesSum(dst);
}

/** The checksum of a VRRP message with its pseudo-header; 0 over a message that carries a valid one. */
export function vrrpChecksum(msg: Uint8Array, src: Uint8Array, dst: Uint8Array): number {
  return foldChecksum(vrrpPseudoSum(addressSum(src, dst), msg.length) + onesSum(msg));
}

/**
 * Builds a VRRPv3 advertisement with its checksum, into `into` when it has the length. The
 * pseudo-header's destination is where the copy goes: a unicast group encodes once per peer.
 */
export function encodeVrrp(adv: VrrpAdvertisement, src: Uint8Array, dst: Uint8Array, into?: Buffer): Buffer {
  if (adv.interval < 1 || adv.interval > VRRP_MAX_INTERVAL_CS)
    throw new InvalidArgumentError(`interval ${adv.interval} cs is outside 1..${VRRP_MAX_INTERVAL_CS}`);
  const alen = src.length;
  const length = VRRP_HEADER_LEN + alen * adv.addresses.length;
  // A sender's own buffer, rewritten per advertisement (the socket copies it when queued).
  const out = into !== undefined && into.length === length ? into : Buffer.alloc(length);
  out[0] = (VRRP_VERSION << 4) | VRRP_TYPE_ADVERTISEMENT;
  out[1] = adv.vrid;
  out[2] = adv.priority;
  out[3] = adv.addresses.length;
  out.writeUInt16BE(adv.interval & VRRP_MAX_INTERVAL_CS, 4);
  // The checksum is summed with its own field zero: a reused buffer holds the last one.
  out[6] = 0;
  out[7] = 0;
  adv.addresses.forEach((a, i) => {
    if (a.length !== alen) throw new InvalidArgumentError('a virtual address is not of the packet family');
    out.set(a, VRRP_HEADER_LEN + alen * i);
  });
  out.writeUInt16BE(vrrpChecksum(out, src, dst), 6);
  return out;
}

/** True when the byte after an IPv4 header announces VRRP version 3 (CARP is version 2). */
export function isVrrpIpv4(pkt: Uint8Array): boolean {
  if (pkt.length < 20) return false;
  const ihl = (pkt[0] & 0x0f) * 4;
  return pkt.length > ihl && pkt[ihl] >> 4 === VRRP_VERSION;
}

/**
 * Checks the IPv4 framing of a VRRPv3 packet: header lengths, TTL 255, version and type, and a
 * length that is exactly the header plus the addresses it counts.
 */
export function parseVrrpFraming(pkt: Uint8Array): FramingResult<number> {
  return frameIpv4(pkt, VRRP_IPV4_RULES);
}

/** A VRRPv3 message whose addresses are `size` bytes each: 4 over IPv4, 16 over IPv6. */
function vrrpRules(size: 4 | 16): FramingRules {
  return {
    minLength: VRRP_HEADER_LEN,
    ttl: VRRP_TTL,
    version: VRRP_VERSION,
    type: VRRP_TYPE_ADVERTISEMENT,
    lengthOk: (length, count) => length === VRRP_HEADER_LEN + size * count,
  };
}
const VRRP_IPV4_RULES = vrrpRules(4);
const VRRP_IPV6_RULES = vrrpRules(16);

/** parseVrrpFraming for IPv6 (frameIpv6 with VRRP's header: 16 bytes per address). */
export function parseVrrpFraming6(
  payload: Uint8Array,
  hopLimit: number,
  src: bigint,
  dst: bigint,
): FramingResult<bigint> {
  return frameIpv6(payload, hopLimit, src, dst, VRRP_IPV6_RULES);
}

/**
 * Checks the VRRP message at `offset` to the end of `pkt`, its addresses `alen` bytes each,
 * against the unfolded sum of its pseudo-header (vrrpPseudoSum): null when valid, else why
 * not. An interval of 0 is refused: a backup could never time it out. Allocates nothing (a
 * backup's per-packet path); the priority is at offset + 2, the interval vrrpInterval's.
 */
export function checkVrrp(
  pkt: Uint8Array,
  offset: number,
  alen: number,
  pseudoSum: number,
): RejectReason | null {
  if (pkt.length < offset + VRRP_HEADER_LEN) return 'short';
  const count = pkt[offset + 3];
  if (pkt.length - offset !== VRRP_HEADER_LEN + alen * count) return 'length';
  if (foldChecksum(pseudoSum + onesSum(pkt, offset, pkt.length)) !== 0) return 'checksum';
  if (vrrpInterval(pkt, offset) === 0) return 'interval';
  return null;
}

/** The Max Advertise Interval (centiseconds) of the VRRP message at `offset`. */
export function vrrpInterval(pkt: Uint8Array, offset: number): number {
  return ((pkt[offset + 4] << 8) | pkt[offset + 5]) & VRRP_MAX_INTERVAL_CS;
}

/**
 * Verifies the checksum of the VRRP message at `offset` (src and dst as they were on the IP
 * header) and decodes it (checkVrrp).
 */
export function verifyVrrp(
  pkt: Uint8Array,
  offset: number,
  src: Uint8Array,
  dst: Uint8Array,
): VrrpVerifyResult {
  const alen = src.length;
  const reason = checkVrrp(pkt, offset, alen, vrrpPseudoSum(addressSum(src, dst), pkt.length - offset));
  if (reason !== null) return { ok: false, reason };
  const msg = pkt.subarray(offset);
  const addresses: Uint8Array[] = [];
  for (let i = 0; i < msg[3]; i++)
    addresses.push(msg.subarray(VRRP_HEADER_LEN + alen * i, VRRP_HEADER_LEN + alen * (i + 1)));
  return { ok: true, adv: { vrid: msg[1], priority: msg[2], interval: vrrpInterval(msg, 0), addresses } };
}
