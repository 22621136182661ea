// Many rtnetlink requests per datagram (net/netlink-batch.ts): how requests are framed and
// grouped, and how each caller gets its own answer from the kernel's per-message ACKs.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  AttrStream,
  Flags,
  MessageType,
  formatMessage,
  parseMessages,
  rt,
  type NetlinkMessage,
} from 'netlink';
import { NetlinkBatch, ackError, frameBatch, type NetlinkBatchOptions } from '../../src/net/netlink-batch';
import { ClosedError, KernelError } from '../../src/errors';

const ENOENT = 2;
const EEXIST = 17;

/** The RTM_NEWADDR payload of a /32, as rtnl.ts formats it. */
function addrPayload(last: number): Uint8Array[] {
  const s = new AttrStream();
  const ip = Buffer.from([198, 18, 0, last]);
  rt.formatAddressMessage(
    {
      kind: 'address',
      data: { family: 2, prefixlen: 32, index: 3, scope: 0 },
      attrs: { local: ip, address: ip },
    },
    s,
  );
  return s.bufs;
}

/** The kernel's answer to `req`: errno 0 is the ACK, otherwise the negative errno. */
function ack(req: NetlinkMessage, errno = 0): NetlinkMessage {
  const body = Buffer.alloc(4);
  body.writeInt32LE(-errno, 0);
  const header = Buffer.concat(
    formatMessage({ type: req.type, flags: req.flags, seq: req.seq, port: 0, data: [] }).map((b) =>
      Buffer.from(b),
    ),
  );
  const out = Buffer.concat(
    formatMessage({ type: MessageType.ERROR, flags: 0, seq: req.seq, port: 0, data: [body, header] }).map(
      (b) => Buffer.from(b),
    ),
  );
  return parseMessages(out)[0];
}

class FakeSocket {
  datagrams: NetlinkMessage[][] = [];
  failNext: Error | undefined;
  private seq = 100;

  transport = {
    send: (d: Buffer) => {
      const err = this.failNext;
      this.failNext = undefined;
      if (err) throw err;
      this.datagrams.push(parseMessages(d));
    },
    nextSeq: () => this.seq++,
  };
}

function setup(opts: Partial<NetlinkBatchOptions> = {}) {
  const sock = new FakeSocket();
  const batch = new NetlinkBatch(sock.transport, {
    maxPerDatagram: 64,
    maxInFlight: 128,
    timeoutMs: 5000,
    ...opts,
  });
  return { sock, batch };
}

const turn = () => new Promise((r) => setImmediate(r));

describe('frameBatch', () => {
  it('puts every message in one datagram, each at an aligned offset, as the kernel walks them', () => {
    const msgs = [1, 2, 3].map((i) => ({
      type: MessageType.ERROR + 18,
      flags: Flags.REQUEST | Flags.ACK,
      seq: i,
      payload: [Buffer.alloc(i)], // unaligned lengths 17, 18, 19
    }));
    const d = frameBatch(msgs);
    assert.equal(d.length % 4, 0);
    const back = parseMessages(d);
    assert.deepEqual(
      back.map((m) => [m.seq, m.data.length]),
      [
        [1, 1],
        [2, 2],
        [3, 3],
      ],
    );
  });
});

describe('ackError', () => {
  const req = parseMessages(frameBatch([{ type: 20, flags: 5, seq: 7, payload: addrPayload(1) }]))[0];
  it('errno 0 is success', () => assert.equal(ackError(ack(req)), undefined));
  it('a refusal is named by its errno', () => assert.equal(ackError(ack(req, EEXIST)), 'EEXIST'));
});

describe('NetlinkBatch', () => {
  it("one turn's requests go out in one datagram; only the last asks for an ACK, which settles the rest", async () => {
    const { sock, batch } = setup();
    const results = Array.from({ length: 10 }, (_, i) =>
      batch.request(rt.MessageType.NEWADDR, 0x600, addrPayload(i)).then(
        () => 'ok',
        (e: KernelError) => e.errno,
      ),
    );
    await turn();
    assert.equal(sock.datagrams.length, 1);
    const sent = sock.datagrams[0];
    assert.equal(sent.length, 10);
    assert.equal(new Set(sent.map((m) => m.seq)).size, 10);
    sent.forEach((m, i) => {
      assert.equal(m.type, rt.MessageType.NEWADDR);
      assert.equal(m.flags, 0x600 | Flags.REQUEST | (i === 9 ? Flags.ACK : 0));
    });
    // The kernel answers a failed message at once, and the last one after everything else.
    let settled = 0;
    results.forEach((r) => void r.then(() => settled++));
    assert.equal(batch.onMessage(ack(sent[3], EEXIST)), true);
    await turn();
    assert.equal(settled, 1);
    assert.equal(batch.onMessage(ack(sent[9])), true);
    assert.deepEqual(await Promise.all(results), [
      'ok',
      'ok',
      'ok',
      'EEXIST',
      'ok',
      'ok',
      'ok',
      'ok',
      'ok',
      'ok',
    ]);
    assert.equal(batch.pending, 0);
  });

  it("a refused last message fails alone: the datagram's other messages succeeded", async () => {
    const { sock, batch } = setup();
    const results = [1, 2, 3].map((i) =>
      batch.request(rt.MessageType.DELADDR, 0, addrPayload(i)).then(
        () => 'ok',
        (e: KernelError) => e.errno,
      ),
    );
    await turn();
    batch.onMessage(ack(sock.datagrams[0][2], ENOENT));
    assert.deepEqual(await Promise.all(results), ['ok', 'ok', 'ENOENT']);
  });

  it('splits a burst into datagrams of maxPerDatagram', async () => {
    const { sock, batch } = setup({ maxPerDatagram: 4 });
    const all = Array.from({ length: 10 }, (_, i) =>
      batch.request(rt.MessageType.NEWADDR, 0, addrPayload(i)),
    );
    await turn();
    assert.deepEqual(
      sock.datagrams.map((d) => d.length),
      [4, 4, 2],
    );
    for (const d of sock.datagrams) batch.onMessage(ack(d[d.length - 1]));
    await Promise.all(all);
  });

  it('a full datagram leaves inside the synchronous run that fills it; the partial rest at its end', async () => {
    const { sock, batch } = setup({ maxPerDatagram: 4 });
    const all: Promise<void>[] = [];
    const sentAfter: number[] = [];
    for (let i = 0; i < 10; i++) {
      all.push(batch.request(rt.MessageType.NEWADDR, 0, addrPayload(i)));
      sentAfter.push(sock.datagrams.length);
    }
    // A mass takeover asks for its addresses from one long run of expiring timers: the first
    // datagrams must be in the kernel before that run ends, not after it.
    assert.deepEqual(sentAfter, [0, 0, 0, 1, 1, 1, 1, 2, 2, 2]);
    await Promise.resolve();
    assert.deepEqual(
      sock.datagrams.map((d) => d.length),
      [4, 4, 2],
      'the partial datagram goes before any other task',
    );
    for (const d of sock.datagrams) batch.onMessage(ack(d[d.length - 1]));
    await Promise.all(all);
    assert.equal(batch.pending, 0);
  });

  it('past maxInFlight, the answers the kernel already queued are read at once and the burst goes on', async () => {
    const sock = new FakeSocket();
    const answered: number[] = [];
    const batch: NetlinkBatch = new NetlinkBatch(
      {
        ...sock.transport,
        // The kernel answers within sendmsg(): every datagram sent so far has its ACK queued.
        receive: () => {
          for (const d of sock.datagrams.splice(0)) {
            answered.push(d.length);
            batch.onMessage(ack(d[d.length - 1]));
          }
        },
      },
      { maxPerDatagram: 4, maxInFlight: 8, timeoutMs: 5000 },
    );
    const all = Array.from({ length: 20 }, (_, i) =>
      batch.request(rt.MessageType.NEWADDR, 0, addrPayload(i)),
    );
    // All five datagrams left within the synchronous run, two at a time between reads.
    assert.deepEqual([...answered, ...sock.datagrams.map((d) => d.length)], [4, 4, 4, 4, 4]);
    assert.deepEqual(answered, [4, 4, 4, 4]);
    assert.equal(batch.pending, 4);
    const last = sock.datagrams[0];
    batch.onMessage(ack(last[last.length - 1]));
    await Promise.all(all);
  });

  it('holds what exceeds maxInFlight until answers free room, then sends it together', async () => {
    const { sock, batch } = setup({ maxPerDatagram: 3, maxInFlight: 6 });
    const all = Array.from({ length: 14 }, (_, i) =>
      batch.request(rt.MessageType.NEWADDR, 0, addrPayload(i)),
    );
    await turn();
    assert.deepEqual(
      sock.datagrams.map((d) => d.length),
      [3, 3],
    );
    assert.equal(batch.pending, 14);
    // Both datagrams answered in one go: the refill waits for both and sends 6 more.
    for (const d of sock.datagrams) batch.onMessage(ack(d[d.length - 1]));
    await turn();
    assert.deepEqual(
      sock.datagrams.map((d) => d.length),
      [3, 3, 3, 3],
    );
    for (let i = 0; i < 10 && batch.pending > 0; i++) {
      for (const d of sock.datagrams.splice(0)) batch.onMessage(ack(d[d.length - 1]));
      await turn();
    }
    assert.equal(batch.pending, 0);
    await Promise.all(all);
  });

  it('a message the kernel never answers fails after the timeout, and frees its room', async () => {
    const { sock, batch } = setup({ timeoutMs: 20, maxInFlight: 1 });
    const first = batch.request(rt.MessageType.NEWADDR, 0, addrPayload(1));
    const second = batch.request(rt.MessageType.NEWADDR, 0, addrPayload(2));
    await assert.rejects(first, (e: KernelError) => e instanceof KernelError && e.errno === 'ETIMEDOUT');
    await turn();
    assert.equal(sock.datagrams.length, 2);
    batch.onMessage(ack(sock.datagrams[1][0]));
    await second;
  });

  it('an error answer does not end the datagram: without the final ACK the rest time out', async () => {
    const { sock, batch } = setup({ timeoutMs: 20 });
    const first = batch.request(rt.MessageType.NEWADDR, 0, addrPayload(1));
    const second = batch.request(rt.MessageType.NEWADDR, 0, addrPayload(2));
    await turn();
    assert.equal(sock.datagrams[0].length, 2);
    batch.onMessage(ack(sock.datagrams[0][0], EEXIST));
    await assert.rejects(first, (e: KernelError) => e.errno === 'EEXIST');
    await assert.rejects(second, (e: KernelError) => e.errno === 'ETIMEDOUT');
  });

  it('a failed send rejects the whole datagram', async () => {
    const { sock, batch } = setup();
    sock.failNext = new Error('ENOBUFS');
    const a = batch.request(rt.MessageType.DELADDR, 0, addrPayload(1));
    const b = batch.request(rt.MessageType.DELADDR, 0, addrPayload(2));
    await assert.rejects(a, /ENOBUFS/);
    await assert.rejects(b, /ENOBUFS/);
    assert.equal(batch.pending, 0);
  });

  it('ignores messages that are not the ACK of one of its requests', async () => {
    const { sock, batch } = setup();
    const p = batch.request(rt.MessageType.DELADDR, 0, addrPayload(1));
    await turn();
    const m = sock.datagrams[0][0];
    assert.equal(batch.onMessage(ack({ ...m, seq: m.seq + 1000 })), false);
    assert.equal(batch.onMessage({ ...m, type: rt.MessageType.NEWADDR }), false);
    assert.equal(batch.pending, 1);
    assert.equal(batch.onMessage(ack(m, ENOENT)), true);
    await assert.rejects(p, (e: KernelError) => e.errno === 'ENOENT');
  });

  it('close fails everything queued or in flight, and later requests at once', async () => {
    const { batch } = setup({ maxInFlight: 1 });
    const a = batch.request(rt.MessageType.NEWADDR, 0, addrPayload(1));
    await turn();
    const b = batch.request(rt.MessageType.NEWADDR, 0, addrPayload(2));
    batch.close();
    await assert.rejects(a, ClosedError);
    await assert.rejects(b, ClosedError);
    await assert.rejects(batch.request(rt.MessageType.NEWADDR, 0, addrPayload(3)), ClosedError);
  });
});
