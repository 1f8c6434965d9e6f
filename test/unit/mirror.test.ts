// The mirror over in-memory maps with the kernel's capacity rules: the declared order is the
// order of writes, the record makes the next apply delete exactly what the last one wrote and
// no longer wants, a record of another map says nothing, and a state too large for a map is
// refused before the first write.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { describe, it } from 'node:test';
import { MemoryMap } from '../../lib/mirror/memory-map.js';
import { MapFull, Mirror, type Step } from '../../lib/mirror/mirror.js';
import { fileRecord, memoryRecord } from '../../lib/mirror/record.js';
import { BPF_NOEXIST } from '../../lib/bpf/sys.js';
import { BPF_EXIST, type MapIO } from '../../lib/bpf/map-io.js';
import { SysError } from '../../lib/sys/libc.js';

const k = (n: number): Buffer => Buffer.from([n, 0, 0, 0]);
const v = (n: number): Buffer => Buffer.from([n, 0]);
const entries = (pairs: [number, number][]): Map<string, Buffer> => new Map(pairs.map(([a, b]) => [k(a).toString('hex'), v(b)]));
const hash = (name: string, maxEntries = 16, id?: number): MemoryMap => new MemoryMap({ name, kind: 'hash', keySize: 4, valueSize: 2, maxEntries, ...(id ? { id } : {}) });
const plain = (m: MemoryMap): [number, number][] => [...m.contents()].map(([a, b]): [number, number] => [Buffer.from(a, 'hex')[0]!, b[0]!]).sort((x, y) => x[0] - y[0]);
const errno = (fn: () => unknown): number => {
  try {
    fn();
  } catch (e) {
    if (e instanceof SysError) return e.errno;
    throw e;
  }
  return 0;
};

type N = 'a' | 'b';
const ORDER: Step<N>[] = [{ put: 'a' }, { put: 'b' }, { prune: 'b' }, { prune: 'a' }];

describe('in-memory map', () => {
  it('refuses a new key when full (hash E2BIG, LPM trie ENOSPC) and keeps what it holds; a held key may be rewritten', () => {
    const h = hash('h', 2);
    h.update(k(1), v(1));
    h.update(k(2), v(2));
    assert.equal(errno(() => h.update(k(3), v(3))), 7);
    h.update(k(2), v(9));
    assert.deepEqual(plain(h), [[1, 1], [2, 9]]);
    const t = new MemoryMap({ name: 't', kind: 'lpm', keySize: 4, valueSize: 2, maxEntries: 1 });
    t.update(k(1), v(1));
    assert.equal(errno(() => t.update(k(2), v(2))), 28);
    const old = new MemoryMap({ name: 'o', kind: 'lpm', keySize: 4, valueSize: 2, maxEntries: 1, rewriteNeedsRoom: true });
    old.update(k(1), v(1));
    assert.equal(errno(() => old.update(k(1), v(2))), 28, 'before 6.13 a full trie refuses even a rewrite');
  });

  it('honours NOEXIST and EXIST, names the map in its errors, and refuses keys of the wrong size', () => {
    const h = hash('backends');
    h.update(k(1), v(1));
    assert.equal(errno(() => h.update(k(1), v(2), BPF_NOEXIST)), 17);
    assert.equal(errno(() => h.update(k(2), v(2), BPF_EXIST)), 2);
    assert.throws(() => h.update(Buffer.alloc(3), v(1)), /map backends update: EINVAL/);
    assert.equal(h.delete(k(1)), true);
    assert.equal(h.delete(k(1)), false);
    assert.equal(h.lookup(k(1)), undefined);
  });
});

describe('mirror', () => {
  it('writes in the declared order: puts of every map before any prune', () => {
    const log: string[] = [];
    const watch = (op: string, m: MemoryMap, key: Buffer): void => void log.push(`${op} ${m.name}${key[0]}`);
    const a = new MemoryMap({ name: 'a', kind: 'hash', keySize: 4, valueSize: 2, maxEntries: 8 }, watch);
    const b = new MemoryMap({ name: 'b', kind: 'hash', keySize: 4, valueSize: 2, maxEntries: 8 }, watch);
    const rec = memoryRecord();
    const m = new Mirror<N>(new Map([['a', a], ['b', b]]), rec);
    m.apply(ORDER, new Map([['a', entries([[1, 1]])], ['b', entries([[1, 1]])]]));
    log.length = 0;
    const r = m.apply(ORDER, new Map([['a', entries([[2, 1]])], ['b', entries([[2, 1]])]]));
    assert.deepEqual(log, ['update a2', 'update b2', 'delete b1', 'delete a1']);
    assert.deepEqual(r.get('a'), { put: 1, removed: 1, patched: 0, entries: 1 });
  });

  it('a second apply removes exactly the first one\'s stale entries, trusting the record over the map', () => {
    const a = hash('a'), b = hash('b');
    const rec = memoryRecord();
    const m = new Mirror<N>(new Map([['a', a], ['b', b]]), rec);
    m.apply(ORDER, new Map([['a', entries([[1, 1], [2, 2]])], ['b', entries([])]]));
    a.update(k(9), v(9)); // another writer's entry: not the mirror's to remove
    const r = m.apply(ORDER, new Map([['a', entries([[2, 3], [4, 4]])], ['b', entries([])]]));
    assert.deepEqual(plain(a), [[2, 3], [4, 4], [9, 9]]);
    assert.deepEqual(r.get('a'), { put: 2, removed: 1, patched: 0, entries: 2 });
    assert.deepEqual([...rec.maps.get('a')!.entries.keys()], [k(2), k(4)].map((x) => x.toString('hex')));
  });

  it('a record of another map (same name, another id) is ignored: the map is read back', () => {
    const rec = memoryRecord();
    new Mirror<N>(new Map([['a', hash('a', 16, 101)], ['b', hash('b', 16, 102)]]), rec).apply(ORDER, new Map([['a', entries([[1, 1]])]]));
    const again = hash('a', 16, 201); // the map made again: holds what someone else left
    again.update(k(7), v(7));
    again.update(k(1), v(1));
    new Mirror<N>(new Map([['a', again], ['b', hash('b', 16, 102)]]), rec).apply(ORDER, new Map([['a', entries([[1, 1]])]]));
    assert.deepEqual(plain(again), [[1, 1]]);
    assert.equal(rec.mapId('a'), 201);
  });

  it('a state that cannot fit old and new together is refused before the first write: maps and record as they were', () => {
    const a = hash('a', 3), b = hash('b');
    const rec = memoryRecord();
    const m = new Mirror<N>(new Map([['a', a], ['b', b]]), rec);
    m.apply(ORDER, new Map([['a', entries([[1, 1], [2, 2]])], ['b', entries([[5, 5]])]]));
    const before = rec.maps;
    // Two new keys beside the two kept until the prune: 4 > 3, though the new state alone (2) fits.
    assert.throws(() => m.apply(ORDER, new Map([['a', entries([[3, 3], [4, 4]])], ['b', entries([[6, 6]])]])), (e: unknown) => e instanceof MapFull && e.needed === 4 && e.available === 3);
    assert.deepEqual(plain(a), [[1, 1], [2, 2]]);
    assert.deepEqual(plain(b), [[5, 5]], 'no map written, not even one that fits');
    assert.equal(rec.maps, before);
  });

  it('a gate that throws writes nothing', () => {
    const a = hash('a'), b = hash('b');
    const m = new Mirror<N>(new Map([['a', a], ['b', b]]), memoryRecord());
    assert.throws(() => m.apply(ORDER, new Map([['a', entries([[1, 1]])]]), { gate: (want, have) => {
      assert.equal(want.get('a')!.size, 1);
      assert.equal(have.get('a')!.size, 0);
      throw new Error('refused');
    } }), /refused/);
    assert.equal(a.size, 0);
  });

  it('an apply that fails half-way leaves no record: the next one reads the maps and removes what the failed one wrote', () => {
    const a = hash('a'), b = hash('b');
    const rec = memoryRecord();
    let fail = false;
    const flaky: MapIO = Object.assign(Object.create(b) as MapIO, { update: (key: Buffer, value: Buffer) => { if (fail) throw new Error('EIO'); b.update(key, value); } });
    const m = new Mirror<N>(new Map<N, MapIO>([['a', a], ['b', flaky]]), rec);
    m.apply(ORDER, new Map([['a', entries([[1, 1]])], ['b', entries([])]]));
    fail = true;
    assert.throws(() => m.apply(ORDER, new Map([['a', entries([[1, 1], [2, 2]])], ['b', entries([[3, 3]])]])), /EIO/);
    assert.deepEqual(plain(a), [[1, 1], [2, 2]], 'a was written before b failed');
    fail = false;
    m.apply(ORDER, new Map([['a', entries([[1, 1]])], ['b', entries([])]]));
    assert.deepEqual(plain(a), [[1, 1]], 'the failed apply\'s entry is gone');
  });

  it('shared keys are written whatever the record says (another writer changes them)', () => {
    const a = hash('a'), b = hash('b');
    const m = new Mirror<N>(new Map([['a', a], ['b', b]]), memoryRecord());
    m.apply(ORDER, new Map([['a', entries([[1, 1], [2, 2]])]]));
    a.update(k(1), v(8)); // ADD rewrote it
    a.update(k(2), v(8));
    m.apply(ORDER, new Map([['a', entries([[1, 1], [2, 2]])]]), { shared: { a: [k(1).toString('hex')] } });
    assert.deepEqual(plain(a), [[1, 1], [2, 8]], 'the shared key rewritten, the other trusted to the record');
  });

  it('a patch step rewrites entries of a map the mirror does not own, between the puts and the prunes', () => {
    const log: string[] = [];
    const watch = (op: string, m: MemoryMap, key: Buffer): void => void log.push(`${op} ${m.name}${key[0]}`);
    const a = new MemoryMap({ name: 'a', kind: 'hash', keySize: 4, valueSize: 2, maxEntries: 8 }, watch);
    const p = new MemoryMap({ name: 'b', kind: 'hash', keySize: 4, valueSize: 2, maxEntries: 8 }, watch);
    p.update(k(1), v(1));
    p.update(k(2), v(2));
    const m = new Mirror<N>(new Map([['a', a], ['b', p]]), memoryRecord());
    m.apply([{ put: 'a' }, { prune: 'a' }], new Map([['a', entries([[1, 1]])]]));
    log.length = 0;
    const r = m.apply([{ put: 'a' }, { patch: 'b', fn: (key) => (key[0] === 1 ? v(5) : undefined) }, { prune: 'a' }], new Map([['a', entries([[2, 2]])]]));
    assert.deepEqual(log, ['update a2', 'update b1', 'delete a1']);
    assert.equal(r.get('b')!.patched, 1);
  });

  it('refuses an order that prunes before it puts, or leaves a wanted map out', () => {
    const m = new Mirror<N>(new Map([['a', hash('a')], ['b', hash('b')]]), memoryRecord());
    assert.throws(() => m.apply([{ prune: 'a' }, { put: 'a' }], new Map()), /pruned before its put/);
    assert.throws(() => m.apply([{ put: 'a' }, { prune: 'a' }], new Map([['b', entries([])]])), /b wanted but not in the order/);
  });

  it('a delta forgets the record and writes in order', () => {
    const a = hash('a'), b = hash('b');
    const rec = memoryRecord();
    const m = new Mirror<N>(new Map([['a', a], ['b', b]]), rec);
    m.apply(ORDER, new Map([['a', entries([[1, 1]])]]));
    const n = m.write([{ map: 'a', key: k(2), value: v(2) }, { map: 'a', key: k(1) }, { map: 'b', key: k(3) }]);
    assert.equal(n, 2, 'a put and a delete that found its key');
    assert.equal(rec.read(a), undefined);
    assert.equal(rec.mapId('a'), 0);
  });
});

describe('file record', () => {
  it('keeps entries by map id in the format the policy sync has always written (applied.json, applied-<map>.bin)', () => {
    const dir = mkdtempSync(`${tmpdir()}/twill-mirror-record-`);
    try {
      const rec = fileRecord(`${dir}/net`);
      assert.equal(rec.mapId('policy'), undefined);
      const policy = { id: 42, keySize: 4, valueSize: 2, entries: entries([[1, 1], [2, 2]]) };
      rec.write(new Map([['policy', policy], ['ipcache', { id: 43, keySize: 4, valueSize: 2, entries: entries([]) }]]));
      assert.deepEqual(JSON.parse(readFileSync(`${dir}/net/applied.json`, 'utf8')), { policyMapId: 42, ipcacheMapId: 43 });
      assert.equal(readFileSync(`${dir}/net/applied-policy.bin`).toString('hex'), '010000000100' + '020000000200', 'key, then value, per entry');
      assert.deepEqual([...rec.read({ name: 'policy', id: 42, keySize: 4, valueSize: 2 })!], [...policy.entries]);
      assert.equal(rec.read({ name: 'policy', id: 44, keySize: 4, valueSize: 2 }), undefined, 'another map');
      rec.forget();
      assert.equal(rec.mapId('policy'), 0);
      assert.equal(rec.read({ name: 'policy', id: 42, keySize: 4, valueSize: 2 }), undefined);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
