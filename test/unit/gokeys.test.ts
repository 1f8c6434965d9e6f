// What a Go runtime hands twill, read as Go reads it: keys match case-insensitively, an exact
// match preferred. containerd's CRI passes runtimeConfig with Go field names.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadNetConf } from '../../lib/config/load.js';
import { isShaped } from '../../lib/datapath/select.js';

const base = { cniVersion: '1.0.0', name: 'go', type: 'twill', ipam: { type: 'host-local', ranges: [[{ subnet: '10.9.0.0/24' }]] } };

describe('Go-style keys', () => {
  it('reads containerd\'s runtimeConfig (Go field names): a shaped pod is seen as shaped', () => {
    const conf = loadNetConf(JSON.stringify({
      ...base,
      runtimeConfig: {
        bandwidth: { IngressRate: 10000000, IngressBurst: 4294967295, EgressRate: 20000000, EgressBurst: 4294967295 },
        portMappings: [{ HostPort: 18090, ContainerPort: 8080, Protocol: 'tcp', HostIP: '' }],
      },
    }));
    assert.equal(isShaped(conf), true);
    assert.deepEqual(conf.runtimeConfig?.bandwidth, { ingressRate: 10000000, ingressBurst: 4294967295, egressRate: 20000000, egressBurst: 4294967295 });
    assert.deepEqual(conf.runtimeConfig?.portMappings, [{ hostPort: 18090, containerPort: 8080, protocol: 'tcp', hostIP: '' }]);
    assert.equal(isShaped(loadNetConf(JSON.stringify({ ...base, runtimeConfig: { bandwidth: { egressrate: 1000 } } }))), true);
    assert.equal(isShaped(loadNetConf(JSON.stringify({ ...base, runtimeConfig: { bandwidth: { IngressRate: 0, EgressRate: 0 } } }))), false);
  });

  it('accepts any casing of the config\'s own keys, preferring the exact one', () => {
    const conf = loadNetConf(JSON.stringify({ CNIVersion: '1.0.0', Name: 'go', Type: 'twill', MTU: 1400, IPAM: { Type: 'host-local', Ranges: [[{ Subnet: '10.9.0.0/24' }]] } }));
    assert.equal(conf.mtu, 1400);
    assert.equal(conf.ipam?.ranges?.[0]?.[0]?.subnet, '10.9.0.0/24');
    assert.equal(loadNetConf(JSON.stringify({ ...base, MTU: 9000, mtu: 1400 })).mtu, 1400);
  });

  it('still validates what it canonicalised', () => {
    assert.throws(() => loadNetConf(JSON.stringify({ ...base, MTU: 'big' })), /mtu must be integer/);
    assert.throws(() => loadNetConf(JSON.stringify({ ...base, runtimeConfig: { bandwidth: { IngressRate: -1 } } })), /ingressRate/);
  });
});
