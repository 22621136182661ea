// Pure IPv4 helpers for the CARP transport: dotted quads <-> uint32, reading the fields of a
// received header, and building the header we send with IP_HDRINCL. No sockets here.
import { isIPv4 } from 'node:net';

import { internetChecksum } from '../protocol/checksum';
import { CARP_TTL, IPPROTO_CARP } from '../protocol/carp';
import { InvalidArgumentError } from '../errors';

// One RFC 1071 implementation and one set of protocol constants for the whole project: the CARP
// codec owns them; they are re-exported so that users of the transport need not reach into it.
export { internetChecksum, CARP_TTL, IPPROTO_CARP };

export const IPV4_MIN_HEADER_LEN = 20;
/** IPTOS_LOWDELAY: what ucarp puts in the TOS byte. */
export const CARP_TOS = 0x10;
export const IP_FLAG_DF = 0x4000;

/** Parses a dotted quad into its network-order value as an unsigned 32-bit integer. */
export function ipv4ToInt(addr: string): number {
  if (!isIPv4(addr)) throw new InvalidArgumentError(`not an IPv4 address: ${JSON.stringify(addr)}`);
  const p = addr.split('.');
  return ((+p[0] << 24) | (+p[1] << 16) | (+p[2] << 8) | +p[3]) >>> 0;
}

/** The four bytes of a dotted quad, in network order. */
export function ipv4ToBytes(addr: string): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(ipv4ToInt(addr));
  return b;
}

/** Formats an unsigned 32-bit (network-order value) address as a dotted quad. */
export function intToIpv4(n: number): string {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff)
    throw new InvalidArgumentError(`not a uint32 address: ${n}`);
  return `${n >>> 24}.${(n >>> 16) & 0xff}.${(n >>> 8) & 0xff}.${n & 0xff}`;
}

/** 224.0.0.0/4. */
export function isMulticast(addr: number): boolean {
  return addr >>> 28 === 0xe;
}

/** Header length in bytes from the IHL nibble; the caller checks it against the buffer length. */
export function ipHeaderLength(buf: Uint8Array): number {
  return (buf[0] & 0x0f) * 4;
}

export function ipTos(buf: Uint8Array): number {
  return buf[1];
}

export function ipTtl(buf: Uint8Array): number {
  return buf[8];
}

export function ipProtocol(buf: Uint8Array): number {
  return buf[9];
}

/** Flags (3 high bits) and fragment offset, as on the wire. */
export function ipFlagsFragment(buf: Uint8Array): number {
  return (buf[6] << 8) | buf[7];
}

// Reads without Buffer methods so that plain Uint8Arrays work and nothing is allocated.
function readU32(buf: Uint8Array, off: number): number {
  return ((buf[off] << 24) | (buf[off + 1] << 16) | (buf[off + 2] << 8) | buf[off + 3]) >>> 0;
}

/** Source address as a uint32 (network-order value); allocation-free, for the hot path. */
export function ipSrc(buf: Uint8Array): number {
  return readU32(buf, 12);
}

/** Destination address as a uint32 (network-order value). */
export function ipDst(buf: Uint8Array): number {
  return readU32(buf, 16);
}

export function ipSrcString(buf: Uint8Array): string {
  return intToIpv4(ipSrc(buf));
}

export function ipDstString(buf: Uint8Array): string {
  return intToIpv4(ipDst(buf));
}

export interface Ipv4HeaderFields {
  /** Dotted quad or uint32. */
  src: string | number;
  dst: string | number;
  /** Bytes following the 20-byte header. */
  payloadLength: number;
  protocol?: number;
  ttl?: number;
  tos?: number;
  /** Don't Fragment; default true, as ucarp. */
  df?: boolean;
  /** 0 lets the Linux kernel choose one (raw sockets with IP_HDRINCL fill a zero id). */
  id?: number;
}

function addr(a: string | number): number {
  if (typeof a === 'number') {
    if (!Number.isInteger(a) || a < 0 || a > 0xffffffff)
      throw new InvalidArgumentError(`not a uint32 address: ${a}`);
    return a;
  }
  return ipv4ToInt(a);
}

/**
 * Writes a 20-byte IPv4 header (no options) into `out` at `offset` and returns `out`. Defaults
 * are those of a CARP advertisement as ucarp sends it: protocol 112, TTL 255, TOS 0x10, DF.
 * The checksum is computed so the header is valid on its own; Linux recomputes it (and the
 * total length) for IP_HDRINCL sockets anyway.
 */
export function buildIpv4Header(
  f: Ipv4HeaderFields,
  out: Buffer = Buffer.alloc(IPV4_MIN_HEADER_LEN),
  offset = 0,
): Buffer {
  const total = IPV4_MIN_HEADER_LEN + f.payloadLength;
  if (!Number.isInteger(f.payloadLength) || f.payloadLength < 0 || total > 0xffff) {
    throw new InvalidArgumentError(`bad IPv4 payload length: ${f.payloadLength}`);
  }
  if (out.length < offset + IPV4_MIN_HEADER_LEN)
    throw new InvalidArgumentError('output buffer too short for IPv4 header');
  out[offset] = 0x45; // version 4, IHL 5
  out[offset + 1] = f.tos ?? CARP_TOS;
  out.writeUInt16BE(total, offset + 2);
  out.writeUInt16BE(f.id ?? 0, offset + 4);
  out.writeUInt16BE(f.df === false ? 0 : IP_FLAG_DF, offset + 6);
  out[offset + 8] = f.ttl ?? CARP_TTL;
  out[offset + 9] = f.protocol ?? IPPROTO_CARP;
  out.writeUInt16BE(0, offset + 10);
  out.writeUInt32BE(addr(f.src), offset + 12);
  out.writeUInt32BE(addr(f.dst), offset + 16);
  out.writeUInt16BE(internetChecksum(out, offset, offset + IPV4_MIN_HEADER_LEN), offset + 10);
  return out;
}
