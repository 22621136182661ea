import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildGratuitousArp, GarpSender, MIN_FRAME_LENGTH } from '../../src/net/garp';

const MAC = Buffer.from('020000aabbcc', 'hex');

test('gratuitous ARP frame is byte-exact (docs/protocol.md §14)', () => {
  const frame = buildGratuitousArp(MAC, '192.0.2.100');
  const expected = Buffer.concat([
    Buffer.from('ffffffffffff', 'hex'), // Ethernet destination: broadcast
    MAC, // Ethernet source: interface MAC
    Buffer.from('0806', 'hex'), // ethertype ARP
    Buffer.from('0001', 'hex'), // hardware type Ethernet
    Buffer.from('0800', 'hex'), // protocol type IPv4
    Buffer.from('06', 'hex'), // hardware address length
    Buffer.from('04', 'hex'), // protocol address length
    Buffer.from('0001', 'hex'), // op: request
    MAC, // sender MAC
    Buffer.from([192, 0, 2, 100]), // sender IP = VIP
    MAC, // target MAC = interface MAC, as ucarp does
    Buffer.from([192, 0, 2, 100]), // target IP = VIP
    Buffer.alloc(18), // zero padding to the 60-byte minimum frame
  ]);
  assert.equal(frame.length, MIN_FRAME_LENGTH);
  assert.deepEqual(frame, expected);
});

test('gratuitous ARP rejects malformed input', () => {
  assert.throws(() => buildGratuitousArp(Buffer.alloc(5), '192.0.2.1'), /6 bytes/);
  assert.throws(() => buildGratuitousArp(MAC, '192.0.2'), /not an IPv4/);
  assert.throws(() => buildGratuitousArp(MAC, '2001:db8::1'), /not an IPv4/);
});

test('GarpSender validates before opening any socket', () => {
  assert.throws(() => new GarpSender(0, MAC), /ifindex/);
  assert.throws(() => new GarpSender(1, Buffer.alloc(4)), /6 bytes/);
  const sender = new GarpSender(1, MAC);
  // Nothing to send and a bad address must both be handled without touching the network.
  sender.send([]);
  assert.throws(() => sender.send(['not-an-ip']), /not an IPv4/);
  sender.close();
  assert.throws(() => sender.send(['192.0.2.1']), /closed/);
});
