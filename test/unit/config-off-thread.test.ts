import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ConfigLoader, decodeResult, encodeResult, LOADER_NICE } from '../../src/config/off-thread';
import { loadConfig } from '../../src/config/load';
import { systemHostInfo } from '../../src/config/host';
import type { Config, LoadResult } from '../../src/config/types';
import { tempDir } from '../helpers/temp-dir';

const dir = tempDir('ucarp-offthread-');

// The loader's host facts are the real host's: groups name `lo`, which every host has.
function file(groups: number, extra = ''): string {
  const lines = [
    'logging: { level: info, facility: none }',
    'defaults:',
    '  password: s3cret',
    '  interface: lo',
    '  srcip: 127.0.0.1',
    'groups:',
  ];
  for (let i = 1; i <= groups; i++)
    lines.push(`  g${i}:`, `    vhid: ${i}`, `    addresses: [198.18.0.${i}/32]`);
  return lines.join('\n') + '\n' + extra;
}

function config(r: LoadResult): Config {
  if (!r.ok) assert.fail(JSON.stringify(r.errors));
  return r.config;
}

test('a reload through the worker parses the added group only and sends only it', async () => {
  const f = path.join(dir, 'added.yaml');
  const loader = new ConfigLoader();
  try {
    fs.writeFileSync(f, file(50));
    const first = config(await loader.load(f));
    assert.equal(loader.last?.path, 'full');
    fs.writeFileSync(f, file(50, '  added:\n    vhid: 99\n    addresses: [198.18.1.1/32]\n'));
    const second = await loader.load(f);
    assert.deepEqual(loader.last, { path: 'incremental', parsed: 1, reused: 52 });
    assert.deepEqual(second, loadConfig(f, systemHostInfo()));
    // Unchanged groups came back as this thread's own objects: the reload's diff sees them
    // unchanged by identity, and they were never copied between threads.
    const groups = config(second).groups;
    for (let i = 0; i < 50; i++) assert.equal(groups[i], first.groups[i]);
    assert.notEqual(groups[50], undefined);
    assert.equal(groups[50].name, 'added');
  } finally {
    await loader.close();
  }
});

/** The nice value of each thread of this process (field 19 of /proc/self/task/T/stat). */
function threadNices(): number[] {
  return fs.readdirSync('/proc/self/task').map((t) => {
    const stat = fs.readFileSync(`/proc/self/task/${t}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
  });
}

test('the loader thread yields the CPU to the main thread, which keeps its nice value', async () => {
  const f = path.join(dir, 'nice.yaml');
  const before = threadNices().filter((n) => n === LOADER_NICE).length;
  const loader = new ConfigLoader();
  try {
    fs.writeFileSync(f, file(3));
    config(await loader.load(f));
    assert.equal(threadNices().filter((n) => n === LOADER_NICE).length, before + 1);
    const main = fs.readFileSync('/proc/self/stat', 'utf8');
    assert.equal(Number(main.slice(main.lastIndexOf(')') + 2).split(' ')[16]), 0);
  } finally {
    await loader.close();
  }
});

test('a reply builds on the requester’s last result only when the worker sent nothing since', () => {
  const r1 = loadConfigResult();
  const sent = { seq: 1, groups: new Map(config(r1).groups.map((g) => [g.name, g])) };
  // Same objects, asked for on top of result 1: names only.
  const delta = encodeResult({ id: 2, file: 'x', base: 1 }, r1, sent);
  assert.deepEqual(delta.groups, ['a', 'b']);
  assert.deepEqual(decodeResult(delta, sent), r1);
  // Asked on top of another result, or without one: the whole result.
  assert.equal(encodeResult({ id: 2, file: 'x', base: 7 }, r1, sent).groups, undefined);
  assert.equal(encodeResult({ id: 2, file: 'x' }, r1, sent).groups, undefined);
  // A base this side does not hold cannot be decoded (the loader then loads in-thread).
  assert.equal(decodeResult(delta, { seq: 5, groups: sent.groups }), undefined);
  assert.equal(decodeResult(delta, undefined), undefined);
});

function loadConfigResult(): LoadResult {
  const f = path.join(dir, 'two.yaml');
  fs.writeFileSync(
    f,
    'defaults:\n  password: pw\n  interface: lo\n  srcip: 127.0.0.1\ngroups:\n  a:\n    vhid: 1\n    addresses: [198.18.0.1/32]\n  b:\n    vhid: 2\n    addresses: [198.18.0.2/32]\n',
  );
  return loadConfig(f, systemHostInfo());
}
