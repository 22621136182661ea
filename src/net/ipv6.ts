// Pure IPv6 helpers: text <-> 16 bytes <-> 128-bit value, the one canonical text form every
// part of the daemon compares (RFC 5952, as `ip addr` prints it), and the address-family
// questions the configuration, the hub and the engine ask. No sockets here.
import { isIPv4, isIPv6 } from 'node:net';
import { intToIpv4, ipv4ToInt } from './ipv4';
import type { SourceAddress } from '../protocol/carp';
import { InvalidArgumentError } from '../errors';

/** All nodes on the link: where unsolicited neighbour advertisements go. */
export const ALL_NODES = 'ff02::1';

export type AddressFamily = 4 | 6;

/** 4 or 6 for an address in text form (a prefix after '/' is ignored); InvalidArgumentError otherwise. */
export function familyOf(addr: string): AddressFamily {
  const ip = addr.split('/')[0];
  if (isIPv4(ip)) return 4;
  if (isIPv6(ip)) return 6;
  throw new InvalidArgumentError(`not an IP address: ${JSON.stringify(addr)}`);
}

/** The 16 bytes of an IPv6 address in text form (any valid spelling, embedded IPv4 included). */
export function ipv6ToBytes(addr: string): Buffer {
  if (!isIPv6(addr)) throw new InvalidArgumentError(`not an IPv6 address: ${JSON.stringify(addr)}`);
  const out = Buffer.alloc(16);
  let text = addr;
  // A dotted quad at the end stands for the last two 16-bit groups.
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted) {
    const v = ipv4ToInt(dotted[1]);
    text = `${text.slice(0, dotted.index)}${(v >>> 16).toString(16)}:${(v & 0xffff).toString(16)}`;
  }
  const [head, tail] = text.split('::');
  const words = (s: string | undefined) => (s === undefined || s === '' ? [] : s.split(':'));
  const h = words(head);
  const t = words(tail);
  const all = tail === undefined ? h : [...h, ...new Array<string>(8 - h.length - t.length).fill('0'), ...t];
  all.forEach((w, i) => out.writeUInt16BE(parseInt(w, 16), 2 * i));
  return out;
}

/** RFC 5952 text: lower case, the longest run of two or more zero groups as '::' (first wins). */
export function bytesToIpv6(b: Uint8Array): string {
  if (b.length !== 16) throw new InvalidArgumentError(`an IPv6 address is 16 bytes, not ${b.length}`);
  const w: number[] = [];
  for (let i = 0; i < 16; i += 2) w.push((b[i] << 8) | b[i + 1]);
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (w[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && w[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (a: number[]) => a.map((x) => x.toString(16)).join(':');
  if (best < 0) return hex(w);
  return `${hex(w.slice(0, best))}::${hex(w.slice(best + bestLen))}`;
}

/** The canonical text of an IPv6 address: what comparisons and the kernel's reports use. */
export function canonicalIpv6(addr: string): string {
  return bytesToIpv6(ipv6ToBytes(addr));
}

/** Canonical text of either family (IPv4 is returned as written: dotted quads have one form). */
export function canonicalIp(addr: string): string {
  return familyOf(addr) === 6 ? canonicalIpv6(addr) : addr;
}

/** The address as one 128-bit value (bytes read big-endian): the engine's source of a group. */
export function ipv6ToBigInt(addr: string | Uint8Array): bigint {
  const b = typeof addr === 'string' ? ipv6ToBytes(addr) : addr;
  let v = 0n;
  for (let i = 0; i < 16; i++) v = (v << 8n) | BigInt(b[i]);
  return v;
}

/** A 128-bit value as the 16 bytes of the address (big-endian). */
export function bigIntToBytes(v: bigint): Buffer {
  const b = Buffer.alloc(16);
  b.writeBigUInt64BE(v >> 64n, 0);
  b.writeBigUInt64BE(v & 0xffffffffffffffffn, 8);
  return b;
}

export function bigIntToIpv6(v: bigint): string {
  const b = Buffer.alloc(16);
  for (let i = 15; i >= 0; i--) {
    b[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return bytesToIpv6(b);
}

export function isMulticast6(addr: string): boolean {
  return ipv6ToBytes(addr)[0] === 0xff;
}

/** fe80::/10. */
export function isLinkLocal6(addr: string): boolean {
  const b = ipv6ToBytes(addr);
  return b[0] === 0xfe && (b[1] & 0xc0) === 0x80;
}

export type { SourceAddress };

/** A group's source as the engine compares it: a uint32 for IPv4, a 128-bit value for IPv6. */
export function sourceOf(addr: string): SourceAddress {
  return familyOf(addr) === 6 ? ipv6ToBigInt(addr) : ipv4ToInt(addr);
}

/** Orders addresses of one family: IPv4 by value, IPv6 byte by byte (both big-endian). */
export function compareAddresses(a: string, b: string): number {
  const fa = familyOf(a);
  if (fa !== familyOf(b)) return fa - familyOf(b);
  if (fa === 4) return ipv4ToInt(a) - ipv4ToInt(b);
  return Buffer.compare(ipv6ToBytes(a), ipv6ToBytes(b));
}

export function formatSource(src: SourceAddress): string {
  return typeof src === 'bigint' ? bigIntToIpv6(src) : intToIpv4(src);
}

/**
 * The text of the last address read at one place of a receive buffer. A backup hears the same
 * master (and destination) packet after packet; formatting both per packet cost more than the
 * rest of the receive path (docs/performance.md, "IPv6 receive path"), so an unchanged address
 * gives back the text made for it the first time.
 */
export class Ipv6TextMemo {
  private readonly last = Buffer.alloc(16);
  private text = '';

  /** The address in `buf[at, at + 16)`, in canonical text. */
  read(buf: Buffer, at: number): string {
    if (this.text !== '' && buf.compare(this.last, 0, 16, at, at + 16) === 0) return this.text;
    buf.copy(this.last, 0, at, at + 16);
    this.text = bytesToIpv6(this.last);
    return this.text;
  }
}

/**
 * ipv6ToBigInt for the few addresses a hub hears (its masters, its destinations), each parsed
 * once: the Map is emptied past `limit` entries so that a flood of forged sources cannot grow it.
 */
export class Ipv6ValueMemo {
  private readonly values = new Map<string, bigint>();
  constructor(private readonly limit = 1024) {}

  get(addr: string): bigint {
    let v = this.values.get(addr);
    if (v === undefined) {
      v = ipv6ToBigInt(addr);
      if (this.values.size >= this.limit) this.values.clear();
      this.values.set(addr, v);
    }
    return v;
  }
}
