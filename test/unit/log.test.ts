import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { spawnSync } from 'node:child_process';
import winston from 'winston';
import {
  createLogger,
  groupLogger,
  redact,
  registerSecret,
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
    const secret = `pw-${process.pid}-sys`;
    registerSecret(secret);
    const { logger } = capture({ facility: 'local3', syslogPath: sockPath, ident: 'ucarp', console: false });
    try {
      groupLogger(logger, { group: 'web', vhid: 10, iface: 'eth0' }).warn(`hello ${secret}`);
      const deadline = Date.now() + 5000;
      while (received.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      assert.equal(received.length, 1);
      // local3 = 19, warning = 4 → 19 * 8 + 4 = 156
      assert.match(
        received[0],
        new RegExp(
          `^<156>\\w{3} [ \\d]\\d \\d\\d:\\d\\d:\\d\\d ucarp\\[${process.pid}\\]: web vhid 10 eth0: hello \\*\\*\\*$`,
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

describe('redaction', () => {
  it('replaces every occurrence of every secret', () => {
    assert.equal(redact('a s3cret b s3cret c', ['s3cret']), 'a *** b *** c');
    assert.equal(redact('x abc y', ['abc', 'zzz']), 'x *** y');
    assert.equal(redact('nothing here', []), 'nothing here');
  });

  it('masks the longer secret whole when one secret contains another', () => {
    assert.equal(redact('key=hunter22', ['hunter2', 'hunter22']), 'key=***');
  });

  it('ignores empty secrets', () => {
    assert.equal(redact('abc', ['']), 'abc');
  });

  it('masks registered secrets in messages and metadata on every line style', async () => {
    const secret = `pw-${process.pid}-line`;
    registerSecret(secret);
    registerSecret('');
    const plain = capture();
    plain.logger.info(`password is ${secret}`, { pass: secret });
    const [line] = await plain.lines();
    assert.ok(!line.includes(secret), line);
    assert.match(line, /password is \*\*\* pass=\*\*\*$/);

    const journal = capture({ journal: true });
    journal.logger.warn(`bad ${secret}`);
    assert.deepEqual(await journal.lines(), ['<4>bad ***']);
  });
});
