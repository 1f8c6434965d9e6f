// Services and EndpointSlices → frontends (lib/services/compile.ts), by kube-proxy's rules:
// each case is one rule of pkg/proxy (CategorizeEndpoints, the slice cache, the proxiers'
// REJECT/DROP and short-circuit rules), from API JSON through the cluster cache's parsers.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseEndpointSlice, parseService } from '../../lib/cluster/objects.js';
import { compileServices } from '../../lib/services/compile.js';
import { frontendKey, type Frontend, type ServicesModel } from '../../lib/services/model.js';
import type { EndpointSliceObj, ServiceObj } from '../../lib/services/objects.js';

type Json = Record<string, unknown>;
const NODE = { name: 'n1', addresses: ['192.0.2.1', '2001:db8::1'] };

function svc(name: string, spec: Json, extra: { labels?: Record<string, string>; status?: Json; namespace?: string; created?: string } = {}): ServiceObj {
  const s = parseService({ metadata: { namespace: extra.namespace ?? 'x', name, labels: extra.labels ?? {}, ...(extra.created ? { creationTimestamp: extra.created } : {}) }, spec: { clusterIPs: ['10.96.0.10'], ports: [{ name: 'http', port: 80, targetPort: 'web' }], ...spec }, status: extra.status ?? {} });
  assert.ok(s);
  return s;
}

interface Ep { ip: string | string[]; node?: string; ready?: boolean; serving?: boolean; terminating?: boolean }
function slice(name: string, service: string, eps: Ep[], ports: Json[] = [{ name: 'http', port: 8080 }], addressType = 'IPv4', namespace = 'x'): EndpointSliceObj {
  const s = parseEndpointSlice({
    metadata: { namespace, name, labels: { 'kubernetes.io/service-name': service } }, addressType, ports,
    endpoints: eps.map((e) => ({
      addresses: Array.isArray(e.ip) ? e.ip : [e.ip],
      ...(e.node ? { nodeName: e.node } : {}),
      conditions: { ...(e.ready !== undefined ? { ready: e.ready } : {}), ...(e.serving !== undefined ? { serving: e.serving } : {}), ...(e.terminating !== undefined ? { terminating: e.terminating } : {}) },
    })),
  });
  assert.ok(s);
  return s;
}

const compile = (services: ServiceObj[], slices: EndpointSliceObj[], node = NODE, families?: (4 | 6)[]): ServicesModel =>
  compileServices(services, slices, node, families ? { families } : {});
const only = (m: ServicesModel, where: Partial<Frontend>): Frontend[] =>
  m.frontends.filter((f) => Object.entries(where).every(([k, v]) => (f as unknown as Record<string, unknown>)[k] === v));
const one = (m: ServicesModel, where: Partial<Frontend>): Frontend => {
  const l = only(m, where);
  assert.equal(l.length, 1, `one frontend ${JSON.stringify(where)}: ${l.map(frontendKey).join(', ')}`);
  return l[0]!;
};
const addrs = (bs: { address: string; port: number }[]): string[] => bs.map((b) => `${b.address}:${b.port}`);

describe('services: the parsers keep the fields load balancing needs, with the API defaults', () => {
  it('conditions: ready nil → true, serving nil → true (kube-proxy slice cache), terminating nil → false', () => {
    const s = slice('s', 'web', [{ ip: '10.0.0.1' }, { ip: '10.0.0.2', ready: false, terminating: true }, { ip: '10.0.0.3', ready: false, serving: false, terminating: true }]);
    assert.deepEqual(s.endpoints.map((e) => [e.ready, e.serving, e.terminating]), [[true, true, false], [false, true, true], [false, false, true]]);
  });

  it('a Service: affinity timeout defaults to 10800, traffic policies to Cluster, ipMode to VIP; labels read', () => {
    const s = svc('web', { type: 'LoadBalancer', sessionAffinity: 'ClientIP', externalTrafficPolicy: 'Local', healthCheckNodePort: 31000, externalIPs: ['198.51.100.7'], loadBalancerSourceRanges: [' 203.0.113.0/24 '], selector: { app: 'web' } },
      { labels: { 'service.kubernetes.io/service-proxy-name': 'other' }, status: { loadBalancer: { ingress: [{ ip: '198.51.100.9' }, { hostname: 'lb.example' }, { ip: '198.51.100.10', ipMode: 'Proxy' }] } } });
    assert.deepEqual(s, {
      namespace: 'x', name: 'web', type: 'LoadBalancer', clusterIPs: ['10.96.0.10'], ipFamilies: [],
      ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 'web' }],
      sessionAffinity: 'ClientIP', affinityTimeoutSeconds: 10800, internalTrafficPolicy: 'Cluster', externalTrafficPolicy: 'Local', healthCheckNodePort: 31000,
      externalIPs: ['198.51.100.7'], loadBalancerIngress: [{ ip: '198.51.100.9', ipMode: 'VIP' }, { ip: '198.51.100.10', ipMode: 'Proxy' }],
      loadBalancerSourceRanges: ['203.0.113.0/24'], proxyName: 'other', headlessLabel: false,
    });
    assert.equal(svc('t', { sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 60 } } }).affinityTimeoutSeconds, 60);
  });
});

describe('services: endpoints of a Service port (the slice cache)', () => {
  it('targetPort by name: every slice of the Service gives its own number for the port of the same name', () => {
    const m = compile([svc('web', {})], [
      slice('web-a', 'web', [{ ip: '10.0.0.1' }], [{ name: 'http', port: 8080 }, { name: 'metrics', port: 9090 }]),
      slice('web-b', 'web', [{ ip: '10.0.0.2' }], [{ name: 'http', port: 8081 }]),
      slice('web-c', 'web', [{ ip: '10.0.0.3' }], [{ name: 'other', port: 80 }]),
      slice('web-d', 'web', [{ ip: '10.0.0.4' }], [{ name: 'http', port: 8080, protocol: 'UDP' }]),
      slice('api-a', 'api', [{ ip: '10.0.0.5' }]),
      slice('web-z', 'web', [{ ip: '10.0.0.6' }], [{ name: 'http', port: 8080 }], 'IPv4', 'other-ns'),
    ]);
    const f = one(m, { kind: 'clusterIP' });
    assert.deepEqual(addrs(f.backends.ready), ['10.0.0.1:8080', '10.0.0.2:8081'], 'matched by name and protocol; another Service or namespace is not ours');
    assert.equal(f.verdict, 'forward');
    assert.deepEqual({ address: f.address, port: f.port, protocol: f.protocol, scope: f.scope, service: f.service, portName: f.portName }, { address: '10.96.0.10', port: 80, protocol: 'TCP', scope: 'internal', service: 'x/web', portName: 'http' });
  });

  it('an unnamed port matches the slice port named ""', () => {
    const m = compile([svc('dns', { ports: [{ port: 53, protocol: 'UDP' }, { port: 53, protocol: 'TCP' }] })], [slice('dns-a', 'dns', [{ ip: '10.0.0.9' }], [{ port: 5353, protocol: 'UDP' }, { port: 5300, protocol: 'TCP' }])]);
    assert.deepEqual(addrs(one(m, { protocol: 'UDP' }).backends.ready), ['10.0.0.9:5353']);
    assert.deepEqual(addrs(one(m, { protocol: 'TCP' }).backends.ready), ['10.0.0.9:5300']);
  });

  it('only addresses[0]; duplicates across slices once (a local copy wins); FQDN and foreign-family slices ignored', () => {
    const m = compile([svc('web', { internalTrafficPolicy: 'Local' })], [
      slice('web-a', 'web', [{ ip: ['10.0.0.1', '10.0.0.100'], node: 'n2' }, { ip: '10.0.0.2', node: 'n2' }]),
      slice('web-b', 'web', [{ ip: '10.0.0.2', node: 'n1' }, { ip: 'not-an-ip' }, { ip: 'fd00::1' }, { ip: ['fd00::9', '10.0.0.8'], node: 'n1' }]),
      slice('web-f', 'web', [{ ip: 'web.example.com' }, { ip: '10.0.0.7', node: 'n1' }], [{ name: 'http', port: 8080 }], 'FQDN'),
      slice('web-6', 'web', [{ ip: 'fd00::2' }], [{ name: 'http', port: 8080 }], 'IPv6'),
    ]);
    const f = one(m, { kind: 'clusterIP' });
    assert.deepEqual(f.backends.ready, [{ address: '10.0.0.2', port: 8080, local: true }], 'ITP Local sees the local copy of 10.0.0.2; 10.0.0.100 is never used');
    const c = compile([svc('web', {})], [slice('web-a', 'web', [{ ip: '10.0.0.2', node: 'n2' }]), slice('web-b', 'web', [{ ip: '10.0.0.2', node: 'n2', ready: false }])]);
    assert.deepEqual(one(c, { kind: 'clusterIP' }).backends.ready, [{ address: '10.0.0.2', port: 8080, local: false }], 'the first slice by name keeps a duplicate');
  });

  it('terminating fallback: no ready endpoint → serving and terminating ones; not serving ones never', () => {
    const eps: Ep[] = [{ ip: '10.0.0.1', ready: false, serving: true, terminating: true }, { ip: '10.0.0.2', ready: false, serving: false, terminating: true }, { ip: '10.0.0.3', ready: false }];
    const f = one(compile([svc('web', {})], [slice('web-a', 'web', eps)]), { kind: 'clusterIP' });
    assert.deepEqual(f.backends, { ready: [], terminating: [{ address: '10.0.0.1', port: 8080, local: false }] });
    assert.equal(f.verdict, 'forward');
    const g = one(compile([svc('web', {})], [slice('web-a', 'web', [...eps, { ip: '10.0.0.4' }])]), { kind: 'clusterIP' });
    assert.deepEqual(addrs(g.backends.ready), ['10.0.0.4:8080'], 'a ready endpoint is preferred; the terminating list waits for ready to empty');
    assert.deepEqual(addrs(g.backends.terminating), ['10.0.0.1:8080']);
  });

  it('no usable endpoint at all → reject on every frontend (kube-proxy REJECT), never drop', () => {
    const s = svc('web', { type: 'NodePort', ports: [{ name: 'http', port: 80, nodePort: 30080 }], externalTrafficPolicy: 'Local', internalTrafficPolicy: 'Local' });
    for (const sl of [[], [slice('web-a', 'web', [{ ip: '10.0.0.1', ready: false }, { ip: '10.0.0.2', ready: false, serving: false, terminating: true }])]]) {
      const m = compile([s], sl);
      assert.ok(m.frontends.length >= 3);
      for (const f of m.frontends) {
        assert.equal(f.verdict, 'reject', frontendKey(f));
        assert.deepEqual(f.backends, { ready: [], terminating: [] });
      }
    }
  });
});

describe('services: traffic policies', () => {
  const remote = slice('web-a', 'web', [{ ip: '10.0.0.1', node: 'n2' }, { ip: '10.0.0.2', node: 'n3' }]);
  const withLocal = slice('web-b', 'web', [{ ip: '10.0.1.1', node: 'n1' }]);

  it('internalTrafficPolicy Local: the ClusterIP uses local endpoints only, drops when there are none here', () => {
    const s = svc('web', { internalTrafficPolicy: 'Local' });
    const a = one(compile([s], [remote, withLocal]), { kind: 'clusterIP' });
    assert.deepEqual(a.backends.ready, [{ address: '10.0.1.1', port: 8080, local: true }]);
    assert.equal(a.policy, 'Local');
    const b = one(compile([s], [remote]), { kind: 'clusterIP' });
    assert.equal(b.verdict, 'drop');
    assert.deepEqual(b.backends, { ready: [], terminating: [] });
    assert.deepEqual(addrs(one(compile([svc('web', {})], [remote, withLocal]), { kind: 'clusterIP' }).backends.ready), ['10.0.0.1:8080', '10.0.0.2:8080', '10.0.1.1:8080'], 'Cluster: every endpoint');
  });

  it('a Local policy falls back to local serving-and-terminating endpoints even while remote ready ones exist', () => {
    const m = compile([svc('web', { internalTrafficPolicy: 'Local' })], [remote, slice('web-b', 'web', [{ ip: '10.0.1.1', node: 'n1', ready: false, terminating: true }])]);
    const f = one(m, { kind: 'clusterIP' });
    assert.deepEqual(f.backends, { ready: [], terminating: [{ address: '10.0.1.1', port: 8080, local: true }] });
    assert.equal(f.verdict, 'forward');
  });

  it('externalTrafficPolicy Local: outside traffic to a NodePort/LB/external IP uses local endpoints; pods and the node are short-circuited to the cluster endpoints', () => {
    const s = svc('web', { type: 'LoadBalancer', externalTrafficPolicy: 'Local', ports: [{ name: 'http', port: 80, nodePort: 30080 }], externalIPs: ['198.51.100.7'] }, { status: { loadBalancer: { ingress: [{ ip: '198.51.100.9' }] } } });
    const m = compile([s], [remote, withLocal]);
    for (const kind of ['nodePort', 'externalIP', 'loadBalancer'] as const) {
      const ext = one(m, { kind, scope: 'external', family: 4 });
      assert.deepEqual(addrs(ext.backends.ready), ['10.0.1.1:8080'], kind);
      assert.equal(ext.policy, 'Local');
      const int = one(m, { kind, scope: 'internal', family: 4 });
      assert.deepEqual(addrs(int.backends.ready), ['10.0.0.1:8080', '10.0.0.2:8080', '10.0.1.1:8080'], `${kind} from a pod or the node`);
      assert.equal(int.policy, 'Cluster');
    }
    assert.deepEqual(addrs(one(m, { kind: 'clusterIP' }).backends.ready), ['10.0.0.1:8080', '10.0.0.2:8080', '10.0.1.1:8080'], 'ETP does not touch the ClusterIP');

    const n = compile([s], [remote]);
    for (const f of only(n, { scope: 'external' })) assert.equal(f.verdict, 'drop', frontendKey(f));
    for (const f of only(n, { scope: 'internal' })) assert.equal(f.verdict, 'forward', frontendKey(f));
  });

  it('both policies Local: pods and the node reaching a NodePort still get the cluster endpoints (kube-proxy keeps them for the short-circuit)', () => {
    const s = svc('web', { type: 'NodePort', externalTrafficPolicy: 'Local', internalTrafficPolicy: 'Local', ports: [{ name: 'http', port: 80, nodePort: 30080 }] });
    const m = compile([s], [remote]);
    assert.equal(one(m, { kind: 'clusterIP' }).verdict, 'drop');
    assert.equal(one(m, { kind: 'nodePort', scope: 'external', family: 4 }).verdict, 'drop');
    assert.deepEqual(addrs(one(m, { kind: 'nodePort', scope: 'internal', family: 4 }).backends.ready), ['10.0.0.1:8080', '10.0.0.2:8080']);
  });

  it('externalTrafficPolicy Local applies to a ClusterIP Service\'s external IPs too (it is externally accessible), with no health check', () => {
    const m = compile([svc('web', { externalIPs: ['198.51.100.7'], externalTrafficPolicy: 'Local', healthCheckNodePort: 31000 })], [remote, withLocal]);
    assert.deepEqual(addrs(one(m, { kind: 'externalIP', scope: 'external' }).backends.ready), ['10.0.1.1:8080']);
    assert.equal(one(m, { kind: 'externalIP', scope: 'internal' }).backends.ready.length, 3);
    assert.deepEqual(m.health, []);
    assert.ok(m.frontends.every((f) => f.healthCheckNodePort === 0));
  });

  it('externalTrafficPolicy Cluster: every external frontend uses every endpoint', () => {
    const s = svc('web', { type: 'NodePort', ports: [{ name: 'http', port: 80, nodePort: 30080 }] });
    const m = compile([s], [remote, withLocal]);
    for (const f of m.frontends) assert.equal(f.backends.ready.length, 3, frontendKey(f));
  });
});

describe('services: frontends of a Service', () => {
  it('NodePort on each of the node\'s addresses of the family, external and internal; the ClusterIP internal only', () => {
    const s = svc('web', { type: 'NodePort', ports: [{ name: 'http', port: 80, nodePort: 30080 }] });
    const m = compile([s], [slice('web-a', 'web', [{ ip: '10.0.0.1' }])], { name: 'n1', addresses: ['192.0.2.1', '192.0.2.2', '2001:db8::1', 'junk'] });
    assert.deepEqual(m.frontends.map((f) => `${f.kind} ${frontendKey(f)}`), [
      'clusterIP 4|10.96.0.10|80|TCP|internal',
      'nodePort 4|192.0.2.1|30080|TCP|external', 'nodePort 4|192.0.2.1|30080|TCP|internal',
      'nodePort 4|192.0.2.2|30080|TCP|external', 'nodePort 4|192.0.2.2|30080|TCP|internal',
    ], 'a single-stack Service has no IPv6 frontend, even on a dual-stack node');
  });

  it('load-balancer ingress: ipMode Proxy skipped; source ranges of the family on LB frontends only; healthCheckNodePort with the local ready count', () => {
    const s = svc('web', {
      type: 'LoadBalancer', externalTrafficPolicy: 'Local', healthCheckNodePort: 31000, externalIPs: ['198.51.100.7'],
      ports: [{ name: 'http', port: 80, nodePort: 30080 }, { name: 'https', port: 443, nodePort: 30443 }],
      loadBalancerSourceRanges: ['203.0.113.9/24', '2001:db8:1::/48', 'bad'],
    }, { status: { loadBalancer: { ingress: [{ ip: '198.51.100.9', ipMode: 'VIP' }, { ip: '198.51.100.10', ipMode: 'Proxy' }] } } });
    const sl = slice('web-a', 'web', [{ ip: '10.0.1.1', node: 'n1' }, { ip: '10.0.1.2', node: 'n1', ready: false, terminating: true }, { ip: '10.0.0.1', node: 'n2' }], [{ name: 'http', port: 8080 }, { name: 'https', port: 8443 }]);
    const m = compile([s], [sl]);
    assert.deepEqual([...new Set(only(m, { kind: 'loadBalancer' }).map((f) => f.address))], ['198.51.100.9']);
    for (const f of m.frontends) {
      assert.deepEqual(f.sourceRanges, f.kind === 'loadBalancer' ? ['203.0.113.0/24'] : [], frontendKey(f));
      assert.equal(f.healthCheckNodePort, 31000);
    }
    assert.deepEqual(m.health, [{ service: 'x/web', namespace: 'x', name: 'web', nodePort: 31000, localEndpoints: 1 }], 'one address on two ports counts once; terminating ones do not count');
    assert.deepEqual(compile([{ ...s, externalTrafficPolicy: 'Cluster' }], [sl]).health, [], 'ETP Cluster: no health check');
    assert.deepEqual(compile([{ ...s, type: 'NodePort' }], [sl]).health, [], 'NodePort: no health check');
    assert.deepEqual(compile([s], []).health, [{ service: 'x/web', namespace: 'x', name: 'web', nodePort: 31000, localEndpoints: 0 }]);
  });

  it('sessionAffinity ClientIP: the default timeout 10800 s, or the one given; None: 0', () => {
    const sl = [slice('web-a', 'web', [{ ip: '10.0.0.1' }])];
    assert.equal(one(compile([svc('web', { sessionAffinity: 'ClientIP' })], sl), { kind: 'clusterIP' }).affinitySeconds, 10800);
    assert.equal(one(compile([svc('web', { sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 30 } } })], sl), { kind: 'clusterIP' }).affinitySeconds, 30);
    assert.equal(one(compile([svc('web', { sessionAffinityConfig: { clientIP: { timeoutSeconds: 30 } } })], sl), { kind: 'clusterIP' }).affinitySeconds, 0);
  });

  it('headless, ExternalName, a clusterIP-less Service and the service-proxy-name / headless labels are left alone', () => {
    const sl = ['a', 'b', 'c', 'd', 'e'].map((n) => slice(`${n}-1`, n, [{ ip: '10.0.0.1' }]));
    const m = compile([
      svc('a', { clusterIPs: ['None'] }),
      svc('b', { type: 'ExternalName', externalName: 'example.com', clusterIPs: [] }),
      svc('c', { clusterIPs: [] }),
      svc('d', {}, { labels: { 'service.kubernetes.io/service-proxy-name': 'elsewhere' } }),
      svc('e', {}, { labels: { 'service.kubernetes.io/headless': '' } }),
      svc('f', {}),
    ], sl);
    assert.deepEqual(m.frontends.map((f) => f.service), ['x/f']);
    assert.deepEqual(m.skipped, [
      { service: 'x/a', reason: 'headless (no cluster IP)' },
      { service: 'x/b', reason: 'type ExternalName' },
      { service: 'x/c', reason: 'headless (no cluster IP)' },
      { service: 'x/d', reason: 'label service.kubernetes.io/service-proxy-name=elsewhere' },
      { service: 'x/e', reason: 'label service.kubernetes.io/headless' },
    ]);
  });

  it('dual-stack: one frontend set per family of ipFamilies/clusterIPs, each with its own family\'s slices, node addresses and external IPs', () => {
    const s = svc('web', {
      type: 'NodePort', ipFamilies: ['IPv6', 'IPv4'], clusterIPs: ['fd00:0:0::10', '10.96.0.10'], externalIPs: ['198.51.100.7', '2001:db8:7::7'],
      ports: [{ name: 'http', port: 80, nodePort: 30080 }],
    });
    const m = compile([s], [slice('web-4', 'web', [{ ip: '10.0.0.1' }]), slice('web-6', 'web', [{ ip: 'fd00::a:1' }], [{ name: 'http', port: 8080 }], 'IPv6')]);
    assert.deepEqual(m.frontends.filter((f) => f.scope === 'internal').map((f) => `${f.kind} ${f.address} → ${addrs(f.backends.ready).join(' ')}`).sort(), [
      'clusterIP 10.96.0.10 → 10.0.0.1:8080', 'clusterIP fd00::10 → fd00::a:1:8080',
      'externalIP 198.51.100.7 → 10.0.0.1:8080', 'externalIP 2001:db8:7::7 → fd00::a:1:8080',
      'nodePort 192.0.2.1 → 10.0.0.1:8080', 'nodePort 2001:db8::1 → fd00::a:1:8080',
    ]);
    assert.deepEqual([...new Set(compile([s], [], NODE, [4]).frontends.map((f) => f.family))], [4], 'a node serving IPv4 only');
    const old = svc('old', { clusterIPs: ['fd00::20'] });
    assert.deepEqual(compile([old], []).frontends.map((f) => `${f.family} ${f.address}`), ['6 fd00::20'], 'no ipFamilies: the clusterIP\'s own family');
    const mismatch = svc('bad', { ipFamilies: ['IPv4'], clusterIPs: ['fd00::30'] });
    assert.deepEqual(compile([mismatch], []).frontends, [], 'a clusterIP of the wrong family is not served');
  });

  it('SCTP is kept; TCP and UDP on one port number are two frontends', () => {
    const s = svc('sig', { ports: [{ name: 's', port: 3868, protocol: 'SCTP' }, { name: 't', port: 3868, protocol: 'TCP' }, { name: 'u', port: 3868, protocol: 'UDP' }] });
    const m = compile([s], [slice('sig-a', 'sig', [{ ip: '10.0.0.1' }], [{ name: 's', port: 3868, protocol: 'SCTP' }, { name: 't', port: 3868 }, { name: 'u', port: 3868, protocol: 'UDP' }])]);
    assert.deepEqual(m.frontends.map((f) => `${f.protocol} ${f.verdict}`), ['SCTP forward', 'TCP forward', 'UDP forward']);
  });

  it('two Services claiming one external IP and port: the first by name keeps it, the other is reported', () => {
    const a = svc('a', { externalIPs: ['198.51.100.7'] });
    const b = svc('b', { clusterIPs: ['10.96.0.11'], externalIPs: ['198.51.100.7'] });
    const m = compile([b, a], []);
    assert.deepEqual(only(m, { kind: 'externalIP' }).map((f) => f.service), ['x/a', 'x/a']);
    assert.deepEqual(m.skipped.map((s) => s.service), ['x/b', 'x/b']);
    assert.match(m.skipped[0]!.reason, /already served for x\/a/);
  });

  // A tenant's Service (CVE-2020-8554 class) cannot take a ClusterIP, the node's ports or a pod's
  // address by naming it as an externalIP or LB IP, whatever its namespace sorts as.
  it('an externalIP naming another Service\'s ClusterIP is refused: the ClusterIP keeps its frontends in both scopes', () => {
    const dns = svc('kube-dns', { clusterIPs: ['10.96.0.10'], ports: [{ name: 'dns', port: 53, protocol: 'UDP' }] }, { namespace: 'kube-system', created: '2020-01-01T00:00:00Z' });
    const evil = svc('x', { clusterIPs: ['10.96.0.99'], externalIPs: ['10.96.0.10'], ports: [{ name: 'dns', port: 53, protocol: 'UDP' }] }, { namespace: 'aaa', created: '2019-01-01T00:00:00Z' });
    const m = compile([evil, dns], [slice('d', 'kube-dns', [{ ip: '10.244.0.53' }], [{ name: 'dns', port: 53, protocol: 'UDP' }], 'IPv4', 'kube-system'), slice('e', 'x', [{ ip: '10.244.9.9' }], [{ name: 'dns', port: 53, protocol: 'UDP' }], 'IPv4', 'aaa')]);
    const at = only(m, { address: '10.96.0.10' });
    assert.deepEqual(at.map((f) => [f.service, f.kind, f.scope]), [['kube-system/kube-dns', 'clusterIP', 'internal']]);
    assert.deepEqual(addrs(at[0]!.backends.ready), ['10.244.0.53:53']);
    assert.equal(only(m, { service: 'aaa/x', kind: 'externalIP' }).length, 0);
    assert.ok(m.skipped.some((s) => s.service === 'aaa/x' && /externalIP 10\.96\.0\.10 refused: the ClusterIP of kube-system\/kube-dns/.test(s.reason)), JSON.stringify(m.skipped));
  });

  it('a ClusterIP wins a clash with another Service\'s external claim whatever the names and ages (two Services given one address)', () => {
    const victim = svc('zzz', { clusterIPs: ['10.96.0.1'], ports: [{ name: 'https', port: 443 }] }, { namespace: 'zzz', created: '2024-01-01T00:00:00Z' });
    // The LB IP path: the ClusterIP set is built from every Service, so the refusal names it; the clash rule is the backstop.
    const evil = svc('a', { type: 'LoadBalancer', clusterIPs: ['10.96.0.2'], ports: [{ name: 'https', port: 443, nodePort: 30443 }] }, { namespace: 'aaa', created: '2000-01-01T00:00:00Z', status: { loadBalancer: { ingress: [{ ip: '10.96.0.1' }] } } });
    const m = compile([evil, victim], []);
    assert.deepEqual(only(m, { address: '10.96.0.1' }).map((f) => `${f.service} ${f.kind}`), ['zzz/zzz clusterIP']);
    assert.ok(m.skipped.some((s) => s.service === 'aaa/a' && /load-balancer IP 10\.96\.0\.1 refused/.test(s.reason)));
  });

  it('two Services\' external claims of one address:port: the oldest wins (not the name), the other is skipped naming it', () => {
    const old = svc('zzz', { externalIPs: ['198.51.100.7'] }, { namespace: 'zzz', created: '2020-01-01T00:00:00Z' });
    const young = svc('aaa', { clusterIPs: ['10.96.0.11'], externalIPs: ['198.51.100.7'] }, { namespace: 'aaa', created: '2021-06-01T00:00:00Z' });
    const m = compile([young, old], []);
    assert.deepEqual(only(m, { kind: 'externalIP' }).map((f) => f.service), ['zzz/zzz', 'zzz/zzz']);
    assert.ok(m.skipped.length > 0 && m.skipped.every((s) => s.service === 'aaa/aaa' && /already served for zzz\/zzz/.test(s.reason)), JSON.stringify(m.skipped));
  });

  it('externalIPs and LB IPs on this node\'s addresses, a pod\'s address or a special address are refused; others programmed', () => {
    const special = ['0.0.0.0', '127.0.0.1', '169.254.169.254', '224.0.0.1', '255.255.255.255'];
    const s = svc('t', { type: 'LoadBalancer', externalIPs: ['192.0.2.1', '10.244.5.5', ...special, '198.51.100.7'], ports: [{ name: 'ssh', port: 22, nodePort: 30022 }] },
      { status: { loadBalancer: { ingress: [{ ip: '192.0.2.1' }, { ip: '198.51.100.8' }] } } });
    const other = slice('o', 'other', [{ ip: '10.244.5.5' }], [{ name: 'ssh', port: 22 }], 'IPv4', 'y');
    const m = compile([s], [other]);
    assert.deepEqual([...new Set(only(m, { service: 'x/t' }).filter((f) => f.kind === 'externalIP' || f.kind === 'loadBalancer').map((f) => f.address))].sort(), ['198.51.100.7', '198.51.100.8']);
    // The node's own port 22 is not taken; its NodePort is still served there.
    assert.equal(only(m, { address: '192.0.2.1', port: 22 }).length, 0);
    assert.equal(only(m, { address: '192.0.2.1', port: 30022, kind: 'nodePort' }).length, 2);
    const reasons = m.skipped.map((x) => x.reason).join('\n');
    assert.match(reasons, /externalIP 192\.0\.2\.1 refused: an address of this node/);
    assert.match(reasons, /load-balancer IP 192\.0\.2\.1 refused: an address of this node/);
    assert.match(reasons, /externalIP 10\.244\.5\.5 refused: an endpoint \(pod\) address of y\/other/);
    for (const a of special) assert.match(reasons, new RegExp(`externalIP ${a.replace(/\./g, '\\.')} refused: `));
  });

  it('services.externalIPs: only addresses inside the allowlist are programmed', () => {
    const s = svc('t', { externalIPs: ['198.51.100.7', '203.0.113.9'] });
    const m = compileServices([s], [], NODE, { externalCIDRs: ['203.0.113.0/24'] });
    assert.deepEqual([...new Set(only(m, { kind: 'externalIP' }).map((f) => f.address))], ['203.0.113.9']);
    assert.match(m.skipped.map((x) => x.reason).join('\n'), /externalIP 198\.51\.100\.7 refused: outside services\.externalIPs/);
    assert.deepEqual(only(compileServices([s], [], NODE, { externalCIDRs: [] }), { kind: 'externalIP' }), []);
  });

  it('endpoints that are unspecified, loopback, link-local or multicast are ignored with a reason (CVE-2021-25740 class)', () => {
    const s = svc('web', { type: 'NodePort', ports: [{ name: 'http', port: 80, nodePort: 30080 }] });
    const bad = ['0.0.0.0', '127.0.0.1', '169.254.169.254', '224.0.0.5'];
    const m = compile([s], [slice('w', 'web', [...bad.map((ip) => ({ ip })), { ip: '10.244.0.5' }]), slice('w6', 'web', [{ ip: '::1' }, { ip: 'fe80::1' }, { ip: 'ff02::1' }, { ip: '::ffff:127.0.0.1' }, { ip: '2001:db8:1::5' }], [{ name: 'http', port: 8080 }], 'IPv6')], NODE);
    for (const f of only(m, { service: 'x/web' }).filter((x) => x.family === 4)) assert.deepEqual(addrs(f.backends.ready), ['10.244.0.5:8080']);
    const reasons = m.skipped.map((x) => x.reason).join('\n');
    for (const a of bad) assert.match(reasons, new RegExp(`endpoint ${a.replace(/\./g, '\\.')} of EndpointSlice x/w ignored`));
  });

  it('a Service with more than 256 external × port frontends is skipped with a reason; the others still compile', () => {
    const ips = Array.from({ length: 300 }, (_, i) => `198.51.${100 + (i >> 8)}.${i & 255 || 1}`);
    const huge = svc('huge', { clusterIPs: ['10.96.0.50'], externalIPs: ips }, { namespace: 'aaa' });
    const normal = svc('web', { clusterIPs: ['10.96.0.10'] });
    const m = compile([huge, normal], [slice('w', 'web', [{ ip: '10.244.0.5' }])]);
    assert.equal(only(m, { service: 'aaa/huge' }).length, 0);
    assert.match(m.skipped.find((x) => x.service === 'aaa/huge')!.reason, /does not fit: \d+ IPv4 \(externalIP or load-balancer IP\) × port frontends, at most 256/);
    assert.equal(one(m, { service: 'x/web', kind: 'clusterIP' }).verdict, 'forward');
  });

  it('the parsers drop ports outside 1..65535 or not integers, and keep creationTimestamp', () => {
    const s = parseService({ metadata: { name: 'p', creationTimestamp: '2024-01-01T00:00:00Z' }, spec: { clusterIP: '10.96.0.9', ports: [{ port: 70000 }, { port: 1.5 }, { name: 'ok', port: 80, nodePort: 99999 }] } })!;
    assert.deepEqual(s.ports, [{ name: 'ok', protocol: 'TCP', port: 80 }]);
    assert.equal(s.created, '2024-01-01T00:00:00Z');
    const sl = parseEndpointSlice({ metadata: { name: 'e' }, addressType: 'IPv4', ports: [{ port: 0 }, { port: 65536 }, { port: 80 }], endpoints: [] })!;
    assert.deepEqual(sl.ports.map((p) => p.port), [80]);
  });

  it('a partial compile (only) still sees the others: a changed Service cannot take an unchanged one\'s address', () => {
    const old = svc('a', { externalIPs: ['198.51.100.7'] }, { created: '2020-01-01T00:00:00Z' });
    const young = svc('b', { clusterIPs: ['10.96.0.11'], externalIPs: ['198.51.100.7', '10.96.0.10'] }, { created: '2021-01-01T00:00:00Z' });
    const m = compileServices([old, young], [], NODE, { only: new Set(['x/b']) });
    assert.deepEqual(m.frontends.map((f) => `${f.service} ${f.kind} ${f.address}`), ['x/b clusterIP 10.96.0.11']);
    assert.ok(m.skipped.every((s) => s.service === 'x/b'));
    // An older changed Service beats an unchanged younger one: the caller learns it must recompile that one.
    const m2 = compileServices([old, young], [], NODE, { only: new Set(['x/a']) });
    assert.deepEqual(m2.blocked, [{ service: 'x/b', by: 'x/a' }]);
    // A changed slice whose pod takes an address an unchanged Service names as externalIP: that Service is named too.
    const pod = slice('c-1', 'c', [{ ip: '198.51.100.7' }]);
    const m3 = compileServices([old, svc('c', { clusterIPs: ['10.96.0.12'] })], [pod], NODE, { only: new Set(['x/c']) });
    assert.deepEqual(m3.blocked, [{ service: 'x/a', by: 'x/c' }]);
  });

  it('deterministic: the same objects in any order give the same model', () => {
    const services = [svc('a', { type: 'NodePort', ports: [{ name: 'http', port: 80, nodePort: 30080 }] }), svc('b', { clusterIPs: ['10.96.0.11'] }), svc('c', { clusterIPs: ['10.96.0.12'], externalIPs: ['198.51.100.1'] })];
    const slices = [slice('a-1', 'a', [{ ip: '10.0.0.3' }, { ip: '10.0.0.1' }]), slice('a-2', 'a', [{ ip: '10.0.0.2' }]), slice('b-1', 'b', [{ ip: '10.0.0.9' }]), slice('c-1', 'c', [{ ip: '10.0.0.10' }, { ip: '10.0.0.2' }])];
    const m = compile(services, slices);
    assert.deepEqual(compile([...services].reverse(), [...slices].reverse()), m);
    assert.deepEqual(m.frontends.map(frontendKey), [...m.frontends.map(frontendKey)].sort());
    assert.deepEqual(addrs(one(m, { service: 'x/a', kind: 'clusterIP' }).backends.ready), ['10.0.0.1:8080', '10.0.0.2:8080', '10.0.0.3:8080']);
  });

  it('1,000 Services × 10 endpoints: compile time printed', () => {
    const services: ServiceObj[] = [];
    const slices: EndpointSliceObj[] = [];
    for (let i = 0; i < 1000; i++) {
      services.push(svc(`s${i}`, { clusterIPs: [`10.96.${i >> 8}.${i & 255}`], type: i % 10 === 0 ? 'NodePort' : 'ClusterIP', ports: [{ name: 'http', port: 80, ...(i % 10 === 0 ? { nodePort: 30000 + i } : {}) }] }));
      slices.push(slice(`s${i}-a`, `s${i}`, Array.from({ length: 10 }, (_, j) => ({ ip: `10.${1 + (i >> 8)}.${i & 255}.${j + 1}`, node: `n${j % 3 + 1}` }))));
    }
    const t0 = performance.now();
    const m = compile(services, slices);
    const ms = performance.now() - t0;
    console.log(`# compileServices: 1000 Services x 10 endpoints → ${m.frontends.length} frontends in ${ms.toFixed(1)} ms`);
    assert.equal(m.frontends.length, 1000 + 100 * 2);
    assert.ok(m.frontends.every((f) => f.backends.ready.length === 10));
  });
});
