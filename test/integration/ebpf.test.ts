// The eBPF data path for real: redirect counters, both families, cleanup, attach modes,
// per-network pins, upgrades and fallback.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, renameSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { testNet } from '../helpers/netconf.js';
import { endpointsJson, tcpTransfer, tempBpffs } from '../helpers/traffic.js';
import { cleanupNetns, hostLinksSettled, makeNetns, netnsPath, pingOk, removeDir, sh, TWILL, twill, type Env } from '../helpers/twill.js';

after(cleanupNetns);

const envFor = (verb: string, id: string, ns: string): Env => ({ CNI_COMMAND: verb, CNI_CONTAINERID: id, CNI_NETNS: netnsPath(ns), CNI_IFNAME: 'eth0' });
const addr = (r: Record<string, any>, v6 = false): string => r.ips.find((i: { address: string }) => i.address.includes(':') === v6).address.split('/')[0];
/** Waits (≤ 3 s) for DEL's background work: the veth and its link pin go after DEL returns. */
function settle(done: () => boolean): void {
  const until = Date.now() + 3000;
  while (!done() && Date.now() < until) spawnSync('sleep', ['0.05']);
}
const endpoints = (root: string) => endpointsJson(root).map((e) => ({ ...e, redirected: e.counters?.redirectPackets ?? 0 }));

function ebpfNet(extra: Record<string, unknown> = {}) {
  const net = testNet({ stack: 'dual' });
  const bpffs = tempBpffs();
  const conf = net.conf({ datapath: 'ebpf', bpffsRoot: bpffs.root, ...extra });
  conf.ipam.routes = [{ dst: '0.0.0.0/0' }, { dst: '::/0' }];
  after(() => {
    bpffs.release();
    removeDir(net.dataDir);
    removeDir(net.stateDir);
  });
  return { net, bpffs, conf };
}

for (const attach of ['tcx', 'legacy'] as const) {
  describe(`eBPF fast path (${attach} attachment)`, () => {
    const { net, bpffs, conf } = ebpfNet({ ebpfAttach: attach });
    const pods = [makeNetns(), makeNetns()];
    const res: Record<string, any>[] = [];

    it('attaches two pods and publishes them in the pinned endpoint map', () => {
      pods.forEach((p, i) => {
        const r = twill(envFor('ADD', `eb${i}`, p), conf);
        assert.equal(r.code, 0, r.stdout + r.stderr);
        res.push(r.json);
      });
      const eps = endpoints(bpffs.root);
      assert.equal(eps.length, 4, JSON.stringify(eps));
      assert.ok(eps.every((e) => e.network === net.name && e.fastPath));
      assert.ok(existsSync(`${bpffs.root}/twill/${net.name}/endpoints`));
      if (attach === 'tcx') assert.equal(readdirSync(`${bpffs.root}/twill/${net.name}/links`).length, 2);
      else assert.match(sh('tc', ['filter', 'show', 'dev', res[0]!.interfaces[0].name, 'ingress']), /bpf/);
    });

    it('pod-to-pod TCP takes the redirect once conntrack holds it, IPv4 and IPv6 (the counters prove it); ping crosses the stack', () => {
      for (const v6 of [false, true]) {
        assert.ok(pingOk(pods[0], addr(res[1]!, v6)), `ping pod0 → pod1 ${v6 ? 'v6' : 'v4'}`);
        assert.ok(tcpTransfer(pods[0]!, pods[1]!, addr(res[1]!, v6)), `pod0 → pod1 ${v6 ? 'v6' : 'v4'}`);
        assert.ok(tcpTransfer(pods[1]!, pods[0]!, addr(res[0]!, v6)), `pod1 → pod0 ${v6 ? 'v6' : 'v4'}`);
      }
      for (const e of endpoints(bpffs.root)) assert.ok(e.redirected > 100, `${e.addr} redirected ${e.redirected}`);
    });

    it('pod → host and host → pod still work through the stack', () => {
      for (const v6 of [false, true]) {
        assert.ok(pingOk(undefined, addr(res[0]!, v6)));
        assert.ok(pingOk(pods[0], res[0]!.ips.find((i: { address: string }) => i.address.includes(':') === v6).gateway));
      }
    });

    it('CHECK verifies the map entries and the attachment', () => {
      assert.equal(twill(envFor('CHECK', 'eb0', pods[0]!), { ...conf, prevResult: res[0] }).code, 0);
      if (attach === 'tcx') {
        sh('rm', [`${bpffs.root}/twill/${net.name}/links/${res[0]!.interfaces[0].name}`]);
        const r = twill(envFor('CHECK', 'eb0', pods[0]!), { ...conf, prevResult: res[0] });
        assert.notEqual(r.code, 0);
        assert.match(r.json.msg, /no tc program is attached/);
      }
    });

    it('DEL leaves no map entry, counter or link pin behind; the last one takes the maps and program', () => {
      const dir = `${bpffs.root}/twill/${net.name}`;
      assert.equal(twill(envFor('DEL', 'eb0', pods[0]!), { ...conf, prevResult: res[0] }).code, 0);
      assert.equal(endpoints(bpffs.root).length, 2, 'the other pod keeps its entries');
      assert.ok(existsSync(`${dir}/endpoints`));
      if (attach === 'tcx') settle(() => readdirSync(`${dir}/links`).length === 1);
      assert.equal(readdirSync(`${dir}/links`).length, attach === 'tcx' ? 1 : 0);
      assert.equal(twill(envFor('DEL', 'eb1', pods[1]!), { ...conf, prevResult: res[1] }).code, 0);
      assert.deepEqual(endpoints(bpffs.root), []);
      assert.equal(existsSync(dir), false, 'the network pins nothing once its last endpoint is gone');
      assert.deepEqual(hostLinksSettled('twt').filter((l) => res.some((r) => r.interfaces[0].name === l)), []);
      assert.equal(twill(envFor('DEL', 'eb1', pods[1]!), { ...conf, prevResult: res[1] }).code, 0, 'DEL again: nothing to do');
    });
  });
}

describe('eBPF state across pods, networks and upgrades', () => {
  const a = ebpfNet();
  const b = testNet({ stack: 'v4' });
  const bConf = b.conf({ datapath: 'ebpf', bpffsRoot: a.bpffs.root });
  after(() => {
    removeDir(b.dataDir);
    removeDir(b.stateDir);
  });

  it('a second network keeps its own pins; GC removes exactly the stale endpoints', () => {
    const [p1, p2, p3] = [makeNetns(), makeNetns(), makeNetns()];
    for (const [id, p] of [['g1', p1], ['g2', p2]] as const) assert.equal(twill(envFor('ADD', id, p!), a.conf).code, 0);
    assert.equal(twill(envFor('ADD', 'other', p3!), bConf).code, 0);
    assert.deepEqual(readdirSync(`${a.bpffs.root}/twill`).sort(), [a.net.name, b.name].sort());
    const gc = twill({ CNI_COMMAND: 'GC' }, { ...a.conf, 'cni.dev/valid-attachments': [{ containerID: 'g1', ifname: 'eth0' }] });
    assert.equal(gc.code, 0, gc.stdout);
    const eps = endpoints(a.bpffs.root);
    assert.equal(eps.filter((e) => e.network === a.net.name).length, 2); // g1: v4 + v6
    assert.ok(eps.filter((e) => e.network === a.net.name).every((e) => e.containerId === 'g1'));
    assert.equal(eps.filter((e) => e.network === b.name).length, 1);
    assert.equal(readdirSync(`${a.bpffs.root}/twill/${a.net.name}/links`).length, 0, 'auto attaches with legacy tc: no link pins');
    // A GC that keeps nothing releases the network's maps and program; the other network stays.
    assert.equal(twill({ CNI_COMMAND: 'GC' }, { ...a.conf, 'cni.dev/valid-attachments': [] }).code, 0);
    assert.deepEqual(readdirSync(`${a.bpffs.root}/twill`), [b.name]);
    assert.equal(twill(envFor('DEL', 'g1', p1!), a.conf).code, 0);
    assert.equal(twill(envFor('DEL', 'other', p3!), bConf).code, 0);
    assert.deepEqual(readdirSync(`${a.bpffs.root}/twill`), []);
  });

  it('replaces a stale program (object changed) and moves existing links to the new one', () => {
    const [p1, p2] = [makeNetns(), makeNetns()];
    const r1 = twill(envFor('ADD', 'up1', p1!), a.conf);
    assert.equal(r1.code, 0);
    const dir = `${a.bpffs.root}/twill/${a.net.name}`;
    const current = readdirSync(dir).find((f) => f.startsWith('prog_') && !f.endsWith('_to'))!;
    renameSync(`${dir}/${current}`, `${dir}/prog_0000000000000000`); // as if pinned by an older twill
    const r2 = twill(envFor('ADD', 'up2', p2!), a.conf);
    assert.equal(r2.code, 0, r2.stdout);
    // The object's two programs (from the pod, and to it where policy is enforced), nothing older.
    assert.deepEqual(readdirSync(dir).filter((f) => f.startsWith('prog_')), [current, `${current}_to`]);
    // Both veths now run the same (new) program: tc reports one program id for both.
    const progId = (dev: string): string => /\bid (\d+)/.exec(sh('tc', ['filter', 'show', 'dev', dev, 'ingress']))?.[1] ?? 'none';
    assert.match(progId(r1.json.interfaces[0].name), /^\d+$/);
    assert.equal(progId(r1.json.interfaces[0].name), progId(r2.json.interfaces[0].name));
    assert.ok(tcpTransfer(p1!, p2!, addr(r2.json)));
    assert.ok(tcpTransfer(p2!, p1!, addr(r1.json)));
    assert.ok(endpoints(a.bpffs.root).every((e) => e.redirected > 0));
    twill(envFor('DEL', 'up1', p1!), a.conf);
    twill(envFor('DEL', 'up2', p2!), a.conf);
  });
});

describe('a DEL retried after the address went to a new pod', () => {
  const { conf, bpffs } = ebpfNet();

  it('leaves the new pod\'s endpoint entries alone when the old veth is gone', () => {
    const [old, neu] = [makeNetns(), makeNetns()];
    const r = twill(envFor('ADD', 'old', old), conf);
    assert.equal(r.code, 0, r.stdout);
    assert.equal(twill(envFor('DEL', 'old', old), { ...conf, prevResult: r.json }).code, 0);
    hostLinksSettled('twdel');
    const wanted = r.json.ips.map((i: { address: string }) => i.address.split('/')[0]);
    const r2 = twill({ ...envFor('ADD', 'new', neu), CNI_ARGS: `IgnoreUnknown=1;IP=${wanted.join(',')}` }, conf);
    assert.equal(r2.code, 0, r2.stdout);
    assert.deepEqual(r2.json.ips.map((i: { address: string }) => i.address.split('/')[0]), wanted);
    // The runtime retries the old pod's DEL with its cached result.
    assert.equal(twill(envFor('DEL', 'old', old), { ...conf, prevResult: r.json }).code, 0);
    const eps = endpoints(bpffs.root);
    assert.deepEqual(eps.map((e) => e.addr).sort(), [...wanted].sort());
    assert.ok(eps.every((e) => e.containerId === 'new'));
    assert.equal(twill(envFor('CHECK', 'new', neu), { ...conf, prevResult: r2.json }).code, 0);
    assert.equal(twill(envFor('DEL', 'new', neu), { ...conf, prevResult: r2.json }).code, 0);
  });
});

describe('fallback when eBPF cannot be used', () => {
  const net = testNet({ stack: 'v4' });
  after(() => {
    removeDir(net.dataDir);
    removeDir(net.stateDir);
  });
  // A bpffs root that cannot be created or mounted: eBPF is unavailable for real.
  const unusable = '/proc/twill-no-bpffs';

  it('datapath=auto attaches on the routed path and records why', () => {
    const ns = makeNetns();
    const logFile = `${net.stateDir}/log`;
    const r = twill(envFor('ADD', 'fb1', ns), net.conf({ datapath: 'auto', bpffsRoot: unusable, logFile }));
    assert.equal(r.code, 0, r.stdout);
    assert.ok(pingOk(undefined, addr(r.json)));
    const st = JSON.parse(readFileSync(`${net.stateDir}/datapath/${net.name}.json`, 'utf8'));
    assert.equal(st.mode, 'routed');
    assert.match(st.reason, /eBPF unavailable/);
    assert.match(readFileSync(logFile, 'utf8'), /eBPF data path unavailable, using the routed path/);
    assert.equal(twill(envFor('CHECK', 'fb1', ns), { ...net.conf({ datapath: 'auto', bpffsRoot: unusable }), prevResult: r.json }).code, 0);
    assert.equal(twill(envFor('DEL', 'fb1', ns), net.conf({ datapath: 'auto', bpffsRoot: unusable })).code, 0);
  });

  it('datapath=ebpf fails with code 50 and leaves nothing', () => {
    const ns = makeNetns();
    const r = twill(envFor('ADD', 'fb2', ns), net.conf({ datapath: 'ebpf', bpffsRoot: unusable }));
    assert.equal(r.json.code, 50, r.stdout);
    assert.match(r.json.msg, /eBPF data path unavailable/);
    assert.deepEqual(readdirSync(`${net.dataDir}/${net.name}`).filter((f) => /^\d/.test(f)), []);
    assert.deepEqual(hostLinksSettled('twt'), []);
  });
});

export { TWILL };
