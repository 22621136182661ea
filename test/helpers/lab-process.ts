// A process started inside a Lab host with its output collected line by line: the base of
// the daemons and peers the integration tests run (ours, Debian's ucarp, keepalived).
import type { ChildProcess, SpawnOptions } from 'node:child_process';
import type { Readable } from 'node:stream';
import type { Lab, Host } from './netns';

/**
 * Calls `onLine` with each complete line a stream writes, without its newline. One buffer per
 * stream, so that a line half-written on stdout is never joined to one from stderr.
 */
export function readLines(stream: Readable | null | undefined, onLine: (line: string) => void): void {
  let buf = '';
  stream?.on('data', (d: Buffer) => {
    buf += d.toString();
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      onLine(line);
    }
  });
}

export class LabProcess {
  readonly child: ChildProcess;
  /** Every line of stdout and stderr, in the order they arrived. */
  readonly lines: string[] = [];
  exited = false;

  constructor(
    readonly lab: Lab,
    readonly host: Host,
    cmd: string,
    args: string[],
    opts?: SpawnOptions,
  ) {
    this.child = lab.spawn(host, cmd, args, opts);
    const onLine = (line: string) => {
      this.lines.push(line);
      this.onLine(line);
    };
    readLines(this.child.stdout, onLine);
    readLines(this.child.stderr, onLine);
    this.child.on('exit', () => (this.exited = true));
  }

  /** For subclasses that follow a state in the log; called after the line is in `lines`. */
  protected onLine(_line: string): void {}
}
