// ICMP under NetworkPolicy between pods of two nodes (VXLAN): an echo request is noted as let
// out on the requester's node and as delivered on the responder's, so the reply passes both
// nodes' programs as an answer; an echo reply nobody asked for passes neither.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, describe, it } from 'node:test';
import { makeCluster, podEnv, syncPolicies, type Cluster } from '../helpers/cluster.js';
import { pkt, pktBackground } from '../helpers/pkt.js';
import { cleanupNetns, makeNetns } from '../helpers/twill.js';

after(cleanupNetns);

const placement = [['x', 'a'], ['y', 'b']] as const; // node i runs pod i
const pol = (ns: string, name: string, spec: object): object => ({ kind: 'NetworkPolicy', metadata: { namespace: ns, name }, spec });
const denyAll = (ns: string): object => pol(ns, 'deny-all', { podSelector: {}, policyTypes: ['Ingress', 'Egress'] });

describe('ICMP under NetworkPolicy across two nodes, vxlan', () => {
  const c: Cluster = makeCluster({ backend: 'vxlan', datapath: 'ebpf', count: 2, extra: () => ({ policy: { type: 'k8s' } }) });
  const pods = c.nodes.map(() => makeNetns());
  const ips: string[][] = [];
  after(() => c.destroy());
  const ip = (i: number, v6: boolean): string => ips[i]!.find((a) => a.includes(':') === v6)!;
  const ping = (from: number, to: number, v6: boolean): boolean =>
    spawnSync('ip', ['netns', 'exec', pods[from]!, 'ping', ...(v6 ? ['-6'] : []), '-c', '2', '-i', '0.3', '-W', '2', ip(to, v6)]).status === 0;
  const syncAll = (policies: object[]) => syncPolicies(c, placement, ips, policies);

  it('attaches a pod on each node', () => {
    syncAll([]);
    c.nodes.forEach((n, i) => {
      const [ns, name] = placement[i]!;
      const r = c.twill(n, { ...podEnv(`icmp-mn-${i}`, pods[i]!), CNI_ARGS: `K8S_POD_NAMESPACE=${ns};K8S_POD_NAME=${name}` }, n.conf);
      assert.equal(r.code, 0, r.stdout);
      ips.push(r.json.ips.map((x: { address: string }) => x.address.split('/')[0]));
    });
  });

  for (const v6 of [false, true]) {
    const fam = v6 ? 'IPv6' : 'IPv4';
    it(`deny-all on both sides plus rules with no ports from a to b: a pings b, b does not ping a (${fam})`, () => {
      syncAll([
        denyAll('x'), denyAll('y'),
        pol('x', 'a-to-b', { podSelector: {}, policyTypes: ['Egress'], egress: [{ to: [{ namespaceSelector: { matchLabels: { ns: 'y' } } }] }] }),
        pol('y', 'b-from-a', { podSelector: {}, ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'x' } } }] }] }),
      ]);
      assert.ok(ping(0, 1, v6), 'a pings b: the replies pass both nodes as answers');
      assert.equal(ping(1, 0, v6), false, 'b may not ping a');
    });

    it(`deny-all: an echo reply nobody asked for does not cross to the other node's pod (${fam})`, async () => {
      syncAll([denyAll('x'), denyAll('y')]);
      const w = await pktBackground(pods[0]!, ['icmpwatch', 1.5, `mn-tunnel-${fam}`]);
      pkt(pods[1]!, ['icmp', ip(0, v6), v6 ? 129 : 0, 0, 4244, `mn-tunnel-${fam}`, 10]);
      assert.equal(await w.done, '0');
    });
  }
});
