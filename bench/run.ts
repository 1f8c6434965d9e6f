// make bench: twill against the reference plugins, interleaved (A B A B …) in one run,
// reported as medians and ratios; markdown on stdout, JSON in bench-results/.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { runtimeOf } from '../testkit/twill.js';
import { buildHello } from './hello.js';
import { delNetns, envFor, newNetns, REF_DIR, timedRun, Workspace, type Subject } from './plugins.js';
import { fmt, median, percentile, ratio, table, target, type Target } from './stats.js';

const TWILL = process.env.TWILL_BIN ?? `${process.cwd()}/dist/twill`;
const NODE_BIN = process.env.TWILL_NODE ?? process.execPath;
const N = Number(process.env.BENCH_N ?? 100);
const SCALE = Number(process.env.BENCH_SCALE ?? 500);
const only = (process.env.BENCH_ONLY ?? 'startup,lifecycle,concurrency,scaling,datapath,crossnode,policy,policy-scale,observe,services').split(',');

// The other build of the same program, measured beside it (the Bun and the Node SEA builds).
const ALT = process.env.TWILL_ALT_BIN ?? [`${TWILL}-node`, `${TWILL}-bun`].find((p) => existsSync(p));
const RUNTIME = runtimeOf(TWILL);
const ALT_RUNTIME = ALT ? runtimeOf(ALT) : '';
const ws = new Workspace(TWILL, ALT, { twill: 'twill', alt: `twill [${ALT_RUNTIME}]` });
const out: Record<string, unknown> = { date: new Date().toISOString(), n: N };
const report: string[] = [];
const targets: Target[] = [];
const say = (s: string): void => {
  report.push(s);
  process.stdout.write(`${s}\n`);
};

/**
 * Drops an executable's pages from the page cache, then runs it once, so that every binary is
 * measured as read from disk (as on a node after a boot). An executable the build has just
 * written sits in the page cache as large folios, and each fault then maps a whole folio: the
 * same ADD peaks ~5 MB higher against a just-written twill than against the same file read
 * back from disk (and ptp, installed long ago, is always the latter).
 */
const evicted = new Set<string>();
function fromDisk(bin: string): void {
  if (evicted.has(bin)) return;
  evicted.add(bin);
  spawnSync('sync', [bin]); // dirty pages (a file just written) cannot be dropped
  spawnSync('dd', [`if=${bin}`, 'iflag=nocache', 'count=0', 'status=none']);
  spawnSync(bin, [], { input: '', env: { CNI_COMMAND: 'VERSION' } });
}

function peak(bin: string, env: Record<string, string>, stdin: string): { rssMb: number; cpuMs: number } {
  fromDisk(bin);
  const r = spawnSync('/usr/bin/time', ['-f', '%M %U %S', bin], { input: stdin, env: { PATH: process.env.PATH ?? '', ...env }, encoding: 'utf8' });
  const [kb, u, s] = (r.stderr.trim().split('\n').pop() ?? '0 0 0').split(' ').map(Number);
  return { rssMb: (kb ?? 0) / 1024, cpuMs: ((u ?? 0) + (s ?? 0)) * 1000 };
}

function startup(): number {
  const hello = buildHello(ws.dir, NODE_BIN);
  const subjects = [
    { name: 'bare SEA hello-world', bin: hello },
    { name: `twill VERSION [${RUNTIME}]`, bin: TWILL },
    { name: 'ptp VERSION (Go)', bin: `${REF_DIR}/ptp` },
    ...(ALT ? [{ name: `twill VERSION [${ALT_RUNTIME}]`, bin: ALT }] : []),
  ];
  // The whole run sees every binary in one page-cache state: read from disk.
  for (const b of [...subjects.map((s) => s.bin), `${REF_DIR}/host-local`, `${REF_DIR}/bridge`]) fromDisk(b);
  const t: number[][] = subjects.map(() => []);
  const stdin = '{"cniVersion":"1.0.0"}';
  for (let i = 0; i < N; i++) subjects.forEach((s, k) => t[k]!.push(timedRun(s.bin, { CNI_COMMAND: 'VERSION' }, stdin).ms));
  const rss = subjects.map((s) => peak(s.bin, { CNI_COMMAND: 'VERSION' }, stdin).rssMb);
  say('\n## Start-up floor\n');
  say(table(['binary', 'p50 ms', 'p90 ms', 'vs hello-world', 'peak RSS MB', 'size MB'], subjects.map((s, k) => [
    s.name, fmt(median(t[k]!)), fmt(percentile(t[k]!, 90)), ratio(median(t[k]!), median(t[0]!)), fmt(rss[k]!), fmt(statSync(s.bin).size / 2 ** 20),
  ])));
  out.startup = subjects.map((s, k) => ({ name: s.name, p50: median(t[k]!), p90: percentile(t[k]!, 90), rssMb: rss[k] }));
  targets.push(target('VERSION vs bare SEA hello-world', median(t[1]!) / median(t[0]!), 0.5));
  return median(t[1]!);
}

function lifecycle(versionP50: number): void {
  const subjects: Subject[] = [ws.subject('twill', 230), ws.subject('ptp', 231), ws.subject('bridge', 232), ws.subject('twill-ebpf', 229), ws.subject('twill-ebpf-tcx', 228),
    ...(ALT ? [ws.subject('twill-alt', 226), ws.subject('twill-ebpf-alt', 225)] : [])];
  const lat = subjects.map(() => ({ ADD: [] as number[], CHECK: [] as number[], DEL: [] as number[] }));
  // A node hosts pods: one resident pod per twill network keeps its per-network state (the
  // loaded program, the guard table) in place, as on any node with a pod. The first pod of a
  // network pays that load once (reported below).
  const anchors = subjects.map((s, k) => {
    if ((s.conf as { type?: string }).type !== 'twill') return undefined;
    const ns = newNetns();
    const first = timedRun(s.bin, envFor('ADD', `anchor-${k}`, ns, ws.binDir), JSON.stringify(s.conf));
    if (first.code !== 0) throw new Error(`${s.name} anchor ADD failed: ${first.stdout}`);
    return { ns, id: `anchor-${k}`, ms: first.ms };
  });
  for (let i = 0; i < N; i++) {
    subjects.forEach((s, k) => {
      const ns = newNetns();
      const id = `lc-${k}-${i}`;
      const stdin = JSON.stringify(s.conf);
      const add = timedRun(s.bin, envFor('ADD', id, ns, ws.binDir), stdin);
      if (add.code !== 0) throw new Error(`${s.name} ADD failed: ${add.stdout}`);
      const withPrev = JSON.stringify({ ...s.conf, prevResult: JSON.parse(add.stdout) });
      const check = timedRun(s.bin, envFor('CHECK', id, ns, ws.binDir), withPrev);
      if (check.code !== 0) throw new Error(`${s.name} CHECK failed: ${check.stdout}`);
      const del = timedRun(s.bin, envFor('DEL', id, ns, ws.binDir), withPrev);
      lat[k]!.ADD.push(add.ms);
      lat[k]!.CHECK.push(check.ms);
      lat[k]!.DEL.push(del.ms);
      delNetns(ns);
    });
  }
  subjects.forEach((s, k) => {
    const a = anchors[k];
    if (!a) return;
    timedRun(s.bin, envFor('DEL', a.id, a.ns, ws.binDir), JSON.stringify(s.conf));
    delNetns(a.ns);
  });
  say(`\n## ADD / CHECK / DEL latency, sequential (N = ${N}, interleaved, one resident pod per twill network)\n`);
  say(`First ADD of a network on the node (loads its program, installs its guard): ${subjects.map((s, k) => (anchors[k] ? `${s.name} ${fmt(anchors[k]!.ms)} ms` : '')).filter(Boolean).join(', ')}\n`);
  const rows: (string | number)[][] = [];
  subjects.forEach((s, k) => {
    for (const verb of ['ADD', 'CHECK', 'DEL'] as const) {
      const xs = lat[k]![verb];
      rows.push([s.name, verb, fmt(median(xs)), fmt(percentile(xs, 90)), fmt(percentile(xs, 99)), ratio(median(xs), median(lat[1]![verb]))]);
    }
  });
  say(table(['plugin', 'verb', 'p50 ms', 'p90 ms', 'p99 ms', 'vs ptp'], rows));
  out.lifecycle = subjects.map((s, k) => ({ name: s.name, ...Object.fromEntries(Object.entries(lat[k]!).map(([v, xs]) => [v, { p50: median(xs), p90: percentile(xs, 90), p99: percentile(xs, 99) }])) }));
  targets.push(target('twill ADD p50 vs twill VERSION p50', median(lat[0]!.ADD) / versionP50, 1.25));
  targets.push(target('twill ebpf ADD p50 vs twill VERSION p50', median(lat[3]!.ADD) / versionP50, 1.25));
  targets.push(target('twill CHECK p50 vs twill VERSION p50', median(lat[0]!.CHECK) / versionP50, 1.15));
  targets.push(target('twill DEL p50 vs ptp DEL p50', median(lat[0]!.DEL) / median(lat[1]!.DEL), 1.0));
  targets.push(target('twill ADD p50 vs ptp + host-local ADD p50', median(lat[0]!.ADD) / median(lat[1]!.ADD), 3.0));
  targets.push(target('twill ebpf ADD p50 vs ptp + host-local ADD p50', median(lat[3]!.ADD) / median(lat[1]!.ADD), 3.0));
  targets.push(target('twill ebpf DEL p50 vs ptp DEL p50', median(lat[3]!.DEL) / median(lat[1]!.DEL), 1.0));
  // Peak RSS and CPU of one ADD (and of the other build's), the median of 5 each.
  const rssOf = (bin: string, conf: Record<string, unknown>): { rssMb: number; cpuMs: number } => {
    const runs = Array.from({ length: 5 }, (_, i) => {
      const ns = newNetns();
      const m = peak(bin, envFor('ADD', `rss-${i}`, ns, ws.binDir), JSON.stringify(conf));
      spawnSync(bin, [], { input: JSON.stringify(conf), env: envFor('DEL', `rss-${i}`, ns, ws.binDir) });
      delNetns(ns);
      return m;
    });
    return { rssMb: median(runs.map((r) => r.rssMb)), cpuMs: median(runs.map((r) => r.cpuMs)) };
  };
  const m = rssOf(TWILL, subjects[0]!.conf);
  const ptpM = rssOf(`${REF_DIR}/ptp`, subjects[1]!.conf);
  const altM = ALT ? rssOf(ALT, subjects[5]!.conf) : undefined;
  say(`\nOne ADD, peak RSS and CPU (median of 5): twill [${RUNTIME}] ${fmt(m.rssMb)} MB, ${fmt(m.cpuMs)} ms${altM ? `; twill [${ALT_RUNTIME}] ${fmt(altM.rssMb)} MB, ${fmt(altM.cpuMs)} ms` : ''}; ptp ${fmt(ptpM.rssMb)} MB, ${fmt(ptpM.cpuMs)} ms. Executable size: twill ${fmt(statSync(TWILL).size / 2 ** 20)} MB${ALT ? `, [${ALT_RUNTIME}] ${fmt(statSync(ALT).size / 2 ** 20)} MB` : ''}, ptp ${fmt(statSync(`${REF_DIR}/ptp`).size / 2 ** 20)} MB, host-local ${fmt(statSync(`${REF_DIR}/host-local`).size / 2 ** 20)} MB.`);
  targets.push(target('twill ADD peak RSS', m.rssMb, 32, ' MB'));
  out.addCpuMs = m.cpuMs;
  out.addRssMb = m.rssMb;
  out.altAdd = altM;
  out.ptpAdd = ptpM;
}

async function concurrency(): Promise<void> {
  const { spawn } = await import('node:child_process');
  const callers = 8;
  const pods = Math.max(callers * 5, Math.min(N, 200));
  const subjects: Subject[] = [ws.subject('twill', 233), ws.subject('ptp', 234), ws.subject('bridge', 235), ...(ALT ? [ws.subject('twill-alt', 227)] : [])];
  const run = (bin: string, env: Record<string, string>, stdin: string): Promise<number> =>
    new Promise((res) => {
      const p = spawn(bin, [], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['pipe', 'ignore', 'ignore'] });
      p.on('close', (c) => res(c ?? -1));
      p.stdin.end(stdin);
    });
  const rates: number[] = [];
  for (const s of subjects) {
    const nss = Array.from({ length: pods }, () => newNetns());
    const stdin = JSON.stringify(s.conf);
    let next = 0;
    let failures = 0;
    const t0 = process.hrtime.bigint();
    await Promise.all(Array.from({ length: callers }, async () => {
      while (next < pods) {
        const k = next++;
        if ((await run(s.bin, envFor('ADD', `cc-${k}`, nss[k]!, ws.binDir), stdin)) !== 0) failures++;
      }
    }));
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    rates.push(pods / secs);
    await Promise.all(nss.map((ns, k) => run(s.bin, envFor('DEL', `cc-${k}`, ns, ws.binDir), stdin)));
    nss.forEach(delNetns);
    if (failures > 0) say(`\n${s.name}: ${failures} ADDs failed under concurrency`);
  }
  say(`\n## Throughput, ${callers} concurrent callers (${pods} ADDs each)\n`);
  say(table(['plugin', 'ADDs/s', 'vs ptp'], subjects.map((s, k) => [s.name, fmt(rates[k]!), ratio(rates[k]!, rates[1]!)])));
  out.concurrency = subjects.map((s, k) => ({ name: s.name, addsPerSec: rates[k] }));
  targets.push(target('twill 8-caller ADDs/s vs ptp', rates[0]! / rates[1]!, 0.5, 'x', true));
  const cpu = Number(out.addCpuMs ?? 0);
  if (cpu > 0) {
    const ideal = (2 * 1000) / cpu;
    say(`\nIdeal on 2 cores from twill's ADD CPU time (${fmt(cpu)} ms): ${fmt(ideal)} ADDs/s`);
    targets.push(target('twill 8-caller throughput shortfall vs 0.8 x ideal', (0.8 * ideal) / rates[0]!, 1.0));
  }
}

function scaling(): void {
  const subjects: Subject[] = [ws.subject('twill', 236), ws.subject('ptp', 237)];
  const add = subjects.map(() => [] as number[]);
  const del = subjects.map(() => [] as number[]);
  const nss: string[][] = subjects.map(() => []);
  for (let i = 0; i < SCALE; i++) {
    subjects.forEach((s, k) => {
      const ns = newNetns();
      nss[k]!.push(ns);
      const r = timedRun(s.bin, envFor('ADD', `sc-${i}`, ns, ws.binDir), JSON.stringify(s.conf));
      if (r.code !== 0) throw new Error(`${s.name} ADD ${i} failed: ${r.stdout}`);
      add[k]!.push(r.ms);
    });
  }
  for (let i = SCALE - 1; i >= 0; i--) {
    subjects.forEach((s, k) => {
      del[k]!.unshift(timedRun(s.bin, envFor('DEL', `sc-${i}`, nss[k]![i]!, ws.binDir), JSON.stringify(s.conf)).ms);
      delNetns(nss[k]![i]!);
    });
  }
  const first = (xs: number[]): number => median(xs.slice(0, 20));
  const last = (xs: number[]): number => median(xs.slice(-20));
  say(`\n## Scaling: ${SCALE} pods on one node (p50 of the first and last 20)\n`);
  say(table(['plugin', 'ADD 1-20 ms', `ADD ${SCALE - 19}-${SCALE} ms`, 'growth', 'DEL 1-20 ms', `DEL ${SCALE - 19}-${SCALE} ms`, 'growth'], subjects.map((s, k) => [
    s.name, fmt(first(add[k]!)), fmt(last(add[k]!)), ratio(last(add[k]!), first(add[k]!)), fmt(first(del[k]!)), fmt(last(del[k]!)), ratio(last(del[k]!), first(del[k]!)),
  ])));
  out.scaling = subjects.map((s, k) => ({ name: s.name, addFirst: first(add[k]!), addLast: last(add[k]!), delFirst: first(del[k]!), delLast: last(del[k]!) }));
  targets.push(target(`twill ADD growth, pods 1-20 → ${SCALE - 19}-${SCALE}`, last(add[0]!) / first(add[0]!), 1.1));
}

async function main(): Promise<void> {
  say(`# twill benchmark (${new Date().toISOString()}, N = ${N})`);
  try {
    const versionP50 = only.includes('startup') ? startup() : NaN;
    if (only.includes('lifecycle')) lifecycle(versionP50);
    if (only.includes('concurrency')) await concurrency();
    if (only.includes('scaling')) scaling();
    if (only.includes('crossnode')) {
      const { crossnode } = await import('./crossnode.js');
      crossnode(say, out, targets);
    }
    if (only.includes('datapath')) {
      const { datapath } = await import('./datapath.js');
      datapath(ws, say, out, targets);
    }
    if (only.includes('observe')) {
      const { observeBench } = await import('./observe.js');
      observeBench(ws, say, out, targets);
    }
    if (only.includes('policy')) {
      const { policyBench } = await import('./policy.js');
      await policyBench(ws, say, out, targets);
    }
    if (only.includes('policy-scale')) {
      const { policyScaleBench } = await import('./policy-scale.js');
      await policyScaleBench(ws, say, out, targets);
    }
    if (only.includes('services')) {
      const { servicesBench } = await import('./services.js');
      await servicesBench(ws, say, out, targets);
    }
  } finally {
    ws.cleanup();
  }
  say('\n## Targets\n');
  for (const t of targets) say(`- ${t.text}`);
  out.targets = targets;
  mkdirSync('bench-results', { recursive: true });
  const file = `bench-results/bench-${Date.now()}.json`;
  writeFileSync(file, JSON.stringify(out, null, 2));
  writeFileSync('bench-results/latest.md', `${report.join('\n')}\n`);
  process.stdout.write(`\nwrote ${file} and bench-results/latest.md\n`);
}

await main();
