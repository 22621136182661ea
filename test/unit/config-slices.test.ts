import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LineCounter, parseDocument } from 'yaml';
import { IncrementalLoader } from '../../src/config/incremental';
import { loadConfigText } from '../../src/config/load';
import { linePosition, splitConfig } from '../../src/config/slices';
import type { HostInfo } from '../../src/config/types';

const host: HostInfo = { interfaces: () => new Map([['eth0', { addresses: ['192.0.2.1'] }]]) };

const BASE = [
  '# ucarp',
  'defaults:',
  '  password: s3cret # shared',
  '  interface: eth0',
  'logging: { level: info, facility: none }',
  'groups:',
  '  # the web group',
  '  web:',
  '    vhid: 1',
  '    addresses: [192.0.2.10/24]',
  '',
  '# column 0, inside groups',
  '  db:',
  '    vhid: 2',
  '    addresses:',
  '      - 192.0.2.20/24',
  'trackers:',
  '  ping:',
  '    script: /bin/true',
].join('\n');

test('a plain file is cut into sections and group entries, comments kept with what they follow', () => {
  const split = splitConfig(BASE);
  assert.ok(split);
  assert.deepEqual(
    split.sections.map((s) => s.key),
    ['defaults', 'logging', 'trackers'],
  );
  assert.equal(split.groupsIndex, 2);
  assert.equal(split.groupsHead.text, 'groups:\n  # the web group\n');
  assert.deepEqual(
    split.entries.map((e) => [e.key, e.text]),
    [
      ['web', '  web:\n    vhid: 1\n    addresses: [192.0.2.10/24]\n\n# column 0, inside groups\n'],
      ['db', '  db:\n    vhid: 2\n    addresses:\n      - 192.0.2.20/24\n'],
    ],
  );
  for (const s of [...split.sections, split.groupsHead, ...split.entries])
    assert.equal(BASE.slice(s.start, s.start + s.text.length), s.text);
});

// Each is a small change to BASE that the scanner must refuse, so that the file is parsed whole.
const NOT_SIMPLE: Array<[string, string]> = [
  ['anchor', BASE.replace('  password: s3cret # shared', '  password: &pw s3cret')],
  ['alias', BASE.replace('    vhid: 2', '    vhid: *v')],
  ['tag', BASE.replace('    vhid: 2', '    vhid: !!int 2')],
  ['merge key', BASE.replace('    vhid: 2', '    <<: {vhid: 2}')],
  ['explicit key', BASE.replace('    vhid: 2', '    ? vhid\n    : 2')],
  ['flow groups', BASE.replace(/groups:[\s\S]*trackers:/, 'groups: {web: {vhid: 1}}\ntrackers:')],
  ['groups with a value on its line', BASE.replace('groups:', 'groups: null')],
  ['second document', `${BASE}\n---\na: 1`],
  ['document end', `${BASE}\n...`],
  ['directive', `%YAML 1.2\n---\n${BASE}`],
  ['tab', BASE.replace('    vhid: 2', '\tvhid: 2')],
  ['carriage return', BASE.replace(/\n/g, '\r\n')],
  ['byte order mark', `\uFEFF${BASE}`],
  ['entry shallower than the first', BASE.replace('  db:\n    vhid: 2', ' db:\n    vhid: 2')],
  ['line under groups shallower than the entries', BASE.replace('  # the web group\n  web:', '    web:')],
  ['sequence as a group', BASE.replace('  db:\n    vhid: 2', '  db:\n  - 2')],
  ['entry with a value on its line', BASE.replace('  db:', '  db: {vhid: 2}\n  dc:')],
  ['quoted group name', BASE.replace('  db:', '  "db":')],
  ['group name read as a number', BASE.replace('  db:', '  12:')],
  ['group name read as a boolean', BASE.replace('  db:', '  True:')],
  ['group name read as null', BASE.replace('  db:', '  null:')],
  ['repeated group', BASE.replace('  db:', '  web:')],
  ['repeated section', `${BASE}\ndefaults:\n  advskew: 1`],
  ['indented line before any key', `  x: 1\n${BASE}`],
  ['column-0 line that is no key', BASE.replace('trackers:', '- trackers')],
  ['no groups', BASE.replace(/groups:[\s\S]*trackers:/, 'trackers:')],
  ['empty groups', BASE.replace(/groups:[\s\S]*trackers:/, 'groups:\ntrackers:')],
];

test('every shape the scanner does not understand is refused, and a load parses it whole', () => {
  const good = splitConfig(BASE);
  assert.ok(good);
  for (const [what, text] of NOT_SIMPLE) {
    assert.equal(splitConfig(text), undefined, what);
    const loader = new IncrementalLoader();
    loader.loadText(BASE, '/etc/ucarp.yaml', host);
    const got = loader.loadText(text, '/etc/ucarp.yaml', host);
    assert.deepEqual(loader.last, { path: 'full', why: 'shape', parsed: 0, reused: 0 }, what);
    assert.deepEqual(got, loadConfigText(text, '/etc/ucarp.yaml', host), what);
  }
});

test('a slice that is not sound YAML on its own sends the file to the whole-file parse', () => {
  const loader = new IncrementalLoader();
  loader.loadText(BASE, '/etc/ucarp.yaml', host);
  // A flow sequence left open: the scanner cuts, the slice's parse fails.
  const text = BASE.replace('    addresses: [192.0.2.10/24]', '    addresses: [192.0.2.10/24');
  assert.ok(splitConfig(text));
  const got = loader.loadText(text, '/etc/ucarp.yaml', host);
  assert.equal(loader.last?.why, 'slice');
  assert.equal(got.ok, false);
  assert.deepEqual(got, loadConfigText(text, '/etc/ucarp.yaml', host));
});

test('linePosition gives the yaml library line counter positions for every offset', () => {
  for (const text of [BASE, `${BASE}\n`, 'a: 1', '\n\nb:\n  c: 1\n']) {
    const lines = new LineCounter();
    parseDocument(text, { lineCounter: lines });
    const split = splitConfig(text);
    const starts = split?.lineStarts ?? [0, ...[...text.matchAll(/\n/g)].map((m) => (m.index ?? 0) + 1)];
    for (let offset = 0; offset < text.length; offset++)
      assert.deepEqual(
        linePosition(starts, offset),
        lines.linePos(offset),
        `${JSON.stringify(text)} @${offset}`,
      );
  }
});
