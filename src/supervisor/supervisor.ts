// The multi-group daemon: configuration in, running groups out, and reload as a diff. A
// configuration that fails validation never reaches the running set.
import path from 'node:path';
import { watch, type FSWatcher } from 'chokidar';
import { loadConfig, formatErrors, systemHostInfo } from '../config';
import { formatWarning, formatWarnings } from '../config/errors';
import type { Config } from '../config/types';
import { ConfigLoader } from '../config/off-thread';
import { createLogger, type Logger } from '../util/log';
import { GroupSet } from '../runtime/group-set';
import { EventBus } from '../runtime/events';
import { sdNotify } from '../native';
import { statusLine } from '../runtime/status';
import { ControlServer } from '../control/server';
import { handleRequest } from '../control/commands';
import { MetricsServer, createMetricsRegistry } from '../control/metrics';
import { summaryLine, type ReloadOutcome } from './reload';
import { ListenError } from '../errors';

/** Editors write a file in several steps (truncate, write, rename): wait for quiet. */
const WATCH_DEBOUNCE_MS = 150;
const ADDRESS_RECORD_SUFFIX = '.addresses.json';

export interface SupervisorHooks {
  onReload?(outcome: ReloadOutcome): void;
}

export function checkConfig(file: string): number {
  const r = loadConfig(file, systemHostInfo());
  if (r.warnings.length > 0) process.stderr.write(formatWarnings(r.warnings) + '\n');
  if (!r.ok) {
    process.stderr.write(formatErrors(r.errors) + '\n');
    return 1;
  }
  process.stdout.write(`${file}: configuration OK, ${r.config.groups.length} group(s)\n`);
  return 0;
}

/**
 * The record of added addresses lives next to the control socket and is named after it
 * (/run/ucarp/control.sock → /run/ucarp/control.addresses.json): a socket path belongs to one
 * running daemon (a second one refuses to start), so the record does too. The unit keeps the
 * directory across restarts (systemd/ucarp.service).
 */
export function addressRecordPath(config: Config): string {
  const socket = config.control.socket;
  const base = path.basename(socket).replace(/\.sock$/, '');
  return path.join(path.dirname(socket), `${base}${ADDRESS_RECORD_SUFFIX}`);
}

function notify(state: string): void {
  try {
    sdNotify(state);
  } catch {
    // Not under systemd, or the socket went away: readiness is best effort.
  }
}

export class Supervisor {
  readonly groups: GroupSet;
  readonly events = new EventBus();
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
    this.groups = new GroupSet({
      log,
      stopPolicy: { bowOut: true, downscript: true, releaseAddresses: true },
      recordFile: addressRecordPath(config),
      events: this.events,
    });
  }

  async start(): Promise<void> {
    const s = await this.groups.start(this.config.groups, this.config.trackers);
    this.log.info(`started ${s.added.length} group(s) from ${this.file}`);
    this.sayIfIdle();
  }

  /** A daemon with no group does nothing at all, which should not look like a fault. */
  private sayIfIdle(): void {
    if (this.config.groups.length === 0) this.log.info('no groups configured; idle');
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
      for (const w of r.warnings) this.log.warn(formatWarning(w));
      if (!r.ok) {
        this.reloads.failed++;
        const text = formatErrors(r.errors);
        this.log.error(`reload (${why}) rejected, running groups unchanged:\n${text}`);
        const outcome: ReloadOutcome = { ok: false, errors: r.errors, text };
        this.events.publish({
          type: 'reload',
          ok: false,
          line: `reload (${why}) rejected: ${r.errors.length} error(s)`,
        });
        this.hooks.onReload?.(outcome);
        return outcome;
      }
      this.config = r.config;
      this.log.level = r.config.logging.level;
      // Trackers first: a group's new `track` may name a tracker this reload adds.
      const trackers = this.groups.applyTrackers(r.config.trackers);
      const summary = await this.groups.apply(r.config.groups);
      // ucarpctl demote/promote last until reset or the next successful reload.
      this.groups.clearOverrides();
      this.reloads.ok++;
      const line = `reload (${why}): ${summaryLine(summary, trackers)}`;
      this.log.info(line);
      this.sayIfIdle();
      const outcome: ReloadOutcome = { ok: true, summary, line };
      this.events.publish({ type: 'reload', ok: true, line });
      this.hooks.onReload?.(outcome);
      return outcome;
    } finally {
      notify('READY=1');
    }
  }

  statusLines(): string[] {
    return this.groups.list().map((g) => `${g.config.name}: ${statusLine(g)}`);
  }

  async stop(): Promise<void> {
    notify('STOPPING=1');
    if (this.debounce) clearTimeout(this.debounce);
    await this.watcher?.close();
    await this.loader.close();
    await this.groups.stop();
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
  for (const w of r.warnings) log.warn(formatWarning(w));
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
    events: sup.events,
  });
  let metrics: MetricsServer | undefined;
  if (r.config.metrics) {
    const registry = createMetricsRegistry(sup);
    metrics = await MetricsServer.open({ ...r.config.metrics, registry, log }).catch(async (e: Error) => {
      await control.close();
      throw new ListenError(
        `metrics endpoint ${r.config.metrics?.host}:${r.config.metrics?.port}: ${e.message}`,
      );
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
  process.on('SIGUSR2', () => sup.groups.stepDownAll());
  await sup.start();
  sup.watch();
  notify('READY=1');
}
