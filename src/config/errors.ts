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

function format(problem: ConfigError, label: string): string {
  const where = problem.line > 0 ? `${problem.file}:${problem.line}:${problem.column}` : problem.file;
  const path = problem.path === '' ? '' : `${problem.path}: `;
  return `${where}: ${label}${path}${problem.message}`;
}

export function formatError(error: ConfigError): string {
  return format(error, '');
}

/** One error per line, in the order given (see sortErrors). */
export function formatErrors(errors: readonly ConfigError[]): string {
  return errors.map(formatError).join('\n');
}

/**
 * A warning has the shape of an error plus a `warning:` label after the position (where
 * compilers put it, so editors still jump to it): printed next to errors, as --check-config
 * does, or in the journal, which shows no log level, it must not read as a reason the file
 * was rejected.
 */
export function formatWarning(warning: ConfigError): string {
  return format(warning, 'warning: ');
}

/** One warning per line, in the order given. */
export function formatWarnings(warnings: readonly ConfigError[]): string {
  return warnings.map(formatWarning).join('\n');
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
