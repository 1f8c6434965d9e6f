// The policy reconciler (lib/cli/sync-watch.ts) on the cluster cache, with its map work
// replaced by a record of what it was asked to do and a clock the test moves: which changes
// are applied alone and which compile everything, that other kinds never reach policy, the
// periodic full compile without events, and the retry of a failed apply.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ClusterCache, policyObjects } from '../../lib/cluster/cache.js';
import { kubeconfigAccess } from '../../lib/cluster/k8s.js';
import type { NetConf } from '../../lib/config/types.js';
import { policyReconciler, watchPolicy, type PolicyOps } from '../../lib/cli/sync-watch.js';
import type { PolicySync, PolicyView } from '../../lib/cli/sync-policy.js';
import type { PodObj } from '../../lib/policy/objects.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { FakeKube } from '../helpers/fake-kube.js';
import { removeDir, tempDir } from '../helpers/twill.js';

const NODE = 'node-1';
const conf = { name: 'net-a' } as NetConf;

interface Calls { full: number; remote: { pod: string | undefined; gone: string[] }[]; policies: number[] }

function fakeOps(calls: Calls, failures = { left: 0 }): PolicyOps {
  return {
    full: (_conf, objects) => {
      if (failures.left > 0) {
        failures.left--;
        throw new Error('map policy update: ENOSPC');
      }
      calls.full++;
      calls.policies.push(objects.policies.size);
      const local = new Set([...objects.pods.values()].filter((p) => p.nodeName === NODE).map((p) => `${p.namespace}/${p.name}`));
      const sync: PolicySync = { policies: objects.policies.size, identities: 0, localPods: local.size, unknown: [], problems: [] };
      return { sync, view: { compiled: { table: { next: 256, ids: {} } }, slots: { next: 1, slots: {} }, local, node: NODE } as unknown as PolicyView };
    },
    remote: (_conf, _view, pod: PodObj | undefined, gone) => {
      calls.remote.push({ pod: pod && `${pod.namespace}/${pod.name} ${pod.labels.app ?? ''}`, gone });
      return 1;
    },
  };
}

const pod = (ns: string, name: string, node: string, ip: string, app: string): object => ({ kind: 'Pod', metadata: { namespace: ns, name, labels: { app }, creationTimestamp: '2026-01-01T00:00:00Z' }, spec: { nodeName: node }, status: { phase: 'Running', podIPs: [{ ip }] } });
const netpol = (name: string): object => ({ kind: 'NetworkPolicy', metadata: { namespace: 'x', name }, spec: { podSelector: {} } });

function setup(failures = { left: 0 }): { cache: ClusterCache; clock: FakeClock; calls: Calls; log: string[] } {
  const cache = new ClusterCache();
  const clock = new FakeClock();
  const calls: Calls = { full: 0, remote: [], policies: [] };
  const log: string[] = [];
  policyReconciler(cache, () => [conf], 'test', { clock, ops: fakeOps(calls, failures), log: (_l, msg) => void log.push(msg) });
  return { cache, clock, calls, log };
}

function listed(cache: ClusterCache): void {
  cache.relist('Namespace', [{ metadata: { name: 'x' } }, { metadata: { name: 'y' } }]);
  cache.relist('Pod', [pod('x', 'a', NODE, '10.0.0.2', 'web'), pod('y', 'far', 'node-9', '10.9.0.5', 'db')]);
  cache.relist('NetworkPolicy', [netpol('deny')]);
}

describe('policy reconciler', () => {
  it('waits until Namespaces, Pods and NetworkPolicies have each been listed, then compiles once', () => {
    const { cache, clock, calls } = setup();
    cache.relist('Namespace', []);
    cache.relist('Pod', []);
    clock.advance(100);
    assert.equal(calls.full, 0, 'a partial view is never applied');
    cache.relist('NetworkPolicy', [netpol('deny')]);
    clock.advance(19);
    assert.equal(calls.full, 0, 'debounced');
    clock.advance(1);
    assert.equal(calls.full, 1);
  });

  it('a pod of another node is applied alone; a pod of this node, a namespace, a policy compile everything', () => {
    const { cache, clock, calls } = setup();
    listed(cache);
    clock.advance(20);
    assert.equal(calls.full, 1);
    cache.event('Pod', pod('y', 'far', 'node-9', '10.9.0.5', 'web'), false);
    clock.advance(20);
    assert.equal(calls.full, 1, 'no full compile for a remote pod');
    assert.deepEqual(calls.remote, [{ pod: 'y/far web', gone: [] }]);
    cache.event('Pod', pod('y', 'far', 'node-9', '10.9.0.5', 'web'), true);
    clock.advance(20);
    assert.deepEqual(calls.remote.at(-1), { pod: undefined, gone: ['10.9.0.5'] }, 'a deleted remote pod takes its address with it');
    cache.event('Pod', pod('x', 'a', NODE, '10.0.0.2', 'api'), false);
    clock.advance(20);
    assert.equal(calls.full, 2, 'a pod of this node');
    cache.event('Namespace', { metadata: { name: 'z' } }, false);
    clock.advance(20);
    assert.equal(calls.full, 3, 'a namespace');
    cache.event('NetworkPolicy', netpol('other'), false);
    clock.advance(20);
    assert.equal(calls.full, 4, 'a policy');
    assert.deepEqual(calls.policies.at(-1), 2);
  });

  it('Services and EndpointSlices have stores of their own: their relists and events never touch policy', () => {
    const { cache, clock, calls } = setup();
    // What a Services reconciler does: subscribe to its kinds.
    const seen: string[] = [];
    cache.subscribe('Service', { changed: (c) => void seen.push(c.type) });
    cache.subscribe('EndpointSlice', { changed: (c) => void seen.push(c.type) });
    listed(cache);
    clock.advance(20);
    const before = calls.full;
    cache.relist('Service', [{ metadata: { namespace: 'x', name: 'web' }, spec: { clusterIPs: ['10.96.0.10'], ports: [{ port: 80, targetPort: 8080 }], selector: { app: 'web' } } }]);
    cache.relist('EndpointSlice', [{ metadata: { namespace: 'x', name: 'web-1', labels: { 'kubernetes.io/service-name': 'web' } }, addressType: 'IPv4', endpoints: [{ addresses: ['10.0.0.2'], conditions: { ready: true }, nodeName: NODE }], ports: [{ port: 8080 }] }]);
    cache.event('Service', { metadata: { namespace: 'x', name: 'web' }, spec: { clusterIP: '10.96.0.11' } }, false);
    clock.advance(100);
    assert.deepEqual(seen, ['relist', 'relist', 'update']);
    assert.equal(calls.full, before, 'no policy compile');
    assert.deepEqual([...policyObjects(cache).policies.keys()], ['x/deny'], 'the policies are all there');
    assert.deepEqual(cache.store('Service').items.get('x/web'), {
      namespace: 'x', name: 'web', type: 'ClusterIP', clusterIPs: ['10.96.0.11'], ipFamilies: [], ports: [],
      sessionAffinity: 'None', affinityTimeoutSeconds: 10800, internalTrafficPolicy: 'Cluster', externalTrafficPolicy: 'Cluster', healthCheckNodePort: 0,
      externalIPs: [], loadBalancerIngress: [], loadBalancerSourceRanges: [], headlessLabel: false,
    });
    assert.deepEqual(cache.store('EndpointSlice').items.get('x/web-1')!.endpoints, [{ addresses: ['10.0.0.2'], ready: true, serving: true, terminating: false, nodeName: NODE }]);
    assert.deepEqual(cache.kinds(), ['Namespace', 'Pod', 'NetworkPolicy', 'Service', 'EndpointSlice'], 'subscribed kinds are the ones watched');
  });

  it('compiles everything every minute even when no event arrives', () => {
    const { cache, clock, calls } = setup();
    listed(cache);
    clock.advance(20);
    assert.equal(calls.full, 1);
    // A remote pod's change alone does not put off the periodic compile.
    clock.advance(30_000);
    cache.event('Pod', pod('y', 'far', 'node-9', '10.9.0.5', 'web'), false);
    clock.advance(29_000);
    assert.equal(calls.full, 1);
    clock.advance(1_100);
    assert.equal(calls.full, 2, 'the minute\'s compile');
    clock.advance(60_000);
    assert.equal(calls.full, 3, 'and the next');
  });

  it('a failed apply is retried on a timer with backoff, not left for the next event', () => {
    const failures = { left: 2 };
    const { cache, clock, calls, log } = setup(failures);
    listed(cache);
    clock.advance(20);
    assert.equal(calls.full, 0);
    assert.deepEqual(log, ['policy sync failed', 'policy sync retrying']);
    assert.deepEqual(clock.pending()[0], 1500, 'one second, jittered');
    clock.advance(1500);
    assert.equal(failures.left, 0, 'retried');
    assert.deepEqual(clock.pending()[0], 3000, 'then two, jittered');
    clock.advance(3000);
    assert.equal(calls.full, 1, 'applied with no event in between');
  });

  it('a change after a failure is applied after the debounce, not after the retry\'s backoff', () => {
    const failures = { left: 1 };
    const { cache, clock, calls } = setup(failures);
    listed(cache);
    clock.advance(20);
    assert.equal(calls.full, 0);
    cache.event('NetworkPolicy', netpol('other'), false);
    clock.advance(20);
    assert.equal(calls.full, 1);
  });
});

describe('policy reconciler on the watch', () => {
  const dir = tempDir('policy-reconciler');
  const kube = new FakeKube('tok');
  before(() => kube.start(dir));
  after(() => {
    kube.stop();
    removeDir(dir);
  });

  it('a remote pod\'s change arriving on the watch is applied alone', async () => {
    const access = await kubeconfigAccess(kube.writeKubeconfig(dir, 'token: tok'));
    kube.put('Namespace', { metadata: { name: 'x' } });
    kube.put('Namespace', { metadata: { name: 'y' } });
    kube.put('Pod', pod('x', 'a', NODE, '10.0.0.2', 'web') as never);
    kube.put('Pod', pod('y', 'far', 'node-9', '10.9.0.5', 'db') as never);
    kube.put('NetworkPolicy', netpol('deny') as never);
    const clock = new FakeClock();
    const calls: Calls = { full: 0, remote: [], policies: [] };
    const ac = new AbortController();
    const done = watchPolicy(access, () => [conf], ac.signal, { clock, ops: fakeOps(calls), log: () => undefined });
    const until = async (what: string, cond: () => boolean): Promise<void> => {
      const t0 = Date.now();
      while (!cond()) {
        if (Date.now() - t0 > 3000) throw new Error(`never: ${what}`);
        await new Promise((r) => setTimeout(r, 5));
        clock.advance(20);
      }
    };
    try {
      await until('the first compile', () => calls.full === 1);
      kube.put('Pod', pod('y', 'far', 'node-9', '10.9.0.5', 'web') as never);
      await until('applied alone', () => calls.remote.length === 1);
      assert.deepEqual(calls.remote, [{ pod: 'y/far web', gone: [] }]);
      assert.equal(calls.full, 1);
      kube.put('Service', { metadata: { namespace: 'x', name: 'web' }, spec: { clusterIP: '10.96.0.10' } });
      kube.delete('NetworkPolicy', 'x', 'deny');
      await until('the policy gone', () => calls.full === 2);
      assert.deepEqual(calls.policies, [1, 0]);
      assert.ok(!kube.requests.some((r) => r.url.startsWith('/api/v1/services')), 'Services are not watched while no reconciler wants them');
    } finally {
      ac.abort();
      await done;
    }
  });
});
