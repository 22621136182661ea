// CARP v2 advertisement codec (docs/protocol.md §3–§5, §7). Pure: no sockets, no clock.
import { PreparedDigest } from './hmac-sha1';
import { internetChecksum } from './checksum';
import { InvalidArgumentError } from '../errors';

export const CARP_HEADER_LEN = 36;
export const CARP_VERSION = 2;
export const CARP_TYPE_ADVERTISEMENT = 1;
export const CARP_AUTHLEN = 7;
export const CARP_TTL = 255;
export const IPPROTO_CARP = 112;
export const MAX_PASSWORD_BYTES = 19;
export const KEY_LEN = 20;

/**
 * Why a packet was dropped; each has its own counter. `peer`: a unicast group heard a host that
 * is not in its peers; `replay`: with replay protection, a counter that is not newer (§20);
 * `interval`: a VRRPv3 advertisement with a Max Advertise Interval of 0 (§22).
 */
export const REJECT_REASONS = [
  'short',
  'ttl',
  'version',
  'type',
  'length',
  'vhid',
  'destination',
  'peer',
  'checksum',
  'digest',
  'replay',
  'interval',
] as const;

export type RejectReason = (typeof REJECT_REASONS)[number];

export interface Advertisement {
  vhid: number;
  advbase: number;
  advskew: number;
  /** OpenBSD's demotion byte; ucarp always sends 0. */
  demote: number;
  counter: bigint;
}

/**
 * A source or destination address as compared in the hot path: an IPv4 address as an unsigned
 * 32-bit integer (network order read big-endian), an IPv6 address as a 128-bit value.
 */
export type SourceAddress = number | bigint;

/** Fields of the IP + CARP framing that demultiplexing needs, read without authenticating. */
export interface Framing<A extends SourceAddress = SourceAddress> {
  /** Offset of the CARP header (the IPv4 header length; 0 for IPv6, which has no header here). */
  offset: number;
  src: A;
  dst: A;
  vhid: number;
  /** 2: CARP; 3: VRRPv3 (src/protocol/vrrp.ts), demultiplexed apart from CARP. */
  version: number;
}

export type FramingResult<A extends SourceAddress = SourceAddress> =
  { ok: true; framing: Framing<A> } | { ok: false; reason: RejectReason };
export type VerifyResult = { ok: true; adv: Advertisement } | { ok: false; reason: RejectReason };

/** The HMAC key: the password bytes zero-padded to 20 bytes, as ucarp does. */
export function passwordKey(password: string | Buffer): Buffer {
  const bytes = typeof password === 'string' ? Buffer.from(password, 'utf8') : password;
  if (bytes.length > MAX_PASSWORD_BYTES) throw new RangeError('password too long (at most 19 bytes)');
  const key = Buffer.alloc(KEY_LEN);
  bytes.copy(key);
  return key;
}

/** Authentication context of one group: everything the digest covers except the counter. */
export interface GroupAuth {
  key: Buffer;
  vhid: number;
  /** The virtual addresses as unsigned 32-bit integers; hashed sorted ascending. */
  addresses: readonly number[];
}

/** Precomputes the constant prefix (version, type, vhid, sorted addresses) of the HMAC input. */
export function authPrefix(auth: GroupAuth): Buffer {
  const sorted = [...auth.addresses].sort((a, b) => a - b);
  const buf = Buffer.alloc(3 + 4 * sorted.length);
  buf[0] = CARP_VERSION;
  buf[1] = CARP_TYPE_ADVERTISEMENT;
  buf[2] = auth.vhid;
  sorted.forEach((a, i) => buf.writeUInt32BE(a >>> 0, 3 + 4 * i));
  return buf;
}

/** Builds the 36-byte CARP header (checksum and digest included). */
export function encodeAdvertisement(
  adv: { advbase: number; advskew: number; counter: bigint; vhid: number; demote?: number },
  key: Buffer,
  prefix: Buffer,
  out: Buffer = Buffer.alloc(CARP_HEADER_LEN),
): Buffer {
  const c = counterHalves(adv.counter);
  const digest = new PreparedDigest(key, prefix);
  return writeAdvertisement(out, digest, adv.vhid, adv.advbase, adv.advskew, adv.demote ?? 0, c.high, c.low);
}

/** A 64-bit counter (modulo 2^64) as the two signed 32-bit halves writeAdvertisement takes. */
export function counterHalves(counter: bigint): { high: number; low: number } {
  const c = BigInt.asUintN(64, counter);
  return { high: Number(c >> 32n) | 0, low: Number(c & 0xffffffffn) | 0 };
}

/** The counter two halves (counterHalves) stand for. */
export function counterOf(high: number, low: number): bigint {
  return (BigInt(high >>> 0) << 32n) | BigInt(low >>> 0);
}

/**
 * encodeAdvertisement with the group's digest prepared once (protocol/hmac-sha1.ts), into
 * `out`, the counter given as its two 32-bit halves (any sign): a master's per-advertisement
 * path, which allocates nothing.
 */
export function writeAdvertisement(
  out: Buffer,
  digest: PreparedDigest,
  vhid: number,
  advbase: number,
  advskew: number,
  demote: number,
  counterHigh: number,
  counterLow: number,
): Buffer {
  out[0] = (CARP_VERSION << 4) | CARP_TYPE_ADVERTISEMENT;
  out[1] = vhid;
  out[2] = advskew;
  out[3] = CARP_AUTHLEN;
  out[4] = demote;
  out[5] = advbase;
  out[6] = 0;
  out[7] = 0;
  out.writeInt32BE(counterHigh | 0, 8);
  out.writeInt32BE(counterLow | 0, 12);
  digest.sign(out, 8, 16);
  out.writeUInt16BE(internetChecksum(out, 0, CARP_HEADER_LEN), 6);
  return out;
}

/**
 * Checks the framing of a received IPv4 packet in ucarp's order (length, TTL, version) plus
 * the type, authlen and exact-length checks ucarp omits, so that VRRP traffic on protocol 112
 * is rejected by reason instead of failing later as a digest mismatch.
 *
 * VRRPv2 shares CARP's version 2 and type 1, and its address count sits where CARP has
 * authlen: a VRRPv2 advertisement with 7 addresses passes the authlen check, and with zeroed
 * auth data even the checksum of its first 36 bytes. Its length gives it away: 8 + 4 × count
 * + 8 bytes, 44 with 7 addresses, while a CARP advertisement (ucarp's and OpenBSD's alike) is
 * the 36-byte header and nothing else. So anything but exactly 36 bytes after the IPv4 header
 * is `length` (`short` when fewer), whatever byte 3 says.
 */
export function parseFraming(pkt: Uint8Array): FramingResult<number> {
  return frameIpv4(pkt, CARP_RULES);
}

/** What one protocol's message must look like to pass the framing checks (frameIpv4/6). */
export interface FramingRules {
  minLength: number;
  /** TTL over IPv4, hop limit over IPv6: 255, so that it cannot have crossed a router. */
  ttl: number;
  version: number;
  type: number;
  /** The message's whole length is right, given its fourth byte (authlen or address count). */
  lengthOk(length: number, byte3: number): boolean;
}

const CARP_RULES: FramingRules = {
  minLength: CARP_HEADER_LEN,
  ttl: CARP_TTL,
  version: CARP_VERSION,
  type: CARP_TYPE_ADVERTISEMENT,
  lengthOk: (length, authlen) => authlen === CARP_AUTHLEN && length === CARP_HEADER_LEN,
};

/** The checks of the message itself at `c`, after length and TTL: version, type, length. */
function messageReason(pkt: Uint8Array, c: number, length: number, rules: FramingRules): RejectReason | null {
  if (pkt[c] >> 4 !== rules.version) return 'version';
  if ((pkt[c] & 0x0f) !== rules.type) return 'type';
  if (!rules.lengthOk(length, pkt[c + 3])) return 'length';
  return null;
}

/**
 * The framing checks of a whole IPv4 packet, the same for CARP and VRRPv3: header lengths,
 * TTL, then the message's version, type and length.
 */
export function frameIpv4(pkt: Uint8Array, rules: FramingRules): FramingResult<number> {
  if (pkt.length < 20) return { ok: false, reason: 'short' };
  const ihl = (pkt[0] & 0x0f) * 4;
  if (ihl < 20 || pkt.length < ihl + rules.minLength) return { ok: false, reason: 'short' };
  if (pkt[8] !== rules.ttl) return { ok: false, reason: 'ttl' };
  const reason = messageReason(pkt, ihl, pkt.length - ihl, rules);
  if (reason !== null) return { ok: false, reason };
  const src = ((pkt[12] << 24) | (pkt[13] << 16) | (pkt[14] << 8) | pkt[15]) >>> 0;
  const dst = ((pkt[16] << 24) | (pkt[17] << 16) | (pkt[18] << 8) | pkt[19]) >>> 0;
  return { ok: true, framing: { offset: ihl, src, dst, vhid: pkt[ihl + 1], version: rules.version } };
}

/**
 * The IPv6 counterpart of authPrefix, as FreeBSD's carp_hmac_prepare builds it
 * (docs/protocol.md §21): version, type, vhid, then each distinct address once, 16 bytes,
 * ascending byte by byte, with bytes 2–3 cleared for link-local (scope-embedding) addresses;
 * :: and ffff:…:ffff can never be picked by its loop and are left out here too.
 */
export function authPrefix6(vhid: number, addresses: readonly Uint8Array[]): Buffer {
  const seen = new Set<string>();
  const keys: Buffer[] = [];
  for (const a of addresses) {
    if (a.length !== 16) throw new InvalidArgumentError(`an IPv6 address is 16 bytes, not ${a.length}`);
    const b = Buffer.from(a);
    const embed =
      (b[0] === 0xfe && (b[1] & 0xc0) === 0x80) || (b[0] === 0xff && [1, 2].includes(b[1] & 0x0f));
    if (embed) b.writeUInt16BE(0, 2);
    const hex = b.toString('hex');
    if (seen.has(hex) || /^(?:0{32}|f{32})$/.test(hex)) continue;
    seen.add(hex);
    keys.push(b);
  }
  keys.sort(Buffer.compare);
  return Buffer.concat([Buffer.from([CARP_VERSION, CARP_TYPE_ADVERTISEMENT, vhid]), ...keys]);
}

/**
 * The framing checks of a message that an IPv6 socket hands over alone, with the hop limit and
 * the addresses from ancillary data: the same checks in the same order for CARP and VRRPv3
 * (FreeBSD's carp6_input checks the hop limit first as well), docs/protocol.md §21.
 */
export function frameIpv6(
  payload: Uint8Array,
  hopLimit: number,
  src: bigint,
  dst: bigint,
  rules: FramingRules,
): FramingResult<bigint> {
  if (payload.length < rules.minLength) return { ok: false, reason: 'short' };
  if (hopLimit !== rules.ttl) return { ok: false, reason: 'ttl' };
  const reason = messageReason(payload, 0, payload.length, rules);
  if (reason !== null) return { ok: false, reason };
  return { ok: true, framing: { offset: 0, src, dst, vhid: payload[1], version: rules.version } };
}

/** parseFraming for IPv6 (frameIpv6 with CARP's header). */
export function parseFraming6(
  payload: Uint8Array,
  hopLimit: number,
  src: bigint,
  dst: bigint,
): FramingResult<bigint> {
  return frameIpv6(payload, hopLimit, src, dst, CARP_RULES);
}

/** Verifies checksum and digest of a framed packet for one group and decodes it. */
export function verifyAdvertisement(
  pkt: Uint8Array,
  offset: number,
  key: Buffer,
  prefix: Buffer,
): VerifyResult {
  return verifyAdvertisementWith(pkt, offset, new PreparedDigest(key, prefix));
}

/** Where the fields a receiver acts on lie in the CARP header (docs/protocol.md §3). */
export const CARP_ADVSKEW_AT = 2;
export const CARP_ADVBASE_AT = 5;
export const CARP_COUNTER_AT = 8;

/**
 * The checks of verifyAdvertisementWith without decoding: null when the packet at `offset` is
 * a valid advertisement of the digest's group. The receive path reads the fields it needs
 * itself (CARP_*_AT), so a packet costs no result objects and no counter when it is not wanted.
 */
export function checkAdvertisementWith(
  pkt: Uint8Array,
  offset: number,
  digest: PreparedDigest,
): RejectReason | null {
  if (pkt.length < offset + CARP_HEADER_LEN) return 'short';
  if (internetChecksum(pkt, offset, offset + CARP_HEADER_LEN) !== 0) return 'checksum';
  if (!digest.verify(pkt, offset + CARP_COUNTER_AT, offset + CARP_COUNTER_AT + 8)) return 'digest';
  return null;
}

/** verifyAdvertisement with the group's digest prepared once (protocol/hmac-sha1.ts). */
export function verifyAdvertisementWith(
  pkt: Uint8Array,
  offset: number,
  digest: PreparedDigest,
): VerifyResult {
  const reason = checkAdvertisementWith(pkt, offset, digest);
  if (reason !== null) return { ok: false, reason };
  const view = Buffer.isBuffer(pkt) ? pkt : Buffer.from(pkt.buffer, pkt.byteOffset, pkt.byteLength);
  return {
    ok: true,
    adv: {
      vhid: pkt[offset + 1],
      advskew: pkt[offset + CARP_ADVSKEW_AT],
      demote: pkt[offset + 4],
      advbase: pkt[offset + CARP_ADVBASE_AT],
      counter: view.readBigUInt64BE(offset + CARP_COUNTER_AT),
    },
  };
}
