import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { formatErrors, loadConfig, loadConfigText } from '../../src/config';
import type { ConfigError, HostInfo } from '../../src/config';
import { formatWarning, formatWarnings } from '../../src/config/errors';

// Fixtures are read from the source tree: tsc does not copy .yaml files into dist.
const FIXTURES = path.join(__dirname, '../../../test/fixtures/config');

const host: HostInfo = {
  interfaces: () =>
    new Map([
      ['eth0', { addresses: ['192.0.2.1'] }],
      ['eth1', { addresses: ['198.51.100.1'] }],
      ['eth2', { addresses: [] }],
    ]),
};

/** [line, column, key path, message pattern] of each expected error, in report order. */
type Expected = [number, number, string, RegExp];

const CASES: Record<string, Expected[]> = {
  '01-unknown-key.yaml': [[7, 5, 'groups.web.advskwe', /^unknown key \(did you mean 'advskew'\?\)$/]],
  '02-defaults-typo.yaml': [[2, 3, 'defaults.intreface', /did you mean 'interface'/]],
  '03-vhid-zero.yaml': [[3, 11, 'groups.web.vhid', /^must be >= 1$/]],
  '04-vhid-256.yaml': [[4, 11, 'groups.web.vhid', /^must be <= 255$/]],
  '05-vhid-string.yaml': [[3, 11, 'groups.web.vhid', /^must be an integer$/]],
  '06-missing-vhid.yaml': [[3, 5, 'groups.web', /^must have required property 'vhid'$/]],
  '07-missing-interface.yaml': [
    [5, 5, 'groups.web', /required property 'interface' \(in the group or in defaults\)/],
  ],
  '08-addresses-empty.yaml': [[5, 16, 'groups.web.addresses', /^must not be empty$/]],
  '09-bad-cidr.yaml': [[7, 9, 'groups.web.addresses[1]', /IPv4 address with a prefix length/]],
  '10-prefix-33.yaml': [[5, 33, 'groups.web.addresses[1]', /prefix length 0\.\.32/]],
  '11-password-too-long.yaml': [[6, 15, 'groups.web.password', /^must be at most 19 bytes/]],
  '12-password-and-file.yaml': [
    [7, 5, 'groups.web.password_file', /cannot be combined with groups\.web\.password/],
  ],
  '13-no-password.yaml': [[3, 5, 'groups.web', /one of 'password' or 'password_file'/]],
  '14-advbase-zero-advskew-zero.yaml': [[7, 14, 'groups.web.advbase', /^0 requires advskew > 0$/]],
  '15-advskew-300.yaml': [[7, 14, 'groups.web.advskew', /^must be <= 255$/]],
  '16-deadratio-zero.yaml': [[7, 16, 'groups.web.deadratio', /^must be >= 1$/]],
  '17-mcast-not-multicast.yaml': [[7, 12, 'groups.web.mcast', /multicast address/]],
  '18-mcast-and-broadcast.yaml': [[8, 5, 'groups.web.broadcast', /cannot be combined with mcast/]],
  '19-duplicate-group-key.yaml': [[8, 3, 'groups.web', /^duplicate key/]],
  '20-duplicate-vhid.yaml': [
    [9, 11, 'groups.db.vhid', /^vhid 10 is already used on eth0 \(224\.0\.0\.18\) by group 'web'$/],
  ],
  '21-address-in-two-groups.yaml': [
    [10, 33, 'groups.db.addresses[1]', /^192\.0\.2\.100 is already used by group 'web'$/],
  ],
  '23-srcip-not-on-interface.yaml': [
    [5, 12, 'groups.web.srcip', /^198\.51\.100\.1 is not an address of eth0 \(it has 192\.0\.2\.1\)$/],
  ],
  '24-bad-group-name.yaml': [[5, 3, 'groups["web server"]', /^group names must be 1\.\.64 characters/]],
  '25-yaml-syntax.yaml': [[6, 5, '', /Flow sequence .* end with a \]/]],
  '49-track-unknown-tracker.yaml': [
    [10, 22, 'groups.web.track[1]', /^no tracker named uplnk \(trackers: haproxy\)$/],
  ],
  '50-tracker-two-kinds.yaml': [
    [
      4,
      5,
      'trackers.mixed.file',
      /^a tracker needs exactly one of script, interface, file \(found script and file\)$/,
    ],
    [6, 13, 'trackers.relative.script', /^the program must be an absolute path$/],
    [9, 5, 'trackers.iface.timeout', /^only a script tracker has a timeout$/],
  ],
  '51-peers-duplicate.yaml': [[7, 24, 'groups.web.peers[1]', /^duplicate of item 0$/]],
  '70-mixed-families.yaml': [
    [5, 36, 'groups.web6.addresses[1]', /^192\.0\.2\.100 is IPv4, but this group is IPv6 .*one family$/],
  ],
  '71-ipv6-srcip-ipv4.yaml': [[5, 12, 'groups.web6.srcip', /^192\.0\.2\.1 is IPv4, but this group is IPv6/]],
  '72-ipv6-mcast-ipv4.yaml': [[2, 10, 'defaults.mcast', /^224\.0\.0\.18 is IPv4, but this group is IPv6/]],
  '73-ipv6-peers-ipv4.yaml': [
    [7, 28, 'groups.web6.peers[1]', /^192\.0\.2\.2 is IPv4, but this group is IPv6/],
  ],
  '74-ipv6-broadcast.yaml': [[7, 16, 'groups.web6.broadcast', /^IPv6 has no broadcast/]],
  '75-ipv4-mcast-ipv6.yaml': [[7, 12, 'groups.web.mcast', /^ff02::12 is IPv6, but this group is IPv4/]],
  '76-ipv6-prefix-129.yaml': [
    [5, 17, 'groups.web6.addresses[0]', /IPv6 address with a prefix length 0\.\.128/],
  ],
  '28-groups-not-map.yaml': [[2, 3, 'groups', /^must be a map/]],
  '29-logging-level.yaml': [[2, 10, 'logging.level', /^must be one of: error, warn, info, debug$/]],
  '30-logging-facility.yaml': [[1, 35, 'logging.facility', /^must be one of: auth, .*local7, none$/]],
  '31-metrics-listen.yaml': [[2, 11, 'metrics.listen', /^must be host:port/]],
  '32-script-timeout-negative.yaml': [[7, 21, 'groups.web.script_timeout', /^must be > 0$/]],
  // Set in defaults, shared by two groups: reported once, where it is written.
  '33-password-file-unreadable.yaml': [
    [3, 18, 'defaults.password_file', /^cannot read \/nonexistent\/ucarp\/password \(ENOENT\)$/],
  ],
  '34-multiple-errors.yaml': [
    [2, 10, 'logging.level', /^must be one of/],
    [5, 11, 'groups.web.vhid', /^must be <= 255$/],
    [7, 17, 'groups.web.addresses[0]', /prefix length/],
    [9, 14, 'groups.web.preempt', /^must be true or false$/],
    [11, 5, 'groups.db', /^must have required property 'vhid'$/],
    [14, 14, 'groups.db.advskew', /^must be >= 0$/],
    [15, 5, 'groups.db.colour', /^unknown key \(expected one of: vhid, addresses, /],
  ],
  '35-vhid-in-defaults.yaml': [[2, 3, 'defaults.vhid', /vhid identifies a group and cannot be a default/]],
  // `groups` may be absent (an idle daemon), so the typo is the only error.
  '36-unknown-top-level-key.yaml': [[1, 1, 'group', /did you mean 'groups'/]],
  '37-address-without-prefix.yaml': [[5, 17, 'groups.web.addresses[0]', /prefix length/]],
  '38-duplicate-address-in-list.yaml': [[8, 9, 'groups.web.addresses[2]', /^duplicate of item 0$/]],
  '39-srcip-not-ipv4.yaml': [[5, 12, 'groups.web.srcip', /^must be an IPv4 or IPv6 address$/]],
  '40-password-too-many-bytes.yaml': [[6, 15, 'groups.web.password', /^must be at most 19 bytes/]],
  '41-upscript-relative.yaml': [[7, 15, 'groups.web.upscript', /^must be an absolute path$/]],
  '42-interface-without-ipv4.yaml': [[2, 14, 'defaults.interface', /^eth2 has no IPv4 address of its own/]],
  '43-address-is-srcip.yaml': [[6, 17, 'groups.web.addresses[0]', /this host's own address on eth0/]],
  // No groups is valid, but an empty file is more likely a truncated save than a decision.
  '44-empty-file.yaml': [[1, 1, '', /^must be a map/]],
  '45-password-in-group-file-in-defaults.yaml': [
    [8, 5, 'groups.web.password', /cannot be combined with defaults\.password_file/],
  ],
  // Same vhid on another interface or another multicast group is fine; twice on broadcast is not.
  '46-duplicate-vhid-broadcast.yaml': [
    [23, 11, 'groups.db2.vhid', /^vhid 20 is already used on eth0 \(broadcast\) by group 'db'$/],
  ],
  '47-metrics-bad-ipv6.yaml': [[1, 20, 'metrics.listen', /valid IPv6 address/]],
  '48-group-not-a-map.yaml': [
    [2, 3, 'groups.web', /^must be a map/],
    [3, 7, 'groups.db', /^must be a map/],
  ],
  // Keys of the other protocol in the group itself are errors; inherited ones are ignored.
  '52-vrrp-carp-keys.yaml': [
    [10, 5, 'groups.router.advbase', /^applies to protocol carp only; this group's protocol is vrrp3$/],
    [11, 5, 'groups.router.password', /^applies to protocol carp only/],
  ],
  '53-carp-vrrp-keys.yaml': [
    [9, 5, 'groups.web.advert_interval', /^applies to protocol vrrp3 only; this group's protocol is carp$/],
  ],
  '54-vrrp-interval-steps.yaml': [[7, 22, 'groups.router.advert_interval', /whole number of centiseconds/]],
  '55-vrrp-limits.yaml': [
    [7, 15, 'groups.router.priority', /^must be >= 1$/],
    [8, 22, 'groups.router.advert_interval', /^must be <= 40.95$/],
  ],
};

function errorsOf(file: string): ConfigError[] {
  const result = loadConfig(file, host);
  assert.equal(result.ok, false, `${path.basename(file)} must be rejected`);
  return result.ok ? [] : result.errors;
}

function assertErrors(actual: ConfigError[], expected: Expected[], file: string): void {
  const shown = formatErrors(actual);
  assert.equal(actual.length, expected.length, `error count for ${file}:\n${shown}`);
  expected.forEach(([line, column, keyPath, message], i) => {
    const e = actual[i];
    assert.equal(e.file, file);
    assert.deepEqual(
      [e.line, e.column, e.path],
      [line, column, keyPath],
      `position of error ${i}:\n${shown}`,
    );
    assert.match(e.message, message, `message of error ${i}:\n${shown}`);
  });
}

for (const [name, expected] of Object.entries(CASES)) {
  test(`config error fixture ${name}`, () => {
    const file = path.join(FIXTURES, name);
    assertErrors(errorsOf(file), expected, file);
  });
}

test('tab indentation is reported at the tab, before any follow-up error', () => {
  const file = path.join(FIXTURES, '26-tab-indentation.yaml');
  const errors = errorsOf(file);
  assert.deepEqual([errors[0].line, errors[0].column, errors[0].path], [3, 1, '']);
  assert.match(errors[0].message, /^Tabs are not allowed as indentation$/);
  assert.ok(errors.every((e) => e.line >= 3));
});

test('every fixture has expectations, and there are at least 30', () => {
  const files = fs.readdirSync(FIXTURES).filter((f) => f.endsWith('.yaml'));
  const covered = new Set([...Object.keys(CASES), '26-tab-indentation.yaml']);
  assert.deepEqual(
    files.filter((f) => !covered.has(f)),
    [],
  );
  assert.ok(files.length >= 30);
});

test('no error or warning ever contains a password', () => {
  for (const name of fs.readdirSync(FIXTURES)) {
    const result = loadConfig(path.join(FIXTURES, name), host);
    const text = formatErrors([...(result.ok ? [] : result.errors), ...result.warnings]);
    for (const secret of ['s3cret', 'abcdefghijklmnopqrs', 'éééé'])
      assert.ok(!text.includes(secret), `${name}: ${text}`);
  }
});

test('errors format as file:line:column: path: message, one per line', () => {
  const text =
    'groups:\n  web:\n    vhid: 10\n    interface: eth0\n    addresses: [192.0.2.100/24]\n    password: x\n    advskew: 256\n    advbase: -1\n';
  const result = loadConfigText(text, '/etc/ucarp.yaml', host);
  assert.equal(result.ok, false);
  assert.equal(
    result.ok ? '' : formatErrors(result.errors),
    '/etc/ucarp.yaml:7:14: groups.web.advskew: must be <= 255\n/etc/ucarp.yaml:8:14: groups.web.advbase: must be >= 0',
  );
});

test('warnings printed among errors say "warning:" after the position; errors keep their format', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ucarp-config-'));
  try {
    const pass = path.join(dir, 'pass');
    fs.writeFileSync(pass, 'pw\n');
    fs.chmodSync(pass, 0o644);
    const file = path.join(dir, 'ucarp.yaml');
    const text =
      'defaults: { interface: eth0, password_file: pass }\ngroups:\n' +
      '  web: { vhid: 1, addresses: [192.0.2.100/24, 192.0.2.100/32] }\n';
    const result = loadConfigText(text, file, host);
    assert.equal(result.ok, false);
    // What --check-config prints: the warnings, then the errors.
    assert.equal(
      `${formatWarnings(result.warnings)}\n${result.ok ? '' : formatErrors(result.errors)}`,
      `${file}:1:45: warning: defaults.password_file: ${pass} is readable by everyone (mode 0644); run chmod o-r ${pass}\n` +
        `${file}:3:47: groups.web.addresses[1]: 192.0.2.100 is listed twice in this group`,
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a warning without a position or key path is labelled too', () => {
  const w: ConfigError = { file: '/etc/ucarp.yaml', line: 0, column: 0, path: '', message: 'odd' };
  assert.equal(formatWarning(w), '/etc/ucarp.yaml: warning: odd');
  assert.equal(formatErrors([w]), '/etc/ucarp.yaml: odd');
  assert.equal(
    formatWarnings([w, { ...w, line: 2, column: 3, path: 'groups' }]),
    '/etc/ucarp.yaml: warning: odd\n/etc/ucarp.yaml:2:3: warning: groups: odd',
  );
});

test('a file that cannot be read is one error without a position', () => {
  const file = path.join(FIXTURES, 'does-not-exist.yaml');
  const errors = errorsOf(file);
  assert.deepEqual(errors, [
    { file, line: 0, column: 0, path: '', message: 'cannot read the file (ENOENT)' },
  ]);
  assert.equal(formatErrors(errors), `${file}: cannot read the file (ENOENT)`);
});

test('several documents in one file are refused', () => {
  const result = loadConfigText('groups: {}\n---\ngroups: {}\n', 'x.yaml', host);
  assert.equal(result.ok, false);
  assert.deepEqual(result.ok ? [] : result.errors.map((e) => [e.line, e.column]), [[2, 1]]);
  assert.match(result.ok ? '' : result.errors[0].message, /single YAML document/);
});

test('an alias to a missing anchor is an error, not an exception', () => {
  const result = loadConfigText('groups: *nowhere\n', 'x.yaml', host);
  assert.equal(result.ok, false);
  // Without the alias's name: `password: *x9` is an alias to YAML, and x9 the password.
  assert.equal(
    result.ok ? '' : result.errors[0].message,
    'unknown alias (a value starting with * must be quoted)',
  );
});

test('no error quotes a password that YAML reads as something else', () => {
  const PW = 'Zq9#kP';
  const group = (value: string) =>
    `groups:\n  web:\n    vhid: 1\n    interface: eth0\n    addresses: [192.0.2.100/24]\n    password: ${value}\n`;
  // What the yaml library says about each when it quotes the document, for reference:
  const written: [string, RegExp][] = [
    [`!${PW}`, /^invalid or unknown tag/], // Unresolved tag: !Zq9#kP
    [`!${PW} x`, /^invalid or unknown tag/],
    [`!<${PW}> x`, /^invalid or unknown tag/], // Unresolved tag: Zq9#kP
    [`!!${PW} x`, /^invalid or unknown tag/], // Unresolved tag: tag:yaml.org,2002:Zq9#kP
    [`!e!${PW} x`, /^invalid or unknown tag/], // Could not resolve tag: !e!Zq9#kP
    [`*${PW}`, /^unknown alias/], // Unresolved alias (…): Zq9#kP
    [`"\\u${PW}"`, /^invalid escape sequence/], // Invalid escape sequence \uZq9#
    [`"\\x${PW}"`, /^invalid escape sequence/], // Invalid escape sequence \xZq
    [`"${PW}\\q"`, /^invalid escape sequence/], // Invalid escape sequence \q
    [`@${PW}`, /^a plain value cannot start with @, ` or %/], // …reserved character @
    [`|${PW}\n      x`, /^Block scalar header includes extra characters$/], // …: |Zq9
    [`${PW}${PW}${PW}${PW}`, /^must be at most 19 bytes/],
    [`[${PW}]`, /^must be a string$/],
    [`{${PW}: 1}`, /^must be a string$/],
    ['""', /^must NOT have fewer than 1 characters$/],
  ];
  for (const [value, message] of written) {
    const result = loadConfigText(group(value), '/etc/ucarp.yaml', host);
    assert.equal(result.ok, false, value);
    const text = result.ok ? '' : formatErrors(result.errors);
    assert.match(result.ok ? '' : result.errors[0].message, message, `${value}: ${text}`);
    for (const piece of [PW, 'Zq9', 'q9#', '#kP', '\\q'])
      assert.ok(!text.includes(piece), `${value} shows ${piece}: ${text}`);
  }
});

test('advbase 0 from defaults names the group with advskew 0', () => {
  const text =
    'defaults: { interface: eth0, password: x, advbase: 0 }\ngroups:\n  web: { vhid: 1, addresses: [192.0.2.100/24], advskew: 5 }\n  db: { vhid: 2, addresses: [192.0.2.101/24] }\n';
  const result = loadConfigText(text, 'x.yaml', host);
  assert.equal(result.ok, false);
  assert.deepEqual(result.ok ? [] : result.errors.map((e) => [e.line, e.column, e.path, e.message]), [
    [1, 52, 'defaults.advbase', "0 requires advskew > 0 (group 'db' has advskew 0)"],
  ]);
});

test('the same address with two prefixes in one group is refused', () => {
  const text =
    'groups:\n  web: { vhid: 1, interface: eth0, password: x, addresses: [192.0.2.100/24, 192.0.2.100/32] }\n';
  const result = loadConfigText(text, 'x.yaml', host);
  assert.deepEqual(result.ok ? [] : result.errors.map((e) => [e.line, e.column, e.path, e.message]), [
    [2, 77, 'groups.web.addresses[1]', '192.0.2.100 is listed twice in this group'],
  ]);
});

test('password files: empty first line and over-long password are errors', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ucarp-config-'));
  try {
    fs.writeFileSync(path.join(dir, 'empty'), '\nsecond line\n', { mode: 0o600 });
    fs.writeFileSync(path.join(dir, 'long'), `${'x'.repeat(20)}\n`, { mode: 0o600 });
    const text = [
      'defaults: { interface: eth0 }',
      'groups:',
      '  a: { vhid: 1, addresses: [192.0.2.100/24], password_file: empty }',
      '  b: { vhid: 2, addresses: [192.0.2.101/24], password_file: long }',
      '',
    ].join('\n');
    const result = loadConfigText(text, path.join(dir, 'ucarp.yaml'), host);
    assert.deepEqual(result.ok ? [] : result.errors.map((e) => [e.line, e.column, e.path, e.message]), [
      [3, 61, 'groups.a.password_file', `the first line of ${path.join(dir, 'empty')} is empty`],
      [
        4,
        61,
        'groups.b.password_file',
        `the password in ${path.join(dir, 'long')} is longer than 19 bytes (ucarp rejects it)`,
      ],
    ]);
    assert.ok(!formatErrors(result.ok ? [] : result.errors).includes('x'.repeat(20)));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("an interface's addresses are looked at once per load, not once per group (its VIPs are there too)", () => {
  // The master's interface carries every group's virtual address: per group, filtering that
  // list made a reload of 4080 groups on one interface cost 0.5 s (docs/performance.md).
  const n = 300;
  const vips = Array.from({ length: n }, (_, i) => `198.18.${Math.floor(i / 250)}.${(i % 250) + 1}`);
  let reads = 0;
  const eth0 = {
    get addresses(): string[] {
      reads++;
      return [...vips.slice(0, 5), '192.0.2.1', ...vips.slice(5)];
    },
  };
  const many: HostInfo = { interfaces: () => new Map([['eth0', eth0]]) };
  const groups = vips.map(
    (v, i) =>
      `  g${i}: { vhid: ${(i % 255) + 1}, interface: eth0, addresses: [${v}/32], ${i < 255 ? '' : 'mcast: 239.255.0.1'} }`,
  );
  const r = loadConfigText(
    ['defaults: { password: pw }', 'groups:', ...groups].join('\n') + '\n',
    'many.yaml',
    many,
  );
  assert.ok(r.ok, r.ok ? '' : formatErrors(r.errors));
  // A virtual address left by a crash is never taken for the source: the host's own one is.
  assert.ok(r.config.groups.every((g) => g.srcip === '192.0.2.1'));
  assert.ok(reads <= 2, `read ${reads} times`);
});
