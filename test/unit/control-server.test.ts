import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import winston from 'winston';
import { ControlServer, socketAnswers, type ControlServerOptions } from '../../src/control/server';
import { handleRequest } from '../../src/control/commands';
import { request, ControlClientError } from '../../src/control/client';
import type { Response } from '../../src/control/protocol';
import { FakeGroup, FakeTarget, staleSocket } from '../fixtures/control-fake';

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
