// ucarpctl against real daemons: two hosts in network namespaces, each running `bin/ucarp -c`
// with two groups. The tests run in order on one cluster; the failover comes last.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Lab, waitFor, type Host } from '../helpers/netns';
import { ROOT } from '../helpers/carp-proc';
import { readableCopy } from '../helpers/readable-copy';
import { SupervisorProc, writeByRename, type TestGroup } from '../helpers/supervisor-proc';
import { Node, run, type Run } from '../helpers/fault';

const UCARP = path.join(ROOT, 'bin/ucarp');
const WEB = '192.0.2.100';
const DB = '192.0.2.120';

function groups(host: Host, advskew: number): TestGroup[] {
  const extra = { srcip: host.ips[0] };
  return [
    { name: 'web', vhid: 10, iface: 'eth0', addresses: [`${WEB}/24`], advskew, extra },
    { name: 'db', vhid: 20, iface: 'eth0', addresses: [`${DB}/24`], advskew, extra },
  ];
}

describe('ucarpctl on a two-host cluster', { timeout: 180_000 }, () => {
  let lab: Lab;
  let tmp: string;
  let n1: Node;
  let n2: Node;

  before(async () => {
    lab = await Lab.create({ hosts: 2 });
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ucarpctl-it-'));
    // Traversable by anyone: the non-root test must be refused by the socket's own mode.
    fs.chmodSync(tmp, 0o755);
    n1 = new Node(lab, lab.host(1), tmp, groups(lab.host(1), 10));
    n2 = new Node(lab, lab.host(2), tmp, groups(lab.host(2), 50));
    n1.start();
    await n1.waitState('web', 'MASTER');
    await n1.waitState('db', 'MASTER');
    n2.start();
    await n2.waitState('web', 'BACKUP');
    await n2.waitState('db', 'BACKUP');
  });

  after(async () => {
    await lab?.destroy();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('status --json matches the cluster: master, backup, addresses and counters', async () => {
    await waitFor(
      async () => (await n2.group('web')).master?.address === n1.host.ips[0],
      10_000,
      'h2 to see h1 as master',
      100,
    );
    const s1 = await n1.status();
    const s2 = await n2.status();
    assert.equal(s1.version, 1);
    assert.equal(s1.configFile, n1.file);
    assert.equal(s1.pid, n1.proc.child.pid);
    assert.deepEqual(
      s1.groups.map((g) => [g.name, g.vhid, g.interface, g.state, g.srcip, g.advskew, g.override]),
      [
        ['web', 10, 'eth0', 'MASTER', '192.0.2.1', 10, 'none'],
        ['db', 20, 'eth0', 'MASTER', '192.0.2.1', 10, 'none'],
      ],
    );
    assert.deepEqual(
      s2.groups.map((g) => [g.name, g.state, g.advskew]),
      [
        ['web', 'BACKUP', 50],
        ['db', 'BACKUP', 50],
      ],
    );
    for (const g of s2.groups) {
      assert.deepEqual(g.master, { address: '192.0.2.1', advbase: 1, advskew: 10 }, g.name);
      assert.ok(g.received > 0, `${g.name}: h2 received advertisements`);
      assert.equal(g.rejectsTotal, 0);
    }
    for (const g of s1.groups) {
      assert.deepEqual(g.master, { address: '192.0.2.1', advbase: 1, advskew: 10 });
      assert.ok(g.sent > 0);
      assert.ok(g.transitions >= 1);
    }
    assert.deepEqual(s1.groups[0].addresses, [`${WEB}/24`]);
    assert.deepEqual(
      s1.interfaces.map((i) => [i.name, i.running, i.groups]),
      [['eth0', true, 2]],
    );
    // The addresses are where the status says the masters are.
    assert.ok(await n1.has(WEB));
    assert.ok(await n1.has(DB));
    assert.equal(await n2.has(WEB), false);
    assert.equal(await n2.has(DB), false);

    const table = await n1.ctl('status');
    assert.equal(table.code, 0);
    const lines = table.stdout.trimEnd().split('\n');
    assert.match(
      lines[0],
      /^GROUP\s+VHID\s+IFACE\s+STATE\s+SINCE\s+ADDRESSES\s+MASTER\s+SENT\s+RECV\s+REJECTS$/,
    );
    assert.match(
      lines[1],
      /^web\s+10\s+eth0\s+MASTER\s+\d+s\s+192\.0\.2\.100\/24\s+192\.0\.2\.1 \(self\) 1\/10\s+\d+\s+\d+\s+0$/,
    );
    assert.match(lines[2], /^db\s+20\s+eth0\s+MASTER\s/);
  });

  it('demote and promote move mastership and back; reset clears the override', async () => {
    const d = await n1.ctl('demote', 'web');
    assert.equal(d.code, 0, d.stderr);
    assert.match(d.stdout, /^web: demoted; now BACKUP, advertising advbase 1 advskew 255\n$/);
    await n2.waitState('web', 'MASTER');
    await waitFor(
      async () => (await n2.has(WEB)) && !(await n1.has(WEB)),
      10_000,
      'the web address to move to h2',
    );
    const w1 = await n1.group('web');
    assert.equal(w1.state, 'BACKUP');
    assert.equal(w1.override, 'demote');
    assert.equal(w1.advskew, 255);
    assert.deepEqual(w1.master, { address: '192.0.2.2', advbase: 1, advskew: 50 });
    assert.equal((await n1.group('db')).state, 'MASTER', 'other groups are not touched');

    const r = await n1.ctl('reset', 'web');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^web: override cleared; now BACKUP, advertising advbase 1 advskew 10\n$/);

    const p = await n1.ctl('promote', 'web');
    assert.equal(p.code, 0, p.stderr);
    // Most likely still BACKUP until h2's next advertisement, which is longer than ours:
    // ucarpctl then says when it will take over.
    assert.ok(
      [
        'web: promoted; now MASTER, advertising advbase 1 advskew 0\n',
        'web: promoted; now BACKUP, advertising advbase 1 advskew 0\n' +
          '  the master 192.0.2.2 advertises advbase 1 advskew 50, a longer interval than ours: ' +
          'we take over at its next advertisement\n',
      ].includes(p.stdout),
      p.stdout,
    );
    await n1.waitState('web', 'MASTER');
    await n2.waitState('web', 'BACKUP');
    await waitFor(
      async () => (await n1.has(WEB)) && !(await n2.has(WEB)),
      10_000,
      'the web address back on h1',
    );
    const seen = (await n2.group('web')).master;
    assert.ok(seen && 'advskew' in seen);
    assert.equal(seen.advskew, 0, 'h1 advertises advskew 0 while promoted');

    const back = await n1.ctl('reset', 'web');
    assert.equal(back.code, 0, back.stderr);
    const w = await n1.group('web');
    assert.deepEqual([w.state, w.override, w.advskew], ['MASTER', 'none', 10]);
  });

  it('a group that does not exist: exit 1 and a clear message', async () => {
    for (const cmd of ['demote', 'promote', 'reset']) {
      const r = await n1.ctl(cmd, 'nope');
      assert.deepEqual(r, { code: 1, stdout: '', stderr: 'ucarpctl: no group named "nope"\n' }, cmd);
    }
  });

  it('reload clears overrides; a broken file is rejected with every line:column error and changes nothing', async () => {
    const p = await n2.ctl('promote', 'db');
    assert.equal(p.code, 0, p.stderr);
    await n2.waitState('db', 'MASTER');
    const ok = await n2.ctl('reload');
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(
      ok.stdout,
      /^reload \(ucarpctl\): added 0, removed 0, updated 0, restarted 0, unchanged 2\n$/,
    );
    const db = await n2.group('db');
    assert.deepEqual(
      [db.state, db.override, db.advskew],
      ['MASTER', 'none', 50],
      'override cleared by reload',
    );
    // Give db back to h1 for the rest of the suite.
    assert.equal((await n2.ctl('demote', 'db')).code, 0);
    await n1.waitState('db', 'MASTER');
    assert.equal((await n2.ctl('reset', 'db')).code, 0);

    const before = await n1.status();
    const broken = n1
      .config()
      .replace('vhid: 10', 'vhid: 300')
      .replace(`advskew: 10\n`, `advskew: 10\n    bogus_key: 1\n`);
    writeByRename(n1.file, broken);
    const check = await run('ip', [
      'netns',
      'exec',
      n1.host.ns,
      process.execPath,
      UCARP,
      '--check-config',
      '-c',
      n1.file,
    ]);
    assert.equal(check.code, 1);
    const errorLines = check.stderr.trimEnd().split('\n');
    assert.ok(errorLines.length >= 2, check.stderr);
    for (const l of errorLines)
      assert.match(l, new RegExp(`^${n1.file.replace(/[.]/g, '\\.')}:\\d+:\\d+: groups\\.`));

    const r = await n1.ctl('reload');
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    const lines = r.stderr.trimEnd().split('\n');
    assert.deepEqual(lines.slice(0, -1), errorLines, 'the same errors as --check-config, with line:column');
    assert.match(
      lines[lines.length - 1],
      /^ucarpctl: configuration rejected with \d+ error\(s\); running groups unchanged$/,
    );

    const afterBad = await n1.status();
    assert.deepEqual(
      afterBad.groups.map((g) => [g.name, g.vhid, g.state]),
      before.groups.map((g) => [g.name, g.vhid, g.state]),
    );
    assert.ok(afterBad.reloads.failed >= 1);
    writeByRename(n1.file, n1.config());
    const fixed = await n1.ctl('reload');
    assert.equal(fixed.code, 0, fixed.stderr);
  });

  it('the socket is 0600: a non-root client is refused and the daemon keeps answering', async () => {
    const st = fs.statSync(n1.socket);
    assert.ok(st.isSocket());
    assert.equal(st.mode & 0o777, 0o600);
    assert.equal(st.uid, 0);
    // nobody may not be able to enter the checkout (a clone under /root).
    const copy = readableCopy();
    let r: Run;
    try {
      r = await run('setpriv', [
        '--reuid=65534',
        '--regid=65534',
        '--clear-groups',
        process.execPath,
        path.join(copy.root, 'bin/ucarpctl'),
        '--socket',
        n1.socket,
        'status',
      ]);
    } finally {
      copy.remove();
    }
    assert.equal(r.code, 2);
    assert.equal(
      r.stderr,
      `ucarpctl: permission denied on ${n1.socket}: the control socket is for root only\n`,
    );
    assert.equal((await n1.status()).groups.length, 2);
  });

  it('garbage on the socket gets an error or a close, and the daemon keeps answering and advertising', async () => {
    const sentBefore = (await n1.group('web')).sent;
    const send = (data: Buffer | string): Promise<string> =>
      new Promise((resolve) => {
        const c = net.connect(n1.socket);
        let got = '';
        const timer = setTimeout(() => c.destroy(), 5000);
        c.on('connect', () => {
          c.write(data);
          c.end();
        });
        c.on('data', (d: Buffer) => (got += d.toString()));
        c.on('error', () => undefined);
        c.on('close', () => {
          clearTimeout(timer);
          resolve(got);
        });
      });
    const cases: [string, Buffer | string, RegExp][] = [
      ['invalid JSON', '{"cmd": status}\n', /"code":"bad-request"/],
      ['unknown command', '{"cmd":"selfdestruct"}\n', /"code":"unknown-command"/],
      ['a 1 MiB line', Buffer.alloc(1 << 20, 0x41), /"code":"too-long"/],
      ['random bytes', randomBytes(256 * 1024), /^$|"ok":false/],
    ];
    for (const [what, data, want] of cases) {
      const got = await send(data);
      assert.match(got, want, what);
      for (const line of got.split('\n').filter(Boolean)) assert.equal(JSON.parse(line).ok, false, what);
      assert.equal((await n1.status()).groups.length, 2, `still answering after ${what}`);
    }
    await waitFor(
      async () => (await n1.group('web')).sent > sentBefore + 1,
      5000,
      'web to keep advertising',
      100,
    );
    assert.equal((await n1.group('web')).state, 'MASTER');
  });

  it('a second daemon with the same control socket refuses to start and touches nothing', async () => {
    const mark = n1.proc.lines.length;
    const second = new SupervisorProc(lab, n1.host, n1.file);
    await second.exit();
    assert.equal(second.child.exitCode, 1);
    assert.match(
      second.lines.join('\n'),
      /another ucarp daemon is running \(its control socket .* answers\)/,
    );
    assert.doesNotMatch(second.lines.join('\n'), /Switching to state/);
    assert.deepEqual(n1.proc.transitions(undefined, mark), []);
    assert.deepEqual(
      (await n1.status()).groups.map((g) => g.state),
      ['MASTER', 'MASTER'],
    );
  });

  it('status follows a failover: SIGKILL the master, the other host shows MASTER and holds the addresses', async () => {
    n1.proc.signal('SIGKILL');
    await n1.proc.exit();
    const down = await n1.ctl('status');
    assert.deepEqual(down, {
      code: 2,
      stdout: '',
      // SIGKILL leaves the socket file behind.
      stderr: `ucarpctl: stale socket at ${n1.socket}: nobody is listening (the ucarp daemon is not running, or it crashed)\n`,
    });
    for (const name of ['web', 'db']) {
      const g = await n2.waitState(name, 'MASTER');
      assert.deepEqual(g.master, { address: '192.0.2.2', advbase: 1, advskew: 50 }, JSON.stringify(g));
    }
    await waitFor(async () => (await n2.has(WEB)) && (await n2.has(DB)), 10_000, 'the addresses on h2');

    // The restarted daemon replaces the stale socket the killed one left.
    n1.start();
    await n1.proc.waitLine(/removed stale control socket/);
    await n1.waitState('web', 'BACKUP');
    // BACKUP comes at once on start; the master is known from its next advertisement.
    await waitFor(
      async () => (await n1.group('web')).master?.address === '192.0.2.2',
      10_000,
      'h1 to see h2 as master',
      100,
    );
    await waitFor(
      async () => !(await n1.has(WEB)) && !(await n1.has(DB)),
      10_000,
      'h1 to drop the addresses',
    );
    assert.equal((await n2.group('web')).state, 'MASTER');
  });
});
