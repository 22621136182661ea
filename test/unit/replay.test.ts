// The replay window (src/protocol/replay.ts, docs/protocol.md §20): which counters are refused,
// which are sent, and what clocks that differ between hosts do to a cluster.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { accept, isReplay, newest, nextCounter, sent, startWindow } from '../../src/protocol/replay';
import type { ReplayWindow } from '../../src/protocol/replay';

const S = 1_000_000n; // one second in microseconds
const T0 = 1_790_000_000n * S; // a wall clock in 2026

/** Sends one advertisement at `wall`: the counter and the window after it. */
function send(w: ReplayWindow, wall: bigint): [bigint, ReplayWindow] {
  const c = nextCounter(w, wall);
  return [c, sent(w, c)];
}

describe('replay window', () => {
  it('a fresh group refuses anything from before its start, even before it sent or heard anything', () => {
    const w = startWindow(T0);
    assert.equal(isReplay(w, T0 - 5n * S), true, 'captured before the start');
    assert.equal(isReplay(w, T0), true);
    assert.equal(isReplay(w, T0 + 1n), false);
  });

  it('a master that has accepted nothing refuses a replay of its own advertisements', () => {
    let w = startWindow(T0);
    const mine: bigint[] = [];
    for (let i = 1n; i <= 5n; i++) {
      const [c, next] = send(w, T0 + i * S);
      mine.push(c);
      w = next;
    }
    assert.equal(w.lastAccepted, null);
    for (const c of mine) assert.equal(isReplay(w, c), true, `own counter ${c}`);
  });

  it('a backup refuses every counter up to the newest it accepted, in any order', () => {
    let w = startWindow(T0);
    const heard = [1n, 2n, 3n].map((i) => T0 + i * S);
    for (const c of heard) {
      assert.equal(isReplay(w, c), false);
      w = accept(w, c);
    }
    for (const c of [...heard].reverse()) assert.equal(isReplay(w, c), true);
    assert.equal(newest(w), heard[2]);
    assert.equal(isReplay(w, heard[2] + 1n), false);
  });

  it('counters follow the wall clock, and never repeat when the clock stands still or steps back', () => {
    const [c1, w1] = send(startWindow(T0), T0 + S);
    assert.equal(c1, T0 + S);
    const [c2, w2] = send(w1, T0 + S);
    assert.equal(c2, c1 + 1n, 'same clock reading');
    const [c3] = send(w2, T0 - 60n * S);
    assert.equal(c3, c2 + 1n, 'clock stepped back a minute');
  });

  it('a node whose clock is behind continues from the newest counter it heard', () => {
    let w = startWindow(T0 - 30n * S);
    w = accept(w, T0 + 2n * S);
    const [c] = send(w, T0 - 29n * S);
    assert.equal(c, T0 + 2n * S + 1n);
  });

  it('saturates at 2^64 − 1 instead of wrapping to an old-looking 0', () => {
    const top = (1n << 64n) - 1n;
    const w = accept(startWindow(T0), top);
    assert.equal(nextCounter(w, T0), top);
    assert.equal(isReplay(w, top), true);
    assert.equal(startWindow(1n << 70n).lastSent, top);
  });
});

// Two peers A and B, each with its own wall clock, on a lossless segment without delay: a
// master advertising once per second and what the other one's window makes of it.
describe('clocks that differ between hosts', () => {
  /** A master `m` advertises `n` times, one second apart; each goes to the peer `p`. */
  function advertise(
    m: { w: ReplayWindow; wall: (t: bigint) => bigint },
    p: { w: ReplayWindow },
    t0: bigint,
    n: number,
  ): { accepted: number; rejected: number } {
    let accepted = 0;
    let rejected = 0;
    for (let i = 0n; i < BigInt(n); i++) {
      const [c, next] = send(m.w, m.wall(t0 + i * S));
      m.w = next;
      if (isReplay(p.w, c)) rejected++;
      else {
        p.w = accept(p.w, c);
        accepted++;
      }
    }
    return { accepted, rejected };
  }

  it('same clocks: a restarted peer is accepted from its first advertisement', () => {
    const a = { w: startWindow(T0), wall: (t: bigint) => t };
    const b = { w: startWindow(T0) };
    assert.deepEqual(advertise(a, b, T0 + S, 10), { accepted: 10, rejected: 0 });
    // A restarts 2 s later: a new window from its wall clock, above every counter it sent.
    const a2 = { w: startWindow(T0 + 12n * S), wall: (t: bigint) => t };
    assert.deepEqual(advertise(a2, b, T0 + 12n * S, 3), { accepted: 3, rejected: 0 });
  });

  it('a restarted master whose clock is D behind the counters the peer last saw is refused for D, then accepted', () => {
    // A was master with a correct clock; B heard it up to T0 + 10 s. A restarts with its
    // clock 5 s behind (and hears nobody: B is a backup and does not send).
    const b = { w: accept(startWindow(T0), T0 + 10n * S) };
    const a = { w: startWindow(T0 + 6n * S), wall: (t: bigint) => t - 5n * S };
    const r = advertise(a, b, T0 + 11n * S, 8);
    // Counters T0+6 … T0+13 s: the ones up to T0+10 s are refused, then A's clock has passed
    // what B saw. With a dead time of 3 s B takes over meanwhile (see the runtime test).
    assert.deepEqual(r, { accepted: 3, rejected: 5 });
  });

  it('a restarted backup whose clock is D ahead of the master refuses the master for D', () => {
    const a = { w: startWindow(T0), wall: (t: bigint) => t };
    const b = { w: startWindow(T0 + 2n * S) }; // B started at T0 by A's clock, its own says T0+2 s
    const r = advertise(a, b, T0 + 1n, 5);
    assert.deepEqual(r, { accepted: 3, rejected: 2 });
  });

  it('once a node with a slow clock has heard a faster one, its counters are accepted by it', () => {
    // B's clock is an hour behind A's and B is master: A, started since, refuses B, takes
    // over after its dead time and advertises; B accepts that and continues above it.
    const a = startWindow(T0);
    const b = startWindow(T0 - 3600n * S);
    const [cb] = send(b, T0 - 3599n * S);
    assert.equal(isReplay(a, cb), true, 'A refuses the slow clock');
    const [ca, a2] = send(a, T0 + S);
    assert.equal(isReplay(b, ca), false, 'B accepts the fast clock');
    const [cb2] = send(accept(b, ca), T0 - 3598n * S);
    assert.equal(cb2, ca + 1n);
    assert.equal(isReplay(a2, cb2), false, 'A accepts B from then on');
  });
});
