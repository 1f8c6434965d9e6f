// NetworkPolicy costs, interleaved in one run: the pod-to-pod path with 0-10,000 rules and
// 10,000 pods in the ipcache against the same decisions as iptables FORWARD rules; sync of
// a 10,000-pod cluster with 1,000 policies and of one label change; ADD with and without
// enforcement; the locked kernel memory of a node's maps with 110 pods.
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { delNetns, envFor, newNetns, timedRun, type Subject, type Workspace } from './plugins.js';
import { serverRules, spreadPolicies, type LocalPod } from './cluster-objects.js';
import { iperf, pluginPair, rr, type Pair } from './datapath.js';
import { fmt, median, ratio, table, target, type Target } from './stats.js';

const ROUNDS = Number(process.env.BENCH_POLICY_ROUNDS ?? process.env.BENCH_ROUNDS ?? 5);
const RULES = [0, 100, 1000, 10000];
const CLUSTER = 10_000;
const NODE = 'bench-node';

const run = (cmd: string[], allowFail = false): string => {
  const r = spawnSync(cmd[0]!, cmd.slice(1), { encoding: 'utf8', timeout: 300_000, maxBuffer: 64 << 20 });
  if (r.status !== 0 && !allowFail) throw new Error(`${cmd.join(' ')}: ${r.stderr}${r.stdout}`);
  return r.stdout;
};

interface Pod {
  ns: string;
  name: string;
  netns: string;
  ip: string;
  id: string;
}

export class PolicyNet {
  readonly s: Subject;
  readonly confDir: string;
  readonly pods: Pod[] = [];
  constructor(readonly ws: Workspace, octet: number) {
    this.s = ws.subject('twill-ebpf-policy', octet);
    this.confDir = `${ws.dir}/net.d-${octet}`;
    mkdirSync(this.confDir, { recursive: true });
    const { cniVersion, name, ...entry } = this.s.conf as { cniVersion: string; name: string };
    writeFileSync(`${this.confDir}/10-bench.conflist`, JSON.stringify({ cniVersion, name, plugins: [entry] }));
  }

  env(verb: string, p: { ns: string; name: string; netns: string; id: string }): Record<string, string> {
    return { ...envFor(verb, p.id, p.netns, this.ws.binDir), CNI_ARGS: `K8S_POD_NAMESPACE=${p.ns};K8S_POD_NAME=${p.name}` };
  }

  add(ns: string, name: string): Pod {
    const p = { ns, name, netns: newNetns(), id: `pol-${ns}-${name}`, ip: '' };
    const r = timedRun(this.s.bin, this.env('ADD', p), JSON.stringify(this.s.conf));
    if (r.code !== 0) throw new Error(`ADD ${ns}/${name}: ${r.stdout}`);
    p.ip = (JSON.parse(r.stdout) as { ips: { address: string }[] }).ips[0]!.address.split('/')[0]!;
    this.pods.push(p);
    return p;
  }

  local(labels: (p: Pod) => Record<string, string>): LocalPod[] {
    return this.pods.map((p) => ({ ns: p.ns, name: p.name, ip: p.ip, labels: labels(p) }));
  }

  /** Syncs from a file of objects; wall time and peak RSS of the sync process. */
  sync(objects: object): { ms: number; rssMb: number; stdout: string } {
    const file = `${this.ws.dir}/objects.json`;
    writeFileSync(file, JSON.stringify(objects));
    const t0 = process.hrtime.bigint();
    const r = spawnSync('/usr/bin/time', ['-f', '%M', this.s.bin, 'sync', '--conf-dir', this.confDir, '--from-file', file], { encoding: 'utf8', maxBuffer: 64 << 20 });
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (r.status !== 0) throw new Error(`sync: ${r.stdout}${r.stderr}`);
    return { ms, rssMb: Number(r.stderr.trim().split('\n').pop()) / 1024, stdout: r.stdout };
  }

  teardown(): void {
    for (const p of this.pods) {
      timedRun(this.s.bin, this.env('DEL', p), JSON.stringify(this.s.conf));
      delNetns(p.netns);
    }
    this.pods.length = 0;
  }
}

/** The same decisions as FORWARD rules, judged per packet like the eBPF path: n rules that do not match, then the client's. */
function iptablesRules(n: number, client: string, server: string): () => void {
  const rules: string[] = [];
  for (let k = 0; k < n; k++) rules.push(`-A TWPOL -s 10.128.${(k >> 8) & 255}.${k & 255}/32 -d ${server}/32 -p tcp --dport ${6000 + (k % 50)} -j ACCEPT`);
  rules.push(`-A TWPOL -s ${client}/32 -d ${server}/32 -j ACCEPT`, `-A TWPOL -d ${server}/32 -j DROP`);
  writeFileSync('/tmp/twill-bench-policy-rules', `*filter\n:TWPOL - [0:0]\n${rules.join('\n')}\n-I FORWARD -j TWPOL\nCOMMIT\n`);
  run(['iptables-restore', '--noflush', '/tmp/twill-bench-policy-rules']);
  return () => {
    run(['iptables', '-D', 'FORWARD', '-j', 'TWPOL'], true);
    run(['iptables', '-F', 'TWPOL'], true);
    run(['iptables', '-X', 'TWPOL'], true);
  };
}

export async function policyBench(ws: Workspace, say: (s: string) => void, out: Record<string, unknown>, targets: Target[]): Promise<void> {
  const rrBin = `${ws.dir}/rr`;
  run(['cc', '-O2', '-o', rrBin, 'bench/rr.c']);
  if (!process.env.BENCH_POLICY_SKIP_DATAPATH) dataPath(ws, say, out, targets, rrBin);
  await scale(ws, say, out, targets);
  addCost(ws, say, out, targets);
}

function dataPath(ws: Workspace, say: (s: string) => void, out: Record<string, unknown>, targets: Target[], rrBin: string): void {
  const net = new PolicyNet(ws, 245);
  const plain = pluginPair(ws, 'twill-ebpf', 244, 'policy baseline');
  const routed = pluginPair(ws, 'twill', 243, 'policy iptables');
  // Each measurement with policy is paired with one without, taken just before it: the ratio
  // of each pair, then the median of those, keeps the machine's drift out of the comparison.
  const res = RULES.map(() => ({ plain: [] as number[], plainRr: [] as number[], one: [] as number[], rr: [] as number[], ipt: [] as number[], iptRr: [] as number[], ipt0: [] as number[], ipt0Rr: [] as number[], entries: 0 }));
  try {
    const client = net.add('bench', 'client');
    const server = net.add('bench', 'server');
    const local = net.local((p) => ({ app: p.name }));
    const pol: Pair = { name: 'policy', a: client.netns, b: server.netns, addrB: server.ip, teardown: () => undefined };
    for (let round = 0; round < ROUNDS; round++) {
      RULES.forEach((n, k) => {
        const r = res[k]!;
        const s = net.sync(serverRules(CLUSTER, local, n, NODE));
        r.entries = Number(/(\d+) policy entries/.exec(s.stdout)?.[1] ?? 0);
        r.plain.push(iperf(plain, 1));
        r.one.push(iperf(pol, 1));
        r.plainRr.push(rr(plain, rrBin));
        r.rr.push(rr(pol, rrBin));
        r.ipt0.push(iperf(routed, 1));
        r.ipt0Rr.push(rr(routed, rrBin));
        const undo = iptablesRules(n, routed.addrA!, routed.addrB);
        try {
          r.ipt.push(iperf(routed, 1));
          r.iptRr.push(rr(routed, rrBin));
        } finally {
          undo();
        }
      });
    }
  } finally {
    net.teardown();
    plain.teardown();
    routed.teardown();
  }
  const paired = (a: number[], b: number[]): number => median(a.map((x, i) => x / b[i]!));
  const rows = RULES.map((n, k) => {
    const r = res[k]!;
    return {
      rules: n, entries: r.entries,
      ebpf: { one: median(r.one), rr: median(r.rr), oneRatio: paired(r.one, r.plain), rrRatio: paired(r.rr, r.plainRr) },
      plain: { one: median(r.plain), rr: median(r.plainRr) },
      iptables: { one: median(r.ipt), rr: median(r.iptRr), oneRatio: paired(r.ipt, r.ipt0), rrRatio: paired(r.iptRr, r.ipt0Rr) },
    };
  });
  say(`\n## NetworkPolicy on the pod-to-pod path (${ROUNDS} rounds, each measurement paired with one without policy taken just before it; medians; ${CLUSTER.toLocaleString('en')} pods in the ipcache)\n`);
  say('eBPF: twill ebpf with the rules on the receiving pod against twill ebpf without policy. iptables: twill routed with the same decisions as FORWARD rules (n non-matching rules, then the client\'s), judged on every packet as the eBPF path judges them, against the same path with no rules.\n');
  say(table(['rules', 'policy entries', 'eBPF Gbit/s', 'vs no policy', 'eBPF RR µs', 'vs no policy', 'iptables Gbit/s', 'vs no rules', 'iptables RR µs', 'vs no rules'], rows.map((r) => [
    r.rules.toLocaleString('en'), String(r.entries), fmt(r.ebpf.one, 2), `${fmt(r.ebpf.oneRatio, 2)}x`, fmt(r.ebpf.rr, 2), `${fmt(r.ebpf.rrRatio, 2)}x`, fmt(r.iptables.one, 2), `${fmt(r.iptables.oneRatio, 2)}x`, fmt(r.iptables.rr, 2), `${fmt(r.iptables.rrRatio, 2)}x`,
  ])));
  out.policyDatapath = rows;
  for (const r of rows) {
    targets.push(target(`policy ${r.rules} rules: 1-stream throughput vs no policy`, r.ebpf.oneRatio, 0.97, 'x', true));
    targets.push(target(`policy ${r.rules} rules: TCP RR p50 vs no policy`, r.ebpf.rrRatio, 1.05));
  }
}

/** `twill sync --watch` against a test API server holding the objects; one remote pod's labels change. */
async function watchLabelChange(net: PolicyNet, objects: { items: object[] }): Promise<{ fullMs: number; labelMs: number }> {
  const { FakeKube } = await import('../testkit/fake-kube.js');
  const dir = mkdtempSync(`${net.ws.dir}/kube-`);
  const kube = new FakeKube('bench-token');
  await kube.start(dir);
  type O = { kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string> } };
  for (const o of objects.items as O[]) kube.put(o.kind, o);
  writeFileSync(`${dir}/kubeconfig`, ['apiVersion: v1', 'kind: Config', 'current-context: t', 'clusters:', '- name: c', '  cluster:', `    server: https://127.0.0.1:${kube.port}`, `    certificate-authority-data: ${readFileSync(`${dir}/ca.crt`).toString('base64')}`,
    'users:', '- name: u', '  user:', '    token: bench-token', 'contexts:', '- name: t', '  context:', '    cluster: c', '    user: u', ''].join('\n'));
  const p = spawn(net.s.bin, ['sync', '--kubeconfig', `${dir}/kubeconfig`, '--watch', '3600', '--conf-dir', net.confDir], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  p.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  const line = async (re: RegExp): Promise<Record<string, unknown>> => {
    const t0 = Date.now();
    for (;;) {
      const hit = log.split('\n').find((l) => re.test(l));
      if (hit) return JSON.parse(hit) as Record<string, unknown>;
      if (Date.now() - t0 > 60_000) throw new Error(`sync --watch: no ${re}: ${log}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  try {
    const synced = await line(/policy synced/);
    const pod = (objects.items as O[]).find((o) => o.kind === 'Pod' && o.metadata.name === 'p-7')!;
    kube.put('Pod', { ...pod, metadata: { ...pod.metadata, labels: { app: 'moved-away', id: '7' } } });
    const updated = await line(/"incremental":true/);
    return { fullMs: Number(synced.ms), labelMs: Number(updated.ms) };
  } finally {
    p.kill();
    kube.stop();
  }
}

async function scale(ws: Workspace, say: (s: string) => void, out: Record<string, unknown>, targets: Target[]): Promise<void> {
  const rows: string[][] = [];
  const results: Record<string, unknown>[] = [];
  let memory: { bytes: number; cpus: number; pods: number } | undefined;
  // The same policies (this node's rules) in both: only the cluster grows.
  for (const [pods, policies, localPods] of [[1_000, 1_000, 110], [CLUSTER, 1_000, 110]] as const) {
    const net = new PolicyNet(ws, pods === CLUSTER ? 246 : 247);
    try {
      for (let i = 0; i < localPods; i++) net.add('bench', `local-${i}`);
      const local = net.local((p) => ({ app: `a${Number(p.name.split('-')[1]) % 500}`, group: `g${Number(p.name.split('-')[1]) % 8}` }));
      const full = net.sync(spreadPolicies(pods, local, policies, NODE));
      const again = net.sync(spreadPolicies(pods, local, policies, NODE));
      // One remote pod's labels change: p-7 moves from app a7 to a new app.
      const changed = spreadPolicies(pods, local, policies, NODE) as { items: { kind: string; metadata: { name: string; labels?: Record<string, string> } }[] };
      changed.items.find((i) => i.kind === 'Pod' && i.metadata.name === 'p-7')!.metadata.labels = { app: 'moved', id: '7' };
      const label = net.sync(changed);
      const watched = await watchLabelChange(net, spreadPolicies(pods, local, policies, NODE) as { items: object[] });
      const entries = Number(/(\d+) policy entries/.exec(full.stdout)?.[1] ?? 0);
      rows.push([pods.toLocaleString('en'), String(policies), String(localPods), String(entries), fmt(full.ms, 0), fmt(full.rssMb, 0), fmt(again.ms, 0), fmt(label.ms, 0), fmt(watched.fullMs, 0), fmt(watched.labelMs, 1)]);
      results.push({ pods, policies, localPods, entries, fullMs: full.ms, rssMb: full.rssMb, unchangedMs: again.ms, labelChangeMs: label.ms, watch: watched });
      if (pods === CLUSTER) {
        const st = JSON.parse(run([net.s.bin, 'status', '--conf-dir', net.confDir, '-o', 'json'])) as { policy?: { mapMemory?: number } }[];
        memory = { bytes: st[0]?.policy?.mapMemory ?? 0, cpus: cpus().length, pods: localPods };
      }
    } finally {
      net.teardown();
    }
  }
  say('\n## twill sync of a cluster from a file (wall time of the whole `twill sync` process, peak RSS)\n');
  say(table(['pods', 'policies', 'local pods', 'policy entries', 'full sync ms', 'peak RSS MB', 'unchanged re-sync ms', 'one label change ms', 'watch: first sync ms', 'watch: one label change ms'], rows));
  say('\nThe file columns are whole `twill sync` runs (start-up, reading and compiling everything). The watch columns are `twill sync --watch` against an API server (a test double): the time from receiving a pod\'s label change to its entries in the kernel, as its log reports it.');
  if (memory) {
    say(`\nLocked kernel memory of the network's maps (fdinfo memlock, as bpftool reports it) with ${memory.pods} local pods, ${CLUSTER.toLocaleString('en')} pods and 1,000 policies: ${fmt(memory.bytes / 2 ** 20, 1)} MiB on ${memory.cpus} CPUs. The per-CPU counters grow with the CPU count (80 bytes per endpoint per CPU); the tries and the endpoint map do not.`);
    targets.push(target('kernel memory of a node\'s maps (110 pods, 10,000-pod cluster, 1,000 policies)', memory.bytes / 2 ** 20, 64, ' MiB'));
  }
  out.policyScale = { results, memory };
  const small = results[0] as { watch: { labelMs: number } }, big = results[1] as { watch: { labelMs: number } };
  targets.push(target('one label change under --watch: work at 10,000 pods vs 1,000 (must not grow with the cluster)', big.watch.labelMs / small.watch.labelMs, 1.1));
}

function addCost(ws: Workspace, say: (s: string) => void, out: Record<string, unknown>, targets: Target[]): void {
  const N = Number(process.env.BENCH_N ?? 100);
  const net = new PolicyNet(ws, 248);
  const plain = ws.subject('twill-ebpf', 249);
  const t = { policy: [] as number[], plain: [] as number[] };
  const anchors: string[] = [];
  try {
    // Resident pods keep each network's program loaded, as on a node with pods.
    net.add('bench', 'anchor');
    const ans = newNetns();
    anchors.push(ans);
    timedRun(plain.bin, envFor('ADD', 'anchor-plain', ans, ws.binDir), JSON.stringify(plain.conf));
    const future = Array.from({ length: N }, (_, i) => ({ ns: 'bench', name: `add-${i}`, ip: '', labels: { app: `a${i % 500}` } }));
    net.sync(spreadPolicies(CLUSTER, [...net.local(() => ({ app: 'anchor' })), ...future], 1000, NODE));
    for (let i = 0; i < N; i++) {
      const p = { ns: 'bench', name: `add-${i}`, netns: newNetns(), id: `addp-${i}` };
      const r = timedRun(net.s.bin, net.env('ADD', p), JSON.stringify(net.s.conf));
      if (r.code !== 0) throw new Error(`policy ADD: ${r.stdout}`);
      t.policy.push(r.ms);
      timedRun(net.s.bin, net.env('DEL', p), JSON.stringify(net.s.conf));
      delNetns(p.netns);
      const ns = newNetns();
      const q = timedRun(plain.bin, envFor('ADD', `addq-${i}`, ns, ws.binDir), JSON.stringify(plain.conf));
      if (q.code !== 0) throw new Error(`plain ADD: ${q.stdout}`);
      t.plain.push(q.ms);
      timedRun(plain.bin, envFor('DEL', `addq-${i}`, ns, ws.binDir), JSON.stringify(plain.conf));
      delNetns(ns);
    }
  } finally {
    net.teardown();
    for (const ns of anchors) {
      timedRun(plain.bin, envFor('DEL', 'anchor-plain', ns, ws.binDir), JSON.stringify(plain.conf));
      delNetns(ns);
    }
  }
  say(`\n## ADD with NetworkPolicy enforcement (${N} interleaved ADD+DEL pairs, pods known to the last sync of a ${CLUSTER.toLocaleString('en')}-pod cluster with 1,000 policies)\n`);
  say(table(['network', 'ADD p50 ms', 'vs without'], [['twill ebpf', fmt(median(t.plain), 1), '1.00x'], ['twill ebpf + NetworkPolicy', fmt(median(t.policy), 1), ratio(median(t.policy), median(t.plain))]]));
  out.policyAdd = { plainP50: median(t.plain), policyP50: median(t.policy) };
  targets.push(target('ADD p50 with policy enforcement vs without', median(t.policy) / median(t.plain), 1.05));
}
