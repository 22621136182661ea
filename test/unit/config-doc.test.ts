import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  DOC_PATH,
  EXAMPLE_PATH,
  ROOT,
  SCHEMA_PATH,
  generate,
  main,
  renderConfigDoc,
  type SchemaNode,
} from '../../src/tools/gen-config-doc';

const schema = (): SchemaNode =>
  JSON.parse(fs.readFileSync(path.join(ROOT, SCHEMA_PATH), 'utf8')) as SchemaNode;
const example = fs.readFileSync(path.join(ROOT, EXAMPLE_PATH), 'utf8');

/** The lines of the entry whose anchor is `id`, up to the next anchor. */
function entryOf(doc: string, id: string): string {
  const start = doc.indexOf(`<a id="${id}"></a>`);
  assert.ok(start >= 0, `no entry ${id}`);
  const end = doc.indexOf('<a id=', start + 1);
  return doc.slice(start, end < 0 ? undefined : end);
}

test('docs/configuration.md is exactly what the generator makes of the schema', () => {
  const current = fs.readFileSync(path.join(ROOT, DOC_PATH), 'utf8');
  assert.equal(
    current,
    generate(ROOT),
    `${DOC_PATH} is stale: npm run build && node dist/src/tools/gen-config-doc.js --write`,
  );
});

test('every key of every section has an entry', () => {
  const s = schema();
  const doc = renderConfigDoc(s, example);
  for (const k of Object.keys(s.properties ?? {})) assert.match(doc, new RegExp(`id="section-${k}"`));
  for (const section of ['logging', 'control', 'metrics']) {
    for (const k of Object.keys(s.properties?.[section]?.properties ?? {})) {
      assert.match(entryOf(doc, `${section}-${k}`), new RegExp(`### \`${section}\\.${k}\``));
    }
  }
  const group = s.$defs?.group;
  assert.ok(group);
  for (const k of Object.keys(group.properties ?? {})) {
    assert.match(entryOf(doc, `group-${k}`), new RegExp(`### \`${k}\``));
  }
  for (const k of Object.keys(s.properties?.defaults?.properties ?? {})) {
    assert.ok(doc.includes(`| [\`${k}\`](#group-${k}) |`), `defaults table lacks ${k}`);
  }
});

test('types, ranges, enums, patterns, defaults and examples come from the schema', () => {
  const s = schema();
  const defs = s.$defs ?? {};
  defs.vhid = { ...defs.vhid, minimum: 5, maximum: 7, examples: [6] };
  defs.script_timeout = { ...defs.script_timeout, exclusiveMinimum: 0, maximum: 9, default: 2 };
  defs.password = { ...defs.password, minLength: 1, maxLength: 1 };
  defs.interface = { ...defs.interface, pattern: '^a|b$', patternErrorMessage: 'must be a or b' };
  const level = s.properties?.logging?.properties?.level;
  assert.ok(level);
  level.enum = ['x', 'y'];
  const doc = renderConfigDoc(s, example);

  const vhid = entryOf(doc, 'group-vhid');
  assert.match(vhid, /- Type: integer\n/);
  assert.match(vhid, /- Allowed: 5\.\.7\n/);
  assert.match(vhid, /- Default: none \(required\)\n/);
  assert.match(vhid, /- Example: `vhid: 6`\n/);
  const timeout = entryOf(doc, 'group-script_timeout');
  assert.match(timeout, /- Allowed: > 0 and ≤ 9\n/);
  assert.match(timeout, /- Default: `2`\n/);
  assert.match(entryOf(doc, 'group-password'), /- Allowed: 1\.\.1 character\n/);
  // The pattern's `|` stays inside a code span of a list item, never in a table cell.
  assert.match(entryOf(doc, 'group-interface'), /- Allowed: must be a or b; pattern `\^a\|b\$`\n/);
  assert.match(entryOf(doc, 'group-srcip'), /- Default: not set\n/);
  assert.match(entryOf(doc, 'logging-level'), /- Allowed: one of `x`, `y`\n/);
  assert.match(
    entryOf(doc, 'group-addresses'),
    /- Type: array of strings\n- Allowed: at least 1 item; no duplicates; each item: /,
  );
  assert.match(doc, /\| \[`script_timeout`\]\(#group-script_timeout\) \| number \| `2` \|/);
});

test('the full example is the example configuration verbatim', () => {
  const doc = renderConfigDoc(schema(), 'groups: {} # marker\n');
  assert.match(entryOf(doc, 'full-example'), /```yaml\ngroups: \{\} # marker\n```\n$/);
});

test('a reference the generator cannot follow is an error, not a silent gap', () => {
  const s = schema();
  const group = s.$defs?.group;
  assert.ok(group?.properties);
  group.properties.vhid = { $ref: '#/$defs/nonexistent' };
  assert.throws(() => renderConfigDoc(s, example), /dangling \$ref #\/\$defs\/nonexistent/);
});

test('--check fails on a stale document and passes after --write', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'config-doc-'));
  try {
    for (const f of [SCHEMA_PATH, EXAMPLE_PATH]) {
      fs.mkdirSync(path.dirname(path.join(root, f)), { recursive: true });
      fs.copyFileSync(path.join(ROOT, f), path.join(root, f));
    }
    fs.mkdirSync(path.join(root, 'docs'));
    fs.writeFileSync(path.join(root, DOC_PATH), 'stale\n');
    const stderr = process.stderr.write;
    process.stderr.write = () => true;
    try {
      assert.equal(main(['--check'], root), 1);
      assert.equal(main(['--bogus'], root), 2);
    } finally {
      process.stderr.write = stderr;
    }
    assert.equal(main(['--write'], root), 0);
    assert.equal(main(['--check'], root), 0);
    assert.equal(fs.readFileSync(path.join(root, DOC_PATH), 'utf8'), generate(root));
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});
