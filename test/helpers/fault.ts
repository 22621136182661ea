// Shared pieces of the fault suite (test/integration/fault-*.test.ts): one daemon per host
// with its own directory, who holds which address according to the kernel, and faults done
// to interfaces from outside.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { Lab, Host, SUBNETS, ip, waitFor } from './netns';
import { OUR_UCARP } from './carp-proc';
import { SupervisorProc, TestGroup, configYaml, writeByRename } from './supervisor-proc';
import type { GroupStatusJson, StatusDocument } from '../../src/control/protocol';

export const OUR_UCARPCTL = path.join(path.dirname(OUR_UCARP), 'ucarpctl');

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

export function run(cmd: string, args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(cmd, args, { maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** One host's daemon: its file, its socket (and so its address record), its process. */
export class Node {
  readonly dir: string;
  readonly file: string;
  readonly socket: string;
  proc!: SupervisorProc;

  constructor(
    readonly lab: Lab,
    readonly host: Host,
    root: string,
    public groups: TestGroup[],
  ) {
    this.dir = path.join(root, `h${host.index}`);
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o755 });
    this.file = path.join(this.dir, 'ucarp.yaml');
    this.socket = path.join(this.dir, 'run', 'control.sock');
    this.write();
  }

  /** The file's text for `groups` (default: the current ones). */
  config(groups: TestGroup[] = this.groups): string {
    return configYaml(groups, { socket: this.socket });
  }

  write(groups: TestGroup[] = this.groups): void {
    this.groups = groups;
    writeByRename(this.file, this.config(groups));
  }

  start(): SupervisorProc {
    this.proc = new SupervisorProc(this.lab, this.host, this.file);
    return this.proc;
  }

  async stop(): Promise<void> {
    if (!this.proc || this.proc.exited) return;
    this.proc.signal('SIGTERM');
    await this.proc.exit();
  }

  ctl(...args: string[]): Promise<Run> {
    return run('ip', [
      'netns',
      'exec',
      this.host.ns,
      process.execPath,
      OUR_UCARPCTL,
      '--socket',
      this.socket,
      ...args,
    ]);
  }

  async status(): Promise<StatusDocument> {
    const r = await this.ctl('status', '--json');
    if (r.code !== 0) throw new Error(`ucarpctl status on ${this.host.ns}: ${r.stderr}`);
    return JSON.parse(r.stdout) as StatusDocument;
  }

  async group(name: string): Promise<GroupStatusJson> {
    const g = (await this.status()).groups.find((x) => x.name === name);
    if (!g) throw new Error(`no group ${name} on ${this.host.ns}`);
    return g;
  }

  async waitState(name: string, state: string, timeoutMs = 15_000): Promise<GroupStatusJson> {
    let last: GroupStatusJson | undefined;
    await waitFor(
      async () => {
        // The daemon may still be starting (no socket yet): keep polling.
        last = await this.group(name).catch(() => undefined);
        return last?.state === state;
      },
      timeoutMs,
      `${name} on ${this.host.ns} to be ${state} (last: ${JSON.stringify(last)})`,
      100,
    );
    return last as GroupStatusJson;
  }

  async has(address: string): Promise<boolean> {
    return (await this.lab.addresses(this.host)).includes(address);
  }

  /** Is the group in `state` according to the daemon (not the log)? */
  async is(name: string, state: string): Promise<boolean> {
    try {
      return (await this.group(name)).state === state;
    } catch {
      return false;
    }
  }
}

/**
 * Two hosts on one segment, each with its daemon and its own directory under a fresh temp
 * dir; `after()` stops both and deletes everything.
 */
export class Pair {
  lab!: Lab;
  n1!: Node;
  n2!: Node;
  readonly root: string;

  constructor(tag: string) {
    this.root = fs.mkdtempSync(path.join(os.tmpdir(), `ucarp-${tag}-`));
  }

  async start(g1: TestGroup[], g2: TestGroup[], labOptions = { hosts: 2 }): Promise<void> {
    this.lab = await Lab.create(labOptions);
    this.n1 = new Node(this.lab, this.lab.host(1), this.root, g1);
    this.n2 = new Node(this.lab, this.lab.host(2), this.root, g2);
    this.n1.start();
    this.n2.start();
  }

  async after(): Promise<void> {
    await this.n1?.stop().catch(() => undefined);
    await this.n2?.stop().catch(() => undefined);
    await this.lab?.destroy();
    fs.rmSync(this.root, { recursive: true, force: true });
  }
}

/** address → namespaces holding it, from every host's interfaces (the kernel's truth). */
export async function holders(lab: Lab, hosts: Host[] = lab.hosts): Promise<Map<string, string[]>> {
  const m = new Map<string, string[]>();
  for (const h of hosts) {
    const out = await ip('-n', h.ns, '-j', '-4', 'addr', 'show');
    const links = JSON.parse(out) as { addr_info?: { local: string }[] }[];
    for (const l of links)
      for (const a of l.addr_info ?? []) m.set(a.local, [...(m.get(a.local) ?? []), h.ns]);
  }
  return m;
}

/** The namespaces holding `address` now. */
export async function holdersOf(lab: Lab, address: string): Promise<string[]> {
  return (await holders(lab)).get(address) ?? [];
}

/** Deletes a host's interface on segment s (its veth pair goes with it). */
export async function deleteInterface(lab: Lab, h: Host, segment = 0): Promise<void> {
  await ip('-n', h.ns, 'link', 'del', h.ifaces[segment]);
}

/** Creates the host's interface on segment s again, as Lab did: new index, same name and address. */
export async function createInterface(lab: Lab, h: Host, segment = 0, address = true): Promise<void> {
  const port = h.swPorts[segment];
  const iface = h.ifaces[segment];
  await ip('link', 'add', port, 'type', 'veth', 'peer', 'name', iface, 'netns', h.ns);
  await ip('link', 'set', port, 'netns', lab.sw);
  await ip('-n', lab.sw, 'link', 'set', port, 'master', `br${segment}`, 'up');
  if (address) await ip('-n', h.ns, 'addr', 'add', `${SUBNETS[segment]}.${h.index}/24`, 'dev', iface);
  await ip('-n', h.ns, 'link', 'set', iface, 'up');
}

export async function ifindex(h: Host, iface: string): Promise<number> {
  const out = JSON.parse(await ip('-n', h.ns, '-j', 'link', 'show', 'dev', iface)) as { ifindex: number }[];
  return out[0].ifindex;
}
