// Reload as a diff by group name. Which settings can change in place is a protocol question:
// anything that is part of the group's identity on the wire (vhid, destination, addresses,
// password, source, and the protocol itself) or of its place on the host (interface) needs a fresh group.
import { isDeepStrictEqual } from 'node:util';
import type { GroupConfig } from '../config/types';

export const IDENTITY: readonly (keyof GroupConfig)[] = [
  'protocol',
  'vhid',
  'interface',
  'srcip',
  'destination',
  'broadcast',
  'addresses',
  'password',
  'manageAddresses',
  // On, counters come from the wall clock and are checked; off, ucarp's random counter: peers
  // see a different group either way (docs/protocol.md §20).
  'replayProtection',
];

export interface GroupDiff {
  added: GroupConfig[];
  removed: string[];
  /** Changed only in settings that apply in place. */
  updated: GroupConfig[];
  /** For each updated group, the settings that changed (GroupConfig field names). */
  changed: Map<string, string[]>;
  /** Changed in identity: stopped and started again. */
  restarted: GroupConfig[];
  unchanged: number;
}

export function diffGroups(
  current: ReadonlyMap<string, GroupConfig>,
  next: readonly GroupConfig[],
): GroupDiff {
  const d: GroupDiff = {
    added: [],
    removed: [],
    updated: [],
    restarted: [],
    changed: new Map(),
    unchanged: 0,
  };
  const names = new Set<string>();
  for (const cfg of next) {
    names.add(cfg.name);
    const old = current.get(cfg.name);
    if (!old) d.added.push(cfg);
    else if (isDeepStrictEqual(old, cfg)) d.unchanged++;
    else if (IDENTITY.some((k) => !isDeepStrictEqual(old[k], cfg[k]))) d.restarted.push(cfg);
    else {
      d.updated.push(cfg);
      const keys = (Object.keys({ ...old, ...cfg }) as (keyof GroupConfig)[]).filter(
        (k) => !isDeepStrictEqual(old[k], cfg[k]),
      );
      d.changed.set(cfg.name, keys);
    }
  }
  for (const name of current.keys()) if (!names.has(name)) d.removed.push(name);
  return d;
}
