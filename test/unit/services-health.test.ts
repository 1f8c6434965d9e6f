// The healthCheckNodePort answer is kube-proxy's (pkg/proxy/healthcheck/service_health.go):
// status, headers and body byte for byte, from the model's entry and the sync's health.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { healthResponse } from '../../lib/cli/services-health.js';

const entry = (localEndpoints: number) => ({ service: 'x/web', namespace: 'x', name: 'web', nodePort: 31234, localEndpoints });

describe('healthCheckNodePort response', () => {
  it('local endpoints and a healthy sync: 200, the count as the weight, kube-proxy\'s tab-indented body', () => {
    const r = healthResponse(entry(2), true);
    assert.equal(r.status, 200);
    assert.deepEqual(r.headers, { 'Content-Type': 'application/json', 'X-Content-Type-Options': 'nosniff', 'X-Load-Balancing-Endpoint-Weight': '2' });
    assert.equal(r.body, '{\n\t"service": {\n\t\t"namespace": "x",\n\t\t"name": "web"\n\t},\n\t"localEndpoints": 2,\n\t"serviceProxyHealthy": true\n}');
  });

  it('no local endpoint: 503 with weight 0', () => {
    const r = healthResponse(entry(0), true);
    assert.equal(r.status, 503);
    assert.equal(r.headers['X-Load-Balancing-Endpoint-Weight'], '0');
    assert.deepEqual(JSON.parse(r.body), { service: { namespace: 'x', name: 'web' }, localEndpoints: 0, serviceProxyHealthy: true });
  });

  it('a failing sync: 503 even with local endpoints, serviceProxyHealthy false, the weight still the count', () => {
    const r = healthResponse(entry(3), false);
    assert.equal(r.status, 503);
    assert.equal(r.headers['X-Load-Balancing-Endpoint-Weight'], '3');
    assert.equal(JSON.parse(r.body).serviceProxyHealthy, false);
  });
});
