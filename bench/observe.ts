// What flow visibility costs on the pod-to-pod path, interleaved in one run: twill ebpf with
// the flow record and its events on, with nobody reading and with `twill observe --follow`
// reading, against the same path with "flowEntries": 0 (no record, no events). Each
// measurement is paired with one without events taken next to it (A B B A); medians of the ratios.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, openSync, writeFileSync, closeSync } from 'node:fs';
import { crr, iperf, pluginPair, rr, type Pair } from './datapath.js';
import { fmt, median, table, target, type Target } from './stats.js';
import type { Workspace } from './plugins.js';
import { readdirSync, readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { closeFd, objGet, objInfo } from '../lib/bpf/sys.js';

const OFF_NET = 'bench-twill-ebpf-noflows';
const ON_NET = 'bench-twill-ebpf';
const ROUNDS = Number(process.env.BENCH_OBSERVE_ROUNDS ?? 5);

interface Sample {
  one: number;
  rr: number;
  crr: number;
}

/** Run time and runs of a network's from-pod program so far (kernel.bpf_stats_enabled). */
function progStats(ws: Workspace, network: string): [bigint, bigint] {
  const dir = `${ws.dir}/bpffs/twill/${network}`;
  const prog = readdirSync(dir).find((f) => f.startsWith('prog_') && !f.endsWith('_to'));
  const fd = prog ? objGet(`${dir}/${prog}`) : undefined;
  if (fd === undefined) return [0n, 0n];
  try {
    const info = objInfo(fd, 256);
    return [info.readBigUInt64LE(192), info.readBigUInt64LE(200)]; // bpf_prog_info.run_time_ns, run_cnt
  } finally {
    closeFd(fd);
  }
}

/** Nanoseconds per program run, accumulated over the measurements of one configuration. */
class RunCost {
  ns = 0n;
  runs = 0n;
  around<T>(ws: Workspace, network: string, fn: () => T): T {
    const [t0, c0] = progStats(ws, network);
    const v = fn();
    const [t1, c1] = progStats(ws, network);
    this.ns += t1 - t0;
    this.runs += c1 - c0;
    return v;
  }
  get perRun(): number {
    return this.runs ? Number(this.ns) / Number(this.runs) : NaN;
  }
}

const cost = { off: new RunCost(), on: new RunCost(), read: new RunCost() };

function measure(p: Pair, rrBin: string): Sample {
  return { one: iperf(p, 1), rr: rr(p, rrBin), crr: crr(p, rrBin) };
}

/** `twill observe -f -o json` into a file, as a log shipper would run it. */
function reader(ws: Workspace, confDir: string): ChildProcess {
  const fd = openSync(`${ws.dir}/observe.jsonl`, 'w');
  const p = spawn(`${ws.binDir}/twill`, ['observe', '--conf-dir', confDir, '-f', '-o', 'json'], { stdio: ['ignore', fd, 'inherit'] });
  closeSync(fd);
  spawnSync('sleep', ['0.5']);
  return p;
}

export function observeBench(ws: Workspace, say: (s: string) => void, out: Record<string, unknown>, targets: Target[]): void {
  const rrBin = `${ws.dir}/rr`;
  spawnSync('cc', ['-O2', '-o', rrBin, 'bench/rr.c']);
  const off = pluginPair(ws, 'twill-ebpf-noflows', 246, 'no flow record');
  const on = pluginPair(ws, 'twill-ebpf', 247, 'flow record');
  const s = ws.subject('twill-ebpf', 247);
  const confDir = `${ws.dir}/net.d-observe`;
  mkdirSync(confDir, { recursive: true });
  const { cniVersion, name, ...entry } = s.conf as { cniVersion: string; name: string };
  writeFileSync(`${confDir}/10-bench.conflist`, JSON.stringify({ cniVersion, name, plugins: [entry] }));
  const r = { off: [] as Sample[], idle: [] as Sample[], offR: [] as Sample[], read: [] as Sample[] };
  // The programs' own time per packet, which the machine's noise does not blur.
  const statsWas = readFileSync('/proc/sys/kernel/bpf_stats_enabled', 'utf8').trim();
  spawnSync('sysctl', ['-qw', 'kernel.bpf_stats_enabled=1']);
  try {
    for (let round = 0; round < ROUNDS; round++) {
      // A B B A: drift within a round cancels in the pairs (A1, B1) and (A2, B2).
      const abba = (a: Sample[], b: Sample[], bCost: RunCost): void => {
        const mOff = (): Sample => cost.off.around(ws, OFF_NET, () => measure(off, rrBin));
        const mOn = (): Sample => bCost.around(ws, ON_NET, () => measure(on, rrBin));
        const a1 = mOff(), b1 = mOn(), b2 = mOn(), a2 = mOff();
        a.push(a1, a2);
        b.push(b1, b2);
      };
      abba(r.off, r.idle, cost.on);
      // The reader runs through both halves: what is compared is the cost of its events.
      const p = reader(ws, confDir);
      try {
        abba(r.offR, r.read, cost.read);
      } finally {
        p.kill('SIGINT');
        spawnSync('sleep', ['0.2']);
      }
    }
  } finally {
    spawnSync('sysctl', ['-qw', `kernel.bpf_stats_enabled=${statsWas}`]);
    off.teardown();
    on.teardown();
  }
  // Throughput and connection rate: higher is better; RR as a rate (1 / p50 latency).
  const paired = (a: Sample[], b: Sample[], f: (x: Sample) => number): number => median(a.map((x, i) => f(x) / f(b[i]!)));
  const rows = [
    { name: 'events on, no reader', one: paired(r.idle, r.off, (x) => x.one), rr: paired(r.off, r.idle, (x) => x.rr), crr: paired(r.idle, r.off, (x) => x.crr), abs: r.idle },
    { name: 'events on, twill observe -f reading', one: paired(r.read, r.offR, (x) => x.one), rr: paired(r.offR, r.read, (x) => x.rr), crr: paired(r.read, r.offR, (x) => x.crr), abs: r.read },
  ];
  const abs = (xs: Sample[], f: (x: Sample) => number): number => median(xs.map(f));
  say(`\n## Flow visibility on the pod-to-pod path (${ROUNDS} rounds of A B B A: each measurement paired with one of "flowEntries": 0 taken next to it; medians of the ${2 * ROUNDS} ratios)\n`);
  say(`Without events (flowEntries 0): ${fmt(abs(r.off, (x) => x.one), 2)} Gbit/s 1 stream, TCP RR p50 ${fmt(abs(r.off, (x) => x.rr), 2)} µs, ${fmt(abs(r.off, (x) => x.crr), 0)} connections/s.\n`);
  say(table(['flow record', '1 stream Gbit/s', 'vs no events', 'TCP RR p50 µs', 'RR rate vs no events', 'connections/s', 'vs no events'], rows.map((x) => [
    x.name, fmt(abs(x.abs, (s) => s.one), 2), `${fmt(x.one, 3)}x`, fmt(abs(x.abs, (s) => s.rr), 2), `${fmt(x.rr, 3)}x`, fmt(abs(x.abs, (s) => s.crr), 0), `${fmt(x.crr, 3)}x`,
  ])));
  say(`\nThe from-pod program's own time per packet over all these measurements (kernel.bpf_stats_enabled): ${fmt(cost.off.perRun, 0)} ns without the flow record, ${fmt(cost.on.perRun, 0)} ns with it and nobody reading (+${fmt(cost.on.perRun - cost.off.perRun, 0)} ns), ${fmt(cost.read.perRun, 0)} ns with a reader (+${fmt(cost.read.perRun - cost.off.perRun, 0)} ns).\n`);
  out.observeProgramNs = { off: cost.off.perRun, idle: cost.on.perRun, reader: cost.read.perRun };
  out.observe = { rounds: ROUNDS, off: r.off, idle: r.idle, offReader: r.offR, reader: r.read, ratios: rows.map(({ abs: _a, ...x }) => x) };
  for (const x of rows) {
    targets.push(target(`flow visibility (${x.name}): 1-stream throughput vs no events`, x.one, 0.98, 'x', true));
    targets.push(target(`flow visibility (${x.name}): TCP RR rate vs no events`, x.rr, 0.98, 'x', true));
  }
  targets.push(target('flow visibility (reader attached): connection rate vs no events', rows[1]!.crr, 0.9, 'x', true));
}
