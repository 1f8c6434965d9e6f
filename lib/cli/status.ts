// `twill status`: per network on this host, what serves its pods and whether ADD can work.
import { accessSync, closeSync, constants, existsSync, fstatSync, openSync, readdirSync, readFileSync, readSync } from '../sys/fs.js';
import { MAP_NAMES } from '../bpf/layout.js';
import type { NetConf } from '../config/types.js';
import { endpointTable, listEndpoints } from '../datapath/ebpf.js';
import { policyBlocker, readDatapathState } from '../datapath/select.js';
import { readBudget, readSyncRecord, type BudgetRecord, type Refusal } from '../state/files.js';
import { readBackendState } from '../datapath/backend.js';
import { guardBlocker, guardMissing } from '../datapath/guard.js';
import { hostLocalUsage } from '../ipam/hostlocal.js';
import { networkDir, openNetwork } from '../bpf/loader.js';
import { objGet, objInfo, closeFd, mapMemlock } from '../bpf/sys.js';
import { hostLinksWithAlias } from '../sys/podlink.js';
import { aliasPrefix } from '../naming.js';
import { twillNetworks } from './netconfs.js';
import { servicesStatus, servicesStatusLine, type ServicesStatus } from './services.js';

export interface NetworkStatus {
  network: string;
  file: string;
  ready: boolean;
  problems: string[];
  /** Things that do not stop ADD but cut some traffic (a peer off the underlay). */
  warnings: string[];
  datapath: { configured: string; live: string; attach?: string; reason?: string };
  backend: string;
  peers?: { device?: string; mtu: number; self?: string; names: string[] };
  pool?: { rangeSet: number; ranges: string[]; used: number; free: string }[];
  endpoints: number;
  bpf?: { pinDir: string; programId?: number; mapIds: Record<string, number> };
  policy?: PolicyStatus;
  /** The node's Services (node-wide: the same on every network that serves them). */
  services?: ServicesStatus;
  lastErrors: string[];
}

export interface PolicyStatus {
  enforced: boolean;
  lastSync?: string;
  source?: string;
  policies?: number;
  identities?: number;
  ipcacheEntries?: number;
  policyEntries?: number;
  /** Dropped packets of this network's endpoints, summed. */
  drops: { ingressPolicy: string; egressPolicy: string; spoofed: string };
  /** Locked kernel memory of the network's maps, in bytes (bpftool's memlock). */
  mapMemory?: number;
  /** Entries of the applied state and what each map holds. */
  entries?: BudgetRecord['maps'];
  /** The last sync's policy set did not fit: refused whole, the state before still enforced. */
  refused?: Refusal;
}

function policyStatus(conf: NetConf): PolicyStatus {
  const rec = readSyncRecord(conf);
  const budget = readBudget(conf);
  const blocked = policyBlocker(conf, true);
  const drops = { ingressPolicy: 0n, egressPolicy: 0n, spoofed: 0n };
  const seen = new Set<number>();
  let mapMemory: number | undefined;
  for (const r of endpointTable(conf.bpffsRoot, []).filter((x) => x.network === conf.name)) {
    if (seen.has(r.hostIndex) || !r.counters) continue;
    seen.add(r.hostIndex);
    drops.ingressPolicy += r.counters.policyInPackets;
    drops.egressPolicy += r.counters.policyOutPackets;
    drops.spoofed += r.counters.spoofedPackets;
  }
  const net = openNetwork(conf.bpffsRoot, conf.name);
  if (net) {
    try {
      mapMemory = [...net.maps.values()].reduce((s, fd) => s + mapMemlock(fd), 0);
    } finally {
      net.close();
    }
  }
  return {
    enforced: !blocked,
    ...(rec ? { lastSync: rec.time, source: rec.source, policies: rec.policies.length, identities: rec.identities, ipcacheEntries: rec.ipcacheEntries, policyEntries: rec.policyEntries } : {}),
    drops: { ingressPolicy: String(drops.ingressPolicy), egressPolicy: String(drops.egressPolicy), spoofed: String(drops.spoofed) },
    ...(mapMemory !== undefined ? { mapMemory } : {}),
    ...(budget ? { entries: budget.maps, ...(budget.refused ? { refused: budget.refused } : {}) } : {}),
  };
}

/** Maps this release's object has and the network's pins lack (an upgrade added them; the next ADD creates them). */
function missingMaps(conf: NetConf): string[] {
  if (conf.datapath === 'routed') return [];
  const net = openNetwork(conf.bpffsRoot, conf.name);
  if (!net) return [];
  net.close();
  return net.missing.length ? [`maps not pinned yet: ${net.missing.join(', ')} (the next pod's ADD creates them)`] : [];
}

function bpfInfo(conf: NetConf): NetworkStatus['bpf'] {
  const dir = networkDir(conf.bpffsRoot, conf.name);
  if (!existsSync(dir)) return undefined;
  const id = (path: string): number | undefined => {
    try {
      const fd = objGet(path);
      if (fd === undefined) return undefined;
      try {
        return objInfo(fd).readUInt32LE(4); // bpf_{prog,map}_info.id
      } finally {
        closeFd(fd);
      }
    } catch {
      return undefined;
    }
  };
  const prog = readdirSync(dir).find((f) => f.startsWith('prog_'));
  const mapIds: Record<string, number> = {};
  for (const m of MAP_NAMES) {
    const v = id(`${dir}/${m}`);
    if (v !== undefined) mapIds[m] = v;
  }
  const programId = prog ? id(`${dir}/${prog}`) : undefined;
  return { pinDir: dir, ...(programId !== undefined ? { programId } : {}), mapIds };
}

/** The last bytes of a file (never the whole of a log that grew for months), opened without following a symlink or blocking on a FIFO. */
function readTail(path: string, bytes: number): string {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) return '';
    const len = Math.min(bytes, st.size);
    const buf = Buffer.alloc(len);
    const n = readSync(fd, buf, 0, len, st.size - len);
    const text = buf.toString('utf8', 0, n);
    // Drop the first, probably partial, line when the file was cut.
    return len < st.size ? text.slice(text.indexOf('\n') + 1) : text;
  } finally {
    closeSync(fd);
  }
}

function lastErrors(conf: NetConf, n = 5): string[] {
  if (!conf.logFile) return [];
  try {
    const lines = readTail(conf.logFile, 256 * 1024).trim().split('\n').slice(-2000);
    return lines
      .map((l) => {
        try {
          return JSON.parse(l) as { level?: string; time?: string; msg?: string; error?: string; containerId?: string };
        } catch {
          return undefined;
        }
      })
      .filter((l) => l?.level === 'error')
      .slice(-n)
      .map((l) => `${l!.time} ${l!.msg}${l!.containerId ? ` [${l!.containerId.slice(0, 12)}]` : ''}${l!.error ? `: ${l!.error}` : ''}`);
  } catch {
    return [];
  }
}

/** A count as people read it: exact up to a million, then a power of two (an IPv6 /64 has ~2^64 addresses). */
export function readableCount(n: string): string {
  const v = BigInt(n);
  if (v < 1_000_000n) return v.toLocaleString('en-US');
  const log2 = v.toString(2).length - 1;
  const lower = 1n << BigInt(log2);
  return v === lower ? `2^${log2}` : `~2^${v - lower > lower / 2n ? log2 + 1 : log2}`;
}

export function networkStatus(conf: NetConf, file: string): NetworkStatus {
  const problems: string[] = [];
  const st = readDatapathState(conf);
  let pool: NetworkStatus['pool'];
  if (conf.ipam?.type === 'host-local') {
    try {
      accessSync(conf.ipam.dataDir, constants.W_OK);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') problems.push(`IPAM data directory ${conf.ipam.dataDir} is not writable`);
    }
    try {
      pool = hostLocalUsage(conf).map((u) => ({ rangeSet: u.rangeSet, ranges: u.ranges, used: u.used, free: String(u.size - BigInt(u.used)) }));
      for (const p of pool) if (p.free === '0') problems.push(`range set ${p.rangeSet} (${p.ranges.join(', ')}) is exhausted`);
    } catch (e) {
      problems.push(`IPAM: ${(e as Error).message}`);
    }
  }
  if (conf.datapath === 'ebpf' && st?.mode === 'routed') problems.push(`eBPF required but unavailable: ${st.reason ?? 'unknown'}`);
  const blocked = policyBlocker(conf, true);
  if (blocked) problems.push(blocked);
  const unguarded = guardBlocker(conf);
  if (unguarded) problems.push(unguarded);
  const guardGone = guardMissing(conf);
  if (guardGone) problems.push(`guard: ${guardGone}`);
  let endpoints = hostLinksWithAlias(aliasPrefix(conf.name)).length;
  const eps = conf.datapath === 'routed' ? undefined : listEndpoints(conf.bpffsRoot, conf.name);
  if (eps) endpoints = Math.max(endpoints, new Set(eps.map((e) => e.ep.ifindex)).size);
  const be = conf.backend === 'none' ? undefined : readBackendState(conf);
  const warnings = [...(be?.problems ?? []), ...missingMaps(conf)];
  return {
    network: conf.name,
    file,
    ready: problems.length === 0,
    problems,
    warnings,
    datapath: {
      configured: conf.datapath,
      live: st?.mode ?? (conf.datapath === 'routed' ? 'routed' : 'not yet decided (no pod attached)'),
      ...(st?.attach ? { attach: st.attach } : {}),
      ...(st?.reason ? { reason: st.reason } : {}),
    },
    backend: conf.backend,
    ...(be ? { peers: { ...(be.device ? { device: be.device } : {}), mtu: be.mtu, ...(be.self ? { self: be.self } : {}), names: be.peers } } : {}),
    ...(pool ? { pool } : {}),
    endpoints,
    ...(conf.datapath !== 'routed' ? { bpf: bpfInfo(conf) } : {}),
    ...(conf.policy ? { policy: policyStatus(conf) } : {}),
    lastErrors: lastErrors(conf),
  };
}

function render(s: NetworkStatus): string {
  const lines = [
    `network ${s.network}  (${s.file})  ${s.ready ? 'READY' : 'NOT READY'}`,
    ...s.problems.map((p) => `  problem:   ${p}`),
    `  datapath:  ${s.datapath.live}${s.datapath.attach ? ` (${s.datapath.attach})` : ''}; configured ${s.datapath.configured}${s.datapath.reason ? `; ${s.datapath.reason}` : ''}`,
    `  backend:   ${s.backend}${s.peers ? ` (${s.peers.device ?? 'routes'}, MTU ${s.peers.mtu}, this node ${s.peers.self ?? '?'}, peers ${s.peers.names.join(' ') || '-'})` : ''}`,
    ...s.warnings.map((w) => `  warning:   ${w}`),
    ...(s.pool ?? []).map((p) => `  pool ${p.rangeSet}:    ${p.ranges.join(', ')}: ${p.used} used, ${readableCount(p.free)} free`),
    `  endpoints: ${s.endpoints}`,
    ...(s.bpf ? [`  bpf:       pins ${s.bpf.pinDir}; program id ${s.bpf.programId ?? '-'}; maps ${Object.entries(s.bpf.mapIds).map(([k, v]) => `${k}=${v}`).join(' ') || '-'}`] : []),
    ...(s.policy ? [policyLine(s.policy)] : []),
    ...(s.services ? [servicesStatusLine(s.services)] : []),
    ...s.lastErrors.map((e) => `  error:     ${e}`),
  ];
  return `${lines.join('\n')}\n`;
}

function policyLine(p: PolicyStatus): string {
  const sync = p.lastSync ? `last sync ${p.lastSync} (${p.policies} policies, ${p.identities} identities, ${p.policyEntries} policy entries, ${p.ipcacheEntries} ipcache entries)` : 'never synced: pods start isolated';
  const mem = p.mapMemory !== undefined ? `; maps ${(p.mapMemory / 1048576).toFixed(1)} MiB locked` : '';
  const used = p.entries ? `; entries ${Object.entries(p.entries).map(([m, u]) => `${m} ${u.used}/${u.available}`).join(', ')}` : '';
  const refused = p.refused ? `\n  policy:    REFUSED at ${p.refused.time}: ${p.refused.message}` : '';
  return `  policy:    ${p.enforced ? 'enforced' : 'NOT ENFORCED'}; ${sync}; dropped: ${p.drops.ingressPolicy} ingress, ${p.drops.egressPolicy} egress, ${p.drops.spoofed} spoofed${mem}${used}${refused}`;
}

export function runStatus(opts: { confDir: string; json: boolean }): number {
  const nets = twillNetworks(opts.confDir);
  const svc = servicesStatus(nets.flatMap((n) => (n.conf ? [n.conf] : [])));
  const out: (NetworkStatus | { file: string; error: string })[] = nets.map((n) => (n.conf ? { ...networkStatus(n.conf, n.file), ...(svc && n.conf.services ? { services: svc } : {}) } : { file: n.file, error: n.error ?? 'invalid' }));
  if (opts.json) process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
  else if (out.length === 0) process.stdout.write(`no twill network configured in ${opts.confDir}\n`);
  else for (const s of out) process.stdout.write('error' in s ? `config ${s.file}: ${s.error}\n` : render(s));
  return out.length > 0 && out.every((s) => 'ready' in s && s.ready) ? 0 : 1;
}
