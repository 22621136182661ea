// Prometheus metrics. Every value is read from the groups' own counters when scraped (collect
// callbacks), so the packet path pays nothing for metrics and a scrape always agrees with
// `ucarpctl status`.
import http from 'node:http';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { CARP_STATES, type CarpState } from '../engine/group';
import { REJECT_REASONS } from '../protocol/carp';
import type { Logger } from '../util/log';
import type { ControlTarget } from './commands';
import { errorMessage } from '../errors';

const STATES: readonly CarpState[] = CARP_STATES;
/**
 * The default metrics sample event-loop delay with a timer; at prom-client's 10 ms that is
 * 100 wake-ups a second for an otherwise idle daemon, so sample ten times less often.
 */
const EVENT_LOOP_SAMPLE_MS = 100;

type GroupLabels = 'group' | 'vhid' | 'interface';

/** The labels that name a group in every group metric. */
function labelsOf(s: { name: string; vhid: number; interface: string }): Record<GroupLabels, string> {
  return { group: s.name, vhid: String(s.vhid), interface: s.interface };
}

/** A registry of its own: nothing registered elsewhere in the process leaks into it. */
export function createMetricsRegistry(target: ControlTarget): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
  const groups = () => target.groups.list().map((g) => ({ s: g.status(), scripts: g.scripts.stats }));
  const groupLabelNames: GroupLabels[] = ['group', 'vhid', 'interface'];

  new Gauge({
    name: 'ucarp_group_state',
    help: 'State of each group (CARP or VRRP): 1 for the current state, 0 for the others.',
    labelNames: [...groupLabelNames, 'state'],
    registers: [registry],
    collect() {
      this.reset();
      for (const { s } of groups()) {
        for (const state of STATES) this.set({ ...labelsOf(s), state }, s.state === state ? 1 : 0);
      }
    },
  });

  /** A counter whose value is copied from the daemon's own at scrape time. */
  const perGroup = (name: string, help: string, value: (g: ReturnType<typeof groups>[number]) => number) =>
    new Counter({
      name,
      help,
      labelNames: groupLabelNames,
      registers: [registry],
      collect() {
        this.reset();
        for (const g of groups()) this.inc(labelsOf(g.s), value(g));
      },
    });
  perGroup('ucarp_group_transitions_total', 'State changes of each group.', (g) => g.s.stats.transitions);
  perGroup('ucarp_advertisements_sent_total', 'Advertisements sent by each group.', (g) => g.s.stats.sent);
  perGroup(
    'ucarp_advertisements_received_total',
    'Valid advertisements received by each group.',
    (g) => g.s.stats.received,
  );
  perGroup(
    'ucarp_advertisement_send_errors_total',
    'Advertisements of each group the kernel refused to send.',
    (g) => g.s.stats.sendErrors,
  );
  perGroup(
    'ucarp_address_restores_total',
    'Virtual addresses of a master removed by someone else and put back.',
    (g) => g.s.stats.addressRestores,
  );
  perGroup(
    'ucarp_address_conflicts_total',
    'Virtual addresses of a group found on this host while it was not master.',
    (g) => g.s.stats.addressConflicts,
  );
  perGroup('ucarp_script_runs_total', 'Up/down script runs of each group.', (g) => g.scripts.runs);
  perGroup(
    'ucarp_script_failures_total',
    'Up/down script runs of each group that exited non-zero or could not start.',
    (g) => g.scripts.failures,
  );
  perGroup(
    'ucarp_script_timeouts_total',
    'Up/down script runs of each group killed after script_timeout.',
    (g) => g.scripts.timeouts,
  );

  new Gauge({
    name: 'ucarp_group_demotion',
    help: 'Tracker weights of each group: added to a CARP advskew (before the cap at 240), subtracted from a VRRP priority (floor 1).',
    labelNames: groupLabelNames,
    registers: [registry],
    collect() {
      this.reset();
      for (const { s } of groups()) this.set(labelsOf(s), s.demotion);
    },
  });

  // The protocol as an info metric (joined on group, vhid, interface), so that the labels of
  // every other group metric stay what dashboards already use.
  new Gauge({
    name: 'ucarp_group_info',
    help: 'Always 1; the protocol of each group (carp or vrrp3) as a label.',
    labelNames: [...groupLabelNames, 'protocol'],
    registers: [registry],
    collect() {
      this.reset();
      for (const { s } of groups()) this.set({ ...labelsOf(s), protocol: s.protocol }, 1);
    },
  });

  new Gauge({
    name: 'ucarp_group_priority',
    help: 'The VRRP priority each VRRPv3 group advertises now (after overrides and tracker weights).',
    labelNames: groupLabelNames,
    registers: [registry],
    collect() {
      this.reset();
      for (const { s } of groups()) if (s.priority !== null) this.set(labelsOf(s), s.priority);
    },
  });

  /** A gauge per health tracker, read from the tracker set at scrape time. */
  const perTracker = (
    name: string,
    help: string,
    value: (t: ReturnType<typeof target.groups.trackers>[number]) => number,
  ) =>
    new Gauge({
      name,
      help,
      labelNames: ['tracker', 'kind'],
      registers: [registry],
      collect() {
        this.reset();
        for (const t of target.groups.trackers()) this.set({ tracker: t.name, kind: t.kind }, value(t));
      },
    });
  perTracker(
    'ucarp_tracker_failed',
    'Whether each health tracker counts as failed now (1) or not (0).',
    (t) => (t.failed ? 1 : 0),
  );
  perTracker(
    'ucarp_tracker_value',
    'The integer a file tracker read last (1 when failed, else 0, for the other kinds).',
    (t) => t.value,
  );

  new Counter({
    name: 'ucarp_rejects_total',
    help: 'Advertisements addressed to a group and rejected, by reason.',
    labelNames: [...groupLabelNames, 'reason'],
    registers: [registry],
    collect() {
      this.reset();
      for (const { s } of groups())
        for (const reason of REJECT_REASONS) this.inc({ ...labelsOf(s), reason }, s.stats.rejects[reason]);
    },
  });

  new Counter({
    name: 'ucarp_interface_rejects_total',
    help: 'CARP packets on an interface no group could be blamed for (unknown vhid, other destination, malformed), by reason.',
    labelNames: ['interface', 'reason'],
    registers: [registry],
    collect() {
      this.reset();
      for (const i of target.groups.interfaces())
        for (const reason of REJECT_REASONS) this.inc({ interface: i.name, reason }, i.rejects[reason]);
    },
  });

  new Counter({
    name: 'ucarp_reloads_total',
    help: 'Configuration reloads since start, by result.',
    labelNames: ['result'],
    registers: [registry],
    collect() {
      this.reset();
      this.inc({ result: 'ok' }, target.reloads.ok);
      this.inc({ result: 'failed' }, target.reloads.failed);
    },
  });

  return registry;
}

export interface MetricsServerOptions {
  host: string;
  port: number;
  registry: Registry;
  log: Logger;
}

/** Serves GET /metrics and nothing else. */
export class MetricsServer {
  private constructor(
    private readonly server: http.Server,
    readonly address: { host: string; port: number },
  ) {}

  static async open(opts: MetricsServerOptions): Promise<MetricsServer> {
    const server = http.createServer((req, res) => void serve(opts, req, res));
    // Scrapers are local and quick; anything slow is not a scraper.
    server.requestTimeout = 10_000;
    server.headersTimeout = 5_000;
    server.keepAliveTimeout = 5_000;
    server.maxHeadersCount = 50;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: opts.host, port: opts.port }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (e) => opts.log.error(`metrics endpoint: ${e.message}`));
    const a = server.address();
    const port = typeof a === 'object' && a ? a.port : opts.port;
    opts.log.info(
      `metrics on http://${opts.host.includes(':') ? `[${opts.host}]` : opts.host}:${port}/metrics`,
    );
    return new MetricsServer(server, { host: opts.host, port });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}

async function serve(
  opts: MetricsServerOptions,
  req: http.IncomingMessage,
  res: http.ServerResponse,
): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://localhost');
  if (req.method !== 'GET' || url.pathname !== '/metrics') {
    res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' }).end('not found: try GET /metrics\n');
    return;
  }
  try {
    const body = await opts.registry.metrics();
    res.writeHead(200, { 'Content-Type': opts.registry.contentType }).end(body);
  } catch (e) {
    opts.log.error(`metrics collection failed: ${errorMessage(e)}`);
    res.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' }).end('metrics collection failed\n');
  }
}
