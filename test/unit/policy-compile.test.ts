// The policy compiler on its own: selectors, defaults, identities, ipBlocks, named ports, ranges.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { addObjects, emptyCluster, parsePolicy } from '../../lib/policy/objects.js';
import { matches } from '../../lib/policy/selector.js';
import { portBlocks } from '../../lib/policy/ports.js';
import { chunkIdentity, compile, CLASS_CLUSTER_POD, ID_ANY, ID_WORLD, type Allow } from '../../lib/policy/compile.js';
import { parseAddr, parseCidr } from '../../lib/net/ip.js';

const ns = (name: string, labels: Record<string, string> = {}) => ({ kind: 'Namespace', metadata: { name, labels } });
const pod = (namespace: string, name: string, ip: string, labels: Record<string, string>, ports: object[] = [], nodeName = 'n1') =>
  ({ kind: 'Pod', metadata: { namespace, name, labels }, spec: { nodeName, containers: [{ name: 'c', ports }] }, status: { phase: 'Running', podIPs: [{ ip }] } });
const netpol = (namespace: string, name: string, spec: object) => ({ kind: 'NetworkPolicy', metadata: { namespace, name }, spec });

function cluster(items: object[]) {
  const c = emptyCluster();
  assert.deepEqual(addObjects(c, [{ kind: 'List', items }]), []);
  return c;
}
const view = (local: string[]) => ({ local: new Set(local), hostAddrs: [parseAddr('192.168.1.10')!], ranges: [parseCidr('10.0.0.0/24')!] });
const peers = (a: Allow[] | undefined) => [...new Set((a ?? []).map((x) => x.identity))].sort((p, q) => p - q);

describe('label selectors', () => {
  const sel = (matchLabels: Record<string, string>, matchExpressions: object[] = []) => parsePolicy({ metadata: { name: 'p' }, spec: { podSelector: { matchLabels, matchExpressions } } })!.podSelector;
  it('follow apimachinery: In, NotIn (absent key matches), Exists, DoesNotExist, empty matches all', () => {
    assert.ok(matches(sel({}), {}));
    assert.ok(matches(sel({ a: '1' }), { a: '1', b: '2' }));
    assert.ok(!matches(sel({ a: '1' }), { a: '2' }));
    assert.ok(matches(sel({}, [{ key: 'a', operator: 'In', values: ['1', '2'] }]), { a: '2' }));
    assert.ok(!matches(sel({}, [{ key: 'a', operator: 'In', values: ['1'] }]), {}));
    assert.ok(matches(sel({}, [{ key: 'a', operator: 'NotIn', values: ['1'] }]), {}));
    assert.ok(!matches(sel({}, [{ key: 'a', operator: 'NotIn', values: ['1'] }]), { a: '1' }));
    assert.ok(matches(sel({}, [{ key: 'a', operator: 'Exists' }]), { a: '' }));
    assert.ok(!matches(sel({}, [{ key: 'a', operator: 'DoesNotExist' }]), { a: '' }));
  });
  it('an operator the API would refuse selects nothing, never everything', () => {
    assert.ok(!matches(sel({}, [{ key: 'a', operator: 'Bogus', values: ['1'] }]), { a: '1' }));
  });
});

describe('policy defaults', () => {
  it('policyTypes: Ingress always, Egress when there are egress rules', () => {
    assert.deepEqual(parsePolicy({ metadata: { name: 'p' }, spec: { podSelector: {} } })!.types, ['Ingress']);
    assert.deepEqual(parsePolicy({ metadata: { name: 'p' }, spec: { podSelector: {}, egress: [{}] } })!.types, ['Ingress', 'Egress']);
    assert.deepEqual(parsePolicy({ metadata: { name: 'p' }, spec: { podSelector: {}, policyTypes: ['Egress'] } })!.types, ['Egress']);
  });
  it('namespaces carry kubernetes.io/metadata.name; host-network and finished pods are not pods of the network', () => {
    const c = emptyCluster();
    const skipped = addObjects(c, [ns('x'), { ...pod('x', 'h', '10.0.0.9', {}), spec: { hostNetwork: true } }, { ...pod('x', 'done', '10.0.0.8', {}), status: { phase: 'Succeeded', podIPs: [{ ip: '10.0.0.8' }] } }]);
    assert.equal(c.namespaces.get('x')!.labels['kubernetes.io/metadata.name'], 'x');
    assert.equal(c.pods.size, 0);
    assert.equal(skipped.length, 2);
  });
});

describe('port ranges as prefix blocks', () => {
  it('cover exactly the range with the fewest aligned blocks', () => {
    assert.deepEqual(portBlocks(80, 80), [{ port: 80, bits: 16 }]);
    assert.deepEqual(portBlocks(80, 81), [{ port: 80, bits: 15 }]);
    assert.deepEqual(portBlocks(1, 65535).length, 16);
    for (const [a, b] of [[81, 90], [1000, 2000], [3, 3], [32768, 65535]] as const) {
      const covered = portBlocks(a, b).flatMap((x) => Array.from({ length: 2 ** (16 - x.bits) }, (_, i) => x.port + i));
      assert.deepEqual(covered, Array.from({ length: b - a + 1 }, (_, i) => a + i));
    }
  });
});

describe('compile', () => {
  const base = [ns('x', { team: 'x' }), ns('y', { team: 'y' }),
    pod('x', 'a', '10.0.0.2', { app: 'a' }, [{ name: 'http', containerPort: 8080 }]),
    pod('y', 'b', '10.0.1.3', { app: 'b' }, [{ name: 'http', containerPort: 9090 }], 'n2'),
    pod('y', 'c', '10.0.1.4', { app: 'c' }, [], 'n2')];

  it('an unselected pod has no allowances in that direction (unrestricted); a namespaceSelector alone names the namespaces\' classes', () => {
    const out = compile(cluster([...base, netpol('x', 'in', { podSelector: { matchLabels: { app: 'a' } }, ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: 'y' } } }] }] })]), view(['x/a']));
    const a = out.pods.get('x/a')!;
    assert.equal(a.egress, undefined);
    const yNs = [...new Set(out.ipcache.filter((e) => e.cidr.addr.value !== parseAddr('10.0.0.2')!.value && !e.host).map((e) => e.ns))];
    assert.equal(yNs.length, 1, 'the pods of y carry one namespace class');
    assert.deepEqual(peers(a.ingress), yNs);
    assert.equal(out.identities.get(yNs[0]!)!.nsClass!.namespace, 'y');
    assert.ok(a.ingress!.every((x) => x.protoBits === 0));
  });

  it('identities per distinct value of the labels selectors name; namespaceSelector {} is the cluster class', () => {
    const out = compile(cluster([...base, pod('y', 'd', '10.0.1.5', { app: 'b', 'pod-template-hash': 'x1', 'statefulset.kubernetes.io/pod-name': 'd' }, [], 'n2'),
      netpol('x', 'in', { podSelector: {}, ingress: [{ from: [{ podSelector: { matchLabels: { app: 'b' } }, namespaceSelector: {} }] }, { from: [{ namespaceSelector: {} }], ports: [{ port: 80 }] }] })]), view(['x/a']));
    const id = (ip: string) => out.ipcache.find((e) => e.cidr.addr.value === parseAddr(ip)!.value)!.identity;
    assert.equal(id('10.0.1.3'), id('10.0.1.5'), 'labels no selector names do not split identities');
    assert.notEqual(id('10.0.1.3'), id('10.0.1.4'));
    assert.deepEqual(peers(out.pods.get('x/a')!.ingress), [CLASS_CLUSTER_POD, id('10.0.1.3')].sort((p, q) => p - q));
    assert.ok(out.ipcache.filter((e) => !e.host && e.cidr.prefix === 32).every((e) => e.ns > 0), 'every pod address carries its namespace class');
  });

  it('ingress named ports resolve on the selected pod; egress named ports on each destination', () => {
    const c = cluster([...base,
      netpol('x', 'in', { podSelector: {}, ingress: [{ ports: [{ port: 'http' }] }] }),
      netpol('x', 'out', { podSelector: {}, policyTypes: ['Egress'], egress: [{ ports: [{ port: 'http' }] }] })]);
    const out = compile(c, view(['x/a']));
    const a = out.pods.get('x/a')!;
    assert.deepEqual(a.ingress!.map((x) => [x.identity, x.proto, x.port, x.portBits]), [[ID_ANY, 6, 8080, 16]]);
    const bId = out.ipcache.find((e) => e.cidr.addr.value === parseAddr('10.0.1.3')!.value)!.identity;
    // "any peer" on a named port: every pod that has one, on its own number; y/c has none.
    assert.deepEqual(a.egress!.map((x) => [x.identity, x.port]).sort(), [[out.ipcache.find((e) => e.cidr.addr.value === parseAddr('10.0.0.2')!.value)!.identity, 8080], [bId, 9090]].sort());
  });

  it('ipBlocks: a pod address inside gets the block; except carves out; overlapping blocks give distinct identities', () => {
    const c = cluster([...base, netpol('x', 'out', { podSelector: {}, policyTypes: ['Egress'], egress: [
      { to: [{ ipBlock: { cidr: '10.0.0.0/16', except: ['10.0.1.4/32'] } }] },
      { to: [{ ipBlock: { cidr: '0.0.0.0/0' } }], ports: [{ port: 53, protocol: 'UDP' }] }] })]);
    const out = compile(c, view(['x/a']));
    const id = (ip: string) => out.ipcache.find((e) => e.cidr.addr.value === parseAddr(ip)!.value && e.cidr.prefix === 32)!.identity;
    const a = out.pods.get('x/a')!;
    const anyPort = new Set(a.egress!.filter((x) => x.protoBits === 0).map((x) => x.identity));
    assert.ok(anyPort.has(id('10.0.1.3')), 'y/b is in 10.0.0.0/16');
    assert.ok(!anyPort.has(id('10.0.1.4')), 'y/c is the exception');
    assert.ok(a.egress!.some((x) => x.identity === id('10.0.1.4') && x.port === 53), 'y/c still in 0.0.0.0/0 for DNS');
    const world = out.ipcache.find((e) => e.cidr.prefix === 0)!;
    assert.notEqual(world.identity, ID_WORLD, '0.0.0.0/0 is a block of its own');
    // The node's own address is marked host and keeps its block identity.
    assert.ok(out.ipcache.find((e) => e.host)!.identity === world.identity);
  });

  it('a local pod not started yet gets an identity for each part of the node range its address may fall in', () => {
    const c = cluster([...base, pod('x', 'new', '', { app: 'new' }), netpol('x', 'out', { podSelector: {}, policyTypes: ['Egress'], egress: [{ to: [{ ipBlock: { cidr: '10.0.0.128/25' } }] }] })]);
    const out = compile(c, view(['x/new']));
    const p = out.pods.get('x/new')!;
    const low = chunkIdentity(p.chunks, parseAddr('10.0.0.5')!);
    const high = chunkIdentity(p.chunks, parseAddr('10.0.0.200')!);
    assert.ok(low !== undefined && high !== undefined && low !== high);
    assert.deepEqual(out.identities.get(high)!.blocks, [0]);
  });

  it('identity numbers survive a recompile; a label change gets a new number, never an old one', () => {
    const byApp = netpol('x', 'in', { podSelector: {}, ingress: [{ from: [{ podSelector: { matchLabels: { app: 'b' } } }] }] });
    const c1 = cluster([...base, byApp]);
    const first = compile(c1, view([]));
    const again = compile(c1, view([]), first.table);
    assert.deepEqual(again.ipcache.map((e) => e.identity), first.ipcache.map((e) => e.identity));
    const c2 = cluster([...base.slice(0, 2), pod('x', 'a', '10.0.0.2', { app: 'changed' }), ...base.slice(3), byApp]);
    const changed = compile(c2, view([]), again.table);
    const aId = (o: typeof first) => o.ipcache.find((e) => e.cidr.addr.value === parseAddr('10.0.0.2')!.value)!.identity;
    assert.ok(aId(changed) > Math.max(...first.ipcache.map((e) => e.identity)));
  });
});

describe('a remote pod changed alone (watch)', () => {
  const items = [ns('x'), ns('y'),
    pod('x', 'a', '10.0.0.2', { app: 'a' }, [{ name: 'http', containerPort: 8080 }]),
    pod('y', 'b', '10.0.1.3', { app: 'b' }, [{ name: 'http', containerPort: 9090 }], 'n2'),
    netpol('x', 'in', { podSelector: {}, ingress: [{ from: [{ namespaceSelector: {}, podSelector: { matchLabels: { app: 'web' } } }], ports: [{ port: 80 }, { port: 'http' }] }] }),
    netpol('x', 'out', { podSelector: {}, policyTypes: ['Egress'], egress: [{ ports: [{ port: 'http' }] }, { to: [{ podSelector: { matchLabels: { app: 'web' } }, namespaceSelector: {} }] }] })];
  const key = (a: Allow) => `${a.identity}/${a.protoBits}/${a.proto}/${a.port}/${a.portBits}`;

  it('adds exactly what a full compile would add for the pod\'s new identity, and keeps numbers unique', () => {
    const first = compile(cluster(items), view(['x/a']));
    const moved = { namespace: 'y', name: 'b', labels: { app: 'web' }, ips: ['10.0.1.3'], nodeName: 'n2', ports: [{ name: 'http', port: 9090, protocol: 'TCP' as const }] };
    const d = first.remotePod(moved);
    const newId = d.ipcache[0]!.identity;
    assert.ok(!first.ipcache.some((e) => e.identity === newId), 'a new identity');
    const full = compile(cluster([...items.slice(0, 3), pod('y', 'b', '10.0.1.3', { app: 'web' }, [{ name: 'http', containerPort: 9090 }], 'n2'), ...items.slice(4)]), view(['x/a']), d.table);
    assert.equal(full.ipcache.find((e) => e.cidr.addr.value === parseAddr('10.0.1.3')!.value)!.identity, newId, 'the full compile agrees on its number');
    for (const dir of ['ingress', 'egress'] as const) {
      const want = full.pods.get('x/a')![dir]!.filter((a) => a.identity === newId).map(key).sort();
      const got = d.allows.filter((x) => x.dir === dir).map((x) => key(x.allow)).sort();
      assert.deepEqual(got, want, dir);
      assert.ok(want.length > 0, `${dir} has entries for it`);
    }
    const ids = [...full.identities.keys()];
    assert.equal(new Set(ids).size, ids.length);
  });

  it('a label set another pod already has adds nothing but the address', () => {
    const first = compile(cluster(items), view(['x/a']));
    const d = first.remotePod({ namespace: 'x', name: 'a2', labels: { app: 'a' }, ips: ['10.0.0.9'], nodeName: 'n2', ports: [{ name: 'http', port: 8080, protocol: 'TCP' }] });
    assert.equal(d.allows.length, 0);
    assert.equal(d.ipcache[0]!.identity, first.ipcache.find((e) => e.cidr.addr.value === parseAddr('10.0.0.2')!.value)!.identity);
  });
});
