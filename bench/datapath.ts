// Pod-to-pod data path on one node: twill ebpf, twill routed, the reference bridge, bridge
// with 1,000 non-matching iptables FORWARD rules, and one bare veth pair (the ceiling).
// iperf3 TCP with 1 and 4 streams, and a 1-byte TCP ping-pong (both ends on CPU 0),
// interleaved round by round.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { delNetns, envFor, newNetns, timedRun, type SubjectKind, type Workspace } from './plugins.js';
import { fmt, median, ratio, table, target, type Target } from './stats.js';

export interface Pair {
  name: string;
  a: string;
  b: string;
  addrA?: string;
  addrB: string;
  teardown(): void;
}

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 2);

const run = (cmd: string[], allowFail = false): string => {
  const r = spawnSync(cmd[0]!, cmd.slice(1), { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0 && !allowFail) throw new Error(`${cmd.join(' ')}: ${r.stderr}`);
  return r.stdout;
};
const inNs = (ns: string, cmd: string[]): string[] => ['ip', 'netns', 'exec', ns, ...cmd];

function barePair(): Pair {
  const a = newNetns();
  const b = newNetns();
  run(['ip', 'link', 'add', 'twbva', 'netns', a, 'type', 'veth', 'peer', 'name', 'twbvb', 'netns', b]);
  run(inNs(a, ['ip', 'addr', 'add', '10.239.0.1/30', 'dev', 'twbva']));
  run(inNs(b, ['ip', 'addr', 'add', '10.239.0.2/30', 'dev', 'twbvb']));
  for (const [ns, dev] of [[a, 'twbva'], [b, 'twbvb']] as const) {
    run(inNs(ns, ['ip', 'link', 'set', dev, 'up']));
    run(inNs(ns, ['ip', 'link', 'set', 'lo', 'up']));
  }
  return { name: 'bare veth pair (ceiling)', a, b, addrB: '10.239.0.2', teardown: () => [a, b].forEach(delNetns) };
}

export function pluginPair(ws: Workspace, kind: SubjectKind, octet: number, label?: string): Pair {
  const s = ws.subject(kind, octet);
  const stdin = JSON.stringify(s.conf);
  const nss = [newNetns(), newNetns()];
  const res = nss.map((ns, i) => {
    const r = timedRun(s.bin, envFor('ADD', `dp-${kind}-${i}`, ns, ws.binDir), stdin);
    if (r.code !== 0) throw new Error(`${s.name} ADD: ${r.stdout}`);
    return JSON.parse(r.stdout) as { ips: { address: string }[] };
  });
  return {
    name: label ?? s.name,
    a: nss[0]!,
    b: nss[1]!,
    addrA: res[0]!.ips[0]!.address.split('/')[0]!,
    addrB: res[1]!.ips[0]!.address.split('/')[0]!,
    teardown: () => nss.forEach((ns, i) => {
      timedRun(s.bin, envFor('DEL', `dp-${kind}-${i}`, ns, ws.binDir), stdin);
      delNetns(ns);
    }),
  };
}

/** iperf3 from a to b; pin puts the client and the server on these CPUs (steadier on a small machine). */
export function iperf(p: Pair, streams: number, pin?: [number, number]): number {
  const on = (cpu: number | undefined, cmd: string[]): string[] => (cpu === undefined ? cmd : ['taskset', '-c', String(cpu), ...cmd]);
  const srv = spawn('ip', inNs(p.b, on(pin?.[1], ['iperf3', '-s', '-1', '-p', '5801'])).slice(1), { stdio: 'ignore' });
  spawnSync('sleep', ['0.2']);
  const out = run(inNs(p.a, on(pin?.[0], ['iperf3', '-c', p.addrB, '-p', '5801', '-t', String(SECONDS), '-P', String(streams), '-J'])), true);
  srv.kill();
  try {
    return (JSON.parse(out).end.sum_received.bits_per_second as number) / 1e9;
  } catch {
    return NaN;
  }
}

/** Short TCP connections per second from a to b (connect, one byte each way, close). */
export function crr(p: Pair, bin: string, n = 4000): number {
  const srv: ChildProcess = spawn('ip', inNs(p.b, [bin, 'crr-server', '5803']).slice(1), { stdio: 'ignore' });
  spawnSync('sleep', ['0.2']);
  const out = run(inNs(p.a, [bin, 'crr', p.addrB, '5803', String(n)]), true);
  srv.kill();
  return Number(out.trim());
}

export function rr(p: Pair, bin: string): number {
  const srv: ChildProcess = spawn('ip', inNs(p.b, ['taskset', '-c', '0', bin, 'server', '5802']).slice(1), { stdio: 'ignore' });
  spawnSync('sleep', ['0.2']);
  const out = run(inNs(p.a, ['taskset', '-c', '0', bin, 'client', p.addrB, '5802', '20000']), true);
  srv.kill();
  return Number(out.trim().split(' ')[0]);
}

/** 1,000 non-matching FORWARD rules, seen by bridged traffic through br_netfilter. */
function forwardRules(): (() => void) | undefined {
  if (spawnSync('modprobe', ['br_netfilter']).status !== 0 && spawnSync('sysctl', ['-n', 'net.bridge.bridge-nf-call-iptables']).status !== 0) return undefined;
  const prev = run(['sysctl', '-n', 'net.bridge.bridge-nf-call-iptables'], true).trim();
  run(['sysctl', '-qw', 'net.bridge.bridge-nf-call-iptables=1']);
  const rules = Array.from({ length: 1000 }, (_, i) => `-A TWBENCH -s 198.18.1.${i % 250}/32 -d 198.19.1.${Math.floor(i / 250)}/32 -j DROP`);
  const file = '/tmp/twill-bench-rules';
  writeFileSync(file, `*filter\n:TWBENCH - [0:0]\n${rules.join('\n')}\n-I FORWARD -j TWBENCH\nCOMMIT\n`);
  run(['iptables-restore', '--noflush', file]);
  return () => {
    run(['iptables', '-D', 'FORWARD', '-j', 'TWBENCH'], true);
    run(['iptables', '-F', 'TWBENCH'], true);
    run(['iptables', '-X', 'TWBENCH'], true);
    if (prev) run(['sysctl', '-qw', `net.bridge.bridge-nf-call-iptables=${prev}`], true);
  };
}

export function datapath(ws: Workspace, say: (s: string) => void, out: Record<string, unknown>, targets: Target[]): void {
  const rrBin = `${ws.dir}/rr`;
  run(['cc', '-O2', '-o', rrBin, 'bench/rr.c']);
  const pairs: Pair[] = [barePair(), pluginPair(ws, 'twill-ebpf', 240), pluginPair(ws, 'twill', 241), pluginPair(ws, 'bridge', 242)];
  const results = pairs.map(() => ({ one: [] as number[], four: [] as number[], rr: [] as number[] }));
  const withRules = { one: [] as number[], four: [] as number[], rr: [] as number[] };
  try {
    for (let round = 0; round < ROUNDS; round++) {
      pairs.forEach((p, k) => {
        results[k]!.one.push(iperf(p, 1));
        results[k]!.four.push(iperf(p, 4));
        results[k]!.rr.push(rr(p, rrBin));
      });
    }
    const undo = forwardRules();
    if (undo) {
      try {
        const bridge = pairs[3]!;
        for (let round = 0; round < ROUNDS; round++) {
          withRules.one.push(iperf(bridge, 1));
          withRules.four.push(iperf(bridge, 4));
          withRules.rr.push(rr(bridge, rrBin));
        }
      } finally {
        undo();
      }
    }
  } finally {
    pairs.forEach((p) => p.teardown());
  }
  const rows = pairs.map((p, k) => ({ name: p.name, one: median(results[k]!.one), four: median(results[k]!.four), rr: median(results[k]!.rr) }));
  if (withRules.one.length > 0) rows.push({ name: 'bridge + 1,000 FORWARD rules', one: median(withRules.one), four: median(withRules.four), rr: median(withRules.rr) });
  const [ceiling, , , bridge] = rows;
  say(`\n## Pod-to-pod data path on one node (${ROUNDS} interleaved rounds, medians)\n`);
  say(table(['path', '1 stream Gbit/s', 'vs ceiling', 'vs bridge', '4 streams Gbit/s', 'vs ceiling', 'TCP RR p50 µs', 'vs ceiling', 'vs bridge'], rows.map((r) => [
    r.name, fmt(r.one, 2), ratio(r.one, ceiling!.one), ratio(r.one, bridge!.one), fmt(r.four, 2), ratio(r.four, ceiling!.four), fmt(r.rr, 2), ratio(r.rr, ceiling!.rr), ratio(r.rr, bridge!.rr),
  ])));
  out.datapath = rows;
  const ebpf = rows[1]!;
  targets.push(target('twill ebpf 1-stream throughput vs bare veth', ebpf.one / ceiling!.one, 0.97, 'x', true));
  targets.push(target('twill ebpf TCP RR p50 vs bare veth', ebpf.rr / ceiling!.rr, 1.08));
}
