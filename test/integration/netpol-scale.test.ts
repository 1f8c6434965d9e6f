// A broad selector in a big cluster, with the default map sizes: "from any namespace" on a
// port and on TCP+UDP 1024-65535, in a 5,000-pod cluster whose StatefulSet and Job pods each
// carry labels of their own, syncs from a file and is enforced on real traffic. The policy trie
// holds a few entries per group of local pods, not local pods x cluster label sets x port blocks
// (which here would be ~360,000, over the default 262,144).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { NetpolCluster, type Pod, type Proto } from '../helpers/netpol.js';
import { cleanupNetns } from '../helpers/twill.js';

after(cleanupNetns);

const REMOTE = 5000;
const NAMESPACES = 100;

/** Remote pods with their controllers' labels, in addresses no test routes. */
function remotePods(c: NetpolCluster): object[] {
  for (let n = 0; n < NAMESPACES; n++) c.nsLabels.set(`scale${n}`, { team: `t${n % 7}` });
  const out: object[] = [];
  for (let i = 0; i < REMOTE; i++) {
    const labels: Record<string, string> = i % 2
      ? { app: `db${i % 9}`, 'controller-revision-hash': `db-${i % 3}`, 'statefulset.kubernetes.io/pod-name': `db-${i}`, 'apps.kubernetes.io/pod-index': String(i) }
      : { 'batch.kubernetes.io/controller-uid': `u${i}`, 'batch.kubernetes.io/job-name': `job${i}`, 'job-name': `job${i}`, 'controller-uid': `u${i}` };
    out.push({
      kind: 'Pod', apiVersion: 'v1', metadata: { namespace: `scale${i % NAMESPACES}`, name: `p${i}`, labels },
      spec: { nodeName: 'scale-other-node', containers: [{ name: 'c' }] },
      status: { phase: 'Running', podIPs: [{ ip: `100.64.${i >> 8}.${i & 255}` }] },
    });
  }
  return out;
}

const pol = (ns: string, name: string, spec: object): object => ({ metadata: { namespace: ns, name }, spec });
const broad = (ns: string): object => pol(ns, 'from-all-namespaces', {
  podSelector: {},
  ingress: [{ from: [{ namespaceSelector: {} }], ports: [{ protocol: 'TCP', port: 80 }, { protocol: 'TCP', port: 1024, endPort: 65535 }, { protocol: 'UDP', port: 1024, endPort: 65535 }] }],
});

describe('NetworkPolicy at cluster scale, default map sizes', () => {
  let c: NetpolCluster;
  before(() => {
    c = new NetpolCluster({ namespaces: ['x', 'y', 'z'], pods: ['a', 'b', 'c'], ports: [80, 81], protocols: ['TCP', 'UDP'] }).setup();
  });
  after(() => c.teardown());

  it('"from any namespace" on TCP 80 and TCP+UDP 1024-65535 for 6 local pods of a 5,000-pod cluster: a few entries, enforced', async () => {
    const r = c.sync([broad('x'), broad('y')], remotePods(c));
    const entries = Number(/(\d+) policy entries/.exec(r.stdout)?.[1] ?? NaN);
    const ipcache = Number(/(\d+) ipcache entries/.exec(r.stdout)?.[1] ?? NaN);
    // One group for x's pods, one for y's: 13 entries each (80 and 6 + 6 range blocks), whatever the cluster.
    assert.ok(entries <= 2 * 13, r.stdout);
    assert.ok(ipcache >= REMOTE + 9, r.stdout);
    const truth = (f: Pod, t: Pod, port: number, proto: Proto): boolean => f === t || t.ns === 'z' || (port === 80 && proto === 'TCP');
    assert.deepEqual(c.expect(await c.probe(), truth), []);
  });
});
