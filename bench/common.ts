// Shared pieces of the benchmark scripts: summary statistics, plain-text tables, and a
// tcpdump observer whose packet timestamps are the ground truth for "on the wire" times.
import type { ChildProcess } from 'node:child_process';
import type { Lab, Host } from '../test/helpers/netns';

export interface Summary {
  n: number;
  min: number;
  median: number;
  p95: number;
  max: number;
}

/**
 * Nearest-rank percentile (p in 0..100) of an ascending array: always a value that was
 * actually measured, which is what a "max ≤ target" reading wants with 10–20 samples.
 */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) throw new Error('percentile of an empty sample');
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

export function summarize(values: readonly number[]): Summary {
  const s = [...values].sort((a, b) => a - b);
  if (s.length === 0) throw new Error('summary of an empty sample');
  // The median of an even count is the mean of the two middle values (the usual definition),
  // unlike p95, which stays a measured value.
  const mid = s.length >> 1;
  const median = s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
  return { n: s.length, min: s[0], median, p95: percentile(s, 95), max: s[s.length - 1] };
}

/** Columns padded to their widest cell; numbers (and the header above them) right-aligned. */
export function formatTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const width = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const numeric = headers.map(
    (_, i) => rows.length > 0 && rows.every((r) => /^[-+]?[\d.]+$/.test(r[i] ?? '')),
  );
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (numeric[i] ? c.padStart(width[i]) : c.padEnd(width[i])))
      .join('  ')
      .trimEnd();
  const rule = width.map((w) => '-'.repeat(w)).join('  ');
  return [line(headers), rule, ...rows.map(line)].join('\n');
}

export function ms(x: number, digits = 1): string {
  return x.toFixed(digits);
}

/**
 * One advertisement as tcpdump prints it: CARP (which tcpdump decodes as VRRPv2) or VRRPv3.
 */
export interface CarpPacket {
  /** 2: CARP; 3: VRRPv3. */
  version: 2 | 3;
  /** Kernel receive time on the observer, seconds since the epoch (from `-tt`). */
  t: number;
  src: string;
  dst: string;
  vhid: number;
  /** VRRP's "prio" byte: CARP's advskew, VRRPv3's priority. */
  advskew: number;
  /** VRRP's "intvl": CARP's advbase in seconds, VRRPv3's interval in centiseconds. */
  advbase: number;
}

// IPv4 (`IP 192.0.2.1 > 224.0.0.18:`) or IPv6 (`IP6 fe80::1 > ff02::12:`), docs/protocol.md §21.
const TCPDUMP_LINE =
  /^(\d+\.\d+) IP6? ([0-9a-fA-F.:]+) > ([0-9a-fA-F.:]+): VRRPv([23]), Advertisement, vrid (\d+), prio (\d+), .*?intvl (\d+)c?s/;

/**
 * Parses a line of `tcpdump -n -tt 'ip proto 112'`, e.g.
 * `1700000000.123456 IP 192.0.2.1 > 224.0.0.18: VRRPv2, Advertisement, vrid 10, prio 0,
 * authtype none, intvl 1s, length 36`, or for VRRPv3 `… VRRPv3, Advertisement, vrid 30,
 * prio 150, intvl 100cs, length 16, …`. Anything else yields null.
 */
export function parseTcpdumpLine(line: string): CarpPacket | null {
  const m = TCPDUMP_LINE.exec(line);
  if (!m) return null;
  return {
    version: m[4] === '3' ? 3 : 2,
    t: Number(m[1]),
    src: m[2],
    dst: m[3],
    vhid: Number(m[5]),
    advskew: Number(m[6]),
    advbase: Number(m[7]),
  };
}

/**
 * The advertisement of a master leaving on purpose: CARP's bow-out (advbase 255, advskew 255)
 * or VRRPv3's priority 0.
 */
export function isBowOut(p: CarpPacket): boolean {
  return p.version === 3 ? p.advskew === 0 : p.advbase === 255 && p.advskew === 255;
}

/** Wall-clock "now" in epoch seconds with sub-millisecond resolution, comparable to `-tt`. */
export function epochNow(): number {
  return (performance.timeOrigin + performance.now()) / 1000;
}

/** tcpdump running in a Lab host, collecting every CARP advertisement it sees. */
export class Capture {
  readonly packets: CarpPacket[] = [];
  private readonly child: ChildProcess;
  private buf = '';
  private listening = false;
  private stderr = '';

  constructor(lab: Lab, host: Host, iface = host.ifaces[0], filter = 'ip proto 112') {
    // -l: line-buffered, so each packet reaches us as it is captured, not in 4 KiB chunks.
    this.child = lab.spawn(host, 'tcpdump', ['-n', '-tt', '-l', '-i', iface, filter]);
    this.child.stdout?.on('data', (d: Buffer) => this.onData(d.toString()));
    this.child.stderr?.on('data', (d: Buffer) => {
      this.stderr += d.toString();
      if (this.stderr.includes('listening on')) this.listening = true;
    });
  }

  private onData(s: string): void {
    this.buf += s;
    let i: number;
    while ((i = this.buf.indexOf('\n')) >= 0) {
      const p = parseTcpdumpLine(this.buf.slice(0, i));
      this.buf = this.buf.slice(i + 1);
      if (p) this.packets.push(p);
    }
  }

  /** Resolves once tcpdump has opened the interface (it says so on stderr). */
  async ready(timeoutMs = 5000): Promise<void> {
    const end = Date.now() + timeoutMs;
    while (!this.listening) {
      if (this.child.exitCode !== null || Date.now() > end) {
        throw new Error(`tcpdump did not start: ${this.stderr.trim()}`);
      }
      await sleep(20);
    }
  }

  /** Resolves with the first packet after index `from` matching `pred`. */
  async next(pred: (p: CarpPacket) => boolean, from: number, timeoutMs: number): Promise<CarpPacket> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      for (let i = from; i < this.packets.length; i++) if (pred(this.packets[i])) return this.packets[i];
      if (Date.now() > end) throw new Error(`no matching advertisement captured within ${timeoutMs} ms`);
      await sleep(10);
    }
  }

  stop(): void {
    this.child.kill('SIGTERM');
  }
}

export function sleep(msec: number): Promise<void> {
  return new Promise((r) => setTimeout(r, msec));
}

/** `--name value` options of a bench script, with the names it accepts. */
export function parseOptions(argv: readonly string[], known: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const eq = a.indexOf('=');
    const name = a.startsWith('--') ? a.slice(2, eq >= 0 ? eq : undefined) : '';
    if (!known.includes(name))
      throw new Error(`unknown option ${a}; known: ${known.map((k) => `--${k}`).join(' ')}`);
    const value = eq >= 0 ? a.slice(eq + 1) : argv[++i];
    if (value === undefined) throw new Error(`option ${a} needs a value`);
    out.set(name, value);
  }
  return out;
}
