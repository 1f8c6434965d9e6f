import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { CniError } from '../../lib/cni/errors.js';
import { loadNetConf } from '../../lib/config/load.js';
import { hostLocalAdd, hostLocalDel, hostLocalGc, hostLocalUsage } from '../../lib/ipam/hostlocal.js';
import { formatCidr } from '../../lib/net/ip.js';
import { tempDir } from '../helpers/twill.js';

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function conf(ranges: unknown[][]) {
  const dataDir = tempDir('unit-data');
  const stateDir = tempDir('unit-state');
  dirs.push(dataDir, stateDir);
  return loadNetConf(JSON.stringify({ cniVersion: '1.1.0', name: 'unit', type: 'twill', stateDir, ipam: { type: 'host-local', dataDir, ranges } }));
}

describe('host-local allocator', () => {
  it('writes the reference store format and round-robins past released addresses', () => {
    const c = conf([[{ subnet: '10.9.0.0/29' }]]);
    const a = hostLocalAdd(c, 'ctr-a', 'eth0', undefined);
    assert.equal(formatCidr(a.ips[0]!.cidr), '10.9.0.2/29');
    assert.equal(readFileSync(`${c.ipam!.dataDir}/unit/10.9.0.2`, 'utf8'), 'ctr-a\r\neth0');
    assert.equal(readFileSync(`${c.ipam!.dataDir}/unit/last_reserved_ip.0`, 'utf8'), '10.9.0.2');
    hostLocalDel(c, 'ctr-a', 'eth0');
    const b = hostLocalAdd(c, 'ctr-b', 'eth0', undefined);
    assert.equal(formatCidr(b.ips[0]!.cidr), '10.9.0.3/29');
  });

  it('refuses a duplicate allocation for the same attachment', () => {
    const c = conf([[{ subnet: '10.9.1.0/29' }]]);
    hostLocalAdd(c, 'x', 'eth0', undefined);
    assert.throws(() => hostLocalAdd(c, 'x', 'eth0', undefined), /duplicate/);
  });

  it('exhausts with code 11, frees, and reports usage', () => {
    const c = conf([[{ subnet: '10.9.2.0/29' }]]); // .2-.6 usable (.1 is the gateway)
    for (let i = 0; i < 5; i++) hostLocalAdd(c, `c${i}`, 'eth0', undefined);
    assert.throws(() => hostLocalAdd(c, 'c5', 'eth0', undefined), (e: unknown) => e instanceof CniError && e.code === 11);
    assert.equal(hostLocalUsage(c)[0]!.used, 5);
    assert.equal(hostLocalUsage(c)[0]!.size, 5n);
    hostLocalDel(c, 'c2', 'eth0');
    assert.equal(formatCidr(hostLocalAdd(c, 'c5', 'eth0', undefined).ips[0]!.cidr), '10.9.2.4/29');
  });

  it('allocates one address per range set and rolls back all on failure', () => {
    const c = conf([[{ subnet: '10.9.3.0/30' }], [{ subnet: 'fd09::/126' }]]);
    const r = hostLocalAdd(c, 'd1', 'eth0', undefined);
    assert.deepEqual(r.ips.map((i) => formatCidr(i.cidr)), ['10.9.3.2/30', 'fd09::2/126']);
    // v4 is now full (.2 only), so the next ADD fails and must not keep its v6 address.
    assert.throws(() => hostLocalAdd(c, 'd2', 'eth0', undefined));
    assert.equal(hostLocalUsage(c)[1]!.used, 1);
  });

  it('honours requested addresses and legacy ID-only files on release', () => {
    const c = conf([[{ subnet: '10.9.4.0/24' }]]);
    const r = hostLocalAdd(c, 'e1', 'eth0', '10.9.4.77');
    assert.equal(formatCidr(r.ips[0]!.cidr), '10.9.4.77/24');
    assert.throws(() => hostLocalAdd(c, 'e2', 'eth0', '10.9.4.77'), /not available/);
    assert.throws(() => hostLocalAdd(c, 'e3', 'eth0', '10.99.0.1'), /not in any configured range/);
    assert.deepEqual(hostLocalDel(c, 'e1', 'eth0'), ['10.9.4.77']);
  });

  it('GC releases everything not valid and keeps what is', () => {
    const c = conf([[{ subnet: '10.9.5.0/24' }]]);
    hostLocalAdd(c, 'keep', 'eth0', undefined);
    hostLocalAdd(c, 'stale', 'eth0', undefined);
    hostLocalAdd(c, 'keep', 'net1', undefined);
    const released = hostLocalGc(c, [{ containerID: 'keep', ifname: 'eth0' }]);
    assert.deepEqual(released.map((r) => `${r.id}/${r.ifname}`).sort(), ['keep/net1', 'stale/eth0']);
    assert.equal(hostLocalUsage(c)[0]!.used, 1);
  });
});
