// The record of added addresses (runtime/address-record.ts): written at sync(), which the
// address changes' socket calls before each datagram, or at the end of the run that recorded
// them; a journal that survives a crash at any instant, folded into a snapshot after a burst.
import { beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { AddressRecord, type RecordedAddress } from '../../src/runtime/address-record';
import { fakeLog } from '../helpers/fake-log';
import { tempDir } from '../helpers/temp-dir';

const addr = (last: number, group = `g${last}`): RecordedAddress => ({
  ifname: 'eth0',
  address: `192.0.2.${last}`,
  prefixlen: 32,
  group,
});

/** What a new run would find in the file, as a sorted list of addresses. */
function reread(file: string): string[] {
  return new AddressRecord(file, fakeLog().log)
    .load()
    .map((a) => a.address)
    .sort();
}

describe('AddressRecord', () => {
  const root = tempDir('ucarp-record-');
  let dir: string;
  let file: string;
  let n = 0;
  beforeEach(() => {
    dir = path.join(root, String(n++));
    fs.mkdirSync(dir);
    file = path.join(dir, 'run', 'control.addresses.json');
  });

  it('recorded addresses are in the file after sync(), which runs before each kernel request', async () => {
    const r = new AddressRecord(file, fakeLog().log);
    r.add(addr(1));
    r.sync();
    // A daemon killed right after (the datagram about to leave) leaves it recorded.
    assert.deepEqual(reread(file), ['192.0.2.1']);
    r.add(addr(2));
    r.add(addr(3));
    r.remove(addr(1));
    r.sync();
    assert.deepEqual(reread(file), ['192.0.2.2', '192.0.2.3']);
    // Without a sync, at the end of the synchronous run that recorded it.
    r.add(addr(4));
    await Promise.resolve();
    assert.deepEqual(reread(file), ['192.0.2.2', '192.0.2.3', '192.0.2.4']);
    assert.equal(r.has(addr(2)), true);
    assert.equal(r.has(addr(1)), false);
    r.close();
  });

  it('a burst costs one small append per change, not a rewrite of the whole record', () => {
    const r = new AddressRecord(file, fakeLog().log);
    r.add(addr(1));
    r.sync();
    const snapshot = fs.readFileSync(file, 'utf8');
    for (let i = 2; i <= 200; i++) {
      r.add(addr(i));
      if (i % 64 === 0) r.sync();
    }
    r.sync();
    const text = fs.readFileSync(file, 'utf8');
    assert.ok(text.startsWith(snapshot), 'the snapshot is left as it was');
    assert.equal(text.split('\n').filter(Boolean).length, 200);
    assert.equal(reread(file).length, 200);
    r.close();
  });

  it('a torn last line (a crash mid-append) is ignored without a warning; its address was never added', () => {
    const r = new AddressRecord(file, fakeLog().log);
    r.add(addr(1));
    r.sync();
    r.add(addr(2));
    r.close();
    fs.appendFileSync(file, '{"add":{"ifname":"eth0","addre');
    const logs = fakeLog();
    const loaded = new AddressRecord(file, logs.log).load();
    assert.deepEqual(loaded.map((a) => a.address).sort(), ['192.0.2.1', '192.0.2.2']);
    assert.equal(logs.lines.length, 0);
  });

  it("reads version 1's file (one snapshot line), and the next run's changes start from it", () => {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, JSON.stringify({ version: 1, addresses: [addr(7), addr(8)] }) + '\n');
    const r = new AddressRecord(file, fakeLog().log);
    assert.deepEqual(
      r.load().map((a) => a.group),
      ['g7', 'g8'],
    );
    r.remove(addr(7));
    r.add(addr(9));
    r.sync();
    assert.deepEqual(reread(file), ['192.0.2.8', '192.0.2.9']);
    r.close();
  });

  it('the journal is folded into one snapshot after the burst that grew it', async () => {
    const r = new AddressRecord(file, fakeLog().log);
    for (let i = 1; i <= 254; i++) r.add(addr(i));
    r.sync();
    for (let round = 0; round < 5; round++) {
      for (let i = 1; i <= 254; i++) r.remove(addr(i));
      for (let i = 1; i <= 254; i++) r.add(addr(i));
      r.sync();
    }
    const before = fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).length;
    assert.ok(before > 1024, `${before} lines before folding`);
    await new Promise((res) => setImmediate(res));
    const after = fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).length;
    assert.ok(after < before, `${after} lines after folding`);
    assert.equal(reread(file).length, 254);
    // Appends go on into the new file.
    r.remove(addr(1));
    r.sync();
    assert.equal(reread(file).length, 253);
    r.close();
    assert.equal(
      fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).length,
      1,
      'closed as one snapshot',
    );
  });

  it('a record that cannot be written logs once and still lets the address be added', () => {
    fs.writeFileSync(path.join(dir, 'run'), 'not a directory');
    const logs = fakeLog();
    const r = new AddressRecord(file, logs.log);
    r.add(addr(1));
    r.sync();
    r.add(addr(2));
    r.sync();
    assert.equal(r.has(addr(2)), true);
    assert.equal(logs.at('error').filter((l) => /cannot write the address record/.test(l)).length, 1);
  });

  it('without a file nothing is written', () => {
    const r = new AddressRecord(null, fakeLog().log);
    r.add(addr(1));
    assert.equal(r.has(addr(1)), true);
    assert.deepEqual(r.load(), []);
    r.close();
  });
});
