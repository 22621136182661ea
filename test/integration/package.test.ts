// The Debian package, installed for real: apt-get installs ucarp-ts_*.deb over Debian's ucarp
// on a copy of this machine (the overlay root of test/helpers/systemd-host.ts, under a real
// systemd as PID 1), and the installed files are then used the way an administrator would:
// systemctl, ucarpctl, man, an ifupdown stanza, apt-get remove and purge. Every write lands in
// the overlay; the host's packages are compared before and after.
//
// The package is the one named by $TEST_PACKAGE_DEB (.ci/run builds it once, with lintian), or is
// built here into a temporary directory (npm run package).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { Lab, type LabHost } from '../../src/demo/lab';
import { waitFor } from '../helpers/netns';
import { ROOT } from '../helpers/carp-proc';
import {
  SystemdHost,
  CannotBoot,
  bootBlocker,
  baseSystemFiles,
  type ExecResult,
} from '../helpers/systemd-host';
import type { StatusDocument } from '../../src/control/protocol';
import { captureAdverts, longestGap, timesByVhid } from '../helpers/adverts';

const PREFIX = `pk${process.pid.toString(36)}`;
const TARGET = 'ucarp-test.target';
const DEB_INSIDE = '/tmp/ucarp-ts.deb';
const NEXT_INSIDE = '/tmp/ucarp-ts-next.deb';

const WEB = { vhid: 10, vip: '192.0.2.100' };
const DB = { vhid: 20, vip: '192.0.2.101' };
// The ifupdown stanza's group, on the other host, so that it never meets the service's.
const IFUP = { vhid: 30, vip: '192.0.2.50' };

function groupsYaml(groups: { name: string; vhid: number; vip: string }[]): string {
  return [
    '# written by test/integration/package.test.ts',
    'logging: { level: info, facility: none }',
    'defaults: { interface: eth0, password: s3cret }',
    'groups:',
    ...groups.flatMap((g) => [`  ${g.name}:`, `    vhid: ${g.vhid}`, `    addresses: [${g.vip}/24]`]),
    '',
  ].join('\n');
}

/** Why the package cannot be built or installed here, or null. */
function packageBlocker(): string | null {
  for (const tool of ['dpkg-deb', 'apt-get', 'dpkg']) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    } catch {
      return `${tool} not found (not a Debian system)`;
    }
  }
  return null;
}

function hostPackages(): string {
  const list = execFileSync('dpkg-query', ['-W', '-f=${db:Status-Abbrev} ${Package} ${Version}\n'], {
    encoding: 'utf8',
  });
  return crypto.createHash('sha256').update(list).digest('hex');
}

describe('the Debian package, installed on a copy of this machine', () => {
  let skipReason = bootBlocker() ?? packageBlocker();
  let lab: Lab;
  let h1: LabHost;
  let h2: LabHost;
  let sd: SystemdHost;
  let dir = '';
  let deb = '';
  let packagesBefore = '';
  const hostFiles = ['/etc/ucarp.yaml', '/usr/sbin/ucarp', '/etc/network/if-up.d/ucarp'];
  const hostBefore = new Map<string, string | null>();
  const digest = (f: string) =>
    fs.existsSync(f) ? crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex') : null;
  let ucarpWasInstalled = false;

  /** A command inside the booted system that must succeed. */
  async function ok(cmd: string, args: string[], timeoutMs = 30000): Promise<ExecResult> {
    const r = await sd.exec(cmd, args, timeoutMs);
    if (r.code !== 0) assert.fail(`${cmd} ${args.join(' ')} exited ${r.code}:\n${r.stdout}${r.stderr}`);
    return r;
  }

  async function dpkgStatus(pkg: string): Promise<string> {
    const r = await sd.exec('dpkg-query', ['-W', '-f=${db:Status-Abbrev}', pkg]);
    return r.code === 0 ? r.stdout.trim() : 'un';
  }

  async function status(): Promise<StatusDocument> {
    const r = await ok('/usr/sbin/ucarpctl', ['status', '--json']);
    return JSON.parse(r.stdout) as StatusDocument;
  }

  async function journal(): Promise<string[]> {
    return (await sd.journal(['-u', 'ucarp.service'])).map((e) => String(e.MESSAGE));
  }

  async function vips(h: LabHost): Promise<string[]> {
    return (await lab.addresses(h)).filter((a) => a !== h.ip).sort();
  }

  const exists = (p: string) => sd.exec('test', ['-e', p]).then((r) => r.code === 0);

  before(async () => {
    if (skipReason) return;
    packagesBefore = hostPackages();
    for (const f of hostFiles) hostBefore.set(f, digest(f));
    dir = fs.mkdtempSync(path.join(os.tmpdir(), `${PREFIX}-package-`));
    process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
    if (process.env.TEST_PACKAGE_DEB) {
      deb = process.env.TEST_PACKAGE_DEB;
      assert.ok(fs.existsSync(deb), `TEST_PACKAGE_DEB=${deb} does not exist`);
    } else {
      // lintian is .ci/run's job; here only what is installed matters. dist/ is what this
      // run is executing, already built by npm test.
      execFileSync(
        'bash',
        [path.join(ROOT, 'packaging/build-deb.sh'), '--out', dir, '--no-lintian', '--no-build'],
        {
          stdio: ['ignore', 'ignore', 'inherit'],
        },
      );
      deb = path.join(dir, fs.readdirSync(dir).find((f) => /^ucarp-ts_.*\.deb$/.test(f)) ?? 'missing.deb');
    }
    lab = Lab.create(PREFIX, [
      { name: 'h1', address: '192.0.2.1/24' },
      { name: 'h2', address: '192.0.2.2/24' },
    ]);
    [h1, h2] = lab.hosts;
    process.on('exit', () => lab.destroySync());
    const files = baseSystemFiles(TARGET);
    // The one change to the installed unit: it runs in the test host's network namespace.
    files['/etc/systemd/system/ucarp.service.d/test.conf'] =
      `[Service]\nNetworkNamespacePath=/run/netns/${h1.ns}\n`;
    try {
      sd = await SystemdHost.boot({
        prefix: PREFIX,
        files,
        unit: TARGET,
        netns: [h1.ns, h2.ns],
        bind: [],
        packageUnitDirs: ['/lib/systemd/system'],
      });
    } catch (e) {
      if (!(e instanceof CannotBoot)) throw e;
      skipReason = e.message;
      return;
    }
    fs.copyFileSync(deb, path.join(`/proc/${sd.pid}/root`, DEB_INSIDE));
    // Container images ship a policy-rc.d that forbids maintainer scripts to start or stop
    // services (deb-systemd-invoke obeys it); a server has none, and the copy should behave
    // like one.
    await ok('rm', ['-f', '/usr/sbin/policy-rc.d']);
    ucarpWasInstalled = (await dpkgStatus('ucarp')) === 'ii';
    if (!ucarpWasInstalled) {
      // Debian's ucarp from apt's cache, if this machine has it there: the test is about
      // replacing it, but apt inside has no network.
      const cached = fs.existsSync('/var/cache/apt/archives')
        ? fs.readdirSync('/var/cache/apt/archives').find((f) => /^ucarp_.*\.deb$/.test(f))
        : undefined;
      if (cached) {
        await ok('dpkg', ['-i', path.join('/var/cache/apt/archives', cached)], 60000);
        ucarpWasInstalled = true;
      }
    }
  });

  after(() => {
    sd?.destroySync();
    lab?.destroySync();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  test('apt-get install replaces Debian ucarp, installs nothing else and enables nothing', async (t) => {
    if (skipReason) return t.skip(skipReason);
    const size = fs.statSync(deb).size;
    const t0 = Date.now();
    // As an administrator types it, no network: nothing may need downloading or compiling.
    const r = await sd.exec('apt-get', ['install', '-y', DEB_INSIDE], 180000);
    const took = Date.now() - t0;
    t.diagnostic(`package ${(size / 1048576).toFixed(1)} MiB, apt-get install took ${took} ms`);
    assert.equal(r.code, 0, `${r.stdout}${r.stderr}`);
    assert.match(r.stdout, /0 upgraded, 1 newly installed/);
    assert.equal(await dpkgStatus('ucarp-ts'), 'ii');
    if (ucarpWasInstalled) {
      assert.match(r.stdout, /The following packages will be REMOVED:\s+ucarp\n/);
      // Removed, not purged: Debian's /etc/network/if-up.d/ucarp was an unmodified conffile
      // and is ours now.
      assert.equal(await dpkgStatus('ucarp'), 'rc');
      assert.doesNotMatch(r.stdout + r.stderr, /Configuration file .* modified/);
    } else {
      t.diagnostic("Debian's ucarp is neither installed nor in apt's cache here: not replaced");
    }
    const hook = await ok('cat', ['/etc/network/if-up.d/ucarp']);
    assert.match(hook.stdout, /^# ucarp-ts:/m);

    // The wrappers run the bundled runtime, whatever node the system has.
    const wrapper = await ok('cat', ['/usr/sbin/ucarp']);
    assert.match(wrapper.stdout, /^exec \/usr\/lib\/ucarp-ts\/node\/bin\/node /m);
    const nodeVersion = await ok('/usr/lib/ucarp-ts/node/bin/node', ['--version']);
    assert.match(nodeVersion.stdout, /^v24\./);
    const help = await ok('/usr/sbin/ucarp', ['--help']);
    assert.match(help.stdout, /--config=<file> \(-c <file>\)/);

    const unit = await ok('cat', ['/lib/systemd/system/ucarp.service']);
    assert.equal(unit.stdout, fs.readFileSync(path.join(ROOT, 'systemd/ucarp.service'), 'utf8'));
    const conf = await ok('stat', ['-c', '%a %U %G', '/etc/ucarp.yaml']);
    assert.equal(conf.stdout.trim(), '600 root root');
    const conffiles = await ok('dpkg-query', ['-W', '-f=${Conffiles}', 'ucarp-ts']);
    assert.match(conffiles.stdout, /^ \/etc\/ucarp\.yaml [0-9a-f]{32}$/m);
    // The installed example has no group, so the service was left disabled and stopped.
    assert.match(r.stdout, /has no group/);
    const enabled = await sd.exec('systemctl', ['is-enabled', 'ucarp']);
    assert.equal(enabled.stdout.trim(), 'disabled');
    assert.equal((await sd.show('ucarp', ['ActiveState'])).ActiveState, 'inactive');
  });

  test('with the installed example (no group) the daemon runs idle and says so', async (t) => {
    if (skipReason) return t.skip(skipReason);
    await sd.systemctl('start', 'ucarp');
    await waitFor(
      async () => (await journal()).includes('no groups configured; idle'),
      10000,
      'the idle line in the journal',
      100,
    );
    assert.deepEqual((await status()).groups, []);
    await sd.systemctl('stop', 'ucarp');
  });

  test('systemctl enable --now brings a group up; reload adds one; ucarpctl status shows both', async (t) => {
    if (skipReason) return t.skip(skipReason);
    sd.writeFile('/etc/ucarp.yaml', groupsYaml([{ name: 'web', ...WEB }]));
    await sd.systemctl('enable', '--now', 'ucarp');
    assert.equal((await sd.exec('systemctl', ['is-enabled', 'ucarp'])).stdout.trim(), 'enabled');
    await waitFor(
      async () => (await status()).groups.every((g) => g.state === 'MASTER'),
      10000,
      'web MASTER',
    );
    assert.deepEqual(await vips(h1), [WEB.vip]);
    const pid = (await status()).pid;

    sd.writeFile(
      '/etc/ucarp.yaml',
      groupsYaml([
        { name: 'web', ...WEB },
        { name: 'db', ...DB },
      ]),
    );
    await sd.systemctl('reload', 'ucarp');
    await waitFor(
      async () => {
        const doc = await status();
        return doc.groups.length === 2 && doc.groups.every((g) => g.state === 'MASTER');
      },
      10000,
      'web and db MASTER',
    );
    const doc = await status();
    assert.equal(doc.pid, pid);
    assert.deepEqual(await vips(h1), [WEB.vip, DB.vip].sort());
    const text = await ok('/usr/sbin/ucarpctl', ['status']);
    assert.match(text.stdout, /\bweb\b.*\bMASTER\b/);
    assert.match(text.stdout, /\bdb\b.*\bMASTER\b/);
  });

  test('man ucarp.yaml, ucarp and ucarpctl show the installed pages', async (t) => {
    if (skipReason) return t.skip(skipReason);
    if ((await sd.exec('sh', ['-c', 'command -v man'])).code !== 0) {
      // No man-db on this machine: the pages are there and test/unit/man-pages.test.ts renders them.
      for (const f of ['/usr/share/man/man5/ucarp.yaml.5.gz', '/usr/share/man/man8/ucarp.8.gz']) {
        assert.ok(await exists(f), f);
      }
      return t.skip('man-db is not installed');
    }
    for (const [page, file, line] of [
      [
        'ucarp.yaml',
        '/usr/share/man/man5/ucarp.yaml.5.gz',
        /ucarp\.yaml - configuration of the ucarp supervisor/,
      ],
      ['ucarp', '/usr/share/man/man8/ucarp.8.gz', /SUPERVISOR OPTIONS/],
      ['ucarpctl', '/usr/share/man/man8/ucarpctl.8.gz', /ucarpctl - query and steer/],
    ] as const) {
      const where = await ok('man', ['-w', page]);
      assert.equal(where.stdout.trim(), file);
      const shown = await ok('env', ['MANPAGER=cat', 'MANWIDTH=80', 'man', page]);
      assert.match(shown.stdout, line);
    }
  });

  test('an ifupdown stanza with ucarp-vid works as with Debian ucarp: if-up starts, if-down stops', async (t) => {
    if (skipReason) return t.skip(skipReason);
    // The stanza vip-up brings up (packaging/deb/vip-up runs ifup eth0:ucarp), as Debian's ucarp
    // package documents it. /run/network is ifupdown's state directory, which boot would create.
    sd.writeFile(
      '/etc/network/interfaces',
      `iface eth0:ucarp inet static\n    address ${IFUP.vip}\n    netmask 255.255.255.255\n`,
    );
    await ok('mkdir', ['-p', '/run/network']);
    // The variables ifupdown sets for `iface eth0 inet static` with `address 192.0.2.2/24`
    // and the ucarp-* lines of the stanza.
    const env = [
      'IFACE=eth0',
      'LOGICAL=eth0',
      'ADDRFAM=inet',
      'METHOD=static',
      'MODE=start',
      'PHASE=post-up',
      `IF_ADDRESS=${h2.ip}/24`,
      `IF_UCARP_VID=${IFUP.vhid}`,
      `IF_UCARP_VIP=${IFUP.vip}`,
      'IF_UCARP_PASSWORD=s3cret',
      'IF_UCARP_ADVSKEW=0',
      'IF_UCARP_ADVBASE=1',
      'IF_UCARP_MASTER=yes',
      'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    ];
    const up = await sd.exec(
      'ip',
      ['netns', 'exec', h2.ns, 'env', '-i', ...env, '/etc/network/if-up.d/ucarp'],
      60000,
    );
    assert.equal(up.code, 0, up.stdout + up.stderr);
    const pid = (await ok('cat', ['/run/ucarp-ifupdown/eth0.pid'])).stdout.trim();
    const cmdline = (await ok('cat', [`/proc/${pid}/cmdline`])).stdout.split('\0').filter(Boolean);
    assert.deepEqual(cmdline.slice(0, 2), [
      '/usr/lib/ucarp-ts/node/bin/node',
      '/usr/lib/ucarp-ts/bin/ucarp.js',
    ]);
    assert.deepEqual(cmdline.slice(2), [
      '--interface=eth0',
      `--srcip=${h2.ip}`,
      `--vhid=${IFUP.vhid}`,
      '--passfile=/run/ucarp-ifupdown/eth0.password',
      `--addr=${IFUP.vip}`,
      '--upscript=/usr/share/ucarp/vip-up',
      '--downscript=/usr/share/ucarp/vip-down',
      '--shutdown',
      '--preempt',
      '--advskew=0',
      '--advbase=1',
    ]);
    const pass = await ok('stat', ['-c', '%a %U', '/run/ucarp-ifupdown/eth0.password']);
    assert.equal(pass.stdout.trim(), '600 root');
    // Alone with this vhid on the segment: master after the dead time, and vip-up adds the
    // address through ifupdown.
    await waitFor(async () => (await vips(h2)).includes(IFUP.vip), 10000, 'the stanza address on h2');

    const downEnv = env.map((e) =>
      e === 'MODE=start' ? 'MODE=stop' : e === 'PHASE=post-up' ? 'PHASE=pre-down' : e,
    );
    const down = await sd.exec(
      'ip',
      ['netns', 'exec', h2.ns, 'env', '-i', ...downEnv, '/etc/network/if-down.d/ucarp'],
      60000,
    );
    assert.equal(down.code, 0, down.stdout + down.stderr);
    assert.equal((await sd.exec('test', ['-e', `/proc/${pid}`])).code, 1, 'ucarp still runs');
    assert.equal(await exists('/run/ucarp-ifupdown/eth0.pid'), false);
    assert.equal(await exists('/run/ucarp-ifupdown/eth0.password'), false);
    // --shutdown ran the down script, vip-down: ifdown eth0:ucarp.
    assert.deepEqual(await vips(h2), []);
  });

  /**
   * Version N+1 of the package: the same files under a higher version, repacked (a second full
   * build would double CI's packaging time for nothing the upgrade path looks at).
   */
  function nextVersion(): string {
    const tree = path.join(dir, 'next');
    execFileSync('dpkg-deb', ['-R', deb, tree]);
    const control = path.join(tree, 'DEBIAN/control');
    const text = fs.readFileSync(control, 'utf8');
    const version = /^Version: (.*)$/m.exec(text)?.[1] ?? '';
    fs.writeFileSync(control, text.replace(/^Version: .*$/m, `Version: ${version}+next1`));
    const out = path.join(dir, 'ucarp-ts-next.deb');
    execFileSync('dpkg-deb', ['-Zgzip', '-z1', '-b', tree, out], { stdio: ['ignore', 'ignore', 'inherit'] });
    fs.rmSync(tree, { recursive: true, force: true });
    return out;
  }

  test('apt-get install of N+1 over N restarts the daemon in place: same MainPID, conffile kept, no takeover', async (t) => {
    if (skipReason) return t.skip(skipReason);
    fs.copyFileSync(nextVersion(), path.join(`/proc/${sd.pid}/root`, NEXT_INSIDE));
    const conf = (await ok('cat', ['/etc/ucarp.yaml'])).stdout;
    const mainPid = (await sd.show('ucarp', ['MainPID'])).MainPID;
    const before = await status();
    assert.ok(before.groups.length > 0 && before.groups.every((g) => g.state === 'MASTER'));
    // The peer's view: every advertisement from h1, per vhid, through the upgrade.
    const cap = await captureAdverts(h2.ns, h1.ip);
    const journalBefore = (await journal()).length;
    await new Promise((r) => setTimeout(r, 1500));
    const t0 = Date.now();
    const r = await sd.exec('apt-get', ['install', '-y', NEXT_INSIDE], 180000);
    const took = Date.now() - t0;
    assert.equal(r.code, 0, `${r.stdout}${r.stderr}`);
    assert.match(r.stdout, /1 upgraded, 0 newly installed/);
    assert.match(r.stdout, /restarted: pid \d+, 2 group\(s\): 2 MASTER/);
    assert.doesNotMatch(r.stdout, /restart in place refused/);
    await new Promise((r2) => setTimeout(r2, 1500));
    const adverts = await cap.stop();
    const byVhid = timesByVhid(adverts);

    assert.equal((await sd.show('ucarp', ['MainPID'])).MainPID, mainPid, 'same MainPID');
    assert.equal((await sd.show('ucarp', ['ActiveState'])).ActiveState, 'active');
    const after = await status();
    assert.equal(String(after.pid), mainPid);
    assert.ok(after.uptimeMs < Date.now() - t0, 'a new image of the daemon');
    assert.ok(after.groups.every((g) => g.state === 'MASTER'));
    assert.deepEqual(await vips(h1), [WEB.vip, DB.vip].sort());
    assert.equal((await ok('cat', ['/etc/ucarp.yaml'])).stdout, conf, "the administrator's conffile kept");
    assert.match((await ok('dpkg-query', ['-W', '-f=${Version}', 'ucarp-ts'])).stdout, /\+next1$/);
    // No takeover: h1 never went silent for a backup's dead time (advbase 1 × 3), and never
    // bowed out.
    let worst = 0;
    for (const vhid of [WEB.vhid, DB.vhid]) {
      const times = byVhid.get(vhid) ?? [];
      assert.ok(times.length >= 3, `vhid ${vhid}: ${times.length} advertisements`);
      worst = Math.max(worst, longestGap(times));
    }
    t.diagnostic(
      `apt-get install of N+1 took ${took} ms; longest advertisement gap from h1 during it: ${worst.toFixed(1)} ms`,
    );
    assert.ok(worst < 3000, `longest gap ${worst.toFixed(1)} ms`);
    assert.deepEqual(
      adverts.filter((a) => a.advbase !== 1),
      [],
      'no bow-out (advbase 255) on the wire',
    );
    const lines = (await journal()).slice(journalBefore);
    assert.ok(lines.some((l) => /restarted in place: 2 of 2 group\(s\) carried on \(2 master\)/.test(l)));
    assert.ok(!lines.some((l) => /Switching to state: BACKUP/.test(l)), 'no bow-out');
  });

  test('apt-get remove stops the daemon, releases its addresses and keeps /etc/ucarp.yaml', async (t) => {
    if (skipReason) return t.skip(skipReason);
    const r = await sd.exec('apt-get', ['remove', '-y', 'ucarp-ts'], 120000);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(await dpkgStatus('ucarp-ts'), 'rc');
    const s = await sd.show('ucarp', ['ActiveState', 'Result']);
    assert.equal(s.ActiveState, 'inactive');
    assert.equal(s.Result, 'success');
    assert.deepEqual(await vips(h1), []);
    assert.ok((await journal()).some((m) => /^received SIGTERM, releasing every group/.test(m)));
    assert.equal(
      (await ok('cat', ['/etc/ucarp.yaml'])).stdout,
      groupsYaml([
        { name: 'web', ...WEB },
        { name: 'db', ...DB },
      ]),
    );
    for (const p of [
      '/usr/sbin/ucarp',
      '/usr/sbin/ucarpctl',
      '/usr/lib/ucarp-ts',
      '/lib/systemd/system/ucarp.service',
    ]) {
      assert.equal(await exists(p), false, p);
    }
  });

  test('apt-get purge removes the configuration and every trace of the service', async (t) => {
    if (skipReason) return t.skip(skipReason);
    const r = await sd.exec('apt-get', ['purge', '-y', 'ucarp-ts'], 120000);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(await dpkgStatus('ucarp-ts'), 'un');
    for (const p of [
      '/etc/ucarp.yaml',
      '/etc/network/if-up.d/ucarp',
      '/etc/network/if-down.d/ucarp',
      '/etc/systemd/system/multi-user.target.wants/ucarp.service',
      '/run/ucarp',
    ]) {
      assert.equal(await exists(p), false, p);
    }
  });

  test('installed over a configuration that has a group, the service is enabled and started', async (t) => {
    if (skipReason) return t.skip(skipReason);
    // As configuration management does it: the file first, then the package, keeping the file.
    sd.writeFile('/etc/ucarp.yaml', groupsYaml([{ name: 'web', ...WEB }]));
    const r = await sd.exec(
      'apt-get',
      ['install', '-y', '-o', 'Dpkg::Options::=--force-confold', DEB_INSIDE],
      180000,
    );
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal((await sd.exec('systemctl', ['is-enabled', 'ucarp'])).stdout.trim(), 'enabled');
    await waitFor(async () => (await vips(h1)).includes(WEB.vip), 10000, 'web on h1');
    assert.equal((await status()).groups[0]?.state, 'MASTER');
    // Purged while running: stopped first, addresses released.
    const p = await sd.exec('apt-get', ['purge', '-y', 'ucarp-ts'], 120000);
    assert.equal(p.code, 0, p.stdout + p.stderr);
    assert.deepEqual(await vips(h1), []);
    assert.equal(await exists('/etc/ucarp.yaml'), false);
  });

  test("the host's packages and files are untouched", (t) => {
    if (skipReason) return t.skip(skipReason);
    assert.equal(hostPackages(), packagesBefore);
    for (const f of hostFiles) assert.equal(digest(f), hostBefore.get(f), f);
    const mounts = fs.readFileSync('/proc/self/mountinfo', 'utf8');
    assert.ok(!mounts.includes(sd.dir), mounts);
  });
});
