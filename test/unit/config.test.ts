import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CniError } from '../../lib/cni/errors.js';
import { loadNetConf } from '../../lib/config/load.js';
import { rangeSets, requestedAddrs } from '../../lib/ipam/ranges.js';
import { formatAddr } from '../../lib/net/ip.js';

const base = { cniVersion: '1.0.0', name: 'n1', type: 'twill', ipam: { type: 'host-local', ranges: [[{ subnet: '10.1.0.0/24' }]] } };
const load = (o: unknown): ReturnType<typeof loadNetConf> => loadNetConf(JSON.stringify(o));

function rejects(o: unknown, code: number, field: RegExp): void {
  assert.throws(() => load(o), (e: unknown) => e instanceof CniError && e.code === code && field.test(e.message));
}

describe('config', () => {
  it('fills defaults from the schema', () => {
    const c = load(base);
    assert.equal(c.mtu, undefined, 'no default: 1500, or derived from the underlay with vxlan');
    assert.equal(c.datapath, 'auto');
    assert.equal(c.hostVethPrefix, 'tw');
    assert.equal(c.ipam!.dataDir, '/var/lib/cni/networks');
  });

  it('names the offending field', () => {
    rejects({ ...base, mtu: 'big' }, 7, /mtu/);
    rejects({ ...base, name: 'a/b' }, 7, /name/);
    rejects({ ...base, name: '..' }, 7, /name/);
    rejects({ ...base, ipam: { type: 'host-local', ranges: [[{}]] } }, 7, /ipam\.ranges\.0\.0\.subnet/);
    rejects({ ...base, logFile: '/var/log/../../etc/passwd' }, 7, /logFile/);
    rejects({ ...base, logFile: 'relative.log' }, 7, /logFile/);
    rejects({ cniVersion: '1.0.0', type: 'twill' }, 7, /name/);
  });

  it('gives code 6 for undecodable and code 1 for unknown versions', () => {
    assert.throws(() => loadNetConf('{"cniVersion":'), (e: unknown) => e instanceof CniError && e.code === 6);
    assert.throws(() => loadNetConf('[]'), (e: unknown) => e instanceof CniError && e.code === 6);
    rejects({ ...base, cniVersion: '0.2.0' }, 1, /0\.2\.0/);
    rejects({ ...base, cniVersion: '9.9.9' }, 1, /9\.9\.9/);
  });

  it('canonicalises ranges as host-local does', () => {
    const sets = rangeSets(load({ ...base, ipam: { type: 'host-local', ranges: [[{ subnet: '10.1.0.0/24' }], [{ subnet: 'fd00::/120', gateway: 'fd00::fe' }]] } }));
    assert.equal(sets.length, 2);
    assert.equal(formatAddr(sets[0]![0]!.start), '10.1.0.1');
    assert.equal(formatAddr(sets[0]![0]!.end), '10.1.0.254');
    assert.equal(formatAddr(sets[0]![0]!.gateway), '10.1.0.1');
    assert.equal(formatAddr(sets[1]![0]!.end), 'fd00::ff');
    assert.equal(formatAddr(sets[1]![0]!.gateway), 'fd00::fe');
  });

  it('rejects bad ranges with the field named', () => {
    const bad = (ranges: unknown, re: RegExp): void =>
      assert.throws(() => rangeSets(load({ ...base, ipam: { type: 'host-local', ranges } })), (e: unknown) => e instanceof CniError && e.code === 7 && re.test(e.message));
    bad([[{ subnet: '10.1.0.5/24' }]], /host bits/);
    bad([[{ subnet: '10.1.0.0/31' }]], /too small/);
    bad([[{ subnet: '10.1.0.0/24', rangeStart: '10.2.0.1' }]], /rangeStart/);
    bad([[{ subnet: '10.1.0.0/24' }], [{ subnet: '10.1.0.0/25' }]], /overlap/);
    bad([[{ subnet: '10.1.0.0/24' }, { subnet: 'fd00::/64' }]], /mixes/);
  });

  it('prefers runtimeConfig/args IPs over CNI_ARGS IP=', () => {
    const c = load({ ...base, runtimeConfig: { ips: ['10.1.0.9/24'] } });
    assert.deepEqual(requestedAddrs(c, '10.1.0.7').map(formatAddr), ['10.1.0.9']);
    assert.deepEqual(requestedAddrs(load(base), '10.1.0.7,10.1.0.8').map(formatAddr), ['10.1.0.7', '10.1.0.8']);
  });
});

describe('configuration reference', () => {
  it('docs/config.md is what the schema generates (run `make docs`)', async () => {
    const { configDoc } = await import('../../tools/build/gen-config-doc.js');
    const { readFileSync } = await import('node:fs');
    const { ROOT } = await import('../helpers/twill.js');
    assert.equal(readFileSync(`${ROOT}/docs/config.md`, 'utf8'), configDoc());
  });

  it('every example conflist in conf/ validates', async () => {
    const { readdirSync, readFileSync } = await import('node:fs');
    const { ROOT } = await import('../helpers/twill.js');
    const files = readdirSync(`${ROOT}/conf`).filter((f) => f.endsWith('.conflist'));
    assert.ok(files.length >= 2);
    for (const f of files) {
      const list = JSON.parse(readFileSync(`${ROOT}/conf/${f}`, 'utf8'));
      for (const p of list.plugins.filter((x: { type: string }) => x.type === 'twill')) {
        assert.doesNotThrow(() => load({ ...p, name: list.name, cniVersion: list.cniVersion }), f);
      }
    }
  });

  it('validates the cross-node settings and the node table', () => {
    rejects({ ...base, backend: 'geneve' }, 7, /backend/);
    rejects({ ...base, vxlan: { vni: 0 } }, 7, /vxlan\.vni/);
    rejects({ ...base, nodes: [{ name: 'a', ip: '10.0.0.1' }] }, 7, /nodes\.0\.podCIDRs/);
    rejects({ ...base, nodesFile: '../nodes.json' }, 7, /nodesFile/);
    const c = load({ ...base, backend: 'vxlan', ipMasq: true, nodes: [{ name: 'a', ip: '10.0.0.1', podCIDRs: ['10.1.0.0/24'] }] });
    assert.equal(c.vxlan.vni, 1);
    assert.equal(c.vxlan.port, 4789);
  });
});
