// Formats of the schema that are functions rather than regular expressions. One module, so
// that the validator compiled at build time (src/tools/gen-validator.ts) requires the same
// functions the run-time compilation uses.
import { isIP } from 'node:net';

export const FORMATS = {
  // Keys holding one address take either family; semantic.ts checks it is the group's.
  ip: { type: 'string', validate: (x: string): boolean => isIP(x) !== 0 },
} as const;
