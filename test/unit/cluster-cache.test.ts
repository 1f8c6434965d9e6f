// The cluster cache (lib/cluster/cache.ts): a file's objects and a list reach the same typed
// stores, each kind by its registered parser, nothing raw kept.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ClusterCache } from '../../lib/cluster/cache.js';
import { nodeTable } from '../../lib/cluster/k8s.js';

describe('cluster cache', () => {
  it('feeds a List and plain objects by kind: every registered kind to its own store, the rest skipped with a reason', () => {
    const cache = new ClusterCache();
    const skipped = cache.feed([
      { kind: 'List', items: [
        { kind: 'Namespace', metadata: { name: 'x', labels: { team: 'a' } } },
        { kind: 'Service', metadata: { namespace: 'x', name: 'web', resourceVersion: '7', managedFields: [{}] }, spec: { type: 'NodePort', clusterIPs: ['10.96.0.10', 'fd00::10'], selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 'http', nodePort: 30080 }, { port: 53, protocol: 'UDP' }] } },
      ] },
      { kind: 'EndpointSliceList', items: [{ metadata: { namespace: 'x', name: 'web-abc', labels: { 'kubernetes.io/service-name': 'web' } }, addressType: 'IPv4', endpoints: [{ addresses: ['10.0.0.2'], nodeName: 'n1' }, { addresses: ['10.0.0.3'], conditions: { ready: false } }], ports: [{ name: 'http', port: 8080 }] }] },
      { kind: 'Node', metadata: { name: 'n1' }, spec: { podCIDRs: ['10.244.1.0/24'] }, status: { addresses: [{ type: 'InternalIP', address: '192.0.2.1' }, { type: 'Hostname', address: 'n1' }] } },
      { kind: 'Pod', metadata: { namespace: 'x', name: 'host' }, spec: { hostNetwork: true } },
      { kind: 'ConfigMap', metadata: { name: 'c' } },
    ]);
    assert.deepEqual(skipped, ['Pod host: no name, host network or finished', 'ConfigMap c: kind not used']);
    assert.deepEqual(cache.store('Namespace').items.get('x')!.labels, { team: 'a', 'kubernetes.io/metadata.name': 'x' });
    assert.deepEqual(cache.store('Service').items.get('x/web'), {
      namespace: 'x', name: 'web', type: 'NodePort', clusterIPs: ['10.96.0.10', 'fd00::10'], ipFamilies: [],
      ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 'http', nodePort: 30080 }, { name: '', protocol: 'UDP', port: 53 }],
      sessionAffinity: 'None', affinityTimeoutSeconds: 10800, internalTrafficPolicy: 'Cluster', externalTrafficPolicy: 'Cluster', healthCheckNodePort: 0,
      externalIPs: [], loadBalancerIngress: [], loadBalancerSourceRanges: [], headlessLabel: false,
    });
    assert.deepEqual(cache.store('EndpointSlice').items.get('x/web-abc'), {
      namespace: 'x', name: 'web-abc', service: 'web', addressType: 'IPv4',
      endpoints: [{ addresses: ['10.0.0.2'], ready: true, serving: true, terminating: false, nodeName: 'n1' }, { addresses: ['10.0.0.3'], ready: false, serving: true, terminating: false }],
      ports: [{ name: 'http', protocol: 'TCP', port: 8080 }],
    });
    assert.deepEqual(nodeTable(cache.store('Node').items.values()), { nodes: [{ name: 'n1', ip: '192.0.2.1', podCIDRs: ['10.244.1.0/24'] }], pending: [] });
    assert.ok(cache.synced(['Namespace', 'Pod', 'NetworkPolicy', 'Service']), 'a file is the whole cluster');
  });

  it('a pod that finishes leaves its store; a relist replaces the store and tells listeners before and after', () => {
    const cache = new ClusterCache();
    const seen: string[] = [];
    cache.subscribe('Pod', { willChange: (c) => void seen.push(`will ${c.type} ${cache.store('Pod').items.size}`), changed: (c) => void seen.push(`${c.type} ${cache.store('Pod').items.size}`) });
    const pod = (name: string, phase: string): object => ({ metadata: { namespace: 'x', name }, spec: { nodeName: 'n1' }, status: { phase, podIP: '10.0.0.9' } });
    cache.relist('Pod', [pod('a', 'Running'), pod('b', 'Running')]);
    cache.event('Pod', pod('a', 'Succeeded'), false);
    cache.event('Pod', pod('gone', 'Running'), true);
    assert.deepEqual([...cache.store('Pod').items.keys()], ['x/b']);
    assert.deepEqual(seen, ['will relist 0', 'relist 2', 'will update 2', 'update 1'], 'the delete of an unknown pod changes nothing');
  });
});
