// `twill metrics`: this node's counters in Prometheus text exposition, printed or written
// atomically for node_exporter's textfile collector (--textfile DIR): no port is opened.
import type { NetConf } from '../config/types.js';
import { endpointTable, type EndpointRow } from '../datapath/ebpf.js';
import { readBudget, readEndpoints, readServiceIds, readServicesSync, readSyncRecord } from '../state/files.js';
import { hostLocalUsage } from '../ipam/hostlocal.js';
import { openNetwork } from '../bpf/loader.js';
import { FLOW_KEY_SIZE } from '../bpf/layout.js';
import { lostEvents } from '../bpf/flows.js';
import { mapKeys } from '../bpf/sys.js';
import { hostLinksWithAlias } from '../sys/podlink.js';
import type { Link } from '../sys/rtnl.js';
import { aliasPrefix } from '../naming.js';
import { writeAtomic } from '../fsx.js';
import { twillNetworks } from './netconfs.js';
import { readServiceRows } from './services.js';
import { servicesNetworks } from './sync-services.js';

type Labels = Record<string, string>;
interface Family {
  help: string;
  type: 'counter' | 'gauge';
  samples: { labels: Labels; value: bigint | number }[];
}

const escape = (v: string): string => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

export function exposition(families: Map<string, Family>): string {
  let out = '';
  for (const [name, f] of families) {
    if (f.samples.length === 0) continue;
    out += `# HELP ${name} ${f.help}\n# TYPE ${name} ${f.type}\n`;
    for (const s of f.samples) {
      const l = Object.entries(s.labels).map(([k, v]) => `${k}="${escape(v)}"`).join(',');
      out += `${name}${l ? `{${l}}` : ''} ${String(s.value)}\n`;
    }
  }
  return out;
}

class Registry {
  readonly families = new Map<string, Family>();
  add(name: string, type: Family['type'], help: string, labels: Labels, value: bigint | number): void {
    let f = this.families.get(name);
    if (!f) this.families.set(name, (f = { help, type, samples: [] }));
    f.samples.push({ labels, value });
  }
}

function endpointMetrics(r: Registry, conf: NetConf, rows: EndpointRow[]): void {
  const pods = readEndpoints(conf);
  const seen = new Set<number>();
  for (const row of rows) {
    if (seen.has(row.hostIndex) || !row.counters) continue;
    seen.add(row.hostIndex);
    const rec = pods.get(row.hostIfName);
    const l = { network: conf.name, namespace: rec?.namespace ?? '', pod: rec?.name ?? '', interface: row.hostIfName };
    const c = row.counters;
    const fwd = 'Packets and bytes from the pod forwarded by the tc program: path "fast" redirected straight into the destination pod, "stack" handed to the kernel stack.';
    r.add('twill_forwarded_packets_total', 'counter', fwd, { ...l, path: 'fast' }, c.redirectPackets);
    r.add('twill_forwarded_packets_total', 'counter', fwd, { ...l, path: 'stack' }, c.passPackets);
    r.add('twill_forwarded_bytes_total', 'counter', fwd, { ...l, path: 'fast' }, c.redirectBytes);
    r.add('twill_forwarded_bytes_total', 'counter', fwd, { ...l, path: 'stack' }, c.passBytes);
    const drop = 'Packets and bytes the tc programs dropped, by Hubble drop reason and the pod\'s direction.';
    for (const [reason, direction, p, b] of [
      ['INVALID_SOURCE_IP', 'egress', c.spoofedPackets, c.spoofedBytes],
      ['POLICY_DENIED', 'ingress', c.policyInPackets, c.policyInBytes],
      ['POLICY_DENIED', 'egress', c.policyOutPackets, c.policyOutBytes],
    ] as const) {
      r.add('twill_dropped_packets_total', 'counter', drop, { ...l, reason, direction }, p);
      r.add('twill_dropped_bytes_total', 'counter', drop, { ...l, reason, direction }, b);
    }
    r.add('twill_flow_records_suppressed_total', 'counter', 'New flows from or to the pod over its veth\'s record budget: counted, neither kept in the flow history nor an event.', l, c.recordsSuppressed);
  }
}

function networkMetrics(r: Registry, conf: NetConf, rows: EndpointRow[], links: readonly Link[]): void {
  const net = { network: conf.name };
  const mine = rows.filter((x) => x.network === conf.name);
  const prefix = aliasPrefix(conf.name);
  const endpoints = Math.max(links.filter((l) => l.alias.startsWith(prefix)).length, new Set(mine.map((x) => x.hostIndex)).size);
  r.add('twill_endpoints', 'gauge', 'Pod interfaces of the network attached on this node.', net, endpoints);
  if (conf.ipam?.type === 'host-local') {
    for (const u of hostLocalUsage(conf)) {
      const l = { ...net, range_set: String(u.rangeSet), ranges: u.ranges.join(',') };
      const help = 'Addresses of each IPAM range set on this node, used and free.';
      r.add('twill_pool_addresses', 'gauge', help, { ...l, state: 'used' }, u.used);
      r.add('twill_pool_addresses', 'gauge', help, { ...l, state: 'free' }, u.size - BigInt(u.used));
    }
  }
  endpointMetrics(r, conf, mine);
  const maps = conf.datapath === 'routed' ? undefined : openNetwork(conf.bpffsRoot, conf.name);
  if (maps) {
    try {
      const observer = maps.maps.get('observer'), flows = maps.maps.get('flows');
      if (observer !== undefined) r.add('twill_events_lost_total', 'counter', 'Flow events the ring buffer had no room for while a reader was attached.', net, lostEvents(observer));
      let n = 0;
      if (flows !== undefined) for (const _k of mapKeys(flows, FLOW_KEY_SIZE)) n++;
      if (flows !== undefined) r.add('twill_flows', 'gauge', 'Flows in the kernel\'s flow history (twill observe).', net, n);
    } finally {
      maps.close();
    }
  }
  if (conf.policy) {
    const rec = readSyncRecord(conf);
    if (rec) {
      r.add('twill_policy_last_sync_timestamp_seconds', 'gauge', 'When twill sync last computed the network\'s NetworkPolicy, in seconds since the epoch.', net, Date.parse(rec.time) / 1000);
      r.add('twill_policies', 'gauge', 'NetworkPolicies of the last sync.', net, rec.policies.length);
    }
    const budget = readBudget(conf);
    if (budget) {
      const help = 'Entries of the network\'s policy maps: "used" by the state applied, "available" (max_entries), "needed" at its peak by the policy set last refused.';
      for (const [map, u] of Object.entries(budget.maps)) {
        r.add('twill_policy_map_entries', 'gauge', help, { ...net, map, state: 'used' }, u.used);
        r.add('twill_policy_map_entries', 'gauge', help, { ...net, map, state: 'available' }, u.available);
        if (budget.refused?.map === map) r.add('twill_policy_map_entries', 'gauge', help, { ...net, map, state: 'needed' }, budget.refused.needed);
      }
      r.add('twill_policy_sync_refused', 'gauge', 'Whether the last sync\'s policy set was refused for not fitting the maps (the state before stays enforced), with the policy asking most.', { ...net, policy: budget.refused?.policy ?? '' }, budget.refused ? 1 : 0);
    }
  }
}

/** Node-wide: the Services programmed in the kernel's maps and when the sync last computed them. */
function serviceMetrics(r: Registry, confs: NetConf[]): void {
  const first = servicesNetworks(confs)[0];
  if (!first) return;
  let rows: NonNullable<ReturnType<typeof readServiceRows>> = [];
  try {
    rows = readServiceRows(first.bpffsRoot, readServiceIds(first)) ?? [];
  } catch {
    // maps half there: the gauges say none, status names the problem
  }
  r.add('twill_services_frontends', 'gauge', 'Service frontends (address, port, protocol, scope) programmed in the node\'s Service maps.', {}, rows.length);
  const help = 'Backends of the programmed Service frontends, by state (active: ready; terminating: serving and terminating, used only while no ready one is left).';
  for (const state of ['active', 'terminating'] as const) r.add('twill_services_backends', 'gauge', help, { state }, rows.reduce((s, x) => s + x.backends.filter((b) => b.state === state).length, 0));
  const rec = readServicesSync(first);
  if (rec) r.add('twill_services_sync_timestamp_seconds', 'gauge', 'When twill sync last programmed the node\'s Services, in seconds since the epoch.', {}, Date.parse(rec.time) / 1000);
}

export function collect(confDir: string): string {
  const r = new Registry();
  const nets = twillNetworks(confDir);
  const links = hostLinksWithAlias('');
  const roots = new Map<string, EndpointRow[]>();
  for (const n of nets) {
    if (!n.conf) continue;
    const root = n.conf.bpffsRoot;
    if (!roots.has(root)) roots.set(root, endpointTable(root, links));
    networkMetrics(r, n.conf, roots.get(root)!.filter((x) => x.network === n.conf!.name), links);
  }
  serviceMetrics(r, nets.flatMap((n) => (n.conf ? [n.conf] : [])));
  r.add('twill_config_errors', 'gauge', 'twill entries of the CNI configuration directory that do not load.', {}, nets.filter((n) => !n.conf).length);
  return exposition(r.families);
}

function writeTextfile(dir: string, text: string): void {
  // node_exporter reads *.prom only: the temporary name it never sees, then one rename.
  writeAtomic(`${dir.replace(/\/+$/, '')}/twill.prom`, text, false, false, 0o644);
}

export async function runMetrics(o: { confDir: string; textfile?: string | undefined; every?: number | undefined }): Promise<number> {
  const once = (): void => {
    const text = collect(o.confDir);
    if (o.textfile === undefined) process.stdout.write(text);
    else writeTextfile(o.textfile, text);
  };
  once();
  if (o.every === undefined) return 0;
  // The DaemonSet's loop: a failed round is reported and the next one tried.
  return new Promise<number>((resolve) => {
    const timer = setInterval(() => {
      try {
        once();
      } catch (e) {
        process.stderr.write(`twill metrics: ${(e as Error).message}\n`);
      }
    }, o.every! * 1000);
    const stop = (): void => {
      clearInterval(timer);
      resolve(0);
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
}
