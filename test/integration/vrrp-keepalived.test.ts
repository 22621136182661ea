// VRRPv3 over IPv4 against the real keepalived 2.2.7 (`vrrp_version 3`), ours and keepalived
// on two hosts of one segment, each in both roles: election by priority, SIGKILL failover,
// preemption, the priority-0 handover on a clean stop, a priority tie broken by the higher
// address, unicast peers. Who is master is read from the kernels (the virtual address), not
// from either daemon.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Lab, Host, waitFor } from '../helpers/netns';
import { Node, sleep } from '../helpers/fault';
import { KeepalivedProc } from '../helpers/keepalived';
import type { TestGroup } from '../helpers/supervisor-proc';
import { masterDownIntervalMs, skewMs } from '../../src/engine/vrrp-rules';
import { ipv6ToBigInt } from '../../src/net/ipv6';

const VIP = '192.0.2.254';
/** A second address, listed after the first: keepalived sends them in its file's order, we sort. */
const VIP2 = '192.0.2.253';
/** The same over IPv6 (keepalived's native_ipv6, docs/protocol.md §22). */
const VIP6 = '2001:db8:1::254';
const VIP6B = '2001:db8:1::253';
const VRID = 30;
/** Generous: the event loop, namespaces and a loaded CI machine (docs/protocol.md §22). */
const SLACK_MS = 2000;

const roots: string[] = [];
const labs: Lab[] = [];
const figures: string[] = [];
after(async () => {
  for (const l of labs) await l.destroy();
  for (const r of roots) fs.rmSync(r, { recursive: true, force: true });
  if (figures.length > 0) process.stdout.write(`# VRRPv3 takeover figures\n# ${figures.join('\n# ')}\n`);
});

type Who = 'ours' | 'keepalived';

interface Scene {
  lab: Lab;
  v6: boolean;
  /** The first virtual address, without prefix: whoever holds it is master. */
  vip: string;
  ours: Node;
  ka: KeepalivedProc | null;
  oursHost: Host;
  kaHost: Host;
  kaOpts: ConstructorParameters<typeof KeepalivedProc>[2];
}

/** ours on host `oursAt` (1 → 192.0.2.1, 2 → 192.0.2.2), keepalived on the other. */
async function scene(o: {
  oursPriority: number;
  kaPriority: number;
  oursAt?: 1 | 2;
  unicast?: boolean;
  /** Top-level YAML (trackers) and the group's `track`. */
  top?: string;
  track?: string;
  v6?: boolean;
}): Promise<Scene> {
  const v6 = o.v6 ?? false;
  const lab = await Lab.create({ hosts: 2, ipv6: v6 });
  const addresses = v6 ? [`${VIP6}/64`, `${VIP6B}/64`] : [`${VIP}/24`, `${VIP2}/24`];
  labs.push(lab);
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'ucarp-vrrp-'));
  roots.push(root);
  const oursHost = lab.host(o.oursAt ?? 1);
  const kaHost = lab.host(o.oursAt === 2 ? 1 : 2);
  const group: TestGroup = {
    name: 'router',
    vhid: VRID,
    iface: 'eth0',
    addresses,
    extra: {
      protocol: 'vrrp3',
      priority: o.oursPriority,
      // Over IPv6 a unicast group advertises from its global address, which the peer lists.
      ...(o.unicast ? { peers: `[${v6 ? kaHost.ips6[0] : kaHost.ips[0]}]` } : {}),
      ...(o.unicast && v6 ? { srcip: oursHost.ips6[0] } : {}),
      ...(o.track ? { track: o.track } : {}),
    },
  };
  const ours = new Node(lab, oursHost, root, [group], o.top);
  const kaOpts = {
    vrid: VRID,
    priority: o.kaPriority,
    addresses,
    native6: v6,
    ...(o.unicast ? { unicastPeers: [v6 ? oursHost.ips6[0] : oursHost.ips[0]] } : {}),
  };
  return { lab, v6, vip: v6 ? VIP6 : VIP, ours, ka: null, oursHost, kaHost, kaOpts };
}

async function startKa(s: Scene): Promise<KeepalivedProc> {
  s.ka = new KeepalivedProc(s.lab, s.kaHost, s.kaOpts);
  await s.ka.waitStarted();
  return s.ka;
}

function hostOf(s: Scene, who: Who): Host {
  return who === 'ours' ? s.oursHost : s.kaHost;
}

/** The virtual address of the scene on a host now. */
async function holds(s: Scene, h: Host): Promise<boolean> {
  return (await (s.v6 ? s.lab.addresses6(h) : s.lab.addresses(h))).includes(s.vip);
}

/** The namespaces holding the scene's virtual address. */
async function holdersOf(s: Scene): Promise<string[]> {
  const out: string[] = [];
  for (const h of s.lab.hosts) if (await holds(s, h)) out.push(h.ns);
  return out.sort();
}

/** The virtual address is on `who`'s host only, and stays so for `holdMs`. */
async function soleMaster(s: Scene, who: Who, timeoutMs = 15_000, holdMs = 3000): Promise<void> {
  const want = [hostOf(s, who).ns];
  await waitFor(
    async () => JSON.stringify(await holdersOf(s)) === JSON.stringify(want),
    timeoutMs,
    `${s.vip} on ${who} only; ours:\n${s.ours.proc?.lines.slice(-8).join('\n')}\nkeepalived:\n${s.ka?.lines.slice(-8).join('\n')}`,
    50,
  );
  const end = Date.now() + holdMs;
  while (Date.now() < end) {
    assert.deepEqual(await holdersOf(s), want, `${s.vip} must stay on ${who} only`);
    await sleep(100);
  }
}

/** Milliseconds from now until `who`'s host holds the virtual address. */
async function takeover(s: Scene, who: Who, timeoutMs: number): Promise<number> {
  const t0 = Date.now();
  await waitFor(async () => holds(s, hostOf(s, who)), timeoutMs, `${who} to take over`, 10);
  return Date.now() - t0;
}

/** keepalived's log lines about advertisements it did not like. */
function complaints(s: Scene): string[] {
  return (s.ka?.lines ?? []).filter((l) => /invalid|unexpected|not present|bad|mismatch|error/i.test(l));
}

async function killOurs(s: Scene, sig: 'SIGKILL' | 'SIGTERM'): Promise<void> {
  s.ours.proc.signal(sig);
  if (sig === 'SIGTERM') await s.ours.proc.exit();
}

/** `high` at priority 150, the other at 100. */
function ranked(high: Who): { oursPriority: number; kaPriority: number } {
  return { oursPriority: high === 'ours' ? 150 : 100, kaPriority: high === 'ours' ? 100 : 150 };
}

/**
 * SIGKILL the master `high`: no priority 0, so `low` waits its Master_Down_Interval. Returns
 * how long `low` took to hold the address, checked against that interval plus SLACK_MS.
 */
async function sigkillFailover(s: Scene, high: Who, low: Who): Promise<{ took: number; bound: number }> {
  if (high === 'ours') await killOurs(s, 'SIGKILL');
  else s.ka!.kill('SIGKILL');
  const bound = masterDownIntervalMs(100, 100);
  const took = await takeover(s, low, bound + SLACK_MS + 1000);
  assert.ok(took <= bound + SLACK_MS, `${low} took over after ${took} ms`);
  return { took, bound };
}

/**
 * Apart, each becomes master; joined, the loser of the tie must yield: `winner` ends up the
 * only master and stays so.
 */
async function tieApartThenJoined(s: Scene, winner: Who): Promise<void> {
  for (const h of s.lab.hosts) await s.lab.isolate(h, true);
  s.ours.start();
  await startKa(s);
  await waitFor(async () => (await holdersOf(s)).length === 2, 15_000, 'two masters apart');
  for (const h of s.lab.hosts) await s.lab.isolate(h, false);
  await soleMaster(s, winner, 10_000, 3000);
}

/** Both families, each with ours and keepalived as the higher priority. */
const PAIRINGS: [v6: boolean, high: Who][] = [
  [false, 'ours'],
  [false, 'keepalived'],
  [true, 'ours'],
  [true, 'keepalived'],
];

async function stop(s: Scene): Promise<void> {
  await s.ours.stop().catch(() => undefined);
  if (s.ka && !s.ka.exited) {
    s.ka.kill('SIGTERM');
    await s.ka.exit().catch(() => undefined);
  }
}

for (const [v6, high] of PAIRINGS) {
  const low: Who = high === 'ours' ? 'keepalived' : 'ours';
  const over = v6 ? ' (IPv6)' : '';

  test(`election by priority${over}: ${high} (150) is master over ${low} (100); SIGKILL fails over; ${high} preempts back`, async () => {
    const s = await scene({ ...ranked(high), v6 });
    try {
      s.ours.start();
      await startKa(s);
      await soleMaster(s, high);

      const { took, bound } = await sigkillFailover(s, high, low);
      figures.push(
        `${over}SIGKILL ${high} master → ${low} takes over in ${took} ms (Master_Down_Interval ${bound} ms)`,
      );
      // The last advertisement was at most one interval before the kill.
      assert.ok(took >= bound - 1000 - 100, `${low} took over after ${took} ms, before its down interval`);

      // The better router comes back and preempts (RFC 5798's default, keepalived's too).
      if (high === 'ours') {
        s.ours.start();
      } else {
        await s.ka!.exit();
        await startKa(s);
      }
      await soleMaster(s, high, 15_000, 2000);
      assert.deepEqual(complaints(s), [], 'keepalived found nothing wrong with our advertisements');
    } finally {
      await stop(s);
    }
  });

  test(`priority 0 on a clean stop${over}: ${low} backup takes over from ${high} after its skew time only`, async () => {
    const s = await scene({ ...ranked(high), v6 });
    try {
      s.ours.start();
      await startKa(s);
      await soleMaster(s, high, 15_000, 1500);
      const t0 = Date.now();
      if (high === 'ours') void killOurs(s, 'SIGTERM');
      else s.ka!.kill('SIGTERM');
      const took = await takeover(s, low, 10_000);
      const skew = skewMs(100, 100);
      figures.push(`${over}priority 0 from ${high} → ${low} takes over in ${took} ms (Skew_Time ${skew} ms)`);
      // Well under the Master_Down_Interval (3609 ms): the priority-0 advertisement was heard.
      assert.ok(took < 3 * 1000, `${low} took ${took} ms: it waited for the master to time out`);
      await waitFor(async () => !(await holds(s, hostOf(s, high))), 5000, `${high} to release ${s.vip}`);
      assert.ok(Date.now() - t0 < 10_000);
    } finally {
      await stop(s);
    }
  });

  test(`preemption${over}: ${high} (150) started after ${low} (100) takes mastership over`, async () => {
    const s = await scene({ ...ranked(high), v6 });
    try {
      if (low === 'ours') s.ours.start();
      else await startKa(s);
      await soleMaster(s, low, 15_000, 500);
      if (high === 'ours') s.ours.start();
      else await startKa(s);
      await soleMaster(s, high, 15_000, 2000);
    } finally {
      await stop(s);
    }
  });
}

for (const winner of ['ours', 'keepalived'] as Who[]) {
  test(`a priority tie between two masters goes to the higher address: ${winner} on 192.0.2.2`, async () => {
    const s = await scene({ oursPriority: 100, kaPriority: 100, oursAt: winner === 'ours' ? 2 : 1 });
    try {
      await tieApartThenJoined(s, winner);
    } finally {
      await stop(s);
    }
  });
}

test('a priority tie over IPv6 goes to the higher link-local address', async () => {
  const s = await scene({ oursPriority: 100, kaPriority: 100, v6: true });
  try {
    const ll = async (h: Host) => {
      const a = (await s.lab.addresses6(h)).find((x) => x.startsWith('fe80:'));
      assert.ok(a, `a link-local address on ${h.ns}`);
      return ipv6ToBigInt(a);
    };
    const winner: Who = (await ll(s.oursHost)) > (await ll(s.kaHost)) ? 'ours' : 'keepalived';
    await tieApartThenJoined(s, winner);
    figures.push(`IPv6 tie: ${winner} had the higher link-local address and stayed master`);
  } finally {
    await stop(s);
  }
});

for (const [v6, high] of PAIRINGS) {
  const low: Who = high === 'ours' ? 'keepalived' : 'ours';
  const over = v6 ? ' (IPv6)' : '';
  test(`unicast peers${over}: ${high} (150) master over ${low} (100), and ${low} takes over on SIGKILL`, async () => {
    const s = await scene({ ...ranked(high), unicast: true, v6 });
    try {
      s.ours.start();
      await startKa(s);
      // The backup stays backup only while it hears the master's unicast advertisements.
      await soleMaster(s, high, 15_000, 5000);
      const { took } = await sigkillFailover(s, high, low);
      figures.push(`unicast${over}: SIGKILL ${high} master → ${low} takes over in ${took} ms`);
    } finally {
      await stop(s);
    }
  });
}

test('tracking: a weight lowers our priority below keepalived (which preempts), FAULT sends priority 0', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ucarp-vrrp-track-'));
  roots.push(dir);
  const drain = path.join(dir, 'drain');
  const down = path.join(dir, 'down');
  fs.writeFileSync(drain, '0\n');
  fs.writeFileSync(down, '0\n');
  const top = [
    'trackers:',
    `  drain: { file: ${drain}, interval: 0.2 }`,
    `  down: { file: ${down}, interval: 0.2 }`,
  ].join('\n');
  const s = await scene({
    oursPriority: 150,
    kaPriority: 100,
    top,
    track: '[{ tracker: drain, weight: 100 }, down]',
  });
  try {
    s.ours.start();
    await startKa(s);
    await soleMaster(s, 'ours', 15_000, 1500);

    // 150 − 100 = 50 < keepalived's 100: keepalived ignores us and takes over at its down time.
    fs.writeFileSync(drain, '1\n');
    await waitFor(async () => (await s.ours.group('router')).priority === 50, 5000, 'priority 50');
    await soleMaster(s, 'keepalived', 3609 + SLACK_MS + 1000, 1500);
    const g = await s.ours.group('router');
    assert.equal(g.state, 'BACKUP');
    assert.deepEqual(g.master && 'priority' in g.master ? g.master.priority : null, 100);

    // Cleared: 150 again, and ours preempts back.
    fs.writeFileSync(drain, '0\n');
    await soleMaster(s, 'ours', 3609 + SLACK_MS + 1000, 1500);

    // A tracker without weight: FAULT, priority 0 on the way out, keepalived after its skew time.
    const t0 = Date.now();
    fs.writeFileSync(down, '1\n');
    const took = await takeover(s, 'keepalived', 5000);
    figures.push(`FAULT on ours (priority 0) → keepalived takes over ${took} ms after the file changed`);
    assert.ok(Date.now() - t0 < 3000, 'keepalived took over before its Master_Down_Interval');
    assert.equal((await s.ours.group('router')).state, 'FAULT');
  } finally {
    await stop(s);
  }
});
