// Stable Service port ids (lib/services/ids.ts) and the compile's frontends as apply's input:
// an id survives every change but its port's removal, is never handed to another port while
// the table holds it, and a frontend's verdict becomes apply's whenEmpty.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseEndpointSlice, parseService } from '../../lib/cluster/objects.js';
import { compileServices } from '../../lib/services/compile.js';
import { allocateServiceIds, emptyIdTable, MAX_SERVICE_ID, modelServicePorts, sanitizeIdTable, servicePortKey, splitServicePortKey, toLbFrontends, type ServiceIdTable } from '../../lib/services/ids.js';

describe('Service port ids', () => {
  it('new ports get fresh ids upwards; kept ports keep theirs across any change of the others', () => {
    const a = allocateServiceIds(emptyIdTable(), ['x/web|http', 'x/web|metrics', 'y/dns|dns']);
    assert.deepEqual(Object.values(a.ids).sort(), [1, 2, 3]);
    const b = allocateServiceIds(a, ['x/web|http', 'z/new|', 'y/dns|dns', 'a/first|']);
    assert.equal(b.ids['x/web|http'], a.ids['x/web|http']);
    assert.equal(b.ids['y/dns|dns'], a.ids['y/dns|dns']);
    assert.equal(b.ids['x/web|metrics'], undefined, 'a port gone leaves the table');
    assert.deepEqual([b.ids['a/first|'], b.ids['z/new|']].sort(), [4, 5], 'the freed id 2 is not reused');
    // The same table read back from its file gives the same ids.
    assert.deepEqual(allocateServiceIds(sanitizeIdTable(JSON.parse(JSON.stringify(b))), Object.keys(b.ids)), b);
    // After a wrap, next may point at an id whose port leaves in this very round: its frontends are still in the maps.
    const c = allocateServiceIds({ next: 2, ids: { 'x/a|': 1, 'x/b|': 2, 'x/c|': 3 } }, ['x/a|', 'x/c|', 'x/d|']);
    assert.equal(c.ids['x/d|'], 4);
  });

  it('no id is given twice, even when the table was torn or hand-edited', () => {
    const t = sanitizeIdTable({ next: 2, ids: { 'x/a|': 2, 'x/b|': 2, 'x/c|': 0, 'x/d|': 1.5, 'x/e|': 'three', 'x/f|': 7 } });
    assert.deepEqual(t.ids, { 'x/a|': 2, 'x/f|': 7 });
    const u = allocateServiceIds(t, ['x/a|', 'x/b|', 'x/c|', 'x/f|', 'x/g|']);
    const ids = Object.values(u.ids);
    assert.equal(new Set(ids).size, ids.length);
    assert.ok(ids.every((i) => i >= 1 && i <= MAX_SERVICE_ID));
    assert.equal(u.ids['x/a|'], 2);
    assert.equal(u.ids['x/f|'], 7);
    assert.deepEqual(sanitizeIdTable(undefined), emptyIdTable());
    assert.deepEqual(sanitizeIdTable('garbage'), emptyIdTable());
  });

  it('wraps past 2^32 - 1 to 1, skipping ids still held', () => {
    const t: ServiceIdTable = { next: MAX_SERVICE_ID, ids: { 'x/a|': 1, 'x/b|': MAX_SERVICE_ID - 1 } };
    const u = allocateServiceIds(t, ['x/a|', 'x/b|', 'x/c|', 'x/d|']);
    assert.deepEqual([u.ids['x/c|'], u.ids['x/d|']], [MAX_SERVICE_ID, 2]);
    assert.equal(u.next, 3);
  });

  it('keys split back into Service and port name (a port name has no "|"; a namespace/name neither)', () => {
    assert.deepEqual(splitServicePortKey(servicePortKey('x/web', 'http')), { service: 'x/web', portName: 'http' });
    assert.deepEqual(splitServicePortKey(servicePortKey('x/web', '')), { service: 'x/web', portName: '' });
  });
});

describe('frontends for apply', () => {
  const svc = parseService({
    metadata: { namespace: 'x', name: 'web' },
    spec: { clusterIPs: ['10.96.0.10'], ports: [{ name: 'http', port: 80, targetPort: 'web' }, { name: 'dns', port: 53, protocol: 'UDP' }], sessionAffinity: 'ClientIP' },
  })!;
  const local = parseService({ metadata: { namespace: 'x', name: 'loc' }, spec: { clusterIPs: ['10.96.0.11'], ports: [{ port: 81 }], internalTrafficPolicy: 'Local' } })!;
  const empty = parseService({ metadata: { namespace: 'x', name: 'none' }, spec: { clusterIPs: ['10.96.0.12'], ports: [{ port: 82 }] } })!;
  const slice = (service: string, ports: object[], eps: object[]) => parseEndpointSlice({ metadata: { namespace: 'x', name: `${service}-1`, labels: { 'kubernetes.io/service-name': service } }, addressType: 'IPv4', ports, endpoints: eps })!;
  const slices = [
    slice('web', [{ name: 'http', port: 8080 }, { name: 'dns', port: 5353, protocol: 'UDP' }], [
      { addresses: ['10.0.0.1'], nodeName: 'n1' },
      { addresses: ['10.0.0.2'], nodeName: 'n2', conditions: { ready: false, serving: true, terminating: true } },
    ]),
    slice('loc', [{ port: 9090 }], [{ addresses: ['10.0.0.3'], nodeName: 'n2' }]),
  ];
  const model = compileServices([svc, local, empty], slices, { name: 'n1', addresses: [] }, { families: [4] });
  const table = allocateServiceIds(emptyIdTable(), modelServicePorts(model));
  const fes = toLbFrontends(model, table);
  const at = (addr: string, port: number) => fes.find((f) => f.address === addr && f.port === port)!;

  it('each Service port has its id; ready and serving-terminating backends are kept apart', () => {
    assert.equal(fes.length, 4);
    const http = at('10.96.0.10', 80), dns = at('10.96.0.10', 53);
    assert.equal(http.serviceId, table.ids['x/web|http']);
    assert.equal(dns.serviceId, table.ids['x/web|dns']);
    assert.notEqual(http.serviceId, dns.serviceId);
    // 10.0.0.1 is on this node (n1): traffic from outside reaches it without SNAT.
    assert.deepEqual(http.backends, [{ address: '10.0.0.1', port: 8080, local: true }]);
    assert.deepEqual(http.terminating, [{ address: '10.0.0.2', port: 8080 }]);
    assert.deepEqual(dns.backends, [{ address: '10.0.0.1', port: 5353, local: true }]);
    assert.equal(dns.protocol, 'UDP');
    assert.equal(http.affinitySeconds, 10800);
    assert.equal(http.scope, 'internal');
  });

  it('no endpoints: reject; internalTrafficPolicy Local with none on this node: drop', () => {
    assert.equal(at('10.96.0.12', 82).whenEmpty, 'reject');
    assert.deepEqual(at('10.96.0.12', 82).backends, []);
    const loc = at('10.96.0.11', 81);
    assert.equal(loc.whenEmpty, 'drop');
    assert.deepEqual([...loc.backends, ...loc.terminating], []);
    assert.equal(at('10.96.0.11', 81).affinitySeconds, 0);
  });

  it('a frontend whose port has no id is refused, never given id 0', () => {
    assert.throws(() => toLbFrontends(model, emptyIdTable()), /no id/);
  });
});
