import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { MAN_DIR, PAGES, generate, main, mdToRoff, roffText, usageOptions } from '../../src/tools/gen-man';
import { ROOT, SCHEMA_PATH, EXAMPLE_PATH, type SchemaNode } from '../../src/tools/gen-config-doc';
import { OPTIONS, USAGE_LINES } from '../../src/cli/ucarp-args';
import { USAGE } from '../../src/cli/ucarpctl';

const pages = generate(ROOT);

test('the pages in man/ are exactly what the generator makes of the sources', () => {
  for (const name of PAGES) {
    const file = path.join(ROOT, MAN_DIR, name);
    assert.ok(
      fs.existsSync(file),
      `${file} missing: npm run build && node dist/src/tools/gen-man.js --write`,
    );
    assert.equal(
      fs.readFileSync(file, 'utf8'),
      pages[name],
      `${MAN_DIR}/${name} is stale: npm run build && node dist/src/tools/gen-man.js --write`,
    );
  }
});

test('ucarp(8) documents every option of the option table, in both modes', () => {
  const page = pages['ucarp.8'];
  for (const o of OPTIONS) {
    // The help line names --mcastip by its usual prefix, --mcast.
    const long = o.long === 'mcastip' ? 'mcast' : o.long;
    assert.ok(page.includes(`\\fB\\-${o.short}\\fR`), `-${o.short}`);
    assert.ok(page.includes(`\\fB\\-\\-${roffText(long)}\\fR`), `--${long}`);
  }
  assert.match(page, /^\.SH SUPERVISOR OPTIONS$/m);
  const supervisor = page.slice(page.indexOf('.SH SUPERVISOR OPTIONS'));
  assert.ok(
    supervisor.includes('\\fB\\-\\-config\\fR') && supervisor.includes('\\fB\\-\\-check\\-config\\fR'),
  );
});

test('an option without a help line, or a help line without an option, is an error', () => {
  assert.throws(
    () => usageOptions(USAGE_LINES.filter((l) => !l.startsWith('--xparam'))),
    /no help line for --xparam/,
  );
  assert.throws(() => usageOptions([...USAGE_LINES, '--frobnicate (-Z): frobnicate']), /unknown option/);
});

test('ucarpctl(8) has every command and option of the usage text', () => {
  const page = pages['ucarpctl.8'];
  for (const cmd of ['status', 'demote', 'promote', 'reset', 'reload']) {
    assert.match(page, new RegExp(`^\\.TP\\n\\\\fB${cmd}\\\\fR`, 'm'), cmd);
  }
  for (const opt of ['--socket', '--config', '--help'])
    assert.ok(page.includes(`\\fB${roffText(opt)}\\fR`), opt);
  assert.ok(USAGE.includes('status [GROUP] [--json]'));
});

test('ucarp.yaml(5) has an entry for every key of the schema', () => {
  const page = pages['ucarp.yaml.5'];
  const schema = JSON.parse(fs.readFileSync(path.join(ROOT, SCHEMA_PATH), 'utf8')) as SchemaNode;
  for (const section of ['logging', 'control', 'metrics']) {
    for (const k of Object.keys(schema.properties?.[section]?.properties ?? {})) {
      assert.match(page, new RegExp(`^\\.B ${section}\\.${roffText(k).replace(/\\/g, '\\\\')}$`, 'm'), k);
    }
  }
  for (const k of Object.keys(schema.$defs?.group?.properties ?? {})) {
    assert.match(page, new RegExp(`^\\.B ${roffText(k).replace(/\\/g, '\\\\')}$`, 'm'), k);
  }
  // The example is there, without the editor line whose relative path means nothing installed.
  assert.ok(page.includes('groups:'));
  assert.ok(!page.includes('yaml\\-language\\-server'));
});

test('text that roff would take for requests or escapes is escaped', () => {
  assert.equal(roffText('.start'), '\\&.start');
  assert.equal(roffText("'quote"), "\\&'quote");
  assert.equal(roffText('a\\b -x'), 'a\\eb \\-x');
  assert.equal(mdToRoff('use `--json` or ``a`b``'), 'use \\fB\\-\\-json\\fR or \\fBa`b\\fR');
  assert.equal(mdToRoff('`.x` y'), '\\fB\\&.x\\fR y');
});

test('the pages render without warnings', (t) => {
  try {
    execFileSync('man', ['--version'], { stdio: 'ignore' });
  } catch {
    return t.skip('man (man-db) is not installed');
  }
  // lintian's check: whatever man and groff say on stderr.
  for (const name of PAGES) {
    const r = execFileSync(
      'sh',
      [
        '-c',
        'man --warnings -E UTF-8 -l -Tutf8 -Z "$1" 2>&1 >/dev/null',
        'sh',
        path.join(ROOT, MAN_DIR, name),
      ],
      { encoding: 'utf8', env: { ...process.env, MANWIDTH: '80', LC_ALL: 'C.UTF-8' } },
    );
    assert.equal(r, '', `${name}:\n${r}`);
  }
});

test('--check fails on stale pages and passes after --write', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'pk-man-'));
  try {
    for (const f of [SCHEMA_PATH, EXAMPLE_PATH, 'package.json']) {
      fs.mkdirSync(path.dirname(path.join(root, f)), { recursive: true });
      fs.copyFileSync(path.join(ROOT, f), path.join(root, f));
    }
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
    fs.appendFileSync(path.join(root, MAN_DIR, 'ucarpctl.8'), '.\\" edited\n');
    process.stderr.write = () => true;
    try {
      assert.equal(main(['--check'], root), 1);
    } finally {
      process.stderr.write = stderr;
    }
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});
