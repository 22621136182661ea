// Builders for crafted protocol-112 packets, valid or broken on purpose.
import { authPrefix, encodeAdvertisement, passwordKey } from '../../src/protocol/carp';
import { internetChecksum } from '../../src/protocol/checksum';

import { ipv4ToInt as ip4 } from '../../src/net/ipv4';

export { ip4 };

/** Bytes given as hex, as tcpdump -x prints them (white space allowed). */
export function fromHex(hex: readonly string[]): Buffer[] {
  return hex.map((h) => Buffer.from(h.replace(/\s/g, ''), 'hex'));
}

export function ipv4Packet(src: string, dst: string, payload: Buffer, ttl = 255): Buffer {
  const h = Buffer.alloc(20);
  h[0] = 0x45;
  h[1] = 0x10;
  h.writeUInt16BE(20 + payload.length, 2);
  h.writeUInt16BE(0x4000, 6);
  h[8] = ttl;
  h[9] = 112;
  h.writeUInt32BE(ip4(src), 12);
  h.writeUInt32BE(ip4(dst), 16);
  h.writeUInt16BE(internetChecksum(h), 10);
  return Buffer.concat([h, payload]);
}

export function carpPayload(o: {
  vhid: number;
  password: string;
  addresses: string[];
  advbase?: number;
  advskew?: number;
  counter?: bigint;
}): Buffer {
  const key = passwordKey(o.password);
  const prefix = authPrefix({ key, vhid: o.vhid, addresses: o.addresses.map(ip4) });
  return encodeAdvertisement(
    { vhid: o.vhid, advbase: o.advbase ?? 1, advskew: o.advskew ?? 0, counter: o.counter ?? 1n },
    key,
    prefix,
  );
}

/** A VRRPv2 advertisement (RFC 3768) with `count` addresses: same protocol and first byte. */
export function vrrpPayload(vrid: number, addresses: string[]): Buffer {
  const b = Buffer.alloc(8 + 4 * addresses.length + 8);
  b[0] = 0x21;
  b[1] = vrid;
  b[2] = 100;
  b[3] = addresses.length;
  b[4] = 0;
  b[5] = 1;
  addresses.forEach((a, i) => b.writeUInt32BE(ip4(a), 8 + 4 * i));
  b.writeUInt16BE(internetChecksum(b), 6);
  return b;
}
