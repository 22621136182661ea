// A configuration without groups (what the package installs as /etc/ucarp.yaml) is valid, and
// the daemon runs idle, saying so, until a reload brings groups.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfigText, formatErrors } from '../../src/config';
import type { Config, HostInfo } from '../../src/config';
import { Supervisor } from '../../src/supervisor/supervisor';
import { fakeLog } from '../helpers/fake-log';

const host: HostInfo = { interfaces: () => new Map([['eth0', { addresses: ['192.0.2.1'] }]]) };

function load(text: string): Config {
  const r = loadConfigText(text, '/etc/ucarp.yaml', host);
  if (!r.ok) assert.fail(formatErrors(r.errors));
  return r.config;
}

test('no groups key, an empty map, or an empty `groups:` are all valid and mean no group', () => {
  for (const text of [
    'logging: { level: info }\n',
    'groups: {}\n',
    'groups:\n',
    'groups: null\n',
    // The shape of the installed example: the key, and every group commented out below it.
    'groups:\n#  web:\n#    vhid: 10\n',
  ]) {
    assert.deepEqual(load(text).groups, [], JSON.stringify(text));
  }
});

test('the /etc/ucarp.yaml the package installs is valid and has no group', () => {
  const file = path.join(__dirname, '../../../packaging/deb/ucarp.yaml');
  const r = loadConfigText(fs.readFileSync(file, 'utf8'), file, host);
  if (!r.ok) assert.fail(formatErrors(r.errors));
  assert.deepEqual(r.config.groups, []);
  assert.deepEqual(r.warnings, []);
});

test('groups of the wrong type are still errors', () => {
  for (const [text, message] of [
    ['groups: []\n', /^must be a map \(key: value\) or null$/],
    ['groups: 3\n', /^must be a map \(key: value\) or null$/],
  ] as const) {
    const r = loadConfigText(text, 'x.yaml', host);
    assert.equal(r.ok, false, text);
    assert.match(r.ok ? '' : r.errors[0].message, message);
  }
});

test('the supervisor with no groups starts idle and says so', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pk-idle-'));
  try {
    const config = load(`control: { socket: ${path.join(dir, 'ctl.sock')} }\ngroups:\n`);
    const { log, at } = fakeLog();
    const sup = new Supervisor(path.join(dir, 'ucarp.yaml'), config, log);
    await sup.start();
    try {
      assert.deepEqual(at('info'), [
        `started 0 group(s) from ${path.join(dir, 'ucarp.yaml')}`,
        'no groups configured; idle',
      ]);
      assert.deepEqual(sup.statusLines(), []);
    } finally {
      await sup.stop();
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
