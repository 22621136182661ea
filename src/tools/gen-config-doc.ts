// Generates docs/configuration.md from schemas/ucarp.schema.json, so that the reference
// cannot drift from what `ucarp --check-config` enforces (a unit test compares the two).
//   node dist/src/tools/gen-config-doc.js            print to stdout
//   node dist/src/tools/gen-config-doc.js --write    rewrite docs/configuration.md
//   node dist/src/tools/gen-config-doc.js --check    exit 1 if docs/configuration.md is stale
import fs from 'node:fs';
import path from 'node:path';
import { stringify } from 'yaml';
import { InternalError } from '../errors';
import { BROADCAST_ADDRESS, CARP6_MULTICAST, CARP_MULTICAST, PROTOCOL_KEYS } from '../config/settings';

/** The subset of JSON Schema (2020-12) that schemas/ucarp.schema.json uses. */
export interface SchemaNode {
  $ref?: string;
  title?: string;
  description?: string;
  type?: string | string[];
  enum?: unknown[];
  default?: unknown;
  examples?: unknown[];
  properties?: Record<string, SchemaNode>;
  additionalProperties?: boolean | SchemaNode;
  propertyNames?: SchemaNode;
  required?: string[];
  items?: SchemaNode;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  maxItems?: number;
  minProperties?: number;
  uniqueItems?: boolean;
  pattern?: string;
  /** Project keyword: the human wording of `pattern` in error messages. */
  patternErrorMessage?: string;
  format?: string;
  $defs?: Record<string, SchemaNode>;
}

export const ROOT = path.resolve(__dirname, '../../..');
export const SCHEMA_PATH = 'schemas/ucarp.schema.json';
export const EXAMPLE_PATH = 'config/ucarp.yaml';
export const DOC_PATH = 'docs/configuration.md';

/**
 * What each address-bearing key means for one protocol over one address family: one table
 * each in the reference. A group's family is its first address's (docs/protocol.md §21); its
 * protocol is `protocol` (§22).
 */
export interface FamilyTable {
  /** Anchor and heading, e.g. `carp-ipv6` / "CARP over IPv6". */
  id: string;
  title: string;
  /** When a group is of this kind, and the docs/protocol.md section that says what it sends. */
  when: string;
  rows: readonly (readonly [key: string, applies: string])[];
}

type Rows = FamilyTable['rows'];

/** What the family alone decides, the same for both protocols. */
const IPV4_SRCIP = [
  'srcip',
  "an IPv4 address of the interface; default: the interface's primary IPv4 address",
] as const;
const IPV4_MCAST = ['mcast', `an IPv4 multicast group; default \`${CARP_MULTICAST}\``] as const;
const IPV4_ANNOUNCE = [
  'takeover announcement',
  'gratuitous ARP per address, again after two advertisements (§14)',
] as const;
const IPV6_ROWS: Rows = [
  ['addresses', 'IPv6, prefix length 0..128; added without duplicate address detection (`nodad`)'],
  [
    'srcip',
    "an IPv6 address of the interface; default: the interface's link-local address, learnt when the group starts",
  ],
  ['mcast', `an IPv6 multicast group; default \`${CARP6_MULTICAST}\``],
  ['broadcast', 'not allowed (IPv6 has no broadcast)'],
  ['peers', 'IPv6 unicast peers; give `srcip` a global address, which is where the peers send'],
  [
    'takeover announcement',
    'unsolicited neighbour advertisements (override flag) to ff02::1, again after two advertisements',
  ],
];

export const FAMILY_TABLES: readonly FamilyTable[] = [
  {
    id: 'carp-ipv4',
    title: 'CARP over IPv4',
    when: 'Every address in `addresses` is IPv4. Wire format: docs/protocol.md §2–§7; ucarp 1.5.2 compatible.',
    rows: [
      ['addresses', 'IPv4, prefix length 0..32; the digest covers them sorted ascending'],
      IPV4_SRCIP,
      IPV4_MCAST,
      ['broadcast', `allowed: advertisements go to ${BROADCAST_ADDRESS}`],
      ['peers', 'IPv4 unicast peers'],
      IPV4_ANNOUNCE,
    ],
  },
  {
    id: 'carp-ipv6',
    title: 'CARP over IPv6',
    when: 'Every address in `addresses` is IPv6. Wire format as FreeBSD carp: docs/protocol.md §21.',
    rows: IPV6_ROWS,
  },
  {
    id: 'vrrp3-ipv4',
    title: 'VRRPv3 over IPv4',
    when: '`protocol: vrrp3` and every address in `addresses` is IPv4. Wire format: docs/protocol.md §22; keepalived `vrrp_version 3` compatible.',
    rows: [
      [
        'addresses',
        'IPv4, prefix length 0..32; sent in the advertisement sorted ascending; list the same ones as the peers (keepalived drops advertisements whose list differs)',
      ],
      IPV4_SRCIP,
      IPV4_MCAST,
      ['broadcast', 'allowed, though no other VRRP implementation listens there'],
      ['peers', "IPv4 unicast peers (keepalived's `unicast_peer`)"],
      IPV4_ANNOUNCE,
    ],
  },
  {
    id: 'vrrp3-ipv6',
    title: 'VRRPv3 over IPv6',
    when: "`protocol: vrrp3` and every address in `addresses` is IPv6. Wire format: docs/protocol.md §22; keepalived's `native_ipv6` compatible.",
    rows: IPV6_ROWS,
  },
];

/** Sections documented key by key, in this order; `defaults` and `groups` are special. */
const SETTING_SECTIONS = ['logging', 'control', 'metrics'] as const;

export class Refs {
  constructor(private readonly root: SchemaNode) {}

  /** Follows a local `#/$defs/name` reference; other nodes are returned as they are. */
  resolve(node: SchemaNode): SchemaNode {
    if (node.$ref === undefined) return node;
    const m = /^#\/\$defs\/([^/]+)$/.exec(node.$ref);
    const target = m ? this.root.$defs?.[m[1]] : undefined;
    if (!target) throw new InternalError(`unsupported or dangling $ref ${node.$ref}`);
    return this.resolve(target);
  }

  property(node: SchemaNode, key: string): SchemaNode {
    const p = node.properties?.[key];
    if (!p) throw new InternalError(`schema has no property ${key}`);
    return this.resolve(p);
  }
}

/** A YAML value on one line: `1`, `224.0.0.18`, `[ 192.0.2.100/24 ]`, `{ level: info }`. */
export function inlineYaml(value: unknown): string {
  return stringify(value, { collectionStyle: 'flow', lineWidth: 0 }).trim();
}

function code(s: string): string {
  // A code span must be delimited by more backticks than it contains.
  const fence = s.includes('`') ? '``' : '`';
  const pad = s.startsWith('`') || s.endsWith('`') ? ' ' : '';
  return `${fence}${pad}${s}${pad}${fence}`;
}

export function typeOf(node: SchemaNode, refs: Refs): string {
  const types = Array.isArray(node.type) ? node.type : [node.type ?? 'any'];
  return types
    .map((type) => {
      if (type === 'array' && node.items) return `array of ${typeOf(refs.resolve(node.items), refs)}s`;
      if (type === 'object' && typeof node.additionalProperties === 'object') {
        return `map of names to ${typeOf(refs.resolve(node.additionalProperties), refs)}s`;
      }
      return type;
    })
    .join(' or ');
}

function plural(n: number, unit: string): string {
  return `${n} ${unit}${n === 1 ? '' : 's'}`;
}

/** "1..19 characters", "at least 1 item", "at most 3 entries"; null when unconstrained. */
function countRange(lo: number | undefined, hi: number | undefined, unit: string): string | null {
  if (lo !== undefined && hi !== undefined) return `${lo}..${plural(hi, unit)}`;
  if (lo !== undefined) return `at least ${plural(lo, unit)}`;
  if (hi !== undefined) return `at most ${plural(hi, unit)}`;
  return null;
}

function numericRange(n: SchemaNode): string | null {
  const parts = [
    n.exclusiveMinimum !== undefined ? `> ${n.exclusiveMinimum}` : null,
    n.minimum !== undefined ? `≥ ${n.minimum}` : null,
    n.exclusiveMaximum !== undefined ? `< ${n.exclusiveMaximum}` : null,
    n.maximum !== undefined ? `≤ ${n.maximum}` : null,
  ].filter((x): x is string => x !== null);
  if (n.minimum !== undefined && n.maximum !== undefined && parts.length === 2)
    return `${n.minimum}..${n.maximum}`;
  return parts.length > 0 ? parts.join(' and ') : null;
}

/** Every constraint of a node as short phrases; patterns come with their human wording. */
export function constraints(node: SchemaNode, refs: Refs): string[] {
  const out: string[] = [];
  const num = numericRange(node);
  if (num) out.push(num);
  const len = countRange(node.minLength, node.maxLength, 'character');
  if (len) out.push(len);
  if (node.enum) out.push(`one of ${node.enum.map((v) => code(inlineYaml(v))).join(', ')}`);
  if (node.format) out.push(`format ${code(node.format)}`);
  if (node.pattern !== undefined) {
    const human = node.patternErrorMessage ? `${node.patternErrorMessage}; ` : '';
    out.push(`${human}pattern ${code(node.pattern)}`);
  }
  const items = countRange(node.minItems, node.maxItems, 'item');
  if (items) out.push(items);
  if (node.uniqueItems) out.push('no duplicates');
  if (node.items) {
    const each = constraints(refs.resolve(node.items), refs);
    if (each.length > 0) out.push(`each item: ${each.join('; ')}`);
  }
  if (node.minProperties !== undefined) {
    out.push(`at least ${node.minProperties} ${node.minProperties === 1 ? 'entry' : 'entries'}`);
  }
  if (node.propertyNames) {
    const names = constraints(refs.resolve(node.propertyNames), refs);
    if (names.length > 0) out.push(`keys: ${names.join('; ')}`);
  }
  if (node.required && node.required.length > 0) {
    out.push(`requires ${node.required.map(code).join(', ')}`);
  }
  if (node.additionalProperties === false) out.push('unknown keys are errors');
  return out;
}

export function defaultText(node: SchemaNode, required: boolean): string {
  if (node.default !== undefined) return code(inlineYaml(node.default));
  // Without a schema default the key is simply absent; its description says what that means.
  return required ? 'none (required)' : 'not set';
}

function exampleLines(key: string, node: SchemaNode): string[] {
  const examples = node.examples ?? [];
  if (examples.length === 0) return [];
  const structured = examples.some((e) => typeof e === 'object' && e !== null && !Array.isArray(e));
  if (!structured) {
    return [
      `- Example${examples.length > 1 ? 's' : ''}: ${examples.map((e) => code(`${key}: ${inlineYaml(e)}`)).join(', ')}`,
    ];
  }
  return [
    '- Example:',
    '',
    '  ```yaml',
    ...stringify({ [key]: examples[0] })
      .trimEnd()
      .split('\n')
      .map((l) => `  ${l}`),
    '  ```',
  ];
}

/** A key's entry: heading with a stable anchor, description, then the facts as a list. */
function entry(
  anchor: string,
  title: string,
  key: string,
  node: SchemaNode,
  required: boolean,
  refs: Refs,
): string[] {
  const allowed = constraints(node, refs);
  return [
    `<a id="${anchor}"></a>`,
    '',
    `### ${code(title)}`,
    '',
    node.description ?? '',
    '',
    `- Type: ${typeOf(node, refs)}`,
    ...(allowed.length > 0 ? [`- Allowed: ${allowed.join('; ')}`] : []),
    `- Default: ${defaultText(node, required)}`,
    ...exampleLines(key, node),
    '',
  ];
}

function sectionEntries(name: string, section: SchemaNode, refs: Refs): string[] {
  const keys = Object.keys(section.properties ?? {});
  return keys.flatMap((k) =>
    entry(
      `${name}-${k}`,
      `${name}.${k}`,
      k,
      refs.property(section, k),
      section.required?.includes(k) ?? false,
      refs,
    ),
  );
}

function tableCell(s: string): string {
  return s.replace(/\|/g, '\\|');
}

export function renderConfigDoc(schema: SchemaNode, exampleYaml: string): string {
  const refs = new Refs(schema);
  const top = Object.keys(schema.properties ?? {});
  const group = refs.resolve(schema.$defs?.group ?? {});
  const groups = refs.property(schema, 'groups');
  const defaults = refs.property(schema, 'defaults');
  const groupKeys = Object.keys(group.properties ?? {});
  const defaultKeys = Object.keys(defaults.properties ?? {});
  const trackers = refs.property(schema, 'trackers');
  const tracker = refs.resolve(schema.$defs?.tracker ?? {});

  const out: string[] = [
    `<!-- Generated from ${SCHEMA_PATH} by src/tools/gen-config-doc.ts: do not edit by hand.`,
    `     Regenerate: npm run build && node dist/src/tools/gen-config-doc.js --write -->`,
    '',
    '# Configuration reference',
    '',
    schema.description ?? '',
    '',
    'The file is YAML; the daemon reads `/etc/ucarp.yaml` unless `ucarp -c FILE` names another.',
    'Check a file with `ucarp --check-config -c FILE`: every error is reported at once with its',
    '`file:line:column` and key path, and a running daemon rejects an invalid file on reload',
    'without changing anything. Editors that speak the YAML language server validate as you type',
    'with a first line `# yaml-language-server: $schema=PATH/ucarp.schema.json`, as in the example',
    'at the end.',
    '',
    '## Contents',
    '',
    '- [Top level](#top-level)',
    ...SETTING_SECTIONS.map((s) => `- [\`${s}\`](#section-${s})`),
    '- [`defaults`](#section-defaults)',
    '- [`trackers`](#section-trackers) and [tracker settings](#tracker-settings)',
    '- [`groups`](#section-groups) and [group settings](#group-settings)',
    '- [Protocols and address families](#families)',
    '- [Full example](#full-example)',
    '',
    '<a id="top-level"></a>',
    '',
    '## Top level',
    '',
    '| Key | Type | Required | Default |',
    '| --- | --- | --- | --- |',
    ...top.map((k) => {
      const n = refs.property(schema, k);
      const req = schema.required?.includes(k) ?? false;
      return `| [\`${k}\`](#section-${k}) | ${typeOf(n, refs)} | ${req ? 'yes' : 'no'} | ${tableCell(defaultText(n, false))} |`;
    }),
    '',
  ];

  for (const name of SETTING_SECTIONS) {
    const section = refs.property(schema, name);
    out.push(
      `<a id="section-${name}"></a>`,
      '',
      `## ${code(name)}`,
      '',
      section.description ?? '',
      '',
      `- Type: ${typeOf(section, refs)}`,
      ...(constraints(section, refs).length > 0
        ? [`- Allowed: ${constraints(section, refs).join('; ')}`]
        : []),
      `- Default: ${defaultText(section, schema.required?.includes(name) ?? false)}`,
      ...exampleLines(name, section),
      '',
      ...sectionEntries(name, section, refs),
    );
  }

  out.push(
    '<a id="section-defaults"></a>',
    '',
    '## `defaults`',
    '',
    defaults.description ?? '',
    '',
    ...exampleLines('defaults', defaults),
    '',
    'Each key has the meaning, type and constraints of the group setting of the same name:',
    '',
    '| Key | Type | Default when neither the group nor `defaults` sets it |',
    '| --- | --- | --- |',
    ...defaultKeys.map((k) => {
      const n = refs.property(defaults, k);
      return `| [\`${k}\`](#group-${k}) | ${typeOf(n, refs)} | ${tableCell(defaultText(n, false))} |`;
    }),
    '',
    '<a id="section-trackers"></a>',
    '',
    '## `trackers`',
    '',
    trackers.description ?? '',
    '',
    `- Type: ${typeOf(trackers, refs)}`,
    `- Default: ${defaultText(trackers, false)}`,
    ...exampleLines('trackers', trackers),
    '',
    '<a id="tracker-settings"></a>',
    '',
    '## Tracker settings',
    '',
    tracker.description ?? '',
    '',
    ...Object.keys(tracker.properties ?? {}).flatMap((k) =>
      entry(`tracker-${k}`, k, k, refs.property(tracker, k), false, refs),
    ),
    '<a id="section-groups"></a>',
    '',
    '## `groups`',
    '',
    groups.description ?? '',
    '',
    `- Type: ${typeOf(groups, refs)}`,
    `- Allowed: ${constraints(groups, refs).join('; ')}`,
    `- Default: ${defaultText(groups, schema.required?.includes('groups') ?? false)}`,
    ...exampleLines('groups', groups),
    '',
    '<a id="group-settings"></a>',
    '',
    '## Group settings',
    '',
    group.description ?? '',
    '',
    `Keys of each entry of \`groups\`. Required in every group: ${(group.required ?? []).map(code).join(', ')};`,
    "every other key may also come from `defaults`, and the group's own value wins.",
    '',
    ...protocolTables(groupKeys),
    ...groupKeys.flatMap((k) =>
      entry(`group-${k}`, k, k, refs.property(group, k), group.required?.includes(k) ?? false, refs),
    ),
    '<a id="families"></a>',
    '',
    '## Protocols and address families',
    '',
    "A group is of one address family, its first address's: every address, `srcip`, `mcast` and",
    '`peers` must be of it too (`ucarp --check-config` says which key is not). Tracking, FAULT, sync',
    'groups, scripts (with the address as argument), notify, events, metrics and status work the',
    'same for every kind. What the address keys mean for each:',
    '',
    ...FAMILY_TABLES.flatMap((t) => [
      `<a id="${t.id}"></a>`,
      '',
      `### ${t.title}`,
      '',
      t.when,
      '',
      '| Key | For these groups |',
      '| --- | --- |',
      ...t.rows.map(
        ([k, v]) => `| ${groupKeys.includes(k) ? `[\`${k}\`](#group-${k})` : k} | ${tableCell(v)} |`,
      ),
      '',
    ]),
    '<a id="full-example"></a>',
    '',
    '## Full example',
    '',
    `\`${EXAMPLE_PATH}\`, which passes \`ucarp --check-config\` on a host with \`eth0\` and 192.0.2.1:`,
    '',
    '```yaml',
    exampleYaml.trimEnd(),
    '```',
    '',
  );
  // Collapse the blank lines that empty descriptions leave behind.
  return out.join('\n').replace(/\n{3,}/g, '\n\n');
}

/**
 * One table per protocol: which group keys it reads. A key of the other protocol is an error
 * when the group sets it and ignored when it comes from `defaults` (PROTOCOL_KEYS).
 */
function protocolTables(groupKeys: string[]): string[] {
  const names = { carp: 'CARP (ucarp 1.5.2)', vrrp3: 'VRRPv3 (RFC 5798, keepalived `vrrp_version 3`)' };
  return (Object.keys(PROTOCOL_KEYS) as (keyof typeof PROTOCOL_KEYS)[]).flatMap((p) => {
    const foreign = new Set<string>(
      Object.entries(PROTOCOL_KEYS)
        .filter(([other]) => other !== p)
        .flatMap(([, keys]) => keys),
    );
    return [
      `<a id="protocol-${p}"></a>`,
      '',
      `### Keys of a \`protocol: ${p}\` group: ${names[p]}`,
      '',
      '| Key | Applies |',
      '| --- | --- |',
      ...groupKeys.map(
        (k) =>
          `| [\`${k}\`](#group-${k}) | ${foreign.has(k) ? 'no: an error in the group, ignored from `defaults`' : 'yes'} |`,
      ),
      '',
    ];
  });
}

/** The document as generated from the schema and example in the repository at `root`. */
export function generate(root = ROOT): string {
  const schema = JSON.parse(fs.readFileSync(path.join(root, SCHEMA_PATH), 'utf8')) as SchemaNode;
  const example = fs.readFileSync(path.join(root, EXAMPLE_PATH), 'utf8');
  return renderConfigDoc(schema, example);
}

export function main(argv: string[], root = ROOT): number {
  const unknown = argv.filter((a) => a !== '--write' && a !== '--check');
  if (unknown.length > 0 || argv.length > 1) {
    process.stderr.write('usage: gen-config-doc [--write | --check]\n');
    return 2;
  }
  const doc = generate(root);
  const target = path.join(root, DOC_PATH);
  if (argv.includes('--write')) {
    fs.writeFileSync(target, doc);
    return 0;
  }
  if (argv.includes('--check')) {
    const current = fs.existsSync(target) ? fs.readFileSync(target, 'utf8') : '';
    if (current === doc) return 0;
    process.stderr.write(`${DOC_PATH} is stale: run node dist/src/tools/gen-config-doc.js --write\n`);
    return 1;
  }
  process.stdout.write(doc);
  return 0;
}

if (require.main === module) process.exitCode = main(process.argv.slice(2));
