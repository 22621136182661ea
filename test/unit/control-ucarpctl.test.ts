import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import winston from 'winston';
import {
  formatDuration,
  formatEvent,
  formatStatus,
  parseCtlArgs,
  render,
  run,
  socketFromConfig,
  type CtlOutput,
} from '../../src/cli/ucarpctl';
import { ControlServer } from '../../src/control/server';
import { groupJson, handleRequest, statusDocument } from '../../src/control/commands';
import type { EventLine, GroupStatusJson } from '../../src/control/protocol';
import { EventBus, type DaemonEvent } from '../../src/runtime/events';
import { ROOT } from '../helpers/carp-proc';
import { FakeGroup, FakeTarget, staleSocket } from '../fixtures/control-fake';
import { SAMPLE_EVENTS } from '../fixtures/sample-events';
import { tempDir } from '../helpers/temp-dir';
import { RESTART_ANSWER_WAIT_MS, RESTART_LIMITS } from '../../src/config/settings';

const tmp = tempDir('ucarpctl-');

describe('ucarpctl arguments', () => {
  /** The whole result of a command line that runs `request`: nothing but what `o` sets. */
  const runs = (request: object, o: { socket?: string; config?: string; json?: boolean } = {}) => ({
    kind: 'run',
    socket: o.socket,
    config: o.config,
    request,
    json: o.json ?? false,
  });

  it('parses commands and options in any order', () => {
    assert.deepEqual(parseCtlArgs(['status']), runs({ cmd: 'status' }));
    assert.deepEqual(
      parseCtlArgs(['status', '--json', '--socket', '/x.sock']),
      runs({ cmd: 'status' }, { socket: '/x.sock', json: true }),
    );
    assert.deepEqual(
      parseCtlArgs(['-c', '/etc/u.yaml', 'demote', 'web']),
      runs({ cmd: 'demote', group: 'web' }, { config: '/etc/u.yaml' }),
    );
    assert.deepEqual(
      parseCtlArgs(['--socket=/s', 'status', 'db']),
      runs({ cmd: 'status', group: 'db' }, { socket: '/s' }),
    );
    assert.deepEqual(parseCtlArgs(['reload']).kind, 'run');
    assert.deepEqual(parseCtlArgs(['restart']), runs({ cmd: 'restart' }));
    assert.deepEqual(parseCtlArgs(['events']), runs({ cmd: 'events' }));
    assert.deepEqual(
      parseCtlArgs(['--json', 'events', '-s', '/s']),
      runs({ cmd: 'events' }, { socket: '/s', json: true }),
    );
    assert.deepEqual(parseCtlArgs(['-h', 'status']), { kind: 'help' });
  });

  const bad: [string[], RegExp][] = [
    [[], /no command given/],
    [['frobnicate'], /unknown command frobnicate/],
    [['demote'], /demote needs a GROUP/],
    [['promote', 'a', 'b'], /too many arguments for promote/],
    [['reset', 'a/b'], /invalid group name "a\/b"/],
    [['reload', 'web'], /too many arguments for reload/],
    [['restart', 'now'], /too many arguments for restart/],
    [['restart', '--json'], /--json applies to status and events only/],
    [['reload', '--json'], /--json applies to status and events only/],
    [['events', 'web'], /too many arguments for events/],
    [['status', '--socket'], /--socket needs a path/],
    [['status', '--verbose'], /unknown option --verbose/],
  ];
  for (const [argv, msg] of bad) {
    it(`refuses ${JSON.stringify(argv)}`, () => {
      const r = parseCtlArgs(argv);
      assert.equal(r.kind, 'error');
      assert.match(r.kind === 'error' ? r.message : '', msg);
    });
  }
});

describe('ucarpctl formatting', () => {
  it('formats durations with two units at most', () => {
    assert.equal(formatDuration(0), '0s');
    assert.equal(formatDuration(59_999), '59s');
    assert.equal(formatDuration(187_000), '3m07s');
    assert.equal(formatDuration(2 * 3600_000 + 5 * 60_000 + 9000), '2h05m');
    assert.equal(formatDuration(4 * 86400_000 + 3 * 3600_000), '4d03h');
  });

  it('prints one aligned row per group, with the master, counters, overrides and rejects', () => {
    const web = new FakeGroup('web', 10, {
      state: 'MASTER',
      sinceMs: 125_000,
      addresses: ['192.0.2.100/24', '192.0.2.101/24'],
      master: { address: '192.0.2.1', advbase: 1, advskew: 0 },
      override: 'promote',
    });
    web.s.stats.sent = 1234;
    const db = new FakeGroup('db', 200, { master: null, sinceMs: 3000, addresses: ['192.0.2.200/24'] });
    db.s.stats.received = 7;
    db.s.stats.rejects.digest = 3;
    const t = new FakeTarget([web, db]);
    t.ifaces[0].rejects.vhid = 2;
    const out = formatStatus(statusDocument(t));
    assert.equal(
      out,
      [
        'GROUP  VHID  IFACE  STATE              SINCE  ADDRESSES                      MASTER                SENT  RECV  REJECTS',
        'web      10  eth0   MASTER (promoted)  2m05s  192.0.2.100/24,192.0.2.101/24  192.0.2.1 (self) 1/0  1234     0  0',
        'db      200  eth0   BACKUP             3s     192.0.2.200/24                 -                        0     7  3 (digest=3)',
        'eth0: 2 packet(s) for no group of ours (2 unknown vhid)',
        '',
      ].join('\n'),
    );
    assert.equal(formatStatus(statusDocument(new FakeTarget())), 'no groups\n');
  });

  it('shows a VRRP group by its VRID and the master by its priority; demotion lowers it', () => {
    const router = new FakeGroup('router', 30, {
      protocol: 'vrrp3',
      priority: 50,
      advertInterval: 1,
      demotion: 100,
      sinceMs: 3000,
      addresses: ['192.0.2.254/24'],
      master: { address: '192.0.2.2', priority: 100, advertInterval: 1 },
    });
    const [, row] = formatStatus(statusDocument(new FakeTarget([router]))).split('\n');
    assert.match(
      row,
      /^router {2}vrrp 30 {2}eth0 {3}BACKUP \(demoted -100\) {2}3s {5}192\.0\.2\.254\/24 {2}192\.0\.2\.2 prio 100 /,
    );
  });

  it("says why a promoted group is still BACKUP, from our timing and the master's", () => {
    const promoted = (master: GroupStatusJson['master'], state: 'BACKUP' | 'MASTER' = 'BACKUP') => {
      const g = new FakeGroup('web', 10, { state, master, override: 'promote', advskew: 0 });
      const out = render({ cmd: 'promote', group: 'web' }, { ok: true, group: groupJson(g) }, false);
      assert.equal(out.code, 0);
      const [first, ...rest] = out.stdout.split('\n');
      assert.equal(first, `web: promoted; now ${state}, advertising advbase 1 advskew 0`);
      return rest.join('\n');
    };
    assert.equal(
      promoted({ address: '192.0.2.2', advbase: 1, advskew: 0 }),
      '  not taking over: the master 192.0.2.2 advertises advbase 1 advskew 0, as good an interval as ours, ' +
        'and promotion cannot beat a tie (a backup preempts only a longer interval; between two masters ' +
        'CARP breaks a tie by address, see docs/protocol.md §10)\n',
    );
    assert.equal(
      promoted({ address: '192.0.2.2', advbase: 0, advskew: 200 }),
      '  not taking over: the master 192.0.2.2 advertises advbase 0 advskew 200, a shorter interval than ours; ' +
        'promotion sets advskew 0 but keeps advbase 1\n',
    );
    assert.equal(
      promoted({ address: '192.0.2.2', advbase: 1, advskew: 1 }),
      '  the master 192.0.2.2 advertises advbase 1 advskew 1, a longer interval than ours: ' +
        'we take over at its next advertisement\n',
    );
    // Nothing to explain: no master heard (yet), or already master.
    assert.equal(promoted(null), '');
    assert.equal(promoted({ address: '192.0.2.1', advbase: 1, advskew: 0 }, 'MASTER'), '');
  });

  it('counts the packets for no group of ours without reading like a vhid', () => {
    const t = new FakeTarget([new FakeGroup('web', 10)]);
    t.ifaces[0].rejects.vhid = 45;
    const one = formatStatus(statusDocument(t)).trimEnd().split('\n');
    assert.equal(one[one.length - 1], 'eth0: 45 packet(s) for no group of ours (45 unknown vhid)');
    t.ifaces[0].rejects.short = 2;
    t.ifaces[0].rejects.destination = 3;
    const all = formatStatus(statusDocument(t)).trimEnd().split('\n');
    assert.equal(
      all[all.length - 1],
      'eth0: 50 packet(s) for no group of ours (2 short, 45 unknown vhid, 3 other destination)',
    );
  });

  it('reads the socket path from a configuration file, even a broken one', () => {
    const f = path.join(tmp, 'c.yaml');
    fs.writeFileSync(f, 'control:\n  socket: /tmp/x/control.sock\ngroups:\n  web: {vhid: 999\n');
    assert.throws(() => socketFromConfig(f), /./, 'a YAML syntax error is reported');
    fs.writeFileSync(f, 'control:\n  socket: /tmp/x/control.sock\ngroups:\n  web: {vhid: 999, bogus: 1}\n');
    assert.equal(socketFromConfig(f), '/tmp/x/control.sock');
    fs.writeFileSync(f, 'groups: {}\n');
    assert.equal(socketFromConfig(f), '/run/ucarp/control.sock');
  });
});

describe('ucarpctl against a control socket', () => {
  const log = winston.createLogger({ silent: true });

  async function withServer(t: FakeTarget, fn: (sock: string) => Promise<void>): Promise<void> {
    const sock = path.join(tmp, `d${Math.random().toString(36).slice(2)}`, 'control.sock');
    const srv = await ControlServer.open({ path: sock, log, handle: (req) => handleRequest(t, req) });
    try {
      await fn(sock);
    } finally {
      await srv.close();
    }
  }

  it('status --json prints the status document without the envelope', async () => {
    const t = new FakeTarget([new FakeGroup('web', 10)]);
    await withServer(t, async (sock) => {
      const o = await run(['--socket', sock, 'status', '--json']);
      assert.equal(o.code, 0);
      assert.equal(o.stderr, '');
      const doc = JSON.parse(o.stdout) as Record<string, unknown>;
      // The uptime moved on between the two reads.
      assert.equal(typeof doc.uptimeMs, 'number');
      assert.deepEqual(
        { ...doc, uptimeMs: 0 },
        { ...JSON.parse(JSON.stringify(statusDocument(t))), uptimeMs: 0 },
      );
      assert.equal('ok' in doc, false);
    });
  });

  it('demote / promote / reset print the new state; an unknown group exits 1', async () => {
    const t = new FakeTarget([new FakeGroup('web', 10, { state: 'MASTER' })]);
    await withServer(t, async (sock) => {
      const d = await run(['--socket', sock, 'demote', 'web']);
      assert.deepEqual(d, {
        code: 0,
        stdout: 'web: demoted; now BACKUP, advertising advbase 1 advskew 255\n',
        stderr: '',
      });
      const r = await run(['--socket', sock, 'reset', 'web']);
      assert.equal(r.stdout, 'web: override cleared; now BACKUP, advertising advbase 1 advskew 10\n');
      const p = await run(['--socket', sock, 'promote', 'web']);
      assert.equal(
        p.stdout,
        'web: promoted; now BACKUP, advertising advbase 1 advskew 0\n' +
          '  not taking over: the master 192.0.2.2 advertises advbase 1 advskew 0, as good an interval as ours, ' +
          'and promotion cannot beat a tie (a backup preempts only a longer interval; between two masters ' +
          'CARP breaks a tie by address, see docs/protocol.md §10)\n',
      );
      assert.deepEqual(await run(['--socket', sock, 'promote', 'nope']), {
        code: 1,
        stdout: '',
        stderr: 'ucarpctl: no group named "nope"\n',
      });
    });
  });

  it('reload prints the summary, or every error with its position and exits 1', async () => {
    const t = new FakeTarget();
    await withServer(t, async (sock) => {
      const ok = await run(['--socket', sock, 'reload']);
      assert.equal(ok.code, 0);
      assert.match(
        ok.stdout,
        /^reload \(ucarpctl\): added 0, removed 0, updated 0, restarted 0, unchanged 0\n$/,
      );
      t.nextReload = {
        ok: false,
        text: '',
        errors: [
          { file: '/e/u.yaml', line: 4, column: 11, path: 'groups.web.vhid', message: 'must be <= 255' },
          { file: '/e/u.yaml', line: 7, column: 3, path: 'groups.db', message: 'unknown key "bogus"' },
        ],
      };
      const bad = await run(['--socket', sock, 'reload']);
      assert.deepEqual(bad, {
        code: 1,
        stdout: '',
        stderr:
          '/e/u.yaml:4:11: groups.web.vhid: must be <= 255\n' +
          '/e/u.yaml:7:3: groups.db: unknown key "bogus"\n' +
          'ucarpctl: configuration rejected with 2 error(s); running groups unchanged\n',
      });
    });
  });

  it('finds the socket through -c FILE', async () => {
    const t = new FakeTarget([new FakeGroup('web', 10)]);
    await withServer(t, async (sock) => {
      const f = path.join(tmp, 'via-config.yaml');
      fs.writeFileSync(f, `control:\n  socket: ${sock}\n`);
      const o = await run(['-c', f, 'status', 'web', '--json']);
      assert.equal(o.code, 0);
      assert.equal((JSON.parse(o.stdout) as { groups: unknown[] }).groups.length, 1);
    });
  });

  it('exits 2 saying what it found when the daemon cannot be reached, or on usage errors', async () => {
    const sock = path.join(tmp, 'absent', 'control.sock');
    assert.deepEqual(await run(['--socket', sock, 'status']), {
      code: 2,
      stdout: '',
      stderr:
        `ucarpctl: no socket at ${sock} (is the ucarp daemon running? If control.socket was changed, ` +
        'the daemon keeps the path it started with until it is restarted)\n',
    });
    const stale = path.join(tmp, 'stale.sock');
    await staleSocket(stale);
    assert.deepEqual(await run(['--socket', stale, 'status']), {
      code: 2,
      stdout: '',
      stderr: `ucarpctl: stale socket at ${stale}: nobody is listening (the ucarp daemon is not running, or it crashed)\n`,
    });
    const usage = await run(['bogus']);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /^ucarpctl: unknown command bogus\nUsage: ucarpctl/);
    const missing = await run(['-c', path.join(tmp, 'nope.yaml'), 'status']);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /cannot read .*nope\.yaml/);
  });
});

const at = '2026-11-26T23:10:04.123Z';
const EVENTS = SAMPLE_EVENTS;

describe('ucarpctl events formatting', () => {
  it('prints one line per event, led by its time and, for a group, its name, vhid and interface', () => {
    assert.deepEqual(
      EVENTS.map((e) => formatEvent({ ...e, time: at })),
      [
        `${at} web vhid 10 eth0: BACKUP -> MASTER (master-down)`,
        `${at} tracker haproxy failed (value 1): connection refused`,
        `${at} web vhid 10 eth0: conflict 192.0.2.100 (removed)`,
        `${at} web vhid 10 eth0: restored 192.0.2.100 (removed behind our back)`,
        `${at} reload: reload (SIGHUP): added 0, removed 0, updated 0, restarted 0, unchanged 2`,
      ],
    );
  });

  it('keeps each event on one line, and shows what it does not know instead of dropping it', () => {
    const ev = (e: DaemonEvent): EventLine => ({ ...e, time: at });
    assert.equal(
      formatEvent(ev({ type: 'tracker', tracker: 'cfg', failed: false, value: 0, output: 'a\n  b\r\nc' })),
      `${at} tracker cfg ok (value 0): a | b | c`,
    );
    assert.equal(
      formatEvent(ev({ type: 'tracker', tracker: 'eth1', failed: false, value: 0, output: '' })),
      `${at} tracker eth1 ok (value 0)`,
    );
    assert.equal(
      formatEvent(
        ev({
          type: 'conflict',
          group: 'db',
          vhid: 20,
          interface: 'eth1',
          address: '192.0.2.120',
          removed: false,
        }),
      ),
      `${at} db vhid 20 eth1: conflict 192.0.2.120 (left in place: not added by this daemon)`,
    );
    assert.equal(
      formatEvent(ev({ type: 'reload', ok: false, line: 'reload (ucarpctl) rejected: 2 error(s)' })),
      `${at} reload: reload (ucarpctl) rejected: 2 error(s)`,
    );
    const future = { type: 'weather', sky: 'clear', time: at } as unknown as EventLine;
    assert.equal(formatEvent(future), `${at} weather: {"type":"weather","sky":"clear"}`);
  });
});

describe('ucarpctl events against a control socket', { timeout: 30_000 }, () => {
  const log = winston.createLogger({ silent: true });

  async function open(bus?: EventBus): Promise<ControlServer> {
    const t = new FakeTarget([new FakeGroup('web', 10)]);
    const sock = path.join(tmp, `e${Math.random().toString(36).slice(2)}`, 'control.sock');
    return ControlServer.open({ path: sock, log, handle: (req) => handleRequest(t, req), events: bus });
  }

  async function until(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
    const end = performance.now() + timeoutMs;
    while (!cond()) {
      if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  it('--json prints the lines as the daemon sent them, and exits 0 with a note when the daemon ends the stream', async () => {
    const bus = new EventBus();
    const srv = await open(bus);
    const published: string[] = [];
    let out = '';
    const done = run(['--socket', srv.path, 'events', '--json'], { write: (t) => (out += t) });
    await until(() => srv.subscriberCount === 1, 'ucarpctl to subscribe');
    bus.on('event', (e) => published.push(JSON.stringify(e)));
    for (const e of EVENTS) bus.publish(e);
    await until(() => out.split('\n').length > EVENTS.length, 'the events');
    await srv.close();
    const o = await done;
    assert.deepEqual(o, {
      code: 0,
      stdout: '',
      stderr:
        'ucarpctl: the daemon ended the event stream (it is stopping, or this reader fell too far behind)\n',
    });
    assert.equal(out, published.map((l) => l + '\n').join(''));
  });

  it('prints human lines, and exits 0 without a note when stopped', async () => {
    const bus = new EventBus();
    const srv = await open(bus);
    const stop = new AbortController();
    const lines: string[] = [];
    const done = run(['--socket', srv.path, 'events'], { write: (t) => lines.push(t), signal: stop.signal });
    await until(() => srv.subscriberCount === 1, 'ucarpctl to subscribe');
    bus.publish(EVENTS[0]);
    bus.publish(EVENTS[4]);
    await until(() => lines.length === 2, 'two lines');
    stop.abort();
    assert.deepEqual(await done, { code: 0, stdout: '', stderr: '' });
    assert.match(lines[0], /^\d{4}-\d\d-\d\dT[\d:.]+Z web vhid 10 eth0: BACKUP -> MASTER \(master-down\)\n$/);
    assert.match(lines[1], /^\S+Z reload: reload \(SIGHUP\): added 0, /);
    await until(() => srv.subscriberCount === 0, 'the daemon to let go');
    await srv.close();
  });

  it('exits 2 when the daemon cannot be reached, 1 when it does not stream events', async () => {
    const sock = path.join(tmp, 'absent-events', 'control.sock');
    const o: CtlOutput = await run(['--socket', sock, 'events'], { write: () => assert.fail('no output') });
    assert.equal(o.code, 2);
    assert.match(
      o.stderr,
      /^ucarpctl: no socket at .*absent-events\/control\.sock \(is the ucarp daemon running\?/,
    );
    const srv = await open();
    assert.deepEqual(await run(['--socket', srv.path, 'events', '--json'], { write: () => undefined }), {
      code: 1,
      stdout: '',
      stderr: 'ucarpctl: this control socket does not stream events\n',
    });
    await srv.close();
  });

  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    it(`bin/ucarpctl events --json runs until ${sig}, then exits 0`, async () => {
      const bus = new EventBus();
      const srv = await open(bus);
      const child = spawn(
        process.execPath,
        [path.join(ROOT, 'bin/ucarpctl'), '--socket', srv.path, 'events', '--json'],
        {
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      let out = '';
      let err = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
      try {
        await until(() => srv.subscriberCount === 1, 'the child to subscribe');
        bus.publish(EVENTS[0]);
        await until(() => out.includes('\n'), 'the event on its stdout');
        assert.deepEqual(JSON.parse(out), { ...EVENTS[0], time: (JSON.parse(out) as EventLine).time });
        child.kill(sig);
        assert.equal(await exited, 0, err);
        assert.equal(err, '');
      } finally {
        child.kill('SIGKILL');
        await srv.close();
      }
    });
  }
});

describe('ucarpctl restart waits', () => {
  it('for the answer as long as the daemon may wait for scripts and the configuration check', async (t) => {
    const dir = tempDir('ucarpctl-restart-wait-');
    const sock = path.join(dir, 'ctl.sock');
    // A daemon still waiting for its scripts and the new code's check: connected, silent.
    const conns = new Set<net.Socket>();
    const server = net.createServer((c) => conns.add(c));
    await new Promise<void>((r) => server.listen(sock, r));
    t.after(() => {
      for (const c of conns) c.destroy();
      server.close();
    });
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const result: { out?: CtlOutput } = {};
    const done = run(['-s', sock, 'restart']).then((o) => (result.out = o));
    const turns = async () => {
      for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
    };
    await turns();
    // The client's ordinary request timeout would give up here, before the daemon has to answer.
    t.mock.timers.tick(RESTART_LIMITS.scriptWaitMs + RESTART_LIMITS.checkTimeoutMs);
    await turns();
    assert.equal(result.out, undefined, 'ucarpctl gave up while the daemon may still be checking');
    t.mock.timers.tick(RESTART_ANSWER_WAIT_MS - RESTART_LIMITS.scriptWaitMs - RESTART_LIMITS.checkTimeoutMs);
    const out = await done;
    assert.equal(out.code, 2);
    assert.match(out.stderr, new RegExp(`no answer from .* within ${RESTART_ANSWER_WAIT_MS} ms`));
  });
});
