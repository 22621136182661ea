// `ucarp`: the drop-in single-group command line of ucarp 1.5.2, or with --config/-c and
// --check-config/-t the multi-group supervisor.
import { spawn } from 'node:child_process';
import { parseUcarpArgs, type UcarpOptions } from './ucarp-args';
import { createLogger, type Logger } from '../util/log';
import { GroupSet } from '../runtime/group-set';
import { Rtnl } from '../net/rtnl';
import type { GroupConfig } from '../config/types';
import { normalizeGroup } from '../config/normalize';
import { statusLine } from '../runtime/status';
import { runSupervisor, checkConfig } from '../supervisor/supervisor';
import { UsageError, errorMessage } from '../errors';

/** Set in the environment of the background copy started by --daemonize. */
const DAEMON_CHILD_ENV = 'UCARP_TS_DAEMONIZED';

export function main(argv: string[]): void {
  const r = parseUcarpArgs(argv);
  switch (r.kind) {
    case 'help':
      process.stdout.write(r.text);
      process.exit(0);
      return;
    case 'error':
      process.stderr.write(`ucarp: ${r.message}\nTry 'ucarp --help' for the list of options.\n`);
      process.exit(1);
      return;
    case 'supervisor':
      if (r.checkOnly) process.exit(checkConfig(r.configPath));
      else void runSupervisor(r.configPath).catch(fatal);
      return;
    case 'run':
      if (r.opts.daemonize && !process.env[DAEMON_CHILD_ENV]) {
        daemonize(argv);
        return;
      }
      void runUcarp(r.opts, r.warnings).catch(fatal);
      return;
  }
}

function fatal(e: unknown): never {
  process.stderr.write(`ucarp: ${errorMessage(e)}\n`);
  process.exit(1);
}

/** Node cannot fork(); a detached copy of ourselves with stdio closed does the same job. */
function daemonize(argv: string[]): void {
  const child = spawn(process.execPath, [...process.execArgv, process.argv[1], ...argv], {
    detached: true,
    stdio: 'ignore',
    env: { ...process.env, [DAEMON_CHILD_ENV]: '1' },
  });
  child.unref();
  process.exit(0);
}

async function defaultInterface(): Promise<string> {
  const rtnl = new Rtnl();
  try {
    // pcap_lookupdev()'s choice: the first interface that is up and not loopback.
    const l = (await rtnl.links()).find((x) => x.up && x.name !== 'lo' && x.mac.length === 6);
    if (!l) throw new UsageError('no suitable interface found; use --interface');
    return l.name;
  } finally {
    rtnl.close();
  }
}

/** ucarp's one group, through the same normalization as a YAML group. */
export function ucarpGroup(o: UcarpOptions, iface: string): GroupConfig {
  return normalizeGroup(
    `vhid${o.vhid}`,
    {
      vhid: o.vhid,
      interface: iface,
      addresses: [o.addr],
      advbase: o.advbase,
      advskew: o.advskew,
      deadratio: o.deadratio,
      preempt: o.preempt,
      neutral: o.neutral,
      ignoreifstate: o.ignoreifstate,
      mcast: o.mcast,
      broadcast: o.nomcast,
      // ucarp leaves addresses to the up/down scripts.
      manage_addresses: false,
      upscript: o.upscript,
      downscript: o.downscript,
      xparam: o.xparam,
    },
    { srcip: o.srcip, password: o.password },
  );
}

async function runUcarp(o: UcarpOptions, warnings: string[]): Promise<void> {
  const daemonized = Boolean(process.env[DAEMON_CHILD_ENV]);
  const log: Logger = createLogger({ facility: o.facility, debug: o.debug, console: !daemonized });
  for (const w of warnings) log.warn(w);
  const iface = o.interface ?? (await defaultInterface());
  const daemon = new GroupSet({
    log,
    stopPolicy: { bowOut: o.shutdown, downscript: o.shutdown, releaseAddresses: false },
  });
  let stopping = false;
  const shutdown = (sig: string) => {
    if (stopping) return;
    stopping = true;
    log.info(`received ${sig}, exiting`);
    void daemon.stop().finally(() => process.exit(0));
  };
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGQUIT', 'SIGHUP'] as const) process.on(sig, () => shutdown(sig));
  process.on('SIGUSR1', () => {
    for (const g of daemon.list()) log.info(statusLine(g));
  });
  process.on('SIGUSR2', () => daemon.stepDownAll());
  await daemon.start([ucarpGroup(o, iface)]);
}
