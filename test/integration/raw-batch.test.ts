// The addon's raw sockets on real sockets between two lab hosts (src/net/raw-batch.ts through
// InterfaceSocket and Interface6Socket): what waits in a socket is read in a few recvmmsg()
// batches, in order, with one call into JavaScript per batch; what one turn queues leaves in
// sendmmsg() rounds, each packet's outcome told to its own sender. The agents run in
// test/fixtures/raw-batch-agent.ts.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { ChildProcess, execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { createInterface } from 'node:readline';
import { Host, Lab, waitFor } from '../helpers/netns';
import type { TransportStats } from '../../src/net/raw-batch';
import { SEND_BATCH } from '../../src/net/raw-batch';

const exec = promisify(execFile);
const AGENT = path.resolve(__dirname, '../fixtures/raw-batch-agent.js');
const WAIT_MS = 15000;
/** How long the receiver keeps its loop blocked while the senders send. */
const BLOCK_MS = 4000;

interface Got {
  src: string;
  index: number;
  hopLimit?: number;
  dst?: string;
}
interface RecvResult {
  ev: 'result';
  got: Got[];
  stats: TransportStats;
}
interface SendResult {
  ev: 'result';
  queuedBeforeClose: number;
  outcomes: (string | null)[];
  afterClose: string;
  stats: TransportStats;
}

/** Runs one agent and collects its JSON lines. */
class Agent {
  readonly lines: { ev: string }[] = [];
  exited = false;
  stderr = '';
  constructor(readonly child: ChildProcess) {
    child.stderr?.on('data', (d: Buffer) => (this.stderr += d.toString()));
    child.on('exit', () => (this.exited = true));
    createInterface({ input: child.stdout! }).on('line', (l) =>
      this.lines.push(JSON.parse(l) as { ev: string }),
    );
  }
  static start(lab: Lab, h: Host, args: string[]): Agent {
    return new Agent(lab.spawn(h, process.execPath, [AGENT, ...args]));
  }
  async event<T>(ev: string): Promise<T> {
    await waitFor(() => this.lines.some((l) => l.ev === ev), WAIT_MS, `${ev} (${this.stderr})`);
    return this.lines.find((l) => l.ev === ev) as T;
  }
  async exit(): Promise<void> {
    await waitFor(() => this.exited, WAIT_MS, `agent to exit by itself (${this.stderr})`);
  }
}

describe('raw sockets read and written in batches (two hosts)', () => {
  let lab: Lab;
  let h1: Host;
  let h2: Host;

  before(async () => {
    lab = await Lab.create({ hosts: 2, ipv6: true });
    [h1, h2] = lab.hosts;
  });
  after(async () => {
    await lab?.destroy();
  });

  it('300 IPv4 advertisements queued in one turn arrive in order, read in a few batches; own sources dropped', async () => {
    const own = '192.0.2.77';
    const recv = Agent.start(lab, h2, ['recv', '4', 'eth0', '224.0.0.18', own, '310', String(BLOCK_MS)]);
    await recv.event('ready');
    recv.child.stdin!.write('block\n');
    await recv.event('blocking');
    // While the receiver's loop is blocked: 300 from h1, then 10 claiming the receiver's source.
    const send = Agent.start(lab, h1, ['send', '4', 'eth0', h1.ips[0], '300', '224.0.0.18']);
    const sent = await send.event<SendResult>('result');
    const spoof = Agent.start(lab, h1, ['send', '4', 'eth0', own, '10', '224.0.0.18']);
    await spoof.event('result');
    const r = await recv.event<RecvResult>('result');

    // Nobody hears before the end of the turn; then every packet left, in one sendmmsg() round
    // per 64 (SEND_BATCH), and the socket queued nothing once closed.
    assert.equal(sent.queuedBeforeClose, 0);
    assert.deepEqual(sent.outcomes, new Array<null>(300).fill(null));
    assert.equal(sent.stats.sent, 300);
    assert.equal(sent.stats.sendBatches, Math.ceil(300 / SEND_BATCH));
    assert.equal(sent.afterClose, 'TransportError: send on eth0: socket is closed');

    assert.deepEqual(
      r.got.map((g) => g.index),
      Array.from({ length: 300 }, (_, i) => i),
    );
    assert.ok(r.got.every((g) => g.src === h1.ips[0]));
    assert.equal(r.stats.droppedOwn, 10);
    assert.equal(r.stats.received, 300);
    // 310 packets waited in the socket: 64 per recvmmsg(), so a handful of calls into JS.
    assert.ok(r.stats.receiveBatches <= 12, `${r.stats.receiveBatches} batches for 310 packets`);
    await Promise.all([recv.exit(), send.exit(), spoof.exit()]);
  });

  it('a refused packet in a batch is told to its own sender; the others went', async () => {
    // An nftables rule refuses (EPERM) what h1 sends to 203.0.113.9: every second packet.
    const nft = (...args: string[]) => exec('ip', ['netns', 'exec', h1.ns, 'nft', ...args]);
    await nft('add', 'table', 'inet', 'refuse');
    await nft(
      'add',
      'chain',
      'inet',
      'refuse',
      'out',
      '{ type filter hook output priority 0; policy accept; }',
    );
    await nft('add', 'rule', 'inet', 'refuse', 'out', 'ip', 'daddr', '203.0.113.9', 'drop');
    const send = Agent.start(lab, h1, ['send', '4', 'eth0', h1.ips[0], '3', '224.0.0.18', '203.0.113.9']);
    const r = await send.event<SendResult>('result');
    await nft('delete', 'table', 'inet', 'refuse');
    assert.equal(r.outcomes.length, 6);
    for (const [i, o] of r.outcomes.entries()) {
      if (i % 2 === 0) assert.equal(o, null, `packet ${i}`);
      else assert.match(o ?? '', /^send on eth0: 192\.0\.2\.1 -> 203\.0\.113\.9: Operation not permitted$/);
    }
    // The fourth error: the packet offered after close.
    assert.deepEqual([r.stats.sent, r.stats.sendErrors, r.stats.sendBatches], [3, 4, 1]);
    await send.exit();
  });

  it('IPv6: 150 datagrams arrive in order with source, destination and hop limit, in a few batches', async () => {
    const recv = Agent.start(lab, h2, [
      'recv',
      '6',
      'eth0',
      'ff02::12',
      '2001:db8:1::99',
      '150',
      String(BLOCK_MS),
    ]);
    await recv.event('ready');
    recv.child.stdin!.write('block\n');
    await recv.event('blocking');
    const send = Agent.start(lab, h1, ['send', '6', 'eth0', h1.ips6[0], '150', 'ff02::12']);
    const sent = await send.event<SendResult>('result');
    const r = await recv.event<RecvResult>('result');
    assert.deepEqual(sent.outcomes, new Array<null>(150).fill(null));
    assert.equal(sent.stats.sendBatches, Math.ceil(150 / SEND_BATCH));
    assert.deepEqual(
      r.got.map((g) => g.index),
      Array.from({ length: 150 }, (_, i) => i),
    );
    assert.ok(r.got.every((g) => g.src === h1.ips6[0] && g.dst === 'ff02::12' && g.hopLimit === 255));
    assert.ok(r.stats.receiveBatches <= 6, `${r.stats.receiveBatches} batches for 150 datagrams`);
    await Promise.all([recv.exit(), send.exit()]);
  });
});
