// Reloads that parse only what changed. Parsing YAML is most of a whole-file load (hundreds of
// milliseconds of CPU at 4080 groups, docs/performance.md), while a reload usually changes a
// group or two. The file is cut into top-level sections and entries of `groups` by a line
// scanner (src/config/slices.ts); a slice whose text was seen in the last load keeps the data
// parsed from it, the others are parsed alone, and the whole document so assembled goes through
// the same schema, semantic checks and normalization as a full load. Password files and the
// host are read again as a full load reads them.
//
// The result must be the full load's, exactly. Positions come from the slice's own parse moved
// to its offset in the file. A file whose shape the scanner does not accept, a slice that does
// not parse alone, and any error at all take the whole-file path: a rejected file's errors are
// then the full load's by construction, and a bad edit costs what it cost before.
import { formatPath, type KeyPath } from './errors';
import { checkParsed, loadParsedText, readConfigFile, type Reuse } from './load';
import { mergeGroup, type GroupMerger, type MergedGroup } from './merge';
import { parseYaml, type Locator, type Position, type Target, type YamlSource } from './parse';
import { linePosition, splitConfig, type Slice, type SplitFile } from './slices';
import { normalizeGroup, type GroupNormalizer } from './normalize';
import type { ConfigError, GroupConfig, HostInfo, LoadResult } from './types';
import { NotInSliceError } from '../errors';

interface NormalizedGroup {
  name: string;
  /** The `defaults` value the group was merged with (identity: a cached slice's value). */
  defaults: unknown;
  password: string;
  srcip: string;
  group: GroupConfig;
}

/** How a load was done: for tests and the reload bench. */
export interface LoadStats {
  path: 'incremental' | 'full';
  /** Why the whole file was parsed; undefined for an incremental load. */
  why?: 'shape' | 'cold' | 'slice' | 'rejected' | 'position';
  /** Slices parsed on their own (incremental) / reused from the last load. */
  parsed: number;
  reused: number;
}

/**
 * More slices than this share of the file changed, or no cache yet: parsing them one by one
 * costs more than one parse of the whole file.
 */
const MAX_CHANGED_SHARE = 0.5;

export class IncrementalLoader {
  /** Slice text → the value of its one key, from the last load whose YAML was sound. */
  private cache = new Map<string, unknown>();
  last: LoadStats | undefined;
  /**
   * Each group's normalized form, by the object its slice parsed to: a group whose slice, the
   * defaults and the resolved facts are those of an earlier load is that same object again,
   * which also tells a reader of consecutive results what did not change by identity alone.
   */
  private readonly normalized = new WeakMap<object, NormalizedGroup>();
  private readonly normalizeGroup: GroupNormalizer = (g, config, facts) => {
    const raw = config.groups[g.name];
    const hit = this.normalized.get(raw);
    if (
      hit &&
      hit.name === g.name &&
      hit.defaults === config.defaults &&
      hit.password === facts.password &&
      hit.srcip === facts.srcip
    )
      return hit.group;
    const group = normalizeGroup(g.name, g.settings, facts);
    this.normalized.set(raw, { name: g.name, defaults: config.defaults, ...facts, group });
    return group;
  };
  /** Each group merged with the defaults, by the same identities. */
  private readonly merged = new WeakMap<object, { name: string; defaults: unknown; merged: MergedGroup }>();
  private readonly mergeGroup: GroupMerger = (name, raw, defaults) => {
    const hit = this.merged.get(raw);
    if (hit && hit.name === name && hit.defaults === defaults) return hit.merged;
    const merged = mergeGroup(name, raw, defaults);
    this.merged.set(raw, { name, defaults, merged });
    return merged;
  };
  private readonly reuse: Reuse = { merge: this.mergeGroup, normalize: this.normalizeGroup };

  /** Whether the next load can reuse anything: the file was in the shape the scanner cuts. */
  get cached(): boolean {
    return this.cache.size > 0;
  }

  /** As loadConfig (src/config/load.ts), reusing what the last load parsed. */
  load(file: string, host: HostInfo): LoadResult {
    const read = readConfigFile(file);
    if (typeof read === 'string') return this.loadText(read, file, host);
    this.last = { path: 'full', why: 'rejected', parsed: 0, reused: 0 };
    return read;
  }

  /** As loadConfigText (src/config/load.ts). */
  loadText(text: string, file: string, host: HostInfo): LoadResult {
    const split = splitConfig(text);
    const why = split ? this.tryIncremental(split, text, file, host) : 'shape';
    if (typeof why !== 'string') return why;
    const { result, data } = loadParsedText(text, file, host, this.reuse);
    // A slice's value depends on its text alone, so the last cache stays right when this file
    // gives none (not in shape, or not sound YAML): it may serve the next edit.
    if (split && data !== undefined) this.cache = cacheFromWhole(split, data);
    this.last = { path: 'full', why, parsed: 0, reused: 0 };
    return result;
  }

  private tryIncremental(
    split: SplitFile,
    text: string,
    file: string,
    host: HostInfo,
  ): LoadResult | NonNullable<LoadStats['why']> {
    const slices = [...split.sections, ...split.entries];
    const missing = slices.filter((s) => !this.cache.has(s.text)).length;
    if (this.cache.size === 0 || missing > slices.length * MAX_CHANGED_SHARE) return 'cold';
    const next = new Map<string, unknown>();
    for (const slice of slices) {
      let value = this.cache.get(slice.text);
      if (value === undefined && !this.cache.has(slice.text)) {
        const parsed = parseSlice(slice, file);
        if (!parsed) return 'slice';
        value = parsed.value;
      }
      next.set(slice.text, value);
    }

    const data: Record<string, unknown> = {};
    const groups: Record<string, unknown> = {};
    split.sections.forEach((s, i) => {
      if (i === split.groupsIndex) data.groups = groups;
      data[s.key] = next.get(s.text);
    });
    if (split.groupsIndex === split.sections.length) data.groups = groups;
    for (const e of split.entries) groups[e.key] = next.get(e.text);

    let result: LoadResult;
    try {
      result = checkParsed(data, new SliceLocator(file, split, text), file, host, this.reuse);
    } catch (err) {
      if (err instanceof NotInSliceError) return 'position';
      throw err;
    }
    if (!result.ok) return 'rejected';
    this.cache = next;
    this.last = { path: 'incremental', parsed: missing, reused: slices.length - missing };
    return result;
  }
}

/** Parses one slice alone: its one key's value, or undefined when it is not sound YAML alone. */
function parseSlice(slice: Slice, file: string): { value: unknown; source: YamlSource } | undefined {
  const parsed = parseYaml(slice.text, file);
  if (!parsed.ok) return undefined;
  const data = parsed.data;
  if (data === null || typeof data !== 'object' || Array.isArray(data)) return undefined;
  const keys = Object.keys(data);
  if (keys.length !== 1 || keys[0] !== slice.key) return undefined;
  return { value: deepFreeze((data as Record<string, unknown>)[slice.key]), source: parsed.source };
}

/** The cache from a whole-file parse: each slice's value is the part of the document it spells. */
function cacheFromWhole(split: SplitFile, data: unknown): Map<string, unknown> {
  const cache = new Map<string, unknown>();
  if (data === null || typeof data !== 'object') return cache;
  const doc = data as Record<string, unknown>;
  const groups = doc.groups;
  if (groups === null || typeof groups !== 'object') return cache;
  for (const s of split.sections) cache.set(s.text, deepFreeze(doc[s.key]));
  for (const e of split.entries) cache.set(e.text, deepFreeze((groups as Record<string, unknown>)[e.key]));
  return cache;
}

/**
 * Values are shared between loads: frozen, so that nothing downstream can change what a later
 * load reuses (the checks and normalization only read them).
 */
function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

/**
 * Positions for the assembled document: a path inside a section or a group is looked up in that
 * slice's own parse and moved to where the slice starts in the file. Slices are parsed again
 * only when a position in them is asked for (a warning), once per load.
 */
class SliceLocator implements Locator {
  private readonly sections = new Map<string, Slice>();
  private readonly entries = new Map<string, Slice>();
  private readonly sources = new Map<Slice, YamlSource>();

  constructor(
    private readonly file: string,
    private readonly split: SplitFile,
    private readonly text: string,
  ) {
    for (const s of split.sections) this.sections.set(s.key, s);
    for (const e of split.entries) this.entries.set(e.key, e);
  }

  locate(path: KeyPath, target: Target): Position {
    const [first, second] = path;
    const inGroup = first === 'groups' && path.length >= 2;
    const slice = inGroup ? this.entries.get(String(second)) : this.sections.get(String(first));
    if (!slice || (first === 'groups' && !inGroup))
      throw new NotInSliceError(`no slice holds ${formatPath(path)}`);
    let source = this.sources.get(slice);
    if (!source) {
      source = parseSlice(slice, this.file)?.source;
      if (!source) throw new NotInSliceError(`${slice.key} no longer parses alone`);
      this.sources.set(slice, source);
    }
    const offset = slice.start + source.locate(inGroup ? path.slice(1) : path, target).offset;
    const { line, col } = linePosition(this.split.lineStarts, Math.min(offset, this.text.length));
    return { line, column: col, offset };
  }

  error(path: KeyPath, target: Target, message: string): ConfigError {
    const { line, column } = this.locate(path, target);
    return { file: this.file, line, column, path: formatPath(path), message };
  }
}
