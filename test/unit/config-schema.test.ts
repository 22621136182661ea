import { test } from 'node:test';
import assert from 'node:assert/strict';
import { schema } from '../../src/config';

interface SchemaNode {
  $ref?: string;
  description?: string;
  default?: unknown;
  examples?: unknown[];
  properties?: Record<string, SchemaNode>;
  additionalProperties?: boolean | SchemaNode;
  [key: string]: unknown;
}

const root = schema as SchemaNode;
const defs = root.$defs as Record<string, SchemaNode>;

function resolve(node: SchemaNode): SchemaNode {
  return node.$ref ? defs[node.$ref.replace('#/$defs/', '')] : node;
}

test('the schema is draft 2020-12 with an $id', () => {
  assert.equal(root.$schema, 'https://json-schema.org/draft/2020-12/schema');
  assert.equal(typeof root.$id, 'string');
});

test('every object in the schema rejects unknown keys', () => {
  const visit = (node: SchemaNode, at: string): void => {
    if (node.type === 'object' && at !== '/properties/groups' && at !== '/properties/trackers')
      assert.equal(node.additionalProperties, false, at);
    for (const [name, child] of Object.entries(node.properties ?? {}))
      visit(child, `${at}/properties/${name}`);
  };
  visit(root, '');
  for (const [name, def] of Object.entries(defs)) visit(def, `/$defs/${name}`);
  assert.deepEqual(resolve(root.properties?.groups.additionalProperties as SchemaNode), defs.group);
  assert.deepEqual(resolve(root.properties?.trackers.additionalProperties as SchemaNode), defs.tracker);
});

test('every key has a description and examples, for the generated documentation', () => {
  const visit = (node: SchemaNode, at: string): void => {
    for (const [name, child] of Object.entries(node.properties ?? {})) {
      const target = resolve(child);
      assert.ok((target.description ?? '').length > 20, `${at}.${name} description`);
      assert.ok(Array.isArray(target.examples) && target.examples.length > 0, `${at}.${name} examples`);
      visit(target, `${at}.${name}`);
    }
  };
  visit(root, '');
  visit(defs.group, 'group');
});

test('defaults accepts exactly the group settings except vhid and addresses', () => {
  const groupKeys = Object.keys(defs.group.properties ?? {}).filter((k) => k !== 'vhid' && k !== 'addresses');
  const defaultKeys = Object.keys(root.properties?.defaults.properties ?? {});
  assert.deepEqual([...defaultKeys].sort(), [...groupKeys].sort());
  for (const key of defaultKeys) {
    assert.deepEqual(root.properties?.defaults.properties?.[key], defs.group.properties?.[key], key);
  }
});
