import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { ip, Lab, waitFor } from '../helpers/netns';
import { NetRpc } from '../fixtures/net-rpc';

let lab: Lab;

before(async () => {
  lab = await Lab.create({ hosts: 2 });
});

after(async () => {
  await lab?.destroy();
});

test('GarpSender puts one ucarp-style gratuitous ARP per address on the wire', async () => {
  const h1 = lab.host(1);
  const h2 = lab.host(2);
  const link = JSON.parse(await ip('-n', h1.ns, '-j', 'link', 'show', 'dev', 'eth0')) as {
    address: string;
  }[];
  const mac = link[0].address;

  const dump = lab.spawn(h2, 'tcpdump', ['-n', '-e', '-l', '-c', '2', '-i', 'eth0', 'arp']);
  let out = '';
  let err = '';
  dump.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  dump.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((r) => dump.on('exit', (code) => r(code)));
  await waitFor(() => err.includes('listening'), 10000, 'tcpdump listening');

  const rpc = await NetRpc.start(lab, h1);
  try {
    await rpc.call('garp', 'eth0', ['192.0.2.100', '192.0.2.101']);
    await waitFor(() => out.trim().split('\n').length >= 2, 10000, 'two ARP frames captured');
  } finally {
    await rpc.stop();
  }
  assert.equal(await exited, 0);

  const lines = out.trim().split('\n');
  for (const [i, vip] of ['192.0.2.100', '192.0.2.101'].entries()) {
    const line = lines[i];
    assert.match(
      line,
      new RegExp(`^\\S+ ${mac} > ff:ff:ff:ff:ff:ff, ethertype ARP \\(0x0806\\), length 60: `),
    );
    assert.match(
      line,
      new RegExp(
        `Request who-has ${vip.replace(/\./g, '\\.')} \\(${mac}\\) tell ${vip.replace(/\./g, '\\.')}, length 46$`,
      ),
    );
  }
});

test('GarpSender reports errno text and reopens its socket after the interface comes back', async () => {
  const h1 = lab.host(1);
  const rpc = await NetRpc.start(lab, h1);
  try {
    await assert.rejects(
      rpc.call('garpIndex', 999999, '020000000001', ['192.0.2.100']),
      /bind\(AF_PACKET\): No such device/,
    );

    const add = () =>
      ip('-n', h1.ns, 'link', 'add', 'vip0', 'index', '777', 'type', 'veth', 'peer', 'name', 'vip0p');
    const up = async () => {
      await ip('-n', h1.ns, 'link', 'set', 'vip0', 'up');
      await ip('-n', h1.ns, 'link', 'set', 'vip0p', 'up');
    };
    await add();
    await up();
    await rpc.call('garpIndex', 777, '020000000001', ['192.0.2.100']);
    await ip('-n', h1.ns, 'link', 'del', 'vip0');
    await assert.rejects(
      rpc.call('garpIndex', 777, '020000000001', ['192.0.2.100']),
      /send(mmsg)?\(AF_PACKET\)/,
    );
    // Same index again: a socket still bound to the deleted device would fail forever.
    await add();
    await up();
    await rpc.call('garpIndex', 777, '020000000001', ['192.0.2.100']);
  } finally {
    await rpc.stop();
  }
});
