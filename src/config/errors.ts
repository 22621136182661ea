import type { ConfigError } from './types';

/** A key path inside the document: map keys and array indexes. */
export type KeyPath = ReadonlyArray<string | number>;

const PLAIN_KEY = /^[A-Za-z0-9_-]+$/;

/** `['groups', 'web', 'addresses', 0]` → `groups.web.addresses[0]`; odd keys are quoted. */
export function formatPath(path: KeyPath): string {
  let out = '';
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else if (PLAIN_KEY.test(segment)) out += out === '' ? segment : `.${segment}`;
    else out += `[${JSON.stringify(segment)}]`;
  }
  return out;
}

export function formatError(error: ConfigError): string {
  const where = error.line > 0 ? `${error.file}:${error.line}:${error.column}` : error.file;
  return error.path === '' ? `${where}: ${error.message}` : `${where}: ${error.path}: ${error.message}`;
}

/** One error per line, in the order given (see sortErrors). */
export function formatErrors(errors: readonly ConfigError[]): string {
  return errors.map(formatError).join('\n');
}

/** Sorted by position, identical reports removed (a setting in `defaults` is checked once per group). */
export function sortErrors(errors: readonly ConfigError[]): ConfigError[] {
  const seen = new Set<string>();
  const unique = errors.filter((e) => {
    const key = formatError(e);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
  return unique.sort(
    (a, b) =>
      a.line - b.line ||
      a.column - b.column ||
      a.path.localeCompare(b.path) ||
      a.message.localeCompare(b.message),
  );
}
