// The record of every virtual address this daemon has added to the kernel and not yet removed,
// kept in a file that outlives the process (the unit keeps its runtime directory across
// restarts, and /run empties at boot together with the kernel's addresses). Each address is
// in the file before it is added, so a daemon killed at any instant leaves nothing the next
// run does not know it added; the next run removes exactly those, and never an address an
// operator added by hand.
//
// The file is a journal: a snapshot line (`{"version":2,"addresses":[…]}`, the whole format of
// version 1) followed by one line per change (`{"add":{…}}`, `{"remove":{…}}`). A mass
// takeover adds thousands of addresses from one run of expiring timers, and their kernel
// requests go out 64 at a time while it runs: the lines recorded since the last write are
// appended synchronously by `sync()`, which the rtnetlink socket calls right before each
// datagram of changes leaves (and a microtask calls otherwise), so one small write() precedes
// each datagram, where rewriting the whole record cost a few milliseconds per turn. The journal
// is folded into a new snapshot (written aside and renamed) after the burst, once it has grown
// past twice the record.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { errorMessage } from '../errors';
import type { Logger } from '../util/log';

export interface RecordedAddress {
  ifname: string;
  address: string;
  prefixlen: number;
  /** The group that added it, for the log line that removes it. */
  group: string;
}

const FORMAT_VERSION = 2;
/** Journal lines past the snapshot before it is folded, at least. */
const COMPACT_MIN_LINES = 1024;

function key(a: Pick<RecordedAddress, 'ifname' | 'address' | 'prefixlen'>): string {
  return `${a.ifname} ${a.address}/${a.prefixlen}`;
}

/** One journal line; `null` when it is not one (a torn last line from a crash mid-append). */
function parseLine(
  line: string,
): { snapshot?: RecordedAddress[]; add?: RecordedAddress; remove?: RecordedAddress } | null {
  try {
    const doc = JSON.parse(line) as { addresses?: unknown; add?: RecordedAddress; remove?: RecordedAddress };
    if (Array.isArray(doc.addresses)) return { snapshot: doc.addresses as RecordedAddress[] };
    if (doc.add) return { add: doc.add };
    if (doc.remove) return { remove: doc.remove };
    return null;
  } catch {
    return null;
  }
}

export class AddressRecord {
  private readonly entries = new Map<string, RecordedAddress>();
  /** This run has written its snapshot: changes are appended to it. */
  private started = false;
  /** Lines appended since the snapshot. */
  private journal = 0;
  /** Lines recorded and not yet written. */
  private unwritten: string[] = [];
  private syncScheduled = false;
  private compactScheduled = false;
  /** A write failed and was logged: the next failures are not, until one succeeds. */
  private failing = false;

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
        this.log.warn(`cannot read the address record ${this.file}: ${errorMessage(e)}`);
      return [];
    }
    const lines = text.split('\n').filter((l) => l.length > 0);
    const found = new Map<string, RecordedAddress>();
    lines.forEach((line, i) => {
      const entry = parseLine(line);
      if (entry === null) {
        // Only the last line can be torn by a crash; its address was never added.
        if (i < lines.length - 1 || i === 0)
          this.log.warn(`ignoring line ${i + 1} of the unreadable address record ${this.file}`);
        return;
      }
      if (entry.snapshot) {
        found.clear();
        for (const a of entry.snapshot) found.set(key(a), a);
      } else if (entry.add) found.set(key(entry.add), entry.add);
      else if (entry.remove) found.delete(key(entry.remove));
    });
    for (const [k, a] of found) this.entries.set(k, a);
    return [...found.values()];
  }

  has(a: Pick<RecordedAddress, 'ifname' | 'address' | 'prefixlen'>): boolean {
    return this.entries.has(key(a));
  }

  /**
   * Records `a`. It is on disk after the next `sync()`, which must come before the kernel
   * add: the address changes' socket calls it before each datagram (net/rtnl.ts).
   */
  add(a: RecordedAddress): void {
    if (this.entries.has(key(a))) return;
    this.entries.set(key(a), a);
    this.append({ add: a });
  }

  /** Forgets `a` once the kernel no longer has it. */
  remove(a: Pick<RecordedAddress, 'ifname' | 'address' | 'prefixlen'>): void {
    const k = key(a);
    if (!this.entries.delete(k)) return;
    this.append({ remove: { ifname: a.ifname, address: a.address, prefixlen: a.prefixlen } });
  }

  /** Writes what is pending and folds the journal into a snapshot (the daemon is stopping). */
  close(): void {
    this.sync();
    if (!this.started || this.journal === 0) return;
    try {
      this.snapshot();
    } catch (e) {
      this.log.error(`cannot write the address record ${this.file}: ${errorMessage(e)}`);
    }
  }

  private append(change: object): void {
    if (this.file === null) return;
    this.unwritten.push(JSON.stringify(change) + '\n');
    if (this.syncScheduled) return;
    this.syncScheduled = true;
    queueMicrotask(() => this.sync());
  }

  /** Writes what was recorded since the last write: one write() however many lines. */
  sync(): void {
    this.syncScheduled = false;
    if (this.unwritten.length === 0) return;
    const lines = this.unwritten;
    this.unwritten = [];
    try {
      // The first change of a run writes the whole record, which includes these lines.
      // Opened for each write: a descriptor kept open would outlive `ucarpctl restart`'s
      // handover in no useful way, and a write is per datagram of 64 changes, not per change.
      if (!this.started) this.snapshot();
      else {
        fs.appendFileSync(this.file!, lines.length === 1 ? lines[0] : lines.join(''));
        this.journal += lines.length;
      }
      this.failing = false;
    } catch (e) {
      // Still add the address: a VIP missing on the master is worse than one the next run
      // might not know it added. The next change starts from a fresh snapshot.
      this.started = false;
      if (!this.failing) this.log.error(`cannot write the address record ${this.file}: ${errorMessage(e)}`);
      this.failing = true;
      return;
    }
    if (this.journal > Math.max(COMPACT_MIN_LINES, 2 * this.entries.size)) this.compactLater();
  }

  /** After the current burst: folding is a rewrite of the whole record. */
  private compactLater(): void {
    if (this.compactScheduled) return;
    this.compactScheduled = true;
    setImmediate(() => {
      this.compactScheduled = false;
      if (!this.started || this.journal <= Math.max(COMPACT_MIN_LINES, 2 * this.entries.size)) return;
      try {
        this.snapshot();
      } catch (e) {
        this.started = false;
        this.log.error(`cannot write the address record ${this.file}: ${errorMessage(e)}`);
      }
    });
  }

  /**
   * Writes every entry as the snapshot of a new file, renamed over the old one, and appends
   * to it from now on. Synchronous on purpose, as every write here: an asynchronous one takes
   * several round trips through the thread pool, each waiting for a turn of the event loop,
   * and in a mass takeover the turns are long.
   */
  private snapshot(): void {
    const file = this.file!;
    const doc = { version: FORMAT_VERSION, addresses: [...this.entries.values()] };
    const tmp = path.join(path.dirname(file), `.${path.basename(file)}.tmp`);
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o755 });
    fs.writeFileSync(tmp, JSON.stringify(doc) + '\n', { mode: 0o600 });
    fs.renameSync(tmp, file);
    this.started = true;
    this.journal = 0;
  }
}
