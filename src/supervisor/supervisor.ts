// The multi-group daemon: configuration in, running groups out, and reload as a diff. A
// configuration that fails validation never reaches the running set.
import path from 'node:path';
import { watch, type FSWatcher } from 'chokidar';
import { loadConfig, formatErrors, systemHostInfo } from '../config';
import type { Config, ConfigError } from '../config/types';
import { ConfigLoader } from '../config/off-thread';
import { createLogger, type Logger } from '../util/log';
import { Daemon, type ApplySummary } from '../runtime/daemon';
import { sdNotify } from '../net/native';
import { statusLine } from '../runtime/status';
import type { CarpState } from '../engine/group';
import type { GroupRuntime } from '../runtime/group-runtime';
import { ControlServer } from '../control/server';
import { handleRequest } from '../control/commands';
import { MetricsServer, createMetricsRegistry } from '../control/metrics';

/** Editors write a file in several steps (truncate, write, rename): wait for quiet. */
const WATCH_DEBOUNCE_MS = 150;

export type ReloadOutcome =
  { ok: true; summary: ApplySummary; line: string } | { ok: false; errors: ConfigError[]; text: string };

export interface SupervisorHooks {
  onTransition?(group: GroupRuntime, from: CarpState, to: CarpState, reason: string): void;
  onReload?(outcome: ReloadOutcome): void;
}

export function checkConfig(file: string): number {
  const r = loadConfig(file, systemHostInfo());
  if (r.warnings.length > 0) process.stderr.write(formatErrors(r.warnings) + '\n');
  if (!r.ok) {
    process.stderr.write(formatErrors(r.errors) + '\n');
    return 1;
  }
  process.stdout.write(`${file}: configuration OK, ${r.config.groups.length} group(s)\n`);
  return 0;
}

export function summaryLine(s: ApplySummary): string {
  const part = (label: string, names: string[]) =>
    `${label} ${names.length}${names.length > 0 ? ` (${names.join(', ')})` : ''}`;
  return [
    part('added', s.added),
    part('removed', s.removed),
    part('updated', s.updated),
    part('restarted', s.restarted),
    `unchanged ${s.unchanged}`,
  ].join(', ');
}

function notify(state: string): void {
  try {
    sdNotify(state);
  } catch {
    // Not under systemd, or the socket went away: readiness is best effort.
  }
}

export class Supervisor {
  readonly daemon: Daemon;
  readonly log: Logger;
  config: Config;
  reloads = { ok: 0, failed: 0 };
  private watcher: FSWatcher | undefined;
  private debounce: NodeJS.Timeout | undefined;
  /** Reloads are serialized; requests arriving meanwhile collapse into one more run. */
  private running: Promise<ReloadOutcome> | null = null;
  private pending: Promise<ReloadOutcome> | null = null;
  private readonly loader = new ConfigLoader();

  constructor(
    readonly file: string,
    config: Config,
    log: Logger,
    private readonly hooks: SupervisorHooks = {},
  ) {
    this.config = config;
    this.log = log;
    this.daemon = new Daemon({
      log,
      stopPolicy: { bowOut: true, downscript: true, releaseAddresses: true },
      onTransition: hooks.onTransition,
    });
  }

  async start(): Promise<void> {
    const s = await this.daemon.start(this.config.groups);
    this.log.info(`started ${s.added.length} group(s) from ${this.file}`);
  }

  /** Watches the file's directory, so that a save by rename is seen like a write. */
  watch(): void {
    const dir = path.dirname(path.resolve(this.file));
    const base = path.basename(this.file);
    this.watcher = watch(dir, { ignoreInitial: true, depth: 0 });
    this.watcher.on('all', (event, p) => {
      if (path.basename(p) !== base || event === 'unlink') return;
      if (this.debounce) clearTimeout(this.debounce);
      this.debounce = setTimeout(() => {
        this.debounce = undefined;
        void this.reload('file change');
      }, WATCH_DEBOUNCE_MS);
    });
    this.watcher.on('error', (e) => this.log.warn(`watching ${dir}: ${(e as Error).message}`));
  }

  reload(why: string): Promise<ReloadOutcome> {
    if (!this.running) {
      this.running = this.reloadOnce(why).finally(() => {
        this.running = null;
      });
      return this.running;
    }
    // One run is in progress: every request made meanwhile shares the next run, which reads
    // the file after all of them were made.
    if (!this.pending) {
      const after = this.running.catch(() => undefined);
      this.pending = after.then(() => {
        this.pending = null;
        return this.reload(why);
      });
    }
    return this.pending;
  }

  private async reloadOnce(why: string): Promise<ReloadOutcome> {
    notify(
      // hrtime is CLOCK_MONOTONIC, which is what systemd expects here.
      `RELOADING=1\nMONOTONIC_USEC=${process.hrtime.bigint() / 1000n}`,
    );
    try {
      const r = await this.loader.load(this.file);
      for (const w of r.warnings) this.log.warn(formatErrors([w]));
      if (!r.ok) {
        this.reloads.failed++;
        const text = formatErrors(r.errors);
        this.log.error(`reload (${why}) rejected, running groups unchanged:\n${text}`);
        const outcome: ReloadOutcome = { ok: false, errors: r.errors, text };
        this.hooks.onReload?.(outcome);
        return outcome;
      }
      this.config = r.config;
      this.log.level = r.config.logging.level;
      const summary = await this.daemon.apply(r.config.groups);
      // ucarpctl demote/promote last until reset or the next successful reload.
      for (const g of this.daemon.list()) if (g.engineState.override !== 'none') g.setOverride('none');
      this.reloads.ok++;
      const line = `reload (${why}): ${summaryLine(summary)}`;
      this.log.info(line);
      const outcome: ReloadOutcome = { ok: true, summary, line };
      this.hooks.onReload?.(outcome);
      return outcome;
    } finally {
      notify('READY=1');
    }
  }

  statusLines(): string[] {
    return this.daemon.list().map((g) => `${g.config.name}: ${statusLine(g)}`);
  }

  async stop(): Promise<void> {
    notify('STOPPING=1');
    if (this.debounce) clearTimeout(this.debounce);
    await this.watcher?.close();
    await this.loader.close();
    await this.daemon.stop();
  }
}

export async function runSupervisor(file: string): Promise<void> {
  const r = loadConfig(file, systemHostInfo());
  if (!r.ok) {
    process.stderr.write(formatErrors(r.errors) + '\n');
    process.exit(1);
  }
  const { level, facility } = r.config.logging;
  const log = createLogger({ facility, debug: level === 'debug', level });
  for (const w of r.warnings) log.warn(formatErrors([w]));
  // The control socket and metrics endpoint are bound once; a reload cannot move them.
  const endpoints = (c: Config) => JSON.stringify([c.control, c.metrics ?? null]);
  const sup = new Supervisor(file, r.config, log, {
    onReload: (o) => {
      if (o.ok && endpoints(sup.config) !== endpoints(r.config))
        log.warn('control socket and metrics settings take effect at the next restart');
    },
  });
  // Before any group starts: a second daemon must not touch the network.
  const control = await ControlServer.open({
    path: r.config.control.socket,
    log,
    handle: (req) => handleRequest(sup, req),
  });
  let metrics: MetricsServer | undefined;
  if (r.config.metrics) {
    const registry = createMetricsRegistry(sup);
    metrics = await MetricsServer.open({ ...r.config.metrics, registry, log }).catch(async (e: Error) => {
      await control.close();
      throw new Error(`metrics endpoint ${r.config.metrics?.host}:${r.config.metrics?.port}: ${e.message}`);
    });
  }
  let stopping = false;
  const stop = (sig: string) => {
    if (stopping) return;
    stopping = true;
    log.info(`received ${sig}, releasing every group`);
    void Promise.allSettled([control.close(), metrics?.close()])
      .then(() => sup.stop())
      .finally(() => process.exit(0));
  };
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGQUIT'] as const) process.on(sig, () => stop(sig));
  process.on('SIGHUP', () => void sup.reload('SIGHUP'));
  process.on('SIGUSR1', () => sup.statusLines().forEach((l) => log.info(l)));
  process.on('SIGUSR2', () => sup.daemon.demoteAll());
  await sup.start();
  sup.watch();
  notify('READY=1');
}
