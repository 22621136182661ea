// config/demo.yaml: an ordinary ucarp configuration plus a `demo:` section saying what differs
// between the demo hosts. From it come the lab's hosts, the plan the demo checks the cluster
// against (who should be master of what), and one configuration file per host.
import fs from 'node:fs';
import { parseDocument, type Document } from 'yaml';
import type { LabHostSpec } from './lab';
import { UsageError } from '../errors';

export interface PlanGroup {
  name: string;
  vhid: number;
  /** Virtual addresses with prefix length, as in the configuration. */
  addresses: string[];
  preempt: boolean;
  advbase: number;
  deadratio: number;
  /** Host name → advskew it advertises. A host missing here does not run the group. */
  advskew: Map<string, number>;
}

export interface DemoTemplate {
  file: string;
  hosts: LabHostSpec[];
  groups: PlanGroup[];
  /** The template as parsed, comments included; never modified. */
  doc: Document;
}

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function obj(v: unknown, where: string): Obj {
  if (!isObj(v)) throw new UsageError(`${where} must be a mapping`);
  return v;
}

function int(v: unknown, where: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)
    throw new UsageError(`${where} must be an integer ${min}..${max}`);
  return v;
}

const ADDRESS = /^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/;

export function loadTemplate(file: string): DemoTemplate {
  const doc = parseDocument(fs.readFileSync(file, 'utf8'));
  if (doc.errors.length > 0) throw new UsageError(`${file}: ${doc.errors[0].message}`);
  const root = obj(doc.toJS(), file);
  const defaults = isObj(root.defaults) ? root.defaults : {};
  const groupsIn = obj(root.groups, `${file}: groups`);
  const hostsIn = obj(obj(root.demo, `${file}: demo`).hosts, `${file}: demo.hosts`);

  const hosts: LabHostSpec[] = [];
  const skews = new Map<string, Obj>();
  for (const [name, v] of Object.entries(hostsIn)) {
    const h = obj(v, `${file}: demo.hosts.${name}`);
    if (typeof h.address !== 'string' || !ADDRESS.test(h.address))
      throw new UsageError(`${file}: demo.hosts.${name}.address must look like 192.0.2.1/24`);
    hosts.push({ name, address: h.address });
    skews.set(name, obj(h.advskew, `${file}: demo.hosts.${name}.advskew`));
  }
  if (hosts.length < 2) throw new UsageError(`${file}: demo.hosts needs at least two hosts`);

  const groups: PlanGroup[] = Object.entries(groupsIn).map(([name, v]) => {
    const g = obj(v, `${file}: groups.${name}`);
    const advskew = new Map<string, number>();
    for (const h of hosts) {
      const s = skews.get(h.name)?.[name];
      if (s !== undefined)
        advskew.set(h.name, int(s, `${file}: demo.hosts.${h.name}.advskew.${name}`, 0, 255));
    }
    if (advskew.size === 0)
      throw new UsageError(`${file}: no host in demo.hosts has an advskew for group ${name}`);
    const setting = (key: string, fallback: unknown): unknown => g[key] ?? defaults[key] ?? fallback;
    return {
      name,
      vhid: int(g.vhid, `${file}: groups.${name}.vhid`, 1, 255),
      addresses: Array.isArray(g.addresses) ? g.addresses.map(String) : [],
      preempt: setting('preempt', false) === true,
      advbase: int(setting('advbase', 1), `${file}: advbase of ${name}`, 0, 255),
      deadratio: int(setting('deadratio', 3), `${file}: deadratio of ${name}`, 1, 1e6),
      advskew,
    };
  });
  return { file, hosts, groups, doc };
}

/**
 * One host's configuration: the template without `demo:`, with this host's control socket,
 * source address and advskews, and only the groups this host runs.
 */
export function hostDocument(t: DemoTemplate, host: LabHostSpec, socket: string): Document {
  const doc = t.doc.clone();
  doc.delete('demo');
  doc.setIn(['control', 'socket'], socket);
  doc.setIn(['defaults', 'srcip'], host.address.split('/')[0]);
  for (const g of t.groups) {
    const skew = g.advskew.get(host.name);
    if (skew === undefined) doc.deleteIn(['groups', g.name]);
    else doc.setIn(['groups', g.name, 'advskew'], skew);
  }
  return doc;
}

/** The host that should end up master of `g` among `live` hosts: the lowest advskew wins. */
export function preferredHost(g: PlanGroup, live: ReadonlySet<string>): string | undefined {
  let best: string | undefined;
  for (const [host, skew] of g.advskew) {
    if (!live.has(host)) continue;
    if (best === undefined || skew < (g.advskew.get(best) as number)) best = host;
  }
  return best;
}

/** A backup's master-down time: deadratio × advbase + advskew/256 seconds, in ms. */
export function masterDownMs(g: PlanGroup, advbase: number, advskew: number): number {
  return Math.round((g.deadratio * advbase + advskew / 256) * 1000);
}
