import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GROUP_DEFAULTS } from '../../src/config/settings';
import { ipv4ToInt } from '../../src/net/ipv4';
import {
  Action,
  Event,
  GroupParams,
  GroupState,
  initialState,
  nextDeadline,
  earliestDeadline,
  advertSlackMs,
  ADVERT_SLACK_MS,
  step,
  advertisedTiming,
  advertisedPriority,
  ucarpAddressOrder,
  steadyAdvert,
  steadyDeadline,
  steadyTimer,
  steadyAdvertAt,
  afterSteadyTimers,
} from '../../src/engine/group';

const ip = ipv4ToInt;

function params(p: Partial<GroupParams> = {}): GroupParams {
  const d = GROUP_DEFAULTS;
  return {
    vhid: 1,
    protocol: d.protocol,
    priority: d.priority,
    advertInterval: d.advert_interval * 100,
    advbase: d.advbase,
    advskew: d.advskew,
    deadratio: d.deadratio,
    preempt: d.preempt,
    neutral: d.neutral,
    ignoreifstate: d.ignoreifstate,
    srcip: ip('192.0.2.1'),
    ...p,
  };
}

/** A group driven by a fake clock; collects every action. */
class Driver {
  s: GroupState;
  actions: Action[] = [];
  constructor(
    p: Partial<GroupParams> = {},
    public now = 1000,
  ) {
    this.s = initialState(params(p), now);
  }
  ev(e: Event): Action[] {
    const r = step(this.s, e, this.now);
    this.s = r.state;
    this.actions.push(...r.actions);
    return r.actions;
  }
  /** Advances the clock to `t`, firing every deadline on the way exactly on time. */
  runUntil(t: number): Action[] {
    const out: Action[] = [];
    for (;;) {
      const d = nextDeadline(this.s);
      if (d === null || d > t) break;
      this.now = d;
      out.push(...this.ev({ type: 'timer' }));
    }
    this.now = t;
    return out;
  }
  advert(src: string, advbase = 1, advskew = 0): Action[] {
    return this.ev({ type: 'advert', src: ip(src), advbase, advskew });
  }
}

const transitions = (a: Action[]) =>
  a.filter((x) => x.type === 'transition').map((x) => (x.type === 'transition' ? `${x.to}:${x.reason}` : ''));
const sends = (a: Action[]) => a.filter((x) => x.type === 'send');
const garps = (a: Action[]) => a.filter((x) => x.type === 'garp').length;

test('start goes INIT → BACKUP with the downscript, unless neutral', () => {
  const d = new Driver();
  const a = d.ev({ type: 'start', linkUp: true, present: true });
  assert.deepEqual(a, [{ type: 'transition', from: 'INIT', to: 'BACKUP', reason: 'start', runScript: true }]);
  assert.equal(d.s.masterDownAt, 1000 + 3000);
  assert.deepEqual(new Driver({ neutral: true }).ev({ type: 'start', linkUp: true, present: true }), [
    { type: 'transition', from: 'INIT', to: 'BACKUP', reason: 'start', runScript: false },
  ]);
});

test('master-down timeout is deadratio × advbase + advskew/256 of our own timing', () => {
  const d = new Driver({ advbase: 2, advskew: 128, deadratio: 4 });
  d.ev({ type: 'start', linkUp: true, present: true });
  assert.equal(d.s.masterDownAt, 1000 + 8000 + 500);
  assert.deepEqual(d.runUntil(9499), []);
  const a = d.runUntil(9500);
  assert.deepEqual(transitions(a), ['MASTER:master-down']);
  assert.equal(garps(a), 1);
  assert.deepEqual(sends(a), [{ type: 'send', advbase: 2, advskew: 128 }]);
  assert.equal(d.s.advertAt, 9500 + 2500);
});

test('a master advertises once per interval without drift, even when woken late', () => {
  const d = new Driver({ advskew: 64 });
  d.ev({ type: 'start', linkUp: true, present: true });
  d.runUntil(4250); // master at 4250
  assert.equal(d.s.state, 'MASTER');
  d.now = 4250 + 1250 + 7; // the event loop was 7 ms late
  d.ev({ type: 'timer' });
  assert.equal(d.s.advertAt, 4250 + 2 * 1250);
  // A stall longer than an interval resynchronises instead of bursting.
  d.now = 20000;
  const a = d.ev({ type: 'timer' });
  assert.equal(sends(a).length, 1);
  assert.equal(d.s.advertAt, 21250);
});

test('a master may advertise up to the slack early, and the next one stays on the old rhythm', () => {
  const d = new Driver({ advskew: 64 });
  d.ev({ type: 'start', linkUp: true, present: true });
  d.runUntil(4250); // master at 4250, next advertisement due at 5500
  assert.equal(d.s.advertAt, 5500);
  assert.equal(advertSlackMs(d.s), ADVERT_SLACK_MS);
  assert.equal(earliestDeadline(d.s), 5500 - ADVERT_SLACK_MS);
  assert.equal(nextDeadline(d.s), 5500);
  // Before the window: nothing, the deadline stays.
  d.now = 5500 - ADVERT_SLACK_MS - 0.5;
  assert.deepEqual(d.ev({ type: 'timer' }), []);
  assert.equal(d.s.advertAt, 5500);
  // At the window's start: sent, and the next one is due a whole interval after the deadline.
  d.now = 5500 - ADVERT_SLACK_MS;
  assert.deepEqual(sends(d.ev({ type: 'timer' })), [{ type: 'send', advbase: 1, advskew: 64 }]);
  assert.equal(d.s.advertAt, 5500 + 1250);
  // Sent early every time, the average rate is still one per interval.
  for (let i = 2; i <= 10; i++) {
    d.now = d.s.advertAt! - ADVERT_SLACK_MS;
    assert.equal(sends(d.ev({ type: 'timer' })).length, 1);
  }
  assert.equal(d.s.advertAt, 5500 + 10 * 1250);
});

test("a backup's master-down never fires early, whatever the advertisement slack", () => {
  const d = new Driver();
  d.ev({ type: 'start', linkUp: true, present: true });
  assert.equal(d.s.masterDownAt, 4000);
  assert.equal(earliestDeadline(d.s), 4000, 'no slack for a backup');
  for (const early of [ADVERT_SLACK_MS, 1, 0.001]) {
    d.now = 4000 - early;
    assert.deepEqual(d.ev({ type: 'timer' }), []);
    assert.equal(d.s.state, 'BACKUP');
  }
  d.now = 4000;
  assert.deepEqual(transitions(d.ev({ type: 'timer' })), ['MASTER:master-down']);
});

test('the slack is at most a tenth of a short interval', () => {
  // VRRP at 2 cs: a 20 ms interval may go 2 ms early, not 5.
  const d = new Driver({ protocol: 'vrrp3', priority: 255, advertInterval: 2 });
  d.ev({ type: 'start', linkUp: true, present: true });
  assert.equal(d.s.state, 'MASTER');
  assert.equal(advertSlackMs(d.s), 2);
  const due = d.s.advertAt!;
  d.now = due - 2.5;
  assert.deepEqual(d.ev({ type: 'timer' }), []);
  d.now = due - 2;
  assert.equal(d.ev({ type: 'timer' }).filter((a) => a.type === 'sendVrrp').length, 1);
  assert.equal(d.s.advertAt, due + 20);
});

test('the second gratuitous ARP rides on the second periodic advertisement', () => {
  const d = new Driver();
  d.ev({ type: 'start', linkUp: true, present: true });
  d.runUntil(4000);
  assert.equal(d.s.state, 'MASTER');
  assert.equal(garps(d.runUntil(5000)), 0);
  assert.equal(garps(d.runUntil(6000)), 1);
  assert.equal(garps(d.runUntil(20000)), 0);
});

test('a backup restarts its master-down timer on every valid advertisement', () => {
  const d = new Driver();
  d.ev({ type: 'start', linkUp: true, present: true });
  for (let t = 1500; t < 10000; t += 1000) {
    d.runUntil(t);
    d.advert('192.0.2.2', 1, 0);
  }
  assert.equal(d.s.state, 'BACKUP');
  assert.equal(d.s.masterDownAt, 9500 + 3000);
  assert.deepEqual(d.s.master, { src: ip('192.0.2.2'), advbase: 1, advskew: 0 });
  assert.deepEqual(transitions(d.runUntil(12500)), ['MASTER:master-down']);
});

test('preemption: a backup with a shorter interval takes over at once only with preempt', () => {
  const p = new Driver({ preempt: true, advskew: 10 });
  p.ev({ type: 'start', linkUp: true, present: true });
  assert.deepEqual(transitions(p.advert('192.0.2.2', 1, 50)), ['MASTER:preempt']);
  const q = new Driver({ preempt: false, advskew: 10 });
  q.ev({ type: 'start', linkUp: true, present: true });
  assert.deepEqual(transitions(q.advert('192.0.2.2', 1, 50)), []);
  // Equal interval is not "longer": no preemption.
  const r = new Driver({ preempt: true, advskew: 50 });
  r.ev({ type: 'start', linkUp: true, present: true });
  assert.deepEqual(transitions(r.advert('192.0.2.2', 1, 50)), []);
});

test('master going to time out: an interval longer than our dead time means take over now', () => {
  const d = new Driver();
  d.ev({ type: 'start', linkUp: true, present: true });
  assert.deepEqual(transitions(d.advert('192.0.2.2', 3, 1)), ['MASTER:master-timing-out']);
  const e = new Driver();
  e.ev({ type: 'start', linkUp: true, present: true });
  assert.deepEqual(transitions(e.advert('192.0.2.2', 3, 0)), [], 'exactly the dead time is not longer');
  const bow = new Driver({ advbase: 10, deadratio: 20 });
  bow.ev({ type: 'start', linkUp: true, present: true });
  assert.deepEqual(transitions(bow.advert('192.0.2.2', 255, 255)), ['MASTER:master-timing-out']);
});

function master(p: Partial<GroupParams> = {}): Driver {
  const d = new Driver(p);
  d.ev({ type: 'start', linkUp: true, present: true });
  d.runUntil(d.s.masterDownAt!);
  assert.equal(d.s.state, 'MASTER');
  d.actions = [];
  return d;
}

test('a master yields to a better master after one more advertisement', () => {
  const d = master({ advskew: 100 });
  const a = d.advert('192.0.2.2', 1, 10);
  assert.deepEqual(a, [
    { type: 'send', advbase: 1, advskew: 100 },
    { type: 'transition', from: 'MASTER', to: 'BACKUP', reason: 'better-master', runScript: true },
  ]);
  assert.equal(d.s.advertAt, null);
  assert.equal(d.s.masterDownAt, d.now + 3000 + 390.625);
});

test('a master facing a worse master re-asserts with a gratuitous ARP now and two adverts later', () => {
  const d = master({ advskew: 10 });
  const t0 = d.now;
  assert.deepEqual(d.advert('192.0.2.2', 1, 100), [{ type: 'garp' }]);
  assert.equal(d.s.state, 'MASTER');
  const later = d.runUntil(t0 + 3000);
  assert.equal(garps(later), 1);
});

test('equal intervals: tie-break compares addresses in ucarp (x86 host) byte order', () => {
  // Naturally 10.0.2.1 > 10.0.1.2, but read little-endian 10.0.2.1 is the lower one.
  assert.ok(ucarpAddressOrder(ip('10.0.2.1')) < ucarpAddressOrder(ip('10.0.1.2')));
  const a = master({ srcip: ip('10.0.1.2') });
  assert.deepEqual(transitions(a.advert('10.0.2.1')), ['BACKUP:better-master']);
  const b = master({ srcip: ip('10.0.2.1') });
  assert.deepEqual(transitions(b.advert('10.0.1.2')), []);
  assert.equal(b.s.state, 'MASTER');
});

test('carrier loss is FAULT without timers or bow-out; carrier back is BACKUP with a dead time', () => {
  const d = master();
  const a = d.ev({ type: 'link', up: false });
  assert.deepEqual(transitions(a), ['FAULT:link-down']);
  assert.deepEqual(sends(a), [], 'nothing crosses a dead link');
  assert.equal(nextDeadline(d.s), null);
  assert.deepEqual(d.runUntil(d.now + 60000), []);
  assert.deepEqual(d.advert('192.0.2.2'), [], 'advertisements are ignored without carrier');
  assert.deepEqual(transitions(d.ev({ type: 'link', up: true })), ['BACKUP:link-up']);
  assert.equal(d.s.masterDownAt, d.now + 3000);
});

test('ignoreifstate: carrier loss changes nothing', () => {
  const d = master({ ignoreifstate: true });
  assert.deepEqual(d.ev({ type: 'link', up: false }), []);
  assert.equal(d.s.state, 'MASTER');
  assert.equal(sends(d.runUntil(d.now + 1000)).length, 1);
});

test('a deleted interface takes a MASTER out even with ignoreifstate; its return waits a dead time', () => {
  const d = master({ ignoreifstate: true });
  const a = d.ev({ type: 'interface', present: false, linkUp: false });
  assert.deepEqual(transitions(a), ['FAULT:interface-gone']);
  assert.equal(nextDeadline(d.s), null);
  assert.deepEqual(d.runUntil(d.now + 10_000), []);
  // Adverts cannot arrive on a missing interface; a stray one changes nothing.
  assert.deepEqual(transitions(d.advert('192.0.2.2', 1, 100)), []);
  const back = d.now;
  d.ev({ type: 'interface', present: true, linkUp: true });
  assert.equal(d.s.masterDownAt, back + 3000);
  assert.deepEqual(transitions(d.runUntil(back + 3000)), ['MASTER:master-down']);
});

test('a group started before its interface exists waits, then elects when it appears', () => {
  const d = new Driver();
  assert.deepEqual(transitions(d.ev({ type: 'start', linkUp: false, present: false })), ['FAULT:start']);
  assert.equal(nextDeadline(d.s), null);
  d.ev({ type: 'link', up: true });
  assert.equal(nextDeadline(d.s), null);
  d.ev({ type: 'interface', present: true, linkUp: true });
  assert.deepEqual(transitions(d.runUntil(d.now + 3000)), ['MASTER:master-down']);
});

test('three failed sends advertise advskew 240 until three sends succeed', () => {
  const d = master({ advskew: 5 });
  for (let i = 0; i < 2; i++) d.ev({ type: 'sendResult', ok: false });
  assert.equal(advertisedTiming(d.s).advskew, 5);
  d.ev({ type: 'sendResult', ok: false });
  assert.equal(advertisedTiming(d.s).advskew, 240);
  assert.deepEqual(sends(d.runUntil(d.s.advertAt!)), [{ type: 'send', advbase: 1, advskew: 240 }]);
  d.ev({ type: 'sendResult', ok: true });
  d.ev({ type: 'sendResult', ok: true });
  assert.equal(advertisedTiming(d.s).advskew, 240);
  d.ev({ type: 'sendResult', ok: true });
  assert.equal(advertisedTiming(d.s).advskew, 5);
});

test('step-down (SIGUSR2) bows out on the wire, then stays out of elections for 3 s', () => {
  const d = master({ preempt: true, advskew: 0 });
  const t0 = d.now;
  const a = d.ev({ type: 'stepDown' });
  assert.deepEqual(sends(a), [{ type: 'send', advbase: 255, advskew: 255 }]);
  assert.deepEqual(transitions(a), ['BACKUP:step-down']);
  // A worse master would normally be preempted; not during the hold.
  d.now = t0 + 1000;
  assert.deepEqual(transitions(d.advert('192.0.2.2', 1, 100)), []);
  d.now = t0 + 3500;
  assert.deepEqual(transitions(d.advert('192.0.2.2', 1, 100)), ['MASTER:preempt']);
});

test('a stepped-down lone node takes mastership back only after the hold and its dead time', () => {
  const d = master();
  const t0 = d.now;
  d.ev({ type: 'stepDown' });
  assert.equal(d.s.masterDownAt, t0 + 3000);
  assert.deepEqual(transitions(d.runUntil(t0 + 3000)), ['MASTER:master-down']);
});

test('stop: a master sends the bow-out, then goes BACKUP with its downscript and schedules nothing', () => {
  const d = master();
  const a = d.ev({ type: 'stop', bowOut: true });
  assert.deepEqual(a, [
    { type: 'send', advbase: 255, advskew: 255 },
    { type: 'transition', from: 'MASTER', to: 'BACKUP', reason: 'stop', runScript: true },
  ]);
  assert.equal(nextDeadline(d.s), null);
  assert.deepEqual(d.advert('192.0.2.2', 255, 255), []);
  const b = new Driver();
  b.ev({ type: 'start', linkUp: true, present: true });
  assert.deepEqual(b.ev({ type: 'stop', bowOut: true }), []);
});

test('update in place: a new advskew applies to the next advertisement without a transition', () => {
  const d = master({ advskew: 0 });
  const next = d.s.advertAt!;
  const a = d.ev({ type: 'update', params: { ...d.s.params, advskew: 128 } });
  assert.deepEqual(a, []);
  assert.equal(d.s.state, 'MASTER');
  assert.equal(d.s.advertAt, next + 500);
  assert.deepEqual(sends(d.runUntil(next + 500)), [{ type: 'send', advbase: 1, advskew: 128 }]);
  const b = new Driver();
  b.ev({ type: 'start', linkUp: true, present: true });
  b.ev({ type: 'update', params: { ...b.s.params, advbase: 2 } });
  assert.equal(b.s.masterDownAt, 1000 + 6000);
});

test('promote advertises advskew 0 and preempts; demote override hands over and never preempts', () => {
  const d = new Driver({ advskew: 100 });
  d.ev({ type: 'start', linkUp: true, present: true });
  assert.deepEqual(transitions(d.advert('192.0.2.2', 1, 50)), []);
  d.ev({ type: 'override', override: 'promote' });
  assert.deepEqual(transitions(d.advert('192.0.2.2', 1, 50)), ['MASTER:preempt']);
  assert.deepEqual(sends(d.actions).at(-1), { type: 'send', advbase: 1, advskew: 0 });
  const m = master({ preempt: true });
  const a = m.ev({ type: 'override', override: 'demote' });
  assert.deepEqual(sends(a), [{ type: 'send', advbase: 255, advskew: 255 }]);
  m.now += 5000;
  assert.deepEqual(transitions(m.advert('192.0.2.2', 1, 200)), []);
  m.ev({ type: 'override', override: 'none' });
  assert.deepEqual(transitions(m.advert('192.0.2.2', 1, 200)), ['MASTER:preempt']);
});

const health = (trackFault: boolean, demotion = 0, syncFault = false): Event => ({
  type: 'health',
  trackFault,
  syncFault,
  demotion,
});

test('a failed tracker without weight: a MASTER bows out into FAULT, never takes over, returns via BACKUP', () => {
  const d = master({ preempt: true });
  const a = d.ev(health(true));
  assert.deepEqual(sends(a), [{ type: 'send', advbase: 255, advskew: 255 }]);
  assert.deepEqual(
    a.filter((x) => x.type === 'transition'),
    [{ type: 'transition', from: 'MASTER', to: 'FAULT', reason: 'fault', runScript: true }],
  );
  assert.equal(nextDeadline(d.s), null);
  assert.deepEqual(transitions(d.advert('192.0.2.2', 1, 200)), [], 'a FAULT group never preempts');
  assert.deepEqual(d.runUntil(d.now + 60_000), []);
  const t = d.now;
  assert.deepEqual(transitions(d.ev(health(false))), ['BACKUP:fault-cleared']);
  assert.equal(d.s.masterDownAt, t + 3000);
  assert.deepEqual(transitions(d.advert('192.0.2.2', 1, 200)), ['MASTER:preempt']);
});

test('a BACKUP entering FAULT runs no script; start in FAULT runs the downscript unless neutral', () => {
  const b = new Driver();
  b.ev({ type: 'start', linkUp: true, present: true });
  const a = b.ev(health(true));
  assert.deepEqual(
    a.filter((x) => x.type === 'transition'),
    [{ type: 'transition', from: 'BACKUP', to: 'FAULT', reason: 'fault', runScript: false }],
  );
  const f = new Driver();
  f.ev(health(true));
  assert.deepEqual(transitions(f.ev({ type: 'start', linkUp: true, present: true })), ['FAULT:start']);
});

test('demotion raises the advertised advskew, capped at 240, never lowering one above it', () => {
  const d = master({ advskew: 10 });
  d.ev(health(false, 50));
  assert.equal(advertisedTiming(d.s).advskew, 60);
  d.ev(health(false, 1000));
  assert.equal(advertisedTiming(d.s).advskew, 240);
  const high = master({ advskew: 250 });
  high.ev(health(false, 100));
  assert.equal(advertisedTiming(high.s).advskew, 250);
  d.ev(health(false, 0));
  assert.equal(advertisedTiming(d.s).advskew, 10);
});

test('a demoted master is preempted by a peer with preempt; it yields on the next advertisement', () => {
  const m = master({ advskew: 0 });
  m.ev(health(false, 100));
  const next = sends(m.runUntil(m.now + 1500));
  assert.equal(next.at(-1)?.type === 'send' && next.at(-1)?.advskew, 100);
  const peer = new Driver({ advskew: 50, preempt: true, srcip: ipv4ToInt('192.0.2.2') });
  peer.ev({ type: 'start', linkUp: true, present: true });
  assert.deepEqual(transitions(peer.advert('192.0.2.1', 1, 100)), ['MASTER:preempt']);
  assert.deepEqual(transitions(m.advert('192.0.2.2', 1, 50)), ['BACKUP:better-master']);
});

test('held by its sync group: FAULT like its own failure, and it leaves when the set is clear', () => {
  const d = master();
  assert.deepEqual(transitions(d.ev(health(false, 0, true))), ['FAULT:fault']);
  assert.deepEqual(transitions(d.ev(health(false, 0, false))), ['BACKUP:fault-cleared']);
});

// ---- VRRPv3 (docs/protocol.md §22): the same engine with params.protocol = 'vrrp3' ----

/** A VRRP group: priority 100, 1 s interval, preempt as RFC 5798's default. */
class VrrpDriver extends Driver {
  constructor(p: Partial<GroupParams> = {}, now = 1000) {
    super({ protocol: 'vrrp3', priority: 100, advertInterval: 100, preempt: true, ...p }, now);
  }
  vrrp(src: string, priority: number, interval = 100): Action[] {
    return this.ev({ type: 'vrrpAdvert', src: ip(src), priority, interval });
  }
}

const vsends = (a: Action[]) => a.filter((x) => x.type === 'sendVrrp');
/** Master_Down_Interval of RFC 5798 §6.1 in ms: 3 × interval + (256 − priority) / 256 × interval. */
const downMs = (priority: number, intervalMs = 1000) =>
  3 * intervalMs + ((256 - priority) * intervalMs) / 256;

test('vrrp: a backup becomes master after Master_Down_Interval and advertises its priority', () => {
  const d = new VrrpDriver({ priority: 150 });
  d.ev({ type: 'start', linkUp: true, present: true });
  assert.equal(d.s.masterDownAt, 1000 + downMs(150));
  assert.deepEqual(d.runUntil(1000 + downMs(150) - 1), []);
  const a = d.runUntil(1000 + downMs(150));
  assert.deepEqual(transitions(a), ['MASTER:master-down']);
  assert.deepEqual(vsends(a), [{ type: 'sendVrrp', priority: 150, interval: 100 }]);
  assert.deepEqual(sends(a), [], 'no CARP advertisement from a VRRP group');
  const periodic = d.runUntil(d.now + 3000);
  assert.equal(vsends(periodic).length, 3);
});

test('vrrp: the backup learns Master_Adver_Interval from the master', () => {
  const d = new VrrpDriver({ priority: 100, advertInterval: 100 });
  d.ev({ type: 'start', linkUp: true, present: true });
  d.now = 1200;
  d.vrrp('192.0.2.2', 200, 50);
  assert.equal(d.s.masterInterval, 50);
  assert.equal(d.s.masterDownAt, 1200 + downMs(100, 500));
  assert.deepEqual(d.s.master, { src: ip('192.0.2.2'), priority: 200, interval: 50 });
});

test('vrrp: the steady step keeps the same master, moves the deadline, and relearns a change', () => {
  const d = new VrrpDriver({ priority: 100 });
  d.ev({ type: 'start', linkUp: true, present: true });
  d.now = 1200;
  d.vrrp('192.0.2.2', 200);
  const first = d.s.master;
  d.now = 2200;
  d.vrrp('192.0.2.2', 200);
  assert.equal(d.s.master, first, 'the same master: its description is kept, not rebuilt');
  assert.equal(d.s.lastAdvertAt, 2200);
  assert.equal(d.s.masterDownAt, 2200 + downMs(100));
  d.now = 3200;
  d.vrrp('192.0.2.2', 201);
  assert.deepEqual(d.s.master, { src: ip('192.0.2.2'), priority: 201, interval: 100 });
  d.now = 4200;
  d.vrrp('192.0.2.2', 201, 50);
  assert.equal(d.s.masterInterval, 50);
  assert.equal(d.s.masterDownAt, 4200 + downMs(100, 500));
  d.now = 4700;
  d.vrrp('192.0.2.2', 201, 50);
  assert.equal(d.s.masterDownAt, 4700 + downMs(100, 500));
});

test('vrrp: priority 0 from the master makes the backup wait only Skew_Time', () => {
  const d = new VrrpDriver({ priority: 100 });
  d.ev({ type: 'start', linkUp: true, present: true });
  d.now = 1500;
  d.vrrp('192.0.2.2', 200);
  d.now = 2000;
  d.vrrp('192.0.2.2', 0);
  const skew = ((256 - 100) * 1000) / 256;
  assert.equal(d.s.masterDownAt, 2000 + skew);
  assert.deepEqual(transitions(d.runUntil(2000 + skew)), ['MASTER:master-down']);
});

test('vrrp: a master yields to a higher priority, and to an equal one from a higher address', () => {
  const up = () => {
    const d = new VrrpDriver({ priority: 100, srcip: ip('192.0.2.5') });
    d.ev({ type: 'start', linkUp: true, present: true });
    d.runUntil(1000 + downMs(100));
    assert.equal(d.s.state, 'MASTER');
    return d;
  };
  const higher = up();
  assert.deepEqual(transitions(higher.vrrp('192.0.2.2', 101)), ['BACKUP:better-master']);
  assert.equal(higher.s.masterDownAt, higher.now + downMs(100));
  const tieHigherAddr = up();
  assert.deepEqual(transitions(tieHigherAddr.vrrp('192.0.2.9', 100)), ['BACKUP:better-master']);
  const tieLowerAddr = up();
  const a = tieLowerAddr.vrrp('192.0.2.2', 100);
  assert.deepEqual(transitions(a), []);
  // The worse master hears us at once, and our addresses are re-asserted.
  assert.deepEqual(vsends(a), [{ type: 'sendVrrp', priority: 100, interval: 100 }]);
  assert.equal(garps(a), 1);
  const lower = up();
  assert.deepEqual(transitions(lower.vrrp('192.0.2.9', 99)), []);
  assert.equal(lower.s.state, 'MASTER');
});

test('vrrp: preemption: a better backup ignores a worse master and takes over at its down time', () => {
  const pre = new VrrpDriver({ priority: 200 });
  pre.ev({ type: 'start', linkUp: true, present: true });
  for (let t = 1500; t < 1000 + downMs(200); t += 1000) {
    pre.now = t;
    pre.vrrp('192.0.2.2', 100);
  }
  assert.equal(pre.s.masterDownAt, 1000 + downMs(200), 'the worse advertisements did not reset the timer');
  assert.deepEqual(transitions(pre.runUntil(1000 + downMs(200))), ['MASTER:master-down']);

  const nopre = new VrrpDriver({ priority: 200, preempt: false });
  nopre.ev({ type: 'start', linkUp: true, present: true });
  for (let t = 1500; t < 20000; t += 1000) {
    nopre.runUntil(t);
    nopre.vrrp('192.0.2.2', 100);
  }
  assert.equal(nopre.s.state, 'BACKUP');
});

test('vrrp: the address owner (255) is master at start', () => {
  const d = new VrrpDriver({ priority: 255 });
  const a = d.ev({ type: 'start', linkUp: true, present: true });
  assert.deepEqual(transitions(a), ['MASTER:start']);
  assert.deepEqual(vsends(a), [{ type: 'sendVrrp', priority: 255, interval: 100 }]);
});

test('vrrp: tracker weight lowers the priority (floor 1); demote hands over with priority 0', () => {
  const d = new VrrpDriver({ priority: 150 });
  d.ev({ type: 'start', linkUp: true, present: true });
  d.runUntil(1000 + downMs(150));
  d.ev({ type: 'health', trackFault: false, syncFault: false, demotion: 60 });
  assert.deepEqual(vsends(d.runUntil(d.now + 1000)), [{ type: 'sendVrrp', priority: 90, interval: 100 }]);
  d.ev({ type: 'health', trackFault: false, syncFault: false, demotion: 500 });
  assert.deepEqual(vsends(d.runUntil(d.now + 1000)), [{ type: 'sendVrrp', priority: 1, interval: 100 }]);
  d.ev({ type: 'health', trackFault: false, syncFault: false, demotion: 0 });
  const a = d.ev({ type: 'override', override: 'demote' });
  assert.deepEqual(vsends(a), [{ type: 'sendVrrp', priority: 0, interval: 100 }]);
  assert.deepEqual(transitions(a), ['BACKUP:demote']);
  d.ev({ type: 'override', override: 'promote' });
  assert.equal(advertisedPriority(d.s), 254);
});

test('vrrp: a graceful stop and a FAULT send priority 0; CARP advertisements are ignored', () => {
  const d = new VrrpDriver();
  d.ev({ type: 'start', linkUp: true, present: true });
  d.runUntil(1000 + downMs(100));
  assert.deepEqual(d.advert('192.0.2.9', 0, 0), [], 'a CARP advertisement never reaches VRRP rules');
  assert.equal(d.s.state, 'MASTER');
  const f = d.ev({ type: 'link', up: false });
  assert.deepEqual(vsends(f), [], 'over a dead link nothing is sent');
  d.ev({ type: 'link', up: true });
  d.runUntil(d.now + downMs(100));
  assert.equal(d.s.state, 'MASTER');
  const fault = d.ev({ type: 'health', trackFault: true, syncFault: false, demotion: 0 });
  assert.deepEqual(vsends(fault), [{ type: 'sendVrrp', priority: 0, interval: 100 }]);
  d.ev({ type: 'health', trackFault: false, syncFault: false, demotion: 0 });
  d.runUntil(d.now + downMs(100));
  const s = d.ev({ type: 'stop', bowOut: true });
  assert.deepEqual(vsends(s), [{ type: 'sendVrrp', priority: 0, interval: 100 }]);

  const carp = new Driver();
  carp.ev({ type: 'start', linkUp: true, present: true });
  const before = carp.s;
  assert.deepEqual(carp.ev({ type: 'vrrpAdvert', src: ip('192.0.2.2'), priority: 200, interval: 100 }), []);
  assert.equal(carp.s, before);
});

test('restart: a master handed over advertises at once, keeps its addresses, runs no script, sends no ARP', () => {
  const d = new Driver();
  const a = d.ev({ type: 'start', linkUp: true, present: true, resume: 'MASTER' });
  assert.deepEqual(a, [
    { type: 'send', advbase: 1, advskew: 0 },
    { type: 'transition', from: 'INIT', to: 'MASTER', reason: 'restart', runScript: false },
  ]);
  assert.equal(d.s.state, 'MASTER');
  assert.equal(d.s.advertAt, 1000 + 1000);
  assert.equal(d.s.delayedGarp, 0);
  // Then periodic advertisements as any master, and no gratuitous ARP riding on them.
  const later = d.runUntil(3500);
  assert.equal(sends(later).length, 2);
  assert.equal(garps(later), 0);
});

test('restart: a backup handed over listens a full dead time, without the downscript', () => {
  const d = new Driver();
  const a = d.ev({ type: 'start', linkUp: true, present: true, resume: 'BACKUP' });
  assert.deepEqual(a, [
    { type: 'transition', from: 'INIT', to: 'BACKUP', reason: 'restart', runScript: false },
  ]);
  assert.equal(d.s.masterDownAt, 1000 + 3000);
});

test('restart: a master handed over without carrier goes to FAULT as at any start', () => {
  const d = new Driver();
  const a = d.ev({ type: 'start', linkUp: false, present: true, resume: 'MASTER' });
  assert.deepEqual(transitions(a), ['FAULT:start']);
  assert.equal(sends(a).length, 0);
});

test('freeze: a master advertises once more (no bow-out), then nothing is armed and no state changes', () => {
  const d = new Driver();
  d.ev({ type: 'start', linkUp: true, present: true });
  d.runUntil(4000);
  assert.equal(d.s.state, 'MASTER');
  const a = d.ev({ type: 'freeze' });
  assert.deepEqual(a, [{ type: 'send', advbase: 1, advskew: 0 }]);
  assert.equal(d.s.state, 'MASTER');
  assert.equal(nextDeadline(d.s), null);
  assert.deepEqual(d.runUntil(20_000), []);
  assert.deepEqual(d.advert('192.0.2.2', 1, 0), [], 'a frozen group decides nothing');
  assert.deepEqual(d.ev({ type: 'freeze' }), []);
  // A frozen backup sends nothing.
  const b = new Driver();
  b.ev({ type: 'start', linkUp: true, present: true });
  assert.deepEqual(b.ev({ type: 'freeze' }), []);
  assert.equal(b.s.state, 'BACKUP');
  assert.equal(nextDeadline(b.s), null);
});

// ---- Deferred steady advertisements (docs/architecture.md) ----

/** The Lehmer generator: a fixed walk per seed. */
function walk(seed: number): () => number {
  let a = seed;
  return () => (a = (a * 16807) % 2147483647) / 2147483647;
}

/** Every state a random walk of events visits, both protocols, from a few settings. */
function visitedStates(seed: number, protocol: 'carp' | 'vrrp3'): GroupState[] {
  const rand = walk(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];
  const d = new Driver({
    protocol,
    advskew: pick([0, 50, 100]),
    priority: pick([50, 100, 200]),
    preempt: rand() < 0.5,
  });
  const out: GroupState[] = [];
  d.ev({ type: 'start', linkUp: true, present: true });
  const masters = ['192.0.2.2', '192.0.2.9', '192.0.2.1'];
  for (let i = 0; i < 400; i++) {
    d.now += rand() < 0.8 ? 200 + rand() * 900 : rand() * 5000;
    d.runUntil(d.now);
    const r = rand();
    const src = ip(pick(masters));
    if (r < 0.55) {
      if (protocol === 'carp')
        d.ev({ type: 'advert', src, advbase: 1, advskew: pick([0, 50, 100, 100, 255]) });
      else
        d.ev({
          type: 'vrrpAdvert',
          src,
          priority: pick([0, 50, 100, 200, 200, 255]),
          interval: pick([100, 100, 50]),
        });
    } else if (r < 0.65) d.ev({ type: 'override', override: pick(['none', 'demote', 'promote'] as const) });
    else if (r < 0.75)
      d.ev({ type: 'health', trackFault: rand() < 0.2, syncFault: false, demotion: pick([0, 0, 30, 200]) });
    else if (r < 0.8) d.ev({ type: 'stepDown' });
    else if (r < 0.85) d.ev({ type: 'link', up: rand() < 0.7 });
    else if (r < 0.9) d.ev({ type: 'update', params: { ...d.s.params, preempt: !d.s.params.preempt } });
    out.push(d.s);
  }
  return out;
}

test('steadyAdvert: its step only moves the deadline, to steadyDeadline, and stepping only the last of a run equals stepping each', () => {
  let checked = 0;
  let backupsWithout = 0;
  for (const protocol of ['carp', 'vrrp3'] as const)
    for (let seed = 1; seed <= 40; seed++)
      for (const s of visitedStates(seed * 7919, protocol)) {
        const r = steadyAdvert(s);
        if (r === null) {
          if (s.state === 'BACKUP') backupsWithout++;
          continue;
        }
        checked++;
        assert.equal(s.state, 'BACKUP');
        const t1 = (s.lastAdvertAt ?? s.since) + 1000;
        const one = step(s, r.event, t1);
        assert.deepEqual(one.actions, []);
        assert.equal(one.state.master, s.master, 'the same master description');
        assert.deepEqual(one.state, { ...s, lastAdvertAt: t1, masterDownAt: steadyDeadline(r, t1) });
        assert.equal(nextDeadline(one.state), steadyDeadline(r, t1));
        assert.equal(earliestDeadline(one.state), steadyDeadline(r, t1));
        assert.deepEqual(steadyAdvert(one.state), r, 'the same rule after it');
        const t2 = t1 + 999.5;
        assert.deepEqual(step(one.state, r.event, t2), step(s, r.event, t2));
      }
  assert.ok(checked > 2000, `states with a steady advertisement: ${checked}`);
  assert.ok(backupsWithout > 200, `backups without one: ${backupsWithout}`);
});

test('steadyAdvert: none for a master, in FAULT, stopped, before a preemption or time-out, after a VRRP shutdown', () => {
  const heard = (d: Driver, advskew: number) => {
    d.ev({ type: 'start', linkUp: true, present: true });
    d.now += 500;
    d.advert('192.0.2.2', 1, advskew);
    return d;
  };
  // The steady case, then each way out of it.
  assert.deepEqual(steadyAdvert(heard(new Driver({ advskew: 100 }), 0).s)?.event, {
    type: 'advert',
    src: ip('192.0.2.2'),
    advbase: 1,
    advskew: 0,
  });
  const master = new Driver({ advskew: 0 });
  master.ev({ type: 'start', linkUp: true, present: true });
  master.runUntil(5000);
  assert.equal(master.s.state, 'MASTER');
  assert.equal(steadyAdvert(master.s), null);
  const fault = heard(new Driver({ advskew: 100 }), 0);
  fault.ev({ type: 'link', up: false });
  assert.equal(steadyAdvert(fault.s), null);
  const stopped = heard(new Driver({ advskew: 100 }), 0);
  stopped.ev({ type: 'stop', bowOut: false });
  assert.equal(steadyAdvert(stopped.s), null);
  // Held after a step-down, a preempting backup follows a worse master; past the hold, the
  // same advertisement preempts, so it is not steady.
  const heldHearing = (p: Partial<GroupParams>, advbase: number, advskew: number) => {
    const d = new Driver(p);
    d.ev({ type: 'start', linkUp: true, present: true });
    d.ev({ type: 'stepDown' });
    d.now += 100;
    d.advert('192.0.2.2', advbase, advskew);
    return d;
  };
  const held = heldHearing({ advskew: 0, preempt: true }, 1, 100);
  assert.equal(held.s.state, 'BACKUP');
  assert.equal(steadyAdvert(held.s), null);
  // ucarpctl promote makes a backup preempt the master it followed.
  const promoted = heard(new Driver({ advskew: 100, preempt: false }), 50);
  assert.notEqual(steadyAdvert(promoted.s), null);
  promoted.ev({ type: 'override', override: 'promote' });
  assert.equal(steadyAdvert(promoted.s), null);
  // Held, a backup follows a master slower than its own dead time; past the hold, that
  // master's next advertisement is timed out.
  const slow = heldHearing({ advskew: 0, preempt: false }, 5, 0);
  assert.deepEqual(
    [slow.s.state, slow.s.master],
    ['BACKUP', { src: ip('192.0.2.2'), advbase: 5, advskew: 0 }],
  );
  assert.equal(steadyAdvert(slow.s), null);
  const v = new VrrpDriver({ priority: 100 });
  v.ev({ type: 'start', linkUp: true, present: true });
  v.now += 500;
  v.vrrp('192.0.2.2', 200);
  assert.notEqual(steadyAdvert(v.s), null);
  v.now += 500;
  v.vrrp('192.0.2.2', 0);
  assert.equal(steadyAdvert(v.s), null, 'after priority 0 the master is unknown');
});

test('steadyTimer: its step only sends its action and moves advertAt as steadyAdvertAt says, and afterSteadyTimers equals stepping each of a run', () => {
  let checked = 0;
  let mastersWithout = 0;
  for (const protocol of ['carp', 'vrrp3'] as const)
    for (let seed = 1; seed <= 40; seed++)
      for (const s of visitedStates(seed * 7919, protocol)) {
        const st = steadyTimer(s);
        if (st === null) {
          if (s.state === 'MASTER' && !s.stopped) mastersWithout++;
          continue;
        }
        checked++;
        assert.equal(s.state, 'MASTER');
        const advertAt = s.advertAt!;
        // Not yet due (before the slack): the timer does nothing.
        assert.equal(steadyAdvertAt(st, advertAt, advertAt - st.slackMs - 0.5), null);
        assert.deepEqual(step(s, { type: 'timer' }, advertAt - st.slackMs - 0.5), { state: s, actions: [] });
        // Early within the slack, on time, late, and after a stall of more than an interval.
        let state = s;
        let at = advertAt;
        for (const lateness of [-st.slackMs, 0, 7.5, st.intervalMs * 2.5]) {
          const now = at + lateness;
          const one = step(state, { type: 'timer' }, now);
          assert.deepEqual(one.actions, [st.action]);
          const next: number = steadyAdvertAt(st, at, now)!;
          assert.equal(next, lateness > st.intervalMs ? now + st.intervalMs : at + st.intervalMs);
          assert.deepEqual(one.state, afterSteadyTimers(state, next));
          assert.deepEqual(one.state, { ...state, advertAt: next });
          assert.deepEqual(steadyTimer(one.state), st, 'the same rule after it');
          assert.equal(nextDeadline(one.state), next);
          assert.equal(earliestDeadline(one.state), next - st.slackMs);
          state = one.state;
          at = next;
        }
        // Only the deadline moves: the run's end state from the original one.
        assert.deepEqual(afterSteadyTimers(s, at), state);
      }
  assert.ok(checked > 500, `states with a steady timer: ${checked}`);
  assert.ok(mastersWithout > 20, `masters without one: ${mastersWithout}`);
});

test('steadyTimer: none for a backup, in FAULT, stopped, or with a gratuitous ARP still due', () => {
  const master = new Driver({ advskew: 0 });
  master.ev({ type: 'start', linkUp: true, present: true });
  master.runUntil(5000);
  assert.equal(master.s.state, 'MASTER');
  // The takeover's delayed gratuitous ARP is still due.
  assert.equal(steadyTimer(master.s), null);
  master.runUntil(20_000);
  assert.deepEqual(steadyTimer(master.s), {
    action: { type: 'send', advbase: 1, advskew: 0 },
    intervalMs: 1000,
    slackMs: advertSlackMs(master.s),
  });
  // A worse master heard: a gratuitous ARP goes with a later advertisement, so not steady
  // until it has gone.
  master.advert('192.0.2.9', 1, 100);
  assert.equal(steadyTimer(master.s), null);
  master.runUntil(master.now + 10_000);
  assert.notEqual(steadyTimer(master.s), null);
  const backup = new Driver({ advskew: 100 });
  backup.ev({ type: 'start', linkUp: true, present: true });
  assert.equal(steadyTimer(backup.s), null);
  const fault = new Driver({ advskew: 0 });
  fault.ev({ type: 'start', linkUp: true, present: true });
  fault.runUntil(5000);
  fault.ev({ type: 'link', up: false });
  assert.equal(steadyTimer(fault.s), null);
  const stopped = new Driver({ advskew: 0 });
  stopped.ev({ type: 'start', linkUp: true, present: true });
  stopped.runUntil(5000);
  stopped.ev({ type: 'stop', bowOut: false });
  assert.equal(steadyTimer(stopped.s), null);
  const v = new VrrpDriver({ priority: 200 });
  v.ev({ type: 'start', linkUp: true, present: true });
  v.runUntil(20_000);
  assert.deepEqual(steadyTimer(v.s)?.action, { type: 'sendVrrp', priority: 200, interval: 100 });
});
