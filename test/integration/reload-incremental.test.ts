// A reload that parses only what changed (src/config/incremental.ts), seen from outside: the
// loader's thread holds the file's slices from start-up on, so adding a group parses that group
// alone and starts it while every running group carries on untouched; a bad edit is reported at
// file:line:column exactly as a whole-file load reports it, and nothing changes; the good file
// again reloads from the slices.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Lab, Host } from '../helpers/netns';
import { SupervisorProc, TestGroup, configYaml, writeByRename } from '../helpers/supervisor-proc';
import {
  OUR_UCARPCTL,
  assertAlive,
  deadTimeMs,
  holdsFor,
  reached,
  run,
  settled,
  singleHolders,
  transitions,
  vip,
} from '../helpers/fault';
import { loadConfig } from '../../src/config/load';
import { formatErrors } from '../../src/config/errors';
import type { HostInfo } from '../../src/config/types';
import type { StatusDocument } from '../../src/control/protocol';

const GROUPS = 12;
const SETTLE_MS = 1500;

function groupsFor(host: 1 | 2): TestGroup[] {
  return Array.from({ length: GROUPS }, (_, i) => ({
    name: `r${i}`,
    vhid: 71 + i,
    iface: 'eth0',
    addresses: [`192.0.2.${201 + i}/24`],
    advskew: host === 1 ? 0 : 20,
  }));
}

/** Only on h1: added by the first edit. */
const EXTRA: TestGroup = { name: 'rx', vhid: 99, iface: 'eth0', addresses: ['192.0.2.199/24'] };
/** A second group whose vhid the schema refuses (1..255). */
const BAD: TestGroup = { name: 'ry', vhid: 300, iface: 'eth0', addresses: ['192.0.2.198/24'] };

describe('reload: only the changed group is parsed; running groups untouched', () => {
  let lab: Lab;
  let h1: Host;
  let h2: Host;
  let d1: SupervisorProc;
  let d2: SupervisorProc;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ucarp-reload-incr-'));
  const f1 = path.join(dir, 'h1', 'ucarp.yaml');
  const sock1 = path.join(dir, 'h1.sock');
  const base = groupsFor(1);
  const yaml1 = (groups: TestGroup[]) => configYaml(groups, { socket: sock1, level: 'debug' });
  const withExtra = () =>
    new Map([...singleHolders(new Map(base.map((g) => [vip(g), h1]))), [vip(EXTRA), [h1.ns]]]);

  async function status(): Promise<StatusDocument> {
    const { stdout } = await run('ip', [
      'netns',
      'exec',
      h1.ns,
      process.execPath,
      OUR_UCARPCTL,
      '--socket',
      sock1,
      'status',
      '--json',
    ]);
    return JSON.parse(stdout) as StatusDocument;
  }
  const shape = (s: StatusDocument) =>
    s.groups.map((x) => `${x.name} ${x.state} ${x.advbase}/${x.advskew} ${x.addresses.join()}`).sort();

  before(async () => {
    lab = await Lab.create({ hosts: 2 });
    [h1, h2] = lab.hosts;
    fs.mkdirSync(path.dirname(f1));
    const f2 = path.join(dir, 'h2', 'ucarp.yaml');
    fs.mkdirSync(path.dirname(f2));
    fs.writeFileSync(f1, yaml1(base));
    fs.writeFileSync(f2, configYaml(groupsFor(2), { socket: path.join(dir, 'h2.sock') }));
    d1 = new SupervisorProc(lab, h1, f1);
    await d1.waitLine(/started \d+ group/);
    d2 = new SupervisorProc(lab, h2, f2);
    await d2.waitLine(/started \d+ group/);
    await settled(
      lab,
      singleHolders(new Map(base.map((g) => [vip(g), h1]))),
      1000,
      15000,
      'every address on h1 only',
    );
  });

  after(async () => {
    await lab.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('a group added by SIGHUP is the only part parsed, and the only group that moves', async () => {
    const from1 = d1.lines.length;
    const from2 = d2.lines.length;
    // The watcher reloads the renamed file too; whichever of the two reloads comes first
    // does the work.
    writeByRename(f1, yaml1([...base, EXTRA]));
    d1.signal('SIGHUP');
    // The start-up load already kept the slices: the first reload reuses every other part
    // (logging, control, defaults and the 12 groups).
    await d1.waitLine(
      new RegExp(
        `reload \\((?:SIGHUP|file change)\\): parsed 1 part\\(s\\) of ${f1.replace(/\./g, '\\.')}, reused ${GROUPS + 3}`,
      ),
      from1,
    );
    await d1.waitLine(
      /reload \((?:SIGHUP|file change)\): added 1 \(rx\), removed 0, updated 0, restarted 0/,
      from1,
    );
    await reached(lab, withExtra(), deadTimeMs(0) + 3000, 'rx address on h1');
    assert.deepEqual(
      transitions(d1, from1).map((x) => `${x.group} ${x.state}`),
      ['rx BACKUP', 'rx MASTER'],
      'only the added group moved',
    );
    assert.deepEqual(transitions(d2, from2), []);
    assertAlive(d1, d2);
  });

  test('a bad edit is rejected at file:line:column as a whole-file load says, groups untouched', async (t) => {
    const before = shape(await status());
    assert.equal(before.length, GROUPS + 1);
    const from1 = d1.lines.length;
    const from2 = d2.lines.length;
    writeByRename(f1, yaml1([...base, EXTRA, BAD]));
    d1.signal('SIGHUP');
    await d1.waitLine(/reload \((?:SIGHUP|file change)\): parsed .* whole \(rejected\)/, from1);
    const rejected = await d1.waitLine(
      /reload \((?:SIGHUP|file change)\) rejected, running groups unchanged/,
      from1,
    );
    // What a whole-file load reports, found here independently of the daemon: vhid 300 on its
    // line in the file, with the key path.
    const host: HostInfo = { interfaces: () => new Map([['eth0', { addresses: [h1.ips[0]] }]]) };
    const whole = loadConfig(f1, host);
    assert.equal(whole.ok, false);
    const expected = formatErrors(whole.errors);
    const lineNo = fs.readFileSync(f1, 'utf8').split('\n').indexOf('    vhid: 300') + 1;
    assert.equal(expected, `${f1}:${lineNo}:11: groups.ry.vhid: must be <= 255`);
    const at = d1.lines.indexOf(rejected);
    assert.equal(
      d1.lines[at + 1],
      expected,
      `the daemon's report:\n${d1.lines.slice(at, at + 3).join('\n')}`,
    );
    const n = await holdsFor(lab, withExtra(), SETTLE_MS, 'every address where it was');
    assert.deepEqual(transitions(d1, from1), []);
    assert.deepEqual(transitions(d2, from2), []);
    assert.deepEqual(shape(await status()), before, 'the running groups are exactly as before');
    t.diagnostic(`rejected: ${expected}; ${n} kernel samples unchanged`);
  });

  test('the good file again: parsed from the kept slices, nothing to change', async () => {
    const from1 = d1.lines.length;
    writeByRename(f1, yaml1([...base, EXTRA]));
    d1.signal('SIGHUP');
    await d1.waitLine(
      new RegExp(`reload \\((?:SIGHUP|file change)\\): parsed 0 part\\(s\\) of .*, reused ${GROUPS + 4}`),
      from1,
    );
    await d1.waitLine(/reload \((?:SIGHUP|file change)\): added 0, removed 0, updated 0, restarted 0/, from1);
    await holdsFor(lab, withExtra(), SETTLE_MS, 'every address where it was');
    assert.deepEqual(transitions(d1, from1), []);
    assertAlive(d1, d2);
  });
});
