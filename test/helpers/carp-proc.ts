// A CARP node process inside a Lab host: our bin/ucarp or Debian's ucarp, with its log lines
// collected and its CARP state tracked from them.
import path from 'node:path';
import { Lab, Host, waitFor } from './netns';
import { LabProcess } from './lab-process';

export const ROOT = path.resolve(__dirname, '../../..');
export const OUR_UCARP = path.join(ROOT, 'bin/ucarp');
export const DEBIAN_UCARP = '/usr/sbin/ucarp';

export type Kind = 'ours' | 'ucarp';

export class CarpProc extends LabProcess {
  state: 'INIT' | 'BACKUP' | 'MASTER' = 'INIT';
  /** Every state change with the Date.now() at which its log line arrived. */
  readonly history: { state: string; at: number }[] = [];

  constructor(
    lab: Lab,
    host: Host,
    readonly kind: Kind,
    args: string[],
  ) {
    super(
      lab,
      host,
      kind === 'ours' ? process.execPath : DEBIAN_UCARP,
      kind === 'ours' ? [OUR_UCARP, ...args] : args,
    );
  }

  protected override onLine(line: string): void {
    const m = /Switching to state:? (MASTER|BACKUP)/.exec(line);
    if (m) {
      this.state = m[1] as 'MASTER' | 'BACKUP';
      this.history.push({ state: this.state, at: Date.now() });
    }
  }

  async waitState(state: 'MASTER' | 'BACKUP', timeoutMs = 10000): Promise<void> {
    await waitFor(() => this.state === state, timeoutMs, `${this.kind} on ${this.host.ns} to be ${state}`);
  }

  async waitLine(re: RegExp, timeoutMs = 10000): Promise<string> {
    let found = '';
    await waitFor(
      () => {
        found = this.lines.find((l) => re.test(l)) ?? '';
        return found !== '';
      },
      timeoutMs,
      `a line matching ${re} from ${this.kind} on ${this.host.ns}\n${this.lines.join('\n')}`,
    );
    return found;
  }

  kill(sig: NodeJS.Signals = 'SIGKILL'): void {
    // `ip netns exec` execs the command, so the child's pid is the daemon's.
    this.child.kill(sig);
  }

  async exit(timeoutMs = 10000): Promise<void> {
    await waitFor(() => this.exited, timeoutMs, `${this.kind} on ${this.host.ns} to exit`);
  }
}

/** ucarp-style arguments shared by both implementations. */
export function carpArgs(
  host: Host,
  o: {
    vhid?: number;
    pass?: string;
    addr?: string;
    advbase?: number;
    advskew?: number;
    srcip?: string;
    extra?: string[];
  },
): string[] {
  return [
    '-i',
    host.ifaces[0],
    '-s',
    o.srcip ?? host.ips[0],
    '-v',
    String(o.vhid ?? 10),
    '-p',
    o.pass ?? 'secret',
    '-a',
    o.addr ?? '192.0.2.100',
    '-b',
    String(o.advbase ?? 1),
    '-k',
    String(o.advskew ?? 0),
    '-f',
    'none',
    ...(o.extra ?? []),
  ];
}

export function masters(nodes: CarpProc[]): CarpProc[] {
  return nodes.filter((n) => !n.exited && n.state === 'MASTER');
}
