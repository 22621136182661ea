import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { ip, Lab, waitFor, type Host } from '../helpers/netns';
import { NetRpc } from '../fixtures/net-rpc';
import type { WireLink } from '../fixtures/net-rtnl';
import type { IpAddress, Ipv4Address } from '../../src/net/rtnl';

async function macOf(h: Host, iface: string): Promise<string> {
  const out = JSON.parse(await ip('-n', h.ns, '-j', 'link', 'show', 'dev', iface)) as { address: string }[];
  return out[0].address.replace(/:/g, '');
}

describe('rtnetlink inside a namespace', () => {
  let lab: Lab;
  let host: Host;
  let rpc: NetRpc;

  before(async () => {
    lab = await Lab.create({ hosts: 1 });
    host = lab.host(1);
    rpc = await NetRpc.start(lab, host);
  });

  after(async () => {
    await rpc?.stop();
    await lab?.destroy();
  });

  test('links() and link() report eth0 with its MAC, up and running', async () => {
    const mac = await macOf(host, 'eth0');
    const links = await rpc.call<WireLink[]>('links');
    const eth0 = links.find((l) => l.name === 'eth0');
    assert.ok(eth0, 'eth0 listed');
    assert.equal(eth0.mac, mac);
    assert.equal(eth0.up, true);
    assert.equal(eth0.running, true);
    assert.ok(links.some((l) => l.name === 'lo'));
    assert.deepEqual(await rpc.call<WireLink>('link', 'eth0'), eth0);
    assert.equal(await rpc.call<WireLink | null>('link', 'nosuch0'), null);
  });

  test('addAddress/delAddress change the interface and are idempotent', async () => {
    await rpc.call('addAddress', 'eth0', '192.0.2.100', 24);
    assert.ok((await lab.addresses(host)).includes('192.0.2.100'));
    await rpc.call('addAddress', 'eth0', '192.0.2.100', 24); // EEXIST is success
    const listed = await rpc.call<Ipv4Address[]>('ipv4Addresses', 'eth0');
    assert.deepEqual(
      listed.filter((a) => a.address === '192.0.2.100'),
      [{ ifname: 'eth0', index: listed[0].index, address: '192.0.2.100', prefixlen: 24 }],
    );
    assert.ok(listed.some((a) => a.address === host.ips[0]));
    const all = await rpc.call<Ipv4Address[]>('ipv4Addresses');
    assert.ok(all.some((a) => a.ifname === 'lo' && a.address === '127.0.0.1' && a.prefixlen === 8));

    await rpc.call('delAddress', 'eth0', '192.0.2.100', 24);
    assert.ok(!(await lab.addresses(host)).includes('192.0.2.100'));
    await rpc.call('delAddress', 'eth0', '192.0.2.100', 24); // EADDRNOTAVAIL is success
    assert.ok((await lab.addresses(host)).includes(host.ips[0]), 'the real address is untouched');
  });

  test('address calls on a missing interface or with bad input reject', async () => {
    await assert.rejects(rpc.call('addAddress', 'nosuch0', '192.0.2.101', 32), /no interface named nosuch0/);
    await assert.rejects(rpc.call('addAddress', 'eth0', '192.0.2.300', 32), /not an IP address/);
    await assert.rejects(rpc.call('addAddress', 'eth0', '192.0.2.101', 33), /prefix length/);
    await assert.rejects(rpc.call('addAddress', 'eth0', '2001:db8:1::50', 129), /IPv6 prefix length/);
  });

  test('IPv6: added without DAD, listed in canonical text, removed', async () => {
    const show = async () =>
      (
        JSON.parse(await ip('-n', host.ns, '-j', '-6', 'addr', 'show', 'dev', 'eth0')) as {
          addr_info: { local: string; prefixlen: number; nodad?: boolean; tentative?: boolean }[];
        }[]
      )[0].addr_info;
    await rpc.call('addAddress', 'eth0', '2001:DB8:1:0::50', 64);
    const vip = (await show()).find((a) => a.local === '2001:db8:1::50');
    assert.equal(vip?.prefixlen, 64);
    assert.equal(vip?.nodad, true, 'IFA_F_NODAD: the address serves at once');
    assert.notEqual(vip?.tentative, true);
    await rpc.call('addAddress', 'eth0', '2001:db8:1::50', 64); // EEXIST is success
    const listed = await rpc.call<IpAddress[]>('addresses', 'eth0');
    const mine = listed.filter((a) => a.address === '2001:db8:1::50');
    assert.deepEqual(
      mine.map(({ family, prefixlen, tentative }) => ({ family, prefixlen, tentative })),
      [{ family: 6, prefixlen: 64, tentative: false }],
    );
    assert.ok(
      listed.some((a) => a.family === 4 && a.address === host.ips[0]),
      'both families listed',
    );
    assert.ok(
      listed.some((a) => a.family === 6 && a.address.startsWith('fe80:')),
      'the link-local too',
    );
    await rpc.call('delAddress', 'eth0', '2001:db8:1::50', 64);
    assert.ok(!(await show()).some((a) => a.local === '2001:db8:1::50'));
    await rpc.call('delAddress', 'eth0', '2001:db8:1::50', 64); // gone is success
  });

  test('an interface recreated under the same name gets a fresh index', async () => {
    await ip('-n', host.ns, 'link', 'add', 'vip0', 'type', 'veth', 'peer', 'name', 'vip0p');
    await rpc.call('addAddress', 'vip0', '198.51.100.10', 32);
    await ip('-n', host.ns, 'link', 'del', 'vip0');
    await ip('-n', host.ns, 'link', 'add', 'vip0', 'type', 'veth', 'peer', 'name', 'vip0p');
    await rpc.call('addAddress', 'vip0', '198.51.100.10', 32);
    assert.deepEqual(await lab.addresses(host, 'vip0'), ['198.51.100.10']);
    await ip('-n', host.ns, 'link', 'del', 'vip0');
  });

  test('255 addresses are added and removed in one burst', async (t) => {
    const addrs = Array.from({ length: 255 }, (_, i) => `203.0.113.${i + 1}`);
    const pipelined = await rpc.call<number>('addMany', 'eth0', addrs, 32, true);
    const present = new Set(await lab.addresses(host));
    assert.equal(addrs.filter((a) => present.has(a)).length, 255, 'every address is on the interface');
    await rpc.call('delMany', 'eth0', addrs, 32);
    // Figures for the report (warm JIT): one request at a time versus pipelined.
    const serial = await rpc.call<number>('addMany', 'eth0', addrs, 32, false);
    await rpc.call('delMany', 'eth0', addrs, 32);
    const warm = await rpc.call<number>('addMany', 'eth0', addrs, 32, true);
    await rpc.call('delMany', 'eth0', addrs, 32);
    const left = new Set(await lab.addresses(host));
    assert.equal(addrs.filter((a) => left.has(a)).length, 0, 'every address removed');
    t.diagnostic(
      `255 adds: pipelined ${pipelined.toFixed(1)} ms cold, ${warm.toFixed(1)} ms warm; ` +
        `one at a time ${serial.toFixed(1)} ms`,
    );
    // Sanity bound only: forking `ip` 255 times takes seconds.
    assert.ok(pipelined < 5000, `pipelined adds took ${pipelined} ms`);
  });

  test('a batch of 64 changes: the one the kernel refuses gets its own errno, the others apply', async () => {
    // IPv6 turned off on bad0: the kernel refuses an IPv6 address there (EACCES), in the
    // middle of a datagram whose other messages are IPv4 additions on eth0.
    await ip('-n', host.ns, 'link', 'add', 'bad0', 'type', 'veth', 'peer', 'name', 'bad0p');
    await lab.exec(host, 'sysctl', ['-qw', 'net.ipv6.conf.bad0.disable_ipv6=1']);
    try {
      const v4 = Array.from({ length: 63 }, (_, i) => `198.18.7.${i + 1}`);
      const batch: [string, string, number][] = v4.map((a) => ['eth0', a, 32]);
      batch.splice(20, 0, ['bad0', '2001:db8:7::1', 64]);
      type Outcome = { datagrams: number; results: string[] };
      const { datagrams, results: added } = await rpc.call<Outcome>('changeBatch', true, batch);
      assert.equal(datagrams, 1, 'the 64 changes went in one datagram');
      assert.deepEqual(added.map((r, i) => (r === 'ok' ? '' : `${i} ${r}`)).filter(Boolean), ['20 EACCES']);
      const present = new Set(await lab.addresses(host));
      assert.deepEqual(
        v4.filter((a) => !present.has(a)),
        [],
        'every other address is on eth0',
      );
      const { results: removed } = await rpc.call<Outcome>('changeBatch', false, batch);
      assert.deepEqual(
        removed.filter((r, i) => i !== 20 && r !== 'ok'),
        [],
      );
      const left = new Set(await lab.addresses(host));
      assert.deepEqual(
        v4.filter((a) => left.has(a)),
        [],
        'every address removed',
      );
    } finally {
      await ip('-n', host.ns, 'link', 'del', 'bad0');
    }
  });

  test('1000 changes asked for in one run go out in 16 datagrams, past the in-flight bound', async () => {
    // 256 messages may be unsettled: the answers the kernel queued within each sendto() are
    // read at once, and the rest of the run's datagrams follow.
    const addrs = Array.from({ length: 1000 }, (_, i) => `198.18.${8 + (i >> 8)}.${i & 255}`);
    const batch = addrs.map((a): [string, string, number] => ['eth0', a, 32]);
    type Outcome = { inRun: number; datagrams: number; results: string[] };
    const added = await rpc.call<Outcome>('changeBatch', true, batch);
    assert.equal(added.inRun, 15, 'every full datagram left within the run');
    assert.equal(added.datagrams, 16);
    assert.deepEqual(
      added.results.filter((r) => r !== 'ok'),
      [],
    );
    const present = new Set(await lab.addresses(host));
    assert.equal(addrs.filter((a) => present.has(a)).length, 1000);
    const removed = await rpc.call<Outcome>('changeBatch', false, batch);
    assert.deepEqual(
      removed.results.filter((r) => r !== 'ok'),
      [],
    );
    const left = new Set(await lab.addresses(host));
    assert.equal(addrs.filter((a) => left.has(a)).length, 0);
  });

  test('LinkMonitor reports carrier loss and return without polling', async () => {
    const initial = await rpc.call<WireLink[]>('monitor');
    assert.equal(initial.find((l) => l.name === 'eth0')?.running, true);
    const seen = (running: boolean) => () =>
      rpc.events.some((e) => e.link.name === 'eth0' && e.link.running === running && !e.removed);

    await lab.setSwitchPort(host, false);
    await waitFor(seen(false), 5000, 'eth0 running=false event');
    const down = rpc.events.find((e) => e.link.name === 'eth0' && !e.link.running);
    assert.equal(down?.link.up, true, 'still administratively up');

    await lab.setSwitchPort(host, true);
    await waitFor(seen(true), 5000, 'eth0 running=true event');
  });

  test('LinkMonitor holds the process open only when asked to', async () => {
    const run = (args: string[]) => {
      const child = lab.spawn(host, process.execPath, [MONITOR_EXIT_FIXTURE, ...args]);
      let out = '';
      child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
      const code = new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
      return { code, out: () => out };
    };
    const plain = run([]);
    assert.equal(await plain.code, 0, 'exits by itself');
    assert.equal(plain.out(), 'started\n');

    const held = run(['ref']);
    await waitFor(() => held.out() === 'started\n', 10000, 'referenced monitor started');
    await ip('-n', host.ns, 'link', 'add', 'ref0', 'type', 'veth', 'peer', 'name', 'ref0p');
    assert.equal(await held.code, 0);
    assert.match(held.out(), /^started\nlink ref0p?\n$/);
    await ip('-n', host.ns, 'link', 'del', 'ref0');
  });

  test('LinkMonitor reports a removed link as not running', async () => {
    await ip('-n', host.ns, 'link', 'add', 'gone0', 'type', 'veth', 'peer', 'name', 'gone0p');
    await ip('-n', host.ns, 'link', 'del', 'gone0');
    await waitFor(
      () => rpc.events.some((e) => e.link.name === 'gone0' && e.removed && !e.link.running && !e.link.up),
      5000,
      'gone0 removal event',
    );
  });
});

const MONITOR_EXIT_FIXTURE = path.join(__dirname, '../fixtures/net-monitor-exit.js');
const SDNOTIFY_FIXTURE = path.join(__dirname, '../fixtures/net-sdnotify.js');

/** One datagram received by python3 on a unix socket (`@name` = abstract namespace). */
const RECEIVER = `
import socket, sys
a = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind('\\0' + a[1:] if a.startswith('@') else a)
print('bound', flush=True)
s.settimeout(10)
sys.stdout.write(s.recv(4096).decode())
`;

function runNotify(state: string, env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [SDNOTIFY_FIXTURE, state], { env }, (err, stdout, stderr) =>
      err ? reject(new Error(`${err.message}: ${stderr}`)) : resolve(stdout.trim()),
    );
  });
}

async function receiveOne(address: string, state: string): Promise<{ got: string; result: string }> {
  const { spawn } = await import('node:child_process');
  const py = spawn('python3', ['-c', RECEIVER, address], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  py.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((r) => py.on('exit', () => r()));
  try {
    await waitFor(() => out.startsWith('bound\n'), 5000, 'python receiver bound');
    const env = { ...process.env, NOTIFY_SOCKET: address };
    const result = await runNotify(state, env);
    await exited;
    return { got: out.slice('bound\n'.length), result };
  } finally {
    py.kill();
  }
}

describe('sdNotify', () => {
  test('sends one datagram to a NOTIFY_SOCKET path', async () => {
    const sock = `/tmp/ucarp-sdnotify-${process.pid}.sock`;
    try {
      const { got, result } = await receiveOne(sock, 'READY=1\nSTATUS=2 groups');
      assert.equal(result, 'true');
      assert.equal(got, 'READY=1\nSTATUS=2 groups');
    } finally {
      await import('node:fs/promises').then((fs) => fs.rm(sock, { force: true }));
    }
  });

  test('sends to an abstract NOTIFY_SOCKET (@name)', async () => {
    const { got, result } = await receiveOne(`@ucarp-sdnotify-${process.pid}`, 'STOPPING=1');
    assert.equal(result, 'true');
    assert.equal(got, 'STOPPING=1');
  });

  test('returns false without NOTIFY_SOCKET and throws when nobody listens', async () => {
    const env = { ...process.env };
    delete env.NOTIFY_SOCKET;
    assert.equal(await runNotify('READY=1', env), 'false');
    await assert.rejects(
      runNotify('READY=1', { ...env, NOTIFY_SOCKET: `/tmp/ucarp-nobody-${process.pid}.sock` }),
      /sendto/,
    );
  });
});

describe('LinkMonitor after lost notifications', () => {
  let lab: Lab;
  let host: Host;
  let rpc: NetRpc;

  before(async () => {
    lab = await Lab.create({ hosts: 1 });
    host = lab.host(1);
    rpc = await NetRpc.start(lab, host);
  });

  after(async () => {
    await rpc?.stop();
    await lab?.destroy();
  });

  test('ENOBUFS triggers a resync that reports current and vanished links', async () => {
    await ip('-n', host.ns, 'link', 'add', 'old0', 'type', 'veth', 'peer', 'name', 'old0p');
    // The smallest buffer the kernel allows: a few notifications overflow it.
    await rpc.call('monitor', 1);
    const blocked = rpc.call('block', 2500);
    await waitFor(() => rpc.notices.some((n) => n.event === 'blocking'), 5000, 'fixture blocked');
    // Fill the buffer first, so that these last changes are certainly among the lost ones.
    for (let i = 0; i < 20; i++) {
      await ip('-n', host.ns, 'link', 'add', `fl${i}`, 'type', 'veth', 'peer', 'name', `fl${i}p`);
    }
    await ip('-n', host.ns, 'link', 'del', 'old0');
    await ip('-n', host.ns, 'link', 'set', 'fl19', 'up');
    await blocked;
    await waitFor(() => rpc.notices.some((n) => n.event === 'resync'), 5000, 'resync after ENOBUFS');
    const resync = rpc.notices.find((n) => n.event === 'resync');
    assert.ok(resync?.links?.some((l) => l.name === 'fl19' && l.up));
    assert.ok(
      rpc.events.some((e) => e.link.name === 'old0' && e.removed),
      'the removal hidden by the overflow is reported',
    );
    assert.deepEqual(
      rpc.notices.filter((n) => n.event === 'error'),
      [],
    );
  });
});
