import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { spawnSync } from 'node:child_process';
import winston from 'winston';
import { MESSAGE } from 'triple-beam';
import * as logModule from '../../src/util/log';
import {
  createLogger,
  groupLogger,
  rfc3164Line,
  SYSLOG_FACILITIES,
  type Logger,
  type LoggerOptions,
} from '../../src/util/log';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ucarp-log-test-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function capture(opts: Partial<LoggerOptions> = {}): { logger: Logger; lines: () => Promise<string[]> } {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (chunk: Buffer) => (text += chunk.toString()));
  const logger = createLogger({
    facility: 'none',
    debug: false,
    journal: false,
    syslogPath: path.join(tmp, 'no-such-socket'),
    stream,
    ...opts,
  });
  return {
    logger,
    lines: async () => {
      await new Promise((resolve) => setImmediate(resolve));
      return text.split('\n').filter((l) => l !== '');
    },
  };
}

// winston's Stream transport has no name; winston-syslog's is called 'syslog'.
function transportNames(logger: Logger): string[] {
  return logger.transports.map((t) =>
    t instanceof winston.transports.Stream ? 'stream' : String((t as unknown as { name: string }).name),
  );
}

describe('log line format', () => {
  it('writes ISO time, level and group context', async () => {
    const { logger, lines } = capture();
    groupLogger(logger, { group: 'web', vhid: 10, iface: 'eth0' }).warn('message');
    const [line] = await lines();
    assert.match(line, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \[WARN\] web vhid 10 eth0: message$/);
  });

  it('omits the context prefix when there is none, and keeps partial context', async () => {
    const { logger, lines } = capture();
    logger.info('plain');
    groupLogger(logger, { vhid: 7 }).error('only vhid');
    const got = await lines();
    assert.match(got[0], /Z \[INFO\] plain$/);
    assert.match(got[1], /Z \[ERROR\] vhid 7: only vhid$/);
  });

  it('appends other metadata as key=value pairs', async () => {
    const { logger, lines } = capture();
    logger.info('script done', { code: 3, path: '/etc/up.sh', note: 'two words', skipped: undefined });
    const [line] = await lines();
    assert.match(line, /\[INFO\] script done code=3 path=\/etc\/up\.sh note="two words"$/);
  });

  it('prints the stack of a logged Error on following lines', async () => {
    const { logger, lines } = capture();
    logger.error(new Error('boom'));
    const got = await lines();
    assert.match(got[0], /\[ERROR\] boom$/);
    assert.equal(got[1], 'Error: boom');
  });
});

describe('log levels', () => {
  it('hides debug lines by default and shows them with debug: true', async () => {
    const quiet = capture();
    quiet.logger.debug('hidden');
    quiet.logger.info('shown');
    assert.deepEqual(
      (await quiet.lines()).map((l) => l.replace(/^\S+ /, '')),
      ['[INFO] shown'],
    );

    const loud = capture({ debug: true });
    loud.logger.debug('visible');
    assert.match((await loud.lines())[0], /\[DEBUG\] visible$/);
  });

  it('honours an explicit level, and debug: true overrides it', async () => {
    const warnOnly = capture({ level: 'warn' });
    warnOnly.logger.info('dropped');
    warnOnly.logger.warn('kept');
    assert.equal((await warnOnly.lines()).length, 1);

    const forced = capture({ level: 'error', debug: true });
    forced.logger.debug('kept');
    assert.equal((await forced.lines()).length, 1);
  });

  it('writes nothing to the console with console: false', async () => {
    const { logger, lines } = capture({ console: false });
    logger.error('nowhere');
    assert.deepEqual(await lines(), []);
  });
});

describe('journald mode', () => {
  it('prefixes sd-daemon priorities and drops the timestamp', async () => {
    const { logger, lines } = capture({ journal: true, debug: true });
    const g = groupLogger(logger, { group: 'web', vhid: 10, iface: 'eth0' });
    g.error('e');
    g.warn('w');
    g.info('i');
    g.debug('d');
    assert.deepEqual(await lines(), [
      '<3>web vhid 10 eth0: e',
      '<4>web vhid 10 eth0: w',
      '<6>web vhid 10 eth0: i',
      '<7>web vhid 10 eth0: d',
    ]);
  });

  it('is chosen from JOURNAL_STREAM and writes to stdout, not stderr', () => {
    const mod = path.resolve(__dirname, '../../src/util/log.js');
    const script = `const l = require(${JSON.stringify(mod)});
      l.createLogger({ facility: 'daemon', debug: false }).warn('to journal');`;
    const run = (env: NodeJS.ProcessEnv) =>
      spawnSync(process.execPath, ['-e', script], { env, encoding: 'utf8', timeout: 10_000 });

    const journal = run({ ...process.env, JOURNAL_STREAM: '8:12345' });
    assert.equal(journal.status, 0, journal.stderr);
    assert.equal(journal.stdout, '<4>to journal\n');
    assert.equal(journal.stderr, '');

    const env = { ...process.env };
    delete env.JOURNAL_STREAM;
    const plain = run(env);
    assert.equal(plain.stdout, '');
    assert.match(plain.stderr, /Z \[WARN\] to journal\n$/);
  });
});

describe('syslog transport', () => {
  const existing = path.join(tmp, 'exists');
  fs.writeFileSync(existing, '');

  it('is added for a facility when the socket path exists', () => {
    const { logger } = capture({ facility: 'daemon', syslogPath: existing });
    assert.deepEqual(transportNames(logger).sort(), ['stream', 'syslog']);
  });

  it('is not added with facility none', () => {
    const { logger } = capture({ facility: 'none', syslogPath: existing });
    assert.deepEqual(transportNames(logger), ['stream']);
  });

  it('is skipped silently when the socket path does not exist', () => {
    const { logger } = capture({ facility: 'daemon', syslogPath: path.join(tmp, 'missing') });
    assert.deepEqual(transportNames(logger), ['stream']);
  });

  it('is not added in journald mode', () => {
    const { logger } = capture({ facility: 'daemon', syslogPath: existing, journal: true });
    assert.deepEqual(transportNames(logger), ['stream']);
  });

  it('rejects unknown facilities and accepts any case', () => {
    assert.throws(() => capture({ facility: 'bogus' }), /Unknown syslog facility: \[bogus\]/);
    assert.doesNotThrow(() => capture({ facility: 'LOCAL0' }));
  });

  it('lists the Linux facility names', () => {
    assert.deepEqual(
      [...SYSLOG_FACILITIES],
      [
        ...['kern', 'user', 'mail', 'daemon', 'auth', 'syslog', 'lpr', 'news', 'uucp', 'cron'],
        ...['authpriv', 'ftp', 'local0', 'local1', 'local2', 'local3', 'local4', 'local5'],
        ...['local6', 'local7'],
      ],
    );
  });

  it('formats RFC 3164 lines with the Linux facility code and no hostname', () => {
    const date = new Date(2026, 10, 5, 8, 3, 9);
    assert.equal(
      rfc3164Line('cron', { severity: 'error', appName: 'ucarp', pid: 42, date, message: 'm' }),
      '<75>Nov  5 08:03:09 ucarp[42]: m',
    );
    assert.equal(
      rfc3164Line('authpriv', { severity: 'warning', pid: 1, date, message: 'x' }),
      '<84>Nov  5 08:03:09 ucarp[1]: x',
    );
  });

  it('delivers datagrams to a unix socket with facility, ident and context', async () => {
    const unixDgram = require('unix-dgram') as {
      createSocket(
        type: string,
        onMessage: (buf: Buffer) => void,
      ): {
        bind(p: string): void;
        close(): void;
      };
    };
    const sockPath = path.join(tmp, 'log.sock');
    const received: string[] = [];
    const server = unixDgram.createSocket('unix_dgram', (buf) => received.push(buf.toString()));
    server.bind(sockPath);
    const { logger } = capture({ facility: 'local3', syslogPath: sockPath, ident: 'ucarp', console: false });
    try {
      groupLogger(logger, { group: 'web', vhid: 10, iface: 'eth0' }).warn('hello');
      const deadline = Date.now() + 5000;
      while (received.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      assert.equal(received.length, 1);
      // local3 = 19, warning = 4 → 19 * 8 + 4 = 156
      assert.match(
        received[0],
        new RegExp(
          `^<156>\\w{3} [ \\d]\\d \\d\\d:\\d\\d:\\d\\d ucarp\\[${process.pid}\\]: web vhid 10 eth0: hello$`,
        ),
      );
    } finally {
      logger.close();
      server.close();
    }
  });

  it('survives a syslog socket nobody listens on', async () => {
    const dead = path.join(tmp, 'dead.sock');
    fs.writeFileSync(dead, '');
    const { logger, lines } = capture({ facility: 'daemon', syslogPath: dead });
    logger.error('still logging');
    logger.error('and again');
    await new Promise((r) => setTimeout(r, 50));
    assert.equal((await lines()).length, 2);
    const syslog = logger.transports.find((t) => (t as unknown as { name: string }).name === 'syslog');
    assert.equal((syslog as unknown as { queue: unknown[] }).queue.length, 0);
    logger.close();
  });
});

describe('lines are written verbatim', () => {
  // The daemon used to register every password with the logger, which then replaced each
  // occurrence of it in every line by ***: with password "1", timestamps came out as
  // 2026-******-26T2***:***2:4***, a group named 1 as ***, and where the stars fell told the
  // password. Passwords are now kept out of messages where they are formatted instead.
  const ONE = '1';

  /** Does what the daemon did at start with password "1", if the module still allows it. */
  function registerAsTheDaemonDid(secret: string): void {
    const hook = (logModule as Record<string, unknown>).registerSecret;
    if (typeof hook === 'function') (hook as (s: string) => void)(secret);
  }

  it('offers no secret masking', () => {
    assert.equal('registerSecret' in logModule, false);
    assert.equal('redact' in logModule, false);
  });

  it('keeps timestamp, group name and message intact with a one-character password', async () => {
    registerAsTheDaemonDid(ONE);
    const { logger, lines } = capture();
    const before = Date.now();
    groupLogger(logger, { group: '1', vhid: 1, iface: 'eth1' }).warn('Switching to state: MASTER (start)');
    logger.info('reload (SIGHUP): added 1 (1), removed 0, updated 0, restarted 0, unchanged 1', { n: 11 });
    const got = await lines();
    assert.equal(got.length, 2);
    for (const line of got) {
      assert.ok(!line.includes('*'), line);
      const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) \[(WARN|INFO)\] /.exec(line);
      assert.ok(m, `timestamp intact: ${line}`);
      const t = Date.parse(m[1]);
      assert.ok(t >= before - 1000 && t <= Date.now() + 1000, `a real timestamp: ${line}`);
    }
    assert.match(got[0], / \[WARN\] 1 vhid 1 eth1: Switching to state: MASTER \(start\)$/);
    assert.match(
      got[1],
      / \[INFO\] reload \(SIGHUP\): added 1 \(1\), removed 0, updated 0, restarted 0, unchanged 1 n=11$/,
    );
  });

  it('writes journal and syslog lines unaltered too', async () => {
    registerAsTheDaemonDid(ONE);
    const journal = capture({ journal: true });
    groupLogger(journal.logger, { group: '1', vhid: 11, iface: 'eth1' }).info('carrier up');
    assert.deepEqual(await journal.lines(), ['<6>1 vhid 11 eth1: carrier up']);
    // The syslog transport renders its lines with the same format, without a timestamp.
    const info = logModule
      .lineFormat('syslog')
      .transform({ level: 'info', message: 'carrier up', group: '1', vhid: 11, iface: 'eth1' });
    assert.ok(info);
    assert.equal((info as unknown as Record<symbol, unknown>)[MESSAGE], '1 vhid 11 eth1: carrier up');
  });
});
