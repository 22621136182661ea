import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  ProcessTree,
  RUN_TOKEN_VAR,
  becomeSubreaper,
  parseStat,
  reapAdopted,
  trackSpawned,
  untrackSpawned,
} from '../../src/hooks/process-tree';
import { native } from '../../src/native';

let tmp = '';
before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ucarp-ptree-test-'));
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function stat(pid: number): string | undefined {
  try {
    return fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
}

async function waitUntil(cond: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
  return true;
}

async function readPid(file: string): Promise<number> {
  assert.ok(
    await waitUntil(() => fs.existsSync(file) && fs.readFileSync(file, 'utf8').trim() !== '', 5000),
    file,
  );
  return Number(fs.readFileSync(file, 'utf8'));
}

describe('parseStat', () => {
  it('reads the fields after a command name holding spaces and parentheses', () => {
    const fields = ['S', '10', '20', '30', '0', '-1', '4194560'];
    const tail = [...fields, ...Array.from({ length: 12 }, () => '0'), '98765', '0', '0'];
    const p = parseStat(`1234 (a) b (c)) ${tail.join(' ')}\n`);
    assert.deepEqual(p, { pid: 1234, state: 'S', ppid: 10, pgid: 20, sid: 30, start: 98765 });
  });

  it('matches /proc for this process', () => {
    const p = parseStat(fs.readFileSync('/proc/self/stat', 'utf8'));
    assert.equal(p?.pid, process.pid);
    assert.equal(p?.ppid, process.ppid);
  });

  it('refuses what is not a stat line', () => {
    assert.equal(parseStat(''), undefined);
    assert.equal(parseStat('12 (x) S 1'), undefined);
  });
});

describe('subreaper and reaping', () => {
  it('marks this process as child subreaper', () => {
    assert.equal(becomeSubreaper(), true);
    assert.equal(native().isChildSubreaper(), true);
  });

  it("adopts a script's orphan that left the session, and reaps it when it dies", async () => {
    becomeSubreaper();
    const pidfile = path.join(tmp, 'orphan');
    // The intermediate shell exits at once: the setsid'd sleep is re-parented to us.
    const c = spawn('sh', ['-c', `setsid sh -c 'echo $$ > ${pidfile}; exec sleep 30' & exit 0`], {
      detached: true,
      stdio: 'ignore',
    });
    trackSpawned(c.pid as number);
    await new Promise((r) => c.on('exit', r));
    untrackSpawned(c.pid as number);
    const orphan = await readPid(pidfile);
    assert.ok(
      await waitUntil(() => parseStat(stat(orphan) ?? '')?.ppid === process.pid, 3000),
      'not adopted',
    );
    process.kill(orphan, 'SIGKILL');
    // SIGCHLD makes the reaper run; nothing else would reap it.
    assert.ok(await waitUntil(() => stat(orphan) === undefined, 3000), 'left as a zombie');
  });

  it('never reaps a child that libuv spawned: its exit status still arrives', async () => {
    becomeSubreaper();
    for (const detached of [false, true]) {
      const c = spawn('sh', ['-c', 'exit 7'], { detached, stdio: 'ignore' });
      const pid = c.pid as number;
      if (detached) trackSpawned(pid);
      const exited = new Promise<number | null>((r) => c.on('exit', (code) => r(code)));
      // Hold the event loop until the child is a zombie, so libuv has not reaped it yet.
      const until = Date.now() + 5000;
      while (!/^\d+ \(.*\) Z /.test(stat(pid) ?? '') && Date.now() < until);
      assert.equal(reapAdopted(), 0);
      assert.equal(await exited, 7);
      if (detached) untrackSpawned(pid);
    }
  });
});

describe('ProcessTree', () => {
  it('finds and kills members that left the group, including one whose parent is gone', async () => {
    becomeSubreaper();
    const token = `test.${process.pid}`;
    const base = path.join(tmp, 'tree');
    const script = [
      `setsid sh -c 'echo $$ > ${base}.gc; exec sleep 30' &`,
      `sh -c "setsid sh -c 'echo \\$\\$ > ${base}.daemon; exec sleep 30' & exit 0"`,
      'exec sleep 30',
    ].join('\n');
    const c = spawn('sh', ['-c', script], {
      detached: true,
      stdio: 'ignore',
      env: { ...process.env, [RUN_TOKEN_VAR]: token },
    });
    const leader = c.pid as number;
    trackSpawned(leader);
    const tree = new ProcessTree(leader, token);
    c.on('exit', () => {
      untrackSpawned(leader);
      tree.leaderExited();
    });
    const gc = await readPid(`${base}.gc`);
    const daemon = await readPid(`${base}.daemon`);
    assert.ok(
      await waitUntil(() => parseStat(stat(daemon) ?? '')?.ppid === process.pid, 3000),
      'not adopted',
    );
    const members = (await tree.members()).map((p) => p.pid).sort();
    assert.deepEqual(members, [leader, gc, daemon].sort());

    const t0 = Date.now();
    await tree.kill(2000);
    assert.ok(Date.now() - t0 < 1500, `SIGTERM was enough, yet took ${Date.now() - t0} ms`);
    for (const pid of [leader, gc, daemon]) assert.equal(stat(pid), undefined, `${pid} remains`);
    assert.deepEqual(await tree.members(), []);
  });

  it('does not count an unrelated process of ours as a member', async () => {
    const other = spawn('sleep', ['30'], { detached: true, stdio: 'ignore' });
    try {
      const tree = new ProcessTree(other.pid as number, 'x');
      tree.leaderExited();
      // Once its leader has exited, a pid that shows up again is someone else.
      assert.deepEqual(await tree.members(), []);
    } finally {
      other.kill('SIGKILL');
    }
  });
});
