// twill chained with the reference portmap and bandwidth plugins, exec'd as a runtime does:
// NAT'd flows (hostPort hairpin, a Service-style DNAT) and shaping must keep working next
// to the eBPF fast path.
import assert from 'node:assert/strict';
import { symlinkSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { runChain, type ChainCall, type ConfList } from '../../tools/dev/chain.js';
import { testNet } from '../helpers/netconf.js';
import { endpointsJson, iperf, iperfServer, tempBpffs } from '../helpers/traffic.js';
import { CNI_BIN_DIR, cleanupNetns, inNs, makeNetns, netnsPath, removeDir, sh, tempDir, TWILL } from '../helpers/twill.js';

after(cleanupNetns);

describe('chained with portmap and bandwidth on the eBPF data path', () => {
  const net = testNet({ stack: 'v4', cniVersion: '1.0.0' });
  const bpffs = tempBpffs();
  const bin = tempDir('chainbin');
  symlinkSync(TWILL, `${bin}/twill`);
  for (const p of ['portmap', 'bandwidth']) symlinkSync(`${CNI_BIN_DIR}/${p}`, `${bin}/${p}`);
  const twillConf = net.conf({ datapath: 'ebpf', bpffsRoot: bpffs.root, capabilities: { bandwidth: true } });
  twillConf.ipam.routes = [{ dst: '0.0.0.0/0' }];
  delete twillConf.cniVersion;
  delete twillConf.name;
  const list: ConfList = {
    cniVersion: '1.0.0',
    name: net.name,
    plugins: [twillConf, { type: 'portmap', capabilities: { portMappings: true } }, { type: 'bandwidth', capabilities: { bandwidth: true } }],
  };
  const subnet = twillConf.ipam.ranges[0][0].subnet as string;
  const gateway = subnet.replace(/0\/24$/, '1');
  const vip = subnet.replace(/0\/24$/, '250'); // a Service VIP inside no pod
  const pods = { a: makeNetns(), b: makeNetns(), c: makeNetns() };
  const caps: Record<string, Record<string, unknown>> = {
    a: { portMappings: [{ hostPort: 18080, containerPort: 5401, protocol: 'tcp' }] },
    b: {},
    c: { bandwidth: { ingressRate: 20_000_000, ingressBurst: 200_000, egressRate: 20_000_000, egressBurst: 200_000 } },
  };
  const call = (verb: ChainCall['verb'], pod: keyof typeof pods): Record<string, any> | undefined =>
    runChain({ verb, conflist: list, containerId: `chain-${pod}`, netns: netnsPath(pods[pod]), ifName: 'eth0', cniPath: bin, capArgs: caps[pod]!, cacheFile: `${bin}/cache-${pod}.json` });
  const ip: Record<string, string> = {};
  const dnat = ['-t', 'nat', 'PREROUTING', '-d', `${vip}/32`, '-p', 'tcp', '--dport', '80', '-j', 'DNAT'];
  after(() => {
    sh('iptables', [...dnat.slice(0, 2), '-D', ...dnat.slice(2), '--to-destination', `${ip.a}:5401`], { allowFail: true });
    for (const p of ['c', 'b', 'a'] as const) {
      try {
        call('DEL', p);
      } catch {
        // best effort
      }
    }
    bpffs.release();
    removeDir(bin);
    removeDir(net.dataDir);
    removeDir(net.stateDir);
  });

  it('ADD runs the whole chain; the result satisfies portmap and bandwidth', () => {
    for (const p of ['a', 'b', 'c'] as const) {
      const r = call('ADD', p)!;
      ip[p] = r.ips[0].address.split('/')[0];
    }
    assert.ok(sh('iptables-save', ['-t', 'nat']).includes(`${ip.a}:5401`), 'portmap installed its DNAT');
    const eps = endpointsJson(bpffs.root);
    assert.equal(eps.find((e) => e.addr === ip.c)?.fastPath, false, 'the shaped pod is kept off the fast path');
    assert.equal(eps.find((e) => e.addr === ip.b)?.fastPath, true);
  });

  it('direct pod-to-pod TCP takes the fast path', () => {
    const before = endpointsJson(bpffs.root).find((e) => e.addr === ip.b)!.counters?.redirectPackets ?? 0;
    assert.ok(iperf(pods.b, ip.a!, iperfServer(pods.a), 1) > 1e9);
    assert.ok((endpointsJson(bpffs.root).find((e) => e.addr === ip.b)!.counters?.redirectPackets ?? 0) > before + 100);
  });

  it('hairpin: pod B → gateway:hostPort → pod A through portmap', () => {
    assert.ok(iperf(pods.b, gateway, iperfServer(pods.a, 5401) && 18080, 1) > 0, 'hairpin via the gateway');
  });

  it('pod A reaches itself through its own hostPort', () => {
    iperfServer(pods.a, 5401);
    assert.ok(iperf(pods.a, gateway, 18080, 1) > 0);
  });

  it('the host reaches the hostPort and the pods', () => {
    iperfServer(pods.a, 5401);
    assert.ok(iperf(undefined, gateway, 18080, 1) > 0);
  });

  it('a client outside the node reaches the hostPort (PREROUTING DNAT, replies through conntrack)', (t) => {
    // The outside client sits on a test-only link in 198.18.250.0/24 (the benchmarking range),
    // never on a network the host already uses.
    if (sh('ip', ['-4', 'route', 'show', 'root', '198.18.0.0/15']).trim() !== '' || /inet 198\.1[89]\./.test(sh('ip', ['-4', 'addr']))) {
      t.skip('198.18.250.0/24 is routed on this host');
      return;
    }
    const outside = makeNetns();
    const uplink = `twtout${process.pid % 10000}`;
    sh('ip', ['link', 'add', uplink, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', outside]);
    try {
      sh('ip', ['addr', 'add', '198.18.250.1/24', 'dev', uplink]);
      sh('ip', ['link', 'set', uplink, 'up']);
      inNs(outside, ['ip', 'addr', 'add', '198.18.250.2/24', 'dev', 'eth0']);
      inNs(outside, ['ip', 'link', 'set', 'eth0', 'up']);
      iperfServer(pods.a, 5401);
      assert.ok(iperf(outside, '198.18.250.1', 18080, 1) > 0, 'outside → host 198.18.250.1:18080 → pod A');
    } finally {
      sh('ip', ['link', 'del', uplink], { allowFail: true });
    }
  });

  it('a Service-style DNAT (VIP:80 → pod A) works from pod B in both directions', () => {
    sh('iptables', [...dnat.slice(0, 2), '-A', ...dnat.slice(2), '--to-destination', `${ip.a}:5401`]);
    iperfServer(pods.a, 5401);
    assert.ok(iperf(pods.b, vip, 80, 1) > 1e8, 'B → VIP → A');
    iperfServer(pods.a, 5401);
    assert.ok(iperf(pods.b, vip, 80, 1, true) > 1e8, 'A → B replies un-NATed (reverse mode)');
  });

  it('bandwidth limits hold between two pods on the node, both directions', () => {
    const toC = iperf(pods.b, ip.c!, iperfServer(pods.c), 2);
    const fromC = iperf(pods.c, ip.b!, iperfServer(pods.b), 2);
    assert.ok(toC > 1e6 && toC < 30e6, `B → C ${Math.round(toC / 1e6)} Mbit/s (ingress limit 20)`);
    assert.ok(fromC > 1e6 && fromC < 30e6, `C → B ${Math.round(fromC / 1e6)} Mbit/s (egress limit 20)`);
  });

  it('CHECK and DEL through the chain leave nothing behind', () => {
    // Only the shaped pod: Debian's bandwidth 1.1.1 crashes on CHECK of an unshaped one.
    call('CHECK', 'c');
    for (const p of ['c', 'b', 'a'] as const) call('DEL', p);
    assert.deepEqual(endpointsJson(bpffs.root), []);
    assert.ok(!sh('iptables-save', ['-t', 'nat']).includes(`${ip.a}:5401 `));
  });
});
