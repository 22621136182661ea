import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { formatErrors, loadConfig, loadConfigText } from '../../src/config';
import type { Config, GroupConfig, HostInfo, LoadResult } from '../../src/config';
import { formatWarnings } from '../../src/config/errors';
import { GROUP_DEFAULTS as D } from '../../src/config/settings';

const EXAMPLE = path.join(__dirname, '../../../config/ucarp.yaml');

function fakeHost(interfaces: Record<string, string[]>): HostInfo {
  return {
    interfaces: () => new Map(Object.entries(interfaces).map(([name, addresses]) => [name, { addresses }])),
  };
}

const host = fakeHost({ eth0: ['192.0.2.1'], eth1: ['198.51.100.1', '198.51.100.2'] });

function expectOk(result: LoadResult): Config {
  if (!result.ok) assert.fail(`expected a valid config:\n${formatErrors(result.errors)}`);
  return result.config;
}

function load(text: string, filename = '/etc/ucarp.yaml', h: HostInfo = host): Config {
  return expectOk(loadConfigText(text, filename, h));
}

function group(config: Config, name: string): GroupConfig {
  const found = config.groups.find((g) => g.name === name);
  assert.ok(found, `group ${name}`);
  return found;
}

test('the commented example config/ucarp.yaml passes with eth0 at 192.0.2.1', () => {
  const text = fs.readFileSync(EXAMPLE, 'utf8');
  assert.match(text.split('\n')[0], /^# yaml-language-server: \$schema=\.\.\/schemas\/ucarp\.schema\.json$/);
  const result = loadConfig(EXAMPLE, fakeHost({ eth0: ['192.0.2.1'] }));
  const config = expectOk(result);
  assert.deepEqual(result.warnings, []);
  assert.deepEqual(
    config.groups.map((g) => [g.name, g.vhid, g.destination]),
    [
      ['web', 10, '224.0.0.18'],
      ['db', 20, '224.0.0.18'],
      ['legacy', 30, '255.255.255.255'],
    ],
  );
});

test('a minimal group gets every default resolved', () => {
  const config = load(
    'groups:\n  web:\n    vhid: 7\n    interface: eth0\n    addresses: [192.0.2.100/24]\n    password: pw\n',
  );
  assert.deepEqual(config, {
    logging: { level: 'info', facility: 'daemon' },
    control: { socket: '/run/ucarp/control.sock' },
    trackers: [],
    groups: [
      {
        name: 'web',
        protocol: D.protocol,
        vhid: 7,
        interface: 'eth0',
        srcip: '192.0.2.1',
        addresses: [{ address: '192.0.2.100', prefixlen: 24 }],
        password: 'pw',
        advbase: D.advbase,
        advskew: D.advskew,
        deadratio: D.deadratio,
        priority: D.priority,
        advertInterval: D.advert_interval * 100,
        preempt: D.preempt,
        neutral: D.neutral,
        ignoreifstate: D.ignoreifstate,
        destination: D.mcast,
        broadcast: D.broadcast,
        manageAddresses: D.manage_addresses,
        scriptTimeoutMs: D.script_timeout * 1000,
        track: [],
        peers: [],
        replayProtection: D.replay_protection,
      },
    ],
  });
});

test('every setting is carried through, and groups keep file order', () => {
  const config = load(
    [
      'logging: { level: debug, facility: local3 }',
      'control: { socket: /tmp/ucarp.sock }',
      'metrics: { listen: "127.0.0.1:9474" }',
      'groups:',
      '  zeta:',
      '    vhid: 200',
      '    interface: eth1',
      '    srcip: 198.51.100.2',
      '    addresses: [198.51.100.50/25]',
      '    password: pw',
      '    advbase: 0',
      '    advskew: 20',
      '    deadratio: 5',
      '    preempt: true',
      '    neutral: true',
      '    ignoreifstate: true',
      '    mcast: 239.255.0.18',
      '    manage_addresses: false',
      '    upscript: /up',
      '    downscript: /down',
      '    xparam: zz',
      '    script_timeout: 0.5',
      '    replay_protection: true',
      '  alpha: { vhid: 1, interface: eth0, addresses: [192.0.2.100/24], password: pw }',
      '',
    ].join('\n'),
  );
  assert.deepEqual(config.logging, { level: 'debug', facility: 'local3' });
  assert.deepEqual(config.control, { socket: '/tmp/ucarp.sock' });
  assert.deepEqual(config.metrics, { host: '127.0.0.1', port: 9474 });
  assert.deepEqual(
    config.groups.map((g) => g.name),
    ['zeta', 'alpha'],
  );
  const { name: _name, addresses: _addresses, password: _password, ...zeta } = group(config, 'zeta');
  assert.deepEqual(zeta, {
    protocol: 'carp',
    vhid: 200,
    interface: 'eth1',
    srcip: '198.51.100.2',
    advbase: 0,
    advskew: 20,
    deadratio: 5,
    priority: 100,
    advertInterval: 100,
    preempt: true,
    neutral: true,
    ignoreifstate: true,
    destination: '239.255.0.18',
    broadcast: false,
    manageAddresses: false,
    upscript: '/up',
    downscript: '/down',
    xparam: 'zz',
    scriptTimeoutMs: 500,
    track: [],
    peers: [],
    replayProtection: true,
  });
});

test('defaults apply where a group is silent and yield where it speaks', () => {
  const config = load(
    [
      'defaults: { interface: eth0, password: common, advskew: 50, preempt: true, script_timeout: 3, replay_protection: true }',
      'groups:',
      '  a: { vhid: 1, addresses: [192.0.2.100/24] }',
      '  b: { vhid: 2, addresses: [198.51.100.100/24], interface: eth1, password: own, advskew: 0, preempt: false, replay_protection: false }',
      '',
    ].join('\n'),
  );
  const a = group(config, 'a');
  const b = group(config, 'b');
  assert.deepEqual(
    [a.interface, a.password, a.advskew, a.preempt, a.scriptTimeoutMs, a.replayProtection],
    ['eth0', 'common', 50, true, 3000, true],
  );
  assert.deepEqual(
    [b.interface, b.password, b.advskew, b.preempt, b.scriptTimeoutMs, b.replayProtection],
    ['eth1', 'own', 0, false, 3000, false],
  );
  assert.equal(b.srcip, '198.51.100.1', "srcip defaults to the group's own interface's primary address");
});

test('addresses are sorted numerically, not as text', () => {
  const config = load(
    'groups:\n  web: { vhid: 1, interface: eth0, password: pw, addresses: [192.0.2.10/24, 192.0.2.9/32, 10.0.0.1/8, 192.0.2.100/24] }\n',
  );
  assert.deepEqual(group(config, 'web').addresses, [
    { address: '10.0.0.1', prefixlen: 8 },
    { address: '192.0.2.9', prefixlen: 32 },
    { address: '192.0.2.10', prefixlen: 24 },
    { address: '192.0.2.100', prefixlen: 24 },
  ]);
});

test('broadcast: true sends to 255.255.255.255 and overrides an mcast from defaults', () => {
  const config = load(
    [
      'defaults: { interface: eth0, password: pw, mcast: 239.1.2.3 }',
      'groups:',
      '  bc: { vhid: 1, addresses: [192.0.2.100/24], broadcast: true }',
      '  mc: { vhid: 2, addresses: [192.0.2.101/24] }',
      '  off: { vhid: 3, addresses: [192.0.2.102/24], broadcast: false }',
      '',
    ].join('\n'),
  );
  assert.deepEqual(
    config.groups.map((g) => [g.name, g.destination, g.broadcast]),
    [
      ['bc', '255.255.255.255', true],
      ['mc', '239.1.2.3', false],
      ['off', '239.1.2.3', false],
    ],
  );
});

test('a group mcast overrides broadcast: true from defaults', () => {
  const config = load(
    'defaults: { interface: eth0, password: pw, broadcast: true }\ngroups:\n  a: { vhid: 1, addresses: [192.0.2.100/24], mcast: 239.0.0.1 }\n  b: { vhid: 1, addresses: [192.0.2.101/24] }\n',
  );
  assert.deepEqual(
    config.groups.map((g) => [g.name, g.destination, g.broadcast]),
    [
      ['a', '239.0.0.1', false],
      ['b', '255.255.255.255', true],
    ],
  );
});

test('the default srcip skips a configured virtual address still present after a crash', () => {
  const crashed = fakeHost({ eth0: ['192.0.2.100', '192.0.2.1'] });
  const config = load(
    'groups:\n  web: { vhid: 1, interface: eth0, password: pw, addresses: [192.0.2.100/24] }\n',
    'x.yaml',
    crashed,
  );
  assert.equal(group(config, 'web').srcip, '192.0.2.1');
});

test('metrics listen accepts [IPv6]:port and localhost:port', () => {
  const base = 'groups:\n  web: { vhid: 1, interface: eth0, password: pw, addresses: [192.0.2.100/24] }\n';
  assert.deepEqual(load(`metrics: { listen: "[::1]:9474" }\n${base}`).metrics, { host: '::1', port: 9474 });
  assert.deepEqual(load(`metrics: { listen: "localhost:65535" }\n${base}`).metrics, {
    host: 'localhost',
    port: 65535,
  });
});

test('password_file: first line without its newline, relative to the config directory, shared by groups', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ucarp-config-'));
  try {
    fs.writeFileSync(path.join(dir, 'pass'), 'from-file\nignored second line\n', { mode: 0o600 });
    fs.writeFileSync(path.join(dir, 'nonl'), 'no-newline', { mode: 0o600 });
    const text = [
      'defaults: { interface: eth0, password_file: pass }',
      'groups:',
      '  a: { vhid: 1, addresses: [192.0.2.100/24] }',
      '  b: { vhid: 2, addresses: [192.0.2.101/24] }',
      `  c: { vhid: 3, addresses: [192.0.2.102/24], password_file: ${path.join(dir, 'nonl')} }`,
      '',
    ].join('\n');
    const result = loadConfigText(text, path.join(dir, 'ucarp.yaml'), host);
    const config = expectOk(result);
    assert.deepEqual(result.warnings, []);
    assert.deepEqual(
      config.groups.map((g) => g.password),
      ['from-file', 'from-file', 'no-newline'],
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a world-readable password_file loads with one warning at its key', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ucarp-config-'));
  try {
    const file = path.join(dir, 'pass');
    fs.writeFileSync(file, 'pw\n');
    fs.chmodSync(file, 0o644);
    const text = `defaults: { interface: eth0, password_file: ${file} }\ngroups:\n  a: { vhid: 1, addresses: [192.0.2.100/24] }\n  b: { vhid: 2, addresses: [192.0.2.101/24] }\n`;
    const result = loadConfigText(text, path.join(dir, 'ucarp.yaml'), host);
    expectOk(result);
    assert.deepEqual(
      result.warnings.map((w) => [w.line, w.column, w.path, w.message]),
      [
        [
          1,
          45,
          'defaults.password_file',
          `${file} is readable by everyone (mode 0644); run chmod o-r ${file}`,
        ],
      ],
    );
    assert.equal(
      formatWarnings(result.warnings),
      `${path.join(dir, 'ucarp.yaml')}:1:45: warning: defaults.password_file: ` +
        `${file} is readable by everyone (mode 0644); run chmod o-r ${file}`,
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a 255-group file loads and validates quickly', (t) => {
  const lines = ['defaults: { interface: eth0, password: pw }', 'groups:'];
  for (let i = 1; i <= 255; i++) {
    lines.push(
      `  g${i}:`,
      `    vhid: ${i}`,
      `    addresses: [198.51.100.${i - 1}/24, 203.0.113.${i - 1}/24]`,
      `    advskew: ${i % 7}`,
    );
  }
  const text = `${lines.join('\n')}\n`;
  const started = process.hrtime.bigint();
  const config = load(text);
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  t.diagnostic(`255 groups loaded in ${ms.toFixed(1)} ms`);
  assert.equal(config.groups.length, 255);
  assert.ok(ms < 5000, `sanity bound only: ${ms} ms`);
});

test('an interface that does not exist yet is a warning, and the group waits for it', () => {
  const text = fs.readFileSync(
    path.join(__dirname, '../../../test/fixtures/config-unknown-interface.yaml'),
    'utf8',
  );
  const result = loadConfigText(text, '/etc/ucarp.yaml', host);
  assert.ok(result.ok, formatErrors(result.ok ? [] : result.errors));
  assert.deepEqual(
    result.warnings.map((w) => [w.line, w.column, w.path, w.message]),
    [
      [
        4,
        16,
        'groups.web.interface',
        'no interface named eth9 on this host yet; the group waits for it to appear',
      ],
    ],
  );
  // No srcip in the file: it is learnt from the interface when it appears.
  assert.equal(result.config.groups[0].srcip, '');
  assert.match(formatWarnings(result.warnings), /^\/etc\/ucarp\.yaml:4:16: warning: /);
});

test('a vrrp3 group: RFC 5798 defaults, no password, CARP keys inherited from defaults ignored', () => {
  const config = load(
    [
      'defaults: { interface: eth0, password: s3cret, advskew: 20 }',
      'groups:',
      '  web: { vhid: 30, addresses: [192.0.2.100/24] }',
      '  router:',
      '    protocol: vrrp3',
      '    vhid: 30',
      '    addresses: [192.0.2.254/24]',
      '    priority: 150',
      '    advert_interval: 0.25',
      '  plain: { protocol: vrrp3, vhid: 31, addresses: [192.0.2.253/24] }',
      '',
    ].join('\n'),
  );
  const r = group(config, 'router');
  assert.deepEqual(
    [r.protocol, r.vhid, r.priority, r.advertInterval, r.preempt, r.password],
    ['vrrp3', 30, 150, 25, true, ''],
  );
  const p = group(config, 'plain');
  assert.deepEqual([p.priority, p.advertInterval, p.preempt], [D.priority, D.advert_interval * 100, true]);
  // The same number for CARP and VRRP on one interface: two different groups on the wire.
  assert.deepEqual([group(config, 'web').protocol, group(config, 'web').preempt], ['carp', false]);
});

test('an IPv6 group: canonical addresses sorted by bytes, ff02::12, source learnt at start', () => {
  const config = load(`
groups:
  web6:
    vhid: 20
    interface: eth0
    addresses: [2001:DB8:1:0::20/64, 2001:db8:1::10/64]
    password: s3cret
  web4:
    vhid: 20
    interface: eth0
    addresses: [192.0.2.100/24]
    password: s3cret
`);
  const g = group(config, 'web6');
  assert.deepEqual(g.addresses, [
    { address: '2001:db8:1::10', prefixlen: 64 },
    { address: '2001:db8:1::20', prefixlen: 64 },
  ]);
  assert.equal(g.destination, 'ff02::12');
  assert.equal(g.srcip, '', 'the link-local source is learnt from the interface at start');
  assert.equal(group(config, 'web4').destination, '224.0.0.18', 'the same vhid on IPv4 is another group');
});

test('an IPv6 group: srcip, mcast and peers of its family, written any way, kept canonical', () => {
  const h: HostInfo = {
    interfaces: () =>
      new Map([['eth0', { addresses: ['192.0.2.1'], addresses6: ['2001:db8:1::1', 'fe80::1'] }]]),
  };
  const config = load(
    `
groups:
  web6:
    vhid: 20
    interface: eth0
    srcip: 2001:DB8:1:0:0:0:0:1
    addresses: [2001:db8:1::10/64]
    peers: [2001:db8:1:0::2]
    password: s3cret
  other6:
    vhid: 21
    interface: eth0
    mcast: FF02::0:112
    addresses: [2001:db8:1::11/64]
    password: s3cret
`,
    '/etc/ucarp.yaml',
    h,
  );
  assert.equal(group(config, 'web6').srcip, '2001:db8:1::1');
  assert.deepEqual(group(config, 'web6').peers, ['2001:db8:1::2']);
  assert.equal(group(config, 'other6').destination, 'ff02::112');
  const bad = loadConfigText(
    `
groups:
  web6:
    vhid: 20
    interface: eth0
    srcip: 2001:db8:1::9
    addresses: [2001:db8:1::10/64]
    password: s3cret
`,
    '/etc/ucarp.yaml',
    h,
  );
  assert.ok(!bad.ok);
  assert.match(
    bad.errors[0].message,
    /^2001:db8:1::9 is not an address of eth0 \(it has 2001:db8:1::1, fe80::1\)$/,
  );
});
