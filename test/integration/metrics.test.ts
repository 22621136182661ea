// The Prometheus endpoint of a real daemon, scraped from inside its network namespace while
// advertisements flow between two hosts.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Lab, waitFor, type Host } from '../helpers/netns';
import { SupervisorProc, configYaml, type TestGroup } from '../helpers/supervisor-proc';
import { parseExposition, sample, type Exposition } from '../fixtures/control-promparse';

const SCRAPE = path.resolve(__dirname, '../fixtures/control-scrape.js');
const LISTEN = '127.0.0.1:9474';

interface Scrape {
  status?: number;
  type?: string;
  body?: string;
  error?: string;
}

async function get(lab: Lab, h: Host, p: string): Promise<Scrape> {
  return JSON.parse(await lab.exec(h, process.execPath, [SCRAPE, `http://${LISTEN}${p}`])) as Scrape;
}

async function scrape(lab: Lab, h: Host): Promise<Exposition> {
  const r = await get(lab, h, '/metrics');
  assert.equal(r.status, 200, JSON.stringify(r));
  assert.match(r.type ?? '', /^text\/plain; version=0\.0\.4/);
  return parseExposition(r.body ?? '');
}

describe('metrics endpoint of a running daemon', { timeout: 120_000 }, () => {
  let lab: Lab;
  let tmp: string;
  let h1: Host;
  let h2: Host;
  let d1: SupervisorProc;
  let d2: SupervisorProc;
  let sock1: string;
  let file1: string;
  const web = (h: Host) => ({ group: 'web', vhid: '10', interface: h.ifaces[0] });

  function start(h: Host, groups: TestGroup[]): SupervisorProc {
    const dir = path.join(tmp, h.ns);
    fs.mkdirSync(dir);
    const file = path.join(dir, 'ucarp.yaml');
    const socket = path.join(dir, 'control.sock');
    if (h.index === 1) [sock1, file1] = [socket, file];
    fs.writeFileSync(file, configYaml(groups, { socket, metrics: LISTEN }));
    return new SupervisorProc(lab, h, file);
  }

  before(async () => {
    lab = await Lab.create({ hosts: 2 });
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ucarp-metrics-it-'));
    [h1, h2] = lab.hosts;
    const g = (h: Host, name: string, vhid: number, extra: Partial<TestGroup> = {}): TestGroup => ({
      name,
      vhid,
      iface: 'eth0',
      addresses: [`192.0.2.${100 + vhid}/24`],
      extra: { srcip: h.ips[0] },
      ...extra,
    });
    // web is a healthy pair. odd has a different password on each host: each rejects the
    // other's advertisements (digest). stray exists on h2 only: h1's interface sees a vhid
    // no group of its own uses.
    d1 = start(h1, [g(h1, 'web', 10, { advskew: 0 }), g(h1, 'odd', 30, { password: 'one' })]);
    d2 = start(h2, [
      g(h2, 'web', 10, { advskew: 100 }),
      g(h2, 'odd', 30, { password: 'two' }),
      g(h2, 'stray', 40),
    ]);
    await d1.waitLine(/metrics on http:\/\/127\.0\.0\.1:9474\/metrics/);
    await d2.waitLine(/metrics on http:\/\/127\.0\.0\.1:9474\/metrics/);
  });

  after(async () => {
    await lab?.destroy();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('serves valid Prometheus text whose counters move as packets flow', async () => {
    await waitFor(
      async () => sample(await scrape(lab, h1), 'ucarp_group_state', { ...web(h1), state: 'MASTER' }) === 1,
      15_000,
      'h1 to report web MASTER',
      200,
    );
    await waitFor(
      async () => sample(await scrape(lab, h2), 'ucarp_group_state', { ...web(h2), state: 'BACKUP' }) === 1,
      15_000,
      'h2 to report web BACKUP',
      200,
    );
    const a1 = await scrape(lab, h1);
    const a2 = await scrape(lab, h2);
    for (const name of [
      'ucarp_group_state',
      'ucarp_group_transitions_total',
      'ucarp_advertisements_sent_total',
      'ucarp_advertisements_received_total',
      'ucarp_rejects_total',
      'ucarp_interface_rejects_total',
      'ucarp_script_runs_total',
      'ucarp_script_failures_total',
      'ucarp_script_timeouts_total',
      'ucarp_reloads_total',
      'process_cpu_seconds_total',
      'process_resident_memory_bytes',
    ])
      assert.ok(a1.families.get(name)?.type, `${name} has a TYPE`);
    assert.equal(sample(a1, 'ucarp_group_state', { ...web(h1), state: 'BACKUP' }), 0);
    assert.ok(sample(a1, 'ucarp_group_transitions_total', web(h1)) >= 2, 'INIT→BACKUP→MASTER');

    await new Promise((r) => setTimeout(r, 2500));
    const b1 = await scrape(lab, h1);
    const b2 = await scrape(lab, h2);
    const sent = [a1, b1].map((x) => sample(x, 'ucarp_advertisements_sent_total', web(h1)));
    const received = [a2, b2].map((x) => sample(x, 'ucarp_advertisements_received_total', web(h2)));
    assert.ok(sent[1] > sent[0], `master's sent counter moves: ${sent}`);
    assert.ok(received[1] > received[0], `backup's received counter moves: ${received}`);

    const digest = (x: Exposition) => sample(x, 'ucarp_rejects_total', { group: 'odd', reason: 'digest' });
    await waitFor(
      async () => digest(await scrape(lab, h1)) > digest(a1),
      10_000,
      'digest rejects on odd',
      200,
    );
    const strays = (x: Exposition) =>
      sample(x, 'ucarp_interface_rejects_total', { interface: 'eth0', reason: 'vhid' });
    await waitFor(async () => strays(await scrape(lab, h1)) > 0, 10_000, 'unknown-vhid rejects on eth0', 200);
    assert.equal(sample(b1, 'ucarp_rejects_total', { group: 'web', reason: 'digest' }), 0);
  });

  it('counts reloads; a new listen address waits for a restart; 404 to anything but GET /metrics', async () => {
    const before = sample(await scrape(lab, h1), 'ucarp_reloads_total', { result: 'ok' });
    const mark = d1.lines.length;
    fs.writeFileSync(file1, fs.readFileSync(file1, 'utf8').replace(LISTEN, '127.0.0.1:9478'));
    d1.signal('SIGHUP');
    await d1.waitLine(/reload \(SIGHUP\)/, mark);
    await d1.waitLine(/control socket and metrics settings take effect at the next restart/, mark);
    const x = await scrape(lab, h1);
    // The file watcher may have reloaded the new file too.
    assert.ok(sample(x, 'ucarp_reloads_total', { result: 'ok' }) >= before + 1);
    assert.equal(sample(x, 'ucarp_reloads_total', { result: 'failed' }), 0);
    assert.equal((await get(lab, h1, '/')).status, 404);
    assert.equal((await get(lab, h1, '/metrics/extra')).status, 404);
  });

  it('stops serving, and removes the control socket, when the daemon stops', async () => {
    assert.ok(fs.existsSync(sock1));
    d1.signal('SIGTERM');
    await d1.exit();
    assert.equal((await get(lab, h1, '/metrics')).error, 'ECONNREFUSED');
    assert.equal(fs.existsSync(sock1), false);
    assert.equal((await scrape(lab, h2)).families.has('ucarp_group_state'), true, 'the peer is unaffected');
  });
});
