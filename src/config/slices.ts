// A line scanner that cuts a configuration file into the pieces a reload can reuse: each
// top-level section, and each entry of the `groups` map. It never parses YAML; it only accepts
// the plain block shape of docs/configuration.md and gives up (undefined) on anything else, so
// that src/config/incremental.ts parses such a file whole.

/** A run of whole lines of the file: a top-level section or one entry of `groups`. */
export interface Slice {
  /** The section's key, or the group's name. */
  key: string;
  /** Offset of the slice's first character in the file. */
  start: number;
  /** The slice's text: its lines, with the comments and blank lines that follow them. */
  text: string;
}

export interface SplitFile {
  /** Top-level sections other than `groups`, in file order. */
  sections: Slice[];
  /** The `groups:` line with the comments before its first entry; key 'groups'. */
  groupsHead: Slice;
  /** The entries of `groups`, in file order. */
  entries: Slice[];
  /** Where `groups` stands among the top-level keys (the index it would have in `sections`). */
  groupsIndex: number;
  /** Offset of each line's first character, for positions. */
  lineStarts: number[];
}

/** A key a plain YAML scalar spells as this very string (not a number, boolean or null). */
const PLAIN_KEY = /^[A-Za-z_][A-Za-z0-9_.-]*$/;
// Spelled as plain scalars these are null and booleans; `__proto__` is no ordinary property.
const NOT_STRINGS = new Set(['null', 'true', 'false', '__proto__']);
/** `key:` alone, or with a comment. */
const BLOCK_KEY = /^([^\s:#][^\s:]*):(?:\s+#.*)?\s*$/;
/** `key: value` on one line. */
const INLINE_KEY = /^([^\s:#][^\s:]*):(?:\s.*)?$/;
/**
 * What may change a node's meaning from outside its own lines, or that the scanner cannot cut
 * by indentation: anchors, aliases and tags where a node starts (after a space or a flow
 * indicator, or at a line's start), merge keys, explicit keys, directives and document
 * markers. Found in one pass over the text; on any line but a comment, the file is parsed
 * whole. Quoted text that merely looks like one also falls back, which is only slower.
 */
const NODE_PROPERTY = /(?:^|[ \n[{,])[&*!]|<</g;
const LINE_START_MARK = /^(?: *\?(?: |$)|(?:---|\.\.\.)(?:\s|$)|%)/gm;

function onCommentLine(text: string, offset: number): boolean {
  let i = text.lastIndexOf('\n', offset - 1) + 1;
  while (text.charCodeAt(i) === 0x20) i++;
  return text.charCodeAt(i) === 0x23; // '#'
}

function hasNodeProperty(text: string): boolean {
  NODE_PROPERTY.lastIndex = 0;
  for (let m = NODE_PROPERTY.exec(text); m; m = NODE_PROPERTY.exec(text)) {
    // The property's own character: the separator before it may end the previous line.
    if (!onCommentLine(text, m.index + m[0].length - 1)) return true;
  }
  LINE_START_MARK.lastIndex = 0;
  return LINE_START_MARK.test(text);
}

function isPlainKey(key: string): boolean {
  return PLAIN_KEY.test(key) && !NOT_STRINGS.has(key.toLowerCase());
}

/**
 * Cuts `text` into slices, or returns undefined when it is not in the simple shape: top-level
 * keys at column 0, `groups:` followed by entries `name:` all at one indentation, each entry's
 * lines deeper, no tabs, carriage returns, byte order mark, directives, document markers,
 * anchors, aliases, tags, merge keys or explicit keys, no repeated key. The slices are only
 * cut here; whether each is valid YAML is for the parser.
 */
export function splitConfig(text: string): SplitFile | undefined {
  if (/[\t\r\uFEFF]/.test(text) || hasNodeProperty(text)) return undefined;
  const lineStarts: number[] = [0];
  for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) lineStarts.push(i + 1);

  const sections: Slice[] = [];
  const entries: Slice[] = [];
  let groupsHead: Slice | undefined;
  let groupsIndex = -1;
  let entryIndent = -1;
  let inGroups = false;
  const sectionKeys = new Set<string>();
  const entryKeys = new Set<string>();
  // Each slice's start, in file order; a slice ends where the next one starts.
  const starts: Array<{ start: number; key: string; kind: 'section' | 'head' | 'entry' }> = [];

  for (let n = 0; n < lineStarts.length; n++) {
    const start = lineStarts[n];
    const end = n + 1 < lineStarts.length ? lineStarts[n + 1] - 1 : text.length;
    let first = start;
    while (first < end && text.charCodeAt(first) === 0x20) first++;
    // Blank and comment lines belong to whatever slice they follow.
    if (first === end || text.charCodeAt(first) === 0x23) continue;
    const indent = first - start;
    if (indent === 0) {
      const line = text.slice(start, end);
      const block = BLOCK_KEY.exec(line);
      const inline = block ?? INLINE_KEY.exec(line);
      if (!inline || !isPlainKey(inline[1]) || sectionKeys.has(inline[1])) return undefined;
      const key = inline[1];
      sectionKeys.add(key);
      inGroups = key === 'groups';
      if (inGroups) {
        // `groups: {…}` or anything else on the line: parse whole.
        if (!block || groupsHead) return undefined;
        groupsIndex = starts.filter((s) => s.kind === 'section').length;
        groupsHead = { key, start, text: '' };
        starts.push({ start, key, kind: 'head' });
      } else {
        starts.push({ start, key, kind: 'section' });
      }
      continue;
    }
    if (starts.length === 0) return undefined;
    if (!inGroups) continue;
    if (entryIndent < 0) entryIndent = indent;
    if (indent < entryIndent) return undefined;
    if (indent > entryIndent) {
      if (starts[starts.length - 1].kind !== 'entry') return undefined;
      continue;
    }
    const entry = BLOCK_KEY.exec(text.slice(first, end));
    if (!entry || !isPlainKey(entry[1]) || entryKeys.has(entry[1])) return undefined;
    entryKeys.add(entry[1]);
    starts.push({ start, key: entry[1], kind: 'entry' });
  }
  if (!groupsHead) return undefined;

  for (let i = 0; i < starts.length; i++) {
    const { start, key, kind } = starts[i];
    const end = i + 1 < starts.length ? starts[i + 1].start : text.length;
    const slice: Slice = { key, start, text: text.slice(start, end) };
    if (kind === 'section') sections.push(slice);
    else if (kind === 'entry') entries.push(slice);
    else groupsHead = slice;
  }
  // Text before the first key is comments and blank lines only: part of no slice, and it moves
  // nothing but offsets, which are taken from this file.
  if (entries.length === 0) return undefined;
  return { sections, groupsHead, entries, groupsIndex, lineStarts };
}

/** 1-based line and column of `offset`, as the yaml library's LineCounter gives them. */
export function linePosition(lineStarts: readonly number[], offset: number): { line: number; col: number } {
  let lo = 0;
  let hi = lineStarts.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (lineStarts[mid] <= offset) lo = mid;
    else hi = mid - 1;
  }
  return { line: lo + 1, col: offset - lineStarts[lo] + 1 };
}
