// Our single-group ucarp on real sockets: carrier loss, demote, graceful shutdown, scripts and
// malformed input.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Lab, ip, waitFor } from '../helpers/netns';
import { CarpProc, carpArgs, ROOT } from '../helpers/carp-proc';
import { carpPayload, ipv4Packet, vrrpPayload } from '../helpers/packets';
import { mulberry32 } from '../helpers/sim';

const labs: Lab[] = [];
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ucarp-node-'));
after(async () => {
  for (const l of labs) await l.destroy();
  fs.rmSync(tmp, { recursive: true, force: true });
});

async function lab(hosts = 2): Promise<Lab> {
  const l = await Lab.create({ hosts });
  labs.push(l);
  return l;
}

/** A script that appends its name and arguments to a log file, one line per run. */
function recorder(name: string): { script: string; log: string } {
  const log = path.join(tmp, `${name}.log`);
  const script = path.join(tmp, `${name}.sh`);
  fs.writeFileSync(script, `#!/bin/sh\necho "${name} $*" >> ${log}\n`, { mode: 0o755 });
  return { script, log };
}

const readLines = (f: string) => (fs.existsSync(f) ? fs.readFileSync(f, 'utf8').trim().split('\n') : []);

test('carrier loss on the master sends it to FAULT and the peer takes over', async () => {
  const l = await lab();
  const [h1, h2] = l.hosts;
  const a = new CarpProc(l, h1, 'ours', carpArgs(h1, { advskew: 0 }));
  await a.waitState('MASTER');
  const b = new CarpProc(l, h2, 'ours', carpArgs(h2, { advskew: 50 }));
  await b.waitState('BACKUP');
  await l.setSwitchPort(h1, false);
  await a.waitLine(/Switching to state: FAULT \(link-down\)/);
  await b.waitState('MASTER', 6000);
  // Carrier back: the old master listens again and, without preemption, stays backup.
  await l.setSwitchPort(h1, true);
  await a.waitLine(/carrier up/);
  await a.waitLine(/Switching to state: BACKUP \(link-up\)/);
  await new Promise((r) => setTimeout(r, 4000));
  assert.equal(a.state, 'BACKUP');
  assert.equal(b.state, 'MASTER');
});

test('SIGUSR2 demotes the master and the backup takes over at once (bow-out on the wire)', async () => {
  const l = await lab();
  const [h1, h2] = l.hosts;
  const a = new CarpProc(l, h1, 'ours', carpArgs(h1, { advskew: 0 }));
  await a.waitState('MASTER');
  const b = new CarpProc(l, h2, 'ucarp', carpArgs(h2, { advskew: 50 }));
  await b.waitState('BACKUP');
  const t0 = Date.now();
  a.kill('SIGUSR2');
  await a.waitLine(/BACKUP \(step-down\)/);
  await b.waitState('MASTER', 3000);
  // Generous bound: without the bow-out ucarp would wait its 3.2 s dead time.
  assert.ok(Date.now() - t0 < 2500, `took ${Date.now() - t0} ms`);
});

test('--shutdown: SIGTERM bows out, runs the downscript, and the backup (Debian ucarp) takes over at once', async () => {
  const l = await lab();
  const [h1, h2] = l.hosts;
  const up = recorder('up1');
  const down = recorder('down1');
  const a = new CarpProc(
    l,
    h1,
    'ours',
    carpArgs(h1, { extra: ['-z', '-u', up.script, '-d', down.script, '-x', 'web $(reboot)', '-n'] }),
  );
  await a.waitState('MASTER');
  await waitFor(() => readLines(up.log).length === 1, 5000, 'upscript');
  assert.deepEqual(readLines(up.log), ['up1 eth0 192.0.2.100 web $(reboot)']);
  assert.deepEqual(readLines(down.log), [], '--neutral: no downscript at start');
  const b = new CarpProc(l, h2, 'ucarp', carpArgs(h2, { advskew: 100 }));
  await b.waitState('BACKUP');
  const t0 = Date.now();
  a.kill('SIGTERM');
  await b.waitState('MASTER', 3000);
  assert.ok(Date.now() - t0 < 2500, `took ${Date.now() - t0} ms`);
  await a.exit();
  assert.deepEqual(readLines(down.log), ['down1 eth0 192.0.2.100 web $(reboot)']);
});

test('without --neutral the downscript runs at start; a script never blocks advertisements', async () => {
  const l = await lab(1);
  const [h1] = l.hosts;
  const down = recorder('down2');
  const slow = path.join(tmp, 'slow-up.sh');
  fs.writeFileSync(slow, '#!/bin/sh\nsleep 30\n', { mode: 0o755 });
  const a = new CarpProc(l, h1, 'ours', carpArgs(h1, { extra: ['-u', slow, '-d', down.script] }));
  await waitFor(() => readLines(down.log).length === 1, 5000, 'downscript at start');
  await a.waitState('MASTER');
  // The up script sleeps; the daemon must still answer signals and keep advertising.
  await new Promise((r) => setTimeout(r, 2200));
  a.kill('SIGUSR1');
  const line = await a.waitLine(/MASTER on eth0 id 10 sent=\d+/);
  assert.ok(Number(/sent=(\d+)/.exec(line)![1]) >= 2, line);
});

test('malformed input is dropped and counted by reason, with no state change and no crash', async () => {
  const l = await lab();
  const [h1, h2] = l.hosts;
  const a = new CarpProc(l, h1, 'ours', carpArgs(h1, { advskew: 100, vhid: 10, pass: 'secret' }));
  await a.waitState('MASTER');
  const src = h2.ips[0];
  const dst = '224.0.0.18';
  // Better priority than the master: accepting any of these would demote it.
  const good = { vhid: 10, password: 'secret', addresses: ['192.0.2.100'], advskew: 0 };
  const valid = carpPayload(good);
  const corrupt = Buffer.from(valid);
  corrupt[30] ^= 0x55;
  const badVersion = Buffer.from(valid);
  badVersion[0] = 0x31;
  const rand = mulberry32(7);
  const noise = Array.from({ length: 20 }, (_, i) => {
    const b = Buffer.from(Array.from({ length: 40 + (i % 8) }, () => Math.floor(rand() * 256)));
    b[1] = 99; // a vhid nobody uses, so these count on the interface only
    return ipv4Packet(src, dst, b);
  });
  const attributed = {
    short: [
      ipv4Packet(src, dst, valid.subarray(0, 20)),
      ipv4Packet(src, dst, vrrpPayload(10, ['192.0.2.100'])),
    ],
    ttl: [ipv4Packet(src, dst, valid, 64)],
    length: [
      ipv4Packet(
        src,
        dst,
        vrrpPayload(10, ['192.0.2.100', '192.0.2.101', '192.0.2.102', '192.0.2.103', '192.0.2.104']),
      ),
      // 7 addresses: the count reads as CARP's authlen 7; only the length (44 bytes) tells.
      ipv4Packet(
        src,
        dst,
        vrrpPayload(
          10,
          Array.from({ length: 7 }, (_, i) => `192.0.2.${100 + i}`),
        ),
      ),
    ],
    version: [ipv4Packet(src, dst, badVersion)],
    checksum: [ipv4Packet(src, dst, corrupt)],
    digest: [ipv4Packet(src, dst, carpPayload({ ...good, password: 'wrong' }))],
  };
  const all = [...Object.values(attributed).flat(), ...noise];
  const out = await l.exec(h2, process.execPath, [
    path.join(ROOT, 'dist/test/fixtures/inject.js'),
    'eth0',
    ...all.map((b) => b.toString('hex')),
  ]);
  assert.match(out, new RegExp(`sent ${all.length}`));
  await new Promise((r) => setTimeout(r, 500));
  a.kill('SIGUSR1');
  const line = await a.waitLine(/MASTER on eth0 id 10 .*rejects=/);
  assert.match(line, /received=0 /);
  assert.match(line, /rejects=8 \(short=2 ttl=1 version=1 length=2 checksum=1 digest=1\)/);
  assert.equal(a.state, 'MASTER');
  assert.equal(a.history.filter((h) => h.state === 'BACKUP').length, 1, 'only the start transition');
  assert.equal(a.exited, false);
  await a.waitLine(/bad digest: check vhid, password and virtual IP address/);
});

test('--daemonize returns at once and the background daemon keeps advertising', async () => {
  const l = await lab();
  const [h1, h2] = l.hosts;
  const a = new CarpProc(l, h1, 'ours', carpArgs(h1, { extra: ['-B'] }));
  await a.exit(5000);
  assert.equal(a.child.exitCode, 0);
  const pids = (await ip('netns', 'pids', h1.ns)).trim().split('\n').filter(Boolean);
  assert.equal(pids.length, 1, 'one daemon left running in the background');
  // A ucarp peer that preempts only a worse master stays backup: it hears our advertisements.
  const b = new CarpProc(l, h2, 'ucarp', carpArgs(h2, { advskew: 100, extra: ['-P'] }));
  await b.waitState('BACKUP');
  await new Promise((r) => setTimeout(r, 4500));
  assert.equal(b.state, 'BACKUP');
  process.kill(Number(pids[0]), 'SIGTERM');
  await b.waitState('MASTER', 6000);
});
