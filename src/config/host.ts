import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import type { HostInfo, HostInterface } from './types';
import { canonicalIpv6 } from '../net/ipv6';

/** The system calls behind systemHostInfo, replaceable in tests. */
export interface HostProbes {
  networkInterfaces(): NodeJS.Dict<os.NetworkInterfaceInfo[]>;
  /** Every link, whatever its state. */
  linkNames(): string[];
  /** Output of `ip -j -4 addr show`. */
  ipAddrJson(): string;
}

export const systemProbes: HostProbes = {
  networkInterfaces: () => os.networkInterfaces(),
  linkNames: () => fs.readdirSync('/sys/class/net'),
  ipAddrJson: () =>
    execFileSync('ip', ['-j', '-4', 'addr', 'show'], {
      encoding: 'utf8',
      timeout: 5000,
      stdio: ['ignore', 'pipe', 'ignore'],
    }),
};

interface IpAddrEntry {
  ifname?: string;
  addr_info?: Array<{ family?: string; local?: string }>;
}

/**
 * Host facts from os.networkInterfaces(), which is synchronous and cheap. libuv leaves out every
 * interface that is not both up and running, so an interface without carrier would look absent
 * and a valid file would be refused while a cable is out (ucarp runs fine then, and must with
 * ignoreifstate). Links that exist in /sys/class/net but are missing there are therefore looked
 * up once with `ip -j -4 addr`, which sees addresses regardless of link state.
 */
export function systemHostInfo(probes: HostProbes = systemProbes): HostInfo {
  return {
    interfaces(): Map<string, HostInterface> {
      const result = new Map<string, HostInterface>();
      for (const [name, infos] of Object.entries(probes.networkInterfaces())) {
        const addresses = (infos ?? []).filter((i) => i.family === 'IPv4').map((i) => i.address);
        const addresses6 = (infos ?? [])
          .filter((i) => i.family === 'IPv6')
          .map((i) => canonicalIpv6(i.address));
        result.set(name, { addresses, addresses6 });
      }
      const missing = safe(() => probes.linkNames(), []).filter((name) => !result.has(name));
      if (missing.length === 0) return result;
      const entries = safe(() => JSON.parse(probes.ipAddrJson()) as IpAddrEntry[], []);
      for (const name of missing) {
        const entry = entries.find((e) => e.ifname === name);
        const addresses = (entry?.addr_info ?? [])
          .filter((a) => a.family === 'inet' && typeof a.local === 'string')
          .map((a) => a.local as string);
        result.set(name, { addresses });
      }
      return result;
    },
  };
}

/** A missing /sys or `ip` only loses the fallback; os.networkInterfaces() still answers. */
function safe<T>(probe: () => T, fallback: T): T {
  try {
    return probe();
  } catch {
    return fallback;
  }
}
