// The prepared HMAC-SHA1 (src/protocol/hmac-sha1.ts) against Node's createHmac: every prefix
// length around the block boundaries, keys up to a block, counters read in place.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { PreparedDigest } from '../../src/protocol/hmac-sha1';
import { mulberry32 } from '../helpers/sim';
import { InvalidArgumentError } from '../../src/errors';

function bytes(rand: () => number, n: number): Buffer {
  return Buffer.from(Array.from({ length: n }, () => Math.floor(rand() * 256)));
}

const reference = (key: Buffer, prefix: Buffer, counter: Buffer) =>
  createHmac('sha1', key).update(prefix).update(counter).digest();

test('the same digest as createHmac for prefixes of 0 to 200 bytes and keys of 0 to 64', () => {
  const rand = mulberry32(11);
  for (let plen = 0; plen <= 200; plen++) {
    const key = bytes(rand, Math.floor(rand() * 65));
    const prefix = bytes(rand, plen);
    const d = new PreparedDigest(key, prefix);
    // Several counters through one prepared digest: nothing of one packet leaks into the next.
    for (let k = 0; k < 3; k++) {
      const counter = bytes(rand, 8);
      const out = Buffer.alloc(24, 0xee);
      d.digestInto(counter, 0, out, 2);
      assert.deepEqual(out.subarray(2, 22), reference(key, prefix, counter), `prefix ${plen}`);
      assert.equal(out[0], 0xee);
      assert.equal(out[22], 0xee, 'writes exactly 20 bytes');
    }
  }
});

test('verify checks the digest after the counter in place, and fails on any changed bit', () => {
  const rand = mulberry32(12);
  const key = Buffer.alloc(20);
  key.write('secret');
  const prefix = Buffer.from([2, 1, 10, 192, 0, 2, 100]);
  const d = new PreparedDigest(key, prefix);
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
});

test('a key longer than a block is refused (CARP keys are 20 bytes)', () => {
  assert.throws(() => new PreparedDigest(Buffer.alloc(65), Buffer.alloc(3)), InvalidArgumentError);
});
