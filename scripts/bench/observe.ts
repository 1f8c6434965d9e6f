// What flow visibility costs on the pod-to-pod path, interleaved in one run: twill ebpf with
// the flow record and its events on, with nobody reading and with `twill observe --follow`
// reading, against the same path with "flowEntries": 0 (no record, no events). Each
// measurement is paired with one without events taken next to it (A B B A); medians of the ratios.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, openSync, writeFileSync, closeSync } from 'node:fs';
import { crr, iperf, pluginPair, rr, type Pair } from './datapath.js';
import { fmt, median, table, target, type Target } from './stats.js';
import type { Workspace } from './plugins.js';
import { spawnSync } from 'node:child_process';

const ROUNDS = Number(process.env.BENCH_OBSERVE_ROUNDS ?? 5);

interface Sample {
  one: number;
  rr: number;
  crr: number;
}

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
  spawnSync('cc', ['-O2', '-o', rrBin, 'scripts/bench/rr.c']);
  const off = pluginPair(ws, 'twill-ebpf-noflows', 246, 'no flow record');
  const on = pluginPair(ws, 'twill-ebpf', 247, 'flow record');
  const s = ws.subject('twill-ebpf', 247);
  const confDir = `${ws.dir}/net.d-observe`;
  mkdirSync(confDir, { recursive: true });
  const { cniVersion, name, ...entry } = s.conf as { cniVersion: string; name: string };
  writeFileSync(`${confDir}/10-bench.conflist`, JSON.stringify({ cniVersion, name, plugins: [entry] }));
  const r = { off: [] as Sample[], idle: [] as Sample[], offR: [] as Sample[], read: [] as Sample[] };
  try {
    for (let round = 0; round < ROUNDS; round++) {
      // A B B A: drift within a round cancels in the pairs (A1, B1) and (A2, B2).
      const abba = (a: Sample[], b: Sample[]): void => {
        const a1 = measure(off, rrBin), b1 = measure(on, rrBin), b2 = measure(on, rrBin), a2 = measure(off, rrBin);
        a.push(a1, a2);
        b.push(b1, b2);
      };
      abba(r.off, r.idle);
      // The reader runs through both halves: what is compared is the cost of its events.
      const p = reader(ws, confDir);
      try {
        abba(r.offR, r.read);
      } finally {
        p.kill('SIGINT');
        spawnSync('sleep', ['0.2']);
      }
    }
  } finally {
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
  out.observe = { rounds: ROUNDS, off: r.off, idle: r.idle, offReader: r.offR, reader: r.read, ratios: rows.map(({ abs: _a, ...x }) => x) };
  for (const x of rows) {
    targets.push(target(`flow visibility (${x.name}): 1-stream throughput vs no events`, x.one, 0.98, 'x', true));
    targets.push(target(`flow visibility (${x.name}): TCP RR rate vs no events`, x.rr, 0.98, 'x', true));
  }
  targets.push(target('flow visibility (reader attached): connection rate vs no events', rows[1]!.crr, 0.9, 'x', true));
}
