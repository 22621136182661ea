import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { SPAWNERS, spawnChild, type ChildEnd, type SpawnedChild } from '../../src/hooks/spawn-child';
import { SpawnError } from '../../src/errors';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ucarp-spawn-'));

function script(name: string, body: string, mode = 0o755): string {
  const file = path.join(tmp, name);
  fs.writeFileSync(file, `#!/bin/sh\n${body}\n`, { mode });
  return file;
}

function collect(stream: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  stream.on('data', (c: Buffer) => chunks.push(c));
  return new Promise((resolve) => stream.on('close', () => resolve(Buffer.concat(chunks).toString())));
}

async function run(child: SpawnedChild): Promise<{ end: ChildEnd; out: string; err: string }> {
  const [end, out, err] = await Promise.all([
    new Promise<ChildEnd>((resolve) => child.onEnd(resolve)),
    collect(child.stdout),
    collect(child.stderr),
  ]);
  return { end, out, err };
}

it('starts scripts with posix_spawn on this machine (Linux with pidfd_open)', async () => {
  const child = spawnChild('/bin/true', [], process.env);
  assert.equal(child.via, 'posix_spawn');
  assert.deepEqual((await run(child)).end, { code: 0, signal: null });
});

for (const [via, spawn] of Object.entries(SPAWNERS)) {
  describe(`through ${via}`, () => {
    it('reports the exit status and both outputs in full', async () => {
      const big = 300_000;
      const file = script(
        `status-${via}`,
        `head -c ${big} /dev/zero | tr '\\0' o; echo "to stderr $1" >&2; exit 7`,
      );
      const { end, out, err } = await run(spawn(file, ['arg one'], process.env));
      assert.deepEqual(end, { code: 7, signal: null });
      assert.equal(out.length, big);
      assert.equal(err, 'to stderr arg one\n');
    });

    it('reports the signal that killed it', async () => {
      const file = script(`killed-${via}`, 'kill -USR1 $$; sleep 5');
      assert.deepEqual((await run(spawn(file, [], process.env))).end, { code: null, signal: 'SIGUSR1' });
    });

    it('runs in a session of its own, stdin on /dev/null, default signals', async () => {
      const file = script(
        `context-${via}`,
        // The masks are read by the script's own process once it has exec'ed grep: read from
        // outside while bash runs a command, bash's mask briefly holds SIGCHLD (seen once).
        'readlink /proc/$$/fd/0; cut -d" " -f6 /proc/$$/stat; echo $$; exec grep -E "^(SigIgn|SigBlk)" /proc/self/status',
      );
      const { out } = await run(spawn(file, [], process.env));
      const [stdin, sid, pid, first, second] = out.trim().split('\n');
      const [sigBlk, sigIgn] = [first, second].sort();
      assert.equal(stdin, '/dev/null');
      // The daemon ignores SIGPIPE (Node does): the script must not inherit that, nor any other
      // standard signal's disposition. (glibc's posix_spawn leaves its two internal real-time
      // signals, 32 and 33, ignored; no program can use them through glibc.)
      const ignored = BigInt(`0x${sigIgn.split(/\s+/)[1]}`);
      assert.equal(ignored & 0x7fffffffn, 0n, sigIgn);
      assert.match(sigBlk, /^SigBlk:\s+0+$/);
      assert.equal(sid, pid);
    });

    it('passes exactly the environment it is given', async () => {
      const { out } = await run(spawn('/usr/bin/env', [], { ONLY: 'this', PATH: '/usr/bin:/bin' }));
      assert.deepEqual(out.trim().split('\n').sort(), ['ONLY=this', 'PATH=/usr/bin:/bin']);
    });

    it('searches PATH for a name without a slash', async () => {
      const { end } = await run(spawn('true', [], process.env));
      assert.deepEqual(end, { code: 0, signal: null });
    });
  });
}

it('through posix_spawn, inherits no descriptor beyond stdin, stdout and stderr', async () => {
  // ls itself opens the directory it lists as descriptor 3. (child_process.spawn passes on
  // whatever this process holds without close-on-exec.)
  const { out } = await run(SPAWNERS.posix_spawn('/bin/ls', ['/proc/self/fd'], process.env));
  assert.deepEqual(out.trim().split('\n'), ['0', '1', '2', '3']);
});

describe('a program that cannot run', () => {
  it('throws SpawnError ENOENT for a missing file, EACCES for a file that is not executable', () => {
    const missing = path.join(tmp, 'missing');
    assert.throws(
      () => SPAWNERS.posix_spawn(missing, [], process.env),
      (e: unknown) =>
        e instanceof SpawnError && e.errno === 'ENOENT' && e.message === `spawn ${missing} ENOENT`,
    );
    const plain = script('not-executable', 'exit 0', 0o644);
    assert.throws(
      () => spawnChild(plain, [], process.env),
      (e: unknown) => e instanceof SpawnError && e.errno === 'EACCES',
    );
  });

  it('refuses a NUL byte in the path or an argument', () => {
    assert.throws(() => spawnChild('/bin/true\0x', [], process.env), { code: 'ERR_INVALID_ARGUMENT' });
    assert.throws(() => spawnChild('/bin/true', ['a\0b'], process.env), { code: 'ERR_INVALID_ARGUMENT' });
  });
});
