import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import v8 from 'node:v8';
import vm from 'node:vm';
import winston from 'winston';
import {
  CONTROL_LIMITS,
  ControlServer,
  socketAnswers,
  type ControlServerOptions,
} from '../../src/control/server';
import { handleRequest } from '../../src/control/commands';
import { request, subscribe, ControlClientError } from '../../src/control/client';
import type { EventLine, Response } from '../../src/control/protocol';
import { EventBus } from '../../src/runtime/events';
import { FakeGroup, FakeTarget, staleSocket } from '../fixtures/control-fake';
import { fakeLog } from '../helpers/fake-log';
import { waitFor } from '../helpers/netns';
import { Trickler } from '../helpers/slowloris';
import { SAMPLE_EVENTS } from '../fixtures/sample-events';
import { tempDir } from '../helpers/temp-dir';

const log = winston.createLogger({ silent: true });
const tmp = tempDir('ucarp-control-');

let n = 0;
function sockPath(): string {
  return path.join(tmp, `s${n++}`, 'control.sock');
}

async function serve(
  opts: Partial<ControlServerOptions> = {},
): Promise<{ srv: ControlServer; target: FakeTarget }> {
  const target = new FakeTarget([new FakeGroup('web', 10)]);
  const srv = await ControlServer.open({
    path: sockPath(),
    log,
    handle: (req) => handleRequest(target, req),
    ...opts,
  });
  return { srv, target };
}

interface Exchange {
  lines: Response[];
  /** The server ended or destroyed the connection. */
  closed: boolean;
}

/**
 * Sends `data` (then half-closes when `end`), and collects answers until the server closes
 * or `want` answers arrived.
 */
function exchange(
  p: string,
  data: Buffer | string,
  opts: { end?: boolean; want?: number } = {},
): Promise<Exchange> {
  return new Promise((resolve, reject) => {
    const c = net.connect(p);
    let text = '';
    const out = (closed: boolean) => {
      c.destroy();
      resolve({
        lines: text
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l) as Response),
        closed,
      });
    };
    c.on('connect', () => {
      c.write(data);
      if (opts.end) c.end();
    });
    c.on('data', (d: Buffer) => {
      text += d.toString();
      if (opts.want !== undefined && text.split('\n').length - 1 >= opts.want) out(false);
    });
    c.on('close', () => out(true));
    c.on('error', (e: NodeJS.ErrnoException) => {
      // The server may reset a connection whose data it refused; what was read still counts.
      if (e.code === 'ECONNRESET' || e.code === 'EPIPE') out(true);
      else reject(e);
    });
  });
}

async function stillAnswers(p: string): Promise<void> {
  const r = await request(p, { cmd: 'status' });
  assert.ok(r.ok && 'groups' in r, 'the server still answers a status request');
  assert.equal(r.groups[0].name, 'web');
}

describe('control server', () => {
  it('creates its directory 0755 and a socket of mode 0600, without a window under the umask', async () => {
    const old = process.umask(0o022);
    try {
      const { srv } = await serve();
      const st = fs.statSync(srv.path);
      assert.ok(st.isSocket());
      assert.equal(st.mode & 0o777, 0o600);
      assert.equal(fs.statSync(path.dirname(srv.path)).mode & 0o777, 0o755);
      assert.equal(process.umask(0o022), 0o022, 'the umask is restored');
      await srv.close();
      assert.equal(fs.existsSync(srv.path), false, 'close() removes the socket file');
    } finally {
      process.umask(old);
    }
  });

  it('refuses a client of another user by its peer credentials even when the mode would let it in', async () => {
    const { srv } = await serve();
    fs.chmodSync(tmp, 0o755);
    fs.chmodSync(srv.path, 0o666);
    const client = `const c = require('net').connect(${JSON.stringify(srv.path)});
      let out = ''; c.on('data', (d) => (out += d)); c.on('error', (e) => console.log('error ' + e.code));
      c.on('close', () => console.log(out.trim())); c.write('{"cmd":"status"}\\n');`;
    // Asynchronous: the server under test runs on this process's event loop.
    const out = await new Promise<string>((resolve, reject) => {
      execFile(
        'setpriv',
        ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '-e', client],
        { encoding: 'utf8', timeout: 10000 },
        (err, stdout) => (err ? reject(err) : resolve(stdout)),
      );
    });
    assert.deepEqual(JSON.parse(out), {
      ok: false,
      code: 'forbidden',
      error: 'the control socket is for root only',
    });
    const root = await exchange(srv.path, '{"cmd":"status"}\n', { want: 1 });
    assert.equal(root.lines[0]?.ok, true, 'root is still served');
    await srv.close();
  });

  it('answers pipelined requests in order on one connection, then closes after a half-close', async () => {
    const { srv } = await serve();
    const reqs = ['{"cmd":"status"}', '{"cmd":"demote","group":"web"}', '{"cmd":"reset","group":"web"}'];
    const r = await exchange(srv.path, reqs.join('\n') + '\n', { end: true });
    assert.equal(r.closed, true);
    assert.equal(r.lines.length, 3);
    assert.ok(r.lines[0].ok && 'groups' in r.lines[0]);
    assert.ok(r.lines[1].ok && 'group' in r.lines[1] && r.lines[1].group.override === 'demote');
    assert.ok(r.lines[2].ok && 'group' in r.lines[2] && r.lines[2].group.override === 'none');
    await srv.close();
  });

  it('tells the daemon once each answer is handed to the kernel (ucarpctl restart execs after it)', async () => {
    const seen: string[] = [];
    const { srv } = await serve({
      answered: (req, res) => seen.push(`${req.cmd} ${res.ok}`),
    });
    const r = await request(srv.path, { cmd: 'restart' });
    assert.ok(r.ok && 'restarting' in r);
    // The write callback and the client's read race within this one process.
    await waitFor(() => seen.length === 1, 2000, 'the restart answer reported');
    assert.deepEqual(seen, ['restart true']);
    await request(srv.path, { cmd: 'demote', group: 'nope' }).catch(() => undefined);
    await waitFor(() => seen.length === 2, 2000, 'the demote answer reported');
    assert.deepEqual(seen, ['restart true', 'demote false']);
    await srv.close();
  });

  it('answers a last request sent without newline before a half-close', async () => {
    const { srv } = await serve();
    const r = await exchange(srv.path, '{"cmd":"status"}', { end: true });
    assert.equal(r.lines.length, 1);
    assert.equal(r.lines[0].ok, true);
    await srv.close();
  });

  it('answers invalid JSON, unknown commands and unknown groups with errors and keeps the connection', async () => {
    const { srv } = await serve();
    const r = await exchange(
      srv.path,
      'not json\n{"cmd":"explode"}\n{"cmd":"demote","group":"nope"}\n\n{"cmd":"status"}\n',
      { want: 4 },
    );
    assert.equal(r.closed, false);
    assert.deepEqual(
      r.lines.map((l) => (l.ok ? 'ok' : l.code)),
      ['bad-request', 'unknown-command', 'unknown-group', 'ok'],
    );
    await srv.close();
  });

  it('survives random bytes', async () => {
    const { srv } = await serve();
    for (let i = 0; i < 5; i++) {
      const junk = randomBytes(32 * 1024);
      const r = await exchange(srv.path, junk, { end: true });
      assert.equal(r.closed, true);
      for (const l of r.lines) assert.equal(l.ok, false);
    }
    await stillAnswers(srv.path);
    await srv.close();
  });

  it('refuses a 1 MiB line with one error and closes, without waiting for its end', async () => {
    const { srv } = await serve();
    const r = await exchange(srv.path, Buffer.alloc(1 << 20, 0x7b));
    assert.equal(r.closed, true);
    assert.equal(r.lines.length, 1);
    assert.ok(!r.lines[0].ok);
    assert.equal(r.lines[0].code, 'too-long');
    assert.match(r.lines[0].error, /longer than 65536 bytes/);
    await stillAnswers(srv.path);
    await srv.close();
  });

  it('closes idle connections', async () => {
    const { srv } = await serve({ idleTimeoutMs: 300 });
    const idle = await exchange(srv.path, '');
    assert.equal(idle.closed, true);
    await stillAnswers(srv.path);
    await srv.close();
  });

  it('drops a client that never reads its answers; others are served meanwhile', async () => {
    const { srv } = await serve({ idleTimeoutMs: 60_000, maxUnreadBytes: 64 * 1024 });
    // A client that pipelines status requests and never reads: the kernel buffers fill,
    // then the server's own buffer passes the cap and it is dropped.
    const hog = net.connect(srv.path);
    hog.pause();
    let hogClosed = false;
    hog.on('close', () => (hogClosed = true));
    hog.on('error', () => undefined);
    const line = '{"cmd":"status"}\n';
    hog.write(line.repeat(20000));
    await stillAnswers(srv.path);
    const end = Date.now() + 10_000;
    while (!hogClosed && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    assert.equal(hogClosed, true, 'the non-reading client was disconnected');
    await stillAnswers(srv.path);
    await srv.close();
  });

  it('answers an internal error when the handler throws', async () => {
    const p = sockPath();
    const srv = await ControlServer.open({
      path: p,
      log,
      handle: async () => {
        throw new Error('boom');
      },
    });
    const r = await request(p, { cmd: 'status' });
    assert.deepEqual(r, { ok: false, code: 'internal', error: 'boom' });
    await srv.close();
  });

  it('replaces a stale socket nobody answers on', async () => {
    const p = sockPath();
    fs.mkdirSync(path.dirname(p), { recursive: true });
    await staleSocket(p);
    assert.ok(fs.statSync(p).isSocket());
    assert.equal(await socketAnswers(p), false);
    const { srv } = await serve({ path: p });
    await stillAnswers(p);
    await srv.close();
  });

  it('refuses to start when another daemon answers, and leaves its socket alone', async () => {
    const { srv } = await serve();
    await assert.rejects(
      serve({ path: srv.path }),
      new RegExp(`another ucarp daemon is running \\(its control socket ${srv.path} answers\\)`),
    );
    await stillAnswers(srv.path);
    await srv.close();
  });

  it('refuses to replace something that is not a socket', async () => {
    const p = sockPath();
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.writeFileSync(p, 'precious');
    await assert.rejects(serve({ path: p }), /exists and is not a socket/);
    assert.equal(fs.readFileSync(p, 'utf8'), 'precious');
  });

  it('close() drops open connections', async () => {
    const { srv } = await serve();
    const c = net.connect(srv.path);
    const closed = new Promise((r) => c.on('close', r));
    c.on('error', () => undefined);
    await new Promise((r) => c.on('connect', r));
    await srv.close();
    await closed;
    assert.equal(fs.existsSync(srv.path), false);
  });
});

/** Milliseconds a status request takes to be answered, or throws (e.g. no answer in 1 s). */
async function timedStatus(p: string): Promise<number> {
  const t0 = performance.now();
  const r = await request(p, { cmd: 'status' }, 1000);
  const ms = performance.now() - t0;
  assert.ok(r.ok && 'groups' in r, `answered: ${JSON.stringify(r)}`);
  return ms;
}

/** `p`, or a rejection once `ms` passed. */
async function within<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`still open after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Resolves when the server closed `c`, with the time since `t0` and what it sent. */
function closedAfter(c: net.Socket, t0: number): Promise<{ ms: number; text: string }> {
  let text = '';
  c.on('data', (d: Buffer) => (text += d.toString()));
  c.on('error', () => undefined);
  return new Promise((resolve) => c.on('close', () => resolve({ ms: performance.now() - t0, text })));
}

describe('control server under a connection flood', { timeout: 60_000 }, () => {
  it('keeps its limits in one place', () => {
    assert.equal(CONTROL_LIMITS.requestDeadlineMs, 2000);
    assert.equal(CONTROL_LIMITS.maxConnections, 64);
    assert.ok(CONTROL_LIMITS.requestDeadlineMs < CONTROL_LIMITS.idleTimeoutMs);
  });

  it('answers status within 1 s while 64 clients each send a byte every 5 s', async (t) => {
    const { srv } = await serve();
    const attackers = Array.from({ length: 64 }, () => new Trickler(srv.path, 5000));
    try {
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(
        attackers.reduce((n, a) => n + a.connects, 0),
        64,
      );
      const latencies: number[] = [];
      // Over three request deadlines, while the attackers are dropped and reconnect.
      const end = performance.now() + 6500;
      while (performance.now() < end) {
        latencies.push(await timedStatus(srv.path));
        await new Promise((r) => setTimeout(r, 250));
      }
      const max = Math.max(...latencies);
      t.diagnostic(`${latencies.length} status requests under attack, slowest ${max.toFixed(1)} ms`);
      assert.ok(max < 1000, `slowest answer ${max} ms`);
      const drops = attackers.reduce((n, a) => n + a.drops, 0);
      assert.ok(drops >= 64, `every attacker was dropped at least once (${drops} drops)`);
    } finally {
      for (const a of attackers) a.stop();
      await srv.close();
    }
  });

  it('answers status within 1 s while 200 connections that send nothing are held open', async (t) => {
    const { srv } = await serve();
    const idle: net.Socket[] = [];
    try {
      for (let i = 0; i < 200; i++) {
        const c = net.connect(srv.path);
        c.on('error', () => undefined);
        idle.push(c);
      }
      await Promise.all(idle.map((c) => new Promise((r) => (c.connecting ? c.once('connect', r) : r(null)))));
      const ms = await timedStatus(srv.path);
      t.diagnostic(`status answered in ${ms.toFixed(1)} ms past 200 idle connections`);
      assert.ok(ms < 1000);
    } finally {
      for (const c of idle) c.destroy();
      await srv.close();
    }
  });

  it('closes a client that trickles bytes once the request deadline passes, counted from connect', async () => {
    const { srv } = await serve();
    const t0 = performance.now();
    const c = net.connect(srv.path);
    const closed = closedAfter(c, t0);
    c.on('connect', () => c.write('{"cmd":'));
    const timer = setInterval(() => c.write(' '), 200);
    try {
      const { ms, text } = await within(closed, 5000);
      assert.ok(ms >= 1900 && ms < 3000, `closed after ${ms} ms`);
      assert.deepEqual(JSON.parse(text), {
        ok: false,
        code: 'bad-request',
        error: 'no complete request within 2000 ms',
      });
    } finally {
      clearInterval(timer);
      c.destroy();
      await srv.close();
    }
  });

  it('does not let blank lines stand for requests', async () => {
    const { srv } = await serve({ requestDeadlineMs: 500 });
    const t0 = performance.now();
    const c = net.connect(srv.path);
    const closed = closedAfter(c, t0);
    const timer = setInterval(() => c.write('\n'), 100);
    try {
      const { ms } = await within(closed, 3000);
      assert.ok(ms >= 450 && ms < 1500, `closed after ${ms} ms`);
    } finally {
      clearInterval(timer);
      c.destroy();
      await srv.close();
    }
  });

  it('gives each later request on a connection its own deadline, from the previous answer', async () => {
    const { srv } = await serve({ requestDeadlineMs: 600 });
    const c = net.connect(srv.path);
    let text = '';
    c.on('data', (d: Buffer) => (text += d.toString()));
    await new Promise((r) => c.on('connect', r));
    try {
      for (let i = 1; i <= 3; i++) {
        await new Promise((r) => setTimeout(r, 400));
        c.write('{"cmd":"status"}\n');
        await waitForLines(() => text, i);
      }
      assert.equal(c.destroyed, false, 'open after 1.2 s, twice the deadline');
    } finally {
      c.destroy();
      await srv.close();
    }
  });

  it('at the cap, evicts the connection that has waited longest for a request, not one being answered', async () => {
    let release: () => void = () => undefined;
    const target = new FakeTarget([new FakeGroup('web', 10)]);
    const p = sockPath();
    const srv = await ControlServer.open({
      path: p,
      log,
      maxConnections: 4,
      handle: (req) =>
        req.cmd === 'reload'
          ? new Promise((resolve) => (release = () => resolve({ ok: false, code: 'internal', error: 'x' })))
          : handleRequest(target, req),
    });
    const open = async (data?: string) => {
      const c = net.connect(p);
      const state = { closed: false, text: '' };
      c.on('close', () => (state.closed = true));
      c.on('data', (d: Buffer) => (state.text += d.toString()));
      c.on('error', () => undefined);
      await new Promise((r) => c.on('connect', r));
      if (data) c.write(data);
      await new Promise((r) => setTimeout(r, 50));
      return { c, state };
    };
    try {
      const busy = await open('{"cmd":"reload"}\n');
      const oldest = await open();
      const older = await open('{"cmd":');
      const newer = await open();
      const fresh = await open('{"cmd":"status"}\n');
      await waitForLines(() => fresh.state.text, 1);
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(oldest.state.closed, true, 'the longest-waiting connection was evicted');
      assert.equal(busy.state.closed, false, 'the one being answered was kept');
      assert.equal(older.state.closed, false);
      assert.equal(newer.state.closed, false);
      release();
      await waitForLines(() => busy.state.text, 1);
      for (const x of [busy, oldest, older, newer, fresh]) x.c.destroy();
    } finally {
      release();
      await srv.close();
    }
  });
});

async function waitForLines(text: () => string, n: number, timeoutMs = 3000): Promise<void> {
  const end = performance.now() + timeoutMs;
  while (text().split('\n').length - 1 < n) {
    if (performance.now() > end) throw new Error(`no ${n} answer(s) within ${timeoutMs} ms: ${text()}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('control client', () => {
  it('says what it found: no socket, a stale socket nobody listens on, or not a socket', async () => {
    const rejects = async (p: string, kind: string, message: string) =>
      assert.rejects(request(p, { cmd: 'status' }), (e: unknown) => {
        assert.ok(e instanceof ControlClientError);
        assert.deepEqual([e.kind, e.message], [kind, message]);
        return true;
      });
    const noSocket = (p: string) =>
      `no socket at ${p} (is the ucarp daemon running? If control.socket was changed, ` +
      'the daemon keeps the path it started with until it is restarted)';

    const missing = path.join(tmp, 'none', 'control.sock');
    await rejects(missing, 'not-running', noSocket(missing));
    const file = path.join(tmp, 'a-file');
    fs.writeFileSync(file, '');
    const underFile = path.join(file, 'control.sock');
    await rejects(underFile, 'not-running', noSocket(underFile));

    const stale = sockPath();
    fs.mkdirSync(path.dirname(stale), { recursive: true });
    await staleSocket(stale);
    await rejects(
      stale,
      'not-running',
      `stale socket at ${stale}: nobody is listening (the ucarp daemon is not running, or it crashed)`,
    );

    await rejects(file, 'io', `${file} is not a socket (check control.socket or --socket)`);
  });

  it('reports a server that closes without answering, and one that does not answer in time', async () => {
    const p = sockPath();
    fs.mkdirSync(path.dirname(p), { recursive: true });
    const held: net.Socket[] = [];
    let mode: 'close' | 'hold' = 'close';
    const srv = net.createServer((c) => (mode === 'close' ? c.destroy() : held.push(c))).listen(p);
    await new Promise((r) => srv.once('listening', r));
    await assert.rejects(request(p, { cmd: 'status' }), { kind: 'protocol' });
    mode = 'hold';
    await assert.rejects(request(p, { cmd: 'status' }, 200), { kind: 'timeout' });
    for (const c of held) c.destroy();
    await new Promise((r) => srv.close(r));
  });
});

/** One of each event shape, as the daemon publishes them (src/runtime/events.ts). */

/** A raw client of the event stream: every line it got, and whether the server closed it. */
class Follower {
  readonly sock: net.Socket;
  text = '';
  closed = false;
  /** The server ended its side cleanly (EOF) rather than resetting. */
  gotEnd = false;

  constructor(p: string, request = '{"cmd":"events"}\n') {
    this.sock = net.connect(p);
    this.sock.on('connect', () => this.sock.write(request));
    this.sock.on('data', (d: Buffer) => (this.text += d.toString()));
    this.sock.on('end', () => (this.gotEnd = true));
    this.sock.on('close', () => (this.closed = true));
    this.sock.on('error', () => undefined);
  }

  get lines(): Record<string, unknown>[] {
    return this.text
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  }

  /** Resolves once the subscription is confirmed. */
  async subscribed(): Promise<void> {
    await waitForLines(() => this.text, 1);
    assert.deepEqual(this.lines[0], { ok: true, subscribed: true });
  }
}

async function until(cond: () => boolean, what: string, timeoutMs = 3000): Promise<void> {
  const end = performance.now() + timeoutMs;
  while (!cond()) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A real garbage collection, so that heap figures compare what is live, not what is pending. */
function gc(): void {
  v8.setFlagsFromString('--expose-gc');
  (vm.runInNewContext('gc') as () => void)();
}

function liveBytes(): number {
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.external + m.arrayBuffers;
}

describe('control server event stream', { timeout: 60_000 }, () => {
  it('confirms the subscription, then streams every event in the order published', async () => {
    const bus = new EventBus();
    const { srv } = await serve({ events: bus });
    const f = new Follower(srv.path);
    try {
      await f.subscribed();
      const published: EventLine[] = [];
      bus.on('event', (e) => published.push(e));
      for (let i = 0; i < 200; i++) bus.publish({ ...SAMPLE_EVENTS[i % SAMPLE_EVENTS.length] });
      await waitForLines(() => f.text, 201);
      assert.deepEqual(f.lines.slice(1), JSON.parse(JSON.stringify(published)));
      assert.deepEqual(Object.keys(f.lines[1]), [
        'type',
        'group',
        'vhid',
        'interface',
        'from',
        'to',
        'reason',
        'time',
      ]);
      assert.match(String(f.lines[1].time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    } finally {
      f.sock.destroy();
      await srv.close();
    }
  });

  it('takes no bus listener until the first subscriber, and removes it when the last one closes', async () => {
    const bus = new EventBus();
    const { srv } = await serve({ events: bus });
    assert.equal(bus.listenerCount('event'), 0);
    const a = new Follower(srv.path);
    const b = new Follower(srv.path);
    try {
      await a.subscribed();
      await b.subscribed();
      assert.equal(srv.subscriberCount, 2);
      assert.equal(bus.listenerCount('event'), 1, 'one listener for every subscriber');
      // No event is ever written: the close must be noticed from the client's side alone.
      a.sock.destroy();
      await until(() => srv.subscriberCount === 1, 'the first subscriber to leave');
      assert.equal(bus.listenerCount('event'), 1);
      // A half-close ends the stream too: the server ends its side and lets go.
      b.sock.end();
      await until(() => b.closed, 'the server to end the half-closed stream');
      assert.equal(b.gotEnd, true);
      assert.equal(srv.subscriberCount, 0);
      assert.equal(bus.listenerCount('event'), 0, 'no listener left on the bus');
      // A client that goes with events unread resets the connection instead of ending it.
      const c = new Follower(srv.path);
      await c.subscribed();
      c.sock.pause();
      // More than Node reads ahead for a paused socket (16 KiB), so that the kernel holds some.
      const output = 'x'.repeat(1000);
      for (let i = 0; i < 100; i++)
        bus.publish({ type: 'tracker', tracker: 't', failed: true, value: i, output });
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(bus.listenerCount('event'), 1);
      c.sock.destroy();
      await until(() => srv.subscriberCount === 0, 'the resetting subscriber to leave');
      assert.equal(bus.listenerCount('event'), 0);
      // Many subscribers coming and going leave nothing behind either.
      const many = Array.from({ length: 20 }, () => new Follower(srv.path));
      await Promise.all(many.map((f) => f.subscribed()));
      assert.equal(bus.listenerCount('event'), 1);
      for (const f of many) f.sock.destroy();
      await until(() => srv.subscriberCount === 0, 'every subscriber to leave');
      assert.equal(bus.listenerCount('event'), 0);
    } finally {
      a.sock.destroy();
      b.sock.destroy();
      await srv.close();
    }
  });

  it('drops a subscriber that stops reading once its backlog passes the bound; a reader keeps up', async () => {
    const bus = new EventBus();
    const fl = fakeLog();
    const bound = 64 * 1024;
    const { srv } = await serve({ events: bus, log: fl.log, maxEventBacklogBytes: bound });
    const slow = new Follower(srv.path);
    const reader = new Follower(srv.path);
    let readerEvents = 0;
    try {
      await slow.subscribed();
      await reader.subscribed();
      reader.text = '';
      reader.sock.on('data', () => {
        // Count lines without keeping 16 MiB of text around in the test itself.
        readerEvents += reader.text.split('\n').length - 1;
        reader.text = reader.text.slice(reader.text.lastIndexOf('\n') + 1);
      });
      slow.sock.pause();
      const output = 'x'.repeat(1000);
      const before = liveBytes();
      // 16 MiB in chunks smaller than the bound, with the event loop turning in between as it
      // does in the daemon, so that the reading client can keep up.
      const total = 16 * 1024;
      for (let i = 0; i < total; i += 16) {
        for (let j = 0; j < 16; j++)
          bus.publish({ type: 'tracker', tracker: 't', failed: true, value: i + j, output });
        await new Promise((r) => setImmediate(r));
      }
      const grown = liveBytes() - before;
      assert.ok(grown < 4 << 20, `live memory grew by ${grown} bytes while 16 MiB were published`);
      assert.equal(srv.subscriberCount, 1, 'the slow subscriber was dropped');
      // What it finds when it reads at last: what the kernel and the bound held, then the end.
      slow.sock.resume();
      await until(() => slow.closed, 'the slow subscriber to see the close');
      const missed = total - (slow.text.split('\n').length - 2);
      assert.ok(missed > total / 2, `the slow subscriber got only the start (missed ${missed})`);
      await until(
        () => readerEvents === total,
        `the reader to get all ${total} events (got ${readerEvents})`,
      );
      assert.equal(reader.closed, false, 'the reading subscriber is kept');
      assert.equal(srv.subscriberCount, 1);
      assert.deepEqual(fl.at('warn'), [
        `control socket: dropped an event subscriber that left more than ${bound} bytes unread`,
      ]);
    } finally {
      slow.sock.destroy();
      reader.sock.destroy();
      await srv.close();
    }
    assert.equal(bus.listenerCount('event'), 0);
  });

  it('exempts subscribers from the request deadline and the idle timeout', async () => {
    const bus = new EventBus();
    const { srv } = await serve({ events: bus, requestDeadlineMs: 300, idleTimeoutMs: 500 });
    const f = new Follower(srv.path);
    const idle = net.connect(srv.path);
    let idleClosed = false;
    idle.on('data', () => undefined);
    idle.on('close', () => (idleClosed = true));
    idle.on('error', () => undefined);
    try {
      await f.subscribed();
      await new Promise((r) => setTimeout(r, 1500));
      assert.equal(idleClosed, true, 'a connection that sends nothing is still closed');
      assert.equal(f.closed, false, 'a quiet stream is kept past the deadline and the idle timeout');
      bus.publish(SAMPLE_EVENTS[0]);
      await waitForLines(() => f.text, 2);
      assert.equal(f.lines[1].type, 'transition');
    } finally {
      f.sock.destroy();
      idle.destroy();
      await srv.close();
    }
  });

  it('ignores whatever a subscriber sends afterwards, requests included', async () => {
    const bus = new EventBus();
    const { srv, target } = await serve({ events: bus });
    // Pipelined behind the subscription, and sent later.
    const f = new Follower(srv.path, '{"cmd":"events"}\n{"cmd":"demote","group":"web"}\n');
    try {
      await f.subscribed();
      f.sock.write('{"cmd":"status"}\nnot json\n');
      f.sock.write(Buffer.alloc(256 * 1024, 0x7b));
      await new Promise((r) => setTimeout(r, 100));
      bus.publish(SAMPLE_EVENTS[4]);
      await waitForLines(() => f.text, 2);
      await new Promise((r) => setTimeout(r, 50));
      assert.deepEqual(
        f.lines.map((l) => l.type ?? l.ok),
        [true, 'reload'],
      );
      assert.equal(f.closed, false);
      assert.equal((target.byName.get('web') as FakeGroup).s.override, 'none', 'the demote was not run');
    } finally {
      f.sock.destroy();
      await srv.close();
    }
  });

  it('answers requests before the subscription first, in order', async () => {
    const bus = new EventBus();
    const { srv } = await serve({ events: bus });
    const f = new Follower(srv.path, '{"cmd":"status"}\n{"cmd":"events"}\n');
    try {
      await waitForLines(() => f.text, 2);
      assert.equal(f.lines[0].ok, true);
      assert.ok('groups' in f.lines[0]);
      assert.deepEqual(f.lines[1], { ok: true, subscribed: true });
      assert.equal(srv.subscriberCount, 1);
    } finally {
      f.sock.destroy();
      await srv.close();
    }
  });

  it('without an event bus, refuses events and keeps answering on the connection', async () => {
    const { srv } = await serve();
    const r = await exchange(srv.path, '{"cmd":"events"}\n{"cmd":"status"}\n', { want: 2 });
    assert.deepEqual(r.lines[0], {
      ok: false,
      code: 'unknown-command',
      error: 'this control socket does not stream events',
    });
    assert.equal(r.lines[1].ok, true);
    await srv.close();
  });

  it('ends streams cleanly on close: events already sent arrive, then the end', async () => {
    const bus = new EventBus();
    const { srv } = await serve({ events: bus });
    const f = new Follower(srv.path);
    try {
      await f.subscribed();
      for (const e of SAMPLE_EVENTS) bus.publish(e);
      const t0 = performance.now();
      await srv.close();
      assert.ok(performance.now() - t0 < 500, 'a reading subscriber does not hold the close up');
      await until(() => f.closed, 'the stream to end');
      assert.equal(f.gotEnd, true, 'ended, not reset');
      assert.deepEqual(
        f.lines.slice(1).map((l) => l.type),
        SAMPLE_EVENTS.map((e) => e.type),
      );
      assert.equal(bus.listenerCount('event'), 0);
    } finally {
      f.sock.destroy();
    }
  });

  it('at the cap, evicts request connections before subscribers, then the oldest subscriber', async () => {
    const bus = new EventBus();
    const fl = fakeLog();
    let release: () => void = () => undefined;
    const target = new FakeTarget([new FakeGroup('web', 10)]);
    const srv = await ControlServer.open({
      path: sockPath(),
      log: fl.log,
      events: bus,
      maxConnections: 3,
      handle: (req) =>
        req.cmd === 'reload'
          ? new Promise((resolve) => (release = () => resolve({ ok: false, code: 'internal', error: 'x' })))
          : handleRequest(target, req),
    });
    const settle = () => new Promise((r) => setTimeout(r, 50));
    const client = async (data: string) => {
      const f = new Follower(srv.path, data);
      await new Promise((r) => f.sock.once('connect', r));
      await settle();
      return f;
    };
    /** A status request at the cap: answered, so it got in. */
    const newcomer = async () => {
      const f = await client('{"cmd":"status"}\n');
      await waitForLines(() => f.text, 1);
      f.sock.destroy();
      await settle();
    };
    const open: Follower[] = [];
    try {
      const sub1 = await client('{"cmd":"events"}\n');
      const sub2 = await client('{"cmd":"events"}\n');
      const idle = await client('');
      open.push(sub1, sub2, idle);
      await newcomer();
      assert.equal(idle.closed, true, 'the idle request connection went first');
      assert.deepEqual([sub1.closed, sub2.closed], [false, false]);

      const busy = await client('{"cmd":"reload"}\n');
      open.push(busy);
      await newcomer();
      assert.equal(busy.closed, true, 'a connection being answered goes before any subscriber');
      assert.deepEqual([sub1.closed, sub2.closed], [false, false]);
      assert.equal(fl.at('warn').length, 1, 'evictions of request connections: one rate-limited line');

      const sub3 = await client('{"cmd":"events"}\n');
      open.push(sub3);
      assert.equal(srv.subscriberCount, 3);
      await newcomer();
      assert.deepEqual(
        [sub1.closed, sub2.closed, sub3.closed],
        [true, false, false],
        'with only subscribers left, the oldest goes',
      );
      assert.equal(srv.subscriberCount, 2);
      assert.match(
        fl.at('warn')[1],
        /3 connections open, closed the oldest event subscriber to accept a new one/,
      );
      bus.publish(SAMPLE_EVENTS[0]);
      for (const f of [sub2, sub3]) {
        await waitForLines(() => f.text, 2);
        assert.equal(f.lines[1].type, 'transition', 'the remaining subscribers still get events');
      }
    } finally {
      release();
      for (const f of open) f.sock.destroy();
      await srv.close();
    }
  });
});

describe('control client subscribe()', () => {
  it('delivers each event with its line as received, and resolves when the daemon ends the stream', async () => {
    const bus = new EventBus();
    const { srv } = await serve({ events: bus });
    const got: [EventLine, string][] = [];
    const done = subscribe(srv.path, (ev, line) => got.push([ev, line]));
    await until(() => srv.subscriberCount === 1, 'the subscription');
    for (const e of SAMPLE_EVENTS) bus.publish(e);
    await until(() => got.length === SAMPLE_EVENTS.length, 'the events');
    await srv.close();
    await within(done, 2000);
    for (const [ev, line] of got) assert.deepEqual(JSON.parse(line), ev);
    assert.deepEqual(
      got.map(([ev]) => ev.type),
      SAMPLE_EVENTS.map((e) => e.type),
    );
  });

  it('resolves when aborted and lets the server unsubscribe', async () => {
    const bus = new EventBus();
    const { srv } = await serve({ events: bus });
    const ac = new AbortController();
    const done = subscribe(srv.path, () => undefined, { signal: ac.signal });
    await until(() => srv.subscriberCount === 1, 'the subscription');
    ac.abort();
    await within(done, 1000);
    await until(() => bus.listenerCount('event') === 0, 'the server to let go of the bus');
    await srv.close();
  });

  it('rejects when the daemon refuses, cannot be reached, or never confirms', async () => {
    const { srv } = await serve();
    await assert.rejects(
      subscribe(srv.path, () => undefined),
      (e: unknown) => {
        assert.ok(e instanceof ControlClientError);
        assert.equal(e.kind, 'refused');
        assert.equal(e.response?.code, 'unknown-command');
        return true;
      },
    );
    await srv.close();
    await assert.rejects(
      subscribe(path.join(tmp, 'nobody', 'c.sock'), () => undefined),
      {
        kind: 'not-running',
      },
    );
    const p = sockPath();
    fs.mkdirSync(path.dirname(p), { recursive: true });
    const held: net.Socket[] = [];
    const mute = net.createServer((c) => held.push(c)).listen(p);
    await new Promise((r) => mute.once('listening', r));
    await assert.rejects(
      subscribe(p, () => undefined, { timeoutMs: 200 }),
      { kind: 'timeout' },
    );
    for (const c of held) c.destroy();
    await new Promise((r) => mute.close(r));
  });
});
