// The send paths' address cache (src/net/raw-batch.ts LastParsed).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { LastParsed } from '../../src/net/raw-batch';
import { ipv4ToInt } from '../../src/net/ipv4';

describe('LastParsed', () => {
  it('parses a text once while it stays the same, again when it changes', () => {
    const seen: string[] = [];
    const p = new LastParsed((t: string) => {
      seen.push(t);
      return ipv4ToInt(t);
    });
    assert.equal(p.get('224.0.0.18'), 0xe0000012);
    assert.equal(p.get('224.0.0.18'), 0xe0000012);
    assert.equal(p.get('192.0.2.1'), 0xc0000201);
    assert.equal(p.get('224.0.0.18'), 0xe0000012);
    assert.deepEqual(seen, ['224.0.0.18', '192.0.2.1', '224.0.0.18']);
  });

  it('a text that does not parse throws every time and is never remembered', () => {
    const p = new LastParsed(ipv4ToInt);
    assert.throws(() => p.get('nope'));
    assert.throws(() => p.get('nope'));
    assert.equal(p.get('192.0.2.1'), 0xc0000201);
  });
});
