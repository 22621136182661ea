// When did an address appear on a host? `ip monitor address` in every host's namespace reports
// each change as the kernel makes it; the time a line arrives is the measurement. Polling could
// only say "somewhere in the last interval".
import { performance } from 'node:perf_hooks';
import type { Lab } from './lab';

export interface AddressEvent {
  /** performance.now() when the kernel's notification arrived. */
  t: number;
  host: string;
  address: string;
  added: boolean;
}

// "2: eth0    inet 192.0.2.100/24 scope global secondary eth0", "Deleted 2: eth0    inet ...".
const LINE = /^(Deleted )?\d+: \S+\s+inet (\d+\.\d+\.\d+\.\d+)\//;

export function parseMonitorLine(line: string): { address: string; added: boolean } | null {
  const m = LINE.exec(line);
  return m ? { address: m[2], added: m[1] === undefined } : null;
}

export class AddressWatch {
  readonly events: AddressEvent[] = [];

  constructor(lab: Lab) {
    for (const h of lab.hosts) {
      const child = lab.spawnIp(h, ['monitor', 'address']);
      let buf = '';
      child.stdout?.on('data', (d: Buffer) => {
        const t = performance.now();
        buf += d.toString();
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const ev = parseMonitorLine(buf.slice(0, nl));
          buf = buf.slice(nl + 1);
          if (ev) this.events.push({ t, host: h.name, ...ev });
        }
      });
    }
  }

  /** First time `address` was added on `host` at or after `since`. */
  added(host: string, address: string, since: number): number | undefined {
    return this.events.find((e) => e.t >= since && e.added && e.host === host && e.address === address)?.t;
  }

  /** Addresses removed from `host` at or after `since`. */
  removed(host: string, since: number): string[] {
    return this.events.filter((e) => e.t >= since && !e.added && e.host === host).map((e) => e.address);
  }
}
