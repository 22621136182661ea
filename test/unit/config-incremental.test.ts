import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { IncrementalLoader } from '../../src/config/incremental';
import { loadConfigText } from '../../src/config/load';
import type { HostInfo } from '../../src/config/types';
import { tempDir } from '../helpers/temp-dir';
import { mulberry32 } from '../helpers/sim';

const host: HostInfo = {
  interfaces: () =>
    new Map([
      ['eth0', { addresses: ['192.0.2.1'], addresses6: ['fe80::1'] }],
      ['eth1', { addresses: ['198.51.100.1'], addresses6: [] }],
    ]),
};

interface Model {
  top: Array<{ key: string; lines: string[] }>;
  groups: Array<{ name: string; lines: string[] }>;
  groupsAt: number;
  /** Before the first top-level key. */
  preamble: string[];
  sharedInterface: boolean;
  passwordFile: boolean;
  /** Takes back the last edit when it broke the file: the next edit starts from a good one. */
  undo?: () => void;
}

function render(m: Model): string {
  const out = [...m.preamble];
  const groups = () => {
    out.push('groups:');
    for (const g of m.groups) out.push(`  ${g.name}:`, ...g.lines);
  };
  m.top.forEach((s, i) => {
    if (i === m.groupsAt) groups();
    out.push(...s.lines);
  });
  if (m.groupsAt >= m.top.length) groups();
  return out.join('\n') + '\n';
}

function groupLines(r: () => number, n: number, dir: string, m?: Model): string[] {
  const pick = <T>(xs: T[]): T => xs[Math.floor(r() * xs.length)];
  const v6 = r() < 0.15;
  const lines = [`    vhid: ${n}`];
  if (!m?.sharedInterface || r() < 0.3) lines.push(`    interface: ${pick(['eth0', 'eth1', 'eth9'])}`);
  const addr = v6 ? `2001:db8::${n.toString(16)}` : `203.0.113.${n}`;
  if (r() < 0.5) lines.push(`    addresses: [${addr}/${v6 ? 64 : 24}]`);
  else {
    const second = r() < 0.3 ? [`      - ${v6 ? '2001:db8:1::' : '198.18.0.'}${n}/${v6 ? 128 : 32}`] : [];
    lines.push('    addresses:', `      - ${addr}/${v6 ? 64 : 24}`, ...second);
  }
  if (r() < 0.3) lines.push(`    advskew: ${Math.floor(r() * 255)} # skew`);
  if (r() < 0.2) lines.push(`    preempt: ${r() < 0.5}`);
  if (r() < 0.3) {
    if (m?.passwordFile) lines.push(`    password_file: ${pick(['pw-a', 'pw-b', path.join(dir, 'pw-a')])}`);
    else lines.push(`    password: "p ${n}"`);
  }
  if (r() < 0.15) lines.push('    upscript: |', '      /usr/local/bin/up', '', '      # kept in the script');
  if (r() < 0.15) lines.push(`    track: [${pick(['ping', 'link', 'ping', 'link', 'nosuch'])}]`);
  if (r() < 0.2) lines.push(pick(['    # a note', '', '# column 0 note', '      # deeper note']));
  return lines;
}

function model(r: () => number, dir: string): Model {
  const sharedInterface = r() < 0.5;
  const passwordFile = r() < 0.3;
  const defaults = ['defaults:', passwordFile ? '  password_file: pw-a' : '  password: s3cret'];
  if (sharedInterface) defaults.push(`  interface: ${r() < 0.9 ? 'eth0' : 'eth9'}`);
  const top: Model['top'] = [
    { key: 'defaults', lines: defaults },
    {
      key: 'logging',
      lines: [r() < 0.5 ? 'logging: { level: info, facility: none }' : 'logging:\n  level: debug'],
    },
    {
      key: 'trackers',
      lines: ['trackers:', '  ping:', '    script: /bin/true', '  link:', '    interface: eth0'],
    },
  ];
  const m: Model = { top, groups: [], groupsAt: 0, preamble: [], sharedInterface, passwordFile };
  m.groups = Array.from({ length: 2 + Math.floor(r() * 8) }, (_, i) => ({
    name: `g${i + 1}`,
    lines: groupLines(r, i + 1, dir, m),
  }));
  return {
    ...m,
    groupsAt: Math.floor(r() * (top.length + 1)),
    preamble: r() < 0.5 ? ['# ucarp', ''] : [],
  };
}

const EDITS: Array<(m: Model, r: () => number, dir: string) => string> = [
  function addGroup(m, r, dir) {
    const n = 100 + Math.floor(r() * 100);
    m.groups.splice(Math.floor(r() * (m.groups.length + 1)), 0, {
      name: `n${n}`,
      lines: groupLines(r, n, dir, m),
    });
    return 'add';
  },
  function removeGroup(m, r) {
    if (m.groups.length > 1) m.groups.splice(Math.floor(r() * m.groups.length), 1);
    return 'remove';
  },
  function changeKey(m, r) {
    const g = m.groups[Math.floor(r() * m.groups.length)];
    g.lines = g.lines.map((l) => l.replace(/advskew: \d+/, `advskew: ${Math.floor(r() * 255)}`));
    g.lines = [
      ...g.lines.filter((l) => !l.startsWith('    advbase')),
      `    advbase: ${1 + Math.floor(r() * 3)}`,
    ];
    return 'change';
  },
  function changeDefaults(m, r) {
    const d = m.top.find((t) => t.key === 'defaults');
    if (d)
      d.lines = [...d.lines.filter((l) => !l.startsWith('  advskew')), `  advskew: ${Math.floor(r() * 200)}`];
    return 'defaults';
  },
  function groupError(m, r) {
    const g = m.groups[Math.floor(r() * m.groups.length)];
    m.undo = () => g.lines.pop();
    const errors = [
      '    vhid: 300',
      '    colour: blue',
      '    advskew: [1',
      '   misindented: 1',
      `    addresses: [${'203.0.113.1'}]`,
      '    password: "\\q"',
      '    broadcast: true\n    mcast: 224.0.0.18',
      '    vhid: 1',
    ];
    g.lines.push(errors[Math.floor(r() * errors.length)]);
    return 'error';
  },
  function duplicateVhid(m) {
    if (m.groups.length < 2) return 'duplicate';
    const was = m.groups[1].lines[0];
    m.groups[1].lines[0] = m.groups[0].lines[0];
    m.undo = () => (m.groups[1].lines[0] = was);
    return 'duplicate';
  },
  function comment(m, r) {
    const g = m.groups[Math.floor(r() * m.groups.length)];
    g.lines.splice(Math.floor(r() * (g.lines.length + 1)), 0, r() < 0.5 ? '    # changed' : '# changed');
    return 'comment';
  },
  function reorder(m, r) {
    m.groups.reverse();
    if (r() < 0.5) m.top.reverse();
    return 'reorder';
  },
  function renameGroup(m, r) {
    const g = m.groups[Math.floor(r() * m.groups.length)];
    g.name = `${g.name}x`;
    return 'rename';
  },
  function repeatGroupName(m) {
    if (m.groups.length < 2) return 'repeat';
    const was = m.groups[1].name;
    m.groups[1].name = m.groups[0].name;
    m.undo = () => (m.groups[1].name = was);
    return 'repeat';
  },
];

function passwordDir(): string {
  const dir = tempDir('ucarp-incr-');
  fs.writeFileSync(path.join(dir, 'pw-a'), 'alpha\n', { mode: 0o600 });
  fs.writeFileSync(path.join(dir, 'pw-b'), 'beta\n', { mode: 0o644 });
  return dir;
}

test('random configurations and edits: the incremental result is the whole-file result, exactly', () => {
  const dir = passwordDir();
  const file = path.join(dir, 'ucarp.yaml');
  const paths = { incremental: 0, full: 0 };
  const incrementalEdits = new Set<string>();
  const why = new Map<string, number>();
  for (let seed = 1; seed <= Number(process.env.SEEDS ?? 150); seed++) {
    const r = mulberry32(seed);
    const loader = new IncrementalLoader();
    const m = model(r, dir);
    let text = render(m);
    assert.deepEqual(loader.loadText(text, file, host), loadConfigText(text, file, host), `seed ${seed}`);
    for (let step = 0; step < 6; step++) {
      const kind = EDITS[Math.floor(r() * EDITS.length)](m, r, dir);
      text = render(m);
      const got = loader.loadText(text, file, host);
      assert.deepEqual(
        got,
        loadConfigText(text, file, host),
        `seed ${seed} step ${step} (${kind}):\n${text}`,
      );
      const how = loader.last?.path ?? 'full';
      paths[how]++;
      why.set(`${kind} ${loader.last?.why ?? ''}`, (why.get(`${kind} ${loader.last?.why ?? ''}`) ?? 0) + 1);
      if (how === 'incremental') incrementalEdits.add(kind);
      m.undo?.();
      m.undo = undefined;
    }
  }
  // The comparison means something only if both paths were taken, after every kind of good edit.
  if (process.env.SEEDS) process.stderr.write(`${JSON.stringify([paths, [...why]])}\n`);
  assert.ok(paths.incremental > 300 && paths.full > 100, JSON.stringify([paths, [...why]]));
  for (const kind of ['add', 'remove', 'change', 'defaults', 'comment', 'reorder', 'rename'])
    assert.ok(incrementalEdits.has(kind), `${kind} never went incremental`);
});

test('a group added to a large file is the only part parsed; warnings point into the real file', () => {
  const lines = ['defaults:', '  password: s3cret', '  interface: eth9', 'groups:'];
  for (let i = 1; i <= 200; i++)
    lines.push(`  g${i}:`, `    vhid: ${i}`, `    addresses: [198.18.0.${i}/32]`);
  const before = lines.join('\n') + '\n';
  const after = before + '  extra:\n    vhid: 201\n    interface: eth8\n    addresses: [198.18.1.1/32]\n';
  const loader = new IncrementalLoader();
  loader.loadText(before, '/etc/ucarp.yaml', host);
  assert.equal(loader.last?.path, 'full');
  const got = loader.loadText(after, '/etc/ucarp.yaml', host);
  assert.deepEqual(loader.last, { path: 'incremental', parsed: 1, reused: 201 });
  assert.deepEqual(got, loadConfigText(after, '/etc/ucarp.yaml', host));
  assert.ok(got.ok);
  // eth9 comes from defaults (line 3), eth8 from the new group (line 608).
  const where = got.warnings.map((w) => `${w.line}:${w.column} ${w.path}`);
  assert.deepEqual(where, ['3:14 defaults.interface', '607:16 groups.extra.interface']);
});

test('a bad edit is reported exactly as a whole-file load reports it', () => {
  const good =
    'defaults:\n  password: pw\n  interface: eth0\ngroups:\n  a:\n    vhid: 1\n    addresses: [192.0.2.10/24]\n  b:\n    vhid: 2\n    addresses: [192.0.2.11/24]\n';
  const loader = new IncrementalLoader();
  loader.loadText(good, '/etc/ucarp.yaml', host);
  for (const bad of [
    good.replace('vhid: 2', 'vhid: 1'),
    good.replace('vhid: 2', 'vhid: 256'),
    good.replace('    addresses: [192.0.2.11/24]', '    addresses: [192.0.2.11'),
    good.replace('  b:', '  a:'),
  ]) {
    const got = loader.loadText(bad, '/etc/ucarp.yaml', host);
    assert.equal(got.ok, false);
    assert.deepEqual(got, loadConfigText(bad, '/etc/ucarp.yaml', host));
    assert.equal(loader.last?.path, 'full');
  }
  // The cache survived the bad edits: the good file again is all reuse.
  loader.loadText(good, '/etc/ucarp.yaml', host);
  assert.equal(loader.last?.path, 'incremental');
});

test('a password file is read again on every load, as a whole-file load reads it', () => {
  const dir = passwordDir();
  const file = path.join(dir, 'ucarp.yaml');
  const text =
    'defaults:\n  interface: eth0\n  password_file: pw-a\ngroups:\n  a:\n    vhid: 1\n    addresses: [192.0.2.10/24]\n  b:\n    vhid: 2\n    addresses: [192.0.2.11/24]\n';
  const loader = new IncrementalLoader();
  loader.loadText(text, file, host);
  fs.writeFileSync(path.join(dir, 'pw-a'), 'changed\n');
  const again = loader.loadText(text, file, host);
  assert.equal(loader.last?.path, 'incremental');
  assert.ok(again.ok);
  assert.equal(again.config.groups[0].password, 'changed');
  fs.rmSync(path.join(dir, 'pw-a'));
  const gone = loader.loadText(text, file, host);
  assert.deepEqual(gone, loadConfigText(text, file, host));
  assert.equal(gone.ok, false);
});
