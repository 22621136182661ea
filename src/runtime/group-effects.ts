// What a group's state changes do to the host: its virtual addresses (added on MASTER, removed
// on leaving it, in order) and its up/down scripts. The driver (group-runtime.ts) decides when;
// this module only carries it out and reports failures.
import type { AddressConfig, GroupConfig } from '../config/types';
import type { Logger } from '../util/log';
import { ScriptRunner, scriptArgs, scriptEnv } from '../hooks/scripts';
import type { CarpState } from '../engine/group';
import { errorMessage } from '../errors';

/** The address operations a group needs; the group set wires them to rtnetlink. */
export interface AddressIo {
  addAddress(ifname: string, address: string, prefixlen: number): Promise<void>;
  delAddress(ifname: string, address: string, prefixlen: number): Promise<void>;
}

export class GroupEffects {
  readonly scripts: ScriptRunner;
  /** Its own lane: a slow notify never delays the group's up/down scripts, or the reverse. */
  private readonly notifier: ScriptRunner;
  /** Address changes of this group, in order: a removal never overtakes an addition. */
  private addressChain: Promise<void> = Promise.resolve();
  /** Address changes queued and not finished: while any is, a new one waits its turn. */
  private queued = 0;
  /** Settles once a stopping group has released its addresses: the downscript runs after. */
  private released: Promise<unknown> | undefined;

  constructor(
    private cfg: GroupConfig,
    private readonly io: AddressIo,
    private readonly log: Logger,
  ) {
    // One lane per group name: a restarted group's upscript queues behind the old instance's
    // downscript, which would otherwise undo it.
    this.scripts = new ScriptRunner({ log, timeoutMs: cfg.scriptTimeoutMs, lane: cfg.name });
    this.notifier = new ScriptRunner({ log, timeoutMs: cfg.scriptTimeoutMs, lane: `${cfg.name} notify` });
  }

  update(cfg: GroupConfig): void {
    this.cfg = cfg;
    this.scripts.setTimeout(cfg.scriptTimeoutMs);
    this.notifier.setTimeout(cfg.scriptTimeoutMs);
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
    // Nothing earlier pending: the requests are made now, within the transition, so that in
    // a mass takeover they join the netlink datagram being filled instead of waiting for the
    // whole run of expiring timers to end (docs/performance.md, "Mass failover").
    const idle = this.queued === 0;
    this.queued++;
    const change = () => this.change(add, addrs);
    const done = idle ? change() : this.addressChain.then(change);
    this.addressChain = done.finally(() => {
      this.queued--;
    });
  }

  private async change(add: boolean, addrs: readonly AddressConfig[]): Promise<void> {
    const ifname = this.cfg.interface;
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
          `${add ? 'adding' : 'removing'} ${a.address}/${a.prefixlen} failed: ${errorMessage(r.reason)}`,
        );
      }
    });
  }

  /** Runs the upscript (MASTER) or downscript (BACKUP), if configured, with ucarp's arguments. */
  runScript(kind: 'up' | 'down', state: CarpState): void {
    const c = this.cfg;
    const path = kind === 'up' ? c.upscript : c.downscript;
    if (path === undefined) return;
    const addresses = c.addresses.map((a) => a.address);
    const env = scriptEnv({
      group: c.name,
      vhid: c.vhid,
      state,
      addresses,
    });
    // The runner serializes runs and never rejects; it logs the outcome itself.
    void this.scripts.run(kind, path, scriptArgs(c.interface, addresses, c.xparam), env, {
      after: this.released,
    });
  }

  /**
   * keepalived's notify: `<group> <state> <vhid> <interface>` on every state change, with the
   * scripts' UCARP_* environment; serialized per group, never waited for.
   */
  notify(state: CarpState): void {
    const c = this.cfg;
    if (c.notify === undefined) return;
    const env = scriptEnv({
      group: c.name,
      vhid: c.vhid,
      state,
      addresses: c.addresses.map((a) => a.address),
    });
    void this.notifier.run('notify', c.notify, [c.name, state, String(c.vhid), c.interface], env);
  }

  /** Resolves once every address change queued so far is done (scripts are not waited for). */
  async settled(): Promise<void> {
    await this.addressChain.catch(() => undefined);
  }

  /**
   * The group is leaving: scripts queued from now on (its downscript) wait until the address
   * release that the caller queues next is done. Returns the function that marks that point.
   */
  beginLeaving(): () => Promise<void> {
    let release = (): void => undefined;
    this.released = new Promise<void>((r) => (release = r));
    return () => {
      const done = this.settled();
      void done.then(release);
      return done;
    };
  }
}
