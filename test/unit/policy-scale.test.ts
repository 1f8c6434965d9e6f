// The policy compiler against the shapes of a real cluster: what the policy trie needs must grow
// with what the policies say about this node's pods, not with the cluster's pods or label sets.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { addObjects, emptyCluster } from '../../lib/policy/objects.js';
import { compile, policyEntriesNeeded, type Compiled } from '../../lib/policy/compile.js';
import { parseAddr, parseCidr } from '../../lib/net/ip.js';
import { schema } from '../../lib/config/schema.js';
import { assignSlots } from '../../lib/datapath/policy-state.js';

const NODE = 'scale-n1';
const DEFAULTS = { ipcacheEntries: schema.properties.policy.properties.ipcacheEntries.default, policyEntries: schema.properties.policy.properties.policyEntries.default };

/** Pods with the labels their controllers give them: Deployments, StatefulSets, Jobs. */
function clusterItems(pods: number, namespaces: number, localPods: number): { items: object[]; local: string[] } {
  const items: object[] = [];
  const local: string[] = [];
  for (let n = 0; n < namespaces; n++) items.push({ kind: 'Namespace', metadata: { name: `ns${n}`, labels: { team: `t${n % 20}`, ...(n % 10 === 0 ? { monitoring: 'true' } : {}) } } });
  items.push({ kind: 'Namespace', metadata: { name: 'kube-system', labels: {} } });
  items.push({ kind: 'Pod', metadata: { namespace: 'kube-system', name: 'coredns-1', labels: { 'k8s-app': 'kube-dns', 'pod-template-hash': 'abc' } }, spec: { nodeName: 'other', containers: [{ name: 'c' }] }, status: { phase: 'Running', podIPs: [{ ip: '10.200.0.2' }] } });
  for (let i = 0; i < pods; i++) {
    const ns = `ns${i % namespaces}`;
    const kind = i % 5;
    const app = `app${Math.floor(i / namespaces) % 4}`;
    let labels: Record<string, string>;
    if (kind < 3) labels = { app, role: i % 7 === 0 ? 'client' : 'server', 'pod-template-hash': `h${i % 13}` };
    else if (kind === 3) labels = { app, role: 'db', 'controller-revision-hash': `${app}-7d9f`, 'statefulset.kubernetes.io/pod-name': `${app}-${i}`, 'apps.kubernetes.io/pod-index': String(i) };
    else labels = { 'batch.kubernetes.io/controller-uid': `u${i}`, 'batch.kubernetes.io/job-name': `job${i}`, 'controller-uid': `u${i}`, 'job-name': `job${i}`, role: 'client' };
    const isLocal = i < localPods;
    const name = `p${i}`;
    if (isLocal) local.push(`${ns}/${name}`);
    const ip = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
    items.push({ kind: 'Pod', metadata: { namespace: ns, name, labels }, spec: { nodeName: isLocal ? NODE : 'other', containers: [{ name: 'c', ports: [{ name: 'http', containerPort: 8080 }] }] }, status: { phase: 'Running', podIPs: [{ ip }] } });
  }
  return { items, local };
}

const netpol = (namespace: string, name: string, spec: object) => ({ kind: 'NetworkPolicy', metadata: { namespace, name }, spec });

function build(items: object[], local: string[]): Compiled {
  const c = emptyCluster();
  assert.deepEqual(addObjects(c, [{ kind: 'List', items }]), []);
  return compile(c, { local: new Set(local), hostAddrs: [parseAddr('192.168.1.10')!], ranges: [parseCidr('10.0.0.0/16')!] });
}

/** Policy trie entries: pods that share a group share one slot's entries. */
const entries = (out: Compiled): number => policyEntriesNeeded(out.pods);

describe('policy trie entries at cluster scale', () => {
  it('"ingress TCP 8080 from namespaceSelector {}" for 110 local pods of a 5,000-pod cluster costs a handful of entries', () => {
    // 110 local pods spread over 10 namespaces; each namespace has the same policy.
    const { items, local } = clusterItems(5000, 10, 110);
    for (let n = 0; n < 10; n++) items.push(netpol(`ns${n}`, 'from-all', { podSelector: {}, ingress: [{ from: [{ namespaceSelector: {} }], ports: [{ port: 8080 }] }] }));
    const out = build(items, local);
    assert.equal(out.pods.size, 110);
    const n = entries(out);
    assert.ok(n <= 10, `${n} entries`);
  });

  it('TCP+UDP 1024-65535 from a label costs (identities with that label) x 12 per slot, not per pod', () => {
    const { items, local } = clusterItems(5000, 10, 110);
    for (let n = 0; n < 10; n++) items.push(netpol(`ns${n}`, 'range', { podSelector: {}, ingress: [{ from: [{ podSelector: { matchLabels: { role: 'client' } } }], ports: [{ protocol: 'TCP', port: 1024, endPort: 65535 }, { protocol: 'UDP', port: 1024, endPort: 65535 }] }] }));
    const out = build(items, local);
    // Per namespace, one identity stands for every pod labelled role=client (the label the
    // selector names): Job pods' unique labels and the app label do not split it.
    const n = entries(out);
    assert.ok(n <= 10 * 1 * 12, `${n} entries`);
  });

  it('20,000 pods, 1,000 namespaces, ~1,000 policies: compiles in well under 5 s and fits the default maps', () => {
    const { items, local } = clusterItems(20000, 1000, 110);
    for (let n = 0; n < 1000; n++) {
      const ns = `ns${n}`;
      if (n % 4 === 0) items.push(netpol(ns, 'default-deny', { podSelector: {}, policyTypes: ['Ingress', 'Egress'] }));
      if (n % 4 === 1) items.push(netpol(ns, 'from-all', { podSelector: {}, ingress: [{ from: [{ namespaceSelector: {} }], ports: [{ port: 8080 }] }] }));
      if (n % 4 === 2) items.push(netpol(ns, 'from-team', { podSelector: { matchLabels: { role: 'server' } }, ingress: [{ from: [{ namespaceSelector: { matchLabels: { monitoring: 'true' } } }, { podSelector: {} }] }] }));
      if (n % 4 === 3) items.push(netpol(ns, 'range', { podSelector: {}, ingress: [{ from: [{ podSelector: { matchLabels: { role: 'client' } } }], ports: [{ protocol: 'TCP', port: 1024, endPort: 65535 }, { protocol: 'UDP', port: 1024, endPort: 65535 }] }] }));
      if (n < 110) items.push(netpol(ns, 'dns', { podSelector: {}, policyTypes: ['Egress'], egress: [{ to: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } }, podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } }], ports: [{ protocol: 'UDP', port: 53 }, { protocol: 'TCP', port: 53 }] }, { to: [{ ipBlock: { cidr: '0.0.0.0/0', except: ['10.0.0.0/8', '169.254.169.254/32'] } }] }] }));
    }
    const t0 = performance.now();
    const out = build(items, local);
    const ms = performance.now() - t0;
    const n = entries(out);
    assert.ok(ms < 2500, `${Math.round(ms)} ms`);
    assert.ok(n < DEFAULTS.policyEntries / 16, `${n} entries`);
    assert.ok(out.ipcache.length < DEFAULTS.ipcacheEntries, `${out.ipcache.length} ipcache entries`);
  });
});

describe('map defaults', () => {
  it('the ipcache holds a whole supported Kubernetes cluster, dual stack: 150,000 pods, 5,000 nodes', () => {
    assert.ok(DEFAULTS.ipcacheEntries >= 2 * 150_000 + 2 * 5_000 + 1_000, String(DEFAULTS.ipcacheEntries));
  });
});

describe('slots', () => {
  it('pods of one group share a slot; a group keeps its slot; a number is never given again', () => {
    const g = (group: string) => ({ group });
    const first = assignSlots({ next: 1, slots: {} }, new Map([['x/a', g('A')], ['x/b', g('A')], ['x/c', g('B')]]));
    assert.equal(first.slots['x/a'], first.slots['x/b']);
    assert.notEqual(first.slots['x/a'], first.slots['x/c']);
    const second = assignSlots(first, new Map([['x/a', g('A')], ['x/b', g('C')]]));
    assert.equal(second.slots['x/a'], first.slots['x/a']);
    assert.ok(second.slots['x/b']! > Math.max(...Object.values(first.slots)), 'B\'s old slot is not reused for C');
    const third = assignSlots(second, new Map([['x/c', g('B')]]));
    assert.ok(third.slots['x/c']! > second.slots['x/b']!, 'a group gone and back gets a new slot');
  });
});

describe('a remote pod changed alone, with classes', () => {
  it('a pod of a namespace the compile had not seen brings its namespace class and the entries that name it; one more in a known namespace brings none', () => {
    const items: object[] = [{ kind: 'Namespace', metadata: { name: 'x', labels: {} } },
      { kind: 'Pod', metadata: { namespace: 'x', name: 'a', labels: {} }, spec: { nodeName: NODE, containers: [{ name: 'c' }] }, status: { phase: 'Running', podIPs: [{ ip: '10.0.0.2' }] } },
      netpol('x', 'from-w', { podSelector: {}, ingress: [{ from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'w' } } }, { namespaceSelector: {} }], ports: [{ port: 80 }] }] })];
    const out = build(items, ['x/a']);
    const before = out.pods.get('x/a')!.ingress!.length;
    const d = out.remotePod({ namespace: 'w', name: 'p', labels: { 'job-name': 'j1' }, ips: ['10.9.0.1'], nodeName: 'other', ports: [] });
    assert.equal(d.ipcache.length, 1);
    const ns = d.ipcache[0]!.ns;
    assert.ok(ns > 0);
    assert.deepEqual(d.allows.map((a) => [a.pod, a.dir, a.allow.identity, a.allow.port]), [['x/a', 'ingress', ns, 80]]);
    assert.equal(before, 1, 'namespaceSelector {}: one entry for the cluster class');
    const again = out.remotePod({ namespace: 'w', name: 'q', labels: { 'job-name': 'j2' }, ips: ['10.9.0.2'], nodeName: 'other', ports: [] });
    assert.deepEqual(again.allows, [], 'a Job pod with labels of its own is one more address of a known identity');
    assert.equal(again.ipcache[0]!.identity, d.ipcache[0]!.identity);
  });
});
