// Services' apply through in-memory maps: at every single write, every frontend points at a
// whole set of live backends of its own Service (the old set or the new one), a Service with
// endpoints before and after never looks empty, a range left by a change stays readable for one
// more round and is then reused, and the record makes a round write only what changed.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LB_BE_RETIRED, LB_BE_TERMINATING, LB_BE_VALID, LB_F_AFFINITY, LB_F_DROP, LB_F_REJECT } from '../../lib/bpf/abi-sock.generated.js';
import { applyServices, type ServiceMapName } from '../../lib/datapath/services.js';
import { BE_VALUE_SIZE, FE_KEY_SIZE, FE_VALUE_SIZE, feKey, parseBeValue, parseFeKey, parseFeValue, u32 } from '../../lib/datapath/services-encode.js';
import { MemoryMap } from '../../lib/mirror/memory-map.js';
import { memoryRecord } from '../../lib/mirror/record.js';
import type { LbFrontend } from '../../lib/services/model.js';

function maps(check: () => void, slots = 64, backends = 32) {
  let armed = false;
  const watch = (): void => {
    if (armed) check();
  };
  const m = new Map<ServiceMapName, MemoryMap>([
    ['lb_fe', new MemoryMap({ name: 'lb_fe', kind: 'hash', keySize: FE_KEY_SIZE, valueSize: FE_VALUE_SIZE, maxEntries: 16 }, watch)],
    ['lb_slots', new MemoryMap({ name: 'lb_slots', kind: 'hash', keySize: 4, valueSize: 4, maxEntries: slots }, watch)],
    ['lb_be', new MemoryMap({ name: 'lb_be', kind: 'hash', keySize: 4, valueSize: BE_VALUE_SIZE, maxEntries: backends }, watch)],
  ]);
  return { m, arm: () => (armed = true) };
}

const fe = (port: number, serviceId: number, backends: string[], extra: Partial<LbFrontend> = {}): LbFrontend => ({
  family: 4, address: '10.96.0.10', port, protocol: 'TCP', scope: 'internal', serviceId, backends: backends.map((a) => ({ address: a, port: 8080 })), terminating: [],
  whenEmpty: 'reject', affinitySeconds: 0, ...extra,
});

/** What a connect() sees for each frontend now: its backends' addresses, or an error. */
function view(m: Map<ServiceMapName, MemoryMap>): Map<number, string[] | 'refused' | string> {
  const out = new Map<number, string[] | 'refused' | string>();
  const fes = m.get('lb_fe')!, slots = m.get('lb_slots')!, bes = m.get('lb_be')!;
  for (const k of fes.keys()) {
    const v = parseFeValue(fes.lookup(k)!), port = parseFeKey(k).port;
    if (v.flags & (LB_F_REJECT | LB_F_DROP)) {
      out.set(port, 'refused');
      continue;
    }
    const n = v.count || v.term;
    const got: string[] = [];
    for (let i = 0; i < n; i++) {
      const s = slots.lookup(u32(v.base + i));
      const id = s?.readUInt32LE(0) ?? 0;
      const b = id ? bes.lookup(u32(id)) : undefined;
      const pb = b && parseBeValue(b);
      if (!pb || !(pb.flags & LB_BE_VALID) || pb.svcId !== v.svcId) {
        out.set(port, `slot ${v.base + i} of ${port} → id ${id}: ${pb ? JSON.stringify(pb) : 'no backend'}`);
        break;
      }
      got.push(pb.address);
    }
    if (!out.has(port)) out.set(port, n === 0 ? 'empty' : got.sort());
  }
  return out;
}

describe('applyServices', () => {
  it('never shows a half-written or empty Service at any write, across 200 rounds of changes, and reuses freed slots', () => {
    const pool = ['10.1.0.1', '10.1.0.2', '10.1.0.3', '10.1.0.4', '10.1.0.5'];
    let before = new Map<number, string[] | 'refused' | string>(), after = new Map<number, string[] | 'refused' | string>();
    const { m, arm } = maps(() => {
      for (const [port, v] of view(m)) {
        assert.ok(typeof v !== 'string' || v === 'refused', `broken at a write: ${v}`);
        const was = before.get(port), will = after.get(port);
        const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);
        // A frontend shows its old set or its new one, nothing in between.
        if (was !== undefined && will !== undefined) assert.ok(same(v, was) || same(v, will), `port ${port}: ${JSON.stringify(v)} is neither ${JSON.stringify(was)} nor ${JSON.stringify(will)}`);
      }
    });
    const record = memoryRecord();
    let seed = 7;
    const rnd = (n: number): number => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n);
    arm();
    for (let round = 0; round < 200; round++) {
      const want = [80, 81, 82].map((port, i) => {
        const pick = pool.filter(() => rnd(2) === 1);
        return fe(port, i + 1, port === 82 && round % 5 === 0 ? [] : pick.length ? pick : [pool[rnd(5)]!]);
      });
      before = view(m);
      after = new Map(want.map((f) => [f.port, f.backends.length ? f.backends.map((b) => b.address).sort() : 'refused']));
      applyServices(m, want, record);
      assert.deepEqual(view(m), after);
    }
    // 3 Services of ≤ 5 backends in 64 slots for 200 rounds: the left ranges were reused
    // (an array's slots are never deleted, only zeroed: size counts every slot ever written).
    assert.ok(m.get('lb_slots')!.size <= 30, `${m.get('lb_slots')!.size} slots written`);
  });

  it('keeps an unchanged frontend\'s range and writes nothing when nothing changed; a changed one moves and its old range is freed a round later', () => {
    const { m } = maps(() => {});
    const record = memoryRecord();
    const a = [fe(80, 1, ['10.1.0.1', '10.1.0.2'])];
    assert.equal(applyServices(m, a, record).moved, 1);
    const first = parseFeValue(m.get('lb_fe')!.lookup(feKey(a[0]!))!);
    const again = applyServices(m, a, record);
    assert.equal(again.moved, 0);
    assert.deepEqual([...again.maps.values()].map((r) => r.put + r.removed), [0, 0, 0]);
    assert.equal(again.retired, 0);
    const b = [fe(80, 1, ['10.1.0.2', '10.1.0.3'])];
    assert.equal(applyServices(m, b, record).retired, 1, '10.1.0.1 left: its connected sockets need moving');
    const moved = parseFeValue(m.get('lb_fe')!.lookup(feKey(b[0]!))!);
    assert.notEqual(moved.base, first.base);
    // The old range and 10.1.0.1 are still there (retired), for a reader that saw the old value.
    const slot = (i: number): number => m.get('lb_slots')!.lookup(u32(i))?.readUInt32LE(0) ?? 0; // an array: zero is no entry
    assert.notEqual(slot(first.base), 0);
    const retired = [...m.get('lb_be')!.contents().values()].map(parseBeValue).find((x) => x.address === '10.1.0.1')!;
    assert.equal(retired.flags, LB_BE_VALID | LB_BE_RETIRED);
    assert.equal(applyServices(m, b, record).retired, 0, 'pruning a backend retired a round earlier retires nothing');
    assert.equal(slot(first.base), 0);
    assert.equal([...m.get('lb_be')!.contents().values()].map(parseBeValue).some((x) => x.address === '10.1.0.1'), false);
  });

  it('encodes affinity, terminating endpoints and the two empty verdicts', () => {
    const { m } = maps(() => {});
    applyServices(m, [
      fe(80, 1, ['10.1.0.1'], { affinitySeconds: 10800 }),
      fe(81, 2, [], { terminating: [{ address: '10.1.0.9', port: 8080 }] }),
      fe(82, 3, []),
      fe(83, 4, [], { whenEmpty: 'drop' }),
    ], memoryRecord());
    const v = (port: number) => parseFeValue(m.get('lb_fe')!.lookup(feKey(fe(port, 0, [])))!);
    assert.deepEqual([v(80).flags, v(80).affinityTimeout, v(80).count], [LB_F_AFFINITY, 10800, 1]);
    assert.deepEqual([v(81).count, v(81).term, v(81).flags], [0, 1, 0]);
    assert.equal(parseBeValue(m.get('lb_be')!.lookup(u32(m.get('lb_slots')!.lookup(u32(v(81).base))!.readUInt32LE(0)))!).flags, LB_BE_VALID | LB_BE_TERMINATING);
    assert.deepEqual([v(82).flags, v(83).flags], [LB_F_REJECT, LB_F_DROP]);
  });

  it('refuses bad input before writing anything', () => {
    const { m } = maps(() => {});
    assert.throws(() => applyServices(m, [fe(80, 1, ['10.1.0.1']), fe(80, 2, ['10.1.0.2'])], memoryRecord()), /given twice/);
    assert.throws(() => applyServices(m, [fe(80, 0, ['10.1.0.1'])], memoryRecord()), /serviceId 0 out of range/);
    assert.throws(() => applyServices(m, [fe(80, 1, ['fd00::1'])], memoryRecord()), /not an IPv4 address/);
    assert.equal(m.get('lb_fe')!.size + m.get('lb_slots')!.size + m.get('lb_be')!.size, 0);
  });

  it('with `only`, compares and writes just the named Service ports: the others stay as they are, a named one not given goes', () => {
    let armed = false;
    const { m, arm } = maps(() => {
      if (!armed) return;
      for (const [port, v] of view(m)) assert.ok(typeof v !== 'string' || v === 'refused', `port ${port} broken at a write: ${v}`);
    });
    arm();
    armed = true;
    const record = memoryRecord();
    applyServices(m, [fe(80, 1, ['10.1.0.1', '10.1.0.2']), fe(81, 2, ['10.1.0.3']), fe(82, 3, ['10.1.0.4'])], record);
    const r = applyServices(m, [fe(80, 1, ['10.1.0.2', '10.1.0.5'])], record, { only: new Set([1, 3]) });
    assert.deepEqual(view(m), new Map<number, string[]>([[80, ['10.1.0.2', '10.1.0.5']], [81, ['10.1.0.3']]]));
    assert.deepEqual([r.maps.get('lb_fe')!.put, r.maps.get('lb_fe')!.removed], [1, 1]);
    assert.equal(r.retired, 2, '10.1.0.1 and 10.1.0.4 left');
    assert.throws(() => applyServices(m, [fe(81, 2, [])], record, { only: new Set([1]) }), /serviceId 2 not among/);
  });

  // One tenant object must not stop Service programming for the node: what does not fit is
  // refused (and reported by id), everything else is written.
  const many = (n: number, net = 2): string[] => Array.from({ length: n }, (_, i) => `10.${net}.${i >> 8}.${(i & 255) + 1}`);

  it('a Service too large for the slot array is refused; the normal one beside it is programmed', () => {
    const { m } = maps(() => {}, 64, 256);
    const r = applyServices(m, [fe(80, 1, ['10.1.0.1', '10.1.0.2']), fe(81, 2, many(100))], memoryRecord());
    assert.deepEqual(view(m), new Map([[80, ['10.1.0.1', '10.1.0.2']]]));
    assert.deepEqual(r.refused.map((x) => x.serviceId), [2]);
    assert.match(r.refused[0]!.reason, /does not fit: backend slot array full/);
  });

  it('a Service exhausting the backend table is refused; the normal one is programmed', () => {
    const { m } = maps(() => {}, 256, 32);
    const r = applyServices(m, [fe(80, 1, ['10.1.0.1']), fe(81, 2, many(40))], memoryRecord());
    assert.deepEqual(view(m), new Map([[80, ['10.1.0.1']]]));
    assert.match(r.refused.find((x) => x.serviceId === 2)!.reason, /backend table full/);
  });

  it('more backends than one frontend can hold: refused before the allocator, the others programmed', () => {
    const { m } = maps(() => {});
    const r = applyServices(m, [fe(80, 1, ['10.1.0.1']), fe(81, 2, many(1 << 15, 3).concat(['10.9.9.9']))], memoryRecord());
    assert.deepEqual(view(m), new Map([[80, ['10.1.0.1']]]));
    assert.match(r.refused[0]!.reason, /32769 backends, at most 32768/);
  });

  it('a Service whose frontends would overfill lb_fe is refused (a newcomer never evicts what is there)', () => {
    const { m } = maps(() => {});
    const record = memoryRecord();
    applyServices(m, [fe(80, 1, ['10.1.0.1'])], record);
    const huge = Array.from({ length: 20 }, (_, i) => fe(1000 + i, 2, ['10.1.0.2']));
    const r = applyServices(m, [fe(80, 1, ['10.1.0.1', '10.1.0.3']), ...huge], record);
    assert.deepEqual(view(m), new Map([[80, ['10.1.0.1', '10.1.0.3']]]));
    assert.match(r.refused[0]!.reason, /20 new frontends do not fit: lb_fe holds 16/);
  });

  it('a Service already programmed whose update does not fit keeps what it had; the others change', () => {
    const { m } = maps(() => {});
    const record = memoryRecord();
    applyServices(m, [fe(80, 1, ['10.1.0.1']), fe(81, 2, ['10.1.0.2'])], record);
    const r = applyServices(m, [fe(80, 1, ['10.1.0.5']), fe(81, 2, many(100))], record);
    assert.deepEqual(view(m), new Map([[80, ['10.1.0.5']], [81, ['10.1.0.2']]]));
    assert.deepEqual(r.refused.map((x) => x.serviceId), [2]);
  });

  it('a restarted sync (another record: nothing known) re-adopts ids and ranges from the maps and rewrites nothing unchanged', () => {
    const { m } = maps(() => {});
    const want = [fe(80, 1, ['10.1.0.1', '10.1.0.2']), fe(81, 2, ['10.1.0.1']), fe(82, 3, [], { terminating: [{ address: '10.1.0.9', port: 8080 }] })];
    applyServices(m, want, memoryRecord());
    const before = new Map([...m.entries()].map(([n, x]) => [n, new Map(x.contents())]));
    const again = applyServices(m, want, memoryRecord());
    assert.deepEqual([...again.maps.values()].map((x) => x.put + x.removed), [0, 0, 0]);
    assert.deepEqual([again.moved, again.retired], [0, 0]);
    assert.deepEqual(new Map([...m.entries()].map(([n, x]) => [n, new Map(x.contents())])), before);
    // The same endpoint in two Services has an id in each (a backend entry belongs to one Service).
    const ids = [80, 81].map((port) => m.get('lb_slots')!.lookup(u32(parseFeValue(m.get('lb_fe')!.lookup(feKey(fe(port, 0, [])))!).base))!.readUInt32LE(0));
    assert.notEqual(ids[0], ids[1]);
  });
});
