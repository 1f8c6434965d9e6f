// The node table's reconciler (lib/cluster/nodes.ts): the table from the watched Nodes, a
// wake only when the table changes, and a clear error while the API server never answered.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ClusterCache } from '../../lib/cluster/cache.js';
import { nodesReconciler } from '../../lib/cluster/nodes.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const node = (name: string, cidr: string | undefined, ip: string, ready = 'True'): object => ({
  metadata: { name }, spec: cidr ? { podCIDRs: [cidr] } : {},
  status: { addresses: [{ type: 'InternalIP', address: ip }], conditions: [{ type: 'Ready', status: ready }] },
});

describe('nodes reconciler', () => {
  it('reads the table from the watched Nodes and wakes the loop only when the table changes', async () => {
    const cache = new ClusterCache();
    let wakes = 0;
    const table = nodesReconciler(cache, () => void wakes++);
    assert.deepEqual(cache.kinds(), ['Node']);
    cache.relist('Node', [node('b', '10.244.2.0/24', '192.0.2.2'), node('a', '10.244.1.0/24', '192.0.2.1'), node('c', undefined, '192.0.2.3')]);
    assert.deepEqual(await table(), { nodes: [{ name: 'a', ip: '192.0.2.1', podCIDRs: ['10.244.1.0/24'] }, { name: 'b', ip: '192.0.2.2', podCIDRs: ['10.244.2.0/24'] }], pending: ['c'] });
    cache.event('Node', node('a', '10.244.1.0/24', '192.0.2.1', 'False'), false);
    await sleep(300);
    assert.equal(wakes, 0, 'a status update that leaves the table alone');
    cache.event('Node', node('c', '10.244.3.0/24', '192.0.2.3'), false);
    await sleep(300);
    assert.equal(wakes, 1, 'a pod CIDR allocated');
    assert.deepEqual((await table()).pending, []);
  });

  it('fails a round with the list\'s error while Nodes have never been listed', async () => {
    const cache = new ClusterCache();
    const table = nodesReconciler(cache, () => undefined);
    const ac = new AbortController();
    const done = cache.watch({ server: 'https://127.0.0.1:9' }, ac.signal, () => undefined);
    try {
      await assert.rejects(table(), /ECONNREFUSED/);
    } finally {
      ac.abort();
      await done;
    }
  });
});
