// The prepared HMAC-SHA1 (src/protocol/hmac-sha1.ts) against Node's createHmac: every prefix
// length around the block boundaries, keys up to a block, counters read in place; computed in
// JavaScript and by the addon's kernel (native/digest.c, on a CPU with the SHA extensions).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { PreparedDigest } from '../../src/protocol/hmac-sha1';
import { mulberry32 } from '../helpers/sim';
import { InvalidArgumentError } from '../../src/errors';
import { native } from '../../src/native';

function bytes(rand: () => number, n: number): Buffer {
  return Buffer.from(Array.from({ length: n }, () => Math.floor(rand() * 256)));
}

const reference = (key: Buffer, prefix: Buffer, counter: Buffer) =>
  createHmac('sha1', key).update(prefix).update(counter).digest();

const kernel = native().carpDigest;
const impls = [
  { name: 'JavaScript', kernel: undefined, skip: false },
  { name: 'the addon', kernel, skip: kernel ? false : 'this CPU has no SHA extensions: no kernel' },
] as const;

for (const impl of impls) {
  test(
    `${impl.name}: the same digest as createHmac for prefixes of 0 to 200 bytes and keys of 0 to 64`,
    { skip: impl.skip },
    () => {
      const rand = mulberry32(11);
      for (let plen = 0; plen <= 200; plen++) {
        const key = bytes(rand, Math.floor(rand() * 65));
        const prefix = bytes(rand, plen);
        const d = new PreparedDigest(key, prefix, impl.kernel);
        // Several counters through one prepared digest: nothing of one packet leaks into the next.
        for (let k = 0; k < 3; k++) {
          const counter = bytes(rand, 8);
          const buf = Buffer.alloc(34, 0xee);
          counter.copy(buf, 1);
          d.sign(buf, 1, 12);
          assert.deepEqual(buf.subarray(12, 32), reference(key, prefix, counter), `prefix ${plen}`);
          assert.deepEqual(buf.subarray(1, 9), counter, 'the counter is left as it was');
          assert.equal(buf[11], 0xee);
          assert.equal(buf[32], 0xee, 'writes exactly 20 bytes');
        }
      }
    },
  );

  test(
    `${impl.name}: verify checks the digest after the counter in place, and fails on any changed bit`,
    { skip: impl.skip },
    () => {
      const rand = mulberry32(12);
      const key = Buffer.alloc(20);
      key.write('secret');
      const prefix = Buffer.from([2, 1, 10, 192, 0, 2, 100]);
      const d = new PreparedDigest(key, prefix, impl.kernel);
      const pkt = Buffer.alloc(20 + 36);
      bytes(rand, 8).copy(pkt, 28);
      reference(key, prefix, pkt.subarray(28, 36)).copy(pkt, 36);
      assert.equal(d.verify(pkt, 28, 36), true);
      for (let bit = 0; bit < 28 * 8; bit++) {
        const bad = Buffer.from(pkt);
        bad[28 + (bit >> 3)] ^= 1 << (bit & 7);
        assert.equal(d.verify(bad, 28, 36), false, `bit ${bit}`);
      }
      assert.equal(d.verify(pkt.subarray(0, 50), 28, 36), false, 'a truncated digest');
    },
  );
}

test('the kernel reads and writes only inside its arguments', { skip: impls[1].skip }, () => {
  const k = kernel as NonNullable<typeof kernel>;
  const calls: Array<{ arena: Uint8Array; at: number }> = [];
  const spy: typeof k = (arena, at, ...rest) => {
    calls.push({ arena, at });
    return k(arena, at, ...rest);
  };
  const d = new PreparedDigest(Buffer.alloc(20, 1), Buffer.alloc(7, 2), spy);
  const buf = Buffer.alloc(36);
  d.sign(buf, 8, 16);
  const { arena, at } = calls[0];
  assert.equal(k(arena, at, buf, 8, 16, true), true);
  assert.throws(() => k(arena, at, buf, 8, 17, false), RangeError, 'digest past the end');
  assert.throws(() => k(arena, at, buf, 29, 0, true), RangeError, 'counter past the end');
  assert.throws(() => k(arena, arena.length - 191, buf, 8, 16, false), RangeError, 'a prep past the arena');
  const bad = Uint8Array.from(arena);
  bad[at + 40] = 3;
  assert.throws(() => k(bad, at, buf, 8, 16, false), RangeError, 'three tail blocks');
  bad[at + 40] = 1;
  bad[at + 41] = 60;
  assert.throws(() => k(bad, at, buf, 8, 16, false), RangeError, 'the counter past the tail');
  assert.throws(() => k(new Uint16Array(96) as unknown as Uint8Array, 0, buf, 8, 16, false), TypeError);
});

test(
  'many digests share the arena, each with its own slot, through its growth',
  { skip: impls[1].skip },
  () => {
    const rand = mulberry32(13);
    const all = Array.from({ length: 300 }, (_, i) => {
      const key = bytes(rand, 20);
      const prefix = bytes(rand, 7 + (i % 70));
      return { key, prefix, d: new PreparedDigest(key, prefix, kernel) };
    });
    for (const { key, prefix, d } of all) {
      const buf = Buffer.alloc(36);
      bytes(rand, 8).copy(buf, 8);
      d.sign(buf, 8, 16);
      assert.deepEqual(buf.subarray(16, 36), reference(key, prefix, buf.subarray(8, 16)));
    }
  },
);

test('a key longer than a block is refused (CARP keys are 20 bytes)', () => {
  assert.throws(() => new PreparedDigest(Buffer.alloc(65), Buffer.alloc(3)), InvalidArgumentError);
});
