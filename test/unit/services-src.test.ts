// loadBalancerSourceRanges from the compile to the lb_src trie (lib/datapath/services-src.ts),
// on an in-memory trie with the kernel's capacity rule: which frontends are flagged, which
// entries a round adds and removes, and that a Service whose ranges do not fit stays closed.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LAYOUTS, LB_F_SRCRANGE } from '../../lib/bpf/abi-sock.generated.js';
import { parseEndpointSlice, parseService } from '../../lib/cluster/objects.js';
import { putSourceRanges, readSourceRanges, sourceRangeFlag, wantedSourceRanges } from '../../lib/datapath/services-src.js';
import { MemoryMap } from '../../lib/mirror/memory-map.js';
import { compileServices } from '../../lib/services/compile.js';
import { allocateServiceIds, emptyIdTable, modelServicePorts, toLbFrontends } from '../../lib/services/ids.js';
import type { LbFrontend } from '../../lib/services/model.js';

const trie = (maxEntries = 64): MemoryMap => new MemoryMap({ name: 'lb_src', kind: 'lpm', keySize: LAYOUTS.lb_src_key.size, valueSize: 1, maxEntries });
const fe = (f: Partial<LbFrontend>): LbFrontend => ({
  family: 4, address: '198.51.100.10', port: 443, protocol: 'TCP', scope: 'external', serviceId: 1, backends: [], terminating: [], whenEmpty: 'reject', affinitySeconds: 0, ...f,
});

describe('loadBalancerSourceRanges to the lb_src trie', () => {
  it('toLbFrontend carries the ranges of load-balancer frontends; only their external scope is flagged', () => {
    const svc = parseService({
      metadata: { namespace: 'x', name: 'lb' },
      spec: { type: 'LoadBalancer', clusterIPs: ['10.96.0.20'], ports: [{ port: 443, nodePort: 30443 }], loadBalancerSourceRanges: ['203.0.113.9/24', '2001:db8::/32'] },
      status: { loadBalancer: { ingress: [{ ip: '198.51.100.10' }] } },
    })!;
    const slice = parseEndpointSlice({ metadata: { namespace: 'x', name: 'lb-1', labels: { 'kubernetes.io/service-name': 'lb' } }, addressType: 'IPv4', ports: [{ port: 8443 }], endpoints: [{ addresses: ['10.0.0.1'], nodeName: 'n1' }] })!;
    const model = compileServices([svc], [slice], { name: 'n1', addresses: ['192.0.2.1'] }, { families: [4] });
    const fes = toLbFrontends(model, allocateServiceIds(emptyIdTable(), modelServicePorts(model)));
    const flagged = fes.filter((f) => sourceRangeFlag(f) === LB_F_SRCRANGE).map((f) => `${f.address}:${f.port}/${f.scope}`);
    assert.deepEqual(flagged, ['198.51.100.10:443/external'], 'not the NodePort, not the ClusterIP, not the internal scope');
    assert.deepEqual(fes.find((f) => f.address === '198.51.100.10' && f.scope === 'external')!.sourceRanges, ['203.0.113.0/24']);
    assert.equal(fes.find((f) => f.address === '192.0.2.1')!.sourceRanges, undefined);
  });

  it('a round adds the wanted ranges first and removes the stale ones only at prune', () => {
    const m = trie();
    putSourceRanges(m, [fe({ sourceRanges: ['203.0.113.0/24'] })]).prune();
    const round = putSourceRanges(m, [fe({ sourceRanges: ['192.0.2.0/25'] })]);
    // Between the two: the old and the new set (the flagged frontend never meets an empty set).
    assert.deepEqual(readSourceRanges(m), new Map([[1, ['192.0.2.0/25', '203.0.113.0/24']]]));
    assert.deepEqual(round.prune(), { put: 1, removed: 1, entries: 1, full: [] });
    assert.deepEqual(readSourceRanges(m), new Map([[1, ['192.0.2.0/25']]]));
  });

  it('with only, other Service ports keep their ranges; without, a Service port not given loses them', () => {
    const m = trie();
    putSourceRanges(m, [fe({ sourceRanges: ['203.0.113.0/24'] }), fe({ serviceId: 2, port: 80, sourceRanges: ['192.0.2.0/24'] })]).prune();
    putSourceRanges(m, [], new Set([2])).prune();
    assert.deepEqual(readSourceRanges(m), new Map([[1, ['203.0.113.0/24']]]));
    putSourceRanges(m, []).prune();
    assert.equal(m.size, 0);
  });

  it('a hostile Service with more ranges than fit stays closed (only the ranges written), and the others are written', () => {
    const m = trie(4);
    const many = Array.from({ length: 6 }, (_, i) => `10.${i}.0.0/16`);
    const r = putSourceRanges(m, [fe({ serviceId: 9, sourceRanges: many }), fe({ serviceId: 1, port: 80, address: '198.51.100.11', sourceRanges: ['203.0.113.0/24'] })]).prune();
    assert.deepEqual(r.full, [9]);
    assert.equal(m.size, 4);
    assert.deepEqual(readSourceRanges(m).get(1), ['203.0.113.0/24']);
    assert.equal(readSourceRanges(m).get(9)!.length, 3);
    assert.equal(sourceRangeFlag(fe({ serviceId: 9, sourceRanges: many })), LB_F_SRCRANGE, 'still flagged: what did not fit is not allowed');
  });

  it('a range that is no CIDR of the frontend\'s family is refused before anything is written', () => {
    const m = trie();
    assert.throws(() => putSourceRanges(m, [fe({ sourceRanges: ['203.0.113.0/24'] }), fe({ serviceId: 2, sourceRanges: ['2001:db8::/32'] })]), /no IPv4 CIDR/);
    assert.throws(() => wantedSourceRanges([fe({ sourceRanges: ['nope'] })]), /no IPv4 CIDR/);
    assert.equal(m.size, 0);
  });
});
