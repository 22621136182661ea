import { createHash } from 'node:crypto';
import path from 'node:path';
import type Ajv2020 from 'ajv/dist/2020';
import type { ErrorObject, ValidateFunction } from 'ajv';
import schemaJson from '../../schemas/ucarp.schema.json';
import type { KeyPath } from './errors';
import { FORMATS } from './formats';
import type { Locator } from './parse';
import { PASSWORD_TOO_LONG } from './semantic';
import type { ConfigError, RawConfig } from './types';

export const schema: object = schemaJson;

/**
 * The validator compiled ahead of time by `npm run build` (src/tools/gen-validator.ts), next to
 * this file. Compiling at run time costs 60-100 ms of CPU, paid by every start and, because the
 * configuration loader's thread is let go when idle (src/config/off-thread.ts), by most reloads.
 */
export const PRECOMPILED_VALIDATOR = path.join(__dirname, 'schema-validator.js');

/** The ajv instance the schema is compiled with, at run time or ahead of it. */
export function createAjv(opts: { source?: boolean } = {}): Ajv2020 {
  // Loaded only here: a process using the precompiled validator is spared ~30 ms of loading the
  // compiler.
  const { default: Ajv, _ } = require('ajv/dist/2020') as typeof import('ajv/dist/2020');
  const addFormats = (require('ajv-formats') as typeof import('ajv-formats')).default;
  // verbose: errors carry their parentSchema, where patternErrorMessage and property lists live.
  const ajv = new Ajv({
    strict: true,
    allowUnionTypes: true,
    allErrors: true,
    verbose: true,
    // The precompiled validator finds the formats that are functions in formats.ts.
    code: { source: opts.source === true, formats: _`require("./formats").FORMATS` },
  });
  addFormats(ajv, ['ipv4']);
  ajv.addFormat('ip', FORMATS.ip);
  // The editor keyword (VS Code, yaml-language-server) that replaces a regex in error messages.
  ajv.addKeyword({ keyword: 'patternErrorMessage', schemaType: 'string' });
  return ajv;
}

/** Identifies the schema a precompiled validator was made from. */
export function schemaDigest(): string {
  return createHash('sha256').update(JSON.stringify(schemaJson)).digest('hex');
}

/**
 * The precompiled validator in `file`, if there is one and it was made from this schema: a
 * build that skipped the generator after a schema change must not validate against the old one.
 */
export function loadPrecompiled(file: string): ValidateFunction | undefined {
  let mod: { digest?: unknown; validate?: unknown };
  try {
    mod = require(file) as typeof mod;
  } catch {
    return undefined;
  }
  return mod.digest === schemaDigest() && typeof mod.validate === 'function'
    ? (mod.validate as ValidateFunction)
    : undefined;
}

let compiled: { validate: ValidateFunction; how: 'precompiled' | 'compiled' } | undefined;

/** Loaded or compiled once per process: validating 255 groups then takes under 1 ms. */
function validator(): ValidateFunction {
  if (!compiled) {
    const ready = loadPrecompiled(PRECOMPILED_VALIDATOR);
    compiled = ready
      ? { validate: ready, how: 'precompiled' }
      : { validate: createAjv().compile(schemaJson), how: 'compiled' };
  }
  return compiled.validate;
}

/** Where this process's validator came from (after its first use); for tests. */
export function validatorOrigin(): 'precompiled' | 'compiled' | undefined {
  return compiled?.how;
}

/** Validates against schemas/ucarp.schema.json; every ajv error becomes a positioned ConfigError. */
export function validateSchema(
  data: unknown,
  source: Locator,
): { ok: true; config: RawConfig } | { ok: false; errors: ConfigError[] } {
  const validate = validator();
  if (validate(data)) {
    const config = data as RawConfig & { groups?: RawConfig['groups'] | null };
    // No groups is valid (an idle daemon, e.g. the example file a package installs); from here
    // on it is simply an empty map.
    config.groups ??= {};
    return { ok: true, config: config as RawConfig };
  }
  const errors: ConfigError[] = [];
  for (const e of validate.errors ?? []) {
    const mapped = mapError(e, data, source);
    if (mapped) errors.push(mapped);
  }
  return { ok: false, errors };
}

function mapError(e: ErrorObject, data: unknown, source: Locator): ConfigError | undefined {
  const path = pointerToPath(e.instancePath, data);
  const parent = (e.parentSchema ?? {}) as Record<string, unknown>;
  const params = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'additionalProperties': {
      const key = String(params.additionalProperty);
      return source.error([...path, key], 'key', unknownKeyMessage(key, path, parent));
    }
    case 'required':
      return source.error(path, 'value', `must have required property '${String(params.missingProperty)}'`);
    case 'propertyNames': {
      const names = parent.propertyNames as Record<string, unknown> | undefined;
      const message = typeof names?.patternErrorMessage === 'string' ? names.patternErrorMessage : e.message;
      return source.error([...path, String(params.propertyName)], 'key', message ?? 'invalid key');
    }
    case 'uniqueItems': {
      const [first, second] = [Number(params.i), Number(params.j)].sort((a, b) => a - b);
      return source.error([...path, second], 'value', `duplicate of item ${first}`);
    }
    case 'type':
      return source.error(path, 'value', `must be ${typeName(String(params.type))}`);
    case 'enum':
      return source.error(path, 'value', `must be one of: ${(params.allowedValues as unknown[]).join(', ')}`);
    case 'pattern':
      // propertyNames reports its inner failure separately, without saying which key: skip it.
      if (e.schemaPath.includes('/propertyNames/')) return undefined;
      return source.error(
        path,
        'value',
        typeof parent.patternErrorMessage === 'string' ? parent.patternErrorMessage : `${e.message}`,
      );
    case 'format':
      return source.error(
        path,
        'value',
        params.format === 'ipv4'
          ? 'must be an IPv4 address'
          : params.format === 'ip'
            ? 'must be an IPv4 or IPv6 address'
            : `${e.message}`,
      );
    case 'minItems':
      return source.error(path, 'value', params.limit === 1 ? 'must not be empty' : `${e.message}`);
    case 'maxLength':
      // The schema counts characters for editors; ucarp's limit is in bytes: say it one way.
      if (path[path.length - 1] === 'password') return source.error(path, 'value', PASSWORD_TOO_LONG);
      return source.error(path, 'value', `${e.message}`);
    case 'minProperties':
      return source.error(path, 'value', params.limit === 1 ? 'must not be empty' : `${e.message}`);
    default:
      return source.error(path, 'value', e.message ?? e.keyword);
  }
}

function unknownKeyMessage(key: string, path: KeyPath, parent: Record<string, unknown>): string {
  if (path.length === 1 && path[0] === 'defaults' && (key === 'vhid' || key === 'addresses')) {
    return `unknown key: ${key} identifies a group and cannot be a default`;
  }
  const known = Object.keys((parent.properties ?? {}) as Record<string, unknown>);
  const suggestion = closest(key, known);
  return suggestion
    ? `unknown key (did you mean '${suggestion}'?)`
    : `unknown key (expected one of: ${known.join(', ')})`;
}

/** The known key within a small edit distance of a typo, if there is exactly one best. */
function closest(word: string, candidates: string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.max(1, Math.min(3, Math.floor(word.length / 3)));
  for (const candidate of candidates) {
    const d = editDistance(word.toLowerCase(), candidate);
    if (d <= bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min(previous[j] + 1, current[j - 1] + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length];
}

const TYPE_NAMES: Record<string, string> = {
  object: 'a map (key: value)',
  array: 'a list',
  integer: 'an integer',
  number: 'a number',
  string: 'a string',
  boolean: 'true or false',
};

/** ajv reports a list of allowed types as `object,null`. */
function typeName(type: string): string {
  return type
    .split(',')
    .map((t) => TYPE_NAMES[t] ?? t)
    .join(' or ');
}

/** JSON pointer → key path, with array indexes as numbers (they print as [i]). */
function pointerToPath(pointer: string, data: unknown): KeyPath {
  if (pointer === '') return [];
  const path: Array<string | number> = [];
  let node = data;
  for (const raw of pointer.slice(1).split('/')) {
    const segment = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (Array.isArray(node)) {
      const index = Number(segment);
      path.push(index);
      node = node[index];
    } else {
      path.push(segment);
      node =
        node !== null && typeof node === 'object' ? (node as Record<string, unknown>)[segment] : undefined;
    }
  }
  return path;
}
