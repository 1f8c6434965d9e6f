// Encapsulation from a hostile pod, on three simulated nodes (VXLAN backend): whatever a pod
// sends, no inner packet it built is delivered as coming from another address. A pod's VXLAN
// datagram to a node's VXLAN port — the victim's node or its own — carrying an inner packet
// sourced from a pod the victim admits never reaches the victim; IPIP, IPv6-in-IP, GRE, L2TP
// and MPLS-in-IP from a pod never leave its node; and a node's VXLAN port takes packets from node addresses
// only (a host on the underlay that is no node gets nothing in), and only to the node's own
// underlay address: a node's other address (a second NIC, a VIP) that is no node in the table
// decapsulates nothing, neither reached through a masquerade nor through a DNAT to the VXLAN
// port. On the routed data path (no eBPF, no policy) and on the eBPF data path under
// NetworkPolicy, with egress masquerade on (as most clusters run).
import assert from 'node:assert/strict';

import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { makeCluster, podEnv, syncPolicies, type Cluster } from '../helpers/cluster.js';
import { echo, pkt, pktBackground, send, sleep } from '../helpers/pkt.js';
import { cleanupNetns, deleteNetns, inNs, makeNetns, sh, TWILL } from '../helpers/twill.js';
import { vtepMac } from '../../lib/datapath/backend.js';
import { masqTag } from '../../lib/datapath/masq.js';
import { guardTable } from '../../lib/sys/guard.js';
import { runMarker } from '../../lib/naming.js';
import type { NetConf } from '../../lib/config/types.js';
import { parseAddr } from '../../lib/net/ip.js';

after(cleanupNetns);

const VXLAN_PORT = 4789;
const placement = [['x', 'attacker'], ['y', 'victim'], ['z', 'admitted']] as const; // node i runs pod i

for (const mode of [{ datapath: 'routed', policy: false }, { datapath: 'ebpf', policy: true }] as const) {
  describe(`encapsulation from a pod, vxlan, ${mode.datapath}${mode.policy ? ' under NetworkPolicy' : ', no policy'}`, () => {
    const c: Cluster = makeCluster({ backend: 'vxlan', datapath: mode.datapath, extra: () => ({ ipMasq: true, ...(mode.policy ? { policy: { type: 'k8s' } } : {}) }) });
    const pods = c.nodes.map(() => makeNetns());
    const v4: string[] = [];

    const [attacker, victim, admitted] = [0, 1, 2];
    after(() => {

      c.destroy();
    });

    const syncAll = (policies: object[]) => {
      if (mode.policy) syncPolicies(c, placement, placement.map((_, i) => (v4[i] ? [v4[i]!] : undefined)), policies);
    };
    /** How many "forged" datagrams reach the victim's UDP port while attack() runs. */
    const forgedAtVictim = async (port: number, attack: () => void): Promise<{ forged: number; hello: number }> => {
      const got = echo(pods[victim]!, port, 2.5);
      await sleep(400);
      // The admitted pod reaches the victim for real: the victim listens, the path works.
      send(pods[admitted]!, 40801, v4[victim]!, port, 2);
      attack();
      const counts = await got;
      return { forged: counts.forged ?? 0, hello: counts.hello ?? 0 };
    };
    const vxlanTo = (node: number, port: number) => () =>
      pkt(pods[attacker]!, ['vxlan', c.nodes[node]!.ip, VXLAN_PORT, c.nodes[node]!.conf.vxlan.vni, vtepMac(parseAddr(c.nodes[node]!.ip)!), v4[admitted]!, v4[victim]!, port, 10]);

    it('attaches a pod on each node; the victim admits only the admitted pod\'s namespace', () => {
      syncAll([]);
      c.nodes.forEach((n, i) => {
        const [ns, name] = placement[i]!;
        const r = c.twill(n, { ...podEnv(`encap-${i}`, pods[i]!), CNI_ARGS: `K8S_POD_NAMESPACE=${ns};K8S_POD_NAME=${name}` }, n.conf);
        assert.equal(r.code, 0, r.stdout);
        v4.push((r.json.ips as { address: string }[]).map((x) => x.address.split('/')[0]!).find((a) => !a.includes(':'))!);
      });
      syncAll([{ kind: 'NetworkPolicy', metadata: { namespace: 'y', name: 'only-z' }, spec: { podSelector: {}, ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'z' } } }] }] } }]);
    });

    it('a pod\'s VXLAN packet to the victim\'s node, sourced inside from an admitted pod, never reaches the victim', async () => {
      const r = await forgedAtVictim(7801, vxlanTo(victim, 7801));
      assert.ok(r.hello > 0, 'the admitted pod reaches the victim');
      assert.equal(r.forged, 0, `${r.forged} decapsulated datagrams reached the victim as the admitted pod`);
    });

    it('… nor through the attacker\'s own node', async () => {
      const r = await forgedAtVictim(7802, vxlanTo(attacker, 7802));
      assert.ok(r.hello > 0);
      assert.equal(r.forged, 0, `${r.forged} decapsulated datagrams reached the victim`);
    });

    /** The victim's node holds a second address that is no node of the table, routed from the attacker's node. */
    const withOtherAddress = async (fn: (other: string) => Promise<void>): Promise<void> => {
      const other = `10.251.${c.nodes[0]!.ip.split('.')[2]}.2`;
      inNs(c.nodes[victim]!.ns, ['ip', 'addr', 'add', `${other}/32`, 'dev', 'eth0']);
      inNs(c.nodes[attacker]!.ns, ['ip', 'route', 'add', `${other}/32`, 'via', c.nodes[victim]!.ip]);
      try {
        await fn(other);
      } finally {
        inNs(c.nodes[attacker]!.ns, ['ip', 'route', 'del', `${other}/32`], true);
        inNs(c.nodes[victim]!.ns, ['ip', 'addr', 'del', `${other}/32`, 'dev', 'eth0'], true);
      }
    };
    const vxlanVia = (from: string, dst: string, dport: number, port: number) => () =>
      pkt(from, ['vxlan', dst, dport, c.nodes[victim]!.conf.vxlan.vni, vtepMac(parseAddr(c.nodes[victim]!.ip)!), v4[admitted]!, v4[victim]!, port, 10]);

    it(`… nor to the victim's node on an address of its that is no node in the table (masqueraded to the attacker node's address on the way)`, async () => {
      await withOtherAddress(async (other) => {
        const r = await forgedAtVictim(7805, vxlanVia(pods[attacker]!, other, VXLAN_PORT, 7805));
        assert.ok(r.hello > 0);
        assert.equal(r.forged, 0, `${r.forged} decapsulated datagrams reached the victim through the node's other address`);
      });
    });

    it(`… nor through a DNAT rule to a node's VXLAN port (a Service's, here one of the test's own)`, async () => {
      const table = `encaptest_dnat_${process.pid}`;
      const vip = `10.252.${c.nodes[0]!.ip.split('.')[2]}.1`;
      sh('ip', ['netns', 'exec', c.nodes[attacker]!.ns, 'nft', '-f', '-'], {
        input: `table ip ${table} {\n chain pre {\n type nat hook prerouting priority dstnat; policy accept;\n ip daddr ${vip} udp dport 5555 dnat to ${c.nodes[victim]!.ip}:${VXLAN_PORT}\n }\n}\n`,
      });
      try {
        const r = await forgedAtVictim(7806, vxlanVia(pods[attacker]!, vip, 5555, 7806));
        assert.ok(r.hello > 0);
        assert.equal(r.forged, 0, `${r.forged} decapsulated datagrams reached the victim through a DNAT to the VXLAN port`);
      } finally {
        inNs(c.nodes[attacker]!.ns, ['nft', 'delete', 'table', 'ip', table], true);
      }
    });

    it(`… nor through a DNAT on the victim's node that turns another of its ports into the VXLAN port (a NodePort whose endpoint is the node's own VXLAN port)`, async () => {
      const table = `encaptest_rdnat_${process.pid}`;
      const node = c.nodes[victim]!.ip;
      sh('ip', ['netns', 'exec', c.nodes[victim]!.ns, 'nft', '-f', '-'], {
        input: `table ip ${table} {\n chain pre {\n type nat hook prerouting priority dstnat; policy accept;\n ip daddr ${node} udp dport 5556 dnat to ${node}:${VXLAN_PORT}\n }\n}\n`,
      });
      try {
        const r = await forgedAtVictim(7808, vxlanVia(pods[attacker]!, node, 5556, 7808));
        assert.ok(r.hello > 0);
        assert.equal(r.forged, 0, `${r.forged} decapsulated datagrams reached the victim through a DNAT on its own node`);
      } finally {
        inNs(c.nodes[victim]!.ns, ['nft', 'delete', 'table', 'ip', table], true);
      }
    });

    it(`a node's VXLAN port takes packets to its own underlay address only: sent by a node to its other address, nothing is decapsulated`, async () => {
      await withOtherAddress(async (other) => {
        const r = await forgedAtVictim(7807, vxlanVia(c.nodes[attacker]!.ns, other, VXLAN_PORT, 7807));
        assert.ok(r.hello > 0);
        assert.equal(r.forged, 0, `${r.forged} datagrams sent to the node's other address were decapsulated and delivered`);
      });
    });

    for (const [proto, name] of [[4, 'IPIP'], [41, 'IPv6-in-IP'], [47, 'GRE'], [115, 'L2TP'], [137, 'MPLS-in-IP']] as const) {
      it(`${name} (IP protocol ${proto}) from a pod never leaves its node`, async () => {
        const sniff = await pktBackground(c.nodes[victim]!.ns, ['sniffproto', 'eth0', proto, 1.5]);
        pkt(pods[attacker]!, ['ipip', c.nodes[victim]!.ip, v4[admitted]!, v4[victim]!, 7803, 10, proto]);
        assert.equal(await sniff.done, '0', `${name} packets from the pod reached the victim's node`);
      });
    }

    it('a node\'s VXLAN port takes packets from node addresses only: a host on the underlay that is no node gets nothing in', async () => {
      const host = makeNetns();
      const [inner, outer] = [`twe${process.pid % 10000}h`, `twe${process.pid % 10000}s`];
      try {
        sh('ip', ['link', 'add', inner, 'netns', host, 'type', 'veth', 'peer', 'name', outer, 'netns', c.switchNs]);
        inNs(c.switchNs, ['ip', 'link', 'set', outer, 'master', 'br0', 'up']);
        const base = c.nodes[0]!.ip.split('.').slice(0, 3).join('.');
        inNs(host, ['ip', 'addr', 'add', `${base}.99/24`, 'dev', inner]);
        inNs(host, ['ip', 'link', 'set', inner, 'up']);
        await sleep(200);
        const r = await forgedAtVictim(7804, () => pkt(host, ['vxlan', c.nodes[victim]!.ip, VXLAN_PORT, c.nodes[victim]!.conf.vxlan.vni, vtepMac(parseAddr(c.nodes[victim]!.ip)!), v4[admitted]!, v4[victim]!, 7804, 10]));
        assert.ok(r.hello > 0);
        assert.equal(r.forged, 0, `${r.forged} datagrams from a host that is no node were decapsulated and delivered`);
      } finally {
        deleteNetns(host);
      }
    });

    const syncNode = (i: number) => {
      const n = c.nodes[i]!;
      const r = c.cli(n, ['sync', '--conf-dir', n.confDir, ...(mode.policy ? ['--from-file', `${n.dir}/objects.json`] : [])]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
    };
    const guardProblem = (i: number): string | undefined => {
      const n = c.nodes[i]!;
      const st = JSON.parse(c.cli(n, ['status', '--conf-dir', n.confDir, '-o', 'json']).stdout) as { problems: string[] }[];
      return st[0]!.problems.find((p) => p.includes('guard'));
    };
    /** Attaches one more pod to node i (its namespace and veth removed after fn). */
    const withExtraPod = async (i: number, id: string, fn: (r: ReturnType<Cluster['twill']>) => Promise<void> | void): Promise<void> => {
      const n = c.nodes[i]!;
      const pod = makeNetns();
      const env = { ...podEnv(id, pod), CNI_ARGS: `K8S_POD_NAMESPACE=${placement[i]![0]};K8S_POD_NAME=${id}` };
      try {
        await fn(c.twill(n, env, n.conf));
      } finally {
        c.twill(n, { ...env, CNI_COMMAND: 'DEL' }, n.conf);
        deleteNetns(pod);
      }
    };

    it('a guard rebuilt while the node table is unreadable keeps the last good node set: peers keep talking over VXLAN, the attack stays blocked', async () => {
      const n = c.nodes[victim]!;
      const good = readFileSync(`${n.dir}/nodes.json`, 'utf8');
      // As after nftables was restarted (or twill upgraded): the guard and its marker are gone,
      // and the node table is half-written when the next pod arrives.
      inNs(n.ns, ['nft', 'delete', 'table', 'inet', guardTable(masqTag(n.conf as NetConf))]);
      rmSync(runMarker(n.conf.stateDir, 'guard', n.conf.name), { force: true });
      writeFileSync(`${n.dir}/nodes.json`, '{"nodes": [');
      try {
        await withExtraPod(victim, 'encap-b3', async (r) => {
          assert.equal(r.code, 0, r.stdout);
          const got = await forgedAtVictim(7808, vxlanTo(victim, 7808));
          assert.ok(got.hello > 0, 'the admitted pod on another node no longer reaches the victim: the guard dropped its node\'s VXLAN');
          assert.equal(got.forged, 0);
        });
      } finally {
        writeFileSync(`${n.dir}/nodes.json`, good);
      }
    });

    it('after `nft flush ruleset` on the attacker\'s node, `twill status` says the guard is gone and the next ADD reinstalls it: the attack is blocked again', async () => {
      inNs(c.nodes[attacker]!.ns, ['nft', 'flush', 'ruleset']);
      assert.match(guardProblem(attacker) ?? '', /holds 0 of its \d+ rules/);
      await withExtraPod(attacker, 'encap-c1', async (r) => {
        assert.equal(r.code, 0, r.stdout);
        assert.equal(guardProblem(attacker), undefined);
        const got = await forgedAtVictim(7809, vxlanTo(attacker, 7809));
        assert.ok(got.hello > 0);
        assert.equal(got.forged, 0, `${got.forged} decapsulated datagrams reached the victim after the flush and an ADD`);
      });
    });

    it('… and so does `twill sync`', async () => {
      inNs(c.nodes[attacker]!.ns, ['nft', 'flush', 'ruleset']);
      syncNode(attacker);
      assert.equal(guardProblem(attacker), undefined);
      const got = await forgedAtVictim(7810, vxlanTo(attacker, 7810));
      assert.ok(got.hello > 0);
      assert.equal(got.forged, 0, `${got.forged} decapsulated datagrams reached the victim after the flush and a sync`);
    });

    if (mode.datapath === 'routed') {
      it('without nft(8) a VXLAN network refuses ADD (code 50, host unchanged) and STATUS, and `twill status` says why', () => {
        const n = c.nodes[attacker]!;
        // nft hidden in a mount namespace of this call only: twill looks for it at fixed paths.
        const noNft = (args: string[], env: Record<string, string>, input = '') =>
          spawnSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c', 'for f in /usr/sbin/nft /usr/bin/nft; do [ -e $f ] && mount --bind /dev/null $f; done; exec "$@"', 'sh', 'ip', 'netns', 'exec', n.ns, TWILL, ...args],
            { input, encoding: 'utf8', env: { PATH: process.env.PATH, ...env }, timeout: 60_000 });
        const pod = makeNetns();
        try {
          const links = inNs(n.ns, ['ip', '-o', 'link', 'show']);
          const r = noNft([], { ...podEnv('encap-nonft', pod), CNI_ARGS: 'K8S_POD_NAMESPACE=x;K8S_POD_NAME=nonft' }, JSON.stringify(n.conf));
          assert.notEqual(r.status, 0);
          const err = JSON.parse(r.stdout) as { code: number; msg: string };
          assert.equal(err.code, 50, r.stdout);
          assert.match(err.msg, /nftables guard.*nft\(8\) not found/);
          assert.equal(inNs(n.ns, ['ip', '-o', 'link', 'show']), links, 'the refused ADD left a link behind');
          assert.equal(inNs(pod, ['ip', 'link', 'show', 'eth0'], true).includes('eth0@'), false);
          const st = noNft([], { CNI_COMMAND: 'STATUS' }, JSON.stringify(n.conf));
          assert.equal((JSON.parse(st.stdout) as { code: number }).code, 50, st.stdout);
          const cli = noNft(['status', '--conf-dir', n.confDir], {});
          assert.equal(cli.status, 1);
          assert.match(cli.stdout, /problem: +a VXLAN network needs its nftables guard/);
        } finally {
          deleteNetns(pod);
        }
      });
    }
  });
}

