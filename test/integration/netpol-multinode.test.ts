// NetworkPolicy across three simulated nodes, vxlan and hostgw: each node enforces the
// ingress rules of its own pods against pods of other nodes, and its pods' egress rules
// toward them, from the same objects synced on every node.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, describe, it } from 'node:test';
import { makeCluster, podEnv, syncPolicies, type Cluster } from '../helpers/cluster.js';
import { AGENT } from '../helpers/netpol.js';
import { cleanupNetns, makeNetns } from '../helpers/twill.js';

after(cleanupNetns);

const pol = (ns: string, name: string, spec: object): object => ({ kind: 'NetworkPolicy', metadata: { namespace: ns, name }, spec });

function probe(netns: string, targets: [string, number, string][]): Promise<boolean[]> {
  return new Promise((res) => {
    const p = spawn('ip', ['netns', 'exec', netns, 'python3', AGENT, 'probe', '0.5'], { stdio: ['pipe', 'pipe', 'inherit'] });
    let s = '';
    p.stdout.on('data', (d) => (s += d));
    p.on('close', () => res(JSON.parse(s || '[]') as boolean[]));
    p.stdin.end(JSON.stringify(targets));
  });
}

// The everyday conflist (no capability on twill: pods pending, then settled) on both backends;
// twill declaring the bandwidth capability once.
for (const [backend, shape] of [['vxlan', 'everyday'], ['hostgw', 'everyday'], ['vxlan', 'declared']] as const) {
  describe(`NetworkPolicy on three nodes, ${backend}, ${shape} conflist`, () => {
    const c: Cluster = makeCluster({ backend, datapath: 'ebpf', shape, extra: () => ({ policy: { type: 'k8s' } }) });
    const placement = [['x', 'a'], ['y', 'b'], ['z', 'c']] as const; // node i runs pod i
    const pods = c.nodes.map(() => makeNetns());
    const ips: string[][] = [];
    const servers: ReturnType<typeof spawn>[] = [];
    after(() => {
      for (const s of servers) s.kill();
      c.destroy();
    });

    const syncAll = (policies: object[]) => syncPolicies(c, placement, ips, policies, [{ name: 'http', containerPort: 80 }]);
    /** From each pod to each other pod's v4 and v6 address on TCP 80: "i->j v4" → reached. */
    const matrix = async (): Promise<Record<string, boolean>> => {
      const out: Record<string, boolean> = {};
      await Promise.all(pods.map(async (p, i) => {
        const targets = c.nodes.flatMap((_, j) => (i === j ? [] : ips[j]!.map((ip) => [ip, 80, 'TCP'] as [string, number, string])));
        const r = await probe(p, targets);
        targets.forEach((t, k) => (out[`${placement[i]!.join('/')}->${placement[c.nodes.findIndex((_, j) => ips[j]?.includes(t[0]))]!.join('/')} ${t[0].includes(':') ? 'v6' : 'v4'}`] = r[k]!));
      }));
      return out;
    };

    it('pods attached on every node after a sync that knew them, then known cluster-wide', () => {
      syncAll([]);
      c.nodes.forEach((n, i) => {
        const [ns, name] = placement[i]!;
        const r = c.twill(n, { ...podEnv(`np-${i}`, pods[i]!), CNI_ARGS: `K8S_POD_NAMESPACE=${ns};K8S_POD_NAME=${name}` }, n.conf);
        assert.equal(r.code, 0, r.stdout);
        ips.push(r.json.ips.map((x: { address: string }) => x.address.split('/')[0]));
        servers.push(spawn('ip', ['netns', 'exec', pods[i]!, 'python3', AGENT, 'serve', '80'], { stdio: 'ignore' }));
      });
      syncAll([]);
    });

    it('with no policy every pod reaches every other across nodes, IPv4 and IPv6', async () => {
      await new Promise((r) => setTimeout(r, 300));
      const m = await matrix();
      assert.deepEqual(Object.entries(m).filter(([, ok]) => !ok), []);
    });

    it('ingress: x/a (node 1) admits y/b (node 2) and not z/c (node 3); egress: y/b may reach only namespace x', async () => {
      syncAll([
        pol('x', 'from-y', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'y' } } }], ports: [{ port: 'http' }] }] }),
        pol('y', 'to-x', { podSelector: {}, policyTypes: ['Egress'], egress: [{ to: [{ namespaceSelector: { matchLabels: { ns: 'x' } } }] }] }),
      ]);
      const m = await matrix();
      const want = (k: string): boolean => !(k.startsWith('z/c->x/a') || k.startsWith('y/b->z/c'));
      assert.deepEqual(Object.entries(m).filter(([k, ok]) => ok !== want(k)), []);
      // Each node's flow history tells its side, naming the other nodes' pods as the sync read them.
      type F = { flow: { verdict: string; is_reply?: boolean; drop_reason_desc?: string; source: { namespace?: string; pod_name?: string }; destination: { namespace?: string; pod_name?: string }; traffic_direction: string; ingress_denied_by?: { name: string }[]; egress_denied_by?: { name: string }[] } };
      const observe = (i: number, args: string[]): F[] => {
        const r = c.cli(c.nodes[i]!, ['observe', '--conf-dir', c.nodes[i]!.confDir, '-o', 'json', '--last', '1000', ...args]);
        assert.equal(r.code, 0, r.stderr);
        return r.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as F);
      };
      const name = (p: { namespace?: string; pod_name?: string }): string => `${p.namespace}/${p.pod_name}`;
      const atX = observe(0, ['--from-pod', 'z/c', '--to-pod', 'x/a', '--port', '80', '--since', '1m']).filter((f) => !f.flow.is_reply);
      assert.ok(atX.length >= 2 && atX.every((f) => f.flow.verdict === 'DROPPED' && f.flow.traffic_direction === 'INGRESS'), JSON.stringify(atX));
      assert.deepEqual([...new Set(atX.flatMap((f) => f.flow.ingress_denied_by!.map((p) => p.name)))], ['from-y']);
      const fromZ = observe(2, ['--from-pod', 'z/c', '--to-pod', 'x/a']);
      assert.ok(fromZ.length >= 2 && fromZ.every((f) => f.flow.verdict === 'FORWARDED' && f.flow.traffic_direction === 'EGRESS'), 'z/c\'s node sent it: the drop is the receiver\'s');
      const atY = observe(1, ['--verdict', 'DROPPED', '--from-pod', 'y/b']);
      assert.ok(atY.length >= 2 && atY.every((f) => name(f.flow.destination) === 'z/c' && f.flow.drop_reason_desc === 'POLICY_DENIED' && f.flow.egress_denied_by!.some((p) => p.name === 'to-x')), JSON.stringify(atY));
      assert.ok(observe(1, ['--from-pod', 'y/b', '--to-pod', 'x/a', '--verdict', 'FORWARDED']).length >= 2, 'y/b -> x/a forwarded on its way out');
    });

    it('ipBlock across nodes: x/a admits node 3\'s pod by its address only', async () => {
      syncAll([pol('x', 'from-cidr', { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: `${ips[2]![0]}/32` } }, { ipBlock: { cidr: `${ips[2]![1]}/128` } }] }] })]);
      const m = await matrix();
      const want = (k: string): boolean => !k.startsWith('y/b->x/a');
      assert.deepEqual(Object.entries(m).filter(([k, ok]) => ok !== want(k)), []);
    });
  });
}
