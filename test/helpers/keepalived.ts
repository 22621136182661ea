// Debian's keepalived 2.2.7 as a VRRPv3 peer inside a Lab host: its configuration written to a
// temporary directory, run in the foreground with its own pid files, its state read from the
// kernel (the virtual address on its interface), its processes killed by PID only.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Lab, Host, ip, waitFor } from './netns';
import { LabProcess } from './lab-process';

export const KEEPALIVED = '/usr/sbin/keepalived';

export interface KeepalivedOptions {
  vrid: number;
  priority: number;
  /** Seconds (keepalived's advert_int). */
  advertInt?: number;
  /** With prefix, e.g. 192.0.2.254/24. */
  addresses: string[];
  iface?: string;
  nopreempt?: boolean;
  /** Unicast: keepalived's unicast_src_ip is the host's own address. */
  unicastPeers?: string[];
  /** IPv6 (keepalived's native_ipv6): advertisements to ff02::12 from the link-local address. */
  native6?: boolean;
  /** A script run (as root) on becoming master. */
  notifyMaster?: string;
}

export function keepalivedConf(h: Host, o: KeepalivedOptions): string {
  const iface = o.iface ?? 'eth0';
  const lines = [
    'global_defs {',
    `  router_id ${h.ns}`,
    '  vrrp_version 3',
    ...(o.notifyMaster ? ['  script_user root', '  enable_script_security'] : []),
    '}',
    'vrrp_instance VI_1 {',
    // BACKUP: keepalived's own start like ours (listen first); `nopreempt` requires it.
    '  state BACKUP',
    `  interface ${iface}`,
    `  virtual_router_id ${o.vrid}`,
    `  priority ${o.priority}`,
    `  advert_int ${o.advertInt ?? 1}`,
    ...(o.nopreempt ? ['  nopreempt'] : []),
    ...(o.native6 ? ['  native_ipv6'] : []),
    ...(o.notifyMaster ? [`  notify_master "${o.notifyMaster}"`] : []),
    ...(o.unicastPeers
      ? [
          `  unicast_src_ip ${o.native6 ? h.ips6[0] : h.ips[0]}`,
          // Without it keepalived's unicast IPv6 advertisements arrive with a hop limit other
          // than 255, which RFC 5798 receivers (us) refuse (docs/protocol.md §22).
          ...(o.native6 ? ['  unicast_ttl 255'] : []),
          '  unicast_peer {',
          ...o.unicastPeers.map((p) => `    ${p}`),
          '  }',
        ]
      : []),
    '  virtual_ipaddress {',
    ...o.addresses.map((a) => `    ${a} dev ${iface}`),
    '  }',
    '}',
  ];
  return lines.join('\n') + '\n';
}

export class KeepalivedProc extends LabProcess {
  readonly dir: string;

  constructor(
    lab: Lab,
    host: Host,
    readonly opts: KeepalivedOptions,
  ) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ucarp-ka-'));
    const conf = path.join(dir, 'keepalived.conf');
    fs.writeFileSync(conf, keepalivedConf(host, opts));
    // -n foreground, -l log to the console, -D detailed, --vrrp without the checker; pid files
    // of its own so that instances in other namespaces never collide.
    super(lab, host, KEEPALIVED, [
      '-n',
      '-l',
      '-D',
      '--vrrp',
      '-f',
      conf,
      '-p',
      path.join(dir, 'keepalived.pid'),
      '-r',
      path.join(dir, 'vrrp.pid'),
    ]);
    this.dir = dir;
  }

  /** keepalived's VRRP child, which sends the advertisements (its pid file, once written). */
  vrrpPid(): number | undefined {
    try {
      const pid = Number(fs.readFileSync(path.join(this.dir, 'vrrp.pid'), 'utf8').trim());
      return pid > 0 ? pid : undefined;
    } catch {
      return undefined;
    }
  }

  /** The processes of this instance: the parent we spawned and its VRRP child. */
  private pids(): number[] {
    const out: number[] = [];
    const vrrp = this.vrrpPid();
    if (vrrp !== undefined) out.push(vrrp);
    if (this.child.pid !== undefined && !this.exited) out.push(this.child.pid);
    return out;
  }

  async waitStarted(timeoutMs = 10000): Promise<void> {
    await waitFor(
      () => this.lines.some((l) => /Entering (BACKUP|MASTER) STATE/.test(l)) || this.exited,
      timeoutMs,
      `keepalived on ${this.host.ns} to start; last lines:\n${this.lines.slice(-10).join('\n')}`,
    );
    if (this.exited) throw new Error(`keepalived exited:\n${this.lines.slice(-20).join('\n')}`);
  }

  /**
   * SIGKILL: the VRRP child first (the parent would otherwise stop it cleanly, sending
   * priority 0), then the parent. SIGTERM: to the parent, which stops its child gracefully.
   */
  kill(sig: 'SIGKILL' | 'SIGTERM'): void {
    if (sig === 'SIGTERM') {
      this.child.kill('SIGTERM');
      return;
    }
    for (const pid of this.pids()) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
  }

  async exit(timeoutMs = 10000): Promise<void> {
    await waitFor(() => this.exited, timeoutMs, `keepalived on ${this.host.ns} to exit`);
    const vrrp = this.vrrpPid();
    // Its VRRP child must not outlive it: it is one of the pids still in the namespace.
    await waitFor(
      async () =>
        vrrp === undefined || !(await ip('netns', 'pids', this.host.ns)).split('\n').includes(String(vrrp)),
      timeoutMs,
      `keepalived's VRRP child ${vrrp} on ${this.host.ns} to exit`,
    );
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
