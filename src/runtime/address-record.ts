// The record of every virtual address this daemon has added to the kernel and not yet removed,
// kept in a file that outlives the process (the unit keeps its runtime directory across
// restarts, and /run empties at boot together with the kernel's addresses). Each address is
// in the file before it is added, so a daemon killed at any instant leaves nothing the next
// run does not know it added; the next run removes exactly those, and never an address an
// operator added by hand.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Logger } from '../util/log';

export interface RecordedAddress {
  ifname: string;
  address: string;
  prefixlen: number;
  /** The group that added it, for the log line that removes it. */
  group: string;
}

const FORMAT_VERSION = 1;

function key(a: Pick<RecordedAddress, 'ifname' | 'address' | 'prefixlen'>): string {
  return `${a.ifname} ${a.address}/${a.prefixlen}`;
}

export class AddressRecord {
  private readonly entries = new Map<string, RecordedAddress>();
  /** The write that will include every change made so far; shared by a burst of changes. */
  private pending: Promise<void> | null = null;
  private writing: Promise<void> = Promise.resolve();

  /** `file` null: nothing is persisted (ucarp mode, where scripts own the addresses). */
  constructor(
    readonly file: string | null,
    private readonly log: Logger,
  ) {}

  /** What an earlier run left in the file; a missing or unreadable file means nothing. */
  load(): RecordedAddress[] {
    if (this.file === null) return [];
    let text: string;
    try {
      text = fs.readFileSync(this.file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT')
        this.log.warn(`cannot read the address record ${this.file}: ${(e as Error).message}`);
      return [];
    }
    try {
      const doc = JSON.parse(text) as { version?: number; addresses?: RecordedAddress[] };
      const list = Array.isArray(doc.addresses) ? doc.addresses : [];
      for (const a of list) this.entries.set(key(a), a);
      return list;
    } catch (e) {
      this.log.warn(`ignoring the unreadable address record ${this.file}: ${(e as Error).message}`);
      return [];
    }
  }

  has(a: Pick<RecordedAddress, 'ifname' | 'address' | 'prefixlen'>): boolean {
    return this.entries.has(key(a));
  }

  /** Records `a`; resolves once it is on disk, which must happen before the kernel add. */
  add(a: RecordedAddress): Promise<void> {
    if (this.entries.has(key(a)) && this.pending === null) return this.writing;
    this.entries.set(key(a), a);
    return this.schedule();
  }

  /** Forgets `a` once the kernel no longer has it; the write is not waited for. */
  remove(a: Pick<RecordedAddress, 'ifname' | 'address' | 'prefixlen'>): void {
    if (!this.entries.delete(key(a))) return;
    void this.schedule();
  }

  /** Resolves when every change made so far is on disk. */
  flushed(): Promise<void> {
    return this.pending ?? this.writing;
  }

  /** One write per burst: every change made before it starts is in it. */
  private schedule(): Promise<void> {
    if (this.file === null) return Promise.resolve();
    if (this.pending) return this.pending;
    const file = this.file;
    const p = this.writing.then(
      () =>
        new Promise<void>((resolve) => {
          setImmediate(() => {
            this.pending = null;
            this.write(file);
            resolve();
          });
        }),
    );
    this.pending = p;
    this.writing = p;
    return p;
  }

  /**
   * Synchronous on purpose: an asynchronous write takes five round trips through the thread
   * pool (mkdir, open, write, close, rename), each waiting for a turn of the event loop, and in
   * a mass takeover the turns are long, busy with expiring timers; a few hundred KB to the
   * runtime directory is cheaper written at once.
   */
  private write(file: string): void {
    const doc = { version: FORMAT_VERSION, addresses: [...this.entries.values()] };
    const tmp = path.join(path.dirname(file), `.${path.basename(file)}.tmp`);
    try {
      fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o755 });
      fs.writeFileSync(tmp, JSON.stringify(doc) + '\n', { mode: 0o600 });
      fs.renameSync(tmp, file);
    } catch (e) {
      // Still add the address: a VIP missing on the master is worse than one the next run
      // might not know it added.
      this.log.error(`cannot write the address record ${file}: ${(e as Error).message}`);
    }
  }
}
