// Our daemon in supervisor mode (`bin/ucarp -c FILE`) inside a Lab host, plus a generator of
// valid YAML configurations for test groups.
import fs from 'node:fs';
import path from 'node:path';
import { Lab, Host, waitFor } from './netns';
import { LabProcess } from './lab-process';
import { OUR_UCARP } from './carp-proc';

export interface TestGroup {
  name: string;
  vhid: number;
  iface: string;
  addresses: string[];
  advskew?: number;
  preempt?: boolean;
  password?: string;
  extra?: Record<string, string | number | boolean>;
}

/**
 * A group on eth0 with one virtual address that preempts: start-up lag on a loaded machine
 * must not decide who is master.
 */
export function preemptingGroup(
  name: string,
  vhid: number,
  address: string,
  advskew: number,
  extra?: TestGroup['extra'],
): TestGroup {
  return { name, vhid, iface: 'eth0', addresses: [address], advskew, preempt: true, ...(extra && { extra }) };
}

export function configYaml(
  groups: TestGroup[],
  opts: { socket: string; level?: string; metrics?: string; extraTop?: string } = { socket: '' },
): string {
  const lines = [
    `logging: { level: ${opts.level ?? 'info'}, facility: none }`,
    `control: { socket: ${opts.socket} }`,
  ];
  if (opts.metrics) lines.push(`metrics: { listen: "${opts.metrics}" }`);
  if (opts.extraTop) lines.push(opts.extraTop);
  lines.push('defaults:', '  password: s3cret', 'groups:');
  for (const g of groups) {
    lines.push(`  ${g.name}:`, `    vhid: ${g.vhid}`, `    interface: ${g.iface}`);
    lines.push(`    addresses: [${g.addresses.join(', ')}]`);
    if (g.advskew !== undefined) lines.push(`    advskew: ${g.advskew}`);
    if (g.preempt !== undefined) lines.push(`    preempt: ${g.preempt}`);
    if (g.password !== undefined) lines.push(`    password: ${g.password}`);
    for (const [k, v] of Object.entries(g.extra ?? {})) lines.push(`    ${k}: ${v}`);
  }
  return lines.join('\n') + '\n';
}

/** Writes atomically (temp file + rename), as careful editors and config managers do. */
export function writeByRename(file: string, text: string): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.tmp${process.pid}`);
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
}

export class SupervisorProc extends LabProcess {
  constructor(
    lab: Lab,
    host: Host,
    readonly file: string,
    /** The daemon's environment, e.g. with JOURNAL_STREAM set to log as under systemd. */
    env: NodeJS.ProcessEnv = process.env,
  ) {
    super(lab, host, process.execPath, [OUR_UCARP, '-c', file], { env });
  }

  /** The CARP state of a group as last logged. */
  state(group: string): string | undefined {
    let s: string | undefined;
    const re = new RegExp(`\\b${group.replace(/[.]/g, '\\.')} vhid \\d+ \\S+: Switching to state: (\\w+)`);
    for (const l of this.lines) {
      const m = re.exec(l);
      if (m) s = m[1];
    }
    return s;
  }

  /** Transition lines since `fromLine`, of one group or (group undefined) of all. */
  transitions(group: string | undefined, fromLine = 0): string[] {
    const name = group === undefined ? '\\S+' : group.replace(/[.]/g, '\\.');
    const re = new RegExp(`(^|\\s)${name} vhid \\d+ \\S+: Switching to state`);
    return this.lines.slice(fromLine).filter((l) => re.test(l));
  }

  async waitLine(re: RegExp, fromLine = 0, timeoutMs = 15000): Promise<string> {
    let found = '';
    await waitFor(
      () => {
        found = this.lines.slice(fromLine).find((l) => re.test(l)) ?? '';
        return found !== '' || this.exited;
      },
      timeoutMs,
      `a line matching ${re} on ${this.host.ns}; last lines:\n${this.lines.slice(-15).join('\n')}`,
    );
    if (!found) throw new Error(`daemon on ${this.host.ns} exited:\n${this.lines.slice(-30).join('\n')}`);
    return found;
  }

  signal(sig: NodeJS.Signals): void {
    this.child.kill(sig);
  }

  async exit(timeoutMs = 15000): Promise<void> {
    await waitFor(() => this.exited, timeoutMs, `daemon on ${this.host.ns} to exit`);
  }
}
