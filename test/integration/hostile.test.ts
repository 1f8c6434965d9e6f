// A hostile pod against the eBPF fast path, with real packets: it forges source addresses
// (another local pod's, and the reverse of a flow it wants opened) and must get nothing past
// the host's FORWARD rules; and a NAT'd connection that reuses the 5-tuple of an earlier
// direct flow still gets its reverse translation.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { testNet } from '../helpers/netconf.js';
import { endpointsJson, tempBpffs } from '../helpers/traffic.js';
import { echo, forge, send, sleep } from '../helpers/pkt.js';
import { cleanupNetns, makeNetns, netnsPath, removeDir, sh, tempDir, twill, type Env } from '../helpers/twill.js';
import { mkdirSync, writeFileSync } from 'node:fs';

after(cleanupNetns);

const envFor = (verb: string, id: string, ns: string): Env => ({ CNI_COMMAND: verb, CNI_CONTAINERID: id, CNI_NETNS: netnsPath(ns), CNI_IFNAME: 'eth0' });

// everyday: the conflist people copy declares no capability on twill; each pod starts pending
// and is settled by the next call once its chain's result is cached (as libcni caches it).
for (const shape of ['everyday', 'declared'] as const) {
describe(`a hostile pod on the eBPF fast path (${shape} conflist)`, () => {
  const net = testNet({ stack: 'dual' });
  const bpffs = tempBpffs();
  const cniCache = tempDir('hostile-cnicache');
  const conf = net.conf({ datapath: 'ebpf', bpffsRoot: bpffs.root, cniCacheDir: cniCache });
  if (shape === 'everyday') delete conf.capabilities;
  conf.ipam.routes = [{ dst: '0.0.0.0/0' }, { dst: '::/0' }];
  const [a, b, c] = [makeNetns(), makeNetns(), makeNetns()];
  const pod = new Map<string, { v4: string; v6: string; veth: string; gwMac: string }>();
  const rules: string[][] = [];
  const rule = (v6: boolean, table: string, spec: string[]): void => {
    const cmd = v6 ? 'ip6tables' : 'iptables';
    sh(cmd, ['-t', table, '-I', ...spec]);
    rules.push([cmd, '-t', table, '-D', ...spec]);
  };
  const dropRules = (): void => {
    for (const r of rules.splice(0)) sh(r[0]!, r.slice(1), { allowFail: true });
  };
  after(() => {
    dropRules();
    for (const [id, ns] of [['ha', a], ['hb', b], ['hc', c]] as const) twill(envFor('DEL', id, ns), conf);
    bpffs.release();
    removeDir(cniCache);
    removeDir(net.dataDir);
    removeDir(net.stateDir);
  });

  it('attaches three pods', () => {
    for (const [id, ns] of [['ha', a], ['hb', b], ['hc', c]] as const) {
      const r = twill(envFor('ADD', id, ns), conf);
      assert.equal(r.code, 0, r.stdout);
      const ip = (v6: boolean): string => r.json.ips.find((i: { address: string }) => i.address.includes(':') === v6).address.split('/')[0];
      pod.set(ns, { v4: ip(false), v6: ip(true), veth: r.json.interfaces[0].name, gwMac: r.json.interfaces[0].mac });
      mkdirSync(`${cniCache}/results`, { recursive: true });
      writeFileSync(`${cniCache}/results/${net.name}-${id}-eth0`, r.stdout);
    }
    // The runtime's next call (here a GC that keeps all three) settles what was pending.
    const valid = [['ha', a], ['hb', b], ['hc', c]].map(([id]) => ({ containerID: id, ifname: 'eth0' }));
    assert.equal(twill({ CNI_COMMAND: 'GC' }, { ...conf, 'cni.dev/valid-attachments': valid }).code, 0);
    assert.ok(endpointsJson(bpffs.root).filter((e) => e.network === net.name).every((e) => e.fastPath), 'every pod is settled on the fast path');
  });

  for (const v6 of [false, true]) {
    const fam = v6 ? 'v6' : 'v4';
    it(`cannot send with another local pod's address past a FORWARD DROP (${fam}): dropped and counted`, async () => {
      const [A, B, C] = [pod.get(a)!, pod.get(b)!, pod.get(c)!];
      try {
        const got = echo(c, 7101, 3);
        await sleep(300);
        // B and C talk: a flow the fast path serves, whose tuple A will try to borrow.
        assert.equal(send(b, 40101, C[fam], 7101, 10), 10);
        rule(v6, 'filter', ['FORWARD', '-i', A.veth, '-j', 'DROP']);
        forge(a, A.gwMac, B[fam], C[fam], 40101, 7101, 20);
        const counts = await got;
        assert.equal(counts.hello, 10);
        assert.equal(counts.forged, undefined, `C received ${counts.forged} forged datagrams`);
        const spoofed = endpointsJson(bpffs.root).find((e) => e.addr === A[fam]) as { counters?: { spoofedPackets?: number } } | undefined;
        assert.ok((spoofed?.counters?.spoofedPackets ?? 0) >= 20, JSON.stringify(spoofed));
      } finally {
        dropRules();
      }
    });

    it(`cannot open the fast path with a forged reverse packet (${fam})`, async () => {
      const [A, C] = [pod.get(a)!, pod.get(c)!];
      try {
        rule(v6, 'filter', ['FORWARD', '-i', A.veth, '-o', C.veth, '-j', 'DROP']);
        const got = echo(c, 7102, 3);
        await sleep(300);
        // The "reply" of the flow A wants: C:7102 → A:40102, sent by A itself.
        forge(a, A.gwMac, C[fam], A[fam], 7102, 40102, 5);
        assert.equal(send(a, 40102, C[fam], 7102, 10), 0);
        const counts = await got;
        assert.equal(counts.hello, undefined, `C received ${counts.hello} datagrams through a FORWARD DROP`);
      } finally {
        dropRules();
      }
    });
  }

  it('a Service-style DNAT flow reusing an earlier direct flow\'s 5-tuple gets its replies translated', async () => {
    const [A, C] = [pod.get(a)!, pod.get(c)!];
    const vip = '198.18.77.1';
    try {
      const got = echo(c, 7103, 4);
      await sleep(300);
      assert.equal(send(a, 40103, C.v4, 7103, 10), 10, 'direct flow A:40103 ↔ C:7103');
      // As if the direct flow's conntrack entry had aged out; whatever the program learnt stays.
      sh('conntrack', ['-D', '-p', 'udp', '--orig-port-src', '40103'], { allowFail: true });
      rule(false, 'nat', ['PREROUTING', '-d', vip, '-p', 'udp', '--dport', '80', '-j', 'DNAT', '--to-destination', `${C.v4}:7103`]);
      assert.ok(send(a, 40103, vip, 80, 10) >= 9, 'replies come back from the Service address');
      await got;
    } finally {
      dropRules();
      sh('conntrack', ['-D', '-p', 'udp', '--orig-port-src', '40103'], { allowFail: true });
    }
  });
});
}
