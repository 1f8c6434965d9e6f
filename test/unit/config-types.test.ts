// The configuration types are derived from the schema (config/infer.ts): these lines are
// checked by the compiler — each @ts-expect-error must be an error, or the build fails.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { IpamConf, NetConf, NodeEntry, RawRange } from '../../lib/config/types.js';

describe('configuration types derived from the schema', () => {
  it('enums, defaults (required after ajv), optional fields and nesting follow the schema', () => {
    const dp: NetConf['datapath'] = 'ebpf';
    // @ts-expect-error not one of the schema's datapath values
    const bad: NetConf['datapath'] = 'fast';
    const max: NetConf['maxEndpoints'] = 1024; // has a default: required, a number
    // @ts-expect-error a number in the schema
    const notNum: NetConf['maxEndpoints'] = '1024';
    const mtu: NetConf['mtu'] = undefined; // no default: optional
    // @ts-expect-error subnet is required in a range
    const range: RawRange = { rangeStart: '10.0.0.2' };
    const ipam: Pick<IpamConf, 'type' | 'dataDir'> = { type: 'host-local', dataDir: '/var/lib/cni/networks' };
    // @ts-expect-error podCIDRs is required for a node
    const node: NodeEntry = { name: 'n', ip: '10.0.0.1' };
    assert.ok([dp, bad, max, notNum, mtu, range, ipam, node].length === 8);
  });
});
