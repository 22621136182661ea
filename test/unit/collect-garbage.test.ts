import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setImmediate as turn } from 'node:timers/promises';
import { garbageCollector } from '../../src/util/collect-garbage';

test('garbageCollector: a function that collects what nothing refers to, the same one each time', async () => {
  const gc = garbageCollector();
  assert.equal(typeof gc, 'function');
  assert.equal(garbageCollector(), gc);
  let ref: WeakRef<object> | undefined;
  (() => {
    ref = new WeakRef({ big: new Array(1000).fill('x') });
  })();
  // A WeakRef's target lives until the job that made it ends.
  await turn();
  gc?.();
  assert.equal(ref?.deref(), undefined);
});
