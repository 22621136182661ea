// A Logger that keeps its lines, for unit tests of modules that log.
import type { Logger } from '../../src/util/log';

export interface FakeLog {
  log: Logger;
  lines: { level: string; message: string }[];
  at(level: string): string[];
}

export function fakeLog(): FakeLog {
  const lines: { level: string; message: string }[] = [];
  const write = (level: string) => (message: string) => {
    lines.push({ level, message });
  };
  const log = {
    error: write('error'),
    warn: write('warn'),
    info: write('info'),
    debug: write('debug'),
  } as unknown as Logger;
  return { log, lines, at: (level) => lines.filter((l) => l.level === level).map((l) => l.message) };
}
