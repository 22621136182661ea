// What a group's state changes do to the host: its virtual addresses (added on MASTER, removed
// on leaving it, in order) and its up/down scripts. The driver (group-runtime.ts) decides when;
// this module only carries it out and reports failures.
import type { AddressConfig, GroupConfig } from '../config/types';
import type { Logger } from '../util/log';
import { ScriptRunner, scriptArgs, scriptEnv } from '../hooks/scripts';

/** The address operations a group needs; the group set wires them to rtnetlink. */
export interface AddressIo {
  addAddress(ifname: string, address: string, prefixlen: number): Promise<void>;
  delAddress(ifname: string, address: string, prefixlen: number): Promise<void>;
}

export class GroupEffects {
  readonly scripts: ScriptRunner;
  /** Address changes of this group, in order: a removal never overtakes an addition. */
  private addressChain: Promise<void> = Promise.resolve();
  private lastScript: Promise<unknown> = Promise.resolve();

  constructor(
    private cfg: GroupConfig,
    private readonly io: AddressIo,
    private readonly log: Logger,
  ) {
    this.scripts = new ScriptRunner({ log, timeoutMs: cfg.scriptTimeoutMs });
  }

  update(cfg: GroupConfig): void {
    this.cfg = cfg;
    this.scripts.setTimeout(cfg.scriptTimeoutMs);
  }

  /** Queues adding (or removing) every virtual address of the group, after earlier changes. */
  changeAddresses(add: boolean): void {
    this.queue(add, this.cfg.addresses);
  }

  /** Queues adding some of the group's addresses again (restoring what someone removed). */
  addAddresses(addrs: readonly AddressConfig[]): void {
    this.queue(true, addrs);
  }

  private queue(add: boolean, addrs: readonly AddressConfig[]): void {
    const ifname = this.cfg.interface;
    this.addressChain = this.addressChain.then(async () => {
      const results = await Promise.allSettled(
        addrs.map((a) =>
          add
            ? this.io.addAddress(ifname, a.address, a.prefixlen)
            : this.io.delAddress(ifname, a.address, a.prefixlen),
        ),
      );
      results.forEach((r, i) => {
        if (r.status === 'rejected') {
          const a = addrs[i];
          this.log.error(
            `${add ? 'adding' : 'removing'} ${a.address}/${a.prefixlen} failed: ${(r.reason as Error).message}`,
          );
        }
      });
    });
  }

  /** Runs the upscript (MASTER) or downscript (BACKUP), if configured, with ucarp's arguments. */
  runScript(kind: 'up' | 'down'): void {
    const c = this.cfg;
    const path = kind === 'up' ? c.upscript : c.downscript;
    if (path === undefined) return;
    const addresses = c.addresses.map((a) => a.address);
    const env = scriptEnv({
      group: c.name,
      vhid: c.vhid,
      state: kind === 'up' ? 'MASTER' : 'BACKUP',
      addresses,
    });
    // The runner serializes runs and never rejects; it logs the outcome itself.
    this.lastScript = this.scripts.run(kind, path, scriptArgs(c.interface, addresses, c.xparam), env);
  }

  /** Resolves once every address change and script queued so far is done. */
  async settled(): Promise<void> {
    await Promise.allSettled([this.addressChain, this.lastScript]);
  }
}
