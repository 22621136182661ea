// `ucarpctl events` against real daemons: two hosts in network namespaces, the stream followed
// on the backup. Reloads show up as reload events; when the master's daemon is SIGKILLed, the
// backup's takeover shows up within its dead time (plus delivery); when the daemon stops, the
// stream ends and ucarpctl exits 0. The tests run in order on one pair.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { waitFor } from '../helpers/netns';
import { writeByRename, type TestGroup } from '../helpers/supervisor-proc';
import { OUR_UCARPCTL, Pair, deadTimeMs, type Node } from '../helpers/fault';
import type { EventLine } from '../../src/control/protocol';
import { TAKEOVER_EVENT } from '../fixtures/sample-events';
import { readLines } from '../helpers/lab-process';

const SKEW_H1 = 0;
const SKEW_H2 = 50;
/** Room for the event to travel from the daemon to ucarpctl and to this test, on a busy machine. */
const DELIVERY_MS = 1000;

function groups(advskew: number): TestGroup[] {
  return [{ name: 'web', vhid: 10, iface: 'eth0', addresses: ['192.0.2.100/24'], advskew }];
}

/** `ucarpctl events --json` inside a host, every line kept with the time it reached us. */
class EventsProc {
  readonly child: ChildProcess;
  readonly events: { at: number; ev: EventLine }[] = [];
  stderr = '';
  exitCode: number | null | undefined;

  constructor(node: Node) {
    this.child = node.lab.spawn(node.host, process.execPath, [
      OUR_UCARPCTL,
      '--socket',
      node.socket,
      'events',
      '--json',
    ]);
    readLines(this.child.stdout, (line) =>
      this.events.push({ at: Date.now(), ev: JSON.parse(line) as EventLine }),
    );
    this.child.stderr?.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.child.on('exit', (code) => (this.exitCode = code));
  }

  /** The first event from index `from` on that matches. */
  async find(
    pred: (ev: EventLine) => boolean,
    timeoutMs: number,
    what: string,
    from = 0,
  ): Promise<{ at: number; ev: EventLine }> {
    let hit: { at: number; ev: EventLine } | undefined;
    await waitFor(
      () =>
        (hit = this.events.slice(from).find((e) => pred(e.ev))) !== undefined || this.exitCode !== undefined,
      timeoutMs,
      `${what}; got ${JSON.stringify(this.events.map((e) => e.ev))}`,
    );
    if (!hit) throw new Error(`ucarpctl exited (${this.exitCode}) before ${what}: ${this.stderr}`);
    return hit;
  }

  async exit(timeoutMs = 5000): Promise<number | null> {
    await waitFor(() => this.exitCode !== undefined, timeoutMs, 'ucarpctl events to exit');
    return this.exitCode as number | null;
  }
}

describe('ucarpctl events on a two-host cluster', { timeout: 120_000 }, () => {
  const pair = new Pair('events');
  let stream: EventsProc;

  before(async () => {
    await pair.start(groups(SKEW_H1), groups(SKEW_H2), { web: 'MASTER' });
    await pair.n2.waitState('web', 'BACKUP');
    await waitFor(
      async () => (await pair.n2.group('web')).master?.address === pair.n1.host.ips[0],
      10_000,
      'h2 to hear h1 as master',
      100,
    );
  });

  after(async () => {
    stream?.child.kill('SIGKILL');
    await pair.after();
  });

  it('a reload on the backup shows up as a reload event with the line ucarpctl reload printed', async () => {
    stream = new EventsProc(pair.n2);
    // The stream says nothing until something happens: reload until one is seen, which also
    // proves the subscription is in place before the failover below.
    let printed = '';
    const seen = new Set<string>();
    await waitFor(
      async () => {
        const r = await pair.n2.ctl('reload');
        assert.equal(r.code, 0, r.stderr);
        printed = r.stdout.trimEnd();
        for (const e of stream.events) if (e.ev.type === 'reload') seen.add(e.ev.line);
        return seen.size > 0 || stream.exitCode !== undefined;
      },
      15_000,
      'a reload event',
      500,
    );
    const hit = await stream.find((e) => e.type === 'reload', 5000, 'a reload event');
    assert.deepEqual(
      { ...hit.ev, time: '' },
      { type: 'reload', ok: true, line: printed, time: '' },
      'the event carries the summary line ucarpctl reload printed',
    );
    assert.match(printed, /^reload \(ucarpctl\): added 0, removed 0, updated 0, restarted 0, unchanged 1$/);

    // A rejected file is a reload event too, with ok false.
    const from = stream.events.length;
    writeByRename(pair.n2.file, pair.n2.config().replace('vhid: 10', 'vhid: 300'));
    const bad = await pair.n2.ctl('reload');
    assert.equal(bad.code, 1);
    const rejected = await stream.find(
      (e) => e.type === 'reload' && !e.ok,
      5000,
      'a rejected reload event',
      from,
    );
    assert.match((rejected.ev as { line: string }).line, /^reload \(.+\) rejected: \d+ error\(s\)$/);
    writeByRename(pair.n2.file, pair.n2.config());
    assert.equal((await pair.n2.ctl('reload')).code, 0);
  });

  it('SIGKILL of the master: the stream shows BACKUP -> MASTER (master-down) within the dead time + 1 s', async (t) => {
    const from = stream.events.length;
    const t0 = Date.now();
    // By PID: this test started that process.
    pair.n1.proc.signal('SIGKILL');
    const bound = deadTimeMs(SKEW_H2) + DELIVERY_MS;
    const hit = await stream.find(
      (e) => e.type === 'transition' && e.to === 'MASTER',
      bound + 5000,
      'the takeover on h2',
      from,
    );
    const { time, ...ev } = hit.ev;
    assert.deepEqual(ev, TAKEOVER_EVENT);
    const ms = hit.at - t0;
    t.diagnostic(`takeover event ${ms} ms after the SIGKILL (bound ${bound} ms); daemon time ${time}`);
    assert.ok(ms <= bound, `takeover event arrived ${ms} ms after the SIGKILL, bound ${bound} ms`);
    assert.ok(Date.parse(time) >= t0, 'stamped after the kill');
    assert.equal((await pair.n2.group('web')).state, 'MASTER');
  });

  it('when the daemon stops, the stream ends and ucarpctl exits 0 with a note', async () => {
    assert.equal(stream.exitCode, undefined, 'still following');
    await pair.n2.stop();
    assert.equal(await stream.exit(), 0);
    assert.equal(
      stream.stderr,
      'ucarpctl: the daemon ended the event stream (it is stopping, or this reader fell too far behind)\n',
    );
  });
});
