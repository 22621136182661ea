// Advertisements as a peer sees them: tcpdump in a namespace records every CARP packet from one
// source with its arrival time, so a test can measure the longest silence per vhid.
import { spawn, type ChildProcess } from 'node:child_process';
import { waitFor } from './netns';

/** One advertisement as captured: arrival time in ms, vhid, and its advbase and advskew. */
export interface Advert {
  at: number;
  vhid: number;
  advbase: number;
  advskew: number;
}

export interface AdvertCapture {
  /** Stops tcpdump; every advertisement captured, in order. */
  stop(): Promise<Advert[]>;
}

/**
 * Starts `tcpdump` in namespace `ns` on `iface` for protocol 112 from `src`, and resolves once
 * it listens. tcpdump decodes CARP as VRRP: the vhid is its "vrid", advskew its "prio" and
 * advbase its "intvl" (docs/protocol.md §3).
 */
export async function captureAdverts(ns: string, src: string, iface = 'eth0'): Promise<AdvertCapture> {
  const p: ChildProcess = spawn(
    'ip',
    ['netns', 'exec', ns, 'tcpdump', '-n', '-tt', '-l', '-i', iface, `ip proto 112 and src ${src}`],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let text = '';
  let err = '';
  p.stdout?.on('data', (d: Buffer) => (text += d.toString()));
  p.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<void>((r) => p.once('exit', () => r()));
  await waitFor(() => /listening on/.test(err) || p.exitCode !== null, 10_000, `tcpdump in ${ns} to listen`);
  if (p.exitCode !== null) throw new Error(`tcpdump in ${ns} exited: ${err}`);
  return {
    async stop() {
      p.kill('SIGTERM');
      await exited;
      const out: Advert[] = [];
      for (const line of text.split('\n')) {
        const m = /^(\d+\.\d+) .*vrid (\d+), prio (\d+),.* intvl (\d+)s/.exec(line);
        if (m)
          out.push({
            at: Number(m[1]) * 1000,
            vhid: Number(m[2]),
            advskew: Number(m[3]),
            advbase: Number(m[4]),
          });
      }
      return out;
    },
  };
}

/** Arrival times in ms, by vhid. */
export function timesByVhid(adverts: readonly Advert[]): Map<number, number[]> {
  const byVhid = new Map<number, number[]>();
  for (const a of adverts) {
    const list = byVhid.get(a.vhid) ?? [];
    list.push(a.at);
    byVhid.set(a.vhid, list);
  }
  return byVhid;
}

/** The longest time between two consecutive arrivals, in ms (0 with fewer than two). */
export function longestGap(times: readonly number[]): number {
  let worst = 0;
  for (let i = 1; i < times.length; i++) worst = Math.max(worst, times[i] - times[i - 1]);
  return worst;
}
