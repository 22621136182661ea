import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ErrorObject } from 'ajv';
import {
  PRECOMPILED_VALIDATOR,
  createAjv,
  loadPrecompiled,
  schema,
  schemaDigest,
  validateSchema,
  validatorOrigin,
} from '../../src/config/schema';
import { parseYaml } from '../../src/config/parse';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ucarp-validator-'));

test('validation uses the validator npm run build compiled from this schema, not one compiled per process', () => {
  const parsed = parseYaml('groups: {}\n', 'f.yaml');
  assert.ok(parsed.ok);
  validateSchema(parsed.data, parsed.source);
  assert.equal(validatorOrigin(), 'precompiled');
  assert.ok(loadPrecompiled(PRECOMPILED_VALIDATOR));
});

test('a precompiled validator made from another schema is ignored', () => {
  const stale = path.join(tmp, 'stale.js');
  fs.writeFileSync(stale, 'module.exports.validate = () => true;\nmodule.exports.digest = "0";\n');
  assert.equal(loadPrecompiled(stale), undefined);
  const current = path.join(tmp, 'current.js');
  fs.writeFileSync(
    current,
    `module.exports.validate = () => true;\nmodule.exports.digest = "${schemaDigest()}";\n`,
  );
  assert.equal(typeof loadPrecompiled(current), 'function');
  assert.equal(loadPrecompiled(path.join(tmp, 'missing.js')), undefined);
});

test('the precompiled validator reports exactly what the schema compiled at run time reports', () => {
  const precompiled = loadPrecompiled(PRECOMPILED_VALIDATOR);
  assert.ok(precompiled);
  const compiled = createAjv().compile(schema);
  const documents: unknown[] = [
    {},
    { groups: {} },
    { groups: { web: { vhid: 1, interface: 'eth0', addresses: ['192.0.2.10/24'], password: 'x' } } },
    { groups: { web: { vhid: 0, addresses: [], advskwe: 1, srcip: '300.1.1.1' } }, colour: 1 },
    { defaults: { vhid: 3, intreface: 'eth0' }, groups: { 'web server': 7, db: { vhid: 'x' } } },
    { logging: { level: 'loud' }, metrics: { listen: 'nowhere' }, groups: [] },
    { groups: { web: { vhid: 1, addresses: ['192.0.2.1/24', '192.0.2.1/24'], peers: ['a'] } } },
  ];
  const shape = (errors: ErrorObject[] | null | undefined) =>
    (errors ?? []).map((e) => ({ ...e, data: undefined, schema: e.schema, parentSchema: e.parentSchema }));
  for (const doc of documents) {
    assert.equal(precompiled(doc), compiled(doc), JSON.stringify(doc));
    assert.deepEqual(shape(precompiled.errors), shape(compiled.errors), JSON.stringify(doc));
  }
});
