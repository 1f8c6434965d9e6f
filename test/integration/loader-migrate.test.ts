// Pins across versions: a network pinned by a version that lacked a map still serves DEL and
// listing (the missing map is reported, not everything refused); the next load creates the
// missing map beside the others; a map whose layout changed is swapped for a new one with the
// programs that use it (its entries migrated where the manifest says how), and a failed
// migration leaves the old map pinned and whole. Node-scoped pins are shared by networks.
import assert from 'node:assert/strict';
import { readdirSync, renameSync, unlinkSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { loadNetwork, loadObject, openNetwork } from '../../lib/bpf/loader.js';
import { EP_KEY_SIZE, epKey, epValue, FRAG_KEY_SIZE, FRAG_VALUE_SIZE, ifindexKey } from '../../lib/bpf/layout.js';
import { mapLayout } from '../../lib/bpf/pins.js';
import { closeFd, mapCreate, mapKeys, mapLookup, mapUpdate, MapType, objGet, objPin, progTestRun } from '../../lib/bpf/sys.js';
import { ebpfDel, endpointTable, listEndpoints, type EbpfNet } from '../../lib/datapath/ebpf.js';
import { parseAddr } from '../../lib/net/ip.js';
import { loadNetConf } from '../../lib/config/load.js';
import { networkStatus } from '../../lib/cli/status.js';
import { compileBpf, featuresSpec, hasClang } from '../helpers/bpf-objects.js';
import { tempBpffs } from '../helpers/traffic.js';

const bpffs = tempBpffs();
after(() => bpffs.release());

const NET = 'lmigrate';
const dir = `${bpffs.root}/twill/${NET}`;
const net: EbpfNet = { root: bpffs.root, network: NET, attach: 'auto', maxEndpoints: 64, flowEntries: 0 };
const A = parseAddr('10.251.7.2')!, B = parseAddr('10.251.7.3')!;
const MAC = '02:00:00:00:00:01';

/** bpf_map_info.id of each pinned map of the network. */
function mapIds(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const f of readdirSync(dir)) {
    if (f === 'links' || f.startsWith('prog_')) continue;
    const fd = objGet(`${dir}/${f}`)!;
    out[f] = mapLayout(fd).id;
    closeFd(fd);
  }
  return out;
}

describe('a network pinned by a version without one of the maps', () => {
  it('still serves DEL and listing, and reports the missing map', () => {
    loadNetwork(bpffs.root, NET, { endpoints: 64, flows: 0 }).close();
    const n = openNetwork(bpffs.root, NET)!;
    mapUpdate(n.maps.get('endpoints')!, epKey(A), epValue({ ifindex: 1001, flags: 0, podMac: MAC, hostMac: MAC }));
    mapUpdate(n.maps.get('endpoints')!, epKey(B), epValue({ ifindex: 1002, flags: 0, podMac: MAC, hostMac: MAC }));
    n.close();
    unlinkSync(`${dir}/echoes`); // as a version before the echoes map left it

    const o = openNetwork(bpffs.root, NET);
    assert.ok(o, 'the network opens with a map missing');
    assert.deepEqual(o.missing, ['echoes']);
    assert.ok(o.maps.has('endpoints'));
    o.close();
    const conf = loadNetConf(JSON.stringify({ cniVersion: '1.0.0', name: NET, type: 'twill', datapath: 'ebpf', bpffsRoot: bpffs.root, stateDir: `${bpffs.root}-state`, ipam: { type: 'host-local', dataDir: `${bpffs.root}-ipam`, ranges: [[{ subnet: '10.251.7.0/24' }]] } }));
    assert.ok(networkStatus(conf, 'x.conflist').warnings.some((w) => /maps not pinned yet: echoes/.test(w)), 'twill status says which map is missing');

    ebpfDel(net, 'vethlmig1', 1001, [A]);
    assert.deepEqual(listEndpoints(bpffs.root, NET)?.map((e) => e.ep.ifindex), [1002], 'the DEL removed its entry, the other stays listed');
    assert.deepEqual(endpointTable(bpffs.root, []).map((r) => r.addr), ['10.251.7.3']);
  });

  it('the next load creates the missing map beside the others, which keep their ids, and loads the programs anew', () => {
    const before = mapIds();
    const progsBefore = readdirSync(dir).filter((f) => f.startsWith('prog_')).map((f) => {
      const fd = objGet(`${dir}/${f}`)!;
      const id = mapLayout(fd).id; // bpf_prog_info.id lies where bpf_map_info.id does
      closeFd(fd);
      return id;
    });
    const l = loadNetwork(bpffs.root, NET, { endpoints: 64, flows: 0 });
    try {
      assert.ok(l.maps.has('echoes'));
      const ids = mapIds();
      assert.ok(ids.echoes !== undefined);
      for (const [m, id] of Object.entries(before)) assert.equal(ids[m], id, `${m} kept`);
      assert.notDeepEqual([l.progFd, l.toProgFd].map((fd) => mapLayout(fd).id), progsBefore, 'programs loaded against the new map');
      assert.deepEqual(openNetwork(bpffs.root, NET)?.missing, []);
    } finally {
      l.close();
    }
  });

  it('a pinned map whose layout changed is swapped by the next version\'s load; the other maps and their entries stay', () => {
    // As an older twill would have left them: its programs' pins, and frags with another value layout.
    for (const f of readdirSync(dir).filter((x) => x.startsWith('prog_'))) renameSync(`${dir}/${f}`, `${dir}/${f.replace(/^prog_[0-9a-f]{16}/, 'prog_0000000000000000')}`);
    unlinkSync(`${dir}/frags`);
    const old = mapCreate('frags', { type: MapType.LruHash, keySize: FRAG_KEY_SIZE, valueSize: 4, maxEntries: 16, flags: 0 });
    objPin(old, `${dir}/frags`);
    closeFd(old);
    const before = mapIds();

    const l = loadNetwork(bpffs.root, NET, { endpoints: 64, flows: 0 });
    try {
      const frags = mapLayout(l.maps.get('frags')!);
      assert.equal(frags.valueSize, FRAG_VALUE_SIZE);
      assert.notEqual(frags.id, before.frags);
      for (const [m, id] of Object.entries(mapIds())) if (m !== 'frags') assert.equal(id, before[m], `${m} kept`);
      assert.equal([...mapKeys(l.maps.get('endpoints')!, EP_KEY_SIZE)].length, 1, 'the endpoint entry is still there');
      assert.deepEqual(readdirSync(dir).filter((f) => f.startsWith('prog_0000')), [], 'the older programs\' pins are gone');
      assert.equal(mapLookup(l.maps.get('counters')!, ifindexKey(1), Buffer.alloc(96 * 1024)), false);
    } finally {
      l.close();
    }
  });
});

describe('layout versions and node-scoped pins', { skip: !hasClang() && 'clang is not installed' }, () => {
  const obj = compileBpf('test/bpf/features.c');
  const key = (i: number): Buffer => ifindexKey(i);
  const u64 = (n: bigint): Buffer => {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(n);
    return b;
  };
  const read = (fd: number, i: number): bigint => {
    const v = Buffer.alloc(8);
    return mapLookup(fd, key(i), v) ? v.readBigUInt64LE() : -1n;
  };

  it('a version bump migrates the entries through the manifest\'s migrate, and programs use the new map', () => {
    const t = { root: bpffs.root, network: 'lmigv', sizes: { endpoints: 1 } };
    const v1 = loadObject(featuresSpec('network', 1), obj, t);
    mapUpdate(v1.maps.get('results')!, key(1), u64(5n));
    const oldId = mapLayout(v1.maps.get('results')!).id;
    v1.close();

    // A migration that fails leaves the pinned map as it was.
    const failing = featuresSpec('network', 2);
    failing.maps.results.migrate = () => {
      throw new Error('cannot convert');
    };
    assert.throws(() => loadObject(failing, { ...obj, sha256: `1${obj.sha256.slice(1)}` }, t), /results/);
    const still = openNetwork(bpffs.root, 'lmigv');
    still?.close();
    const kept = loadObject(featuresSpec('network', 1), obj, t);
    assert.equal(mapLayout(kept.maps.get('results')!).id, oldId, 'the old map is still pinned');
    assert.equal(read(kept.maps.get('results')!, 1), 5n);
    kept.close();

    const spec = featuresSpec('network', 2);
    spec.maps.results.migrate = (e, from) => (from.version === 1 ? { key: e.key, value: u64(e.value.readBigUInt64LE() * 10n) } : e);
    const v2 = loadObject(spec, { ...obj, sha256: `2${obj.sha256.slice(1)}` }, t);
    try {
      const info = mapLayout(v2.maps.get('results')!);
      assert.equal(info.name, 'results.v2');
      assert.notEqual(info.id, oldId);
      assert.equal(read(v2.maps.get('results')!, 1), 50n);
      assert.ok(v2.report.replaced.some((r) => r.name === 'results' && r.migrated === 4), JSON.stringify(v2.report));
      assert.equal(progTestRun(v2.programs.get('sub_call')!, Buffer.alloc(64)).retval, 42);
    } finally {
      v2.close();
    }
  });

  it('a node-scoped map is one pin under twill-node/ that every network\'s load shares', () => {
    const a = loadObject(featuresSpec('node'), obj, { root: bpffs.root, network: 'lnodea', sizes: { endpoints: 1 } });
    const b = loadObject(featuresSpec('node'), obj, { root: bpffs.root, network: 'lnodeb', sizes: { endpoints: 1 } });
    try {
      assert.equal(mapLayout(a.maps.get('results')!).id, mapLayout(b.maps.get('results')!).id);
      assert.notEqual(mapLayout(a.maps.get('jumps')!).id, mapLayout(b.maps.get('jumps')!).id);
      assert.ok(readdirSync(`${bpffs.root}/twill-node`).includes('results'));
      assert.equal(readdirSync(`${bpffs.root}/twill/lnodea`).includes('results'), false);
    } finally {
      a.close();
      b.close();
    }
  });
});
