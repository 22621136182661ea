// InterfaceSocket on real sockets: two lab hosts on two segments (eth0 on 192.0.2.0/24, eth1 on
// 198.51.100.0/24). The sockets live in test/fixtures/transport-agent.ts inside the hosts.
//
// "Not received" is never asserted by waiting: a later packet (a barrier) is sent that must
// arrive at the same socket, or that another socket receives from the same kernel delivery
// pass, and only then is the socket's history checked.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { Host, Lab, ip, waitFor } from '../helpers/netns';
import type { AgentCommand, AgentEvent, ReceivedPacket } from '../fixtures/transport-protocol';

const FIXTURES = path.resolve(__dirname, '../fixtures');
const CARP_GROUP = '224.0.0.18';
const OTHER_GROUP = '224.0.0.19';
/** Used only by the fixtures that run alone, so that no other test's membership interferes. */
const SOLO_GROUP = '224.0.0.20';
const BROADCAST = '255.255.255.255';
const WAIT_MS = 5000;

type Reply = Extract<AgentEvent, { ev: 'reply' }>;
type Cmd = AgentCommand extends infer C ? (C extends AgentCommand ? Omit<C, 'id'> : never) : never;

/** Drives one transport-agent process inside a lab host. */
class Agent {
  readonly packets: ReceivedPacket[] = [];
  readonly closed: string[] = [];
  readonly receiveErrors: string[] = [];
  private nextId = 1;
  private readonly pending = new Map<number, (r: Reply) => void>();
  private ready = false;
  private exitCode: number | null | undefined;

  constructor(
    readonly host: Host,
    private readonly child: ChildProcess,
  ) {
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('exit', (code) => {
      this.exitCode = code;
      if (code) process.stderr.write(`agent on ${host.ns} exited ${code}: ${stderr}\n`);
    });
    createInterface({ input: child.stdout! }).on('line', (line) =>
      this.onEvent(JSON.parse(line) as AgentEvent),
    );
  }

  static async start(lab: Lab, host: Host): Promise<Agent> {
    const child = lab.spawn(host, process.execPath, [path.join(FIXTURES, 'transport-agent.js')]);
    const agent = new Agent(host, child);
    await waitFor(() => agent.ready, WAIT_MS, `agent on ${host.ns}`);
    return agent;
  }

  private onEvent(ev: AgentEvent): void {
    switch (ev.ev) {
      case 'ready':
        this.ready = true;
        break;
      case 'packet':
        this.packets.push(ev);
        break;
      case 'reply':
        this.pending.get(ev.id)?.(ev);
        this.pending.delete(ev.id);
        break;
      case 'close':
        this.closed.push(ev.sock);
        break;
      case 'receiveError':
        this.receiveErrors.push(ev.message);
        break;
    }
  }

  request(cmd: Cmd): Promise<Reply> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.pending.set(id, resolve);
      this.child.stdin!.write(`${JSON.stringify({ ...cmd, id })}\n`);
    });
  }

  /** Like request(), but the command must succeed. */
  async do(cmd: Cmd): Promise<unknown> {
    const r = await this.request(cmd);
    if (!r.ok) throw new Error(`${cmd.op} on ${this.host.ns} failed: ${r.error.name}: ${r.error.message}`);
    return r.data;
  }

  /** Sends a fresh random 36-byte payload and returns it (hex). */
  async send(sock: string, dst: string, src: string): Promise<string> {
    const payload = randomBytes(36).toString('hex');
    await this.do({ op: 'send', sock, dst, src, payload });
    return payload;
  }

  received(sock: string, payload: string): ReceivedPacket | undefined {
    return this.packets.find((p) => p.sock === sock && p.payload === payload);
  }

  async waitReceived(sock: string, payload: string): Promise<ReceivedPacket> {
    await waitFor(
      () => this.received(sock, payload) !== undefined,
      WAIT_MS,
      `${sock} on ${this.host.ns} to receive`,
    );
    return this.received(sock, payload)!;
  }

  /** Ends stdin: the agent closes its sockets and must then exit by itself. */
  async stop(): Promise<number | null> {
    this.child.stdin!.end();
    await waitFor(() => this.exitCode !== undefined, WAIT_MS, `agent on ${this.host.ns} to exit`);
    return this.exitCode ?? null;
  }
}

async function ifindex(h: Host, iface: string): Promise<number> {
  const [link] = JSON.parse(await ip('-n', h.ns, '-j', 'link', 'show', 'dev', iface)) as {
    ifindex: number;
  }[];
  return link.ifindex;
}

async function kernelGroups(h: Host, iface: string): Promise<string[]> {
  const out = JSON.parse(await ip('-n', h.ns, '-j', 'maddr', 'show', 'dev', iface)) as {
    maddr?: { family: string; address: string }[];
  }[];
  return out.flatMap((l) => (l.maddr ?? []).filter((m) => m.family === 'inet').map((m) => m.address));
}

function collect(child: ChildProcess): { stdout: () => string; stderr: () => string; exited: () => boolean } {
  let stdout = '';
  let stderr = '';
  let exited = false;
  child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  child.on('exit', () => (exited = true));
  return { stdout: () => stdout, stderr: () => stderr, exited: () => exited };
}

/** Starts tcpdump for one protocol-112 packet and resolves once it is listening. */
async function tcpdumpOne(lab: Lab, h: Host, iface: string, srcAddr: string) {
  const child = lab.spawn(h, 'tcpdump', [
    '-n',
    '-vv',
    // -xx, the whole frame: with -x tcpdump leaves out the link header it parsed, and once in
    // CI it printed the frame from the Ethernet header anyway. The frame is always the same.
    '-xx',
    '-l',
    '-c',
    '1',
    '-i',
    iface,
    `ip proto 112 and src ${srcAddr}`,
  ]);
  const out = collect(child);
  await waitFor(() => out.stderr().includes('listening on'), WAIT_MS, 'tcpdump to listen');
  return {
    /** The capture's IP header summary, without the id, and the IP header's 20 bytes. */
    async result(): Promise<{ summary: string; addrs: string; header: Buffer }> {
      await waitFor(out.exited, 15000, 'tcpdump to capture a packet');
      const text = out.stdout();
      const summary = /IP \((.*)\)\n/.exec(text)?.[1];
      const addrs = /\n\s+(\S+ > \S+):/.exec(text)?.[1];
      const hex = [...text.matchAll(/^\s+0x00[0-9a-f]{2}:\s+([0-9a-f ]+)$/gm)]
        .map((m) => m[1].replace(/ /g, ''))
        .join('');
      assert.ok(summary && addrs && hex, `unexpected tcpdump output:\n${text}`);
      const frame = Buffer.from(hex, 'hex');
      // An Ethernet frame (a veth): 14 bytes of header, the last two the IPv4 ethertype.
      assert.equal(frame.readUInt16BE(12), 0x0800, `not an IPv4 Ethernet frame:\n${text}`);
      return {
        summary: summary.replace(/ id \d+,/, ''),
        addrs,
        header: frame.subarray(14, 34),
      };
    },
  };
}

describe('InterfaceSocket (raw protocol 112, two hosts, two segments)', { timeout: 120_000 }, () => {
  let lab: Lab;
  let a: Agent;
  let b: Agent;
  let h1: Host;
  let h2: Host;

  before(async () => {
    lab = await Lab.create({ hosts: 2, segments: 2 });
    h1 = lab.host(1);
    h2 = lab.host(2);
    [a, b] = await Promise.all([Agent.start(lab, h1), Agent.start(lab, h2)]);
    // host1: s0 on eth0 (the sender, its own address registered), s1 on eth1.
    await a.do({ op: 'open', sock: 's0', ifname: 'eth0' });
    await a.do({ op: 'open', sock: 's1', ifname: 'eth1' });
    await a.do({ op: 'addSrc', sock: 's0', addr: h1.ips[0] });
    await a.do({
      op: 'join',
      sock: 's0',
      group: CARP_GROUP,
      local: h1.ips[0],
      ifindex: await ifindex(h1, 'eth0'),
    });
    // host2: s0 on eth0, s1 on eth1, both in the CARP group on their own interface.
    await b.do({ op: 'open', sock: 's0', ifname: 'eth0' });
    await b.do({ op: 'open', sock: 's1', ifname: 'eth1' });
    await b.do({
      op: 'join',
      sock: 's0',
      group: CARP_GROUP,
      local: h2.ips[0],
      ifindex: await ifindex(h2, 'eth0'),
    });
    await b.do({
      op: 'join',
      sock: 's1',
      group: CARP_GROUP,
      local: h2.ips[1],
      ifindex: await ifindex(h2, 'eth1'),
    });
  });

  after(async () => {
    await lab?.destroy();
  });

  it('delivers a multicast advertisement with TTL 255, TOS 0x10, DF, proto 112 and the given source', async () => {
    const payload = await a.send('s0', CARP_GROUP, h1.ips[0]);
    const p = await b.waitReceived('s0', payload);
    assert.deepEqual(
      { src: p.src, hdrSrc: p.hdrSrc, hdrDst: p.hdrDst, ttl: p.ttl, tos: p.tos, proto: p.proto, ihl: p.ihl },
      { src: '192.0.2.1', hdrSrc: '192.0.2.1', hdrDst: CARP_GROUP, ttl: 255, tos: 0x10, proto: 112, ihl: 20 },
    );
    assert.equal(p.flagsFragment, 0x4000, 'DF set, no fragment offset');
    assert.equal(p.totalLength, 56);
  });

  it('is bound to its device: the eth1 socket gets nothing sent on segment 0', async () => {
    const mcast = await a.send('s0', CARP_GROUP, h1.ips[0]);
    const bcast = await a.send('s0', BROADCAST, h1.ips[0]);
    await b.waitReceived('s0', mcast);
    await b.waitReceived('s0', bcast);
    // Barrier on segment 1: host2 already holds both packets above, so a socket that was going
    // to get them has them queued before this one.
    const barrier = await a.send('s1', CARP_GROUP, h1.ips[1]);
    const p = await b.waitReceived('s1', barrier);
    assert.equal(p.src, h1.ips[1]);
    assert.equal(b.received('s1', mcast), undefined, 'multicast from eth0 leaked to the eth1 socket');
    assert.equal(b.received('s1', bcast), undefined, 'broadcast from eth0 leaked to the eth1 socket');
  });

  it('works in broadcast mode (255.255.255.255)', async () => {
    const payload = await a.send('s0', BROADCAST, h1.ips[0]);
    const p = await b.waitReceived('s0', payload);
    assert.deepEqual(
      { src: p.src, hdrDst: p.hdrDst, ttl: p.ttl, tos: p.tos, df: p.flagsFragment, proto: p.proto },
      { src: h1.ips[0], hdrDst: BROADCAST, ttl: 255, tos: 0x10, df: 0x4000, proto: 112 },
    );
  });

  it('receives another multicast group only after join, and only on the socket that joined it', async () => {
    // s2 shares eth0 with s0 but never joins OTHER_GROUP: Linux would hand it every group the
    // host joined (IP_MULTICAST_ALL) unless the socket turns that off.
    await b.do({ op: 'open', sock: 's2', ifname: 'eth0' });
    const early = await a.send('s0', OTHER_GROUP, h1.ips[0]);
    const barrier1 = await a.send('s0', BROADCAST, h1.ips[0]);
    await b.waitReceived('s0', barrier1);
    assert.equal(b.received('s0', early), undefined, 'received a group it had not joined');

    await b.do({
      op: 'join',
      sock: 's0',
      group: OTHER_GROUP,
      local: h2.ips[0],
      ifindex: await ifindex(h2, 'eth0'),
    });
    const late = await a.send('s0', OTHER_GROUP, h1.ips[0]);
    const p = await b.waitReceived('s0', late);
    assert.equal(p.hdrDst, OTHER_GROUP);
    // The broadcast barrier reaches s2 after the multicast reached host2.
    const barrier2 = await a.send('s0', BROADCAST, h1.ips[0]);
    await b.waitReceived('s2', barrier2);
    assert.equal(b.received('s2', late), undefined, 'a socket got a group joined only by another socket');
    await b.do({ op: 'close', sock: 's2' });
    await b.do({ op: 'leave', sock: 's0', group: OTHER_GROUP });
  });

  it('reference-counts memberships: one kernel membership, dropped by the last leave', async () => {
    const idx = await ifindex(h2, 'eth0');
    assert.ok(!(await kernelGroups(h2, 'eth0')).includes(OTHER_GROUP));
    await b.do({ op: 'join', sock: 's0', group: OTHER_GROUP, local: h2.ips[0], ifindex: idx });
    await b.do({ op: 'join', sock: 's0', group: OTHER_GROUP, local: h2.ips[0], ifindex: idx });
    assert.ok((await kernelGroups(h2, 'eth0')).includes(OTHER_GROUP));

    await b.do({ op: 'leave', sock: 's0', group: OTHER_GROUP });
    assert.ok((await kernelGroups(h2, 'eth0')).includes(OTHER_GROUP), 'first leave dropped the membership');
    const still = await a.send('s0', OTHER_GROUP, h1.ips[0]);
    await b.waitReceived('s0', still);

    await b.do({ op: 'leave', sock: 's0', group: OTHER_GROUP });
    assert.ok(!(await kernelGroups(h2, 'eth0')).includes(OTHER_GROUP), 'last leave kept the membership');
    const gone = await a.send('s0', OTHER_GROUP, h1.ips[0]);
    const barrier = await a.send('s0', BROADCAST, h1.ips[0]);
    await b.waitReceived('s0', barrier);
    assert.equal(b.received('s0', gone), undefined);

    const extra = await b.request({ op: 'leave', sock: 's0', group: OTHER_GROUP });
    assert.equal(extra.ok, false);
    assert.equal(!extra.ok && extra.error.name, 'InvalidArgumentError');
    const other = await b.request({
      op: 'join',
      sock: 's0',
      group: CARP_GROUP,
      local: h2.ips[0],
      ifindex: idx + 1,
    });
    assert.equal(
      !other.ok && other.error.name,
      'InvalidArgumentError',
      'same group on another ifindex accepted',
    );
  });

  it('does not deliver its own packets, looped broadcasts included, while the source is registered', async () => {
    // s3 on host1 has no local source: it shows what the kernel loops back to host1.
    await a.do({ op: 'open', sock: 's3', ifname: 'eth0' });
    await a.do({
      op: 'join',
      sock: 's3',
      group: CARP_GROUP,
      local: h1.ips[0],
      ifindex: await ifindex(h1, 'eth0'),
    });

    // Broadcasts are always looped: s3 gets it, and s0 would in the same delivery pass.
    const bcast = await a.send('s0', BROADCAST, h1.ips[0]);
    await a.waitReceived('s3', bcast);
    assert.equal(a.received('s0', bcast), undefined, 'own broadcast delivered');

    // Multicast loop is off: no socket of host1 gets it, though host2 does.
    const mcast = await a.send('s0', CARP_GROUP, h1.ips[0]);
    await b.waitReceived('s0', mcast);
    const fromPeer = await b.send('s0', CARP_GROUP, h2.ips[0]);
    await a.waitReceived('s0', fromPeer);
    await a.waitReceived('s3', fromPeer);
    assert.equal(a.received('s0', mcast), undefined, 'own multicast delivered');
    assert.equal(a.received('s3', mcast), undefined, 'multicast looped back to the sending host');

    // Two users of the address: the filter holds until both are gone.
    await a.do({ op: 'addSrc', sock: 's0', addr: h1.ips[0] });
    await a.do({ op: 'removeSrc', sock: 's0', addr: h1.ips[0] });
    const stillOwn = await a.send('s0', BROADCAST, h1.ips[0]);
    await a.waitReceived('s3', stillOwn);
    assert.equal(a.received('s0', stillOwn), undefined, 'filter dropped while a user remained');
    await a.do({ op: 'removeSrc', sock: 's0', addr: h1.ips[0] });
    const unfiltered = await a.send('s0', BROADCAST, h1.ips[0]);
    await a.waitReceived('s0', unfiltered);
    await a.do({ op: 'addSrc', sock: 's0', addr: h1.ips[0] });

    const stats = (await a.do({ op: 'stats', sock: 's0' })) as { droppedOwn: number };
    assert.ok(stats.droppedOwn >= 2, `droppedOwn ${stats.droppedOwn}`);
    await a.do({ op: 'close', sock: 's3' });
  });

  it('sends from the source address given per packet (a second address on the interface)', async () => {
    await ip('-n', h1.ns, 'addr', 'add', '192.0.2.50/24', 'dev', 'eth0');
    const second = await a.send('s0', CARP_GROUP, '192.0.2.50');
    const first = await a.send('s0', CARP_GROUP, h1.ips[0]);
    const p2 = await b.waitReceived('s0', second);
    const p1 = await b.waitReceived('s0', first);
    assert.deepEqual([p2.src, p2.hdrSrc], ['192.0.2.50', '192.0.2.50']);
    assert.deepEqual([p1.src, p1.hdrSrc], [h1.ips[0], h1.ips[0]]);
    await ip('-n', h1.ns, 'addr', 'del', '192.0.2.50/24', 'dev', 'eth0');
  });

  it('reports a refused send as a TransportError and keeps working', async () => {
    await ip('-n', h1.ns, 'link', 'set', 'eth1', 'down');
    const r = await a.request({
      op: 'send',
      sock: 's1',
      dst: CARP_GROUP,
      src: h1.ips[1],
      payload: '00'.repeat(36),
    });
    assert.equal(r.ok, false);
    assert.deepEqual(!r.ok && { name: r.error.name, op: r.error.op }, { name: 'TransportError', op: 'send' });
    assert.match(!r.ok ? r.error.message : '', /^send on eth1: 198\.51\.100\.1 -> 224\.0\.0\.18: \S/);
    const stats = (await a.do({ op: 'stats', sock: 's1' })) as { sendErrors: number };
    assert.equal(stats.sendErrors, 1);

    await ip('-n', h1.ns, 'link', 'set', 'eth1', 'up');
    // Right after "up" the device may still drop what it is given (carrier settling), so send
    // until one arrives; the point is that the same socket delivers again.
    let delivered = false;
    await waitFor(
      async () => {
        const payload = randomBytes(36).toString('hex');
        const sent = await a.request({ op: 'send', sock: 's1', dst: CARP_GROUP, src: h1.ips[1], payload });
        if (sent.ok)
          delivered ||= await waitFor(() => b.received('s1', payload) !== undefined, 200).then(
            () => true,
            () => false,
          );
        return delivered;
      },
      WAIT_MS,
      'a send after the interface came back',
      0,
    );
    assert.ok(!a.closed.includes('s1'), 'the socket closed after a failed send');
  });

  it('puts the same IP header on the wire as the ucarp binary (tcpdump -vv)', async () => {
    const ours = await tcpdumpOne(lab, h2, 'eth0', h1.ips[0]);
    await a.send('s0', CARP_GROUP, h1.ips[0]);
    const o = await ours.result();

    const theirs = await tcpdumpOne(lab, h2, 'eth0', h1.ips[0]);
    const ucarp = lab.spawn(h1, 'ucarp', [
      '-i',
      'eth0',
      '-s',
      h1.ips[0],
      '-v',
      '7',
      '-p',
      'pw',
      '-a',
      '192.0.2.100',
      '-P',
      '-f',
      'none',
    ]);
    let u: Awaited<ReturnType<typeof theirs.result>>;
    try {
      u = await theirs.result();
    } finally {
      ucarp.kill('SIGKILL');
    }
    assert.equal(o.summary, u.summary);
    assert.match(o.summary, /^tos 0x10, ttl 255, offset 0, flags \[DF\], proto VRRP \(112\), length 56$/);
    assert.equal(o.addrs, u.addrs);
    assert.equal(o.addrs, `${h1.ips[0]} > ${CARP_GROUP}`);
    // Byte for byte, except the id (4-5) and the checksum that covers it (10-11).
    for (const [from, to] of [
      [0, 4],
      [6, 10],
      [12, 20],
    ]) {
      assert.deepEqual(
        o.header.subarray(from, to),
        u.header.subarray(from, to),
        `header bytes ${from}..${to}`,
      );
    }
  });

  it('closes without leaving memberships or anything that keeps the process alive', async () => {
    const child = lab.spawn(h2, process.execPath, [
      path.join(FIXTURES, 'transport-close.js'),
      'eth0',
      SOLO_GROUP,
      h2.ips[0],
      String(await ifindex(h2, 'eth0')),
    ]);
    const out = collect(child);
    // Generous: the fixture does no waiting of its own, so it exits as soon as close() let go.
    await waitFor(out.exited, 10_000, 'the process to exit after close()');
    assert.equal(child.exitCode, 0, out.stderr());
    const r = JSON.parse(out.stdout()) as {
      before: string[];
      after: string[];
      isClosed: boolean;
      closeEvents: number;
      sendAfterClose: string;
      stats: { sent: number; sendErrors: number };
    };
    assert.ok(r.before.includes(SOLO_GROUP), 'join did not reach the kernel');
    assert.ok(!r.after.includes(SOLO_GROUP), 'membership left after close');
    assert.equal(r.isClosed, true);
    assert.equal(r.closeEvents, 1);
    assert.match(r.sendAfterClose, /^TransportError: send on eth0: socket is closed$/);
    assert.deepEqual([r.stats.sent, r.stats.sendErrors], [1, 1]);
  });

  it('stays open until close() even when nothing references it (garbage collection)', async () => {
    const child = lab.spawn(h2, process.execPath, [
      '--expose-gc',
      path.join(FIXTURES, 'transport-unreferenced.js'),
      'eth0',
      SOLO_GROUP,
      h2.ips[0],
      String(await ifindex(h2, 'eth0')),
    ]);
    const out = collect(child);
    await waitFor(out.exited, 10_000, 'the fixture to exit');
    assert.equal(child.exitCode, 0, out.stderr());
    const r = JSON.parse(out.stdout()) as { before: string[]; after: string[] };
    assert.ok(r.before.includes(SOLO_GROUP), 'join did not reach the kernel');
    assert.ok(r.after.includes(SOLO_GROUP), 'the socket was closed by garbage collection');
  });

  it('agents close their sockets and exit by themselves when told to stop', async () => {
    assert.deepEqual([await a.stop(), await b.stop()], [0, 0]);
    assert.deepEqual(a.closed.sort(), ['s0', 's1', 's3']);
    assert.deepEqual(b.closed.sort(), ['s0', 's1', 's2']);
    assert.deepEqual([...a.receiveErrors, ...b.receiveErrors], []);
  });
});
