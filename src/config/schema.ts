import { isIP } from 'node:net';
import Ajv2020 from 'ajv/dist/2020';
import type { ErrorObject, ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';
import schemaJson from '../../schemas/ucarp.schema.json';
import type { KeyPath } from './errors';
import type { YamlSource } from './parse';
import { PASSWORD_TOO_LONG } from './semantic';
import type { ConfigError, RawConfig } from './types';

export const schema: object = schemaJson;

let compiled: ValidateFunction | undefined;

/** Compiled once per process: compiling takes 100-250 ms here, validating 255 groups under 1 ms. */
function validator(): ValidateFunction {
  if (!compiled) {
    // verbose: errors carry their parentSchema, where patternErrorMessage and property lists live.
    const ajv = new Ajv2020({ strict: true, allowUnionTypes: true, allErrors: true, verbose: true });
    addFormats(ajv, ['ipv4']);
    // Keys holding one address take either family; semantic.ts checks it is the group's.
    ajv.addFormat('ip', { type: 'string', validate: (x: string) => isIP(x) !== 0 });
    // The editor keyword (VS Code, yaml-language-server) that replaces a regex in error messages.
    ajv.addKeyword({ keyword: 'patternErrorMessage', schemaType: 'string' });
    compiled = ajv.compile(schemaJson);
  }
  return compiled;
}

/** Validates against schemas/ucarp.schema.json; every ajv error becomes a positioned ConfigError. */
export function validateSchema(
  data: unknown,
  source: YamlSource,
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

function mapError(e: ErrorObject, data: unknown, source: YamlSource): ConfigError | undefined {
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
