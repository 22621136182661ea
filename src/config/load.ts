import * as fs from 'node:fs';
import * as path from 'node:path';
import { sortErrors } from './errors';
import { mergeGroups, type GroupMerger } from './merge';
import { normalize, type GroupNormalizer } from './normalize';
import { parseYaml, type Locator } from './parse';
import { validateSchema } from './schema';
import { checkSemantics } from './semantic';
import type { HostInfo, LoadResult } from './types';
import { errorMessage } from '../errors';

/** Reads, validates and normalizes a configuration file; every problem is reported at once. */
export function loadConfig(file: string, host: HostInfo): LoadResult {
  const read = readConfigFile(file);
  return typeof read === 'string' ? loadConfigText(read, file, host) : read;
}

/** The file's text, or the rejection of a file that cannot be read. */
export function readConfigFile(file: string): string | LoadResult {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? errorMessage(err);
    return {
      ok: false,
      errors: [{ file, line: 0, column: 0, path: '', message: `cannot read the file (${code})` }],
      warnings: [],
    };
  }
}

/**
 * Per-group steps a caller may answer from its own cache: each must return what the plain step
 * returns for the same inputs (src/config/incremental.ts).
 */
export interface Reuse {
  merge?: GroupMerger;
  normalize?: GroupNormalizer;
}

/**
 * As loadConfig, for text already in memory. `filename` appears in messages, and relative
 * password_file paths are resolved against its directory.
 */
export function loadConfigText(text: string, filename: string, host: HostInfo): LoadResult {
  return loadParsedText(text, filename, host).result;
}

/** A whole-file load, with the parsed document's data when the YAML itself was sound. */
export function loadParsedText(
  text: string,
  filename: string,
  host: HostInfo,
  reuse?: Reuse,
): { result: LoadResult; data?: unknown } {
  const parsed = parseYaml(text, filename);
  if (!parsed.ok) return { result: { ok: false, errors: sortErrors(parsed.errors), warnings: [] } };
  return { result: checkParsed(parsed.data, parsed.source, filename, host, reuse), data: parsed.data };
}

/**
 * Everything after the YAML: schema, semantic checks, normalization. `source` places the
 * problems found in the file.
 */
export function checkParsed(
  data: unknown,
  source: Locator,
  filename: string,
  host: HostInfo,
  reuse: Reuse = {},
): LoadResult {
  const checked = validateSchema(data, source);
  // Semantic checks assume the shapes the schema guarantees, so they only run on a valid document.
  if (!checked.ok) return { ok: false, errors: sortErrors(checked.errors), warnings: [] };

  const groups = mergeGroups(checked.config, reuse.merge);
  const semantic = checkSemantics(checked.config, groups, {
    source,
    host,
    baseDir: path.dirname(path.resolve(filename)),
  });
  const warnings = sortErrors(semantic.warnings);
  if (semantic.errors.length > 0) return { ok: false, errors: sortErrors(semantic.errors), warnings };
  return {
    ok: true,
    config: normalize(checked.config, groups, semantic.resolved, reuse.normalize),
    warnings,
  };
}
