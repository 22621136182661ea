// Fault: the configuration file of a running master is deleted, emptied, and saved by rename.
// A file that cannot be read or is empty must never tear running groups down: the reload is
// rejected whole and every group stays exactly as it was. A save by rename is picked up by the
// daemon's directory watcher and applied.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Lab, Host } from '../helpers/netns';
import { ROOT } from '../helpers/carp-proc';
import { SupervisorProc, TestGroup, configYaml, writeByRename } from '../helpers/supervisor-proc';
import {
  assertAlive,
  deadTimeMs,
  holdsFor,
  reached,
  settled,
  singleHolders,
  transitions,
  vip,
} from '../helpers/fault';
import type { StatusDocument } from '../../src/control/protocol';

const run = promisify(execFile);
const UCARPCTL = path.join(ROOT, 'bin/ucarpctl');

const GROUPS = 4;
const SKEW_H1 = 0;
const SKEW_H2 = 20;
/** Longer than the watcher's debounce and a load in the worker thread, several times over. */
const SETTLE_MS = 1500;
const MARGIN_MS = 500;

function groupsFor(host: 1 | 2): TestGroup[] {
  return Array.from({ length: GROUPS }, (_, i) => ({
    name: `f${i}`,
    vhid: 51 + i,
    iface: 'eth0',
    addresses: [`192.0.2.${181 + i}/24`],
    advskew: host === 1 ? SKEW_H1 : SKEW_H2,
  }));
}

/** Only on h1, added and removed by the saves below. */
const EXTRA: TestGroup = { name: 'fx', vhid: 59, iface: 'eth0', addresses: ['192.0.2.189/24'] };

describe('fault: configuration file deleted, emptied, saved by rename', () => {
  let lab: Lab;
  let h1: Host;
  let h2: Host;
  let d1: SupervisorProc;
  let d2: SupervisorProc;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ucarp-fault-config-'));
  // Each file alone in its own directory: the daemon watches the directory.
  const f1 = path.join(dir, 'h1', 'ucarp.yaml');
  const f2 = path.join(dir, 'h2', 'ucarp.yaml');
  const sock1 = path.join(dir, 'h1.sock');
  const base = groupsFor(1);
  const steady = () => singleHolders(new Map(base.map((x) => [vip(x), h1])));

  async function status(): Promise<StatusDocument> {
    const { stdout } = await run('ip', [
      ...['netns', 'exec', h1.ns, process.execPath, UCARPCTL],
      ...['--socket', sock1, 'status', '--json'],
    ]);
    return JSON.parse(stdout) as StatusDocument;
  }

  /** What must not change across a rejected reload: each group's state and timing. */
  const shape = (s: StatusDocument) =>
    s.groups.map((x) => `${x.name} ${x.state} ${x.advbase}/${x.advskew} ${x.addresses.join()}`).sort();

  /**
   * The running set is untouched: no transition on either host since the given lines, every
   * address still on h1 alone in the kernel, the same groups in the same states.
   */
  async function untouched(
    from1: number,
    from2: number,
    before: string[],
    expected = steady(),
  ): Promise<number> {
    const n = await holdsFor(lab, expected, SETTLE_MS, 'every address still on h1 only');
    assert.deepEqual(transitions(d1, from1), [], 'no transition on h1');
    assert.deepEqual(transitions(d2, from2), [], 'no transition on h2');
    assert.deepEqual(shape(await status()), before, 'the running groups are exactly as before');
    assertAlive(d1, d2);
    return n;
  }

  before(async () => {
    lab = await Lab.create({ hosts: 2 });
    [h1, h2] = lab.hosts;
    fs.mkdirSync(path.dirname(f1));
    fs.mkdirSync(path.dirname(f2));
    fs.writeFileSync(f1, configYaml(base, { socket: sock1 }));
    fs.writeFileSync(f2, configYaml(groupsFor(2), { socket: path.join(dir, 'h2.sock') }));
    d1 = new SupervisorProc(lab, h1, f1);
    await d1.waitLine(/started \d+ group/);
    d2 = new SupervisorProc(lab, h2, f2);
    await d2.waitLine(/started \d+ group/);
  });

  after(async () => {
    await lab.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('h1 is master of every group and the only holder of every address', async () => {
    await settled(lab, steady(), 1000, 15000, 'every address on h1 only');
    assertAlive(d1, d2);
  });

  test('deleted: nothing happens; a SIGHUP meanwhile is rejected, groups untouched', async (t) => {
    const before = shape(await status());
    assert.equal(before.length, GROUPS);
    const from1 = d1.lines.length;
    const from2 = d2.lines.length;
    fs.unlinkSync(f1);
    await holdsFor(lab, steady(), SETTLE_MS, 'every address still on h1 only after the deletion');
    assert.deepEqual(
      d1.lines.slice(from1).filter((l) => /reload/.test(l)),
      [],
      'a deletion alone triggers no reload',
    );
    d1.signal('SIGHUP');
    await d1.waitLine(/reload \(SIGHUP\) rejected, running groups unchanged/, from1);
    await d1.waitLine(/ucarp\.yaml: cannot read the file \(ENOENT\)/, from1);
    const n = await untouched(from1, from2, before);
    t.diagnostic(`deleted file: ${n} kernel samples over ${SETTLE_MS} ms, no transition, groups as before`);
    assert.equal((await status()).reloads.failed, 1);
  });

  test('saved by rename after the deletion: picked up and applied', async (t) => {
    const from1 = d1.lines.length;
    const from2 = d2.lines.length;
    const t0 = Date.now();
    writeByRename(f1, configYaml([...base, EXTRA], { socket: sock1 }));
    await d1.waitLine(/reload \(file change\): added 1 \(fx\), removed 0, updated 0, restarted 0/, from1);
    const applied = Date.now() - t0;
    // fx has no peer: it is master, holding its address, after its own dead time.
    const expected = new Map([...steady(), [vip(EXTRA), [h1.ns]]]);
    const held = (await reached(lab, expected, deadTimeMs(0) + 3000, 'fx address on h1')) - t0;
    t.diagnostic(`rename → reload applied: ${applied} ms; → new group's address on h1: ${held} ms`);
    assert.ok(held <= applied + deadTimeMs(0) + MARGIN_MS, `fx took ${held} ms`);
    assert.deepEqual(
      transitions(d1, from1).map((x) => `${x.group} ${x.state} ${x.reason}`),
      ['fx BACKUP start', 'fx MASTER master-down'],
      'only the added group moved',
    );
    assert.deepEqual(transitions(d2, from2), []);
    assertAlive(d1, d2);
  });

  test('emptied (truncated to 0 bytes): the reload is rejected, groups untouched', async (t) => {
    const before = shape(await status());
    assert.equal(before.length, GROUPS + 1);
    const failed = (await status()).reloads.failed;
    const from1 = d1.lines.length;
    const from2 = d2.lines.length;
    const expected = new Map([...steady(), [vip(EXTRA), [h1.ns]]]);
    fs.truncateSync(f1, 0);
    await d1.waitLine(/reload \(file change\) rejected, running groups unchanged/, from1);
    await d1.waitLine(/ucarp\.yaml:1:1: must be a map/, from1);
    // The same file through the control socket: also rejected, with the error.
    const ctl = await run('ip', [
      ...['netns', 'exec', h1.ns, process.execPath, UCARPCTL],
      ...['--socket', sock1, 'reload'],
    ]).then(
      () => ({ code: 0, stderr: '' }),
      (e: { code: number; stderr: string }) => e,
    );
    assert.equal(ctl.code, 1, ctl.stderr);
    assert.match(ctl.stderr, /must be a map[\s\S]*configuration rejected .*running groups unchanged/);
    const n = await untouched(from1, from2, before, expected);
    t.diagnostic(`emptied file: ${n} kernel samples over ${SETTLE_MS} ms, no transition, groups as before`);
    assert.equal((await status()).reloads.failed, failed + 2);
  });

  test('saved by rename after emptying: picked up and applied', async (t) => {
    const from1 = d1.lines.length;
    const from2 = d2.lines.length;
    const changed = base.map((x) => (x.name === 'f1' ? { ...x, advskew: 5 } : x));
    const t0 = Date.now();
    writeByRename(f1, configYaml(changed, { socket: sock1 }));
    await d1.waitLine(
      /reload \(file change\): added 0, removed 1 \(fx\), updated 1 \(f1: advskew\), restarted 0/,
      from1,
    );
    const applied = Date.now() - t0;
    // fx leaves and releases its address; f1 changes timing in place; the rest is as before.
    const r = await settled(lab, steady(), SETTLE_MS, 3000 + SETTLE_MS, 'fx address gone, the others on h1');
    const held = r.at - t0;
    t.diagnostic(
      `rename → reload applied: ${applied} ms; → fx address released: ${held} ms, ` +
        `then held ${SETTLE_MS} ms (${r.samples} kernel samples)`,
    );
    // A removed master releases its addresses before the reload reports done.
    assert.ok(held <= applied + MARGIN_MS, `fx released ${held} ms after the save`);
    assert.deepEqual(
      transitions(d1, from1).map((x) => `${x.group} ${x.state} ${x.reason}`),
      ['fx BACKUP stop'],
    );
    assert.deepEqual(transitions(d2, from2), []);
    const f1Status = (await status()).groups.find((x) => x.name === 'f1');
    assert.equal(f1Status?.advskew, 5, 'the new advskew is live');
    assert.equal(f1Status?.state, 'MASTER');
    assertAlive(d1, d2);
  });
});
