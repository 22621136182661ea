// systemd/ucarp.service, installed unchanged, under a real systemd (PID 1 of its own
// namespaces, see test/helpers/systemd-host.ts), driven with systemctl and journalctl. Host h1
// runs the unit (NetworkNamespacePath= puts it in h1's namespace); host h2 runs our daemon
// directly as the peer that has to see the right master.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFile, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { Lab, type LabHost } from '../../src/demo/lab';
import { waitFor } from '../helpers/netns';
import { ROOT, OUR_UCARP } from '../helpers/carp-proc';
import { configYaml, type TestGroup } from '../helpers/supervisor-proc';
import { readLines } from '../helpers/lab-process';
import { SystemdHost, CannotBoot, bootBlocker, needsBind } from '../helpers/systemd-host';
import type { StatusDocument, GroupStatusJson } from '../../src/control/protocol';
import { LOADER_NICE } from '../../src/config/off-thread';

const run = promisify(execFile);
const UCARPCTL = path.join(ROOT, 'bin/ucarpctl');
const UNIT_FILE = path.join(ROOT, 'systemd/ucarp.service');
const SOCKET = '/run/ucarp/control.sock';
const CONFIG = '/etc/ucarp.yaml';
const PREFIX = `sd${process.pid.toString(36)}`;

// h1 (systemd) is preferred everywhere. `pre` preempts, so h1 takes it back after a restart;
// `nopre` does not, so after a restart h1 must stay BACKUP and must not keep the address it
// held before it was killed.
// `pre`'s upscript records the descriptors it started with, where the sandbox lets it write.
const LIST_FDS = path.join(ROOT, 'test/fixtures/scripts/list-fds.sh');
const H1_GROUPS: TestGroup[] = [
  {
    name: 'pre',
    vhid: 10,
    iface: 'eth0',
    addresses: ['192.0.2.100/24'],
    advskew: 0,
    preempt: true,
    extra: { upscript: LIST_FDS },
  },
  { name: 'nopre', vhid: 11, iface: 'eth0', addresses: ['192.0.2.101/24'], advskew: 0, preempt: false },
];
const ADDED: TestGroup = { name: 'added', vhid: 12, iface: 'eth0', addresses: ['192.0.2.102/24'] };
const H2_GROUPS: TestGroup[] = H1_GROUPS.map((g) => ({ ...g, advskew: 100, preempt: false }));

/** A word of an Exec*= line, quoted for systemd (specifiers and variables escaped too). */
function sdWord(s: string): string {
  const q = s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/%/g, '%%').replace(/\$/g, '$$$$');
  return `"${q}"`;
}

function systemUnitDir(): string {
  const dir = ['/lib/systemd/system', '/usr/lib/systemd/system'].find((d) =>
    fs.existsSync(path.join(d, 'systemd-journald.service')),
  );
  if (!dir) throw new Error('systemd-journald.service not found');
  return dir;
}

/** The unit, its drop-in, the boot target and the configuration, as files of the booted system. */
function bootFiles(netns: string): Record<string, string> {
  const etc = '/etc/systemd/system';
  const files: Record<string, string> = {};
  files[`${etc}/ucarp.service`] = fs.readFileSync(UNIT_FILE, 'utf8');
  // The journal is needed for journalctl; its units come from the installed systemd package.
  const sys = systemUnitDir();
  for (const u of [
    'systemd-journald.service',
    'systemd-journald.socket',
    'systemd-journald-dev-log.socket',
    'systemd-journald-audit.socket',
  ]) {
    if (fs.existsSync(path.join(sys, u))) files[`${etc}/${u}`] = fs.readFileSync(path.join(sys, u), 'utf8');
  }
  files[`${etc}/ucarp-test.target`] = [
    '[Unit]',
    'Description=ucarp test system',
    'Wants=systemd-journald.socket systemd-journald-dev-log.socket systemd-journald.service',
    '',
  ].join('\n');
  // Targets the unit (and its default dependencies) order against; empty here because the
  // booted system has nothing to initialise and its network is the test namespace.
  for (const t of ['sysinit', 'basic', 'network-online', 'shutdown']) {
    files[`${etc}/${t}.target`] = `[Unit]\nDescription=${t}.target of the ucarp test system\n`;
  }
  const node = fs.realpathSync(process.execPath);
  const ucarp = [node, OUR_UCARP].map(sdWord).join(' ');
  const where = [ROOT, node].map((p) => fs.realpathSync(p));
  const relax: string[] = [];
  // ProtectHome=yes hides these; the daemon only needs to read its own code there.
  if (where.some((p) => /^\/(home|root|run\/user)(\/|$)/.test(p))) relax.push('ProtectHome=read-only');
  // PrivateTmp=yes gives the service an empty /tmp and /var/tmp.
  if (where.some((p) => /^\/(var\/)?tmp(\/|$)/.test(p))) relax.push('PrivateTmp=no');
  files[`${etc}/ucarp.service.d/test.conf`] = [
    '# The unit run from the checkout in a test network namespace; nothing else changed',
    '# except what the checkout location needs.',
    '[Service]',
    `NetworkNamespacePath=/run/netns/${netns}`,
    'ExecStartPre=',
    `ExecStartPre=${ucarp} --check-config -c ${CONFIG}`,
    'ExecStart=',
    `ExecStart=${ucarp} -c ${CONFIG}`,
    'ExecReload=',
    `ExecReload=${ucarp} --check-config -c ${CONFIG}`,
    'ExecReload=/bin/kill -HUP $MAINPID',
    ...relax,
    '',
  ].join('\n');
  files[CONFIG] = configYaml(H1_GROUPS, { socket: SOCKET });
  return files;
}

/** Our daemon run directly in the peer's namespace, with every output line time-stamped. */
class Peer {
  readonly lines: { text: string; at: number }[] = [];
  readonly child: ChildProcess;

  constructor(
    lab: Lab,
    host: LabHost,
    readonly file: string,
    readonly socket: string,
  ) {
    this.child = lab.spawn(host, process.execPath, [OUR_UCARP, '-c', file]);
    const onLine = (text: string) => this.lines.push({ text, at: Date.now() });
    readLines(this.child.stdout, onLine);
    readLines(this.child.stderr, onLine);
  }

  transitions(from: number): string[] {
    return this.lines
      .slice(from)
      .map((l) => l.text)
      .filter((t) => /Switching to state/.test(t));
  }

  async status(): Promise<StatusDocument> {
    const { stdout } = await run(process.execPath, [UCARPCTL, '--socket', this.socket, 'status', '--json']);
    return JSON.parse(stdout) as StatusDocument;
  }
}

function group(doc: StatusDocument, name: string): GroupStatusJson {
  const g = doc.groups.find((x) => x.name === name);
  if (!g) throw new Error(`no group ${name} in ${JSON.stringify(doc.groups.map((x) => x.name))}`);
  return g;
}

const vip = (g: TestGroup) => g.addresses[0].split('/')[0];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('systemd/ucarp.service under a real systemd', () => {
  let lab: Lab;
  let h1: LabHost;
  let h2: LabHost;
  let sd: SystemdHost;
  let peer: Peer | undefined;
  let dir: string;
  let peerFile: string;
  let peerSocket: string;
  /** Why systemd cannot be booted on this machine; every test then skips with it. */
  let skipReason = bootBlocker();
  // Host state the booted system must not touch: a /tmp file old enough for any tmpfiles
  // age-based clean-up, and the files the booted system writes under /etc.
  let canary: string;
  const hostEtc = [
    '/etc/ucarp.yaml',
    '/etc/systemd/system/ucarp-test.target',
    '/etc/systemd/system/ucarp.service',
  ];
  const hostEtcBefore = new Map<string, string | null>();
  const readOrNull = (f: string) => (fs.existsSync(f) ? fs.readFileSync(f, 'utf8') : null);

  /** Virtual addresses on eth0 of a host, sorted, the host's own address left out. */
  async function vips(h: LabHost): Promise<string[]> {
    return (await lab.addresses(h)).filter((a) => a !== h.ip).sort();
  }

  async function status(): Promise<StatusDocument> {
    const r = await sd.exec(process.execPath, [UCARPCTL, '--socket', SOCKET, 'status', '--json']);
    if (r.code !== 0) throw new Error(`ucarpctl status exited ${r.code}: ${r.stderr}`);
    return JSON.parse(r.stdout) as StatusDocument;
  }

  /** The ucarp unit's journal messages (with their priorities), from entry `from` on. */
  async function journal(from = 0): Promise<{ msg: string; prio: string; pid: number }[]> {
    const entries = await sd.journal(['-u', 'ucarp.service']);
    return entries
      .slice(from)
      .map((e) => ({ msg: String(e.MESSAGE), prio: String(e.PRIORITY), pid: Number(e._PID) }));
  }

  async function journalLine(re: RegExp, from: number, timeoutMs = 10000): Promise<string> {
    let found = '';
    await waitFor(
      async () => {
        found = (await journal(from)).find((e) => re.test(e.msg))?.msg ?? '';
        return found !== '';
      },
      timeoutMs,
      `a journal line matching ${re}`,
      100,
    );
    return found;
  }

  async function mainPid(): Promise<number> {
    return Number((await sd.show('ucarp', ['MainPID'])).MainPID);
  }

  before(async () => {
    if (skipReason) return;
    dir = fs.mkdtempSync(path.join(os.tmpdir(), `${PREFIX}-peer-`));
    canary = path.join(os.tmpdir(), `${PREFIX}-canary`);
    fs.writeFileSync(canary, 'must survive\n');
    const monthAgo = new Date(Date.now() - 30 * 86400e3);
    fs.utimesSync(canary, monthAgo, monthAgo);
    for (const f of hostEtc) hostEtcBefore.set(f, readOrNull(f));
    fs.chmodSync(LIST_FDS, 0o755);
    peerFile = path.join(dir, 'ucarp.yaml');
    peerSocket = path.join(dir, 'ctl.sock');
    lab = Lab.create(PREFIX, [
      { name: 'h1', address: '192.0.2.1/24' },
      { name: 'h2', address: '192.0.2.2/24' },
    ]);
    [h1, h2] = lab.hosts;
    // Also when the run is cut short; the systemd host registers its own hook.
    process.on('exit', () => {
      lab.destroySync();
      fs.rmSync(dir, { recursive: true, force: true });
      fs.rmSync(canary, { force: true });
    });
    const bind = [...new Set([ROOT, path.dirname(fs.realpathSync(process.execPath))])].filter(needsBind);
    try {
      sd = await SystemdHost.boot({
        prefix: PREFIX,
        files: bootFiles(h1.ns),
        unit: 'ucarp-test.target',
        netns: [h1.ns],
        bind,
        bootTimeoutMs: 30000,
      });
    } catch (e) {
      if (!(e instanceof CannotBoot)) throw e;
      skipReason = e.message;
    }
    fs.writeFileSync(peerFile, configYaml(H2_GROUPS, { socket: peerSocket }));
  });

  after(() => {
    // The systemd side first: its daemon runs in h1's namespace.
    sd?.destroySync();
    lab?.destroySync();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
    if (canary) fs.rmSync(canary, { force: true });
  });

  test('start: Type=notify reaches active with every group up, sandboxed; the peer sees h1 as master', async (t) => {
    if (skipReason) return t.skip(skipReason);
    await sd.systemctl('start', 'ucarp');
    // READY=1 is sent once every group has started: none may still be in INIT now.
    const doc = await status();
    const p = await sd.show('ucarp', ['ActiveState', 'SubState', 'Type', 'MainPID', 'NRestarts']);
    assert.deepEqual(
      { ...p, MainPID: Number(p.MainPID) },
      { ActiveState: 'active', SubState: 'running', Type: 'notify', MainPID: doc.pid, NRestarts: '0' },
    );
    assert.deepEqual(
      doc.groups.map((g) => [g.name, g.state === 'INIT' ? 'INIT' : 'started']),
      H1_GROUPS.map((g) => [g.name, 'started']),
    );
    // The sandbox as the kernel sees it: only CAP_NET_ADMIN (12) and CAP_NET_RAW (13), no
    // new privileges, and the test host's network namespace.
    const st = await sd.exec('cat', [`/proc/${doc.pid}/status`]);
    assert.match(st.stdout, /^CapBnd:\s+0000000000003000$/m);
    assert.match(st.stdout, /^CapEff:\s+0000000000003000$/m);
    assert.match(st.stdout, /^NoNewPrivs:\s+1$/m);
    const netns = await sd.exec('readlink', [`/proc/${doc.pid}/ns/net`]);
    assert.equal(netns.stdout.trim(), `net:[${fs.statSync(`/run/netns/${h1.ns}`).ino}]`);
    // The filter lets the configuration loader thread lower its own priority, and only its own.
    const nices = (await sd.exec('sh', ['-c', `cat /proc/${doc.pid}/task/*/stat`])).stdout
      .trim()
      .split('\n')
      .map((line) => Number(line.slice(line.lastIndexOf(')') + 2).split(' ')[16]));
    assert.equal(nices.filter((n) => n === LOADER_NICE).length, 1, `thread nice values ${nices.join(' ')}`);
    assert.equal(nices.filter((n) => n === 0).length, nices.length - 1);

    await waitFor(
      async () => (await status()).groups.every((g) => g.state === 'MASTER'),
      8000,
      'every group MASTER on h1',
    );
    assert.deepEqual(await vips(h1), H1_GROUPS.map(vip).sort());
    // The upscript ran inside the unit's sandbox (its system call filter included) through the
    // addon's posix_spawn: nothing but stdio (and ls's own directory) is open. Forked by Node
    // instead, it would hold the daemon's raw sockets, which are not close-on-exec.
    let fds = '';
    await waitFor(
      async () => {
        fds = (await sd.exec('cat', ['/run/ucarp/fds-pre'])).stdout;
        return fds !== '';
      },
      5000,
      "pre's upscript",
    );
    assert.deepEqual(fds.trim().split('\n'), ['0', '1', '2', '3']);
    // Started after h1 is master, so that it joins as backup whatever its start-up time.
    peer = new Peer(lab, h2, peerFile, peerSocket);
    await waitFor(
      async () => {
        const d = await (peer as Peer).status().catch(() => null);
        return !!d && d.groups.every((g) => g.state === 'BACKUP' && g.master?.address === h1.ip);
      },
      8000,
      'the peer backing up h1 in every group',
    );
    assert.deepEqual(await vips(h2), []);
  });

  test('reload adds a group; the others keep running untouched', async (t) => {
    if (skipReason) return t.skip(skipReason);
    const before = await status();
    const from = (await journal()).length;
    const fromPeer = peer?.lines.length ?? 0;
    sd.writeFile(CONFIG, configYaml([...H1_GROUPS, ADDED], { socket: SOCKET }));
    await sd.systemctl('reload', 'ucarp');
    // The daemon also applies a saved file by itself (docs/operations.md), so the change may
    // be applied by either reload; the SIGHUP one proves ExecReload reached the daemon.
    await journalLine(/reload \(SIGHUP\): /, from);
    const lines = (await journal(from)).map((e) => e.msg).filter((m) => /^reload \(/.test(m));
    assert.equal(lines.filter((m) => /added 1 \(added\)/.test(m)).length, 1, lines.join('\n'));
    assert.ok(
      lines.every((m) => /removed 0, updated 0, restarted 0/.test(m)),
      lines.join('\n'),
    );
    const now = await status();
    assert.equal(now.pid, before.pid);
    for (const g of H1_GROUPS) {
      const b = group(before, g.name);
      const a = group(now, g.name);
      assert.equal(a.state, 'MASTER', g.name);
      assert.equal(a.transitions, b.transitions, `${g.name} changed state`);
      assert.ok(a.sinceMs > b.sinceMs, `${g.name} was restarted`);
    }
    await waitFor(async () => (await vips(h1)).includes(vip(ADDED)), 8000, 'the added group address');
    assert.equal(group(await status(), 'added').state, 'MASTER');
    assert.deepEqual(peer?.transitions(fromPeer), []);
  });

  test('reload of a broken file fails and changes nothing', async (t) => {
    if (skipReason) return t.skip(skipReason);
    const before = await status();
    const addrs = await vips(h1);
    const from = (await journal()).length;
    const good = configYaml([...H1_GROUPS, ADDED], { socket: SOCKET });
    sd.writeFile(CONFIG, good.replace('vhid: 12\n', 'vhid: 300\n'));
    // The valid file goes back whatever happens: the restart test runs ExecStartPre on it.
    t.after(() => sd.writeFile(CONFIG, good));
    const r = await sd.exec('systemctl', ['reload', 'ucarp']);
    assert.notEqual(r.code, 0, `systemctl reload succeeded:\n${r.stdout}${r.stderr}`);
    assert.match(r.stderr, /Job for ucarp\.service failed/);
    // ExecReload's check printed the error (the daemon, which also sees the file change and
    // rejects it, logs the same line with its own pid), and the daemon never got SIGHUP.
    const err = /ucarp\.yaml:\d+:\d+: groups\.added\.vhid: must be <= 255/;
    await waitFor(
      async () => (await journal(from)).some((e) => err.test(e.msg) && e.pid !== before.pid),
      10000,
      'the check error from ExecReload',
      100,
    );
    assert.deepEqual(
      (await journal(from)).filter((e) => /reload \(SIGHUP\)/.test(e.msg)),
      [],
      'SIGHUP sent despite the failed check',
    );
    const p = await sd.show('ucarp', ['ActiveState', 'MainPID']);
    assert.deepEqual(p, { ActiveState: 'active', MainPID: String(before.pid) });
    const now = await status();
    for (const g of before.groups) {
      const a = group(now, g.name);
      assert.equal(a.state, g.state, g.name);
      assert.equal(a.transitions, g.transitions, g.name);
    }
    assert.deepEqual(await vips(h1), addrs);
  });

  test('SIGKILL of the main process: restarted, and no address is left behind', async (t) => {
    if (skipReason) return t.skip(skipReason);
    const oldPid = await mainPid();
    const from = (await journal()).length;
    await sd.systemctl('kill', '--kill-whom=main', '--signal=KILL', 'ucarp');
    await waitFor(
      async () => {
        const p = await sd.show('ucarp', ['ActiveState', 'MainPID', 'NRestarts']);
        return p.ActiveState === 'active' && Number(p.MainPID) !== oldPid && p.NRestarts === '1';
      },
      15000,
      'the unit restarted with a new main process',
      100,
    );
    // The killed daemon could not release its addresses. The peer takes `nopre` over; the new
    // daemon starts as backup (and must drop the stale copy), preempts back `pre`, and is the
    // only one to run `added`.
    const expected = async () => {
      const [a1, a2] = [await vips(h1), await vips(h2)];
      return a1.join() === [vip(H1_GROUPS[0]), vip(ADDED)].sort().join() && a2.join() === vip(H1_GROUPS[1]);
    };
    await waitFor(expected, 15000, 'pre and added on h1, nopre on h2 only', 100);
    await sleep(1500);
    assert.ok(await expected(), `h1 ${await vips(h1)}, h2 ${await vips(h2)}`);
    await journalLine(/nopre vhid 11 eth0: Switching to state: BACKUP \(start\)/, from);
    const doc = await status();
    assert.equal(doc.pid, await mainPid());
    assert.equal(group(doc, 'nopre').state, 'BACKUP');
    assert.equal(group(doc, 'nopre').master?.address, h2.ip);
  });

  test('stop: the peer takes over at once (bow-out), every address is released', async (t) => {
    if (skipReason) return t.skip(skipReason);
    const p = peer as Peer;
    await waitFor(async () => group(await status(), 'pre').state === 'MASTER', 8000, 'h1 master of pre');
    const from = p.lines.length;
    const t0 = Date.now();
    await sd.systemctl('stop', 'ucarp');
    await waitFor(
      () => p.lines.slice(from).some((l) => /pre vhid 10 eth0: Switching to state: MASTER/.test(l.text)),
      5000,
      'the peer to take pre over',
    );
    const line = p.lines.slice(from).find((l) => /pre vhid 10 eth0: Switching to state: MASTER/.test(l.text));
    // master-timing-out is the answer to the bow-out (advbase 255); the peer's dead time,
    // 3 × 1 s + 100/256 s, would have given master-down.
    assert.match(line?.text ?? '', /\(master-timing-out\)/);
    const took = (line?.at ?? Infinity) - t0;
    assert.ok(took < 2000, `the peer took ${took} ms`);
    const s = await sd.show('ucarp', ['ActiveState', 'Result']);
    assert.deepEqual(s, { ActiveState: 'inactive', Result: 'success' });
    assert.deepEqual(await vips(h1), []);
    await waitFor(
      async () => (await vips(h2)).join() === H1_GROUPS.map(vip).sort().join(),
      5000,
      'h2 holding pre and nopre',
    );
  });

  test('the journal carries the priorities', async (t) => {
    if (skipReason) return t.skip(skipReason);
    const all = await journal();
    const prio = (re: RegExp) => [...new Set(all.filter((e) => re.test(e.msg)).map((e) => e.prio))];
    // The `<N>` prefixes became PRIORITY fields and are gone from the messages.
    assert.deepEqual(prio(/Switching to state: MASTER/), ['4']);
    assert.deepEqual(prio(/^started \d+ group\(s\)/), ['6']);
    // The broken file of the reload test, rejected by the daemon's own watcher.
    assert.deepEqual(prio(/^reload \(.*\) rejected/), ['3']);
    assert.deepEqual(
      all.filter((e) => /^<\d>/.test(e.msg)),
      [],
    );
    // What docs/operations.md promises: -p warning shows transitions and problems only.
    const warn = await sd.journal(['-u', 'ucarp.service', '-p', 'warning']);
    assert.ok(warn.some((e) => /Switching to state: MASTER/.test(String(e.MESSAGE))));
    assert.ok(warn.every((e) => Number(e.PRIORITY) <= 4 && !/^started /.test(String(e.MESSAGE))));
  });

  test('the host is untouched while the booted system runs', async (t) => {
    if (skipReason) return t.skip(skipReason);
    assert.equal(fs.readFileSync(canary, 'utf8'), 'must survive\n');
    for (const f of hostEtc) assert.equal(readOrNull(f), hostEtcBefore.get(f), f);
    // The booted system does see its own files at those paths.
    const inside = await sd.exec('cat', ['/etc/systemd/system/ucarp-test.target']);
    assert.equal(inside.code, 0);
    // Nothing mounted inside shows up in this (the host's) mount namespace.
    const mounts = fs.readFileSync('/proc/self/mountinfo', 'utf8');
    assert.ok(!mounts.includes(sd.dir), mounts);
    assert.ok(!/ - overlay overlay .*lowerdir=\/,/.test(mounts), mounts);
  });
});
