// One script check: the program run without a shell through src/hooks/run-process.ts (so it is
// timed out and killed with its whole process tree exactly like an up/down script), reduced to
// what a tracker keeps of it: the result and the last line it printed.

import { StringDecoder } from 'node:string_decoder';
import type { Clock } from '../runtime/clock';
import { runProcess, type ProcessResult } from '../hooks/run-process';

/** What a tracker shows of a check's output (TrackerState.lastOutput). */
export const OUTPUT_CHARS = 200;
// A line longer than this is cut before it is trimmed: a check that prints megabytes without a
// newline must not make us hold megabytes.
const LINE_CAP = 4096;

export interface CheckSpec {
  argv: readonly string[];
  timeoutMs: number;
  clock: Clock;
  onKillError: (err: Error) => void;
}

export interface CheckResult extends ProcessResult {
  /** The last non-blank line of stdout and stderr, trimmed, at most OUTPUT_CHARS characters. */
  output: string;
}

export interface RunningCheck {
  /** Never rejects. */
  readonly done: Promise<CheckResult>;
  /** Kills the check's process tree; resolves once `done` has settled. */
  kill(): Promise<void>;
}

/** The seam through which a TrackerSet runs script checks (tests inject a fake). */
export type CheckRunner = (spec: CheckSpec) => RunningCheck;

/** Cuts a trimmed line to OUTPUT_CHARS characters without splitting a surrogate pair. */
export function clip(text: string): string {
  const t = text.trim();
  return t.length <= OUTPUT_CHARS ? t : [...t].slice(0, OUTPUT_CHARS).join('');
}

/**
 * The last non-blank line written to any of several streams, in the order the chunks arrived.
 * Only the line being written and the last finished one are kept, whatever the output's size.
 */
export class LastLine {
  private readonly streams: { decoder: StringDecoder; partial: string; partialTick: number }[] = [];
  private last = '';
  private lastTick = -1;
  private tick = 0;

  push(stream: number, chunk: Buffer): void {
    let s = this.streams[stream];
    if (s === undefined) {
      s = { decoder: new StringDecoder('utf8'), partial: '', partialTick: -1 };
      this.streams[stream] = s;
    }
    this.add(s, s.decoder.write(chunk));
  }

  /** The line, once every stream has ended (a last line without newline counts too). */
  text(): string {
    let best = { tick: this.lastTick, line: this.last };
    for (const s of this.streams) {
      if (s === undefined) continue;
      this.add(s, s.decoder.end());
      // >=: a chunk's unfinished line comes after the lines it finished.
      if (s.partialTick >= best.tick && s.partialTick >= 0) best = { tick: s.partialTick, line: s.partial };
    }
    return clip(best.line);
  }

  private add(s: { partial: string; partialTick: number }, text: string): void {
    if (text === '') return;
    const tick = ++this.tick;
    const pieces = text.split('\n');
    for (let i = 0; i < pieces.length; i++) {
      const line = (i === 0 ? s.partial + pieces[i] : pieces[i]).slice(0, LINE_CAP);
      if (i < pieces.length - 1) {
        if (line.trim() !== '') {
          this.last = line;
          this.lastTick = tick;
        }
      } else {
        s.partial = line;
      }
    }
    s.partialTick = s.partial.trim() === '' ? -1 : tick;
  }
}

/** Runs argv[0] with argv[1..] as a child process, never through a shell. */
export const processCheckRunner: CheckRunner = (spec) => {
  const out = new LastLine();
  const proc = runProcess({
    file: spec.argv[0] ?? '',
    args: spec.argv.slice(1),
    timeoutMs: spec.timeoutMs,
    clock: spec.clock,
    onStdout: (chunk) => out.push(0, chunk),
    onStderr: (chunk) => out.push(1, chunk),
    onKillError: spec.onKillError,
  });
  return {
    done: proc.done.then((r) => ({ ...r, output: out.text() })),
    kill: () => proc.abort(),
  };
};
