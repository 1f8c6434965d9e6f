// Kubernetes Services: twill's socket-level translation (bpf/twill_sock.c, cgroup hooks) against
// the backend's own address and against kube-proxy's two rule layouts, in one run.
//
// Topology (all namespaces and the cgroup made here, deleted at the end): a server namespace
// holding the measured Service's 10 backend addresses, and three client namespaces, each with
// its own veth to the server: A runs its clients inside a cgroup the twill hooks are attached
// to (direct and ClusterIP), B holds kube-proxy's iptables rules (nat OUTPUT, as kube-proxy's
// jump for locally generated traffic), C kube-proxy's nftables table. B's and C's clients run
// outside that cgroup, so each path meets one translator only. Every Service has 10 endpoints;
// the other Services' endpoints are addresses nothing answers (they are never picked: only the
// measured Service is connected to), and the measured one sits in the middle of kube-proxy's
// KUBE-SERVICES chain (its expected place: kube-proxy writes Services in map order).
import { removeCgroup } from '../testkit/cgroup.js';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { cgroup2Mount } from '../lib/bpf/attach/cgroup.js';
import { SOCK_OBJECT } from '../lib/bpf/manifest.js';
import { openObject } from '../lib/bpf/loader.js';
import { mapMemlock } from '../lib/bpf/sys.js';
import { applyServices, ensureServiceHooks, openServiceMaps, removeServiceHooks } from '../lib/datapath/services.js';
import { memoryRecord } from '../lib/mirror/record.js';
import type { LbFrontend } from '../lib/services/model.js';
import { tempBpffs } from '../testkit/traffic.js';
import { removeDir, tempDir } from '../testkit/twill.js';
import type { Workspace } from './plugins.js';
import { fmt, median, ratio, table, target, type Target } from './stats.js';

const ROUNDS = Number(process.env.BENCH_SVC_ROUNDS ?? 5);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 2);
const SCALES = (process.env.BENCH_SVC_SCALES ?? '1,1000,10000').split(',').map(Number);
const ENDPOINTS = 10;
const CONNECTS = Number(process.env.BENCH_SVC_CONNECTS ?? 3000);
const CRR_N = Number(process.env.BENCH_SVC_CRR ?? 3000);
/** iptables-restore as the host has it (iptables-nft here), or BENCH_SVC_IPTABLES=iptables-legacy-restore. */
const IPT_RESTORE = process.env.BENCH_SVC_IPTABLES ?? 'iptables-restore';
/** Which parts run: sync (applyServices' cost and the maps' memory), datapath (latency, rates, kube-proxy's layouts). */
const PARTS = (process.env.BENCH_SVC_PARTS ?? 'sync,datapath').split(',');

const ID = `twbsvc${process.pid % 100000}`;
const SERVER = `${ID}s`;
const CLIENTS = { twill: `${ID}a`, ipt: `${ID}b`, nft: `${ID}c` } as const;
type Client = keyof typeof CLIENTS;
const SUBNET: Record<Client, number> = { twill: 11, ipt: 12, nft: 13 };
const VETH: Record<Client, string> = { twill: `${ID}a`, ipt: `${ID}b`, nft: `${ID}c` };
/** The measured Service's backends: addresses of the server namespace. */
const BACKENDS = Array.from({ length: ENDPOINTS }, (_, i) => `10.238.1.${i + 1}`);
const DIRECT = BACKENDS[0]!;
/** kube-proxy's --cluster-cidr: the clients' addresses are pods' (no masquerade). */
const CLUSTER_CIDR = '10.238.0.0/16';
const SERVICE_CIDR = '10.96.0.0/12';
/** The measured Service's ports: Service port → the server's port. */
const PORTS = { crr: [80, 5803], rr: [81, 5802], tput: [82, 5801] } as const;

const run = (cmd: string[], opts: { allowFail?: boolean; input?: string; timeout?: number } = {}): string => {
  const r = spawnSync(cmd[0]!, cmd.slice(1), { encoding: 'utf8', timeout: opts.timeout ?? 120_000, input: opts.input, maxBuffer: 64 << 20 });
  if (r.status !== 0 && !opts.allowFail) throw new Error(`${cmd.join(' ').slice(0, 200)}: ${r.stderr || r.error?.message}`);
  return r.stdout;
};
const inNs = (ns: string, cmd: string[]): string[] => ['ip', 'netns', 'exec', ns, ...cmd];

/** The i-th Service's ClusterIP (10.96.0.0/12 from .1). */
const clusterIp = (i: number): string => {
  const n = 0x0a600000 + i + 1;
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
};
/** An endpoint of a Service other than the measured one (never connected to). */
const fakeEndpoint = (i: number, k: number): string => {
  const n = 0x0af00000 + i * ENDPOINTS + k + 1;
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
};

interface Svc {
  ns: string;
  name: string;
  ip: string;
  ports: { name: string; port: number; target: number }[];
  endpoints: string[];
}

/** n Services of 10 endpoints; the measured one (three ports) at index n/2. */
function services(n: number): { list: Svc[]; measured: Svc } {
  const mid = Math.floor(n / 2);
  const list = Array.from({ length: n }, (_, i): Svc => (i === mid
    ? { ns: 'bench', name: 'measured', ip: clusterIp(i), ports: Object.entries(PORTS).map(([name, [port, tgt]]) => ({ name, port, target: tgt })), endpoints: BACKENDS }
    : { ns: `ns-${i % 100}`, name: `svc-${i}`, ip: clusterIp(i), ports: [{ name: 'http', port: 80, target: 8080 }], endpoints: Array.from({ length: ENDPOINTS }, (_, k) => fakeEndpoint(i, k)) }));
  return { list, measured: list[mid]! };
}

function frontends(list: Svc[]): LbFrontend[] {
  let id = 0;
  return list.flatMap((s) => s.ports.map((p): LbFrontend => ({
    family: 4, address: s.ip, port: p.port, protocol: 'TCP', scope: 'internal', serviceId: ++id,
    backends: s.endpoints.map((address) => ({ address, port: p.target })), terminating: [], whenEmpty: 'reject', affinitySeconds: 0,
  })));
}

// kube-proxy's chain names: base32(sha256(servicePortName + protocol [+ endpoint]))[:16].
function base32(b: Buffer): string {
  const abc = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let out = '', bits = 0, acc = 0;
  for (const x of b) {
    acc = (acc << 8) | x;
    bits += 8;
    while (bits >= 5) {
      out += abc[(acc >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  return out;
}
const hash16 = (s: string): string => base32(createHash('sha256').update(s).digest()).slice(0, 16);

/**
 * The nat and filter rules kube-proxy's iptables proxier writes for ClusterIP Services (with
 * --cluster-cidr, and large-cluster mode past 1,000 endpoints: no comments on endpoint rules).
 */
export function iptablesRules(list: Svc[]): string {
  const large = list.length * ENDPOINTS > 1000;
  const chains: string[] = [], svcRules: string[] = [], rules: string[] = [];
  for (const s of list) {
    for (const p of s.ports) {
      const spn = `${s.ns}/${s.name}:${p.name}`;
      const svc = `KUBE-SVC-${hash16(`${spn}tcp`)}`;
      chains.push(`:${svc} - [0:0]`);
      svcRules.push(`-A KUBE-SERVICES -m comment --comment "${spn} cluster IP" -m tcp -p tcp -d ${s.ip}/32 --dport ${p.port} -j ${svc}`);
      rules.push(`-A ${svc} -m comment --comment "${spn} cluster IP" -m tcp -p tcp -d ${s.ip}/32 --dport ${p.port} ! -s ${CLUSTER_CIDR} -j KUBE-MARK-MASQ`);
      s.endpoints.forEach((e, k) => {
        const ep = `${e}:${p.target}`;
        const sep = `KUBE-SEP-${hash16(`${spn}tcp${ep}`)}`;
        chains.push(`:${sep} - [0:0]`);
        const comment = large ? '' : ` -m comment --comment "${spn} -> ${ep}"`;
        const left = s.endpoints.length - k;
        rules.push(`-A ${svc}${comment}${left > 1 ? ` -m statistic --mode random --probability ${(1 / left).toFixed(10)}` : ''} -j ${sep}`);
        const c = large ? '' : ` -m comment --comment ${spn}`;
        rules.push(`-A ${sep}${c} -s ${e}/32 -j KUBE-MARK-MASQ`);
        rules.push(`-A ${sep}${c} -m tcp -p tcp -j DNAT --to-destination ${ep}`);
      });
    }
  }
  return [
    '*filter',
    ':KUBE-SERVICES - [0:0]', ':KUBE-EXTERNAL-SERVICES - [0:0]', ':KUBE-FORWARD - [0:0]', ':KUBE-PROXY-FIREWALL - [0:0]', ':KUBE-NODEPORTS - [0:0]',
    '-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL',
    '-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    '-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP',
    'COMMIT',
    '*nat',
    ':KUBE-SERVICES - [0:0]', ':KUBE-NODEPORTS - [0:0]', ':KUBE-POSTROUTING - [0:0]', ':KUBE-MARK-MASQ - [0:0]',
    ...chains,
    '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
    '-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN',
    '-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000',
    '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully',
    '-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000',
    ...svcRules,
    '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS',
    ...rules,
    'COMMIT',
    '',
  ].join('\n');
}

/**
 * kube-proxy's nftables proxier (table ip kube-proxy): one service-ips verdict map → a chain
 * per Service port (masquerade check, numgen random mod N vmap) → a chain per endpoint (DNAT);
 * its filter hooks (no-endpoint and cluster-IP checks on new connections) included.
 */
export function nftRules(list: Svc[]): string[] {
  const out: string[] = [];
  const cips = list.map((s) => s.ip);
  const batches: string[] = [];
  const BATCH = 1000;
  for (let at = 0; at < list.length; at += BATCH) {
    const elems: string[] = [], chains: string[] = [];
    for (const s of list.slice(at, at + BATCH)) {
      for (const p of s.ports) {
        const spn = `${s.ns}/${s.name}/tcp/${p.name}`;
        const svc = `service-${hash16(`${s.ns}/${s.name}:${p.name}tcp`).slice(0, 8)}-${spn}`;
        elems.push(`${s.ip} . tcp . ${p.port} : goto ${svc}`);
        const eps = s.endpoints.map((e) => {
          const ep = `endpoint-${hash16(`${spn}${e}:${p.target}`).slice(0, 8)}-${spn}__${e}/${p.target}`;
          chains.push(`chain ${ep} {\n ip saddr ${e} jump mark-for-masquerade\n meta l4proto tcp dnat to ${e}:${p.target}\n}`);
          return ep;
        });
        chains.push(`chain ${svc} {\n ip daddr ${s.ip} tcp dport ${p.port} ip saddr != ${CLUSTER_CIDR} jump mark-for-masquerade\n numgen random mod ${eps.length} vmap { ${eps.map((e, k) => `${k} : goto ${e}`).join(', ')} }\n}`);
      }
    }
    batches.push(`table ip kube-proxy {\n${chains.join('\n')}\n}\nadd element ip kube-proxy service-ips { ${elems.join(', ')} }\n`);
  }
  out.push('table ip kube-proxy {', 'comment "rules for kube-proxy"');
  out.push('set cluster-ips { type ipv4_addr; comment "Active ClusterIPs"; elements = { ' + cips.join(', ') + ' }; }');
  out.push('map no-endpoint-services { type ipv4_addr . inet_proto . inet_service : verdict; comment "vmap to drop or reject packets to services with no endpoints"; }');
  out.push('map service-ips { type ipv4_addr . inet_proto . inet_service : verdict; comment "ClusterIP, ExternalIP and LoadBalancer IP traffic"; }');
  out.push('set nodeport-ips { type ipv4_addr; comment "IPs that accept NodePort traffic"; }');
  out.push('map service-nodeports { type inet_proto . inet_service : verdict; comment "NodePort traffic"; }');
  out.push('chain mark-for-masquerade {\n mark set mark or 0x4000\n}');
  out.push('chain masquerading {\n mark and 0x4000 == 0 return\n mark set mark xor 0x4000\n masquerade fully-random\n}');
  out.push('chain services {\n ip daddr . meta l4proto . th dport vmap @service-ips\n ip daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports\n}');
  out.push('chain service-endpoints-check {\n ip daddr . meta l4proto . th dport vmap @no-endpoint-services\n}');
  out.push(`chain cluster-ips-check {\n ip daddr @cluster-ips reject comment "Reject traffic to invalid ports of ClusterIPs"\n ip daddr ${SERVICE_CIDR} drop comment "Drop traffic to unallocated ClusterIPs"\n}`);
  out.push('chain firewall-check {\n}');
  out.push('chain filter-output {\n type filter hook output priority -110; policy accept;\n ct state new jump service-endpoints-check\n ct state new jump firewall-check\n}');
  out.push('chain filter-output-post-dnat {\n type filter hook output priority -90; policy accept;\n ct state new jump cluster-ips-check\n}');
  out.push('chain nat-output {\n type nat hook output priority -100; policy accept;\n jump services\n}');
  out.push('chain nat-prerouting {\n type nat hook prerouting priority -100; policy accept;\n jump services\n}');
  out.push('chain nat-postrouting {\n type nat hook postrouting priority 100; policy accept;\n jump masquerading\n}');
  out.push('}', '');
  return [out.join('\n'), ...batches];
}

interface Bed {
  cg: string;
  bpffs: { root: string; release(): void };
  stateDir: string;
  servers: ChildProcess[];
  svcConn: string;
  rrBin: string;
  teardown(): void;
}

function testbed(dir: string): Bed {
  const mount = cgroup2Mount();
  if (!mount) throw new Error('no cgroup v2 mount');
  const cg = `${mount}/${ID}`;
  const bpffs = tempBpffs();
  const stateDir = tempDir('svc-bench-state');
  const servers: ChildProcess[] = [];
  const svcConn = `${dir}/svcconn`, rrBin = `${dir}/rr`;
  run(['cc', '-O2', '-o', svcConn, 'bench/svcconn.c']);
  run(['cc', '-O2', '-o', rrBin, 'bench/rr.c']);
  const teardown = (): void => {
    for (const s of servers) s.kill('SIGKILL');
    try {
      removeServiceHooks({ bpffsRoot: bpffs.root, cgroupRoot: cg, stateDir });
    } catch {
      // never attached
    }
    for (const ns of [SERVER, ...Object.values(CLIENTS)]) run(['ip', 'netns', 'del', ns], { allowFail: true });
    removeCgroup(cg);
    bpffs.release();
    removeDir(stateDir);
  };
  try {
    run(['ip', 'netns', 'add', SERVER]);
    run(['ip', '-n', SERVER, 'link', 'set', 'lo', 'up']);
    for (const b of BACKENDS) run(['ip', '-n', SERVER, 'addr', 'add', `${b}/32`, 'dev', 'lo']);
    for (const [c, ns] of Object.entries(CLIENTS) as [Client, string][]) {
      const o = SUBNET[c];
      run(['ip', 'netns', 'add', ns]);
      run(['ip', 'link', 'add', VETH[c], 'netns', SERVER, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
      run(['ip', '-n', SERVER, 'addr', 'add', `10.238.${o}.2/30`, 'dev', VETH[c]]);
      run(['ip', '-n', SERVER, 'link', 'set', VETH[c], 'up']);
      run(['ip', '-n', ns, 'addr', 'add', `10.238.${o}.1/30`, 'dev', 'eth0']);
      run(['ip', '-n', ns, 'link', 'set', 'eth0', 'up']);
      run(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
      // The node's default route: ClusterIPs are routable before kube-proxy's DNAT.
      run(['ip', '-n', ns, 'route', 'add', 'default', 'via', `10.238.${o}.2`]);
    }
    mkdirSync(cg);
    ensureServiceHooks({ bpffsRoot: bpffs.root, cgroupRoot: cg, stateDir });
    servers.push(spawn('ip', inNs(SERVER, [rrBin, 'crr-server', String(PORTS.crr[1])]).slice(1), { stdio: 'ignore' }));
    spawnSync('sleep', ['0.3']);
  } catch (e) {
    teardown();
    throw e;
  }
  return { cg, bpffs, stateDir, servers, svcConn, rrBin, teardown };
}

/** A command in a client namespace; twill's clients inside the hooked cgroup. */
function client(bed: Bed, c: Client, cmd: string[], pin?: number): string {
  const argv = [...(pin === undefined ? [] : ['taskset', '-c', String(pin)]), ...cmd];
  const script = c === 'twill' ? `echo $$ > ${bed.cg}/cgroup.procs && exec ip netns exec "$0" "$@"` : 'exec ip netns exec "$0" "$@"';
  const r = spawnSync('sh', ['-c', script, CLIENTS[c], ...argv], { encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) process.stderr.write(`client ${c} ${cmd.join(' ')}: ${r.stderr || r.error?.message || `exit ${r.status}`}\n`);
  return r.stdout ?? '';
}

function crr(bed: Bed, c: Client, addr: string, port: number): number {
  return Number(client(bed, c, [bed.rrBin, 'crr', addr, String(port), String(CRR_N)]).trim());
}

function rr(bed: Bed, addr: string, port: number): number {
  const srv = spawn('ip', inNs(SERVER, ['taskset', '-c', '0', bed.rrBin, 'server', String(PORTS.rr[1])]).slice(1), { stdio: 'ignore' });
  spawnSync('sleep', ['0.2']);
  const out = client(bed, 'twill', [bed.rrBin, 'client', addr, String(port), '20000'], 0);
  srv.kill();
  spawnSync('sleep', ['0.1']);
  return Number(out.trim().split(' ')[0]);
}

function tput(bed: Bed, addr: string, port: number): number {
  const srv = spawn('ip', inNs(SERVER, ['iperf3', '-s', '-1', '-p', String(PORTS.tput[1])]).slice(1), { stdio: 'ignore' });
  spawnSync('sleep', ['0.2']);
  const out = client(bed, 'twill', ['iperf3', '-c', addr, '-p', String(port), '-t', String(SECONDS), '-J', '--connect-timeout', '2000']);
  srv.kill();
  spawnSync('sleep', ['0.1']);
  try {
    return (JSON.parse(out).end.sum_received.bits_per_second as number) / 1e9;
  } catch {
    return NaN;
  }
}

/** kube-proxy's tables for the list in B (iptables) and C (nftables); the load times in ms. */
function loadKubeProxy(list: Svc[]): { iptMs: number; nftMs: number; iptRules: number } {
  const ipt = iptablesRules(list);
  let t0 = process.hrtime.bigint();
  run(inNs(CLIENTS.ipt, [IPT_RESTORE]), { input: ipt, timeout: 600_000 });
  const iptMs = Number(process.hrtime.bigint() - t0) / 1e6;
  t0 = process.hrtime.bigint();
  run(inNs(CLIENTS.nft, ['nft', 'flush', 'ruleset']));
  // One transaction per 1,000 Services: one of 110,000 chains costs the kernel minutes here.
  for (const part of nftRules(list)) run(inNs(CLIENTS.nft, ['nft', '-f', '-']), { input: part, timeout: 600_000 });
  const nftMs = Number(process.hrtime.bigint() - t0) / 1e6;
  return { iptMs, nftMs, iptRules: ipt.split('\n').filter((l) => l.startsWith('-A')).length };
}

const memlockOfServiceMaps = (root: string): { total: number; byMap: Record<string, number> } => {
  const o = openObject(SOCK_OBJECT, root);
  if (!o) return { total: NaN, byMap: {} };
  try {
    const byMap = Object.fromEntries([...o.maps].map(([n, fd]) => [n, mapMemlock(fd)]));
    return { total: Object.values(byMap).reduce((a, b) => a + b, 0), byMap };
  } finally {
    o.close();
  }
};

export async function servicesBench(ws: Workspace, say: (s: string) => void, out: Record<string, unknown>, targets: Target[]): Promise<void> {
  const bed = testbed(ws.dir);
  const svcMaps = openServiceMaps(bed.bpffs.root);
  if (!svcMaps) throw new Error('Service maps not pinned after ensureServiceHooks');
  const MiB = 2 ** 20;
  try {
    // Sync cost: 10,000 Services × 10 endpoints into empty maps (the first apply of a process
    // reads the maps back in batches and adopts what they hold), then one Service's endpoints
    // changed as --watch applies it (only that Service port compared and written), the same
    // change through a full plan (the periodic resync), and a restarted sync re-adopting the
    // maps (another record: nothing it knows) that should write nothing. The end-to-end figure
    // under `twill sync --watch` (the issue's p99) adds the watch and the compile to this.
    const big = Math.max(...SCALES);
    const bigList = services(big).list;
    const record = memoryRecord();
    const fes = frontends(bigList);
    if (PARTS.includes('sync')) {
      let t0 = process.hrtime.bigint();
      applyServices(svcMaps.maps, fes, record);
      const coldMs = Number(process.hrtime.bigint() - t0) / 1e6;
      const mem = memlockOfServiceMaps(bed.bpffs.root);
      const changeMs: number[] = [], fullMs: number[] = [];
      let cur = fes;
      for (let i = 0; i < 20; i++) {
        // Service 0 gets a new endpoint in place of its first (an EndpointSlice change).
        const f0 = { ...fes[0]!, backends: [{ address: `10.250.0.${i + 1}`, port: 8080 }, ...fes[0]!.backends.slice(1)] };
        cur = fes.map((f, k) => (k === 0 ? f0 : f));
        t0 = process.hrtime.bigint();
        if (i < 10) applyServices(svcMaps.maps, [f0], record, { only: new Set([f0.serviceId]) });
        else applyServices(svcMaps.maps, cur, record);
        (i < 10 ? changeMs : fullMs).push(Number(process.hrtime.bigint() - t0) / 1e6);
      }
      t0 = process.hrtime.bigint();
      const again = applyServices(svcMaps.maps, cur, memoryRecord());
      const restartMs = Number(process.hrtime.bigint() - t0) / 1e6;
      const restartWrites = [...again.maps.values()].reduce((a, r) => a + r.put + r.removed, 0);
      say(`\n## Services: sync cost (applyServices, ${big} Services × ${ENDPOINTS} endpoints)\n`);
      say(table(['what', 'figure'], [
        [`${fes.length} frontends, ${fes.length * ENDPOINTS} backends from cold (empty maps read back in batches)`, `${fmt(coldMs)} ms`],
        ['one Service\'s endpoints changed, applyServices of that Service port (as --watch does; 10 runs)', `p50 ${fmt(median(changeMs))} ms, max ${fmt(Math.max(...changeMs))} ms`],
        ['one Service\'s endpoints changed, full plan over every Service (the periodic resync; 10 runs)', `p50 ${fmt(median(fullMs))} ms, max ${fmt(Math.max(...fullMs))} ms`],
        ['a restarted sync: maps read back and re-adopted, nothing changed', `${fmt(restartMs)} ms, ${restartWrites} map writes`],
        ['kernel memory of the Service maps (memlock, fdinfo)', `${fmt(mem.total / MiB, 2)} MiB (${Object.entries(mem.byMap).map(([n, b]) => `${n} ${fmt(b / MiB, 2)}`).join(', ')})`],
      ]));
      out.servicesSync = { services: big, frontends: fes.length, coldMs, changeMs, fullMs, restartMs, restartWrites, memlock: mem };
      targets.push(target(`Services: applyServices of ${big} Services × ${ENDPOINTS} endpoints from cold`, coldMs / 1000, 2, ' s'));
      targets.push(target('Services: one EndpointSlice change, applyServices part (the --watch end-to-end p99 is not measured here)', Math.max(...changeMs), 100, ' ms'));
      targets.push(target(`Services: Service maps' kernel memory at ${big} Services / ${big * ENDPOINTS} endpoints`, mem.total / MiB, 16, ' MiB'));
    }
    if (!PARTS.includes('datapath')) return;

    // The data path at each scale, smallest first; kube-proxy's tables reloaded per scale.
    const lat: { scale: number; cip: number; direct: number; cip90: number; direct90: number }[] = [];
    const rate: { scale: number; direct: number; cip: number; ipt: number; nft: number; iptDirect: number; nftDirect: number; load: { iptMs: number; nftMs: number; iptRules: number } }[] = [];
    for (const scale of [...SCALES].sort((a, b) => a - b)) {
      const { list, measured } = services(scale);
      applyServices(svcMaps.maps, frontends(list), record);
      // The slot ranges the previous round left are freed by the next one: apply twice.
      applyServices(svcMaps.maps, frontends(list), record);
      const load = loadKubeProxy(list);
      const vip = measured.ip;
      // connect() latency, both destinations in one process, op by op.
      const l = { cip: [] as number[], direct: [] as number[], cip90: [] as number[], direct90: [] as number[] };
      const r = { direct: [] as number[], cip: [] as number[], ipt: [] as number[], nft: [] as number[], iptDirect: [] as number[], nftDirect: [] as number[] };
      for (let round = 0; round < ROUNDS; round++) {
        const [a50, a90, b50, b90] = client(bed, 'twill', [bed.svcConn, vip, String(PORTS.crr[0]), DIRECT, String(PORTS.crr[1]), String(CONNECTS)], 1).trim().split(' ').map(Number);
        l.cip.push(a50!);
        l.cip90.push(a90!);
        l.direct.push(b50!);
        l.direct90.push(b90!);
        r.direct.push(crr(bed, 'twill', DIRECT, PORTS.crr[1]));
        r.cip.push(crr(bed, 'twill', vip, PORTS.crr[0]));
        r.ipt.push(crr(bed, 'ipt', vip, PORTS.crr[0]));
        r.nft.push(crr(bed, 'nft', vip, PORTS.crr[0]));
        r.iptDirect.push(crr(bed, 'ipt', DIRECT, PORTS.crr[1]));
        r.nftDirect.push(crr(bed, 'nft', DIRECT, PORTS.crr[1]));
      }
      lat.push({ scale, cip: median(l.cip), direct: median(l.direct), cip90: median(l.cip90), direct90: median(l.direct90) });
      rate.push({ scale, direct: median(r.direct), cip: median(r.cip), ipt: median(r.ipt), nft: median(r.nft), iptDirect: median(r.iptDirect), nftDirect: median(r.nftDirect), load });
    }

    say(`\n## Services: connect() latency, ClusterIP vs the backend's address (one client in the hooked cgroup, ${CONNECTS} connects to each interleaved per op, median of ${ROUNDS} rounds)\n`);
    say(table(['Services programmed', 'direct p50 µs', 'ClusterIP p50 µs', 'ClusterIP / direct', 'direct p90 µs', 'ClusterIP p90 µs'], lat.map((x) => [
      x.scale, fmt(x.direct, 2), fmt(x.cip, 2), ratio(x.cip, x.direct), fmt(x.direct90, 2), fmt(x.cip90, 2),
    ])));
    for (const x of lat) targets.push(target(`Services: connect() p50 via ClusterIP vs direct at ${x.scale} Services`, x.cip / x.direct, 1.05));
    const lo = lat[0]!, hi = lat[lat.length - 1]!;
    if (lat.length > 1) {
      say(`\nFlatness: ClusterIP p50 at ${hi.scale} ÷ at ${lo.scale} Services ${ratio(hi.cip, lo.cip)} (direct drifted ${ratio(hi.direct, lo.direct)} between the two; ratio-to-direct ${ratio(hi.cip / hi.direct, lo.cip / lo.direct)}).`);
      targets.push(target(`Services: connect() p50 via ClusterIP, ${hi.scale} vs ${lo.scale} Services`, hi.cip / lo.cip, 1.05));
    }
    out.servicesConnect = lat;

    say(`\n## Services: new connections per second (connect, 1 byte each way, close; ${CRR_N} per run, median of ${ROUNDS} interleaved rounds)\n`);
    say(`kube-proxy's rules loaded in their own client namespaces (nat OUTPUT), iptables through \`${IPT_RESTORE}\` (${run([IPT_RESTORE.replace('-restore', ''), '--version'], { allowFail: true }).trim() || 'version unknown'}), nftables through \`nft -f\` (${run(['nft', '--version'], { allowFail: true }).trim()}).\n`);
    say(table(['Services (× 10 endpoints)', 'direct conn/s', 'twill ClusterIP', 'vs direct', 'kube-proxy iptables', 'twill vs iptables', 'kube-proxy nftables', 'twill vs nftables', 'direct with iptables rules', 'direct with nft rules', 'iptables rules, load s', 'nft load s'], rate.map((x) => [
      x.scale, fmt(x.direct, 0), fmt(x.cip, 0), ratio(x.cip, x.direct), fmt(x.ipt, 0), ratio(x.cip, x.ipt), fmt(x.nft, 0), ratio(x.cip, x.nft), fmt(x.iptDirect, 0), fmt(x.nftDirect, 0),
      `${x.load.iptRules}, ${fmt(x.load.iptMs / 1000, 1)}`, fmt(x.load.nftMs / 1000, 1),
    ])));
    for (const x of rate.filter((y) => y.scale >= 1000)) targets.push(target(`Services: new connections/s via ClusterIP vs direct at ${x.scale} Services`, x.cip / x.direct, 0.95, 'x', true));
    const top = rate[rate.length - 1]!;
    targets.push(target(`Services: new connections/s, twill vs kube-proxy iptables at ${top.scale} Services`, top.cip / top.ipt, 1.5, 'x', true));
    targets.push(target(`Services: new connections/s, twill vs kube-proxy nftables at ${top.scale} Services`, top.cip / top.nft, 1.0, 'x', true));
    out.servicesCrr = rate;

    // An established connection after translation is the backend's: keep-alive RR and one
    // stream, at the largest scale (the last applied), interleaved.
    const vip = services(top.scale).measured.ip;
    const k = { rrDirect: [] as number[], rrCip: [] as number[], tDirect: [] as number[], tCip: [] as number[] };
    for (let round = 0; round < ROUNDS; round++) {
      k.rrDirect.push(rr(bed, DIRECT, PORTS.rr[1]));
      k.rrCip.push(rr(bed, vip, PORTS.rr[0]));
      k.tDirect.push(tput(bed, DIRECT, PORTS.tput[1]));
      k.tCip.push(tput(bed, vip, PORTS.tput[0]));
    }
    const ka = { rrDirect: median(k.rrDirect), rrCip: median(k.rrCip), tDirect: median(k.tDirect), tCip: median(k.tCip) };
    say(`\n## Services: established connections via ClusterIP (${top.scale} Services, ${ROUNDS} interleaved rounds, medians)\n`);
    say(table(['path', 'keep-alive RR p50 µs', 'RR rate vs direct', '1 stream Gbit/s', 'vs direct'], [
      ['direct (backend address)', fmt(ka.rrDirect, 2), '1.00x', fmt(ka.tDirect, 2), '1.00x'],
      ['twill ClusterIP', fmt(ka.rrCip, 2), ratio(ka.rrDirect, ka.rrCip), fmt(ka.tCip, 2), ratio(ka.tCip, ka.tDirect)],
    ]));
    targets.push(target('Services: keep-alive request/response rate via ClusterIP vs direct', ka.rrDirect / ka.rrCip, 0.99, 'x', true));
    targets.push(target('Services: 1-stream throughput via ClusterIP vs direct', ka.tCip / ka.tDirect, 0.99, 'x', true));
    out.servicesEstablished = { ...ka, rounds: k };
  } finally {
    svcMaps.close();
    bed.teardown();
  }
}

/** For a quick look at the generated rule sets: node build/bench/services.js rules N. */
if (process.argv[2] === 'rules' && process.argv[1]?.endsWith('services.js')) {
  const { list } = services(Number(process.argv[3] ?? 2));
  writeFileSync('/dev/stdout', `${iptablesRules(list)}\n# ---- nft\n${nftRules(list).join('\n# ---- nft batch\n')}`);
}
