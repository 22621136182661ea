import type { KeyPath } from './errors';
import type { RawConfig, RawGroup, RawSettings } from './types';

/** A group's settings with `defaults` applied, remembering where each value was written. */
export interface MergedGroup {
  name: string;
  settings: RawGroup;
  /** Key path of the node a setting came from, for errors about it. */
  where(key: keyof RawGroup): KeyPath;
  /** Key path of the group itself. */
  path: KeyPath;
}

/**
 * Applies `defaults` under each group's own settings. The destination is one choice written as
 * either `mcast` or `broadcast: true`, so a group that picks one drops the other from defaults:
 * `broadcast: true` in a group wins over `mcast` in defaults and vice versa.
 */
export function mergeGroups(config: RawConfig, merge: GroupMerger = mergeGroup): MergedGroup[] {
  return Object.entries(config.groups).map(([name, group]) => merge(name, group, config.defaults));
}

/** How one group is merged: mergeGroup, or a cache of it (src/config/incremental.ts). */
export type GroupMerger = (name: string, group: RawGroup, defaults: RawSettings | undefined) => MergedGroup;

export function mergeGroup(name: string, group: RawGroup, defaults: RawSettings = {}): MergedGroup {
  const inherited: RawSettings = { ...defaults };
  if (group.mcast !== undefined) delete inherited.broadcast;
  if (group.broadcast === true) delete inherited.mcast;
  const settings: RawGroup = { ...inherited, ...group };
  const path: KeyPath = ['groups', name];
  return {
    name,
    settings,
    path,
    where: (key) => (key in group ? [...path, key] : key in inherited ? ['defaults', key] : path),
  };
}
