// Advertisements as a peer sees them: tcpdump in a namespace records every CARP packet from one
// source with its arrival time, so a test can measure the longest silence per vhid.
import { spawn, type ChildProcess } from 'node:child_process';
import { waitFor } from './netns';

export interface AdvertCapture {
  /** Stops tcpdump; arrival times in ms, by vhid. */
  stop(): Promise<Map<number, number[]>>;
}

/**
 * Starts `tcpdump` in namespace `ns` on `iface` for protocol 112 from `src`, and resolves once
 * it listens. tcpdump decodes CARP as VRRP: the vhid is its "vrid".
 */
export async function captureAdverts(ns: string, src: string, iface = 'eth0'): Promise<AdvertCapture> {
  const p: ChildProcess = spawn(
    'ip',
    ['netns', 'exec', ns, 'tcpdump', '-n', '-tt', '-l', '-i', iface, `ip proto 112 and src ${src}`],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  let err = '';
  p.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  p.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<void>((r) => p.once('exit', () => r()));
  await waitFor(() => /listening on/.test(err) || p.exitCode !== null, 10_000, `tcpdump in ${ns} to listen`);
  if (p.exitCode !== null) throw new Error(`tcpdump in ${ns} exited: ${err}`);
  return {
    async stop() {
      p.kill('SIGTERM');
      await exited;
      const byVhid = new Map<number, number[]>();
      for (const line of out.split('\n')) {
        const m = /^(\d+\.\d+) .*vrid (\d+)/.exec(line);
        if (!m) continue;
        const vhid = Number(m[2]);
        const list = byVhid.get(vhid) ?? [];
        list.push(Number(m[1]) * 1000);
        byVhid.set(vhid, list);
      }
      return byVhid;
    },
  };
}

/** The longest time between two consecutive arrivals, in ms (0 with fewer than two). */
export function longestGap(times: readonly number[]): number {
  let worst = 0;
  for (let i = 1; i < times.length; i++) worst = Math.max(worst, times[i] - times[i - 1]);
  return worst;
}
