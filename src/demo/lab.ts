// The demo's test network: a "switch" namespace holding one bridge, and one namespace per host
// with a single interface eth0 plugged into it. Nothing is created in the root namespace (the
// veth pairs are made inside the switch namespace), so deleting the namespaces removes
// everything. Every process the demo starts inside is tracked, so that teardown can end it.
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { LabError } from '../errors';

const run = promisify(execFile);

/** Every namespace of every demo run starts with this. */
export const NS_PREFIX = 'ucdemo';

export interface LabHostSpec {
  name: string;
  /** The host's own address with prefix length, e.g. 192.0.2.1/24. */
  address: string;
}

export interface LabHost extends LabHostSpec {
  ns: string;
  /** Address without the prefix length. */
  ip: string;
  iface: 'eth0';
}

/**
 * Synchronous on purpose: a signal is handled only between two commands, never while an
 * `ip netns add` is in flight and could create a namespace after teardown ran.
 */
function ipSync(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A per-run prefix: two demos (or a demo and its test) never share a namespace name. */
export function runPrefix(): string {
  return `${NS_PREFIX}${process.pid.toString(36)}`;
}

export class Lab {
  readonly hosts: LabHost[] = [];
  readonly switchNs: string;
  /** Namespaces in creation order; only these are ever deleted. */
  private readonly created: string[] = [];
  private readonly children = new Set<ChildProcess>();
  private destroyed = false;

  private constructor(readonly prefix: string) {
    this.switchNs = `${prefix}-sw`;
  }

  /**
   * Builds the network. On failure whatever was created is removed before the error is
   * rethrown. `onCreate` receives the lab before the first namespace exists, so that whoever
   * tears down on an error or a signal already knows it.
   */
  static create(prefix: string, specs: LabHostSpec[], onCreate?: (lab: Lab) => void): Lab {
    const lab = new Lab(prefix);
    onCreate?.(lab);
    try {
      lab.addNamespace(lab.switchNs);
      ipSync('-n', lab.switchNs, 'link', 'add', 'br0', 'type', 'bridge', 'forward_delay', '0');
      ipSync('-n', lab.switchNs, 'link', 'set', 'br0', 'up');
      for (const [i, spec] of specs.entries()) {
        const ns = `${prefix}-${spec.name}`;
        lab.addNamespace(ns);
        const port = `p${i + 1}`;
        ipSync('-n', lab.switchNs, 'link', 'add', port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
        ipSync('-n', lab.switchNs, 'link', 'set', port, 'master', 'br0', 'up');
        ipSync('-n', ns, 'link', 'set', 'lo', 'up');
        ipSync('-n', ns, 'addr', 'add', spec.address, 'dev', 'eth0');
        ipSync('-n', ns, 'link', 'set', 'eth0', 'up');
        lab.hosts.push({ ...spec, ns, ip: spec.address.split('/')[0], iface: 'eth0' });
      }
    } catch (e) {
      lab.destroySync();
      throw e;
    }
    return lab;
  }

  get namespaces(): readonly string[] {
    return this.created;
  }

  host(name: string): LabHost {
    const h = this.hosts.find((x) => x.name === name);
    if (!h) throw new LabError(`no demo host named ${name}`);
    return h;
  }

  /** Starts a process inside a host; teardown kills it if it still runs. */
  spawn(h: LabHost, cmd: string, args: string[]): ChildProcess {
    // `ip netns exec` execs the command in place: the child's pid is the command's own.
    const child = spawn('ip', ['netns', 'exec', h.ns, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.track(child);
    return child;
  }

  /** Starts `ip ARGS` acting on a host's namespace (e.g. `monitor address`). */
  spawnIp(h: LabHost, args: string[]): ChildProcess {
    const child = spawn('ip', ['-n', h.ns, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.track(child);
    return child;
  }

  /** IPv4 addresses (without prefix length) on the host's eth0. */
  async addresses(h: LabHost): Promise<string[]> {
    const { stdout: out } = await run('ip', ['-n', h.ns, '-j', 'addr', 'show', 'dev', h.iface]);
    const links = JSON.parse(out) as { addr_info?: { family: string; local: string }[] }[];
    return links.flatMap((l) => (l.addr_info ?? []).filter((a) => a.family === 'inet').map((a) => a.local));
  }

  /**
   * Kills every process started here and everything else still running inside the
   * namespaces, then deletes them. Synchronous, so that it also works from an 'exit' handler;
   * safe to call more than once.
   */
  destroySync(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const c of this.children) {
      try {
        c.kill('SIGKILL');
      } catch {
        // Already gone.
      }
    }
    for (const ns of [...this.created].reverse()) deleteNamespace(ns);
  }

  private addNamespace(ns: string): void {
    // Recorded first: if `ip netns add` half-succeeds, teardown still tries to delete it.
    this.created.push(ns);
    ipSync('netns', 'add', ns);
  }

  private track(child: ChildProcess): void {
    this.children.add(child);
    child.on('exit', () => this.children.delete(child));
  }
}

/**
 * Deletes a namespace and kills whatever still runs in it first: a process inside keeps the
 * namespace's network alive after `ip netns del`. Never throws.
 */
export function deleteNamespace(ns: string): void {
  try {
    const pids = execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).split(/\s+/).filter(Boolean);
    for (const pid of pids) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // Exited meanwhile.
      }
    }
  } catch {
    // Namespace never fully created.
  }
  try {
    execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
  } catch {
    // Already deleted.
  }
}
