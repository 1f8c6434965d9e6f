// Backend ids and slot ranges for the Service maps, so that an update never makes a Service
// look empty or point at a removed backend: a frontend's backend ids live in one contiguous
// range of the slot array; a change writes the new list into a fresh range and the frontend
// switches to it in one write; the old range (and the ids only it named) are reused only after
// the caller says a later round has begun (`release`), when no reader can still be in them.
// Ranges are buddy blocks (power-of-two sizes, aligned), so a restarted sync can rebuild the
// allocator from what the maps hold (`adopt`) and rewrite nothing that is unchanged. Pure.
import type { Protocol } from '../policy/objects.js';

export interface BackendRef {
  /** Canonical text (formatAddr), so the same endpoint always has the same key. */
  address: string;
  port: number;
  protocol: Protocol;
  /** The Service (port) the backend serves, when ids are per Service: the same endpoint in two Services has two ids. */
  service?: number;
}

/** Where a frontend's backend ids are: ready in base..base+count-1, terminating right after. */
export interface Placement {
  base: number;
  count: number;
  term: number;
  /** The range's size: a power of two (0 for a frontend without backends), base a multiple of it. */
  cap: number;
}

export interface PlacedFrontend extends Placement {
  /** The ids in the range: ready ones, then terminating ones. */
  ids: number[];
}

export interface WantedFrontend {
  ready: readonly BackendRef[];
  terminating: readonly BackendRef[];
}

/** What one round asks the caller to write, in this order. */
export interface SlotRound {
  generation: number;
  /** 1. Backends to write (new ids, or ids that came back before their release): before any slot names them. */
  newBackends: { id: number; backend: BackendRef }[];
  /** 2. Fresh ranges to fill with ids, before any frontend points at them. */
  writes: { base: number; ids: number[] }[];
  /** 3. Frontends whose value changes: one write each, switching to the new placement. */
  switched: { key: string; placement: Placement }[];
  /** 4. Frontends no longer wanted: delete them. */
  goneFrontends: string[];
  /** 5. Backends no frontend names any more: mark them invalid, delete them; their ids come back after release(generation). */
  goneBackends: number[];
}

/** What the maps hold, read back at start. */
export interface HeldState {
  frontends: Iterable<[string, Placement]>;
  /** The id in a slot of the slot array. */
  slot: (index: number) => number;
  backends: Iterable<[number, BackendRef]>;
}

export class SlotsFull extends Error {
  constructor(readonly map: 'slots' | 'backends', readonly needed: number, readonly available: number, detail: string) {
    super(`${map === 'slots' ? 'backend slot array' : 'backend table'} full: ${needed} ${map === 'slots' ? 'slots' : 'ids'} needed for this update (${detail}), ${available} free; nothing changed`);
  }
}

export const backendKey = (b: BackendRef): string => (b.service === undefined ? `${b.address}|${b.port}|${b.protocol}` : `${b.service}|${b.address}|${b.port}|${b.protocol}`);

const orderOf = (n: number): number => (n <= 1 ? 0 : 32 - Math.clz32(n - 1));

/** A buddy allocator over [0, size): free blocks by order, coalesced eagerly, so its state is a function of what is allocated. */
class Buddy {
  private readonly free: Set<number>[] = [];
  freeSlots = 0;

  constructor(readonly size: number) {
    for (let base = 0; base < size; ) {
      let o = 0;
      while (base % (2 << o) === 0 && base + (2 << o) <= size) o++;
      this.put(base, o);
      base += 1 << o;
    }
    this.freeSlots = size;
  }

  private list(o: number): Set<number> {
    while (this.free.length <= o) this.free.push(new Set());
    return this.free[o]!;
  }

  private put(base: number, o: number): void {
    this.list(o).add(base);
  }

  alloc(n: number): number | undefined {
    const want = orderOf(n);
    for (let o = want; o < this.free.length; o++) {
      const l = this.free[o]!;
      if (l.size === 0) continue;
      let base = Infinity;
      for (const b of l) if (b < base) base = b;
      l.delete(base);
      // Split down; the upper halves stay free.
      while (o > want) {
        o--;
        this.put(base + (1 << o), o);
      }
      this.freeSlots -= 1 << want;
      return base;
    }
    return undefined;
  }

  release(base: number, cap: number): void {
    let o = orderOf(cap);
    this.freeSlots += 1 << o;
    while (true) {
      const buddy = base ^ (1 << o);
      const l = this.list(o);
      if (!l.has(buddy)) break;
      l.delete(buddy);
      base = Math.min(base, buddy);
      o++;
    }
    this.put(base, o);
  }

  /** Take exactly [base, base+cap) if it is free (adoption); false when it is not. */
  carve(base: number, cap: number): boolean {
    const want = orderOf(cap);
    for (let o = want; o < this.free.length; o++) {
      const b = base - (base % (1 << o));
      if (!this.free[o]!.has(b)) continue;
      this.free[o]!.delete(b);
      let at = b;
      while (o > want) {
        o--;
        const half = 1 << o;
        if (base >= at + half) {
          this.put(at, o);
          at += half;
        } else this.put(at + half, o);
      }
      this.freeSlots -= cap;
      return true;
    }
    return false;
  }

  largest(): number {
    for (let o = this.free.length - 1; o >= 0; o--) if (this.free[o]!.size) return 1 << o;
    return 0;
  }
}

export class SlotAllocator {
  private readonly buddy: Buddy;
  private readonly ids = new Map<string, number>();
  private readonly refs = new Map<number, BackendRef>();
  /** Ids never used, from the top, and ids released (reused first). */
  private nextId = 1;
  private readonly freeIds: number[] = [];
  private readonly placed = new Map<string, PlacedFrontend & { stale?: boolean }>();
  /** Ranges and ids retired by a round, reused once that round is released. */
  private readonly retired = new Map<number, { ranges: [number, number][]; ids: number[] }>();
  /** Retired ids by backend key until their release: a backend that comes back first gets its id back. */
  private readonly pending = new Map<string, { id: number; gen: number }>();
  /** Ids in the backend table that nothing names (found at adoption): reported gone by the next round. */
  private orphans: number[] = [];
  /** How many slots of live placements name each id: an id at 0 after a round is gone. */
  private readonly refcount = new Map<number, number>();
  private generation = 0;

  /** slots: the slot array's length; backends: the backend table's (id 0 is never used). */
  constructor(readonly size: { slots: number; backends: number }) {
    this.buddy = new Buddy(size.slots);
  }

  /**
   * The allocator as the maps left it: ids from the backend table, ranges from the frontends.
   * A frontend whose range is not a valid block, overlaps another or names an unknown id is kept
   * as stale (the next round rewrites or deletes it); a duplicate id of one backend is an orphan.
   */
  static adopt(size: { slots: number; backends: number }, held: HeldState): SlotAllocator {
    const a = new SlotAllocator(size);
    const used = new Set<number>();
    for (const [id, b] of held.backends) {
      if (id < 1 || id >= size.backends || used.has(id)) continue;
      used.add(id);
      const k = backendKey(b);
      if (a.ids.has(k)) {
        a.orphans.push(id);
        continue;
      }
      a.ids.set(k, id);
      a.refs.set(id, b);
    }
    let top = 0;
    for (const id of used) if (id > top) top = id;
    a.nextId = top + 1;
    for (let id = 1; id < a.nextId; id++) if (!used.has(id)) a.freeIds.push(id);
    a.freeIds.reverse();
    const stale = (key: string): void => void a.placed.set(key, { base: 0, count: 0, term: 0, cap: 0, ids: [], stale: true });
    for (const [key, p] of held.frontends) {
      const n = p.count + p.term;
      const okShape = p.cap === 0 ? n === 0 : p.cap > 0 && (p.cap & (p.cap - 1)) === 0 && n <= p.cap && p.base % p.cap === 0 && p.base + p.cap <= size.slots;
      if (!okShape) { stale(key); continue; }
      const ids: number[] = [];
      for (let i = 0; i < n; i++) ids.push(held.slot(p.base + i));
      if (!ids.every((id) => a.refs.has(id)) || (p.cap > 0 && !a.buddy.carve(p.base, p.cap))) { stale(key); continue; }
      a.placed.set(key, { base: p.cap ? p.base : 0, count: p.count, term: p.term, cap: p.cap, ids });
      for (const id of ids) a.refcount.set(id, (a.refcount.get(id) ?? 0) + 1);
    }
    // In the table but named by no frontend (a sync that died before deleting it): gone next round unless wanted again.
    for (const id of a.refs.keys()) if (!a.refcount.has(id)) a.orphans.push(id);
    return a;
  }

  /** Every wanted frontend (the others go): the ids and placements they need; throws SlotsFull with nothing changed. */
  plan(want: ReadonlyMap<string, WantedFrontend>): SlotRound {
    const changes = new Map<string, WantedFrontend | undefined>(want);
    for (const k of this.placed.keys()) if (!want.has(k)) changes.set(k, undefined);
    return this.update(changes);
  }

  /**
   * Only the frontends named (undefined: the frontend goes; the others stay as they are), so a
   * change costs what it touches; throws SlotsFull with nothing changed.
   */
  update(changes: ReadonlyMap<string, WantedFrontend | undefined>): SlotRound {
    const gen = this.generation + 1;
    const undo: (() => void)[] = [];
    const round: SlotRound = { generation: gen, newBackends: [], writes: [], switched: [], goneFrontends: [], goneBackends: [] };
    const freeBefore = this.buddy.freeSlots;
    const idOf = (b: BackendRef): number => {
      const k = backendKey(b);
      let id = this.ids.get(k);
      if (id !== undefined) return id;
      const back = this.pending.get(k);
      if (back) {
        // Retired by an earlier round, not yet released, and wanted again: the same id comes back (its entry is rewritten valid).
        const r = this.retired.get(back.gen)!;
        const at = r.ids.indexOf(back.id);
        r.ids.splice(at, 1);
        this.pending.delete(k);
        this.ids.set(k, back.id);
        undo.push(() => {
          this.ids.delete(k);
          this.pending.set(k, back);
          r.ids.splice(at, 0, back.id);
        });
        round.newBackends.push({ id: back.id, backend: this.refs.get(back.id)! });
        return back.id;
      }
      id = this.freeIds.pop() ?? (this.nextId < this.size.backends ? this.nextId++ : undefined);
      if (id === undefined) throw new SlotsFull('backends', 1, 0, `backend ${k} has no id left of ${this.size.backends - 1}`);
      const got = id;
      this.ids.set(k, got);
      this.refs.set(got, b);
      undo.push(() => {
        this.ids.delete(k);
        this.refs.delete(got);
        if (got === this.nextId - 1) this.nextId--;
        else this.freeIds.push(got);
      });
      round.newBackends.push({ id: got, backend: b });
      return got;
    };
    const fresh: [string, PlacedFrontend][] = [];
    try {
      let need = 0;
      const failed: string[] = [];
      for (const [key, w] of changes) {
        if (!w) continue;
        const ids = [...w.ready.map(idOf), ...w.terminating.map(idOf)];
        const cur = this.placed.get(key);
        if (cur && !cur.stale && cur.count === w.ready.length && cur.term === w.terminating.length && cur.ids.every((id, i) => id === ids[i])) continue;
        let base = 0, cap = 0;
        if (ids.length > 0) {
          cap = 1 << orderOf(ids.length);
          const got = this.buddy.alloc(cap);
          need += cap;
          if (got === undefined) {
            failed.push(`${key}: ${ids.length} backends`);
            continue;
          }
          base = got;
          undo.push(() => this.buddy.release(got, cap));
        }
        fresh.push([key, { base, count: w.ready.length, term: w.terminating.length, cap, ids }]);
      }
      if (failed.length) throw new SlotsFull('slots', need, freeBefore, `${fresh.length + failed.length} frontends change; no free range for ${failed.slice(0, 3).join(', ')}${failed.length > 3 ? ', ...' : ''}; largest free range ${this.buddy.largest()}`);
    } catch (e) {
      for (const u of undo.reverse()) u();
      throw e;
    }

    // Committed from here: nothing below can fail.
    const retire: { ranges: [number, number][]; ids: number[] } = { ranges: [], ids: [] };
    const dropped = new Set<number>(this.orphans);
    const unref = (p: PlacedFrontend): void => {
      if (p.cap > 0) retire.ranges.push([p.base, p.cap]);
      for (const id of p.ids) {
        this.refcount.set(id, this.refcount.get(id)! - 1);
        dropped.add(id);
      }
    };
    for (const [key, p] of fresh) {
      const old = this.placed.get(key);
      if (old) unref(old);
      for (const id of p.ids) this.refcount.set(id, (this.refcount.get(id) ?? 0) + 1);
      this.placed.set(key, p);
      if (p.ids.length) round.writes.push({ base: p.base, ids: p.ids });
      round.switched.push({ key, placement: { base: p.base, count: p.count, term: p.term, cap: p.cap } });
    }
    for (const [key, w] of changes) {
      const old = w ? undefined : this.placed.get(key);
      if (!old) continue;
      unref(old);
      this.placed.delete(key);
      round.goneFrontends.push(key);
    }
    for (const id of dropped) {
      if ((this.refcount.get(id) ?? 0) > 0) continue;
      this.refcount.delete(id);
      const b = this.refs.get(id);
      if (b && this.ids.get(backendKey(b)) === id) {
        this.ids.delete(backendKey(b));
        this.pending.set(backendKey(b), { id, gen });
      }
      retire.ids.push(id);
      round.goneBackends.push(id);
    }
    this.orphans = [];
    round.newBackends.sort((a, b) => a.id - b.id);
    round.goneBackends.sort((a, b) => a - b);
    round.goneFrontends.sort();
    this.retired.set(gen, retire);
    this.generation = gen;
    return round;
  }

  /** Rounds up to `generation` are written and no reader can still be in what they retired: reuse it. */
  release(generation: number): void {
    for (const [g, r] of [...this.retired]) {
      if (g > generation) continue;
      for (const [base, cap] of r.ranges) this.buddy.release(base, cap);
      for (const id of r.ids) {
        const b = this.refs.get(id);
        if (b && this.pending.get(backendKey(b))?.id === id) this.pending.delete(backendKey(b));
        this.refs.delete(id);
        this.freeIds.push(id);
      }
      this.retired.delete(g);
    }
  }

  placement(key: string): PlacedFrontend | undefined {
    const p = this.placed.get(key);
    return p && !p.stale ? { base: p.base, count: p.count, term: p.term, cap: p.cap, ids: [...p.ids] } : undefined;
  }

  /** A placed frontend's ids, not copied (the caller does not change them). */
  idsOf(key: string): readonly number[] | undefined {
    const p = this.placed.get(key);
    return p && !p.stale ? p.ids : undefined;
  }

  backendId(b: BackendRef): number | undefined {
    return this.ids.get(backendKey(b));
  }

  backend(id: number): BackendRef | undefined {
    return this.refs.get(id);
  }

  stats(): { freeSlots: number; largestFree: number; backends: number; retiredRounds: number } {
    return { freeSlots: this.buddy.freeSlots, largestFree: this.buddy.largest(), backends: this.ids.size, retiredRounds: this.retired.size };
  }
}
