// DEL that never fails on what is gone, CHECK that notices what is missing, rollback of a
// failed ADD, GC and STATUS.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { testNet } from '../helpers/netconf.js';
import { cleanupNetns, deleteNetns, hostLinks, hostLinksSettled, inNs, makeNetns, netnsPath, removeDir, sh, twill, type Env } from '../helpers/twill.js';
import { readdirSync } from 'node:fs';
import { hostVethName } from '../../lib/naming.js';

after(cleanupNetns);

const envFor = (verb: string, id: string, ns: string, ifName = 'eth0'): Env => ({ CNI_COMMAND: verb, CNI_CONTAINERID: id, CNI_NETNS: netnsPath(ns), CNI_IFNAME: ifName });
const reserved = (dir: string, name: string): string[] => {
  try {
    return readdirSync(`${dir}/${name}`).filter((f) => f !== 'lock' && !f.startsWith('last_reserved_ip'));
  } catch {
    return [];
  }
};

function scratch(stack: 'v4' | 'dual' = 'dual', extra: Record<string, unknown> = {}) {
  const net = testNet({ stack });
  after(() => {
    removeDir(net.dataDir);
    removeDir(net.stateDir);
  });
  return { net, conf: net.conf(extra) };
}

describe('DEL never fails because something is gone', () => {
  const { net, conf } = scratch();

  it('DEL without ADD succeeds', () => {
    const ns = makeNetns();
    assert.equal(twill(envFor('DEL', 'never-added', ns), conf).code, 0);
    assert.equal(twill({ CNI_COMMAND: 'DEL', CNI_CONTAINERID: 'never-added', CNI_IFNAME: 'eth0' }, conf).code, 0);
  });

  it('DEL after the netns was deleted releases the addresses and the veth', () => {
    const ns = makeNetns();
    const add = twill(envFor('ADD', 'gone-ns', ns), conf);
    assert.equal(add.code, 0, add.stdout);
    deleteNetns(ns);
    const r = twill(envFor('DEL', 'gone-ns', ns), { ...conf, prevResult: add.json });
    assert.equal(r.code, 0, r.stdout);
    assert.deepEqual(reserved(net.dataDir, net.name), []);
    assert.deepEqual(hostLinksSettled(add.json.interfaces[0].name), []);
  });

  it('DEL after the host veth vanished releases the addresses', () => {
    const ns = makeNetns();
    const add = twill(envFor('ADD', 'gone-veth', ns), conf);
    assert.equal(add.code, 0, add.stdout);
    sh('ip', ['link', 'del', add.json.interfaces[0].name]);
    assert.equal(twill(envFor('DEL', 'gone-veth', ns), conf).code, 0);
    assert.deepEqual(reserved(net.dataDir, net.name), []);
  });
});

describe('CHECK notices what is missing', () => {
  const { conf } = scratch('v4', { ipam: undefined });
  const base = testNet({ stack: 'v4' });
  const full = { ...conf, ipam: { ...base.conf().ipam, routes: [{ dst: '0.0.0.0/0' }] }, name: base.name, stateDir: base.stateDir };
  after(() => {
    removeDir(base.dataDir);
    removeDir(base.stateDir);
  });

  const breakages: [string, (ns: string, res: Record<string, any>) => void, RegExp][] = [
    ['the pod address', (ns, res) => inNs(ns, ['ip', 'addr', 'del', res.ips[0].address, 'dev', 'eth0']), /lacks address/],
    ['the pod default route', (ns) => inNs(ns, ['ip', 'route', 'del', 'default']), /route to 0\.0\.0\.0\/0/],
    ['the host route', (_ns, res) => sh('ip', ['route', 'del', res.ips[0].address.replace(/\/\d+$/, '/32')]), /host route/],
    ['the host veth', (_ns, res) => sh('ip', ['link', 'del', res.interfaces[0].name]), /missing/],
    ['the reservation', (_ns, res) => sh('rm', [`${base.dataDir}/${base.name}/${res.ips[0].address.replace(/\/\d+$/, '')}`]), /not reserved/],
  ];
  for (const [what, breakIt, msg] of breakages) {
    it(`fails when ${what} is gone`, () => {
      const ns = makeNetns();
      const id = `chk-${what.replace(/\W/g, '')}`;
      const add = twill(envFor('ADD', id, ns), full);
      assert.equal(add.code, 0, add.stdout);
      assert.equal(twill(envFor('CHECK', id, ns), { ...full, prevResult: add.json }).code, 0);
      breakIt(ns, add.json);
      const r = twill(envFor('CHECK', id, ns), { ...full, prevResult: add.json });
      assert.notEqual(r.code, 0);
      assert.match(r.json.msg, msg);
      assert.equal(twill(envFor('DEL', id, ns), full).code, 0);
    });
  }
});

describe('a failed ADD leaves nothing behind', () => {
  const { net, conf } = scratch('v4');

  it('when the interface already exists in the pod', () => {
    const ns = makeNetns();
    inNs(ns, ['ip', 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0peer']);
    const r = twill(envFor('ADD', 'exists', ns), conf);
    assert.notEqual(r.code, 0);
    assert.match(r.json.msg, /already exists/);
    assert.deepEqual(reserved(net.dataDir, net.name), []);
    // An error document has no interfaces: name the host veth this ADD would have created.
    assert.deepEqual(hostLinksSettled('twt').filter((l) => l === hostVethName('twt', 'exists', 'eth0')), []);
  });

  it('when a pod route cannot be installed after the veth exists', () => {
    const ns = makeNetns();
    const bad = { ...conf, ipam: { ...conf.ipam, routes: [{ dst: '198.18.0.0/24', gw: '198.19.0.1' }] } };
    const before = hostLinks('twt');
    const r = twill(envFor('ADD', 'badroute', ns), bad);
    assert.notEqual(r.code, 0);
    assert.deepEqual(reserved(net.dataDir, net.name), []);
    assert.deepEqual(hostLinksSettled('twt'), before);
    assert.equal(inNs(ns, ['ip', '-br', 'link']).includes('eth0'), false);
  });

  it('when a requested address is taken', () => {
    const [a, b] = [makeNetns(), makeNetns()];
    const sub = conf.ipam.ranges[0][0].subnet.replace(/0\/24$/, '50');
    assert.equal(twill({ ...envFor('ADD', 'ip-a', a), CNI_ARGS: `IP=${sub}` }, conf).code, 0);
    const r = twill({ ...envFor('ADD', 'ip-b', b), CNI_ARGS: `IP=${sub}` }, conf);
    assert.notEqual(r.code, 0);
    assert.match(r.json.msg, /not available/);
    assert.equal(twill(envFor('DEL', 'ip-a', a), conf).code, 0);
    assert.deepEqual(reserved(net.dataDir, net.name), []);
  });
});

describe('GC and STATUS', () => {
  const { net, conf } = scratch('v4', {});
  const small = { ...conf, ipam: { ...conf.ipam, ranges: [[{ subnet: conf.ipam.ranges[0][0].subnet.replace(/\/24$/, '/29') }]] } };

  it('GC without a valid list removes nothing; with one, removes every other attachment', () => {
    const pods = [makeNetns(), makeNetns(), makeNetns()];
    const adds = pods.map((p, i) => twill(envFor('ADD', `gc${i}`, p), small));
    adds.forEach((a) => assert.equal(a.code, 0, a.stdout));
    assert.equal(twill({ CNI_COMMAND: 'GC' }, small).code, 0);
    assert.equal(reserved(net.dataDir, net.name).length, 3);
    const r = twill({ CNI_COMMAND: 'GC' }, { ...small, 'cni.dev/valid-attachments': [{ containerID: 'gc1', ifname: 'eth0' }] });
    assert.equal(r.code, 0, r.stdout);
    assert.equal(reserved(net.dataDir, net.name).length, 1);
    assert.deepEqual(hostLinksSettled(adds[0]!.json.interfaces[0].name), []);
    assert.deepEqual(hostLinksSettled(adds[2]!.json.interfaces[0].name), []);
    assert.equal(hostLinks(adds[1]!.json.interfaces[0].name).length, 1);
    // The older spelling works too, and an empty list means "nothing is valid".
    assert.equal(twill({ CNI_COMMAND: 'GC' }, { ...small, 'cni.dev/attachments': [] }).code, 0);
    assert.equal(reserved(net.dataDir, net.name).length, 0);
    assert.deepEqual(hostLinksSettled(adds[1]!.json.interfaces[0].name), []);
  });

  it('STATUS reports an exhausted pool with code 50, and recovers when an address frees', () => {
    assert.equal(twill({ CNI_COMMAND: 'STATUS' }, small).code, 0);
    const pods = [0, 1, 2, 3, 4].map(() => makeNetns());
    pods.forEach((p, i) => assert.equal(twill(envFor('ADD', `st${i}`, p), small).code, 0));
    const extra = makeNetns();
    const full = twill(envFor('ADD', 'st5', extra), small);
    assert.equal(full.json.code, 11);
    assert.match(full.json.msg, /no IP addresses available/);
    const st = twill({ CNI_COMMAND: 'STATUS' }, small);
    assert.equal(st.code, 1);
    assert.equal(st.json.code, 50);
    assert.match(st.json.msg, /exhausted/);
    assert.equal(twill(envFor('DEL', 'st2', pods[2]!), small).code, 0);
    assert.equal(twill({ CNI_COMMAND: 'STATUS' }, small).code, 0);
    assert.equal(twill(envFor('ADD', 'st5', extra), small).code, 0);
    [0, 1, 3, 4].forEach((i) => twill(envFor('DEL', `st${i}`, pods[i]!), small));
    twill(envFor('DEL', 'st5', extra), small);
    assert.deepEqual(reserved(net.dataDir, net.name), []);
  });

  it('STATUS reports an unwritable data directory with code 50', () => {
    const r = twill({ CNI_COMMAND: 'STATUS' }, { ...small, ipam: { ...small.ipam, dataDir: '/proc/sys' } });
    assert.equal(r.json.code, 50);
  });
});

describe('delegated IPAM', () => {
  const net = testNet({ stack: 'v4', cniVersion: '1.0.0' });
  const conf = {
    ...net.conf(),
    ipam: { type: 'static', addresses: [{ address: '10.249.7.9/24', gateway: '10.249.7.1' }], routes: [{ dst: '0.0.0.0/0' }] },
  };
  after(() => {
    removeDir(net.dataDir);
    removeDir(net.stateDir);
  });

  it('runs any other ipam.type from CNI_PATH for ADD, CHECK and DEL', () => {
    const ns = makeNetns();
    const add = twill(envFor('ADD', 'static1', ns), conf);
    assert.equal(add.code, 0, add.stdout);
    assert.deepEqual(add.json.ips.map((i: { address: string }) => i.address), ['10.249.7.9/24']);
    assert.match(inNs(ns, ['ip', 'route', 'show', 'default']), /via 10\.249\.7\.1/);
    assert.equal(twill(envFor('CHECK', 'static1', ns), { ...conf, prevResult: add.json }).code, 0);
    assert.equal(twill(envFor('DEL', 'static1', ns), conf).code, 0);
    assert.deepEqual(hostLinksSettled(add.json.interfaces[0].name), []);
  });

  it('reports a missing IPAM plugin clearly and leaves nothing', () => {
    const ns = makeNetns();
    const r = twill(envFor('ADD', 'nope', ns), { ...conf, ipam: { type: 'no-such-ipam' } });
    assert.equal(r.json.code, 7);
    assert.match(r.json.msg, /no-such-ipam.*not found/);
  });
});
