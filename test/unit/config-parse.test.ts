import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseDocument } from 'yaml';
import { duplicateKeys, parseYaml } from '../../src/config/parse';

// Documents whose repeated keys the library's own (quadratic) check and duplicateKeys() must
// find alike: scalars equal by value, not by spelling or type; tagged, anchored, explicit and
// empty keys; nested block and flow maps; collection and alias keys, which never repeat.
const DOCUMENTS = [
  'a: 1\nb: 2\na: 3\n',
  'groups:\n  web: {vhid: 1}\n  db: {vhid: 2, vhid: 3}\n  web: {}\n',
  '1: a\n"1": b\n1: c\n',
  '? [a]\n: 1\n? [a]\n: 2\n',
  '&x a: 1\na: 2\n',
  'a: 1\n!!str a: 2\n',
  'x: &k b\n*k : 2\nb: 3\n',
  ': 1\n: 2\n',
  '.nan: 1\n.nan: 2\n',
  'null: 1\n~: 2\n',
  'true: 1\nTrue: 2\n',
  '0x10: 1\n16: 2\n',
  '- {a: 1, a: 2}\n- {b: 1}\n- [ {c: 1, c: 2} ]\n',
  '? a\n: 1\n? a\n: 2\n',
  'a:\n  b: 1\n  b: 2\n  c:\n    d: 1\n    d: 1\n',
];

test('duplicateKeys reports exactly the keys the yaml library reports with uniqueKeys: true', () => {
  for (const text of DOCUMENTS) {
    const expected = parseDocument(text, { uniqueKeys: true })
      .errors.filter((e) => e.code === 'DUPLICATE_KEY')
      .map((e) => e.pos[0]);
    assert.deepEqual(
      duplicateKeys(parseDocument(text, { uniqueKeys: false })),
      expected,
      JSON.stringify(text),
    );
  }
});

test('a repeated group is an error at the second key, with its path', () => {
  const r = parseYaml('groups:\n  web: {vhid: 1}\n  db: {vhid: 2}\n  web: {vhid: 3}\n', 'f.yaml');
  assert.equal(r.ok, false);
  assert.deepEqual(!r.ok && r.errors, [
    {
      file: 'f.yaml',
      line: 4,
      column: 3,
      path: 'groups.web',
      message: 'duplicate key (YAML keys must be unique)',
    },
  ]);
});

test('locating an error in a large map finds the first pair of that name', () => {
  const groups = Array.from({ length: 2000 }, (_, i) => `  g${i}: {vhid: ${(i % 255) + 1}}`);
  const r = parseYaml(`groups:\n${groups.join('\n')}\n`, 'f.yaml');
  assert.ok(r.ok);
  const at = r.ok ? r.source.locate(['groups', 'g1999', 'vhid'], 'value') : undefined;
  assert.deepEqual(at && { line: at.line, column: at.column }, { line: 2001, column: 17 });
  const key = r.ok ? r.source.locate(['groups', 'g7'], 'key') : undefined;
  assert.deepEqual(key && { line: key.line, column: key.column }, { line: 9, column: 3 });
});
