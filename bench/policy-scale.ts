// NetworkPolicy at a real cluster's scale: a cluster file of 20,000 and 50,000 pods in 1,000
// namespaces with the label shapes their controllers give them (Deployments, StatefulSets,
// Jobs), ~1,000 policies of the kinds clusters run (a default-deny per namespace, "from all
// namespaces" on a port, a namespace by label, TCP+UDP 1024-65535 from a label, egress DNS,
// ipBlock with except), 110 pods on the bench node selected by the expensive ones; `twill
// sync --from-file` with the default map sizes (wall time, peak RSS, entries used and
// available per map), then one remote pod's change under `sync --watch`. A sync that fails,
// is refused or outgrows the memory cap is reported as such, never crashes the bench.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { PolicyNet } from './policy.js';
import { fmt, table, target, type Target } from './stats.js';
import type { Workspace } from './plugins.js';

const NODE = 'bench-node';
const NAMESPACES = 1000;
const LOCAL_NAMESPACES = 10;
const LOCAL_PODS = 110;
const SIZES = (process.env.BENCH_POLICY_SCALE_SIZES ?? '20000,50000').split(',').map(Number);
/** A sync past this resident size is stopped and reported (the machine is shared). */
const RSS_CAP_MB = Number(process.env.BENCH_POLICY_SCALE_RSS_MB ?? 4096);
const TIMEOUT_MS = Number(process.env.BENCH_POLICY_SCALE_TIMEOUT_S ?? 180) * 1000;
/** Defaults of conf policy.policyEntries and policy.ipcacheEntries (lib/config/schema.ts). */
const DEFAULT_SIZES: Record<string, number> = { policy: 262144, ipcache: 524288 };

type Labels = Record<string, string>;
interface Obj { kind: string; metadata: { name: string; namespace?: string; labels?: Labels }; [k: string]: unknown }

const hex = (n: number, len: number): string => ((n * 2654435761) >>> 0).toString(16).padStart(8, '0').slice(0, len);
const nsName = (i: number): string => `ns-${String(i).padStart(4, '0')}`;
const remoteIp = (i: number): string => `10.${128 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;

/** The labels a controller gives the k-th pod of a workload (kind by index: 60% Deployments, 25% StatefulSets, 15% Jobs). */
function workloadPod(ns: number, w: number, k: number): { labels: Labels; ports: object[]; name: string } {
  const kind = w % 20 < 12 ? 'deploy' : w % 20 < 17 ? 'sts' : 'job';
  if (kind === 'deploy') {
    const app = `web-${w}`;
    return { name: `${app}-${hex(ns * 1000 + w, 10)}-${hex(k + 7, 5)}`, labels: { app, 'pod-template-hash': hex(ns * 1000 + w, 10), tier: 'backend' }, ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }] };
  }
  if (kind === 'sts') {
    const app = `db-${w}`;
    return {
      name: `${app}-${k}`,
      labels: { app, 'controller-revision-hash': `${app}-${hex(ns * 1000 + w, 10)}`, 'statefulset.kubernetes.io/pod-name': `${app}-${k}`, 'apps.kubernetes.io/pod-index': String(k) },
      ports: [{ name: 'db', containerPort: 5432, protocol: 'TCP' }],
    };
  }
  const job = `batch-${w}-${hex(ns * 7919 + w, 8)}`;
  const uid = `${hex(ns, 8)}-${hex(w, 4)}-4${hex(k, 3)}-8${hex(ns + w, 3)}-${hex(ns * w + 1, 8)}${hex(w + 3, 4)}`;
  return { name: `${job}-${hex(k + 11, 5)}`, labels: { 'batch.kubernetes.io/controller-uid': uid, 'batch.kubernetes.io/job-name': job, 'controller-uid': uid, 'job-name': job }, ports: [] };
}

const pod = (ns: string, name: string, labels: Labels, ports: object[], node: string, ip?: string): Obj => ({
  kind: 'Pod', metadata: { namespace: ns, name, labels },
  spec: { nodeName: node, containers: [{ name: 'main', ports }] },
  status: { phase: 'Running', ...(ip ? { podIP: ip, podIPs: [{ ip }] } : {}) },
});

const policy = (ns: string, name: string, spec: object): Obj => ({ kind: 'NetworkPolicy', metadata: { namespace: ns, name }, spec });

/**
 * The cluster: `pods` pods in total (the local ones included) over 1,000 namespaces, 20
 * workloads each, plus kube-system's DNS; local pods (addresses from their ADD) in the
 * first 10 namespaces, all selected by that namespace's expensive policies.
 */
export function realisticCluster(pods: number, local: { ns: string; name: string; ip: string }[]): { items: Obj[]; policies: number } {
  const items: Obj[] = [];
  const env = ['prod', 'staging', 'dev'];
  for (let i = 0; i < NAMESPACES; i++) {
    const name = nsName(i);
    items.push({ kind: 'Namespace', metadata: { name, labels: { 'kubernetes.io/metadata.name': name, team: `team-${i % 40}`, env: env[i % 3]!, ...(i % 10 === 0 ? { monitoring: 'enabled' } : {}) } } });
  }
  items.push({ kind: 'Namespace', metadata: { name: 'kube-system', labels: { 'kubernetes.io/metadata.name': 'kube-system' } } });
  for (let k = 0; k < 2; k++) items.push(pod('kube-system', `coredns-7db6d8ff4d-${hex(k, 5)}`, { 'k8s-app': 'kube-dns', 'pod-template-hash': '7db6d8ff4d' }, [{ name: 'dns', containerPort: 53, protocol: 'UDP' }, { name: 'dns-tcp', containerPort: 53, protocol: 'TCP' }], 'node-0', remoteIp(0)));
  // Local pods: workloads of the local namespaces, in turn.
  local.forEach((l, j) => {
    const w = workloadPod(Number(l.ns.slice(3)), j % 20, Math.floor(j / 20));
    items.push(pod(l.ns, l.name, w.labels, w.ports, NODE, l.ip || undefined));
  });
  const remote = pods - local.length - 2;
  for (let i = 0; i < remote; i++) {
    const ns = i % NAMESPACES;
    const w = Math.floor(i / NAMESPACES) % 20;
    const k = Math.floor(i / (NAMESPACES * 20));
    const p = workloadPod(ns, w, k);
    // Scanners: a label many pods in every namespace carry (the high-ports rule admits them).
    const labels = i % 50 === 0 ? { ...p.labels, role: 'scanner' } : p.labels;
    items.push(pod(nsName(ns), `${p.name}-r${i}`, labels, p.ports, `node-${1 + (i % 199)}`, remoteIp(i + 16)));
  }
  let policies = 0;
  const add = (o: Obj): void => {
    items.push(o);
    policies++;
  };
  const dns = { to: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } }, podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } }], ports: [{ protocol: 'UDP', port: 53 }, { protocol: 'TCP', port: 53 }] };
  for (let i = 0; i < NAMESPACES; i++) add(policy(nsName(i), 'default-deny', { podSelector: {}, policyTypes: ['Ingress', 'Egress'] }));
  for (let i = 0; i < LOCAL_NAMESPACES; i++) {
    const ns = nsName(i);
    add(policy(ns, 'allow-dns', { podSelector: {}, policyTypes: ['Egress'], egress: [dns] }));
    add(policy(ns, 'allow-from-all-namespaces', { podSelector: {}, ingress: [{ from: [{ namespaceSelector: {} }], ports: [{ protocol: 'TCP', port: 8080 }] }] }));
    add(policy(ns, 'allow-from-prod', { podSelector: {}, ingress: [{ from: [{ namespaceSelector: { matchLabels: { env: 'prod' } } }], ports: [{ protocol: 'TCP', port: 5432 }] }] }));
    add(policy(ns, 'allow-scanners-high-ports', { podSelector: {}, ingress: [{ from: [{ namespaceSelector: {}, podSelector: { matchLabels: { role: 'scanner' } } }], ports: [{ protocol: 'TCP', port: 1024, endPort: 65535 }, { protocol: 'UDP', port: 1024, endPort: 65535 }] }] }));
    add(policy(ns, 'allow-internet-egress', { podSelector: {}, policyTypes: ['Egress'], egress: [{ to: [{ ipBlock: { cidr: '0.0.0.0/0', except: ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16'] } }], ports: [{ protocol: 'TCP', port: 443 }] }] }));
  }
  return { items, policies };
}

interface Run {
  ok: boolean;
  /** ok, or why not: the sync's error, "killed at N MB", "timed out". */
  outcome: string;
  ms: number;
  rssMb: number;
  stdout: string;
  stderr: string;
}

function vmRss(pid: number): number {
  try {
    return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
  } catch {
    return 0;
  }
}

/** The process /usr/bin/time runs (its only child). */
function childOf(pid: number): number | undefined {
  try {
    const c = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/)[0];
    return c ? Number(c) : undefined;
  } catch {
    return undefined;
  }
}

/** A twill command under /usr/bin/time (peak RSS), stopped past the RSS cap or the timeout; its stderr readable as it runs. */
function measured(bin: string, args: string[]): { done: Promise<Run>; stderr(): string; stop(why: string): void } {
  const t0 = process.hrtime.bigint();
  const p = spawn('/usr/bin/time', ['-f', 'PEAK_RSS_KB=%M', bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '', stderr = '', why = '';
  p.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  p.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const stop = (reason: string): void => {
    why ||= reason;
    const c = childOf(p.pid!);
    if (c) process.kill(c, 'SIGKILL');
  };
  const watch = setInterval(() => {
    const c = childOf(p.pid!);
    if (c && vmRss(c) > RSS_CAP_MB) stop(`killed past ${RSS_CAP_MB} MB resident`);
    if (Number(process.hrtime.bigint() - t0) / 1e6 > TIMEOUT_MS) stop(`killed after ${TIMEOUT_MS / 1000} s`);
  }, 50);
  const done = new Promise<Run>((res) => p.on('close', (code) => {
    clearInterval(watch);
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    const kb = Number(/PEAK_RSS_KB=(\d+)/.exec(stderr)?.[1] ?? 0);
    res({ ok: code === 0 && !why, outcome: why || (code === 0 ? 'ok' : `exit ${code}`), ms, rssMb: kb / 1024, stdout, stderr: stderr.replace(/PEAK_RSS_KB=\d+\n?/, '') });
  }));
  return { done, stderr: () => stderr, stop };
}

interface Entries { used?: number; available: number; needed?: number }

/** Entries per map: what the sync's record says (budget.json when the build writes one), else its report. */
function entries(net: PolicyNet, stdout: string): Record<string, Entries> {
  const st = JSON.parse(spawnSync(net.s.bin, ['status', '--conf-dir', net.confDir, '-o', 'json'], { encoding: 'utf8' }).stdout || '[]') as { policy?: { entries?: Record<string, Entries>; refused?: { map: string; needed: number }; policyEntries?: number; ipcacheEntries?: number } }[];
  const p = st[0]?.policy;
  if (p?.entries) return p.entries;
  // A build without the record: the sync's own report against the configured sizes.
  let applied: { policyEntries?: number; ipcacheEntries?: number } | undefined;
  try {
    applied = (JSON.parse(stdout) as { networks: { policy?: { applied?: { policyEntries: number; ipcacheEntries: number } } }[] }).networks[0]?.policy?.applied;
  } catch {
    // not JSON (killed)
  }
  return {
    policy: { ...(applied?.policyEntries !== undefined ? { used: applied.policyEntries } : {}), available: DEFAULT_SIZES.policy! },
    ipcache: { ...(applied?.ipcacheEntries !== undefined ? { used: applied.ipcacheEntries } : {}), available: DEFAULT_SIZES.ipcache! },
  };
}

/** Why the sync did not apply, in one line. */
function failure(r: Run): string {
  if (r.ok) return 'applied';
  let e: string | undefined;
  try {
    e = (JSON.parse(r.stdout) as { networks: { error?: string }[] }).networks.find((n) => n.error)?.error;
  } catch {
    // killed before it printed
  }
  if (!e) return r.outcome;
  const m = /the (\w+) map needs (\d+) entries, (\d+) available(?: \(NetworkPolicy (\S+))?/.exec(e);
  return m ? `refused: ${m[1]} map needs ${m[2]}, ${m[3]} available${m[4] ? `; most from ${m[4]}` : ''}` : e.slice(0, 120);
}

/** `twill sync --watch` against a test API server holding the cluster; one remote pod's labels change. */
async function watchRemoteChange(net: PolicyNet, items: Obj[]): Promise<{ fullMs?: number; changeMs?: number; outcome: string }> {
  const { FakeKube } = await import('../testkit/fake-kube.js');
  const dir = mkdtempSync(`${net.ws.dir}/kube-scale-`);
  const kube = new FakeKube('bench-token');
  await kube.start(dir);
  for (const o of items) kube.put(o.kind, o);
  writeFileSync(`${dir}/kubeconfig`, ['apiVersion: v1', 'kind: Config', 'current-context: t', 'clusters:', '- name: c', '  cluster:', `    server: https://127.0.0.1:${kube.port}`, `    certificate-authority-data: ${readFileSync(`${dir}/ca.crt`).toString('base64')}`,
    'users:', '- name: u', '  user:', '    token: bench-token', 'contexts:', '- name: t', '  context:', '    cluster: c', '    user: u', ''].join('\n'));
  const run = measured(net.s.bin, ['sync', '--kubeconfig', `${dir}/kubeconfig`, '--watch', '3600', '--conf-dir', net.confDir]);
  let ended: Run | undefined;
  void run.done.then((r) => (ended = r));
  /** The first log line matching want (parsed), or why none came. */
  const line = async (want: RegExp, fail: RegExp): Promise<Record<string, unknown> | string> => {
    for (;;) {
      const lines = run.stderr().split('\n');
      const hit = lines.find((l) => want.test(l));
      if (hit) return JSON.parse(hit) as Record<string, unknown>;
      const bad = lines.find((l) => fail.test(l));
      if (bad) return String((JSON.parse(bad) as { error?: string }).error ?? bad);
      if (ended) return ended.outcome;
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  try {
    const synced = await line(/"policy synced"/, /"policy sync failed"/);
    if (typeof synced === 'string') return { outcome: synced.slice(0, 300) };
    const victim = items.find((o) => o.kind === 'Pod' && o.metadata.namespace === nsName(LOCAL_NAMESPACES + 5) && 'statefulset.kubernetes.io/pod-name' in (o.metadata.labels ?? {}))!;
    kube.put('Pod', { ...victim, metadata: { ...victim.metadata, labels: { ...victim.metadata.labels, role: 'scanner' } } });
    const changed = await line(/"incremental":true/, /"policy sync failed"/);
    if (typeof changed === 'string') return { fullMs: Number(synced.ms), outcome: changed.slice(0, 300) };
    return { fullMs: Number(synced.ms), changeMs: Number(changed.ms), outcome: 'ok' };
  } finally {
    run.stop('done');
    await run.done;
    kube.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function policyScaleBench(ws: Workspace, say: (s: string) => void, out: Record<string, unknown>, targets: Target[]): Promise<void> {
  const rows: string[][] = [];
  const results: Record<string, unknown>[] = [];
  for (const size of SIZES) {
    // A network of its own per size, its state from nothing.
    rmSync(`${ws.dir}/state/policy`, { recursive: true, force: true });
    const net = new PolicyNet(ws, 239);
    try {
      for (let i = 0; i < LOCAL_PODS; i++) net.add(nsName(i % LOCAL_NAMESPACES), `local-${i}`);
      const cluster = realisticCluster(size, net.pods.map((p) => ({ ns: p.ns, name: p.name, ip: p.ip })));
      const file = `${ws.dir}/cluster-${size}.json`;
      writeFileSync(file, JSON.stringify({ kind: 'List', apiVersion: 'v1', items: cluster.items }));
      const r = await measured(net.s.bin, ['sync', '--conf-dir', net.confDir, '--from-file', file, '-o', 'json']).done;
      const e = entries(net, r.stdout);
      const w = await watchRemoteChange(net, cluster.items);
      const fmtE = (x: Entries | undefined): string => (x ? `${x.used ?? '?'} / ${x.available}${x.needed !== undefined ? ` (needed ${x.needed})` : ''}` : 'n/a');
      rows.push([size.toLocaleString('en'), String(cluster.policies), String(LOCAL_PODS), failure(r), fmt(r.ms / 1000, 2), fmt(r.rssMb, 0), fmtE(e.policy), fmtE(e.ipcache), w.changeMs !== undefined ? fmt(w.changeMs, 1) : `n/a (first sync: ${w.outcome.replace(/ \(NetworkPolicy.*|: policy set refused.*/, '').slice(0, 80)})`]);
      results.push({ pods: size, policies: cluster.policies, localPods: LOCAL_PODS, ok: r.ok, outcome: failure(r), seconds: r.ms / 1000, rssMb: r.rssMb, entries: e, watch: w });
      rmSync(file, { force: true });
    } finally {
      net.teardown();
    }
  }
  say(`\n## NetworkPolicy at a cluster's scale (one \`twill sync --from-file\` per size, default map sizes; ${NAMESPACES.toLocaleString('en')} namespaces, Deployments / StatefulSets / Jobs with their controllers' labels, ${LOCAL_PODS} pods on this node selected by the expensive policies)\n`);
  say(table(['pods', 'policies', 'local pods', 'result', 'wall s', 'peak RSS MB', 'policy entries used / available', 'ipcache entries used / available', 'watch: one remote pod change ms'], rows));
  say(`\nA sync past ${RSS_CAP_MB} MB resident or ${TIMEOUT_MS / 1000} s is stopped and reported as such. "watch" is \`twill sync --watch\` against an API server (a test double): one remote StatefulSet pod gains the label a policy admits, the time its log reports for applying that change alone.`);
  out.policyScaleReal = results;
  const at = (n: number): Record<string, unknown> | undefined => results.find((x) => x.pods === n);
  const r20 = at(20000) as { ok: boolean; seconds: number; rssMb: number; watch: { changeMs?: number } } | undefined;
  const r50 = at(50000) as { ok: boolean; seconds: number; watch: { changeMs?: number } } | undefined;
  if (r20) {
    targets.push(target('sync of a 20,000-pod cluster from a file, default map sizes (applied)', r20.ok ? r20.seconds : Infinity, 5, ' s'));
    targets.push(target('peak RSS of that sync', r20.ok ? r20.rssMb : Infinity, 256, ' MB'));
  }
  if (r50) targets.push(target('sync of a 50,000-pod cluster from a file, default map sizes (applied)', r50.ok ? r50.seconds : Infinity, 15, ' s'));
  if (r20?.watch.changeMs !== undefined && r50?.watch.changeMs !== undefined) {
    targets.push(target('one remote pod change under --watch: 50,000 pods vs 20,000 (must not grow with the cluster)', r50.watch.changeMs / r20.watch.changeMs, 1.5));
  }
}
