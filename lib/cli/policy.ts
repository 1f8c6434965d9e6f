// `twill policy show POD` and `twill policy why SRC DST PORT/PROTO`: what the kernel holds for
// a pod and the verdict it would give, named by the policies of the last sync. The verdicts
// come from lookups in the network's own tries, so they are the data path's, not a model's.
import type { NetConf } from '../config/types.js';
import { formatAddr, parseAddr, type Addr } from '../net/ip.js';
import { openNetwork } from '../bpf/loader.js';
import { mapKeys, mapLookup } from '../bpf/sys.js';
import {
  CLASS_CLUSTER_POD, EP_F_POL_IN, EP_F_POL_OUT, EP_VALUE_SIZE, ID_ANY, ID_HOST, ID_UNKNOWN, ID_WORLD, IPC_F_HOST, IPC_F_POD, IPC_VALUE_SIZE, POL_EGRESS, POL_INGRESS, POL_KEY_SIZE, POL_VALUE_SIZE,
  epKey, ipcKey, parseEpValue, parseIpcValue, parsePolKey, polKey, type MapName, type PolKey,
} from '../bpf/layout.js';
import { readEndpoints, readIdTable, readPodNames, readPodStart, readSyncRecord, type EndpointRecord } from '../state/files.js';
import { PROTO } from '../policy/compile.js';
import { twillNetworks } from './netconfs.js';

export interface PolicyOpts {
  confDir: string;
  network?: string | undefined;
  json: boolean;
}

const PROTO_NAME: Record<number, string> = { 6: 'TCP', 17: 'UDP', 132: 'SCTP', 1: 'ICMP', 58: 'ICMPv6' };

class Problem extends Error {}

function policyNetwork(o: PolicyOpts): NetConf {
  const confs = twillNetworks(o.confDir).flatMap((n) => (n.conf?.policy ? [n.conf] : []));
  const pick = o.network ? confs.filter((c) => c.name === o.network) : confs;
  if (pick.length === 0) throw new Problem(o.network ? `network ${o.network} does not enforce NetworkPolicy (or is not configured in ${o.confDir})` : `no network in ${o.confDir} enforces NetworkPolicy`);
  if (pick.length > 1) throw new Problem(`several networks enforce NetworkPolicy (${pick.map((c) => c.name).join(', ')}): name one with --network`);
  return pick[0]!;
}

/** What the last sync knew, for naming things. */
class Names {
  readonly endpoints: Map<string, EndpointRecord>;
  readonly pods: Record<string, string>;
  readonly policies: string[];
  readonly blocks: { cidr: string; except: string[] }[];
  private readonly keys = new Map<number, string>();

  constructor(readonly conf: NetConf) {
    this.endpoints = readEndpoints(conf);
    this.pods = readPodNames(conf);
    const rec = readSyncRecord(conf);
    this.policies = rec?.policies ?? [];
    this.blocks = rec?.blocks ?? [];
    for (const [k, id] of Object.entries(readIdTable(conf)?.ids ?? {})) this.keys.set(id, k);
  }

  /** An address, a local pod's "namespace/name", or any pod the last sync read. */
  resolve(s: string): { addr: Addr; name?: string; endpoint?: EndpointRecord } {
    const a = parseAddr(s);
    if (a) {
      const ep = [...this.endpoints.values()].find((e) => e.addrs.includes(formatAddr(a)));
      const name = ep ? `${ep.namespace}/${ep.name}` : this.pods[formatAddr(a)];
      return { addr: a, ...(name ? { name } : {}), ...(ep ? { endpoint: ep } : {}) };
    }
    const ep = [...this.endpoints.values()].find((e) => `${e.namespace}/${e.name}` === s);
    const ip = ep?.addrs[0] ?? Object.entries(this.pods).find(([, n]) => n === s)?.[0];
    const addr = ip ? parseAddr(ip) : undefined;
    if (!addr) throw new Problem(`${s}: not an address, and no pod of that name is known to the last sync or attached here`);
    return { addr, name: s, ...(ep ? { endpoint: ep } : {}) };
  }

  policy = (i: number): string => this.policies[i] ?? `#${i}`;

  identity(id: number): string {
    if (id === ID_ANY) return 'any peer';
    if (id === ID_HOST) return 'this node';
    if (id === ID_WORLD) return 'world (no pod, no ipBlock)';
    if (id === ID_UNKNOWN) return 'a pod unknown to the last sync';
    if (id === CLASS_CLUSTER_POD) return 'pods of any namespace';
    const k = this.keys.get(id);
    if (!k) return `identity ${id}`;
    if (k.startsWith('ns:')) return `pods of ${(JSON.parse(k.slice(3)) as [string])[0]}, any labels`;
    if (k.startsWith('cidr:')) return `ipBlock ${k.slice(5).split(',').map((b) => this.block(Number(b))).join(', ')}`;
    const [ns, , labels, , blocks] = JSON.parse(k) as [string, unknown, [string, string][], unknown, number[]];
    const l = labels.map(([a, b]) => `${a}=${b}`).join(',') || '(no labels)';
    return `pods of ${ns} with ${l}${blocks.length ? ` in ${blocks.map((b) => this.block(b)).join(', ')}` : ''}`;
  }

  private block(i: number): string {
    const b = this.blocks[i];
    return b ? `${b.cidr}${b.except.length ? ` except ${b.except.join(' ')}` : ''}` : `block ${i}`;
  }
}

type Maps = ReadonlyMap<MapName, number>;

function withMaps<T>(conf: NetConf, fn: (m: Maps) => T): T {
  const net = openNetwork(conf.bpffsRoot, conf.name);
  if (!net) throw new Problem(`network ${conf.name} has no pod attached on this host (nothing pinned under ${conf.bpffsRoot}/twill/${conf.name})`);
  const lacking = net.missing.filter((m) => m === 'endpoints' || m === 'ipcache' || m === 'policy');
  if (lacking.length > 0) {
    net.close();
    throw new Problem(`network ${conf.name} has no ${lacking.join(', ')} map pinned yet (the next pod's ADD creates it)`);
  }
  try {
    return fn(net.maps);
  } finally {
    net.close();
  }
}

function peerOf(m: Maps, a: Addr): { identity: number; host: boolean; ns: number } {
  const v = Buffer.alloc(IPC_VALUE_SIZE);
  if (!mapLookup(m.get('ipcache')!, ipcKey(a), v)) return { identity: ID_WORLD, host: false, ns: 0 };
  const e = parseIpcValue(v);
  return { identity: e.identity, host: (e.flags & IPC_F_HOST) !== 0, ns: e.flags & IPC_F_POD ? e.ns ?? 0 : 0 };
}

function flagsOf(m: Maps, a: Addr): { ifindex: number; flags: number; slot: number } | undefined {
  const v = Buffer.alloc(EP_VALUE_SIZE);
  if (!mapLookup(m.get('endpoints')!, epKey(a), v)) return undefined;
  const e = parseEpValue(v);
  return { ifindex: e.ifindex, flags: e.flags, slot: e.policySlot ?? 0 };
}

/** The lookups the data path makes (bpf/lib/policy.h allowed()): the allowing policy's index and the identity or class its entry names. */
function lookup(m: Maps, slot: number, dir: number, peer: { identity: number; ns: number }, proto: number, port: number): { policy: number; identity: number } | undefined {
  const v = Buffer.alloc(POL_VALUE_SIZE);
  for (const id of [peer.identity, ...(peer.ns ? [peer.ns, CLASS_CLUSTER_POD] : []), ID_ANY]) {
    if (mapLookup(m.get('policy')!, polKey({ slot, identity: id, dir, proto, protoBits: 8, port, portBits: 16 }), v)) return { policy: v.readUInt32LE(0), identity: id };
  }
  return undefined;
}

/** Port blocks of one (peer, protocol, policy) merged back into the ranges they came from. */
function portsText(ks: PolKey[]): string {
  const k0 = ks[0]!;
  if (!k0.protoBits) return 'any protocol, any port';
  const p = PROTO_NAME[k0.proto] ?? `protocol ${k0.proto}`;
  if (ks.some((k) => !k.portBits)) return `${p} any port`;
  const ranges: [number, number][] = [];
  for (const k of [...ks].sort((a, b) => a.port - b.port)) {
    const last = k.port + 2 ** (16 - k.portBits) - 1;
    const prev = ranges[ranges.length - 1];
    if (prev && prev[1] + 1 >= k.port) prev[1] = Math.max(prev[1], last);
    else ranges.push([k.port, last]);
  }
  return `${p} ${ranges.map(([a, b]) => (a === b ? String(a) : `${a}-${b}`)).join(',')}`;
}

function groupBy<T>(xs: T[], key: (x: T) => string): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const x of xs) {
    const k = key(x);
    out.set(k, [...(out.get(k) ?? []), x]);
  }
  return out;
}

export interface ShowOut {
  pod: string;
  addrs: string[];
  identity: { id: number; is: string };
  ingress: Direction;
  egress: Direction;
}

interface Direction {
  enforced: boolean;
  selectedBy: string[];
  allow: { peer: string; identity: number; peers: string[]; ports: string; policy: string }[];
}

export function runPolicyShow(o: PolicyOpts & { pod: string }): number {
  try {
    const conf = policyNetwork(o);
    const names = new Names(conf);
    const who = names.resolve(o.pod);
    if (!who.endpoint) throw new Problem(`${o.pod} is not attached on this host: its policy is enforced on its own node (twill policy show there)`);
    const ep = who.endpoint;
    const out = withMaps(conf, (m): ShowOut => {
      const me = flagsOf(m, who.addr);
      const id = peerOf(m, who.addr).identity;
      const byIdentity = new Map<number, string[]>();
      for (const [ip, n] of Object.entries(names.pods)) {
        const a = parseAddr(ip);
        if (!a) continue;
        // A pod counts under its identity and the classes it falls in (its namespace's, the cluster's).
        const p = peerOf(m, a);
        for (const id of [p.identity, ...(p.ns ? [p.ns, CLASS_CLUSTER_POD] : [])]) byIdentity.set(id, [...(byIdentity.get(id) ?? []), n]);
      }
      const v = Buffer.alloc(POL_VALUE_SIZE);
      const entries = me?.slot ? [...mapKeys(m.get('policy')!, POL_KEY_SIZE)].map(parsePolKey).filter((k) => k.slot === me.slot) : [];
      const pp = readPodStart(conf, `${ep.namespace}/${ep.name}`);
      const dir = (d: number, flag: number, sel: number[] | undefined): Direction => ({
        enforced: ((me?.flags ?? 0) & flag) !== 0,
        selectedBy: (sel ?? []).map(names.policy),
        allow: [...groupBy(entries.filter((k) => k.dir === d), (k) => {
          mapLookup(m.get('policy')!, polKey(k), v);
          return `${k.identity}/${k.protoBits ? k.proto : '*'}/${v.readUInt32LE(0)}`;
        })].map(([g, ks]) => {
          const k = ks[0]!;
          const peers = k.identity === ID_ANY ? [] : [...new Set(byIdentity.get(k.identity) ?? [])].sort();
          return { peer: names.identity(k.identity), identity: k.identity, peers, ports: portsText(ks), policy: names.policy(Number(g.split('/')[2])) };
        }).sort((a, b) => (a.peer < b.peer ? -1 : a.peer > b.peer ? 1 : 0)),
      });
      return {
        pod: `${ep.namespace}/${ep.name}`, addrs: ep.addrs, identity: { id, is: names.identity(id) },
        ingress: dir(POL_INGRESS, EP_F_POL_IN, pp?.selectedBy.ingress), egress: dir(POL_EGRESS, EP_F_POL_OUT, pp?.selectedBy.egress),
      };
    });
    if (o.json) {
      process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
      return 0;
    }
    const lines = [`pod ${out.pod} (${out.addrs.join(', ')}), identity ${out.identity.id}: ${out.identity.is}`];
    for (const [name, d] of [['ingress', out.ingress], ['egress', out.egress]] as const) {
      if (!d.enforced) {
        lines.push(`${name}: unrestricted (no policy selects the pod for ${name})`);
        continue;
      }
      lines.push(`${name}: selected by ${d.selectedBy.join(', ') || '(none known: isolated until a sync knows the pod)'}; allowed:${d.allow.length ? '' : ' nothing'}`);
      const w = Math.max(...d.allow.map((a) => a.peer.length), 4);
      for (const a of d.allow) lines.push(`  ${name === 'ingress' ? 'from' : 'to  '} ${a.peer.padEnd(w)}  ${a.ports.padEnd(22)}  ${a.policy}${a.peers.length ? `  [${a.peers.slice(0, 4).join(', ')}${a.peers.length > 4 ? `, +${a.peers.length - 4}` : ''}]` : ''}`);
    }
    lines.push('(this node and replies of allowed connections always pass)');
    process.stdout.write(`${lines.join('\n')}\n`);
    return 0;
  } catch (e) {
    if (!(e instanceof Problem)) throw e;
    process.stderr.write(`twill policy: ${e.message}\n`);
    return 1;
  }
}

export interface WhyOut {
  from: string;
  to: string;
  port: number;
  protocol: string;
  verdict: 'ALLOWED' | 'DENIED';
  egress: Step;
  ingress: Step;
}

interface Step {
  verdict: 'allowed' | 'denied' | 'unrestricted' | 'elsewhere';
  reason: string;
  policy?: string;
}

export function runPolicyWhy(o: PolicyOpts & { from: string; to: string; port: string }): number {
  try {
    const conf = policyNetwork(o);
    const m = /^(\d{1,5})(?:\/(tcp|udp|sctp))?$/i.exec(o.port);
    const portNum = m ? Number(m[1]) : NaN;
    if (!m || portNum < 1 || portNum > 65535) throw new Problem(`"${o.port}" is not PORT/PROTOCOL (e.g. 80/tcp, 53/udp)`);
    const protocol = (m[2] ?? 'tcp').toUpperCase() as keyof typeof PROTO;
    const names = new Names(conf);
    const src = names.resolve(o.from), dst = names.resolve(o.to);
    if (src.addr.family !== dst.addr.family) throw new Problem(`${o.from} and ${o.to} are of different address families`);
    const label = (w: typeof src, s: string): string => (w.name && w.name !== s ? `${s} (${w.name})` : w.name && w.name === s ? `${s} (${formatAddr(w.addr)})` : s);
    const out = withMaps(conf, (maps): WhyOut => {
      const step = (side: typeof src, peer: Addr, dir: number, flag: number, who: string): Step => {
        const ep = flagsOf(maps, side.addr);
        if (!ep) return { verdict: 'elsewhere', reason: `${who} is not a pod of this node: its own node decides` };
        if (!(ep.flags & flag)) return { verdict: 'unrestricted', reason: `no policy selects ${who} for ${dir === POL_INGRESS ? 'ingress' : 'egress'}` };
        const p = peerOf(maps, peer);
        if (dir === POL_INGRESS && p.host) return { verdict: 'allowed', reason: 'traffic from this node always passes (kubelet probes)' };
        const hit = lookup(maps, ep.slot, dir, p, PROTO[protocol], portNum);
        const pp = side.endpoint ? readPodStart(conf, `${side.endpoint.namespace}/${side.endpoint.name}`) : undefined;
        const sel = (dir === POL_INGRESS ? pp?.selectedBy.ingress : pp?.selectedBy.egress)?.map(names.policy) ?? [];
        if (hit !== undefined) return { verdict: 'allowed', reason: `${names.policy(hit.policy)} allows ${names.identity(hit.identity === ID_ANY ? p.identity : hit.identity)} on ${portNum}/${protocol}`, policy: names.policy(hit.policy) };
        return { verdict: 'denied', reason: `${who} is selected by ${sel.join(', ') || '(no known policy: isolated until a sync knows it)'}, and none allows ${names.identity(p.identity)} (identity ${p.identity}) on ${portNum}/${protocol}` };
      };
      const egress = step(src, dst.addr, POL_EGRESS, EP_F_POL_OUT, label(src, o.from));
      const ingress = step(dst, src.addr, POL_INGRESS, EP_F_POL_IN, label(dst, o.to));
      return {
        from: label(src, o.from), to: label(dst, o.to), port: portNum, protocol,
        verdict: egress.verdict === 'denied' || ingress.verdict === 'denied' ? 'DENIED' : 'ALLOWED', egress, ingress,
      };
    });
    if (o.json) process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
    else process.stdout.write(`${out.from} -> ${out.to} ${out.port}/${out.protocol}: ${out.verdict}\n  egress:  ${out.egress.reason}\n  ingress: ${out.ingress.reason}\n`);
    return out.verdict === 'ALLOWED' ? 0 : 1;
  } catch (e) {
    if (!(e instanceof Problem)) throw e;
    process.stderr.write(`twill policy: ${e.message}\n`);
    return 2;
  }
}

