import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, visit } from 'yaml';
import type { Document, Node, Pair, YAMLMap } from 'yaml';
import { formatPath, type KeyPath } from './errors';
import type { ConfigError } from './types';

/** Which part of a node an error points at. */
export type Target = 'key' | 'value';

export interface Position {
  line: number;
  column: number;
  /** Offset in the text, to order nodes. */
  offset: number;
}

/** What turns a key path into a position in the file: all that the checks after parsing need. */
export interface Locator {
  locate(path: KeyPath, target: Target): Position;
  error(path: KeyPath, target: Target, message: string): ConfigError;
}

/**
 * A parsed YAML document that remembers where every node came from, so that any error found on
 * the plain data (by ajv or by semantic checks) can be reported at `file:line:column`.
 */
export class YamlSource implements Locator {
  constructor(
    readonly file: string,
    private readonly doc: Document.Parsed,
    private readonly lines: LineCounter,
  ) {}

  /**
   * Each map's pairs by key name, built when an error is first located in it: a file with
   * thousands of groups and a warning for each must not search the groups map once per warning.
   */
  private readonly pairIndex = new WeakMap<YAMLMap, Map<string, Pair>>();

  /**
   * Position of the node at `path`. `key` points at the map key naming the node (for unknown or
   * conflicting keys), `value` at the node itself (for wrong values, and for a map that misses a
   * required key). When the path leads nowhere, the deepest node found is used.
   */
  locate(path: KeyPath, target: Target): Position {
    let node: unknown = this.doc.contents;
    let key: unknown = null;
    for (const segment of path) {
      node = this.deref(node);
      if (isMap(node)) {
        const pair = this.pairOf(node, String(segment));
        if (!pair) break;
        key = pair.key;
        node = pair.value;
      } else if (isSeq(node) && typeof segment === 'number' && segment < node.items.length) {
        key = null;
        node = node.items[segment];
      } else {
        break;
      }
    }
    const keyOffset = rangeStart(key);
    const valueOffset = isEmptyScalar(node) ? undefined : rangeStart(node);
    const offset = target === 'key' ? (keyOffset ?? valueOffset) : (valueOffset ?? keyOffset);
    return this.position(offset ?? 0);
  }

  error(path: KeyPath, target: Target, message: string): ConfigError {
    const { line, column } = this.locate(path, target);
    return { file: this.file, line, column, path: formatPath(path), message };
  }

  position(offset: number): Position {
    const { line, col } = this.lines.linePos(offset);
    return { line, column: col, offset };
  }

  /** Key path of the map key that starts exactly at `offset` (where YAML reports a duplicate key). */
  keyPathAt(offset: number): KeyPath {
    const walk = (node: unknown, path: Array<string | number>): KeyPath | undefined => {
      if (isMap(node)) {
        for (const pair of node.items) {
          const name = keyName(pair);
          if (name === undefined) continue;
          if (rangeStart(pair.key) === offset) return [...path, name];
          const found = walk(pair.value, [...path, name]);
          if (found) return found;
        }
      } else if (isSeq(node)) {
        for (let i = 0; i < node.items.length; i++) {
          const found = walk(node.items[i], [...path, i]);
          if (found) return found;
        }
      }
      return undefined;
    };
    return walk(this.doc.contents, []) ?? [];
  }

  /** The first pair named `name`, as a search from the start would find it. */
  private pairOf(map: YAMLMap, name: string): Pair | undefined {
    let index = this.pairIndex.get(map);
    if (!index) {
      index = new Map();
      for (const pair of map.items as Pair[]) {
        const k = keyName(pair);
        if (k !== undefined && !index.has(k)) index.set(k, pair);
      }
      this.pairIndex.set(map, index);
    }
    return index.get(name);
  }

  private deref(node: unknown): unknown {
    return isAlias(node) ? node.resolve(this.doc) : node;
  }
}

function keyName(pair: Pair<unknown, unknown>): string | undefined {
  return isScalar(pair.key) ? String(pair.key.value) : undefined;
}

function rangeStart(node: unknown): number | undefined {
  const range = (node as Node | null)?.range;
  return range ? range[0] : undefined;
}

/** `key:` with nothing after it: the null scalar has no text of its own, so point at the key. */
function isEmptyScalar(node: unknown): boolean {
  return isScalar(node) && node.value === null && node.source === '';
}

/**
 * Messages of the yaml library that speak to its API user rather than to the file's author, and
 * those that quote the document. A quoted tag, alias, escape or directive may be a password
 * written without quotes (`password: !x9` is a tag to YAML, `*x9` an alias, `"\x9"` an escape),
 * and configuration errors are printed by --check-config and logged on reload.
 */
const YAML_MESSAGES: Partial<Record<string, string>> = {
  DUPLICATE_KEY: 'duplicate key (YAML keys must be unique)',
  MULTIPLE_DOCS: 'the file must contain a single YAML document (remove the second ---)',
  BAD_ALIAS: 'unknown alias (a value starting with * must be quoted)',
  BAD_DIRECTIVE: 'invalid or unsupported directive (a line starting with %)',
  BAD_DQ_ESCAPE: 'invalid escape sequence in a double-quoted string (use single quotes, or \\\\ for \\)',
  BAD_SCALAR_START: 'a plain value cannot start with @, ` or % (quote it)',
  TAG_RESOLVE_FAILED: 'invalid or unknown tag (a value starting with ! must be quoted)',
};

function yamlMessage(code: string, message: string): string {
  // "Block scalar header includes extra characters: |x9…" quotes what follows the colon.
  return YAML_MESSAGES[code] ?? (code === 'UNEXPECTED_TOKEN' ? message.replace(/: [\s\S]*$/, '') : message);
}

export type ParseResult =
  { ok: true; source: YamlSource; data: unknown } | { ok: false; errors: ConfigError[] };

/**
 * Parses YAML keeping positions. Duplicate keys are errors (the later value would silently win),
 * and so are YAML warnings such as unknown tags: a configuration must mean exactly what it says.
 * Once the YAML itself is broken the data is not validated further, because the tree the parser
 * recovered may not be what the author meant and would produce misleading follow-up errors.
 */
export function parseYaml(text: string, file: string): ParseResult {
  const lines = new LineCounter();
  // The library's own unique-keys check compares each key with every earlier one of its map:
  // quadratic in the number of groups (a third of the parse at 4080). duplicateKeys() finds
  // the same keys in one pass.
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: false, prettyErrors: false });
  const source = new YamlSource(file, doc, lines);
  const problems: Array<{ offset: number; code: string; message: string }> = [
    ...[...doc.errors, ...doc.warnings].map((e) => ({ offset: e.pos[0], code: e.code, message: e.message })),
    ...duplicateKeys(doc).map((offset) => ({
      offset,
      code: 'DUPLICATE_KEY',
      message: 'Map keys must be unique',
    })),
  ];
  if (problems.length > 0) {
    return {
      ok: false,
      errors: problems.map((e) => {
        const { line, column } = source.position(e.offset);
        const path = e.code === 'DUPLICATE_KEY' ? formatPath(source.keyPathAt(e.offset)) : '';
        const message = yamlMessage(e.code, e.message);
        return { file, line, column, path, message };
      }),
    };
  }
  try {
    return { ok: true, source, data: doc.toJS({ maxAliasCount: 1000 }) };
  } catch (err) {
    // toJS throws for aliases to anchors defined later, which the parser does not report; its
    // message ends with the alias's name.
    const message = (err as Error).message.startsWith('Unresolved alias')
      ? (YAML_MESSAGES.BAD_ALIAS as string)
      : (err as Error).message;
    return { ok: false, errors: [{ file, line: 1, column: 1, path: '', message }] };
  }
}

/**
 * Where each repeated map key starts, as the yaml library's `uniqueKeys: true` reports them: a
 * key repeats when it is the same node as an earlier key of its map, or both are scalars with
 * the same value (`===`: 1 and '1' differ, NaN never repeats). Linear in the number of keys.
 */
export function duplicateKeys(doc: Document.Parsed): number[] {
  const offsets: number[] = [];
  visit(doc, {
    Map(_, map) {
      const values = new Set<unknown>();
      const nodes = new Set<unknown>();
      for (const pair of map.items) {
        const key = pair.key;
        const value = isScalar(key) ? key.value : undefined;
        const repeated = nodes.has(key) || (isScalar(key) && !Number.isNaN(value) && values.has(value));
        if (repeated) {
          const offset = rangeStart(key);
          if (offset !== undefined) offsets.push(offset);
        }
        nodes.add(key);
        if (isScalar(key) && !Number.isNaN(value)) values.add(value);
      }
    },
  });
  // In document order, as the library reports them while composing.
  return offsets.sort((a, b) => a - b);
}
