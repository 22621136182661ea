// Test hosts built from network namespaces: one "switch" namespace holding a bridge per
// segment, and N hosts each with one veth per segment. Every name carries a per-run prefix so
// parallel runs never collide, and everything is deleted on destroy() and on process exit.
import { execFile, spawn, ChildProcess, SpawnOptions } from 'node:child_process';
import { promisify } from 'node:util';
import { deleteNamespace } from '../../src/demo/lab';

const run = promisify(execFile);

/** Only the documentation ranges (RFC 5737); nothing here ever leaves the namespaces. */
export const SUBNETS = ['192.0.2', '198.51.100', '203.0.113'] as const;

export interface Host {
  /** 1-based index; the host's address on segment s is `${SUBNETS[s]}.${index}`. */
  index: number;
  ns: string;
  /** Interfaces inside the host: eth0, eth1, … one per segment. */
  ifaces: string[];
  /** The host's own address on each segment. */
  ips: string[];
  /** Switch-side veth name of each segment. */
  swPorts: string[];
  /** With LabOptions.ipv6: the host's IPv6 address on each segment, `2001:db8:<s+1>::<index>`. */
  ips6: string[];
}

export interface LabOptions {
  hosts: number;
  /** Number of L2 segments (1..3); each host gets one interface per segment. */
  segments?: number;
  /**
   * Also give every host an IPv6 address per segment (IPV6_SUBNETS), with duplicate address
   * detection off in its namespace so that addresses and link-locals serve at once.
   */
  ipv6?: boolean;
}

/** Documentation prefixes (RFC 3849), one /64 per segment. */
export const IPV6_SUBNETS = ['2001:db8:1::', '2001:db8:2::', '2001:db8:3::'] as const;

const BRIDGE_NF_OFF = ['iptables', 'ip6tables', 'arptables'].map((t) => `net.bridge.bridge-nf-call-${t}=0`);

const live = new Set<Lab>();
let exitHookInstalled = false;
let counter = 0;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  const cleanup = () => {
    for (const lab of live) lab.destroySync();
  };
  process.on('exit', cleanup);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => {
      cleanup();
      process.exit(130);
    });
  }
}

export async function ip(...args: string[]): Promise<string> {
  const { stdout } = await run('ip', args);
  return stdout;
}

export class Lab {
  readonly prefix: string;
  readonly sw: string;
  readonly hosts: Host[] = [];
  private readonly children = new Set<ChildProcess>();
  private destroyed = false;

  private constructor(prefix: string) {
    this.prefix = prefix;
    this.sw = `${prefix}sw`;
  }

  static async create(opts: LabOptions): Promise<Lab> {
    const segments = opts.segments ?? 1;
    if (segments < 1 || segments > SUBNETS.length) throw new Error('segments must be 1..3');
    installExitHook();
    // Short prefix: interface names are limited to 15 bytes.
    const prefix = `u${(process.pid % 100000).toString(36)}${(counter++).toString(36)}`;
    const lab = new Lab(prefix);
    live.add(lab);
    try {
      await ip('netns', 'add', lab.sw);
      // A switch forwards frames without looking at IP: with br_netfilter loaded (Docker loads
      // it), every bridged packet would also cross the ip/ip6/arptables hooks, in the sender's
      // system call, billed to whichever daemon sent it (a tenth of an IPv6 master's CPU in
      // bench/scale). -e: absent without the module, and nothing to turn off then.
      await run('ip', ['netns', 'exec', lab.sw, 'sysctl', '-qew', ...BRIDGE_NF_OFF]);
      for (let s = 0; s < segments; s++) {
        // Without an MLD querier, snooping would only add a variable: flood multicast as a hub.
        const snoop = opts.ipv6 ? ['mcast_snooping', '0'] : [];
        await ip('-n', lab.sw, 'link', 'add', `br${s}`, 'type', 'bridge', 'forward_delay', '0', ...snoop);
        await ip('-n', lab.sw, 'link', 'set', `br${s}`, 'up');
      }
      for (let i = 1; i <= opts.hosts; i++) {
        const ns = `${prefix}h${i}`;
        await ip('netns', 'add', ns);
        await ip('-n', ns, 'link', 'set', 'lo', 'up');
        if (opts.ipv6) {
          // Before the interfaces exist: they take their settings from `default`.
          for (const k of ['all', 'default'])
            await run('ip', ['netns', 'exec', ns, 'sysctl', '-qw', `net.ipv6.conf.${k}.accept_dad=0`]);
        }
        const host: Host = { index: i, ns, ifaces: [], ips: [], swPorts: [], ips6: [] };
        for (let s = 0; s < segments; s++) {
          const port = `${prefix}h${i}s${s}`;
          const iface = `eth${s}`;
          await ip('link', 'add', port, 'type', 'veth', 'peer', 'name', iface, 'netns', ns);
          await ip('link', 'set', port, 'netns', lab.sw);
          await ip('-n', lab.sw, 'link', 'set', port, 'master', `br${s}`, 'up');
          const addr = `${SUBNETS[s]}.${i}`;
          await ip('-n', ns, 'addr', 'add', `${addr}/24`, 'dev', iface);
          if (opts.ipv6) {
            await run('ip', ['netns', 'exec', ns, 'sysctl', '-qw', `net.ipv6.conf.${iface}.accept_dad=0`]);
            const addr6 = `${IPV6_SUBNETS[s]}${i}`;
            await ip('-n', ns, 'addr', 'add', `${addr6}/64`, 'dev', iface);
            host.ips6.push(addr6);
          }
          await ip('-n', ns, 'link', 'set', iface, 'up');
          host.ifaces.push(iface);
          host.ips.push(addr);
          host.swPorts.push(port);
        }
        lab.hosts.push(host);
      }
    } catch (e) {
      lab.destroySync();
      throw e;
    }
    return lab;
  }

  host(i: number): Host {
    const h = this.hosts[i - 1];
    if (!h) throw new Error(`no host ${i}`);
    return h;
  }

  /** Runs a command inside a host and waits for it. */
  async exec(h: Host, cmd: string, args: string[] = []): Promise<string> {
    const { stdout } = await run('ip', ['netns', 'exec', h.ns, cmd, ...args], { maxBuffer: 64 << 20 });
    return stdout;
  }

  /** Starts a long-running process inside a host; it is killed on destroy(). */
  spawn(h: Host, cmd: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', h.ns, cmd, ...args], { stdio: 'pipe', ...opts });
    this.children.add(child);
    child.on('exit', () => this.children.delete(child));
    return child;
  }

  /** IPv4 addresses (without prefix) currently on an interface of a host. */
  async addresses(h: Host, iface = 'eth0'): Promise<string[]> {
    const out = await ip('-n', h.ns, '-j', 'addr', 'show', 'dev', iface);
    const parsed = JSON.parse(out) as { addr_info?: { family: string; local: string }[] }[];
    return parsed.flatMap((l) => (l.addr_info ?? []).filter((a) => a.family === 'inet').map((a) => a.local));
  }

  /** IPv6 addresses (canonical, without prefix) currently on an interface, link-local included. */
  async addresses6(h: Host, iface = 'eth0'): Promise<string[]> {
    const out = await ip('-n', h.ns, '-j', '-6', 'addr', 'show', 'dev', iface);
    const parsed = JSON.parse(out) as { addr_info?: { family: string; local: string }[] }[];
    return parsed.flatMap((l) => (l.addr_info ?? []).filter((a) => a.family === 'inet6').map((a) => a.local));
  }

  /** Cuts a host off segment s (its carrier drops) or reconnects it. */
  async setSwitchPort(h: Host, up: boolean, segment = 0): Promise<void> {
    await ip('-n', this.sw, 'link', 'set', h.swPorts[segment], up ? 'up' : 'down');
  }

  /**
   * Detaches a host from segment s's bridge (or re-attaches it): it can no longer reach the
   * others, but unlike setSwitchPort its carrier stays up.
   */
  async isolate(h: Host, isolated: boolean, segment = 0): Promise<void> {
    const port = h.swPorts[segment];
    if (isolated) await ip('-n', this.sw, 'link', 'set', port, 'nomaster');
    else await ip('-n', this.sw, 'link', 'set', port, 'master', `br${segment}`);
  }

  async destroy(): Promise<void> {
    this.destroySync();
  }

  destroySync(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    live.delete(this);
    for (const c of this.children) {
      try {
        c.kill('SIGKILL');
      } catch {
        /* already gone */
      }
    }
    for (const ns of [...this.hosts.map((h) => h.ns), this.sw]) deleteNamespace(ns);
  }
}

/** Resolves when `pred` returns true, polling every `everyMs`; rejects after `timeoutMs`. */
export async function waitFor(
  pred: () => boolean | Promise<boolean>,
  timeoutMs: number,
  what = 'condition',
  everyMs = 20,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await pred()) return;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
