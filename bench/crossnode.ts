// Pod to pod across (simulated) nodes: vxlan and hostgw, each on the routed and the eBPF
// data path, against two bare namespaces joined by the same underlay (the ceiling).
import { makeCluster, podEnv, type Cluster } from '../testkit/cluster.js';
import { iperf, iperfServer } from '../testkit/traffic.js';
import { cleanupNetns, makeNetns } from '../testkit/twill.js';
import { fmt, median, ratio, table, type Target } from './stats.js';

interface Path {
  name: string;
  from: string;
  to: string;
  addr: string;
}

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 2);

export function crossnode(say: (s: string) => void, out: Record<string, unknown>, _targets: Target[]): void {
  const clusters: Cluster[] = [];
  const paths: Path[] = [];
  try {
    for (const backend of ['vxlan', 'hostgw'] as const) {
      for (const datapath of ['routed', 'ebpf'] as const) {
        const c = makeCluster({ backend, datapath, count: 2 });
        clusters.push(c);
        const pods = c.nodes.map(() => makeNetns());
        const res = c.nodes.map((n, i) => {
          const r = c.twill(n, podEnv(`bench-${i}`, pods[i]!), n.conf);
          if (r.code !== 0) throw new Error(`${backend}/${datapath} ADD: ${r.stdout}`);
          return r.json;
        });
        if (paths.length === 0) paths.push({ name: 'bare underlay (ceiling)', from: c.nodes[0]!.ns, to: c.nodes[1]!.ns, addr: c.nodes[1]!.ip });
        paths.push({ name: `twill ${backend} ${datapath}`, from: pods[0]!, to: pods[1]!, addr: (res[1]!.ips[0].address as string).split('/')[0]! });
      }
    }
    const results = paths.map(() => [] as number[]);
    for (let r = 0; r < ROUNDS; r++) paths.forEach((p, k) => results[k]!.push(iperf(p.from, p.addr, iperfServer(p.to), SECONDS) / 1e9));
    const rows = paths.map((p, k) => ({ name: p.name, gbps: median(results[k]!) }));
    say(`\n## Pod to pod across nodes (1 TCP stream, ${ROUNDS} interleaved rounds, medians)\n`);
    say(table(['path', 'Gbit/s', 'vs underlay'], rows.map((r) => [r.name, fmt(r.gbps, 2), ratio(r.gbps, rows[0]!.gbps)])));
    out.crossnode = rows;
  } finally {
    clusters.forEach((c) => c.destroy());
    cleanupNetns();
  }
}
