import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { LOG_PERIOD_MS, RateLimitedLog } from '../../src/util/rate-limited-log';

function clocked(periodMs = LOG_PERIOD_MS): {
  limiter: RateLimitedLog<string>;
  lines: string[];
  tick(ms: number): void;
  event(key: string, what?: string): boolean;
} {
  let t = 1000;
  const lines: string[] = [];
  const limiter = new RateLimitedLog<string>(periodMs, () => t);
  return {
    limiter,
    lines,
    tick: (ms) => (t += ms),
    event: (key, what = key) => limiter.report(key, (more) => lines.push(`${what}${more}`)),
  };
}

describe('rate-limited log', () => {
  it('writes the first event at once and counts the rest of the period', () => {
    const c = clocked();
    assert.equal(c.event('send'), true);
    for (let i = 0; i < 9; i++) {
      c.tick(1000);
      assert.equal(c.event('send'), false);
    }
    assert.deepEqual(c.lines, ['send']);
    c.tick(1000);
    assert.equal(c.event('send'), true, 'a period after the last line');
    assert.deepEqual(c.lines, ['send', 'send (9 more since last report)']);
  });

  it('keeps one period per key', () => {
    const c = clocked();
    c.event('digest');
    c.event('send');
    c.tick(5000);
    c.event('digest');
    c.event('ttl');
    c.tick(5000);
    c.event('digest');
    c.event('send');
    c.event('ttl');
    assert.deepEqual(c.lines, ['digest', 'send', 'ttl', 'digest (1 more since last report)', 'send']);
  });

  it('bounds a steady fault to one line per period', () => {
    const c = clocked();
    // One failure every 100 ms for a minute.
    for (let i = 0; i < 600; i++) {
      c.event('send');
      c.tick(100);
    }
    assert.equal(c.lines.length, 6);
    assert.deepEqual(c.lines.slice(1), Array(5).fill('send (99 more since last report)'));
  });

  it('says nothing about a count when an event comes back after a quiet period', () => {
    const c = clocked(10_000);
    c.event('send');
    c.tick(60_000);
    c.event('send');
    assert.deepEqual(c.lines, ['send', 'send']);
  });

  it('uses the 10 s period by default', () => {
    assert.equal(LOG_PERIOD_MS, 10_000);
    const c = clocked();
    c.event('x');
    c.tick(9999);
    c.event('x');
    c.tick(1);
    c.event('x');
    assert.deepEqual(c.lines, ['x', 'x (1 more since last report)']);
  });
});
