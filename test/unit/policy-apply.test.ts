// Policy's apply through in-memory maps: at every write, each endpoint names a slot whose
// entries are all there (the old state's or the new one's, as the endpoint's own value says),
// so no packet meets a half-written policy; the record makes the next sync remove exactly the
// last one's stale entries; a state too large is refused with the maps untouched.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemoryMap } from '../../lib/mirror/memory-map.js';
import { memoryRecord, type Entries } from '../../lib/mirror/record.js';
import { allowKeys, applyPodDelta, applyPolicy, type Desired, type PolicyMap } from '../../lib/datapath/policy.js';
import {
  EP_F_POL_IN, EP_KEY_SIZE, EP_VALUE_SIZE, IPC_KEY_SIZE, IPC_VALUE_SIZE, POL_KEY_SIZE, POL_VALUE_SIZE, epKey, epValue, ipcKey, parseEpValue,
} from '../../lib/bpf/layout.js';
import { parseAddr, parseCidr } from '../../lib/net/ip.js';
import type { Allow, PodPolicy } from '../../lib/policy/compile.js';
import { PolicyRefused } from '../../lib/datapath/policy-budget.js';

const allow = (identity: number, port: number, policy = 0): Allow => ({ identity, proto: 6, protoBits: 8, port, portBits: 16, policy });
const pod = (ingress: Allow[], identity: number, cidr: string): PodPolicy => ({ ingress, chunks: [{ cidr, identity }], selectedBy: { ingress: [0], egress: [] }, group: `g${identity}`, ns: 5 });
const addr = (s: string) => parseAddr(s)!;

interface Pods { a: { slot: number; pp: PodPolicy }; b: { slot: number; pp: PodPolicy } }
const A = { ifindex: 10, ip: '10.0.0.2' }, B = { ifindex: 11, ip: '10.0.0.3' };

function desired(p: Pods): Desired {
  return {
    ipcache: [{ cidr: parseCidr('10.0.1.0/24')!, identity: 300, host: false, ns: 0 }],
    pods: new Map([[p.a.slot, p.a.pp], [p.b.slot, p.b.pp]]),
    endpoints: new Map([[A.ifindex, p.a], [B.ifindex, p.b]]),
    localAddrs: new Map([[`${A.ip}/32`, p.a.pp.chunks[0]!.identity], [`${B.ip}/32`, p.b.pp.chunks[0]!.identity]]),
  };
}

/** The maps of one network, with a check run after every write. */
function network(check: () => void, policyEntries = 64) {
  let armed = false;
  const watch = (): void => {
    if (armed) check();
  };
  const maps = new Map<PolicyMap, MemoryMap>([
    ['policy', new MemoryMap({ name: 'policy', kind: 'lpm', keySize: POL_KEY_SIZE, valueSize: POL_VALUE_SIZE, maxEntries: policyEntries }, watch)],
    ['ipcache', new MemoryMap({ name: 'ipcache', kind: 'lpm', keySize: IPC_KEY_SIZE, valueSize: IPC_VALUE_SIZE, maxEntries: 64 }, watch)],
    ['endpoints', new MemoryMap({ name: 'endpoints', kind: 'hash', keySize: EP_KEY_SIZE, valueSize: EP_VALUE_SIZE, maxEntries: 64 }, watch)],
  ]);
  // ADD published both pods, isolated (slot 0) until a sync.
  for (const e of [A, B]) maps.get('endpoints')!.update(epKey(addr(e.ip)), epValue({ ifindex: e.ifindex, flags: 0, podMac: '02:00:00:00:00:01', hostMac: '02:00:00:00:00:02' }));
  return { maps, arm: (on: boolean) => (armed = on) };
}

const holds = (m: MemoryMap, want: Entries): boolean => [...want].every(([k, v]) => m.lookup(Buffer.from(k, 'hex'))?.equals(v) ?? false);

/** Every endpoint's value is its old or its new one, and the slot it names holds that state's entries for it. */
function slotInvariant(maps: Map<PolicyMap, MemoryMap>, before: Pods, after: Pods): void {
  for (const [e, key] of [[A, 'a'], [B, 'b']] as const) {
    const ep = parseEpValue(maps.get('endpoints')!.lookup(epKey(addr(e.ip)))!);
    const okFor = (p: Pods): boolean => ep.policySlot === p[key].slot && (ep.flags & EP_F_POL_IN) !== 0 && holds(maps.get('policy')!, allowKeys(p[key].slot, p[key].pp));
    assert.ok(okFor(before) || okFor(after), `endpoint ${e.ip} names slot ${ep.policySlot ?? 0} without all of its entries`);
  }
}

// a: allowed from identity 256 on 80, in slot 1 with b. Then a policy gives a 443 from 257 (a
// slot of its own), and b's port changes in place in slot 1.
const ONE: Pods = { a: { slot: 1, pp: pod([allow(256, 80)], 400, `${A.ip}/32`) }, b: { slot: 1, pp: pod([allow(256, 80)], 400, `${B.ip}/32`) } };
const TWO: Pods = { a: { slot: 2, pp: pod([allow(256, 80), allow(257, 443, 1)], 401, `${A.ip}/32`) }, b: { slot: 1, pp: pod([allow(256, 8080)], 400, `${B.ip}/32`) } };

describe('policy apply through the mirror', () => {
  it('at no write does an endpoint name a slot whose entries are not all there', () => {
    let from = ONE, to = ONE;
    const net = network(() => slotInvariant(net.maps, from, to));
    const rec = memoryRecord();
    applyPolicy(net.maps, desired(ONE), rec);
    net.arm(true);
    [from, to] = [ONE, TWO];
    const r = applyPolicy(net.maps, desired(TWO), rec);
    assert.ok(r.flagsChanged >= 1 && r.policyAdded >= 2 && r.policyRemoved >= 1, JSON.stringify(r));
    [from, to] = [TWO, ONE];
    applyPolicy(net.maps, desired(ONE), rec);
    slotInvariant(net.maps, ONE, ONE);
  });

  it('a second sync removes exactly the first one\'s stale entries, and leaves what ADD wrote beside the record', () => {
    const net = network(() => undefined);
    const rec = memoryRecord();
    applyPolicy(net.maps, desired(ONE), rec);
    const policy = net.maps.get('policy')!, ipcache = net.maps.get('ipcache')!;
    // A gateway ADD wrote (not the sync's): with the record, the sync does not read the map back.
    const gw = ipcKey(addr('10.0.0.1'));
    ipcache.update(gw, Buffer.alloc(IPC_VALUE_SIZE, 1));
    applyPolicy(net.maps, desired(TWO), rec);
    const want = new Map([...allowKeys(2, TWO.a.pp), ...allowKeys(1, TWO.b.pp)]);
    assert.deepEqual([...policy.contents().keys()].sort(), [...want.keys()].sort(), 'slot 1 port 80 gone, the rest as wanted');
    assert.ok(ipcache.lookup(gw), 'the gateway ADD wrote stays');
  });

  it('a record of another policy map is ignored: the new map is read back and cleaned', () => {
    const rec = memoryRecord();
    const first = network(() => undefined);
    applyPolicy(first.maps, desired(ONE), rec);
    // The maps made again (an upgrade): the same names, other ids, holding an entry nobody wants.
    const again = network(() => undefined);
    const stray = [...allowKeys(7, TWO.a.pp)][0]!;
    again.maps.get('policy')!.update(Buffer.from(stray[0], 'hex'), stray[1]);
    applyPolicy(again.maps, desired(ONE), rec);
    assert.equal(again.maps.get('policy')!.lookup(Buffer.from(stray[0], 'hex')), undefined);
    assert.equal(rec.mapId('policy'), again.maps.get('policy')!.id);
  });

  it('a state that does not fit beside the applied one is refused by the gate: maps and record unchanged', () => {
    const net = network(() => undefined, 3);
    const rec = memoryRecord();
    applyPolicy(net.maps, desired(ONE), rec);
    const before = new Map([...net.maps].map(([n, m]) => [n, m.contents()]));
    const kept = rec.maps;
    const gate = (want: { policy: Entries }, have: { policy: Entries }): void => {
      if (want.policy.size + have.policy.size > 3) throw new PolicyRefused({ time: '', map: 'policy', needed: want.policy.size + have.policy.size, available: 3, message: 'refused' });
    };
    assert.throws(() => applyPolicy(net.maps, desired(TWO), rec, gate), PolicyRefused);
    for (const [n, m] of net.maps) assert.deepEqual(m.contents(), before.get(n), `${n} unchanged`);
    assert.equal(rec.maps, kept);
  });

  it('a remote pod\'s delta forgets the record, so the next sync reads the maps back', () => {
    const net = network(() => undefined);
    const rec = memoryRecord();
    applyPolicy(net.maps, desired(ONE), rec);
    const n = applyPodDelta(net.maps, rec, { allows: [{ pod: 'ns/a', dir: 'ingress', allow: allow(258, 22) }], ipcache: [{ cidr: parseCidr('10.0.2.7/32')!, identity: 258, host: false, ns: 0 }], table: { next: 259, ids: {} } }, { 'ns/a': 1 }, ['10.0.1.9']);
    assert.equal(n, 2);
    assert.equal(rec.read(net.maps.get('policy')!), undefined);
    applyPolicy(net.maps, desired(ONE), rec);
    assert.equal(net.maps.get('ipcache')!.lookup(ipcKey(addr('10.0.2.7'))), undefined, 'the delta\'s address, not wanted by the full sync, removed after a read back');
  });
});
