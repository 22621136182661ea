// The I/O edge of one CARP group: feeds the pure engine with packets, link changes and timer
// wake-ups, and carries out what it returns (send, gratuitous ARP, addresses, scripts, logs).
import { performance } from 'node:perf_hooks';
import type { GroupConfig } from '../config/types';
import {
  authPrefix,
  encodeAdvertisement,
  passwordKey,
  verifyAdvertisement,
  CARP_HEADER_LEN,
  type Framing,
  type RejectReason,
} from '../protocol/carp';
import {
  Action,
  CarpState,
  GroupParams,
  GroupState,
  Override,
  advertisedTiming,
  initialState,
  nextDeadline,
  step,
  type Event,
} from '../engine/group';
import { randomBytes } from 'node:crypto';
import { ipv4ToInt, intToIpv4 } from '../net/ipv4';
import type { Logger } from '../util/log';
import { LOG_PERIOD_MS, RateLimitedLog } from '../util/rate-limited-log';
import { RejectCounters, emptyRejects } from './counters';
import { ScriptRunner, scriptArgs, scriptEnv } from '../hooks/scripts';

/** What a group needs from the world; the supervisor wires real sockets, tests may fake it. */
export interface GroupIo {
  /** Sends one CARP header; throws when the kernel refuses. */
  send(payload: Buffer, dst: string, src: string): void;
  garp(addresses: string[]): void;
  addAddress(ifname: string, address: string, prefixlen: number): Promise<void>;
  delAddress(ifname: string, address: string, prefixlen: number): Promise<void>;
  /** The CARP state of a group changed (metrics, control socket). */
  onTransition?(group: GroupRuntime, from: CarpState, to: CarpState, reason: string): void;
}

export interface StopOptions {
  /** A master sends the advbase/advskew 255 bow-out so that a backup takes over at once. */
  bowOut: boolean;
  /** Run the downscript when leaving MASTER (ucarp's --shutdown). */
  downscript: boolean;
  /** Remove managed addresses (always, except when the process dies). */
  releaseAddresses: boolean;
}

export interface GroupStats {
  sent: number;
  received: number;
  sendErrors: number;
  transitions: number;
  rejects: RejectCounters;
}

export interface GroupStatus {
  name: string;
  vhid: number;
  interface: string;
  state: CarpState;
  /** Milliseconds spent in the current state. */
  sinceMs: number;
  addresses: string[];
  srcip: string;
  advbase: number;
  advskew: number;
  override: Override;
  master: { address: string; advbase: number; advskew: number } | null;
  stats: GroupStats;
}

const U64 = (1n << 64n) - 1n;

/**
 * Log lines of state changes are written after the current batch of timers and packets: in a
 * mass failover, formatting 255 lines before the last group has sent its advertisement would
 * delay that group by the sum of them.
 */
const pendingLogs: (() => void)[] = [];
function deferLog(write: () => void): void {
  if (pendingLogs.length === 0) {
    setImmediate(() => {
      for (const w of pendingLogs.splice(0)) w();
    });
  }
  pendingLogs.push(write);
}

export function groupParams(cfg: GroupConfig): GroupParams {
  return {
    vhid: cfg.vhid,
    advbase: cfg.advbase,
    advskew: cfg.advskew,
    deadratio: cfg.deadratio,
    preempt: cfg.preempt,
    neutral: cfg.neutral,
    ignoreifstate: cfg.ignoreifstate,
    srcip: ipv4ToInt(cfg.srcip),
  };
}

export class GroupRuntime {
  private s: GroupState;
  private cfg: GroupConfig;
  private key: Buffer;
  private prefix: Buffer;
  private counter: bigint;
  private readonly out = Buffer.alloc(CARP_HEADER_LEN);
  private timer: NodeJS.Timeout | undefined;
  private timerAt: number | null = null;
  /** Address changes of this group, in order: a removal never overtakes an addition. */
  private addressChain: Promise<void> = Promise.resolve();
  private lastScript: Promise<unknown> = Promise.resolve();
  readonly scripts: ScriptRunner;
  private stopping: StopOptions | null = null;
  /** Rejects by reason and send failures ('send') each log once per period, with a count. */
  private readonly faultLog = new RateLimitedLog<RejectReason | 'send'>(LOG_PERIOD_MS, () => this.now());
  readonly stats: GroupStats = {
    sent: 0,
    received: 0,
    sendErrors: 0,
    transitions: 0,
    rejects: emptyRejects(),
  };

  constructor(
    cfg: GroupConfig,
    private readonly io: GroupIo,
    private readonly log: Logger,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.cfg = cfg;
    this.key = passwordKey(cfg.password);
    this.prefix = authPrefix({
      key: this.key,
      vhid: cfg.vhid,
      addresses: cfg.addresses.map((a) => ipv4ToInt(a.address)),
    });
    this.counter = randomBytes(8).readBigUInt64BE();
    this.s = initialState(groupParams(cfg), this.now());
    this.scripts = new ScriptRunner({ log, timeoutMs: cfg.scriptTimeoutMs });
  }

  get config(): GroupConfig {
    return this.cfg;
  }

  get state(): CarpState {
    return this.s.state;
  }

  get engineState(): GroupState {
    return this.s;
  }

  start(linkUp: boolean): void {
    this.s = { ...this.s, linkUp };
    this.dispatch({ type: 'start' });
  }

  /** A packet the interface demultiplexed to this group; framing is already checked. */
  onPacket(pkt: Buffer, framing: Framing): void {
    const r = verifyAdvertisement(pkt, framing.offset, this.key, this.prefix);
    if (!r.ok) {
      this.reject(r.reason, framing.src);
      return;
    }
    this.stats.received++;
    this.counter = r.adv.counter;
    this.dispatch({ type: 'advert', src: framing.src, advbase: r.adv.advbase, advskew: r.adv.advskew });
  }

  /** A rejected packet attributed to this group (its vhid and destination matched). */
  reject(reason: RejectReason, src: number): void {
    this.stats.rejects[reason]++;
    this.faultLog.report(reason, (more) => {
      const hint = reason === 'digest' ? ': check vhid, password and virtual IP address' : '';
      this.log.warn(`rejected advertisement from ${intToIpv4(src)}: bad ${reason}${hint}${more}`);
    });
  }

  onLink(up: boolean): void {
    if (up === this.s.linkUp) return;
    this.log.info(`carrier ${up ? 'up' : 'down'}`);
    this.dispatch({ type: 'link', up });
  }

  /** ucarp's SIGUSR2. */
  demote(): void {
    this.dispatch({ type: 'demote' });
  }

  setOverride(override: Override): void {
    this.dispatch({ type: 'override', override });
  }

  /**
   * Applies settings that the protocol allows to change in place (timing, preempt, scripts,
   * xparam, timeout) without touching the state. Identity changes need a new runtime.
   */
  update(cfg: GroupConfig): void {
    this.cfg = cfg;
    this.scripts.setTimeout(cfg.scriptTimeoutMs);
    this.dispatch({ type: 'update', params: groupParams(cfg) });
  }

  /** Leaves the group; resolves when its downscript and address removals are done. */
  async stop(opts: StopOptions): Promise<void> {
    this.stopping = opts;
    this.dispatch({ type: 'stop', bowOut: opts.bowOut });
    this.clearTimer();
    if (opts.releaseAddresses && this.cfg.manageAddresses) this.changeAddresses(false);
    await Promise.allSettled([this.addressChain, this.lastScript]);
  }

  status(): GroupStatus {
    const timing = advertisedTiming(this.s);
    const m = this.s.master;
    return {
      name: this.cfg.name,
      vhid: this.cfg.vhid,
      interface: this.cfg.interface,
      state: this.s.state,
      sinceMs: Math.max(0, this.now() - this.s.since),
      addresses: this.cfg.addresses.map((a) => `${a.address}/${a.prefixlen}`),
      srcip: this.cfg.srcip,
      advbase: timing.advbase,
      advskew: timing.advskew,
      override: this.s.override,
      master: m ? { address: intToIpv4(m.src), advbase: m.advbase, advskew: m.advskew } : null,
      stats: this.stats,
    };
  }

  /** Resolves once every address change queued so far is done (tests, reload). */
  settled(): Promise<unknown> {
    return Promise.allSettled([this.addressChain, this.lastScript]);
  }

  private dispatch(ev: Event): void {
    const r = step(this.s, ev, this.now());
    this.s = r.state;
    for (const a of r.actions) this.perform(a);
    this.arm();
  }

  private fire(): void {
    this.timer = undefined;
    this.timerAt = null;
    this.dispatch({ type: 'timer' });
  }

  private arm(): void {
    const at = nextDeadline(this.s);
    if (at === this.timerAt) return;
    this.clearTimer();
    if (at === null) return;
    this.timerAt = at;
    // The kernel lets a long epoll_wait() expire up to ~0.1 % late (3 ms on a 3 s dead time),
    // so a backup's wait aims a little early; the engine then does nothing and the short
    // re-arm for the remainder lands within a millisecond. A master's advertisement being a
    // millisecond late is harmless, so it does not pay for the extra wake-up.
    const remaining = at - this.now();
    const early = this.s.state === 'BACKUP' && remaining > 20 ? Math.ceil(remaining / 500) + 1 : 0;
    this.timer = setTimeout(() => this.fire(), Math.max(1, Math.ceil(remaining) - early));
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = null;
  }

  private perform(a: Action): void {
    switch (a.type) {
      case 'send':
        this.sendAdvertisement(a.advbase, a.advskew);
        break;
      case 'garp':
        try {
          this.io.garp(this.cfg.addresses.map((x) => x.address));
        } catch (e) {
          this.log.error(`gratuitous ARP failed: ${(e as Error).message}`);
        }
        break;
      case 'transition':
        this.transition(a.from, a.to, a.reason, a.runScript);
        break;
    }
  }

  private sendAdvertisement(advbase: number, advskew: number): void {
    this.counter = (this.counter + 1n) & U64;
    encodeAdvertisement(
      { vhid: this.cfg.vhid, advbase, advskew, counter: this.counter },
      this.key,
      this.prefix,
      this.out,
    );
    let ok = true;
    try {
      this.io.send(this.out, this.cfg.mcast, this.cfg.srcip);
      this.stats.sent++;
    } catch (e) {
      ok = false;
      this.stats.sendErrors++;
      // A master whose sends fail keeps trying every advbase: one line per period, not per try.
      this.faultLog.report('send', (more) =>
        this.log.warn(`sending advertisement failed: ${(e as Error).message}${more}`),
      );
    }
    // Successes only matter while failures are being counted; skipping them keeps the
    // steady state at one engine step per advertisement.
    if (ok && this.s.sendFailures === 0 && !this.s.suppressed) return;
    // Feed the outcome back after this action list is done (step must not re-enter).
    queueMicrotask(() => {
      if (this.stopping) return;
      const r = step(this.s, { type: 'sendResult', ok }, this.now());
      this.s = r.state;
      this.arm();
    });
  }

  private transition(from: CarpState, to: CarpState, reason: string, runScript: boolean): void {
    this.stats.transitions++;
    const line = `Switching to state: ${to} (${reason})`;
    deferLog(() => (to === 'MASTER' || from === 'MASTER' ? this.log.warn(line) : this.log.info(line)));
    this.io.onTransition?.(this, from, to, reason);
    const stop = this.stopping;
    const manage = this.cfg.manageAddresses && (!stop || stop.releaseAddresses);
    if (to === 'MASTER') {
      if (manage) this.changeAddresses(true);
      if (this.cfg.upscript) this.runScript('up', this.cfg.upscript);
    } else if (to === 'BACKUP') {
      if (manage && !stop) this.changeAddresses(false);
      const script = runScript && (!stop || stop.downscript);
      if (script && this.cfg.downscript) this.runScript('down', this.cfg.downscript);
    }
  }

  private changeAddresses(add: boolean): void {
    const ifname = this.cfg.interface;
    const addrs = this.cfg.addresses;
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

  private runScript(kind: 'up' | 'down', path: string): void {
    const c = this.cfg;
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
}
