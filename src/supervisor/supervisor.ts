// The multi-group daemon: configuration in, running groups out, and reload as a diff. A
// configuration that fails validation never reaches the running set.
import path from 'node:path';
import { execFile } from 'node:child_process';
import { watch, type FSWatcher } from 'chokidar';
import { loadConfig, formatErrors, systemHostInfo } from '../config';
import { formatWarning, formatWarnings } from '../config/errors';
import type { Config } from '../config/types';
import { ConfigLoader } from '../config/off-thread';
import { createLogger, type Logger } from '../util/log';
import { GroupSet } from '../runtime/group-set';
import { EventBus } from '../runtime/events';
import { native, sdNotify } from '../native';
import { statusLine } from '../runtime/status';
import { ControlServer } from '../control/server';
import { handleRequest } from '../control/commands';
import { MetricsServer, createMetricsRegistry } from '../control/metrics';
import { summaryLine, type ReloadOutcome, type RestartOutcome } from './reload';
import { ListenError, errorMessage } from '../errors';
import { RESTART_LIMITS } from '../config/settings';
import { scriptsIdle } from '../hooks/scripts';
import { becomeSubreaper, reapAdopted } from '../hooks/process-tree';
import {
  handoverPath,
  groupIdentity,
  monotonicMs,
  newSalt,
  resumeGroups,
  takeHandover,
  writeHandover,
  type GroupHandover,
} from '../runtime/handover';

/**
 * ucarpctl restart: how long the execve waits for the answer to be written, the control and
 * metrics sockets to close and the log to drain, each. The groups are frozen meanwhile.
 */
const REEXEC_FALLBACK_MS = 200;

/** Lines still queued for stdout/stderr (a pipe or the journal's socket) die with the image. */
async function flushStdio(maxMs: number): Promise<void> {
  const drained = (s: NodeJS.WriteStream) =>
    s.writableLength === 0 ? Promise.resolve() : new Promise<void>((r) => s.write('', () => r()));
  await Promise.race([
    Promise.all([drained(process.stdout), drained(process.stderr)]),
    new Promise((r) => setTimeout(r, maxMs)),
  ]);
}

/** Editors write a file in several steps (truncate, write, rename): wait for quiet. */
const WATCH_DEBOUNCE_MS = 150;
const ADDRESS_RECORD_SUFFIX = '.addresses.json';

export interface SupervisorHooks {
  onReload?(outcome: ReloadOutcome): void;
  /**
   * The loader the start-up file came through: its thread keeps the file's parsed slices, so
   * the first reload already parses only what changed (src/config/incremental.ts).
   */
  loader?: ConfigLoader;
}

/** The command line this process was started with: what ucarpctl restart executes again. */
export function ownCommand(): { file: string; argv: string[] } {
  return {
    file: process.execPath,
    argv: [process.execPath, ...process.execArgv, process.argv[1], ...process.argv.slice(2)],
  };
}

/**
 * Runs the code now on disk (the new version after a package upgrade) on the configuration:
 * a restart into code or a file that cannot start is refused while the old daemon runs on.
 */
function checkWithCodeOnDisk(file: string): Promise<{ ok: boolean; output: string }> {
  const args = [...process.execArgv, process.argv[1], '--check-config', '-c', file];
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      args,
      { timeout: RESTART_LIMITS.checkTimeoutMs, encoding: 'utf8' },
      (err, stdout, stderr) => resolve({ ok: err === null, output: `${stderr}${stdout}`.trim() }),
    );
  });
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
  /** Until start() has started every group. */
  starting = true;
  private watcher: FSWatcher | undefined;
  private debounce: NodeJS.Timeout | undefined;
  /** Reloads are serialized; requests arriving meanwhile collapse into one more run. */
  private running: Promise<ReloadOutcome> | null = null;
  private pending: Promise<ReloadOutcome> | null = null;
  private readonly loader: ConfigLoader;
  private restarting = false;
  /** The control socket bound at start: a reload cannot move it (runSupervisor). */
  private readonly socket: string;
  /** restart() froze the groups: only the execve is left, nothing may touch them. */
  private frozen = false;

  constructor(
    readonly file: string,
    config: Config,
    log: Logger,
    private readonly hooks: SupervisorHooks = {},
  ) {
    this.config = config;
    this.loader = hooks.loader ?? new ConfigLoader();
    this.socket = config.control.socket;
    this.log = log;
    this.groups = new GroupSet({
      log,
      stopPolicy: { bowOut: true, downscript: true, releaseAddresses: true },
      recordFile: addressRecordPath(config),
      events: this.events,
    });
  }

  /** Where ucarpctl restart leaves the groups for the next image (next to the socket). */
  get handoverFile(): string {
    return handoverPath(this.socket);
  }

  /** Starts every group, carrying on where the previous image left off after ucarpctl restart. */
  async start(): Promise<void> {
    const taken = takeHandover(this.handoverFile);
    if (taken.why) this.log.warn(`ignoring the restart handover ${this.handoverFile}: ${taken.why}`);
    const resume = taken.handover
      ? resumeGroups(taken.handover, this.config.groups, monotonicMs())
      : new Map<string, never>();
    if (taken.handover) {
      // Processes the old image's scripts left behind are our children still (the subreaper
      // flag survives execve) but no child of this image's: reap them as they end.
      becomeSubreaper();
      reapAdopted();
    }
    const s = await this.groups.start(this.config.groups, this.config.trackers, resume);
    if (taken.handover) {
      const masters = [...resume.values()].filter((r) => r.state === 'MASTER').length;
      this.log.info(
        `restarted in place: ${resume.size} of ${taken.handover.groups.length} group(s) carried on ` +
          `(${masters} master), ${s.added.length - resume.size} elected afresh`,
      );
    }
    this.log.info(`started ${s.added.length} group(s) from ${this.file}`);
    this.starting = false;
    this.sayIfIdle();
  }

  /**
   * ucarpctl restart, up to the execve: the code on disk must accept the file, no script may
   * be running, then every group freezes (a master advertises once more, nothing bows out)
   * and the handover is written. Refused, the daemon runs on untouched. After success only
   * the execve is left to do (runSupervisor does it once the answer is written).
   */
  async restart(): Promise<RestartOutcome> {
    if (this.restarting) return { ok: false, reason: 'a restart is already in progress' };
    this.restarting = true;
    let refused: string | null;
    try {
      refused = await this.restartRefusal();
    } catch (e) {
      this.restarting = false;
      throw e;
    }
    if (refused !== null) {
      this.restarting = false;
      this.log.error(`restart refused, running on: ${refused}`);
      return { ok: false, reason: refused };
    }
    // A reload half applied would leave groups the handover does not describe.
    while (this.running || this.pending) await (this.pending ?? this.running)?.catch(() => undefined);
    this.frozen = true;
    notify(`RELOADING=1\nMONOTONIC_USEC=${process.hrtime.bigint() / 1000n}`);
    if (this.debounce) clearTimeout(this.debounce);
    await this.watcher?.close();
    await this.loader.close();
    const frozen = await this.groups.freeze();
    const salt = newSalt();
    const groups: GroupHandover[] = [];
    for (const f of frozen) {
      if (f.state !== 'MASTER' && f.state !== 'BACKUP') continue;
      groups.push({
        name: f.config.name,
        state: f.state,
        counter: f.counter.toString(),
        identity: groupIdentity(f.config, salt),
      });
    }
    const masters = groups.filter((g) => g.state === 'MASTER').length;
    let line = `restarting in place: pid ${process.pid}, ${groups.length} group(s) handed over (${masters} master)`;
    try {
      const writtenAtMs = monotonicMs();
      writeHandover(this.handoverFile, { version: 1, pid: process.pid, writtenAtMs, salt, groups });
    } catch (e) {
      // The groups are frozen already: the new code still starts, as after a plain restart
      // (every group elects afresh), rather than leaving a daemon that does nothing.
      line = `restarting without handover (cannot write ${this.handoverFile}: ${errorMessage(e)}): every group elects afresh`;
      this.log.error(line);
      return { ok: true, pid: process.pid, groups: 0, masters: 0, line };
    }
    this.log.info(line);
    return { ok: true, pid: process.pid, groups: groups.length, masters, line };
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
    this.watcher.on('error', (e) => this.log.warn(`watching ${dir}: ${errorMessage(e)}`));
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
    if (this.frozen) {
      const text = `reload (${why}) not done: the daemon is restarting in place`;
      return { ok: false, errors: [], text };
    }
    notify(
      // hrtime is CLOCK_MONOTONIC, which is what systemd expects here.
      `RELOADING=1\nMONOTONIC_USEC=${process.hrtime.bigint() / 1000n}`,
    );
    try {
      const r = await this.loader.load(this.file);
      const how = this.loader.last;
      if (how)
        this.log.debug(
          how.path === 'incremental'
            ? `reload (${why}): parsed ${how.parsed} part(s) of ${this.file}, reused ${how.reused}`
            : `reload (${why}): parsed ${this.file} whole (${how.why ?? 'no reuse'})`,
        );
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

  /** Why a restart must not happen now, or null: the code on disk and the scripts decide. */
  private async restartRefusal(): Promise<string | null> {
    const check = await checkWithCodeOnDisk(this.file);
    if (!check.ok) return `the code on disk refuses ${this.file}: ${check.output || 'no output'}`;
    // The next image finds the handover and the address record next to the socket its file
    // names: a moved socket would lose both.
    const next = await this.loader.load(this.file);
    if (next.ok && next.config.control.socket !== this.socket)
      return (
        `control.socket changes from ${this.socket} to ${next.config.control.socket}: ` +
        'use systemctl restart (with failover) for that change'
      );
    // A script's exit would never be collected by the next image, which did not spawn it.
    if (!(await scriptsIdle(RESTART_LIMITS.scriptWaitMs)))
      return `scripts still running after ${RESTART_LIMITS.scriptWaitMs} ms; try again`;
    return null;
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
  // In the loader's thread, like every reload: that thread keeps what it parsed.
  const loader = new ConfigLoader();
  const r = await loader.load(file);
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
    loader,
    onReload: (o) => {
      if (o.ok && endpoints(sup.config) !== endpoints(r.config))
        log.warn('control socket and metrics settings take effect at the next restart');
    },
  });
  // ucarpctl restart: once the answer is written (or shortly after, if the client is gone),
  // the process becomes the code now on disk, with the same pid and command line.
  let reexecTimer: NodeJS.Timeout | undefined;
  const restarted = () => {
    reexecTimer ??= setTimeout(() => void reexec(), REEXEC_FALLBACK_MS);
  };
  // Before any group starts: a second daemon must not touch the network.
  const control = await ControlServer.open({
    path: r.config.control.socket,
    log,
    handle: async (req) => {
      const res = await handleRequest(sup, req);
      if (req.cmd === 'restart' && res.ok) restarted();
      return res;
    },
    answered: (req, res) => {
      if (req.cmd === 'restart' && res.ok) void reexec();
    },
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
  let execing = false;
  const reexec = async () => {
    if (execing) return;
    execing = true;
    clearTimeout(reexecTimer);
    // Event streams end cleanly and the socket file goes; bounded, the peers are waiting.
    await Promise.race([
      Promise.allSettled([control.close(), metrics?.close()]),
      new Promise((r) => setTimeout(r, REEXEC_FALLBACK_MS)),
    ]);
    await flushStdio(REEXEC_FALLBACK_MS);
    const own = ownCommand();
    const env = Object.entries(process.env).map(([k, v]) => `${k}=${v ?? ''}`);
    try {
      native().execve(own.file, own.argv, env);
    } catch (e) {
      // The handover stays for no one (another pid), so a restart by systemd elects afresh.
      log.error(`restart: cannot execute ${own.file}: ${errorMessage(e)}; exiting`);
      process.exit(1);
    }
  };
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
