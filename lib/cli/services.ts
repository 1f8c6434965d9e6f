// `twill services`: the frontends the kernel holds and the backends each one balances over, as
// `cilium service list` prints them, read from the node's pinned Service maps (not from what
// the sync meant to write) and named through the Service port id table. Also what `twill
// status` and `twill metrics` say about Services.
import { existsSync } from '../sys/fs.js';
import type { NetConf } from '../config/types.js';
import { LB_F_AFFINITY, LB_F_DROP } from '../bpf/abi-sock.generated.js';
import { cgroupLinkPin } from '../bpf/attach/cgroup.js';
import { linksDir, nodeDir } from '../bpf/loader.js';
import { SOCK_OBJECT } from '../bpf/manifest.js';
import { cgroupTag, openServiceMaps, serviceHookTarget } from '../datapath/services.js';
import { parseBeValue, parseFeKey, parseFeValue, u32 } from '../datapath/services-encode.js';
import { splitServicePortKey, type ServiceIdTable } from '../services/ids.js';
import { readServiceIds, readServicesSync, type ServicesSyncRecord } from '../state/files.js';
import { twillNetworks } from './netconfs.js';
import { servicesNetworks } from './sync-services.js';

export interface ServiceRow {
  id: number;
  frontend: { family: 4 | 6; address: string; port: number; protocol: string };
  scope: 'internal' | 'external';
  /** From the id table; absent when the id is not in it. */
  service?: { namespace: string; name: string; port: string };
  backends: { address: string; port: number; protocol: string; state: 'active' | 'terminating' }[];
  /** What a connection meets with no backend: reject (ECONNREFUSED) or drop (traffic policy Local, none local). */
  whenEmpty?: 'reject' | 'drop';
  affinityTimeoutSeconds?: number;
}

/** The frontends in the node's maps, sorted; undefined when the maps are not pinned. */
export function readServiceRows(bpffsRoot: string, table: ServiceIdTable): ServiceRow[] | undefined {
  const m = openServiceMaps(bpffsRoot);
  if (!m) return undefined;
  try {
    const fe = m.maps.get('lb_fe')!, slots = m.maps.get('lb_slots')!, be = m.maps.get('lb_be')!;
    const names = new Map(Object.entries(table.ids).map(([k, id]) => [id, splitServicePortKey(k)]));
    const rows: ServiceRow[] = [];
    for (const k of fe.keys()) {
      const kv = fe.lookup(k);
      if (!kv) continue;
      const key = parseFeKey(k), v = parseFeValue(kv);
      const backends: ServiceRow['backends'] = [];
      for (let i = 0; i < v.count + v.term; i++) {
        const id = slots.lookup(u32(v.base + i))?.readUInt32LE(0) ?? 0;
        const b = id ? be.lookup(u32(id)) : undefined;
        if (!b) continue;
        const p = parseBeValue(b);
        backends.push({ address: p.address, port: p.port, protocol: p.protocol, state: i < v.count ? 'active' : 'terminating' });
      }
      const n = names.get(v.svcId);
      const slash = n ? n.service.indexOf('/') : -1;
      rows.push({
        id: v.svcId, frontend: { family: key.family, address: key.address, port: key.port, protocol: key.protocol }, scope: key.scope,
        ...(n ? { service: { namespace: n.service.slice(0, slash), name: n.service.slice(slash + 1), port: n.portName } } : {}), backends,
        ...(backends.length === 0 ? { whenEmpty: v.flags & LB_F_DROP ? ('drop' as const) : ('reject' as const) } : {}),
        ...(v.flags & LB_F_AFFINITY ? { affinityTimeoutSeconds: v.affinityTimeout } : {}),
      });
    }
    const fkey = (r: ServiceRow): string => `${String(r.id).padStart(10, '0')}|${r.frontend.family}|${r.frontend.address}|${String(r.frontend.port).padStart(5, '0')}|${r.scope}`;
    return rows.sort((a, b) => (fkey(a) < fkey(b) ? -1 : fkey(a) > fkey(b) ? 1 : 0));
  } finally {
    m.close();
  }
}

export interface ServicesStatus {
  cgroupRoot: string;
  bpffsRoot: string;
  /** Hooks whose pinned link to cgroupRoot exists, of all the socket object's hooks. */
  hooks: { attached: number; of: number };
  frontends: number;
  backends: number;
  lastSync?: string;
  lastSyncAgeSeconds?: number;
  problems: string[];
}

const bracket = (a: string): string => (a.includes(':') ? `[${a}]` : a);

/** The node's Services as status and metrics see them; undefined when no network serves them. */
export function servicesStatus(confs: readonly NetConf[], now = Date.now()): ServicesStatus | undefined {
  const first = servicesNetworks(confs)[0];
  if (!first) return undefined;
  const problems: string[] = [];
  let cgroupRoot = first.cgroupRoot ?? '(cgroup v2 mount)';
  try {
    cgroupRoot = serviceHookTarget(first).cgroupRoot;
  } catch (e) {
    problems.push((e as Error).message);
  }
  const rec: ServicesSyncRecord | undefined = readServicesSync(first);
  const dir = linksDir(nodeDir(first.bpffsRoot));
  const hooks = SOCK_OBJECT.programs.filter((p) => p.attach.kind === 'cgroup');
  const attached = hooks.filter((p) => existsSync(cgroupLinkPin(dir, p.name, cgroupTag(cgroupRoot)))).length;
  let rows: ServiceRow[] | undefined;
  try {
    rows = readServiceRows(first.bpffsRoot, readServiceIds(first));
  } catch (e) {
    problems.push(`Service maps: ${(e as Error).message}`);
  }
  if (!rec) problems.push('never synced: no Service is translated until twill sync runs');
  else problems.push(...rec.problems);
  if (rec && attached < hooks.length) problems.push(`${hooks.length - attached} of ${hooks.length} socket hooks not attached at ${cgroupRoot}`);
  return {
    cgroupRoot, bpffsRoot: first.bpffsRoot, hooks: { attached, of: hooks.length },
    frontends: rows?.length ?? 0, backends: rows?.reduce((s, r) => s + r.backends.length, 0) ?? 0,
    ...(rec ? { lastSync: rec.time, lastSyncAgeSeconds: Math.max(0, Math.round((now - Date.parse(rec.time)) / 1000)) } : {}),
    problems,
  };
}

export function servicesStatusLine(s: ServicesStatus): string {
  const sync = s.lastSync ? `last sync ${s.lastSync} (${s.lastSyncAgeSeconds}s ago)` : 'never synced';
  return [`  services:  hooks ${s.hooks.attached}/${s.hooks.of} attached at ${s.cgroupRoot}; ${s.frontends} frontends, ${s.backends} backends programmed; ${sync}`, ...s.problems.map((p) => `  services:  problem: ${p}`)].join('\n');
}

function render(rows: ServiceRow[]): string {
  const head = ['ID', 'Frontend', 'Scope', 'Service', 'Backend'];
  const lines: string[][] = [head];
  for (const r of rows) {
    const svc = r.service ? `${r.service.namespace}/${r.service.name}${r.service.port ? `:${r.service.port}` : ''}` : '-';
    const fe = `${bracket(r.frontend.address)}:${r.frontend.port}/${r.frontend.protocol}`;
    const bes = r.backends.length === 0 ? [`(none: ${r.whenEmpty ?? 'reject'})`] : r.backends.map((b, i) => `${i + 1} => ${bracket(b.address)}:${b.port}/${b.protocol} (${b.state})`);
    const scope = `${r.scope}${r.affinityTimeoutSeconds ? `, affinity ${r.affinityTimeoutSeconds}s` : ''}`;
    bes.forEach((b, i) => lines.push(i === 0 ? [String(r.id), fe, scope, svc, b] : ['', '', '', '', b]));
  }
  const w = head.map((_, c) => Math.max(...lines.map((l) => l[c]!.length)));
  return `${lines.map((l) => l.map((x, c) => (c === l.length - 1 ? x : x.padEnd(w[c]!))).join('   ')).join('\n')}\n`;
}

export function runServices(o: { confDir: string; json: boolean }): number {
  const confs = twillNetworks(o.confDir).flatMap((n) => (n.conf ? [n.conf] : []));
  const first = servicesNetworks(confs)[0];
  if (!first) {
    process.stdout.write(o.json ? '[]\n' : `no twill network in ${o.confDir} serves Services ("services": {"type": "k8s"})\n`);
    return 1;
  }
  const rows = readServiceRows(first.bpffsRoot, readServiceIds(first));
  if (o.json) process.stdout.write(`${JSON.stringify(rows ?? [], null, 2)}\n`);
  else if (!rows) process.stdout.write(`no Service maps under ${first.bpffsRoot}: twill sync has not programmed Services yet\n`);
  else process.stdout.write(render(rows));
  return rows ? 0 : 1;
}
