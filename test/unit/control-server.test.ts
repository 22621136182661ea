import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import winston from 'winston';
import {
  CONTROL_LIMITS,
  ControlServer,
  socketAnswers,
  type ControlServerOptions,
} from '../../src/control/server';
import { handleRequest } from '../../src/control/commands';
import { request, ControlClientError } from '../../src/control/client';
import type { Response } from '../../src/control/protocol';
import { FakeGroup, FakeTarget, staleSocket } from '../fixtures/control-fake';
import { Trickler } from '../helpers/slowloris';

const log = winston.createLogger({ silent: true });
let tmp: string;
before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ucarp-control-'));
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

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
