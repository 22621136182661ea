// notify runs on every state change with `<group> <state> <vhid> <interface>`, in order; and a
// tracker whose check hangs never delays the master's advertisements (checks are child
// processes, off the event loop).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { waitFor, type Lab } from '../helpers/netns';
import type { TestGroup } from '../helpers/supervisor-proc';
import { Pair, type Node } from '../helpers/fault';

describe('notify and a hanging tracker', () => {
  const pair = new Pair('notify');
  let lab: Lab;
  let n1: Node;
  let n2: Node;
  let log1: string;
  const notifyScript = () => path.join(pair.root, 'notify.sh');

  const groups = (advskew: number, log: string): TestGroup[] => [
    {
      name: 'web',
      vhid: 10,
      iface: 'eth0',
      addresses: ['192.0.2.100/24'],
      advskew,
      extra: { notify: notifyScript(), track: `[{ tracker: stuck, weight: 1 }]`, xparam: log },
    },
  ];
  // The check never ends before its timeout: sleep 60, killed after 0.3 s, every 0.5 s.
  const top = [
    'trackers:',
    '  stuck:',
    '    script: [/bin/sleep, "60"]',
    '    interval: 0.5',
    '    timeout: 0.3',
  ].join('\n');

  before(async () => {
    // notify.sh appends its arguments, one run per line, to the file its xparam names (the
    // environment has UCARP_GROUP; the file path is per host).
    fs.writeFileSync(
      notifyScript(),
      '#!/bin/sh\nprintf "%s %s %s %s\\n" "$1" "$2" "$3" "$4" >> "$(dirname "$0")/notify-$UCARP_GROUP-$(hostname -I | cut -d" " -f1).log"\n',
      { mode: 0o755 },
    );
    await pair.start(groups(0, 'h1'), groups(50, 'h2'), { web: 'MASTER' }, { top1: top, top2: top });
    ({ lab, n1, n2 } = pair);
    await n2.waitAll({ web: 'BACKUP' });
    log1 = path.join(pair.root, `notify-web-${lab.host(1).ips[0]}.log`);
  });
  after(() => pair.after());

  it('a hanging check never stretches an advertisement gap past interval + 20 ms', async (t) => {
    const tcpdump = spawn('ip', [
      'netns',
      'exec',
      lab.host(2).ns,
      'tcpdump',
      '-n',
      '-tt',
      '-l',
      '-i',
      'eth0',
      `ip proto 112 and src ${lab.host(1).ips[0]}`,
    ]);
    let out = '';
    tcpdump.stdout.on('data', (d: Buffer) => (out += d.toString()));
    await new Promise((r) => setTimeout(r, 8000));
    tcpdump.kill('SIGTERM');
    const times = out
      .split('\n')
      .map((l) => Number(l.split(' ')[0]))
      .filter((x) => Number.isFinite(x) && x > 0);
    assert.ok(times.length >= 6, `captured ${times.length} advertisements`);
    const gaps = times.slice(1).map((x, i) => (x - times[i]) * 1000);
    const worst = Math.max(...gaps);
    // The stuck tracker fails (weight 1): the master advertises advskew 1, interval 1 + 1/256 s.
    const interval = 1000 + 1000 / 256;
    t.diagnostic(
      `${gaps.length} gaps with a check hanging every 0.5 s: worst ${worst.toFixed(1)} ms (interval ${interval.toFixed(1)} ms)`,
    );
    assert.ok(worst <= interval + 20, `worst gap ${worst.toFixed(1)} ms`);
    assert.equal((await n1.status()).trackers[0].failed, true);
  });

  it('notify got every state change, in order, with its four arguments', async () => {
    n1.proc.signal('SIGTERM');
    await n1.proc.exit();
    await n2.waitState('web', 'MASTER', 5000);
    await waitFor(
      () => fs.existsSync(log1) && fs.readFileSync(log1, 'utf8').split('\n').length >= 4,
      5000,
      'notify log',
    );
    assert.deepEqual(fs.readFileSync(log1, 'utf8').trim().split('\n'), [
      'web BACKUP 10 eth0',
      'web MASTER 10 eth0',
      'web BACKUP 10 eth0',
    ]);
  });
});
