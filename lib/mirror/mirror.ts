// Desired state into maps, in an order the user declares so that a packet meets at every
// moment either the old state or the new one, never a mix that allows what neither does or
// points at what is not there. Each map the mirror owns is written in two steps: `put` (what
// is new or changed) and, later, `prune` (what is no longer wanted); a map others own (an
// endpoint table ADD and DEL write) may be rewritten in place between them (`patch`). The
// usual order: put what is pointed to, switch the pointers, prune what nothing points to.
// What is there comes from the record of the last mirror (by map id), else from the map.
import type { MapIO } from '../bpf/map-io.js';
import type { Entries, MirrorRecord, RecordedMap } from './record.js';

export type Step<N extends string> =
  | { put: N }
  | { prune: N }
  /** fn sees each entry of the map and returns its new value, or undefined to leave it. */
  | { patch: N; fn: (key: Buffer, value: Buffer) => Buffer | undefined };

export interface MapReport {
  /** Entries written because new or changed. */
  put: number;
  removed: number;
  /** Entries a patch step rewrote. */
  patched: number;
  /** Entries wanted (owned maps). */
  entries: number;
}

export interface ApplyOptions<N extends string> {
  /**
   * Keys of an owned map that other writers (ADD, DEL) change too: their recorded value is not
   * trusted, so they are written whatever the record says.
   */
  shared?: Partial<Record<N, Iterable<string>>>;
  /** Sees what is wanted and what is there before anything is written; throws to refuse. */
  gate?: (want: ReadonlyMap<N, Entries>, have: ReadonlyMap<N, Entries>) => void;
}

/** A state that cannot fit a map at its peak: refused before anything was written. */
export class MapFull extends Error {
  constructor(readonly map: string, readonly needed: number, readonly available: number) {
    super(`map ${map}: ${needed} entries needed at the peak of the swap, ${available} available: nothing written`);
  }
}

/**
 * The most entries a map holds while `want` replaces `have` put-then-prune: both, keys counted
 * once. One more when a kept key's value is rewritten in place: before Linux 6.13 an LPM trie
 * refuses even that once full.
 */
export function peakEntries(have: Entries, want: Entries): number {
  let both = have.size, rewrites = false;
  for (const [k, v] of want) {
    const h = have.get(k);
    if (!h) both++;
    else if (!h.equals(v)) rewrites = true;
  }
  return both + (rewrites ? 1 : 0);
}

function readAll(io: MapIO): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const k of io.keys()) {
    const v = io.lookup(k);
    if (v) out.set(k.toString('hex'), v);
  }
  return out;
}

/** One change of a delta: value absent deletes the key. */
export interface Op<N extends string> {
  map: N;
  key: Buffer;
  value?: Buffer;
}

export class Mirror<N extends string> {
  constructor(private readonly maps: ReadonlyMap<N, MapIO>, private readonly record: MirrorRecord) {}

  private io(name: N): MapIO {
    const io = this.maps.get(name);
    if (!io) throw new Error(`mirror: map ${name} not open`);
    return io;
  }

  /** Checks the order: every owned map put once and pruned once, after its put. Returns the owned maps. */
  private owned(order: readonly Step<N>[], want: ReadonlyMap<N, Entries>): N[] {
    const put = new Set<N>(), pruned = new Set<N>();
    for (const s of order) {
      if ('put' in s) {
        if (put.has(s.put)) throw new Error(`mirror order: map ${s.put} put twice`);
        put.add(s.put);
      } else if ('prune' in s) {
        if (!put.has(s.prune) || pruned.has(s.prune)) throw new Error(`mirror order: map ${s.prune} pruned before its put or twice`);
        pruned.add(s.prune);
      }
    }
    for (const n of put) if (!pruned.has(n)) throw new Error(`mirror order: map ${n} put but never pruned`);
    for (const n of want.keys()) if (!put.has(n)) throw new Error(`mirror order: map ${n} wanted but not in the order`);
    return [...put];
  }

  /**
   * Brings the owned maps to `want` in the declared order and records what they hold. Refused
   * before the first write (gate, or a map too small for old and new together): the maps and
   * the record stay as they were.
   */
  apply(order: readonly Step<N>[], want: ReadonlyMap<N, Entries>, opts: ApplyOptions<N> = {}): Map<N, MapReport> {
    const owned = this.owned(order, want);
    const have = new Map<N, Map<string, Buffer>>();
    for (const n of owned) {
      const io = this.io(n);
      const recorded = this.record.read(io);
      if (recorded) for (const k of opts.shared?.[n] ?? []) recorded.delete(k);
      have.set(n, recorded ?? readAll(io));
    }
    const wanted = (n: N): Entries => want.get(n) ?? new Map();
    opts.gate?.(new Map(owned.map((n) => [n, wanted(n)])), have);
    for (const n of owned) {
      const io = this.io(n);
      const needed = peakEntries(have.get(n)!, wanted(n));
      if (needed > io.maxEntries) throw new MapFull(io.name, needed, io.maxEntries);
    }
    const report = new Map<N, MapReport>();
    const rep = (n: N): MapReport => {
      let r = report.get(n);
      if (!r) report.set(n, (r = { put: 0, removed: 0, patched: 0, entries: owned.includes(n) ? wanted(n).size : 0 }));
      return r;
    };
    for (const n of owned) rep(n);
    this.record.forget();
    for (const s of order) {
      if ('put' in s) {
        const io = this.io(s.put), h = have.get(s.put)!, r = rep(s.put);
        for (const [k, v] of wanted(s.put)) {
          if (h.get(k)?.equals(v)) continue;
          io.update(Buffer.from(k, 'hex'), v);
          r.put++;
        }
      } else if ('prune' in s) {
        const io = this.io(s.prune), w = wanted(s.prune), r = rep(s.prune);
        for (const k of have.get(s.prune)!.keys()) {
          if (w.has(k)) continue;
          io.delete(Buffer.from(k, 'hex'));
          r.removed++;
        }
      } else {
        const io = this.io(s.patch), r = rep(s.patch);
        for (const k of io.keys()) {
          const v = io.lookup(k);
          if (!v) continue;
          const next = s.fn(k, v);
          if (!next || next.equals(v)) continue;
          io.update(k, next);
          r.patched++;
        }
      }
    }
    const rec = new Map<string, RecordedMap>();
    for (const n of owned) {
      const io = this.io(n);
      rec.set(n, { id: io.id, keySize: io.keySize, valueSize: io.valueSize, entries: wanted(n) });
    }
    this.record.write(rec);
    return report;
  }

  /**
   * Writes changes in the order given, outside a full apply (one object of many changed): the
   * record no longer describes the maps, so it is forgotten first and the next apply reads the
   * maps back. Returns the entries written or deleted.
   */
  write(ops: Iterable<Op<N>>): number {
    this.record.forget();
    let n = 0;
    for (const op of ops) {
      const io = this.io(op.map);
      if (op.value) {
        io.update(op.key, op.value);
        n++;
      } else if (io.delete(op.key)) n++;
    }
    return n;
  }
}
