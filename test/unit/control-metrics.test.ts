import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { Counter, register as globalRegistry } from 'prom-client';
import winston from 'winston';
import { MetricsServer, createMetricsRegistry } from '../../src/control/metrics';
import { FakeGroup, FakeTarget } from '../fixtures/control-fake';
import { parseExposition, sample } from '../fixtures/control-promparse';

const log = winston.createLogger({ silent: true });

function get(
  port: number,
  p: string,
  method = 'GET',
): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: p, method, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }),
      );
    });
    req.on('error', reject);
    req.end();
  });
}

function fixture(): FakeTarget {
  const web = new FakeGroup('web', 10, { state: 'MASTER' });
  web.s.stats.sent = 42;
  web.s.stats.received = 3;
  web.s.stats.transitions = 2;
  web.s.stats.rejects.digest = 4;
  web.scripts.stats.runs = 5;
  web.scripts.stats.failures = 1;
  web.scripts.stats.timeouts = 1;
  const db = new FakeGroup('db', 20, { interface: 'eth1' });
  db.s.stats.received = 99;
  const router = new FakeGroup('router', 30, { protocol: 'vrrp3', priority: 140, advertInterval: 1 });
  const t = new FakeTarget([web, db, router]);
  t.ifaces[0].rejects.vhid = 7;
  t.reloads.ok = 3;
  t.reloads.failed = 1;
  return t;
}

describe('metrics registry', () => {
  it('exposes every ucarp family with HELP and TYPE, valued from the daemon at scrape time', async () => {
    const t = fixture();
    const registry = createMetricsRegistry(t);
    const x = parseExposition(await registry.metrics());
    const types: Record<string, string> = {
      ucarp_group_state: 'gauge',
      ucarp_group_transitions_total: 'counter',
      ucarp_advertisements_sent_total: 'counter',
      ucarp_advertisements_received_total: 'counter',
      ucarp_advertisement_send_errors_total: 'counter',
      ucarp_rejects_total: 'counter',
      ucarp_interface_rejects_total: 'counter',
      ucarp_script_runs_total: 'counter',
      ucarp_script_failures_total: 'counter',
      ucarp_script_timeouts_total: 'counter',
      ucarp_reloads_total: 'counter',
      ucarp_group_info: 'gauge',
      ucarp_group_priority: 'gauge',
    };
    for (const [name, type] of Object.entries(types)) {
      const f = x.families.get(name);
      assert.ok(f, `${name} is exposed`);
      assert.equal(f.type, type, name);
      assert.ok(f.help.length > 10, `${name} has a help text`);
    }
    const web = { group: 'web', vhid: '10', interface: 'eth0' };
    const db = { group: 'db', vhid: '20', interface: 'eth1' };
    assert.equal(sample(x, 'ucarp_group_state', { ...web, state: 'MASTER' }), 1);
    assert.equal(sample(x, 'ucarp_group_state', { ...web, state: 'BACKUP' }), 0);
    assert.equal(sample(x, 'ucarp_group_state', { ...web, state: 'INIT' }), 0);
    assert.equal(sample(x, 'ucarp_group_state', { ...db, state: 'BACKUP' }), 1);
    assert.equal(sample(x, 'ucarp_advertisements_sent_total', web), 42);
    assert.equal(sample(x, 'ucarp_advertisements_received_total', web), 3);
    assert.equal(sample(x, 'ucarp_advertisements_received_total', db), 99);
    assert.equal(sample(x, 'ucarp_group_transitions_total', web), 2);
    assert.equal(sample(x, 'ucarp_rejects_total', { ...web, reason: 'digest' }), 4);
    assert.equal(sample(x, 'ucarp_rejects_total', { ...web, reason: 'ttl' }), 0);
    assert.equal(sample(x, 'ucarp_interface_rejects_total', { interface: 'eth0', reason: 'vhid' }), 7);
    assert.equal(sample(x, 'ucarp_script_runs_total', web), 5);
    assert.equal(sample(x, 'ucarp_script_failures_total', web), 1);
    assert.equal(sample(x, 'ucarp_script_timeouts_total', web), 1);
    const router = { group: 'router', vhid: '30', interface: 'eth0' };
    assert.equal(sample(x, 'ucarp_group_info', { ...web, protocol: 'carp' }), 1);
    assert.equal(sample(x, 'ucarp_group_info', { ...router, protocol: 'vrrp3' }), 1);
    assert.equal(sample(x, 'ucarp_group_priority', router), 140);
    assert.equal(
      x.samples.some((s) => s.name === 'ucarp_group_priority' && s.labels.group === 'web'),
      false,
      'a CARP group has no priority',
    );
    assert.equal(sample(x, 'ucarp_reloads_total', { result: 'ok' }), 3);
    assert.equal(sample(x, 'ucarp_reloads_total', { result: 'failed' }), 1);
    assert.ok(x.families.has('process_cpu_user_seconds_total'), 'process defaults are included');
    assert.ok(x.families.has('process_resident_memory_bytes'));
  });

  it('follows the daemon between scrapes: counters move, removed groups disappear', async () => {
    const t = fixture();
    const registry = createMetricsRegistry(t);
    await registry.metrics();
    const web = t.byName.get('web') as FakeGroup;
    web.s.stats.sent = 50;
    web.s = { ...web.s, state: 'BACKUP' };
    t.byName.delete('db');
    const x = parseExposition(await registry.metrics());
    const labels = { group: 'web', vhid: '10', interface: 'eth0' };
    assert.equal(sample(x, 'ucarp_advertisements_sent_total', labels), 50);
    assert.equal(sample(x, 'ucarp_group_state', { ...labels, state: 'MASTER' }), 0);
    assert.equal(sample(x, 'ucarp_group_state', { ...labels, state: 'BACKUP' }), 1);
    assert.equal(
      x.samples.some((s) => s.labels.group === 'db'),
      false,
    );
  });

  it('is private: metrics of the global registry do not leak in', async () => {
    new Counter({ name: 'stray_test_total', help: 'registered globally' });
    try {
      const text = await createMetricsRegistry(fixture()).metrics();
      assert.doesNotMatch(text, /stray_test_total/);
    } finally {
      globalRegistry.removeSingleMetric('stray_test_total');
    }
  });
});

describe('metrics endpoint', () => {
  it('serves GET /metrics as Prometheus text, 404 for anything else, and closes', async () => {
    const srv = await MetricsServer.open({
      host: '127.0.0.1',
      port: 0,
      registry: createMetricsRegistry(fixture()),
      log,
    });
    const port = srv.address.port;
    assert.ok(port > 0);
    const ok = await get(port, '/metrics');
    assert.equal(ok.status, 200);
    assert.match(ok.type, /^text\/plain; version=0\.0\.4/);
    parseExposition(ok.body);
    assert.equal((await get(port, '/metrics?x=1')).status, 200);
    assert.equal((await get(port, '/')).status, 404);
    assert.equal((await get(port, '/metricsx')).status, 404);
    assert.equal((await get(port, '/metrics', 'POST')).status, 404);
    await srv.close();
    await assert.rejects(get(port, '/metrics'), /ECONNREFUSED/);
  });

  it('fails to open on an address in use', async () => {
    const a = await MetricsServer.open({
      host: '127.0.0.1',
      port: 0,
      registry: createMetricsRegistry(fixture()),
      log,
    });
    await assert.rejects(
      MetricsServer.open({
        host: '127.0.0.1',
        port: a.address.port,
        registry: createMetricsRegistry(fixture()),
        log,
      }),
      /EADDRINUSE/,
    );
    await a.close();
  });
});
