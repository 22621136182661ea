// Incident: someone on the LAN captures a master's advertisements and plays them back (no
// password needed: the digest covers the counter but not the IP source). Once without
// replay_protection, where the replay does harm, and once with it (docs/protocol.md §20).
// h1 is the attacker (tcpdump to capture, AF_PACKET to replay; it has no IPv4 address, so
// 192.0.2.1 is on no host), h2 the preferred master, h3 the backup.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { Lab, Host, ip } from '../helpers/netns';
import { ROOT } from '../helpers/carp-proc';
import { SupervisorProc, TestGroup, configYaml } from '../helpers/supervisor-proc';
import {
  MARGIN_MS,
  assertAlive,
  deadTimeMs,
  holdsFor,
  intervalMs,
  reached,
  settled,
  sleep,
  transitions,
  OUR_UCARPCTL,
  run,
} from '../helpers/fault';
import { internetChecksum } from '../../src/protocol/checksum';
import { ipv4ToInt } from '../../src/net/ipv4';
import type { GroupStatusJson, StatusDocument } from '../../src/control/protocol';

const VIP = '192.0.2.100';
const SPOOFED = '192.0.2.1';
const SKEW_BACKUP = 20;
const REPLAY = path.join(ROOT, 'dist/test/fixtures/replay-frames.js');

/** Ethernet frames of a pcap file (link type Ethernet, as tcpdump -w writes on eth0). */
function pcapFrames(file: string): Buffer[] {
  const b = fs.readFileSync(file);
  assert.equal(b.readUInt32LE(0), 0xa1b2c3d4, 'little-endian pcap with microseconds');
  const out: Buffer[] = [];
  for (let o = 24; o + 16 <= b.length;) {
    const len = b.readUInt32LE(o + 8);
    out.push(b.subarray(o + 16, o + 16 + len));
    o += 16 + len;
  }
  return out;
}

/** The same frame with another IPv4 source and the IPv4 header checksum fixed: CARP untouched. */
function withSource(frame: Buffer, src: string): Buffer {
  const f = Buffer.from(frame);
  const ihl = (f[14] & 0x0f) * 4;
  f.writeUInt32BE(ipv4ToInt(src), 14 + 12);
  f.writeUInt16BE(0, 14 + 10);
  f.writeUInt16BE(internetChecksum(f.subarray(14, 14 + ihl)), 14 + 10);
  return f;
}

for (const protect of [false, true]) {
  const label = protect ? 'with replay_protection' : 'without replay_protection (ucarp behaviour)';
  describe(`replayed advertisements, ${label}`, () => {
    let lab: Lab;
    let attacker: Host;
    let h2: Host;
    let h3: Host;
    let d2: SupervisorProc;
    let d3: SupervisorProc;
    let replayer: ChildProcess | undefined;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ucarp-replay-'));
    const f2 = path.join(dir, 'h2.yaml');
    const f3 = path.join(dir, 'h3.yaml');
    const extra: Record<string, boolean> = protect ? { replay_protection: true } : {};
    const group = (advskew: number, preempt: boolean): TestGroup[] => [
      { name: 'web', vhid: 7, iface: 'eth0', addresses: [`${VIP}/24`], advskew, preempt, extra },
    ];
    const on = (...hs: Host[]) => new Map([[VIP, hs.map((h) => h.ns).sort()]]);

    async function status(h: Host): Promise<GroupStatusJson> {
      const sock = path.join(dir, `${h.ns}.sock`);
      const r = await run('ip', [
        'netns',
        'exec',
        h.ns,
        process.execPath,
        OUR_UCARPCTL,
        '--socket',
        sock,
        'status',
        '--json',
      ]);
      assert.equal(r.code, 0, r.stderr);
      return (JSON.parse(r.stdout) as StatusDocument).groups[0];
    }

    function start(h: Host, file: string): SupervisorProc {
      return new SupervisorProc(lab, h, file);
    }

    /** `count` advertisements of `from` as h1's tcpdump saw them. */
    async function capture(from: Host, count: number): Promise<Buffer[]> {
      const file = path.join(dir, `capture-${Date.now()}.pcap`);
      await lab.exec(attacker, 'tcpdump', [
        ...['-i', 'eth0', '-Z', 'root', '-U', '-c', String(count), '-w', file],
        `ip proto 112 and src host ${from.ips[0]}`,
      ]);
      const frames = pcapFrames(file);
      assert.equal(frames.length, count);
      return frames;
    }

    /** Starts h1 replaying `frames` once a second; resolves when the first one left. */
    async function replay(frames: Buffer[]): Promise<void> {
      replayer = lab.spawn(attacker, process.execPath, [
        REPLAY,
        'eth0',
        '1000',
        ...frames.map((f) => f.toString('hex')),
      ]);
      await new Promise<void>((resolve, reject) => {
        replayer?.stdout?.once('data', () => resolve());
        replayer?.once('exit', (code) => reject(new Error(`replayer exited with ${code}`)));
      });
    }

    function stopReplay(): void {
      // By PID: this test started it.
      if (replayer?.pid !== undefined && replayer.exitCode === null) process.kill(replayer.pid, 'SIGKILL');
      replayer = undefined;
    }

    before(async () => {
      lab = await Lab.create({ hosts: 3 });
      [attacker, h2, h3] = lab.hosts;
      await ip('-n', attacker.ns, 'addr', 'flush', 'dev', 'eth0');
      fs.writeFileSync(f2, configYaml(group(0, true), { socket: path.join(dir, `${h2.ns}.sock`) }));
      fs.writeFileSync(
        f3,
        configYaml(group(SKEW_BACKUP, false), { socket: path.join(dir, `${h3.ns}.sock`) }),
      );
      d2 = start(h2, f2);
      await d2.waitLine(/Switching to state: MASTER/, 0, 20_000);
      d3 = start(h3, f3);
      await d3.waitLine(/Switching to state: BACKUP/);
    });

    after(async () => {
      stopReplay();
      await lab.destroy();
      fs.rmSync(dir, { recursive: true, force: true });
    });

    test(
      protect
        ? 'master SIGKILLed while its advertisements are replayed: the backup takes over at its dead time'
        : 'master SIGKILLed while its advertisements are replayed: the backup waits as long as the replay lasts',
      async (t) => {
        await settled(lab, on(h2), 1000, 15_000, 'the address on h2 only');
        const frames = await capture(h2, 5);
        const from3 = d3.lines.length;
        const t0 = Date.now();
        process.kill(d2.child.pid!, 'SIGKILL');
        await d2.exit(5000);
        await replay(frames);
        const dead = deadTimeMs(SKEW_BACKUP);
        if (protect) {
          // The killed daemon leaves its address behind; h3 adds it at its dead time.
          const r = await settled(lab, on(h2, h3), 1000, dead + 5000, 'the address on h3 too');
          const took = r.at - t0;
          t.diagnostic(`SIGKILL → h3 master during the replay: ${took} ms (dead time ${dead} ms)`);
          assert.ok(took <= dead + MARGIN_MS, `took ${took} ms, bound ${dead + MARGIN_MS} ms`);
          // The timer runs from h2's last real advertisement, at most one interval before the kill.
          assert.ok(took >= dead - intervalMs(0), `took ${took} ms: before the dead time`);
          // Still master after more replayed frames, each refused.
          await holdsFor(lab, on(h2, h3), 3000, 'h3 stays master while the replay goes on');
          const s = await status(h3);
          t.diagnostic(`h3 refused ${s.rejects.replay} replayed advertisements`);
          assert.ok(s.rejects.replay >= 3, JSON.stringify(s.rejects));
          assert.match(
            d3.lines.join('\n'),
            /rejected advertisement from 192\.0\.2\.2: bad replay: counter \d+ is not newer than \d+/,
          );
        } else {
          const samples = await holdsFor(lab, on(h2), 3 * dead, 'h3 kept backup by the replay');
          t.diagnostic(`h3 still backup ${3 * dead} ms after the kill (${samples} kernel samples)`);
          assert.deepEqual(transitions(d3, from3), []);
          stopReplay();
          const t1 = Date.now();
          const at = await reached(lab, on(h2, h3), dead + 5000, 'h3 master once the replay stops');
          t.diagnostic(`replay stopped → h3 master: ${at - t1} ms`);
        }
        stopReplay();
        assertAlive(d3);
      },
    );

    test('the killed master restarts: it hears h3, preempts, and h3 accepts it, within one interval', async (t) => {
      // Without the option the counter is ucarp's (random start, adopted from peers), and a
      // restart was always accepted; with it, the restarted node's window starts at its clock.
      const from3 = d3.lines.length;
      d2 = start(h2, f2);
      await d2.waitLine(/started \d+ group/);
      const started = Date.now();
      const at = await reached(lab, on(h2), 5000, 'the address on h2 only');
      const bound = intervalMs(SKEW_BACKUP) + MARGIN_MS;
      t.diagnostic(
        `restarted h2 master (preempt) ${at - started} ms after its groups started (bound ${bound} ms)`,
      );
      assert.ok(at - started <= bound, `took ${at - started} ms`);
      assert.deepEqual(
        transitions(d3, from3).map((x) => `${x.state} ${x.reason}`),
        ['BACKUP better-master'],
      );
      assert.equal((await status(h2)).rejects.replay, 0, 'h2 refused nothing of h3');
      assertAlive(d2, d3);
    });

    test('the backup restarts: it accepts the master from its next advertisement', async (t) => {
      process.kill(d3.child.pid!, 'SIGKILL');
      await d3.exit(5000);
      d3 = start(h3, f3);
      await d3.waitLine(/started \d+ group/);
      const started = Date.now();
      let s: GroupStatusJson | undefined;
      for (;;) {
        s = await status(h3).catch(() => undefined);
        if (s && s.received > 0) break;
        assert.ok(Date.now() - started < 5000, 'h3 accepted nothing for 5 s');
        await sleep(20);
      }
      const took = Date.now() - started;
      t.diagnostic(`restarted h3 accepted h2's advertisement ${took} ms after its groups started`);
      assert.ok(took <= intervalMs(0) + MARGIN_MS, `took ${took} ms`);
      assert.equal(s.state, 'BACKUP');
      assert.equal(s.rejects.replay, 0);
      await holdsFor(lab, on(h2), deadTimeMs(SKEW_BACKUP) + 1000, 'h3 stays backup past its dead time');
    });

    test(
      protect
        ? "the live master's own advertisements replayed from a lower source: it stays master"
        : "the live master's own advertisements replayed from a lower source: no master",
      async (t) => {
        const frames = (await capture(h2, 3)).map((f) => withSource(f, SPOOFED));
        const from2 = d2.lines.length;
        await replay(frames);
        if (protect) {
          await holdsFor(lab, on(h2), 8000, 'h2 stays the only holder during the replay');
          const [s2, s3] = [await status(h2), await status(h3)];
          t.diagnostic(`refused as replays: h2 ${s2.rejects.replay}, h3 ${s3.rejects.replay}`);
          assert.ok(s2.rejects.replay >= 6, JSON.stringify(s2.rejects));
          assert.ok(s3.rejects.replay >= 6, JSON.stringify(s3.rejects));
          assert.deepEqual(transitions(d2, from2), []);
        } else {
          await reached(lab, on(), 3000, 'nobody holding the address');
          const samples = await holdsFor(lab, on(), 8000, 'no master while the replay lasts');
          t.diagnostic(`no holder of ${VIP} for 8000 ms of replay (${samples} kernel samples)`);
          assert.deepEqual(
            transitions(d2, from2).map((x) => `${x.state} ${x.reason}`),
            ['BACKUP better-master'],
          );
        }
        stopReplay();
        assertAlive(d2, d3);
      },
    );
  });
}
