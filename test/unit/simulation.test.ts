import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GroupParams, masterDownMs, initialState, ADVERT_SLACK_MS } from '../../src/engine/group';
import { Simulation } from '../helpers/sim';
import { ipv4ToInt as ip } from '../../src/net/ipv4';

/** The VRRP settings a CARP group carries unused. */
const CARP = { protocol: 'carp', priority: 100, advertInterval: 100 } as const;

/** The Lehmer (minimal standard) generator: each test's scenario is fixed by its seed. */
function lehmer(seed: number): () => number {
  let a = seed;
  return () => (a = (a * 16807) % 2147483647) / 2147483647;
}

/** A CARP group of vhid 1 at advbase 1 and dead ratio 3. */
function carpParams(advskew: number, src: string, preempt: boolean): GroupParams {
  return {
    vhid: 1,
    advbase: 1,
    advskew,
    deadratio: 3,
    ...CARP,
    preempt,
    neutral: false,
    ignoreifstate: false,
    srcip: ip(src),
  };
}

function nodeParams(i: number, rand: () => number): GroupParams {
  // Some nodes share a skew so that the equal-interval tie-break is exercised.
  const advskew = [0, 0, 20, 20, 100, 100][i % 6] + (rand() < 0.2 ? 1 : 0);
  const preempt = rand() < 0.5;
  // Addresses whose natural and ucarp (little-endian) orders disagree.
  return { ...carpParams(advskew, `192.0.${(i * 37) % 250}.${1 + ((i * 11) % 250)}`, preempt), vhid: 7 };
}

/** Chaos for `chaosMs`, then a healed network; returns the time chaos ended. */
function chaos(sim: Simulation, from: number, chaosMs: number, seedRand: () => number): number {
  const n = sim.nodes.length;
  let t = from;
  const end = from + chaosMs;
  while (t < end) {
    t += 200 + seedRand() * 1800;
    if (t >= end) break;
    const r = seedRand();
    const id = Math.floor(seedRand() * n);
    const when = t;
    if (r < 0.2) sim.at(when, () => (sim.loss = seedRand() * 0.5));
    else if (r < 0.4) sim.at(when, () => sim.setPartition(id, Math.floor(seedRand() * 3)));
    else if (r < 0.55) sim.at(when, () => sim.nodes[id].alive && sim.kill(id));
    else if (r < 0.7) sim.at(when, () => !sim.nodes[id].alive && sim.start(id));
    else if (r < 0.8) sim.at(when, () => sim.nodes[id].alive && sim.stop(id));
    else sim.at(when, () => sim.nodes.forEach((x) => sim.setPartition(x.id, 0)));
  }
  sim.at(end, () => {
    sim.loss = 0;
    sim.nodes.forEach((x) => sim.setPartition(x.id, 0));
    // At least one node must be up for "exactly one master" to be possible.
    if (!sim.nodes.some((x) => x.alive)) sim.start(0);
  });
  return end;
}

/** Each node started at a random moment within the first 50 ms. */
function staggeredStart(sim: Simulation, rand: () => number): void {
  sim.nodes.forEach((_, i) => sim.at(rand() * 50, () => sim.start(i)));
}

/**
 * `rounds` rounds of chaos, each followed by a stable network: `settleMs` after it heals there
 * is exactly one master, and it stays exactly one for a further 10 s of steady state.
 */
function convergesAfterChaos(sim: Simulation, rand: () => number, rounds: number, settleMs: number): void {
  let t = 0;
  for (let round = 0; round < rounds; round++) {
    t = chaos(sim, t, 20000, rand);
    const settle = t + settleMs;
    sim.runUntil(settle);
    for (let probe = settle; probe <= settle + 10000; probe += 250) {
      sim.runUntil(probe);
      const m = sim.masters();
      assert.equal(m.length, 1, `seed ${sim.seed} round ${round} t=${probe}: masters ${JSON.stringify(m)}`);
    }
    t = sim.now;
  }
}

/** The nodes started together and run for 10 s: node 0 must be the only master. */
function settledOnFirst(seed: number, params: GroupParams[]): Simulation {
  const sim = new Simulation(seed, params);
  params.forEach((_, i) => sim.start(i));
  sim.runUntil(10000);
  assert.deepEqual(sim.masters(), [0]);
  return sim;
}

/** The longest dead time of the groups. */
const maxMasterDown = (params: GroupParams[]) =>
  Math.max(...params.map((p) => masterDownMs(initialState(p, 0))));

for (const seed of [1, 2, 3, 4, 5, 6, 7, 8, 42, 1234]) {
  test(`simulation seed ${seed}: 6 nodes, loss, partitions, kills and restarts converge to one master`, () => {
    const rand = lehmer(seed * 7919);
    const params = Array.from({ length: 6 }, (_, i) => nodeParams(i, rand));
    const sim = new Simulation(seed, params);
    staggeredStart(sim, rand);
    const maxInterval = Math.max(...params.map((p) => 1000 * p.advbase + (p.advskew * 1000) / 256));
    // Converged after the dead time plus two intervals of a stable network, round after round.
    convergesAfterChaos(sim, rand, 6, maxMasterDown(params) + 2 * maxInterval);
    assert.deepEqual(sim.violations, []);
    assert.ok(sim.transitions.length > 10, 'the chaos must actually cause transitions');
  });
}

test('a backup takes over exactly at its dead time after the master dies, lowest interval wins', () => {
  const params = [0, 50, 100].map((skew, i) => carpParams(skew, `198.51.100.${i + 1}`, true));
  const sim = settledOnFirst(99, params);
  const lastAdvert = Math.floor((10000 - 3000) / 1000) * 1000 + 3000; // node 0 sends on whole seconds
  sim.kill(0);
  sim.runUntil(30000);
  assert.deepEqual(sim.masters(), [1]);
  const takeover = sim.transitions.find((x) => x.node === 1 && x.to === 'MASTER')!;
  assert.equal(takeover.at, lastAdvert + 0.3 + 3000 + (50 * 1000) / 256);
  assert.deepEqual(sim.violations, []);
});

test('a graceful stop hands mastership over at once instead of after the dead time', () => {
  const params = [0, 10].map((skew, i) => carpParams(skew, `203.0.113.${i + 1}`, false));
  const sim = new Simulation(5, params);
  sim.start(0);
  sim.runUntil(5000);
  sim.start(1);
  sim.runUntil(10000);
  assert.deepEqual(sim.masters(), [0]);
  sim.stop(0);
  sim.runUntil(10001);
  assert.deepEqual(sim.masters(), [1]);
});

function vrrpNodeParams(i: number, rand: () => number): GroupParams {
  // Shared priorities exercise the tie broken by the higher address.
  const priority = [100, 100, 150, 150, 200, 254][i % 6] - (rand() < 0.2 ? 1 : 0);
  const preempt = rand() < 0.7;
  return { ...vrrpParams(priority, `198.51.${(i * 37) % 250}.${1 + ((i * 11) % 250)}`), preempt };
}

for (const seed of [1, 2, 3, 5, 8, 13, 42, 4242]) {
  test(`vrrp simulation seed ${seed}: 6 routers converge to one master, none takes over early`, () => {
    const rand = lehmer(seed * 104729);
    const params = Array.from({ length: 6 }, (_, i) => vrrpNodeParams(i, rand));
    const sim = new Simulation(seed, params);
    staggeredStart(sim, rand);
    convergesAfterChaos(sim, rand, 6, maxMasterDown(params) + 2 * 1000);
    assert.deepEqual(sim.violations, []);
    assert.ok(sim.transitions.length > 10, 'the chaos must actually cause transitions');
  });
}

test('vrrp: the best backup takes over after its skew time when the master stops with priority 0', () => {
  const params = [200, 150, 100].map((priority, i) => vrrpParams(priority, `203.0.113.${i + 1}`));
  const sim = settledOnFirst(7, params);
  sim.stop(0);
  const stoppedAt = sim.now;
  sim.runUntil(20000);
  assert.deepEqual(sim.masters(), [1]);
  const takeover = sim.transitions.find((x) => x.node === 1 && x.to === 'MASTER' && x.at > stoppedAt)!;
  // Delivery delay 0.3 ms, then Skew_Time of priority 150 at a 1 s interval.
  assert.equal(takeover.at, stoppedAt + 0.3 + ((256 - 150) * 1000) / 256);
  assert.deepEqual(sim.violations, []);
});

test('vrrp: after a SIGKILL the best backup takes over at its Master_Down_Interval', () => {
  const params = [200, 150, 100].map((priority, i) => vrrpParams(priority, `203.0.113.${i + 1}`));
  const sim = settledOnFirst(8, params);
  const last = Math.max(...sim.transitions.filter((x) => x.node === 0).map((x) => x.at));
  const lastAdvert = last + Math.floor((10000 - last) / 1000) * 1000;
  sim.kill(0);
  sim.runUntil(20000);
  assert.deepEqual(sim.masters(), [1]);
  const takeover = sim.transitions.find((x) => x.node === 1 && x.to === 'MASTER')!;
  assert.equal(takeover.at, lastAdvert + 0.3 + 3000 + ((256 - 150) * 1000) / 256);
  assert.deepEqual(sim.violations, []);
});

function vrrpParams(priority: number, src: string): GroupParams {
  return {
    vhid: 30,
    advbase: 1,
    advskew: 0,
    deadratio: 3,
    protocol: 'vrrp3',
    priority,
    advertInterval: 100,
    preempt: true,
    neutral: false,
    ignoreifstate: false,
    srcip: ip(src),
  };
}

for (const [seed, protocol] of [
  [11, 'carp'],
  [12, 'carp'],
  [13, 'carp'],
  [21, 'vrrp3'],
  [22, 'vrrp3'],
] as const) {
  test(`simulation seed ${seed} (${protocol}): restarts in place of every node, master included, never move mastership`, () => {
    const rand = lehmer(seed * 7919);
    const params = Array.from({ length: 4 }, (_, i) =>
      protocol === 'vrrp3' ? vrrpNodeParams(i, rand) : nodeParams(i, rand),
    );
    const sim = new Simulation(seed, params);
    params.forEach((_, i) => sim.start(i));
    sim.runUntil(5000);
    assert.equal(sim.masters().length, 1);
    const master = sim.masters()[0];
    const settledAt = sim.transitions.length;
    // Each node restarts in place several times; the new image takes up to 2.5 s to start,
    // short of the 3 s dead time. Never two at once (one daemon per node, one node at a time).
    let t = 5000;
    for (let k = 0; k < 12; k++) {
      const id = k % params.length;
      const down = rand() * 2500;
      t += 500 + rand() * 1000;
      sim.at(t, () => sim.restartInPlace(id, down));
      t += down;
    }
    sim.runUntil(t + 10_000);
    assert.deepEqual(sim.violations, []);
    assert.deepEqual(sim.masters(), [master]);
    // The only transitions after the start: each image leaving INIT in its handed-over state.
    const later = sim.transitions.slice(settledAt);
    assert.equal(later.length, 12);
    assert.ok(
      later.every((x) => x.reason === 'restart'),
      JSON.stringify(later.filter((x) => x.reason !== 'restart')),
    );
  });
}

for (const [seed, protocol] of [
  [31, 'carp'],
  [32, 'carp'],
  [33, 'vrrp3'],
] as const) {
  test(`simulation seed ${seed} (${protocol}): timers woken early (a batching scheduler) — masters advertise at most the slack early, backups never take over early`, () => {
    const rand = lehmer(seed * 7919);
    const params = Array.from({ length: 6 }, (_, i) =>
      protocol === 'vrrp3' ? vrrpNodeParams(i, rand) : nodeParams(i, rand),
    );
    const sim = new Simulation(seed, params);
    // Wake-ups up to three slacks early: the engine alone decides what is due.
    sim.earlyWake = 3 * ADVERT_SLACK_MS;
    staggeredStart(sim, rand);
    convergesAfterChaos(sim, rand, 4, maxMasterDown(params) + 2500);
    // The sim's checks: no master-down before (or after) its deadline, no advertisement
    // before its deadline less the slack.
    assert.deepEqual(sim.violations, []);
    assert.ok(sim.earlyAdverts > 20, `advertisements sent early: ${sim.earlyAdverts}`);
  });
}

for (const [seed, protocol, earlyWake] of [
  [51, 'carp', 0],
  [52, 'carp', 3 * ADVERT_SLACK_MS],
  [53, 'vrrp3', 0],
  [54, 'vrrp3', 3 * ADVERT_SLACK_MS],
] as const) {
  test(`simulation seed ${seed} (${protocol}${earlyWake ? ', early wake-ups' : ''}): stepping only the last of a run of steady advertisements, and no steady timer, decides exactly as stepping each`, () => {
    const run = (deferSteady: boolean) => {
      const rand = lehmer(seed * 7919);
      const params = Array.from({ length: 6 }, (_, i) =>
        protocol === 'vrrp3' ? vrrpNodeParams(i, rand) : nodeParams(i, rand),
      );
      const sim = new Simulation(seed, params);
      sim.earlyWake = earlyWake;
      sim.deferSteady = deferSteady;
      staggeredStart(sim, rand);
      convergesAfterChaos(sim, rand, 4, maxMasterDown(params) + 2500);
      sim.nodes.forEach((n) => n.alive && sim.restartInPlace(n.id, 1000));
      sim.runUntil(sim.now + 30_000);
      assert.deepEqual(sim.violations, []);
      return sim;
    };
    const each = run(false);
    const last = run(true);
    assert.equal(each.deferred + each.deferredTimers, 0);
    assert.ok(last.deferred > 50, `deferred: ${last.deferred}`);
    assert.ok(last.deferredTimers > 50, `timers deferred: ${last.deferredTimers}`);
    assert.ok(each.transitions.length > 10, 'the chaos must actually cause transitions');
    assert.deepEqual(last.transitions, each.transitions);
    assert.deepEqual(last.masters(), each.masters());
  });
}
