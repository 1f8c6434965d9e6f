// Three simulated nodes: pods on every node reach pods on every other, IPv4 and IPv6, for
// vxlan and hostgw, on the eBPF and the routed data paths; node removal and idempotent sync.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { makeCluster, podEnv, type Cluster } from '../helpers/cluster.js';
import { iperf, iperfServer } from '../helpers/traffic.js';
import { cleanupNetns, inNs, makeNetns, pingOk } from '../helpers/twill.js';

after(cleanupNetns);

const addr = (r: Record<string, any>, v6: boolean): string => r.ips.find((i: { address: string }) => i.address.includes(':') === v6).address.split('/')[0];

for (const backend of ['vxlan', 'hostgw'] as const) {
  for (const datapath of ['ebpf', 'routed'] as const) {
    describe(`three nodes, ${backend}, ${datapath}`, () => {
      // One VXLAN cluster forces checksum offload off, as on kernels before 5.7 (auto leaves it on here).
      const c: Cluster = makeCluster({ backend, datapath, extra: () => (datapath === 'ebpf' ? { vxlan: { vni: 200, txChecksumOffload: 'off' } } : {}) });
      const pods = c.nodes.map(() => makeNetns());
      const res: Record<string, any>[] = [];
      after(() => c.destroy());

      it('ADD on every node programs the backend and attaches the pod', () => {
        c.nodes.forEach((n, i) => {
          const r = c.twill(n, podEnv(`pod-${i}`, pods[i]!), n.conf);
          assert.equal(r.code, 0, r.stdout);
          res.push(r.json);
        });
        if (backend === 'vxlan') {
          const mtu = res[0]!.interfaces[1].mtu;
          assert.equal(mtu, 1450, 'pod MTU = underlay 1500 - 50');
          const off = c.nodes[0]!.conf.vxlan.txChecksumOffload === 'off';
          assert.match(inNs(c.nodes[0]!.ns, ['ethtool', '-k', `twill.${c.nodes[0]!.conf.vxlan.vni}`]), off ? /tx-checksumming: off/ : /tx-checksumming: on/);
        }
      });

      it('pods on every node ping pods on every other, IPv4 and IPv6', () => {
        for (let i = 0; i < 3; i++) {
          for (let j = 0; j < 3; j++) {
            if (i === j) continue;
            for (const v6 of [false, true]) assert.ok(pingOk(pods[i], addr(res[j]!, v6)), `pod ${i} → pod ${j} ${v6 ? 'v6' : 'v4'}`);
          }
        }
      });

      it('TCP crosses nodes, IPv4 and IPv6', () => {
        assert.ok(iperf(pods[0], addr(res[1]!, false), iperfServer(pods[1]!), 1) > 0);
        assert.ok(iperf(pods[2], addr(res[0]!, true), iperfServer(pods[0]!), 1) > 0);
      });

      if (backend === 'vxlan') {
        it('a 1400-byte payload with DF set crosses the VXLAN path', () => {
          const r = spawnSync('ip', ['netns', 'exec', pods[0]!, 'ping', '-M', 'do', '-s', '1400', '-c', '1', '-W', '2', addr(res[2]!, false)], { encoding: 'utf8' });
          assert.equal(r.status, 0, r.stdout + r.stderr);
        });
      }

      it('sync is idempotent, and removing a node cuts exactly its routes', () => {
        const a = c.nodes[0]!;
        const again = c.cli(a, ['sync', '--conf-dir', a.confDir, '--json']);
        assert.equal(again.code, 0, again.stdout + again.stderr);
        assert.equal(JSON.parse(again.stdout).networks[0].state.changes, 0, 'second sync changes nothing');
        const without = `${a.dir}/without-3.json`;
        writeFileSync(without, JSON.stringify({ nodes: c.nodes.slice(0, 2).map((n) => ({ name: n.name, ip: n.ip, ip6: n.ip6, podCIDRs: [n.cidr4, n.cidr6] })) }));
        a.conf.nodesFile = without;
        const entry = { ...a.conf };
        delete entry.cniVersion;
        delete entry.name;
        writeFileSync(`${a.confDir}/10-twill.conflist`, JSON.stringify({ cniVersion: '1.1.0', name: a.conf.name, plugins: [entry] }));
        const cut = c.cli(a, ['sync', '--conf-dir', a.confDir, '--json']);
        assert.equal(cut.code, 0, cut.stdout + cut.stderr);
        assert.ok(JSON.parse(cut.stdout).networks[0].state.changes > 0);
        assert.ok(!pingOk(pods[0], addr(res[2]!, false)), 'node 3 is cut off from node 1');
        assert.ok(pingOk(pods[0], addr(res[1]!, false)), 'node 2 is still reachable');
        const routes = inNs(a.ns, ['ip', 'route']);
        assert.ok(!routes.includes(c.nodes[2]!.cidr4), routes);
        assert.ok(routes.includes(c.nodes[1]!.cidr4), routes);
        assert.equal(JSON.parse(c.cli(a, ['sync', '--conf-dir', a.confDir, '--json']).stdout).networks[0].state.changes, 0);
      });

      it('DEL on every node detaches the pods; sync --cleanup removes every peer route, FDB and neighbour entry', () => {
        c.nodes.forEach((n, i) => assert.equal(c.twill(n, { ...podEnv(`pod-${i}`, pods[i]!), CNI_COMMAND: 'DEL' }, n.conf).code, 0));
        const b = c.nodes[1]!;
        const r = c.cli(b, ['sync', '--conf-dir', b.confDir, '--cleanup', '--json']);
        assert.equal(r.code, 0, r.stdout + r.stderr);
        assert.doesNotMatch(inNs(b.ns, ['ip', 'route', 'show', 'proto', '119']) + inNs(b.ns, ['ip', '-6', 'route', 'show', 'proto', '119']), /via/);
        if (backend === 'vxlan') {
          // The device goes, and with it every FDB and neighbour entry.
          assert.doesNotMatch(inNs(b.ns, ['ip', '-br', 'link']), new RegExp(`twill\\.${b.conf.vxlan.vni}`));
          assert.doesNotMatch(inNs(b.ns, ['bridge', 'fdb', 'show']), /dst 10\.250\./);
          assert.doesNotMatch(inNs(b.ns, ['ip', 'neigh', 'show', 'nud', 'permanent']), /lladdr 0e:/);
        }
      });
    });
  }
}

describe('hostgw with a peer off the underlay', () => {
  const c = makeCluster({ backend: 'hostgw', datapath: 'routed', count: 2 });
  after(() => c.destroy());

  it('says so (sync, status) and installs no black hole', () => {
    const a = c.nodes[0]!;
    const table = [...c.nodes.map((n) => ({ name: n.name, ip: n.ip, podCIDRs: [n.cidr4] })), { name: 'far-away', ip: '10.99.99.9', podCIDRs: ['10.244.99.0/24'] }];
    writeFileSync(`${a.dir}/nodes.json`, JSON.stringify({ nodes: table }));
    const r = c.cli(a, ['sync', '--conf-dir', a.confDir, '--json']);
    assert.equal(r.code, 1);
    assert.match(JSON.parse(r.stdout).networks[0].state.problems.join(), /far-away \(10\.99\.99\.9\) is not directly reachable/);
    assert.ok(!inNs(a.ns, ['ip', 'route']).includes('10.244.99.0/24'));
    assert.ok(inNs(a.ns, ['ip', 'route']).includes(c.nodes[1]!.cidr4));
  });
});

describe('ipMasq: egress from pods to outside the cluster', () => {
  const c = makeCluster({ backend: 'hostgw', datapath: 'routed', count: 2, extra: () => ({ ipMasq: true }) });
  after(() => c.destroy());

  it('masquerades with one rule per network, and removes it with the last pod', () => {
    const a = c.nodes[0]!;
    // An "outside" host on the underlay, with no route to any pod CIDR.
    const outside = makeNetns();
    const pods = [makeNetns(), makeNetns()];
    const r1 = c.twill(a, podEnv('masq-1', pods[0]!), a.conf);
    assert.equal(r1.code, 0, r1.stdout);
    const r2 = c.twill(a, podEnv('masq-2', pods[1]!), a.conf);
    assert.equal(r2.code, 0, r2.stdout);
    const rules = inNs(a.ns, ['nft', 'list', 'ruleset']);
    assert.equal((rules.match(/masquerade/g) ?? []).length, 2, `one rule per family:\n${rules}`);
    assert.match(rules, new RegExp(`saddr ${a.cidr4.replace(/[./]/g, (m) => `\\${m}`)}`));
    // Traffic to a peer node's pods stays unmasqueraded (cluster CIDRs are exempt).
    assert.match(rules, /daddr != \{/);
    // Reach the outside host through node 1's underlay address.
    const uplink = `twout${process.pid % 10000}`;
    inNs(a.ns, ['ip', 'link', 'add', uplink, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', outside]);
    inNs(a.ns, ['ip', 'addr', 'add', '198.18.250.1/24', 'dev', uplink]);
    inNs(a.ns, ['ip', 'link', 'set', uplink, 'up']);
    inNs(outside, ['ip', 'addr', 'add', '198.18.250.2/24', 'dev', 'eth0']);
    inNs(outside, ['ip', 'link', 'set', 'eth0', 'up']);
    assert.ok(pingOk(pods[0], '198.18.250.2'), 'pod → outside works only when masqueraded (outside has no route back to pods)');
    assert.equal(c.twill(a, { ...podEnv('masq-1', pods[0]!), CNI_COMMAND: 'DEL' }, a.conf).code, 0);
    assert.match(inNs(a.ns, ['nft', 'list', 'ruleset']), /masquerade/, 'still one pod left');
    assert.equal(c.twill(a, { ...podEnv('masq-2', pods[1]!), CNI_COMMAND: 'DEL' }, a.conf).code, 0);
    assert.doesNotMatch(inNs(a.ns, ['nft', 'list', 'ruleset']), /masquerade/);
  });
});

describe('VXLAN over an IPv6 underlay', () => {
  const c = makeCluster({ backend: 'vxlan', datapath: 'routed', count: 2, underlay6: true, extra: () => ({ vxlan: { vni: 300 } }) });
  after(() => c.destroy());

  it('tunnels both families between nodes known only by IPv6 address; MTU is the underlay minus 70', () => {
    const pods = c.nodes.map(() => makeNetns());
    const res = c.nodes.map((n, i) => {
      const r = c.twill(n, podEnv(`u6-${i}`, pods[i]!), n.conf);
      assert.equal(r.code, 0, r.stdout);
      return r.json;
    });
    assert.equal(res[0]!.interfaces[1].mtu, 1430);
    for (const v6 of [false, true]) assert.ok(pingOk(pods[0], addr(res[1]!, v6)), `v6 underlay, ${v6 ? 'IPv6' : 'IPv4'} pods`);
    const df = spawnSync('ip', ['netns', 'exec', pods[0]!, 'ping', '-M', 'do', '-s', '1400', '-c', '1', '-W', '2', addr(res[1]!, false)], { encoding: 'utf8' });
    assert.equal(df.status, 0, df.stdout + df.stderr);
    c.nodes.forEach((n, i) => assert.equal(c.twill(n, { ...podEnv(`u6-${i}`, pods[i]!), CNI_COMMAND: 'DEL' }, n.conf).code, 0));
  });
});

describe('a 10,000-node table with bad entries, and a table that becomes unreadable', () => {
  const c = makeCluster({ backend: 'hostgw', datapath: 'routed', count: 2 });
  after(() => c.destroy());
  const FAKE = 9998;

  it('skips and reports the bad nodes, programs the rest, and keeps the last good table when a read fails', () => {
    const a = c.nodes[0]!;
    // The fake nodes live on a second, directly connected underlay prefix of node a.
    inNs(a.ns, ['ip', 'addr', 'add', '10.96.255.254/16', 'dev', 'eth0']);
    const fake = Array.from({ length: FAKE }, (_, i) => ({ name: `fake-${i}`, ip: `10.96.${Math.floor(i / 250)}.${(i % 250) + 1}`, podCIDRs: [`10.${160 + (i >> 8)}.${i & 255}.0/24`] }));
    const bad = [{ name: 'bad-ip', ip: 'not-an-address', podCIDRs: ['10.159.0.0/24'] }, { name: 'bad-cidr', ip: '10.96.200.1', podCIDRs: ['10.159.1.0/99'] }, { ip: '10.96.200.2', podCIDRs: [] }];
    const table = [...c.nodes.map((n) => ({ name: n.name, ip: n.ip, podCIDRs: [n.cidr4] })), ...bad, ...fake];
    writeFileSync(`${a.dir}/nodes.json`, JSON.stringify({ nodes: table }));
    const pod = makeNetns();
    const r = c.twill(a, podEnv('big', pod), a.conf);
    assert.equal(r.code, 0, r.stdout);
    const routes = (): number => inNs(a.ns, ['ip', 'route', 'show', 'proto', '119']).split('\n').filter(Boolean).length;
    assert.equal(routes(), FAKE + 1);
    const s = c.cli(a, ['sync', '--conf-dir', a.confDir, '--json']);
    const st = JSON.parse(s.stdout).networks[0].state;
    assert.equal(st.peers.length, FAKE + 1);
    assert.equal(st.problems.length, 3, st.problems.join('\n'));
    assert.match(st.problems.join('\n'), /bad-ip.*not an address.*skipped/);
    assert.match(st.problems.join('\n'), /bad-cidr.*not a CIDR/);
    // Half-written by config management: ADD and sync keep the last good table.
    writeFileSync(`${a.dir}/nodes.json`, JSON.stringify({ nodes: table }).slice(0, 5000));
    const pod2 = makeNetns();
    const r2 = c.twill(a, podEnv('big2', pod2), a.conf);
    assert.equal(r2.code, 0, r2.stdout);
    const s2 = c.cli(a, ['sync', '--conf-dir', a.confDir, '--json']);
    assert.match(JSON.parse(s2.stdout).networks[0].state.problems.join('\n'), new RegExp(`kept the last good table \\(${table.length} nodes\\)`));
    assert.equal(routes(), FAKE + 1, 'no peer route was deleted');
    for (const [id, ns, res] of [['big', pod, r], ['big2', pod2, r2]] as const) {
      assert.equal(c.twill(a, { ...podEnv(id, ns), CNI_COMMAND: 'DEL' }, { ...a.conf, prevResult: res.json }).code, 0);
    }
  });
});
