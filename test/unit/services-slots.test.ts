// The backend-slot allocator (lib/services/slots.ts): rounds are applied to in-memory copies
// of the three maps one write at a time, in the order a round prescribes, and after every
// single write a reader looks at every frontend: it must never find a removed backend in a
// frontend's range, a Service that had backends before and after must never look empty, and
// no write may land in a range a frontend points at or pointed at before the last release.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SlotAllocator, SlotsFull, type BackendRef, type Placement, type SlotRound, type WantedFrontend } from '../../lib/services/slots.js';

const be = (n: number, port = 8080): BackendRef => ({ address: `10.0.${n >> 8}.${n & 255}`, port, protocol: 'TCP' });
const want = (entries: [string, number[], number[]?][]): Map<string, WantedFrontend> =>
  new Map(entries.map(([k, r, t]) => [k, { ready: r.map((n) => be(n)), terminating: (t ?? []).map((n) => be(n)) }]));

class Maps {
  readonly backends = new Map<number, { ref: BackendRef; valid: boolean }>();
  readonly slots: Int32Array;
  readonly fe = new Map<string, Placement>();
  /** Ranges a reader may still be in: live ones are read from fe; retired ones until released. */
  private readonly retired = new Map<number, [number, number][]>();
  /** What a reader still in a retired range could pick: its ids and the backends they named then. */
  private readonly inFlight = new Map<number, [number, BackendRef][]>();
  checks = 0;

  constructor(size: number) {
    this.slots = new Int32Array(size);
  }

  private inUse(): [number, number][] {
    const out: [number, number][] = [...this.fe.values()].filter((p) => p.cap > 0).map((p) => [p.base, p.cap]);
    for (const r of this.retired.values()) out.push(...r);
    return out;
  }

  /** What a reader sees now: every frontend's backends valid, and the same refs as the frontend was placed with. */
  private check(nonEmpty: Set<string>): void {
    this.checks++;
    for (const l of this.inFlight.values()) {
      for (const [id, ref] of l) {
        const b = this.backends.get(id);
        assert.ok(!b || !b.valid || (b.ref.address === ref.address && b.ref.port === ref.port), `backend id ${id}, still in a retired range, now names another backend before its release`);
      }
    }
    for (const [k, p] of this.fe) {
      const n = p.count + p.term;
      if (nonEmpty.has(k)) assert.ok(n > 0, `${k} looks empty mid-update`);
      for (let i = 0; i < n; i++) {
        const id = this.slots[p.base + i]!;
        const b = this.backends.get(id);
        assert.ok(b && b.valid, `${k} slot ${p.base + i} names backend ${id}, which is ${b ? 'invalid' : 'absent'}`);
      }
    }
  }

  apply(r: SlotRound, before: Map<string, WantedFrontend> | undefined, after: Map<string, WantedFrontend>): void {
    const stays = new Set<string>();
    const size = (w: WantedFrontend | undefined): number => (w ? w.ready.length + w.terminating.length : 0);
    for (const [k, w] of after) if (size(w) > 0 && size(before?.get(k)) > 0) stays.add(k);
    for (const { id, backend } of r.newBackends) {
      this.backends.set(id, { ref: backend, valid: true });
      this.check(stays);
    }
    const busy = this.inUse();
    for (const w of r.writes) {
      w.ids.forEach((id, i) => {
        const at = w.base + i;
        for (const [b, c] of busy) assert.ok(at < b || at >= b + c, `slot ${at} written while in range ${b}+${c} that a reader may be in`);
        this.slots[at] = id;
        this.check(stays);
      });
    }
    const gone: [number, number][] = [];
    const flight: [number, BackendRef][] = [];
    const note = (p: Placement): void => {
      for (let i = 0; i < p.count + p.term; i++) flight.push([this.slots[p.base + i]!, this.backends.get(this.slots[p.base + i]!)!.ref]);
    };
    for (const { key, placement } of r.switched) {
      const old = this.fe.get(key);
      if (old && old.cap) {
        gone.push([old.base, old.cap]);
        note(old);
      }
      this.fe.set(key, placement);
      this.check(stays);
    }
    for (const k of r.goneFrontends) {
      const old = this.fe.get(k)!;
      if (old.cap) {
        gone.push([old.base, old.cap]);
        note(old);
      }
      this.fe.delete(k);
      this.check(stays);
    }
    for (const id of r.goneBackends) {
      this.backends.get(id)!.valid = false;
      this.check(stays);
    }
    this.retired.set(r.generation, gone);
    this.inFlight.set(r.generation, flight);
    // What is wanted is what a reader finds.
    for (const [k, w] of after) {
      const p = this.fe.get(k)!;
      const ids = Array.from(this.slots.subarray(p.base, p.base + p.count + p.term));
      assert.deepEqual(ids.map((id) => this.backends.get(id)!.ref), [...w.ready, ...w.terminating], k);
      assert.equal(p.count, w.ready.length);
    }
    assert.deepEqual([...this.fe.keys()].sort(), [...after.keys()].sort());
  }

  release(a: SlotAllocator, generation: number): void {
    a.release(generation);
    for (const g of [...this.retired.keys()]) if (g <= generation) this.retired.delete(g);
    for (const g of [...this.inFlight.keys()]) if (g <= generation) this.inFlight.delete(g);
    for (const [id, b] of this.backends) if (!b.valid) this.backends.delete(id);
  }

  /** A restart takes far longer than a reader's grace period: whatever a dead sync retired is free. */
  restarted(): void {
    this.retired.clear();
    this.inFlight.clear();
  }

  held(): { frontends: Iterable<[string, Placement]>; slot: (i: number) => number; backends: Iterable<[number, BackendRef]> } {
    return { frontends: [...this.fe], slot: (i) => this.slots[i]!, backends: [...this.backends].filter(([, b]) => b.valid).map(([id, b]) => [id, b.ref] as [number, BackendRef]) };
  }
}

function mulberry32(seed: number): () => number {
  return () => {
    seed |= 0;
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('services: backend slots', () => {
  it('ids are stable per (address, port, protocol) and shared; unchanged frontends keep their range and are not written', () => {
    const a = new SlotAllocator({ slots: 64, backends: 32 });
    const m = new Maps(64);
    const w1 = want([['fa', [1, 2, 3]], ['fb', [3, 4]]]);
    const r1 = a.plan(w1);
    m.apply(r1, undefined, w1);
    assert.deepEqual(r1.newBackends.map((n) => n.id), [1, 2, 3, 4]);
    assert.equal(a.backendId(be(3)), a.placement('fb')!.ids[0], 'one id for a backend in two frontends');
    const fa = a.placement('fa')!;
    m.release(a, r1.generation);

    const w2 = want([['fa', [1, 2, 3]], ['fb', [3, 4, 5]]]);
    const r2 = a.plan(w2);
    m.apply(r2, w1, w2);
    assert.deepEqual(r2.switched.map((s) => s.key), ['fb']);
    assert.deepEqual(r2.writes.length, 1);
    assert.deepEqual(a.placement('fa'), fa, 'fa untouched');
    assert.deepEqual([1, 2, 3, 4].map((n) => a.backendId(be(n))), [1, 2, 3, 4]);
    assert.notEqual(a.backendId(be(5, 8080)), a.backendId(be(5, 8081)) ?? -1);

    const same = a.plan(w2);
    assert.deepEqual({ ...same, generation: 0 }, { generation: 0, newBackends: [], writes: [], switched: [], goneFrontends: [], goneBackends: [] }, 'the same want writes nothing');
  });

  it('a change never writes in place: a removed backend is never in the range a frontend points at, and the old range waits for release', () => {
    const a = new SlotAllocator({ slots: 16, backends: 16 });
    const m = new Maps(16);
    const w1 = want([['f', [1, 2, 3, 4]]]);
    const r1 = a.plan(w1);
    m.apply(r1, undefined, w1);
    const first = a.placement('f')!;
    const w2 = want([['f', [1, 2, 3]]]);
    const r2 = a.plan(w2);
    m.apply(r2, w1, w2);
    assert.deepEqual(r2.goneBackends, [a.backendId(be(1))! + 3], 'backend 4 is gone');
    const second = a.placement('f')!;
    assert.notEqual(second.base, first.base);
    // Not released: the next change may not reuse the first range.
    const w3 = want([['f', [1, 2]]]);
    const r3 = a.plan(w3);
    m.apply(r3, w2, w3);
    assert.ok(![first.base, second.base].includes(a.placement('f')!.base));
    assert.equal(a.stats().freeSlots, 16 - 4 - 4 - 2);
    m.release(a, r3.generation);
    assert.equal(a.stats().freeSlots, 16 - 2, 'released: only the live range is held');
  });

  it('a backend that comes back before its id is released gets the same id; after the release the id may go to another', () => {
    const a = new SlotAllocator({ slots: 32, backends: 8 });
    const w1 = want([['f', [1, 2]]]);
    a.plan(w1);
    const id2 = a.backendId(be(2))!;
    const r2 = a.plan(want([['f', [1]]]));
    assert.deepEqual(r2.goneBackends, [id2]);
    const r3 = a.plan(want([['f', [1, 2]]]));
    assert.deepEqual(r3.newBackends, [{ id: id2, backend: be(2) }], 'rewritten valid under its old id');
    assert.equal(a.backendId(be(2)), id2);
    const r4 = a.plan(want([['f', [1]]]));
    a.release(r4.generation);
    a.plan(want([['f', [1, 7]]]));
    assert.equal(a.backendId(be(7)), id2, 'the released id is reused');
  });

  it('a full slot array is an error naming the need, and changes nothing', () => {
    const a = new SlotAllocator({ slots: 8, backends: 64 });
    const r1 = a.plan(want([['f', [1, 2, 3]]]));
    a.release(r1.generation);
    a.plan(want([['f', [1, 2, 3, 4]]]));
    const before = a.placement('f');
    const stats = a.stats();
    assert.throws(() => a.plan(want([['f', [1, 2, 3, 4, 5]], ['g', [6]]])), (e: unknown) => {
      assert.ok(e instanceof SlotsFull);
      assert.equal(e.map, 'slots');
      assert.equal(e.needed, 9, 'a range of 8 for f and 1 for g, beside the live and unreleased ones');
      assert.equal(e.available, 0);
      assert.match(e.message, /backend slot array full: 9 slots needed .*no free range for f: 5 backends.*nothing changed/);
      return true;
    });
    assert.deepEqual(a.placement('f'), before);
    assert.deepEqual(a.stats(), stats);
    assert.equal(a.backendId(be(5)), undefined, 'no id kept from the failed round');
    a.release(2);
    a.plan(want([['f', [1, 2, 3]]]));
    assert.deepEqual(a.placement('f'), { base: 0, count: 3, term: 0, cap: 4, ids: [1, 2, 3] }, 'the released range serves the next change');
  });

  it('a full backend table is an error too', () => {
    const a = new SlotAllocator({ slots: 64, backends: 4 });
    a.plan(want([['f', [1, 2, 3]]]));
    assert.throws(() => a.plan(want([['f', [1, 2, 3, 4]]])), /backend table full: 1 ids needed .*10\.0\.0\.4\|8080\|TCP has no id left of 3/);
    assert.deepEqual(a.placement('f')!.ids, [1, 2, 3]);
  });

  it('re-adopted from the maps: a restarted sync rewrites nothing unchanged; a broken range or a duplicate id is repaired', () => {
    const a = new SlotAllocator({ slots: 64, backends: 32 });
    const m = new Maps(64);
    const w1 = want([['fa', [1, 2, 3]], ['fb', [3, 4], [5]], ['fc', []]]);
    m.apply(a.plan(w1), undefined, w1);
    const w2 = want([['fa', [1, 2, 3]], ['fb', [4], [5]], ['fc', []]]);
    const r2 = a.plan(w2);
    m.apply(r2, w1, w2);
    // The sync dies here: round 2 never released.
    const b = SlotAllocator.adopt({ slots: 64, backends: 32 }, m.held());
    m.restarted();
    const r = b.plan(w2);
    assert.deepEqual({ ...r, generation: 0 }, { generation: 0, newBackends: [], writes: [], switched: [], goneFrontends: [], goneBackends: [] });
    for (const k of ['fa', 'fb', 'fc']) assert.deepEqual(b.placement(k), a.placement(k), k);
    const w3 = want([['fa', [1, 2, 3, 6]], ['fb', [4], [5]]]);
    m.apply(b.plan(w3), w2, w3);

    // A frontend whose range is not a block, a frontend naming an unknown id, a backend twice.
    const held = m.held();
    const fe = [...held.frontends].map(([k, p]): [string, Placement] => (k === 'fa' ? [k, { ...p, base: p.base + 1 }] : [k, p]));
    fe.push(['fz', { base: 48, count: 1, term: 0, cap: 1 }]);
    const c = SlotAllocator.adopt({ slots: 64, backends: 32 }, { frontends: fe, slot: (i) => (i === 48 ? 31 : held.slot(i)), backends: [...held.backends, [20, be(4)]] });
    const rc = c.plan(w3);
    assert.deepEqual(rc.switched.map((s) => s.key), ['fa'], 'fa is rewritten');
    assert.deepEqual(rc.goneFrontends, ['fz']);
    assert.deepEqual(rc.goneBackends, [20]);
    assert.deepEqual(rc.newBackends, []);
  });

  it('random rounds: every write checked by a reader; ids stable while a backend lives', () => {
    const rnd = mulberry32(25);
    const SLOTS = 2048;
    const a = new SlotAllocator({ slots: SLOTS, backends: 256 });
    const m = new Maps(SLOTS);
    let prev: Map<string, WantedFrontend> | undefined;
    const idSeen = new Map<string, number>();
    const pendingReleases: number[] = [];
    for (let round = 0; round < 300; round++) {
      const entries: [string, number[], number[]][] = [];
      for (let f = 0; f < 40; f++) {
        if (rnd() < 0.1) continue;
        const pick = (n: number): number[] => [...new Set(Array.from({ length: n }, () => 1 + Math.floor(rnd() * 120)))].sort((x, y) => x - y);
        const keep = prev?.get(`f${f}`);
        if (keep && rnd() < 0.6) {
          entries.push([`f${f}`, keep.ready.map((b) => Number(b.address.split('.')[3]) + 256 * Number(b.address.split('.')[2])), []]);
          continue;
        }
        const ready = pick(Math.floor(rnd() * 12));
        entries.push([`f${f}`, ready, pick(Math.floor(rnd() * 3)).filter((n) => !ready.includes(n))]);
      }
      const w = want(entries);
      // Odd rounds name only what changed (the watch path), even ones everything (a resync).
      let r: SlotRound;
      if (round % 2) {
        const changes = new Map<string, WantedFrontend | undefined>();
        for (const [k, wf] of w) if (JSON.stringify(wf) !== JSON.stringify(prev?.get(k))) changes.set(k, wf);
        for (const k of prev?.keys() ?? []) if (!w.has(k)) changes.set(k, undefined);
        r = a.update(changes);
      } else r = a.plan(w);
      m.apply(r, prev, w);
      for (const { id, backend } of r.newBackends) idSeen.set(`${backend.address}`, id);
      // Every live backend keeps the id it was given while it lives.
      for (const [, wf] of w) for (const b of [...wf.ready, ...wf.terminating]) assert.equal(a.backendId(b), idSeen.get(b.address));
      pendingReleases.push(r.generation);
      // The caller releases a round or two later.
      while (pendingReleases.length > (rnd() < 0.5 ? 1 : 2)) m.release(a, pendingReleases.shift()!);
      prev = w;
    }
    console.log(`# slots: 300 rounds, ${m.checks} reader checks, ${a.stats().freeSlots} of ${SLOTS} slots free`);
  });

  it('10,000 frontends × 10 backends: a cold round and an unchanged round timed', () => {
    const a = new SlotAllocator({ slots: 262144, backends: 131072 });
    const w = new Map<string, WantedFrontend>();
    for (let i = 0; i < 10000; i++) w.set(`f${i}`, { ready: Array.from({ length: 10 }, (_, j) => be(i * 10 + j)), terminating: [] });
    let t = performance.now();
    const r = a.plan(w);
    const cold = performance.now() - t;
    t = performance.now();
    const again = a.plan(w);
    const unchanged = performance.now() - t;
    t = performance.now();
    const changedOne = a.update(new Map([['f7', { ready: [be(70), be(71)], terminating: [] }]]));
    assert.deepEqual(changedOne.switched.map((x) => x.key), ['f7']);
    assert.deepEqual(changedOne.goneBackends.length, 8);
    console.log(`# slots: 10000 frontends x 10 backends: cold ${cold.toFixed(0)} ms (${r.writes.length} ranges), unchanged ${unchanged.toFixed(0)} ms (${again.writes.length} writes), one frontend ${(performance.now() - t).toFixed(0)} ms`);
    assert.equal(again.switched.length, 0);
  });
});
