// Upgrade without a failover: `ucarpctl restart` replaces h1's daemon, master of every group
// (IPv4, with and without replay protection, and one IPv6),
// with the code on disk, in place (same pid). h2, a backup of every group, must see nothing:
// no transition, advertisements never silent for its dead time, the addresses on h1 only at
// every sample. A configuration the new code rejects leaves the old daemon running, and a
// `stop` after a restart still bows out.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Pair, deadTimeMs, holdsFor, settled, singleHolders, transitions, vip } from '../helpers/fault';
import { BOW_OUT } from '../../src/engine/group';
import { captureAdverts, longestGap, timesByVhid } from '../helpers/adverts';
import type { TestGroup } from '../helpers/supervisor-proc';
import { waitFor } from '../helpers/netns';

const SKEW_H2 = 50;
/** IPv4 groups; one IPv6 group (docs/protocol.md §21) comes on top. */
const COUNT = 6;
const TOTAL = COUNT + 1;
const VIP6 = '2001:db8:1::81';
const groups4 = (advskew: number): TestGroup[] =>
  Array.from({ length: COUNT }, (_, i) => ({
    name: `r${i}`,
    vhid: 81 + i,
    iface: 'eth0',
    addresses: [`192.0.2.${181 + i}/24`],
    advskew,
    // h2 never preempts: if h1 looked gone for a moment, h2 would take over and keep it.
    preempt: advskew === 0,
    // Half with replay protection: the new image's counters must still be news to h2.
    ...(i % 2 === 0 ? { extra: { replay_protection: true } } : {}),
  }));
const groups = (advskew: number): TestGroup[] => [
  ...groups4(advskew),
  { name: 'r6', vhid: 90, iface: 'eth0', addresses: [`${VIP6}/64`], advskew, preempt: advskew === 0 },
];
/** The daemon's open sockets and files, as the kernel lists them (stdio aside). */
function openFiles(pid: number): string[] {
  const dir = `/proc/${pid}/fd`;
  return fs
    .readdirSync(dir)
    .filter((fd) => Number(fd) > 2)
    .map((fd) => {
      try {
        return fs.readlinkSync(path.join(dir, fd)).replace(/\[\d+\]$/, '');
      } catch {
        return 'gone';
      }
    })
    .sort();
}

const masters = Object.fromEntries(groups(0).map((g) => [g.name, 'MASTER']));
const backups = Object.fromEntries(groups(0).map((g) => [g.name, 'BACKUP']));

describe('ucarpctl restart: the daemon replaced in place, no failover', { timeout: 180_000 }, () => {
  const pair = new Pair('restart');
  const onH1 = () => singleHolders(new Map(groups4(0).map((g) => [vip(g), pair.lab.host(1)])));
  const holders6 = async () => {
    const out: string[] = [];
    for (const h of pair.lab.hosts) if ((await pair.lab.addresses6(h)).includes(VIP6)) out.push(h.ns);
    return out;
  };

  before(async () => {
    await pair.start(groups(0), groups(SKEW_H2), masters);
    await pair.n2.waitAll(backups);
    await settled(pair.lab, onH1(), 500, 15_000, 'every address on h1 only');
    const h1 = pair.lab.host(1).ns;
    await waitFor(async () => (await holders6()).join() === h1, 15_000, `${VIP6} on h1 only`);
  });
  after(() => pair.after());

  it('same pid, no transition on the peer, addresses stay, advertisements keep coming', async (t) => {
    const { lab, n1, n2 } = pair;
    const before1 = await n1.status();
    const before2 = await n2.status();
    const filesBefore = openFiles(before1.pid);
    const from2 = n2.proc.lines.length;
    const cap = await captureAdverts(lab.host(2).ns, lab.host(1).ips[0]);
    // Advertisements before the restart, so that the gap across it is measured between two.
    await new Promise((r) => setTimeout(r, 1500));
    const watch = holdsFor(lab, onH1(), 6000, 'every address on h1 only, through the restart');
    const t0 = Date.now();
    const r = await n1.ctl('restart');
    const took = Date.now() - t0;
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stdout,
      new RegExp(
        `restarting in place: pid ${before1.pid}, ${TOTAL} group\\(s\\) handed over \\(${TOTAL} master\\)`,
      ),
    );
    assert.match(
      r.stdout,
      new RegExp(`restarted: pid ${before1.pid}, ${TOTAL} group\\(s\\): ${TOTAL} MASTER`),
    );
    const samples = await watch;
    const adverts = await cap.stop();
    const byVhid = timesByVhid(adverts);

    const after1 = await n1.status();
    assert.equal(after1.pid, before1.pid, 'same pid');
    assert.ok(after1.uptimeMs < Date.now() - t0, `a new image (uptime ${after1.uptimeMs} ms)`);
    for (const g of after1.groups) assert.equal(g.state, 'MASTER', `${g.name} on h1`);
    // Nothing of the old image stays open in the new one: the same kinds of descriptors, as
    // many (sockets by kind, files by path), give or take one client connection.
    const filesAfter = openFiles(after1.pid);
    const sockets = (l: string[]) => l.filter((x) => x.startsWith('socket:')).length;
    assert.ok(
      Math.abs(sockets(filesAfter) - sockets(filesBefore)) <= 1,
      `sockets before ${sockets(filesBefore)}, after ${sockets(filesAfter)}`,
    );
    assert.deepEqual(
      filesAfter.filter((x) => x.startsWith('/')),
      filesBefore.filter((x) => x.startsWith('/')),
    );
    assert.ok(
      n1.proc.lines.some((l) => /restarted in place: 7 of 7 group\(s\) carried on \(7 master\)/.test(l)),
    );
    // The peer: no transition logged, none counted, still following h1.
    assert.deepEqual(transitions(n2.proc, from2), []);
    const after2 = await n2.status();
    for (const g of after2.groups) {
      const was = before2.groups.find((x) => x.name === g.name);
      assert.equal(g.state, 'BACKUP', `${g.name} on h2`);
      assert.equal(g.transitions, was?.transitions, `${g.name}: transitions on h2`);
      // Still h1 (its IPv4 address, or its link-local one for r6), as before the restart.
      assert.equal(g.master?.address, was?.master?.address);
      if (g.name !== 'r6') assert.equal(g.master?.address, lab.host(1).ips[0]);
      assert.equal(g.rejectsTotal, was?.rejectsTotal, `${g.name}: h2 rejected nothing`);
    }
    // The silence across the exec itself: the freeze (one last advertisement) to the new
    // image's first advertisements, from the daemon's own timestamps.
    const stamp = (re: RegExp) =>
      Date.parse(/^(\S+Z)/.exec(n1.proc.lines.find((l) => re.test(l)) ?? '')?.[1] ?? '');
    const frozenAt = stamp(/restarting in place: pid/);
    const resumedAt = stamp(/restarted in place: /);
    const dead = deadTimeMs(SKEW_H2);
    let worst = 0;
    assert.deepEqual(await holders6(), [lab.host(1).ns], `${VIP6} on h1 only`);
    for (const g of groups4(0)) {
      const times = byVhid.get(g.vhid) ?? [];
      assert.ok(times.length >= 4, `vhid ${g.vhid}: ${times.length} advertisements captured`);
      worst = Math.max(worst, longestGap(times));
    }
    t.diagnostic(
      `ucarpctl restart took ${took} ms; freeze to resumed groups ${resumedAt - frozenAt} ms; ` +
        `longest advertisement gap seen by h2 across it: ` +
        `${worst.toFixed(1)} ms (h2's dead time ${dead.toFixed(0)} ms); ${samples} kernel samples, one holder each`,
    );
    assert.ok(worst < dead, `longest gap ${worst.toFixed(1)} ms, dead time ${dead} ms`);
    // No bow-out on the wire: every advertisement carried h1's own timing.
    assert.deepEqual(
      adverts.filter((a) => a.advbase !== 1 || a.advskew !== 0),
      [],
      'only advbase 1 advskew 0 from h1',
    );
  });

  it('a configuration the code on disk rejects: restart refused, the old daemon runs on', async () => {
    const { n1 } = pair;
    const before1 = await n1.status();
    const good = fs.readFileSync(n1.file, 'utf8');
    fs.writeFileSync(n1.file, good.replace('groups:', 'groups:\n  broken: { vhid: 999 }'));
    try {
      const r = await n1.ctl('restart');
      assert.equal(r.code, 1, r.stdout);
      assert.match(r.stderr, /restart refused, the daemon runs on: the code on disk refuses/);
      assert.match(r.stderr, /vhid/);
      const now = await n1.status();
      assert.equal(now.pid, before1.pid);
      assert.ok(now.uptimeMs > before1.uptimeMs, 'the same image');
      for (const g of now.groups) assert.equal(g.state, 'MASTER');
    } finally {
      fs.writeFileSync(n1.file, good);
    }
    // Moving the control socket would lose the handover and the address record: refused too.
    fs.writeFileSync(n1.file, good.replace(n1.socket, `${n1.socket}.moved`));
    try {
      const r = await n1.ctl('restart');
      assert.equal(r.code, 1, r.stdout);
      assert.match(r.stderr, /control\.socket changes from .* use systemctl restart/);
    } finally {
      fs.writeFileSync(n1.file, good);
    }
    // The running groups stayed untouched, so another restart works.
    const r = await pair.n1.ctl('restart');
    assert.equal(r.code, 0, r.stderr);
  });

  it('a script still running: restart refused after the wait, never cut; the daemon runs on', async () => {
    const { n1, n2 } = pair;
    const script = path.join(pair.root, 'slow-down.sh');
    const done = path.join(pair.root, 'slow-down.done');
    const daemonPid = path.join(pair.root, 'left-behind.pid');
    // It also leaves a process behind that outlives it (setsid, as a daemon would): the
    // daemon adopts it as child subreaper, and it must be reaped even across a restart.
    fs.writeFileSync(
      script,
      `#!/bin/sh\nsetsid sh -c 'echo $$ > ${daemonPid}; exec sleep 14' </dev/null >/dev/null 2>&1 &\nsleep 7\ntouch ${done}\n`,
      { mode: 0o755 },
    );
    // ucarpctl reload rather than the file watch, which the image just started may not have
    // set up yet; one of the two applies it.
    n1.write(
      groups(0).map((g) => (g.name === 'r0' ? { ...g, extra: { ...g.extra, downscript: script } } : g)),
    );
    assert.equal((await n1.ctl('reload')).code, 0);
    // demote hands r0 over and runs its downscript, which takes 7 s.
    assert.equal((await n1.ctl('demote', 'r0')).code, 0);
    const before1 = await n1.status();
    const r = await n1.ctl('restart');
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stderr, /restart refused, the daemon runs on: scripts still running after 5000 ms/);
    const now = await n1.status();
    assert.equal(now.pid, before1.pid);
    assert.ok(now.uptimeMs > before1.uptimeMs, 'the same image');
    await waitFor(() => fs.existsSync(done), 10_000, 'the downscript to finish, uncut');
    // Back to the start: r0 without the script, h1 master of it again (it preempts).
    n1.write(groups(0));
    assert.equal((await n1.ctl('reload')).code, 0);
    assert.equal((await n1.ctl('reset', 'r0')).code, 0);
    await n1.waitAll(masters);
    await n2.waitAll(backups);

    // Now the restart goes through, with the left-behind process still running; the new image
    // never spawned it, yet reaps it when it ends: no zombie stays with the daemon's pid.
    const orphan = Number(fs.readFileSync(daemonPid, 'utf8').trim());
    const stat = () => {
      try {
        return fs.readFileSync(`/proc/${orphan}/stat`, 'utf8');
      } catch {
        return null;
      }
    };
    const ppid = (text: string) => Number(text.slice(text.lastIndexOf(')') + 2).split(' ')[1]);
    const alive = stat();
    assert.ok(alive !== null, 'the left-behind process still runs');
    assert.equal(ppid(alive), now.pid, 'adopted by the daemon');
    assert.equal((await n1.ctl('restart')).code, 0);
    await waitFor(
      () => stat() === null,
      15_000,
      `the left-behind process ${orphan} to be reaped, not left a zombie`,
    );
  });

  it('a stop after a restart still bows out: h2 takes over at once, h1 releases', async () => {
    const { lab, n1, n2 } = pair;
    const from2 = n2.proc.lines.length;
    const cap = await captureAdverts(lab.host(2).ns, lab.host(1).ips[0]);
    await n1.stop();
    await n2.waitAll(masters, 5000);
    // The same capture that saw no bow-out across the restart sees one per group now.
    const bowOuts = (await cap.stop()).filter(
      (a) => a.advbase === BOW_OUT.advbase && a.advskew === BOW_OUT.advskew,
    );
    assert.deepEqual(
      bowOuts.map((a) => a.vhid).sort(),
      groups4(0).map((g) => g.vhid),
    );
    const reasons = transitions(n2.proc, from2).map((x) => x.reason);
    // The bow-out (advbase 255) makes a backup take over on receipt, never by its timer.
    assert.equal(reasons.length, TOTAL);
    assert.ok(
      reasons.every((x) => x === 'master-timing-out'),
      `h2 took over by: ${reasons.join(', ')}`,
    );
    await settled(
      lab,
      singleHolders(new Map(groups4(0).map((g) => [vip(g), lab.host(2)]))),
      300,
      5000,
      'every address on h2 only',
    );
    await waitFor(async () => (await holders6()).join() === lab.host(2).ns, 5000, `${VIP6} on h2 only`);
  });
});
