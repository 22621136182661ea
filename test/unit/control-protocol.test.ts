import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { LineSplitter, MAX_REQUEST_BYTES, parseRequest } from '../../src/control/protocol';
import { handleRequest } from '../../src/control/commands';
import { FakeGroup, FakeTarget } from '../fixtures/control-fake';

describe('parseRequest', () => {
  const ok: [string, unknown][] = [
    ['{"cmd":"status"}', { cmd: 'status' }],
    ['{"cmd":"status","group":"web"}', { cmd: 'status', group: 'web' }],
    ['{"cmd":"demote","group":"web"}', { cmd: 'demote', group: 'web' }],
    ['{"cmd":"promote","group":"db.1"}', { cmd: 'promote', group: 'db.1' }],
    ['{"cmd":"reset","group":"a_b-c"}', { cmd: 'reset', group: 'a_b-c' }],
    ['  {"cmd":"reload"}  ', { cmd: 'reload' }],
    ['{"cmd":"events"}', { cmd: 'events' }],
    ['{"cmd":"restart"}', { cmd: 'restart' }],
  ];
  for (const [line, want] of ok) {
    it(`accepts ${line.trim()}`, () => {
      assert.deepEqual(parseRequest(line), { ok: true, request: want });
    });
  }

  const bad: [string, string, RegExp][] = [
    ['{"cmd":', 'bad-request', /not valid JSON/],
    ['\u0000\u00ff', 'bad-request', /not valid JSON/],
    ['[1,2]', 'bad-request', /JSON object/],
    ['"status"', 'bad-request', /JSON object/],
    ['null', 'bad-request', /JSON object/],
    ['{"command":"status"}', 'bad-request', /"cmd"/],
    ['{"cmd":42}', 'bad-request', /"cmd"/],
    [
      '{"cmd":"explode"}',
      'unknown-command',
      /unknown command "explode".*status, demote, promote, reset, reload/,
    ],
    ['{"cmd":"demote"}', 'bad-request', /demote needs "group"/],
    ['{"cmd":"restart","group":"web"}', 'bad-request', /unexpected key\(s\) for restart: group/],
    ['{"cmd":"promote","group":""}', 'bad-request', /needs "group"/],
    ['{"cmd":"reset","group":"a/b"}', 'bad-request', /needs "group"/],
    [`{"cmd":"demote","group":"${'x'.repeat(65)}"}`, 'bad-request', /needs "group"/],
    ['{"cmd":"status","group":7}', 'bad-request', /needs "group"/],
    ['{"cmd":"reload","group":"web"}', 'bad-request', /unexpected key\(s\) for reload: group/],
    ['{"cmd":"status","verbose":true}', 'bad-request', /unexpected key\(s\) for status: verbose/],
    ['{"cmd":"events","group":"web"}', 'bad-request', /unexpected key\(s\) for events: group/],
    ['{"cmd":"events","since":0}', 'bad-request', /unexpected key\(s\) for events: since/],
    ['{"cmd":"Events"}', 'unknown-command', /reset, reload, restart, events$/],
  ];
  for (const [line, code, msg] of bad) {
    it(`refuses ${JSON.stringify(line).slice(0, 60)} with ${code}`, () => {
      const r = parseRequest(line);
      assert.equal(r.ok, false);
      if (r.ok) return;
      assert.equal(r.code, code);
      assert.match(r.error, msg);
    });
  }
});

describe('LineSplitter', () => {
  it('joins lines split across chunks and drops CR before LF', () => {
    const s = new LineSplitter(100);
    assert.deepEqual(s.push(Buffer.from('{"a"')), []);
    assert.deepEqual(s.push(Buffer.from(':1}\r\n{"b":2}\nrest')), ['{"a":1}', '{"b":2}']);
    assert.equal(s.end(), 'rest');
    assert.equal(s.end(), null);
  });

  it('keeps multi-byte characters split between chunks intact', () => {
    const s = new LineSplitter(100);
    const bytes = Buffer.from('"é"\n');
    assert.deepEqual(s.push(bytes.subarray(0, 2)), []);
    assert.deepEqual(s.push(bytes.subarray(2)), ['"é"']);
  });

  it('refuses an unfinished line past the cap without buffering it', () => {
    const s = new LineSplitter(MAX_REQUEST_BYTES);
    assert.deepEqual(s.push(Buffer.alloc(MAX_REQUEST_BYTES, 0x61)), []);
    assert.equal(s.push(Buffer.from('a')), 'too-long');
  });

  it('refuses a complete line past the cap', () => {
    const s = new LineSplitter(10);
    assert.deepEqual(s.push(Buffer.from('0123456789\n')), ['0123456789']);
    assert.equal(s.push(Buffer.from('01234567890\n')), 'too-long');
  });
});

describe('handleRequest', () => {
  const target = () =>
    new FakeTarget([
      new FakeGroup('web', 10, {
        state: 'MASTER',
        master: { address: '192.0.2.1', advbase: 1, advskew: 10 },
      }),
      new FakeGroup('db', 20),
    ]);

  it('status: the documented fields, every group in order, counters copied not shared', async () => {
    const t = target();
    const web = t.byName.get('web') as FakeGroup;
    web.s.stats.sent = 7;
    web.s.stats.rejects.digest = 2;
    web.s.stats.rejects.ttl = 1;
    web.scripts.stats.runs = 3;
    t.ifaces[0].rejects.vhid = 5;
    const r = await handleRequest(t, { cmd: 'status' });
    assert.ok(r.ok && 'groups' in r);
    assert.deepEqual(Object.keys(r), [
      'ok',
      'version',
      'pid',
      'uptimeMs',
      'starting',
      'configFile',
      'reloads',
      'groups',
      'interfaces',
      'trackers',
    ]);
    assert.equal(r.version, 1);
    assert.equal(r.pid, process.pid);
    assert.equal(r.configFile, '/etc/ucarp.yaml');
    assert.deepEqual(
      r.groups.map((g) => g.name),
      ['web', 'db'],
    );
    const g = r.groups[0];
    assert.deepEqual(Object.keys(g), [
      'name',
      'protocol',
      'vhid',
      'interface',
      'state',
      'sinceMs',
      'addresses',
      'srcip',
      'advbase',
      'advskew',
      'priority',
      'advertInterval',
      'override',
      'link',
      'conflicts',
      'demotion',
      'faults',
      'master',
      'sent',
      'received',
      'sendErrors',
      'transitions',
      'addressRestores',
      'addressConflicts',
      'rejects',
      'rejectsTotal',
      'scripts',
    ]);
    assert.equal(g.sinceMs, 1234);
    assert.equal(g.sent, 7);
    assert.equal(g.rejectsTotal, 3);
    assert.deepEqual(Object.keys(g.rejects), [
      'short',
      'ttl',
      'version',
      'type',
      'length',
      'vhid',
      'destination',
      'peer',
      'checksum',
      'digest',
      'replay',
      'interval',
    ]);
    assert.deepEqual(g.scripts, { runs: 3, failures: 0, timeouts: 0 });
    assert.deepEqual(r.interfaces, [
      {
        name: 'eth0',
        running: true,
        groups: 2,
        rejects: { ...t.ifaces[0].rejects },
        rejectsTotal: 5,
      },
    ]);
    web.s.stats.rejects.digest = 100;
    assert.equal(g.rejects.digest, 2, 'the answer is a snapshot');
  });

  it('status of one group, and of a group that does not exist', async () => {
    const t = target();
    const one = await handleRequest(t, { cmd: 'status', group: 'db' });
    assert.ok(one.ok && 'groups' in one);
    assert.deepEqual(
      one.groups.map((g) => g.name),
      ['db'],
    );
    assert.deepEqual(await handleRequest(t, { cmd: 'status', group: 'nope' }), {
      ok: false,
      code: 'unknown-group',
      error: 'no group named "nope"',
    });
  });

  it('demote, promote and reset set the engine override and answer with the group', async () => {
    const t = target();
    for (const [cmd, override, advskew] of [
      ['demote', 'demote', 255],
      ['promote', 'promote', 0],
      ['reset', 'none', 10],
    ] as const) {
      const r = await handleRequest(t, { cmd, group: 'web' });
      assert.ok(r.ok && 'group' in r, cmd);
      assert.equal(r.group.override, override);
      assert.equal(r.group.advskew, advskew);
      assert.equal((t.byName.get('web') as FakeGroup).s.override, override);
    }
    const missing = await handleRequest(t, { cmd: 'promote', group: 'nope' });
    assert.equal(missing.ok, false);
    assert.equal(!missing.ok && missing.code, 'unknown-group');
  });

  it('reload: the summary line, or every configuration error', async () => {
    const t = target();
    const good = await handleRequest(t, { cmd: 'reload' });
    assert.ok(good.ok && 'line' in good);
    assert.match(good.line, /^reload \(ucarpctl\): added 0/);
    assert.deepEqual(t.reloadReasons, ['ucarpctl']);
    const errors = [
      { file: '/etc/ucarp.yaml', line: 3, column: 5, path: 'groups.web.vhid', message: 'must be <= 255' },
      { file: '/etc/ucarp.yaml', line: 9, column: 1, path: '', message: 'duplicate key' },
    ];
    t.nextReload = { ok: false, errors, text: '' };
    const bad = await handleRequest(t, { cmd: 'reload' });
    assert.deepEqual(bad, {
      ok: false,
      code: 'config-invalid',
      error: 'configuration rejected with 2 error(s); running groups unchanged',
      errors,
    });
  });

  it('restart: what was handed over, or why it was refused', async () => {
    const t = target();
    const good = await handleRequest(t, { cmd: 'restart' });
    assert.deepEqual(good, {
      ok: true,
      restarting: true,
      pid: 4242,
      handedOver: 2,
      masters: 1,
      line: 'restarting in place: pid 4242',
    });
    t.nextRestart = { ok: false, reason: 'the code on disk refuses /etc/ucarp.yaml: bad vhid' };
    const bad = await handleRequest(t, { cmd: 'restart' });
    assert.deepEqual(bad, {
      ok: false,
      code: 'restart-refused',
      error: 'restart refused, the daemon runs on: the code on disk refuses /etc/ucarp.yaml: bad vhid',
    });
    assert.equal(t.restarts, 2);
  });
});
