// Groups of one interface by (destination, vhid, protocol): what a received advertisement is
// for. An interface has few destinations (CARP's or VRRP's multicast group, a few more, its own
// address for unicast peers), so the table is a short list of destinations, each with an array
// indexed by vhid and protocol. A packet costs a scan of that list and an index, where a Map
// keyed by the three hashed a number above 2^31 (a heap number) per packet (issue 11,
// docs/performance.md "One hidden class per kind of object").
import { VRRP_VERSION } from '../protocol/vrrp';

/** Slots per destination: vhids 0..255, each for CARP and for VRRP. */
const SLOTS = 512;

function slot(vhid: number, version: number): number {
  return vhid * 2 + (version === VRRP_VERSION ? 1 : 0);
}

export class DemuxTable<K extends number | string, G> {
  private readonly dsts: K[] = [];
  private readonly tables: (G | undefined)[][] = [];
  private count = 0;

  get size(): number {
    return this.count;
  }

  get(dst: K, vhid: number, version: number): G | undefined {
    const d = this.dsts;
    for (let i = 0; i < d.length; i++) if (d[i] === dst) return this.tables[i][slot(vhid, version)];
    return undefined;
  }

  set(dst: K, vhid: number, version: number, g: G): void {
    let i = this.dsts.indexOf(dst);
    if (i < 0) {
      i = this.dsts.length;
      this.dsts.push(dst);
      this.tables.push(new Array<G | undefined>(SLOTS).fill(undefined));
    }
    const t = this.tables[i];
    if (t[slot(vhid, version)] === undefined) this.count++;
    t[slot(vhid, version)] = g;
  }

  delete(dst: K, vhid: number, version: number): void {
    const i = this.dsts.indexOf(dst);
    if (i < 0) return;
    const t = this.tables[i];
    if (t[slot(vhid, version)] === undefined) return;
    t[slot(vhid, version)] = undefined;
    this.count--;
    // A destination no group uses any more leaves the list the packets scan.
    if (t.every((g) => g === undefined)) {
      this.dsts.splice(i, 1);
      this.tables.splice(i, 1);
    }
  }

  *values(): IterableIterator<G> {
    for (const t of this.tables) for (const g of t) if (g !== undefined) yield g;
  }
}
