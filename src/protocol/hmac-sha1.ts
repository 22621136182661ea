// HMAC-SHA1 of (constant prefix ‖ 8-byte counter), the CARP digest (docs/protocol.md §5), with
// everything that does not depend on the counter computed once per group: the key's inner and
// outer pads are compressed when the group is set up, and so is every whole block of the prefix.
// What is left per packet is one or two compressions for the inner hash and one for the outer,
// written into the caller's buffer: no Hmac object, no digest Buffer, nothing allocated (Node's
// createHmac costs ~2.7× as much and allocates both; hash.copy() of prepared states is slower
// still, two objects per packet). Checked against createHmac by test/unit/hmac-sha1.test.ts.
import { InvalidArgumentError } from '../errors';

const BLOCK = 64;
export const DIGEST_LEN = 20;
const COUNTER_LEN = 8;
const IV = [0x67452301, 0xefcdab89 | 0, 0x98badcfe | 0, 0x10325476, 0xc3d2e1f0 | 0];
/** The message schedule, shared: compress() never re-enters. */
const W = new Int32Array(80);

/** One SHA-1 compression of the 16 big-endian words of `block` at `off` into `st`. */
function compress(st: Int32Array, block: Uint8Array, off: number): void {
  for (let i = 0; i < 16; i++) {
    const j = off + 4 * i;
    W[i] = (block[j] << 24) | (block[j + 1] << 16) | (block[j + 2] << 8) | block[j + 3];
  }
  for (let i = 16; i < 80; i++) {
    const x = W[i - 3] ^ W[i - 8] ^ W[i - 14] ^ W[i - 16];
    W[i] = (x << 1) | (x >>> 31);
  }
  let a = st[0];
  let b = st[1];
  let c = st[2];
  let d = st[3];
  let e = st[4];
  // The four rounds as four loops: no per-step branch on the round (this runs 2–3 times per
  // packet on every host, the largest part of a backup's JavaScript).
  for (let i = 0; i < 20; i++) {
    const t = (((a << 5) | (a >>> 27)) + ((b & c) | (~b & d)) + e + 0x5a827999 + W[i]) | 0;
    e = d;
    d = c;
    c = (b << 30) | (b >>> 2);
    b = a;
    a = t;
  }
  for (let i = 20; i < 40; i++) {
    const t = (((a << 5) | (a >>> 27)) + (b ^ c ^ d) + e + 0x6ed9eba1 + W[i]) | 0;
    e = d;
    d = c;
    c = (b << 30) | (b >>> 2);
    b = a;
    a = t;
  }
  for (let i = 40; i < 60; i++) {
    const t = (((a << 5) | (a >>> 27)) + ((b & c) | (b & d) | (c & d)) + e + (0x8f1bbcdc | 0) + W[i]) | 0;
    e = d;
    d = c;
    c = (b << 30) | (b >>> 2);
    b = a;
    a = t;
  }
  for (let i = 60; i < 80; i++) {
    const t = (((a << 5) | (a >>> 27)) + (b ^ c ^ d) + e + (0xca62c1d6 | 0) + W[i]) | 0;
    e = d;
    d = c;
    c = (b << 30) | (b >>> 2);
    b = a;
    a = t;
  }
  st[0] = (st[0] + a) | 0;
  st[1] = (st[1] + b) | 0;
  st[2] = (st[2] + c) | 0;
  st[3] = (st[3] + d) | 0;
  st[4] = (st[4] + e) | 0;
}

/** The big-endian 64-bit bit length at the end of the last block. */
function writeLength(buf: Uint8Array, end: number, bytes: number): void {
  const bits = bytes * 8;
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  view.setUint32(end - 8, Math.floor(bits / 2 ** 32));
  view.setUint32(end - 4, bits >>> 0);
}

/**
 * The per-packet step done outside JavaScript: the addon's carpDigest (native/digest.c) over
 * the prep at `arena[at]`. Without compare it writes the digest of buf[counterOff..+8] at
 * buf[digestOff] and returns true; with it, returns whether the 20 bytes there are that digest.
 */
export type DigestKernel = (
  arena: Uint8Array,
  at: number,
  buf: Uint8Array,
  counterOff: number,
  digestOff: number,
  compare: boolean,
) => boolean;

/**
 * What a DigestKernel reads, laid out as native/digest.c's carp_prep: the inner and the outer
 * state (five host-order words each), the tail's block count, the counter's place in the
 * tail, and from byte 64 the tail itself.
 */
const PREP_LEN = 192;
const PREP_OUTER = 20;
const PREP_BLOCKS = 40;
const PREP_COUNTER_AT = 41;
const PREP_TAIL = 64;

/**
 * Every group's prep in one array. A typed array per group made each packet's kernel call read
 * a cold object and its buffer before the prep itself (a 4080-group backup spent more in V8's
 * IsTypedArray and Length than in SHA-1); the arena is the same hot object for every packet.
 * A slot is reused once its digest is collected.
 */
class PrepArena {
  bytes = new Uint8Array(PREP_LEN * 64);
  private next = 0;
  private readonly free: number[] = [];
  private readonly released = new FinalizationRegistry<number>((at) => this.free.push(at));

  alloc(owner: object): number {
    let at = this.free.pop();
    if (at === undefined) {
      at = this.next;
      this.next += PREP_LEN;
      if (this.next > this.bytes.length) {
        const grown = new Uint8Array(this.bytes.length * 2);
        grown.set(this.bytes);
        this.bytes = grown;
      }
    }
    this.released.register(owner, at);
    return at;
  }
}

const arena = new PrepArena();

/** HMAC-SHA1(key, prefix ‖ counter) for one key and prefix, prepared once. */
export class PreparedDigest {
  /** SHA-1 state after the inner pad and the prefix's whole blocks. */
  private readonly inner = new Int32Array(5);
  /** SHA-1 state after the outer pad. */
  private readonly outer = new Int32Array(5);
  /** The rest of the prefix, the counter's place, padding and length: one or two blocks. */
  private readonly tail: Uint8Array;
  /** Where the counter goes in `tail`. */
  private readonly counterAt: number;
  /** The outer hash's one block: inner digest, padding and length. */
  private readonly outerBlock = new Uint8Array(BLOCK);
  private readonly st = new Int32Array(5);
  /** The digest last computed, for verify(). */
  private readonly scratch = new Uint8Array(DIGEST_LEN);

  /** Where this digest's prep is in the arena (with a kernel). */
  private readonly at: number = -1;

  /**
   * `kernel`: where sign() and verify() compute the digest (the addon's, several times faster
   * than compress() below); without one, here.
   */
  constructor(
    key: Uint8Array,
    prefix: Uint8Array,
    private readonly kernel?: DigestKernel,
  ) {
    if (key.length > BLOCK)
      throw new InvalidArgumentError(`an HMAC key of more than ${BLOCK} bytes must be hashed first`);
    const pad = new Uint8Array(BLOCK);
    this.inner.set(IV);
    for (let i = 0; i < BLOCK; i++) pad[i] = (key[i] ?? 0) ^ 0x36;
    compress(this.inner, pad, 0);
    this.outer.set(IV);
    for (let i = 0; i < BLOCK; i++) pad[i] = (key[i] ?? 0) ^ 0x5c;
    compress(this.outer, pad, 0);
    const whole = Math.floor(prefix.length / BLOCK) * BLOCK;
    for (let off = 0; off < whole; off += BLOCK) compress(this.inner, prefix, off);
    const rest = prefix.length - whole;
    // rest + counter + 0x80 + 8 length bytes, rounded up to whole blocks.
    const tailLen = Math.ceil((rest + COUNTER_LEN + 1 + 8) / BLOCK) * BLOCK;
    this.tail = new Uint8Array(tailLen);
    this.tail.set(prefix.subarray(whole), 0);
    this.counterAt = rest;
    this.tail[rest + COUNTER_LEN] = 0x80;
    writeLength(this.tail, tailLen, BLOCK + prefix.length + COUNTER_LEN);
    this.outerBlock[DIGEST_LEN] = 0x80;
    writeLength(this.outerBlock, BLOCK, BLOCK + DIGEST_LEN);
    if (kernel) {
      this.at = arena.alloc(this);
      const prep = arena.bytes.subarray(this.at, this.at + PREP_LEN);
      prep.fill(0);
      const words = new Int32Array(prep.buffer, prep.byteOffset, 10);
      words.set(this.inner, 0);
      words.set(this.outer, PREP_OUTER / 4);
      prep[PREP_BLOCKS] = tailLen / BLOCK;
      prep[PREP_COUNTER_AT] = rest;
      prep.set(this.tail, PREP_TAIL);
    }
  }

  /** Writes the digest of the 8 counter bytes at `buf[counterOff]` to `buf[digestOff]`. */
  sign(buf: Uint8Array, counterOff: number, digestOff: number): void {
    if (this.kernel) this.kernel(arena.bytes, this.at, buf, counterOff, digestOff, false);
    else this.digestInto(buf, counterOff, buf, digestOff);
  }

  /** Writes the digest of the 8 counter bytes at `src[srcOff]` to `out[outOff]`. */
  digestInto(src: Uint8Array, srcOff: number, out: Uint8Array, outOff: number): void {
    const tail = this.tail;
    for (let i = 0; i < COUNTER_LEN; i++) tail[this.counterAt + i] = src[srcOff + i];
    const st = this.st;
    // Five words copied by hand: TypedArray.prototype.set is a builtin call, twice per packet.
    const inner = this.inner;
    for (let i = 0; i < 5; i++) st[i] = inner[i];
    for (let off = 0; off < tail.length; off += BLOCK) compress(st, tail, off);
    const ob = this.outerBlock;
    for (let i = 0; i < 5; i++) {
      const w = st[i];
      ob[4 * i] = w >>> 24;
      ob[4 * i + 1] = (w >>> 16) & 0xff;
      ob[4 * i + 2] = (w >>> 8) & 0xff;
      ob[4 * i + 3] = w & 0xff;
    }
    const outer = this.outer;
    for (let i = 0; i < 5; i++) st[i] = outer[i];
    compress(st, ob, 0);
    for (let i = 0; i < 5; i++) {
      const w = st[i];
      out[outOff + 4 * i] = w >>> 24;
      out[outOff + 4 * i + 1] = (w >>> 16) & 0xff;
      out[outOff + 4 * i + 2] = (w >>> 8) & 0xff;
      out[outOff + 4 * i + 3] = w & 0xff;
    }
  }

  /**
   * Whether the 20 bytes at `pkt[digestOff]` are the digest of the counter at `pkt[counterOff]`,
   * compared in constant time (every byte, whatever the first difference).
   */
  verify(pkt: Uint8Array, counterOff: number, digestOff: number): boolean {
    if (pkt.length < digestOff + DIGEST_LEN) return false;
    if (this.kernel) return this.kernel(arena.bytes, this.at, pkt, counterOff, digestOff, true);
    this.digestInto(pkt, counterOff, this.scratch, 0);
    let diff = 0;
    for (let i = 0; i < DIGEST_LEN; i++) diff |= this.scratch[i] ^ pkt[digestOff + i];
    return diff === 0;
  }
}
