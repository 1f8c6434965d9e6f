// What a network sets up once and takes down with its last pod (the guard table, egress
// masquerade, pinned maps), decided under the network lock from the address store; and a
// DEL whose background deletion runs late never touches the pod re-added in its place.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { after, describe, it } from 'node:test';
import { masqTag } from '../../lib/datapath/masq.js';
import { testNet } from '../helpers/netconf.js';
import { tcpTransfer, tempBpffs } from '../helpers/traffic.js';
import { echo, forge, send, sleep } from '../helpers/pkt.js';
import { cleanupNetns, hostLinksSettled, makeNetns, netnsPath, pingOk, removeDir, runPlugin, TWILL, twill, type Env } from '../helpers/twill.js';
import type { NetConf } from '../../lib/config/types.js';

after(cleanupNetns);

const envFor = (verb: string, id: string, ns: string): Env => ({ CNI_COMMAND: verb, CNI_CONTAINERID: id, CNI_NETNS: netnsPath(ns), CNI_IFNAME: 'eth0' });
const ip = (r: Record<string, any>, v6: boolean): string => r.ips.find((i: { address: string }) => i.address.includes(':') === v6).address.split('/')[0];
const hasTable = (family: string, name: string): boolean => spawnSync('nft', ['list', 'table', family, name]).status === 0;
const tag = (name: string): string => masqTag({ name } as NetConf);

describe('the routed path refuses forged sources (the guard table)', () => {
  const net = testNet({ stack: 'dual' });
  const conf = net.conf({ datapath: 'routed' });
  conf.ipam.routes = [{ dst: '0.0.0.0/0' }, { dst: '::/0' }];
  const [a, b, c] = [makeNetns(), makeNetns(), makeNetns()];
  const res: Record<string, any>[] = [];
  after(() => {
    [a, b, c].forEach((ns, i) => twill(envFor('DEL', `rg${i}`, ns), conf));
    removeDir(net.dataDir);
    removeDir(net.stateDir);
  });

  it('the first pod installs the guard', () => {
    [a, b, c].forEach((ns, i) => {
      const r = twill(envFor('ADD', `rg${i}`, ns), conf);
      assert.equal(r.code, 0, r.stdout);
      res.push(r.json);
    });
    assert.ok(hasTable('inet', `twill_guard_${tag(net.name)}`));
  });

  for (const v6 of [false, true]) {
    it(`a pod cannot send with another pod's address (${v6 ? 'IPv6' : 'IPv4'}); its own still works`, async () => {
      const got = echo(c, 7201, 2.5);
      await sleep(300);
      forge(a, res[0]!.interfaces[0].mac, ip(res[1]!, v6), ip(res[2]!, v6), 40201, 7201, 10);
      assert.equal(send(a, 40202, ip(res[2]!, v6), 7201, 5), 5);
      const counts = await got;
      assert.equal(counts.forged, undefined, `C received ${counts.forged} forged datagrams`);
      assert.equal(counts.hello, 5);
    });
  }

  it('the guard stays for the next pod; a GC that keeps nothing removes it', () => {
    [a, b, c].forEach((ns, i) => assert.equal(twill(envFor('DEL', `rg${i}`, ns), conf).code, 0));
    assert.ok(hasTable('inet', `twill_guard_${tag(net.name)}`));
    assert.equal(twill({ CNI_COMMAND: 'GC' }, { ...conf, 'cni.dev/valid-attachments': [] }).code, 0);
    assert.equal(hasTable('inet', `twill_guard_${tag(net.name)}`), false);
  });
});

describe('the network\'s last pod is decided from the store, under the network lock', () => {
  const net = testNet({ stack: 'v4' });
  const conf = net.conf({ datapath: 'routed', ipMasq: true });
  after(() => {
    removeDir(net.dataDir);
    removeDir(net.stateDir);
  });

  it('DEL of one pod keeps the masquerade while another pod\'s ADD is still on its way up', () => {
    const [p1, p2] = [makeNetns(), makeNetns()];
    assert.equal(twill(envFor('ADD', 'm1', p1), conf).code, 0);
    assert.ok(hasTable('ip', `twill_${tag(net.name)}`));
    // The second ADD has reserved its address but has no veth yet (killed right there).
    const killed = runPlugin(TWILL, { ...envFor('ADD', 'm2', p2), TWILL_CRASH_AT: 'add:reserved' } as Env, conf);
    assert.equal(killed.code, -1);
    assert.equal(twill(envFor('DEL', 'm1', p1), conf).code, 0);
    assert.ok(hasTable('ip', `twill_${tag(net.name)}`), 'the NAT rules stay: a pod still needs them');
    assert.ok(hasTable('inet', `twill_guard_${tag(net.name)}`));
    assert.equal(twill(envFor('DEL', 'm2', p2), conf).code, 0);
    assert.equal(hasTable('ip', `twill_${tag(net.name)}`), false, 'gone with the last pod');
    assert.equal(twill({ CNI_COMMAND: 'GC' }, { ...conf, 'cni.dev/valid-attachments': [] }).code, 0);
    assert.equal(hasTable('inet', `twill_guard_${tag(net.name)}`), false);
  });
});

describe('a late DEL never removes the pod re-added in its place', () => {
  const net = testNet({ stack: 'v4' });
  const bpffs = tempBpffs();
  const conf = net.conf({ datapath: 'ebpf', bpffsRoot: bpffs.root, ebpfAttach: 'tcx' });
  const load: ChildProcess[] = [];
  after(() => {
    for (const p of load) p.kill('SIGKILL');
    bpffs.release();
    removeDir(net.dataDir);
    removeDir(net.stateDir);
  });

  it('DEL then an immediate ADD of the same container, 30 times with the CPUs loaded', () => {
    const [pod, peer] = [makeNetns(), makeNetns()];
    const peerRes = twill(envFor('ADD', 'peer', peer), conf);
    assert.equal(peerRes.code, 0);
    for (let i = 0; i < 2; i++) load.push(spawn('sh', ['-c', 'while :; do :; done'], { stdio: 'ignore' }));
    let r = twill(envFor('ADD', 'again', pod), conf);
    assert.equal(r.code, 0, r.stdout);
    // A background deletion that runs late: whatever DEL left running is held (SIGSTOP)
    // until the re-ADD has returned, then let go.
    const hold = (sig: 'STOP' | 'CONT'): boolean => spawnSync('pkill', [`-${sig}`, '-f', 'link del dev']).status === 0;
    let held = 0;
    for (let i = 0; i < 30; i++) {
      assert.equal(twill(envFor('DEL', 'again', pod), { ...conf, prevResult: r.json }).code, 0, `DEL ${i}`);
      if (hold('STOP')) held++;
      r = twill(envFor('ADD', 'again', pod), conf);
      hold('CONT');
      assert.equal(r.code, 0, `ADD ${i}: ${r.stdout}`);
      hostLinksSettled('twdel');
      spawnSync('sleep', ['0.05']);
      const check = twill(envFor('CHECK', 'again', pod), { ...conf, prevResult: r.json });
      assert.equal(check.code, 0, `after round ${i} the re-added pod is intact (veth, routes, map entries, tcx link): ${check.stdout}`);
    }
    for (const p of load.splice(0)) p.kill('SIGKILL');
    assert.ok(held >= 5, `the late deletion was caught in ${held} of 30 rounds`);
    assert.ok(pingOk(pod, ip(peerRes.json, false)));
    assert.ok(tcpTransfer(pod, peer, ip(peerRes.json, false)));
    assert.equal(twill(envFor('DEL', 'again', pod), { ...conf, prevResult: r.json }).code, 0);
    assert.equal(twill(envFor('DEL', 'peer', peer), { ...conf, prevResult: peerRes.json }).code, 0);
    assert.deepEqual(hostLinksSettled('twt'), []);
  });
});
