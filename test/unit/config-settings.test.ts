import { test } from 'node:test';
import assert from 'node:assert/strict';
import { schema } from '../../src/config';
import {
  DEFAULT_CONTROL_SOCKET,
  GROUP_DEFAULTS,
  GROUP_LIMITS,
  LOGGING_DEFAULTS,
  MAX_IFNAME_BYTES,
  MAX_PASSWORD_BYTES,
  TRACKER_DEFAULTS,
  TRACKER_LIMITS,
} from '../../src/config/settings';
import { normalizeGroup } from '../../src/config/normalize';
import { ucarpGroup } from '../../src/cli/ucarp';
import { parseUcarpArgs } from '../../src/cli/ucarp-args';
import { loadConfigText } from '../../src/config/load';

interface SchemaNode {
  $ref?: string;
  default?: unknown;
  properties?: Record<string, SchemaNode>;
  [key: string]: unknown;
}

const root = schema as SchemaNode;
const defs = root.$defs as Record<string, SchemaNode>;
const resolve = (node: SchemaNode): SchemaNode =>
  node.$ref ? defs[node.$ref.replace('#/$defs/', '')] : node;
const groupProps = defs.group.properties ?? {};

test('every schema default is the one in settings, and every setting with a default declares it', () => {
  for (const [key, value] of Object.entries(GROUP_DEFAULTS))
    assert.deepEqual(resolve(groupProps[key]).default, value, key);
  for (const [key, node] of Object.entries(groupProps)) {
    const d = resolve(node).default;
    if (d !== undefined) assert.deepEqual(d, (GROUP_DEFAULTS as Record<string, unknown>)[key], key);
  }
  const trackerProps = defs.tracker.properties ?? {};
  for (const [key, value] of Object.entries(TRACKER_DEFAULTS))
    assert.equal(resolve(trackerProps[key]).default, value, `tracker ${key}`);
  for (const [key, node] of Object.entries(trackerProps))
    if (resolve(node).default !== undefined) assert.ok(key in TRACKER_DEFAULTS, `tracker ${key}'s default`);
  const logging = root.properties?.logging.properties ?? {};
  assert.equal(logging.level.default, LOGGING_DEFAULTS.level);
  assert.equal(logging.facility.default, LOGGING_DEFAULTS.facility);
  assert.equal(root.properties?.control.properties?.socket.default, DEFAULT_CONTROL_SOCKET);
});

test('schema bounds are the limits in settings', () => {
  const keywords = ['minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum'];
  for (const [key, limits] of Object.entries(GROUP_LIMITS)) {
    const node = resolve(groupProps[key]);
    const declared = Object.fromEntries(keywords.filter((k) => k in node).map((k) => [k, node[k]]));
    assert.deepEqual(declared, limits, key);
  }
  const trackerProps = defs.tracker.properties ?? {};
  for (const [key, limits] of Object.entries(TRACKER_LIMITS)) {
    const node = resolve(trackerProps[key]);
    const declared = Object.fromEntries(keywords.filter((k) => k in node).map((k) => [k, node[k]]));
    assert.deepEqual(declared, limits, `tracker ${key}`);
  }
  assert.equal(resolve(groupProps.password).maxLength, MAX_PASSWORD_BYTES);
  assert.match(String(resolve(groupProps.interface).pattern), new RegExp(`\\{1,${MAX_IFNAME_BYTES}\\}`));
});

test('a group with only its required keys takes every default from settings', () => {
  const g = normalizeGroup(
    'web',
    { vhid: 7, interface: 'eth0', addresses: ['192.0.2.100/24'] },
    { srcip: '192.0.2.1', password: 'x' },
  );
  assert.equal(g.advbase, GROUP_DEFAULTS.advbase);
  assert.equal(g.advskew, GROUP_DEFAULTS.advskew);
  assert.equal(g.deadratio, GROUP_DEFAULTS.deadratio);
  assert.equal(g.preempt, GROUP_DEFAULTS.preempt);
  assert.equal(g.destination, GROUP_DEFAULTS.mcast);
  assert.equal(g.manageAddresses, GROUP_DEFAULTS.manage_addresses);
  assert.equal(g.scriptTimeoutMs, GROUP_DEFAULTS.script_timeout * 1000);
});

test('the ucarp command line and the YAML file make the same GroupConfig for the same group', () => {
  const r = parseUcarpArgs(
    [
      '-i',
      'eth0',
      '-s',
      '192.0.2.1',
      '-v',
      '7',
      '-p',
      'pw',
      '-a',
      '192.0.2.100',
      '-k',
      '20',
      '-P',
      '-M',
    ].concat(['-u', '/bin/up', '-d', '/bin/down', '-x', 'web']),
  );
  assert.equal(r.kind, 'run');
  const fromArgs = ucarpGroup(r.kind === 'run' ? r.opts : (undefined as never), 'eth0');
  const yaml = [
    'groups:',
    '  vhid7:',
    '    vhid: 7',
    '    interface: eth0',
    '    srcip: 192.0.2.1',
    '    password: pw',
    '    addresses: [192.0.2.100/32]',
    '    advskew: 20',
    '    preempt: true',
    '    broadcast: true',
    '    manage_addresses: false',
    '    upscript: /bin/up',
    '    downscript: /bin/down',
    '    xparam: web',
  ].join('\n');
  const host = { interfaces: () => new Map([['eth0', { addresses: ['192.0.2.1'] }]]) };
  const loaded = loadConfigText(yaml, 'test.yaml', host);
  assert.ok(loaded.ok, JSON.stringify(loaded));
  assert.deepEqual(fromArgs, loaded.ok ? loaded.config.groups[0] : undefined);
});
