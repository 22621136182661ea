import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  backupFollows,
  effectivePriority,
  masterDownIntervalMs,
  senderWins,
  skewMs,
} from '../../src/engine/vrrp-rules';

test('Skew_Time and Master_Down_Interval of RFC 5798 §6.1, in ms, unrounded', () => {
  assert.equal(skewMs(100, 100), 609.375);
  assert.equal(skewMs(255, 100), 1000 / 256);
  assert.equal(masterDownIntervalMs(100, 100), 3609.375);
  // keepalived's advert_int 0.5 with priority 200.
  assert.equal(masterDownIntervalMs(200, 50), 1500 + (56 * 500) / 256);
});

test('effective priority: promote 254 (never 255), demote and send failures 1, weights floor at 1', () => {
  const p = (o: Partial<Parameters<typeof effectivePriority>[0]>) =>
    effectivePriority({ priority: 150, override: 'none', demotion: 0, suppressed: false, ...o });
  assert.equal(p({}), 150);
  assert.equal(p({ override: 'promote' }), 254);
  assert.equal(p({ priority: 255, override: 'promote' }), 255);
  assert.equal(p({ override: 'demote' }), 1);
  assert.equal(p({ demotion: 50 }), 100);
  assert.equal(p({ demotion: 149 }), 1);
  assert.equal(p({ demotion: 1000 }), 1);
  assert.equal(p({ suppressed: true }), 1);
  assert.equal(p({ override: 'promote', demotion: 4 }), 250);
});

test('who wins between masters; whom a backup follows', () => {
  assert.equal(senderWins(101, 1, 100, 2), true);
  assert.equal(senderWins(100, 3, 100, 2), true, 'a tie goes to the higher address');
  assert.equal(senderWins(100, 1, 100, 2), false);
  assert.equal(senderWins(99, 9, 100, 2), false);
  // Unsigned comparison: 192.0.2.9 > 10.0.0.1 read big-endian.
  assert.equal(senderWins(100, 0xc0000209, 100, 0x0a000001), true);
  assert.equal(backupFollows(99, 100, true), false);
  assert.equal(backupFollows(100, 100, true), true);
  assert.equal(backupFollows(99, 100, false), true);
});
