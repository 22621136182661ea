import * as fs from 'node:fs';
import * as path from 'node:path';
import { sortErrors } from './errors';
import { mergeGroups } from './merge';
import { normalize } from './normalize';
import { parseYaml } from './parse';
import { validateSchema } from './schema';
import { checkSemantics } from './semantic';
import type { HostInfo, LoadResult } from './types';

/** Reads, validates and normalizes a configuration file; every problem is reported at once. */
export function loadConfig(file: string, host: HostInfo): LoadResult {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    return {
      ok: false,
      errors: [{ file, line: 0, column: 0, path: '', message: `cannot read the file (${code})` }],
      warnings: [],
    };
  }
  return loadConfigText(text, file, host);
}

/**
 * As loadConfig, for text already in memory. `filename` appears in messages, and relative
 * password_file paths are resolved against its directory.
 */
export function loadConfigText(text: string, filename: string, host: HostInfo): LoadResult {
  const parsed = parseYaml(text, filename);
  if (!parsed.ok) return { ok: false, errors: sortErrors(parsed.errors), warnings: [] };

  const checked = validateSchema(parsed.data, parsed.source);
  // Semantic checks assume the shapes the schema guarantees, so they only run on a valid document.
  if (!checked.ok) return { ok: false, errors: sortErrors(checked.errors), warnings: [] };

  const groups = mergeGroups(checked.config);
  const semantic = checkSemantics(checked.config, groups, {
    source: parsed.source,
    host,
    baseDir: path.dirname(path.resolve(filename)),
  });
  const warnings = sortErrors(semantic.warnings);
  if (semantic.errors.length > 0) return { ok: false, errors: sortErrors(semantic.errors), warnings };
  return { ok: true, config: normalize(checked.config, groups, semantic.resolved), warnings };
}
