// From cluster objects to what the kernel holds: an identity per distinct (namespace,
// labels, named ports, ipBlock membership), an ipcache entry per known address, and the
// allowances of each pod this node serves, keyed by peer identity, protocol and port block.
// Pure: no kernel, no files. Identities keep their numbers across syncs (idTable).
import { bits, contains, formatCidr, network, parseAddr, parseCidr, type Addr, type Cidr } from '../net/ip.js';
import type { ClusterObjects, ContainerPort, Direction, Labels, Peer, PodObj, PolicyObj, Protocol, Rule } from './objects.js';
import { matches } from './selector.js';
import { portBlocks } from './ports.js';

export const ID_ANY = 0, ID_HOST = 1, ID_WORLD = 2, ID_UNKNOWN = 3;
const FIRST_ID = 256;

export const PROTO: Record<Protocol, number> = { TCP: 6, UDP: 17, SCTP: 132 };

export interface IdTable {
  next: number;
  ids: Record<string, number>;
}

export interface Identity {
  id: number;
  /** Pods: their namespace, its labels, theirs and their named ports. Absent for addresses outside any pod. */
  pod?: { namespace: string; nsLabels: Labels; labels: Labels; ports: ContainerPort[] };
  /** Indexes of the ipBlocks (Compiled.blocks) holding the address. */
  blocks: number[];
}

export interface Allow {
  identity: number;
  /** 0 with protoBits 0: any protocol. */
  proto: number;
  protoBits: 0 | 8;
  port: number;
  /** 0: any port of the protocol. */
  portBits: number;
  /** Index into Compiled.policies. */
  policy: number;
}

export interface PodPolicy {
  /** undefined: no policy selects the pod for that direction (unrestricted). */
  ingress?: Allow[];
  egress?: Allow[];
  /** The pod's identity for an address in each prefix (longest match): ADD picks its own. */
  chunks: { cidr: string; identity: number }[];
  /** Indexes (Compiled.policies) of the policies that select the pod, per direction. */
  selectedBy: { ingress: number[]; egress: number[] };
}

export interface IpcacheEntry {
  cidr: Cidr;
  identity: number;
  host: boolean;
}

export interface Compiled {
  identities: Map<number, Identity>;
  table: IdTable;
  ipcache: IpcacheEntry[];
  /** By "namespace/name": the pods this node serves or is about to. */
  pods: Map<string, PodPolicy>;
  /** "namespace/name" of each policy, by index. */
  policies: string[];
  blocks: { cidr: string; except: string[] }[];
  problems: string[];
  /**
   * A pod of another node changed (labels, addresses): its addresses' identities, and the
   * allowances a new identity adds to this node's pods — work that grows with this node's
   * rules, not with the cluster. Everything else of the compile holds until the next one.
   */
  remotePod(pod: PodObj): PodDelta;
}

export interface PodDelta {
  ipcache: IpcacheEntry[];
  allows: { pod: string; dir: 'ingress' | 'egress'; allow: Allow }[];
  table: IdTable;
}

export interface NodeView {
  /** Pods of this node ("namespace/name"). */
  local: ReadonlySet<string>;
  /** This node's own addresses: their traffic into pods always passes. */
  hostAddrs: Addr[];
  /** The pod address ranges of this node (where a new local pod's address comes from). */
  ranges: Cidr[];
}

interface Block {
  cidr: Cidr;
  except: Cidr[];
}

const hostCidr = (a: Addr): Cidr => ({ addr: a, prefix: bits(a.family) });
const within = (outer: Cidr, inner: Cidr): boolean => outer.addr.family === inner.addr.family && outer.prefix <= inner.prefix && contains(outer, inner.addr);

function sortedLabels(l: Labels): [string, string][] {
  return Object.entries(l).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

class Identities {
  readonly byId = new Map<number, Identity>();
  private readonly used: Record<string, number> = {};
  private next: number;
  constructor(private readonly prev: IdTable) {
    this.next = Math.max(prev.next, FIRST_ID);
  }

  get(key: string, make: (id: number) => Identity): number {
    const had = this.used[key];
    if (had !== undefined) return had;
    // A number is never given to a different meaning (a peer's old allowances would briefly apply).
    const id = this.prev.ids[key] ?? this.next++;
    this.used[key] = id;
    this.byId.set(id, make(id));
    return id;
  }

  table(): IdTable {
    return { next: this.next, ids: this.used };
  }
}

/**
 * Compiling with what an earlier sync knew instead of the whole cluster (ADD of a pod that
 * sync never heard of): the identities of its table stand for the cluster's pods, its blocks
 * keep their indexes.
 */
export interface Seed {
  blocks: { cidr: string; except: string[] }[];
}

export function compile(c: ClusterObjects, node: NodeView, prev: IdTable = { next: FIRST_ID, ids: {} }, seed?: Seed): Compiled {
  const problems: string[] = [];
  const policies = [...c.policies.values()].sort((a, b) => (a.namespace + '/' + a.name < b.namespace + '/' + b.name ? -1 : 1));
  const policyIndex = new Map(policies.map((p, i) => [p, i]));

  // Every distinct ipBlock of every policy.
  const blocks: Block[] = [];
  const blockIndex = new Map<string, number>();
  const blockOf = (b: NonNullable<Peer['ipBlock']>, where: string): number | undefined => {
    const key = `${b.cidr} ${[...b.except].sort().join(' ')}`;
    const have = blockIndex.get(key);
    if (have !== undefined) return have;
    const cidr = parseCidr(b.cidr);
    const except = b.except.map(parseCidr);
    if (!cidr || except.some((e) => !e || !within(network(cidr), network(e)))) {
      problems.push(`${where}: invalid ipBlock ${key.trim()}: ignored (matches nothing)`);
      return undefined;
    }
    blocks.push({ cidr: network(cidr), except: except.map((e) => network(e!)) });
    blockIndex.set(key, blocks.length - 1);
    return blocks.length - 1;
  };
  for (const b of seed?.blocks ?? []) blockOf(b, 'the last sync');
  const peerBlocks = new Map<Peer, number | undefined>();
  for (const p of policies) {
    for (const r of [...p.ingress, ...p.egress]) {
      for (const peer of r.peers ?? []) if (peer.ipBlock) peerBlocks.set(peer, blockOf(peer.ipBlock, `${p.namespace}/${p.name}`));
    }
  }
  const blocksOf = (x: Cidr): number[] => blocks.flatMap((b, i) => (within(b.cidr, x) && !b.except.some((e) => within(e, x)) ? [i] : []));

  const ids = new Identities(prev);
  const cidrIdentity = (bs: number[]): number => (bs.length === 0 ? ID_WORLD : ids.get(`cidr:${bs.join(',')}`, (id) => ({ id, blocks: bs })));
  const podIdentity = (pod: PodObj, bs: number[]): number => {
    const nsLabels = c.namespaces.get(pod.namespace)?.labels ?? { 'kubernetes.io/metadata.name': pod.namespace };
    const ports = [...pod.ports].filter((p) => p.name).sort((a, b) => (a.name + a.protocol < b.name + b.protocol ? -1 : 1));
    const key = JSON.stringify([pod.namespace, sortedLabels(nsLabels), sortedLabels(pod.labels), ports.map((p) => [p.name, p.protocol, p.port]), bs]);
    return ids.get(key, (id) => ({ id, pod: { namespace: pod.namespace, nsLabels, labels: pod.labels, ports }, blocks: bs }));
  };

  if (seed) {
    for (const [key, id] of Object.entries(prev.ids)) {
      if (key.startsWith('cidr:')) {
        const bs = key.slice(5).split(',').map(Number);
        ids.get(key, () => ({ id, blocks: bs }));
        continue;
      }
      const [namespace, nsl, l, ports, bs] = JSON.parse(key) as [string, [string, string][], [string, string][], [string, Protocol, number][], number[]];
      ids.get(key, () => ({ id, pod: { namespace, nsLabels: Object.fromEntries(nsl), labels: Object.fromEntries(l), ports: ports.map(([name, protocol, port]) => ({ name, protocol, port })) }, blocks: bs }));
    }
  }

  // The ipcache: every pod address, then every block prefix and exception, then this node's addresses.
  const ipcache = new Map<string, IpcacheEntry>();
  for (const pod of c.pods.values()) {
    for (const ip of pod.ips) {
      const a = parseAddr(ip);
      if (!a) continue;
      const cidr = hostCidr(a);
      ipcache.set(formatCidr(cidr), { cidr, identity: podIdentity(pod, blocksOf(cidr)), host: false });
    }
  }
  for (const b of blocks) {
    for (const x of [b.cidr, ...b.except]) {
      const k = formatCidr(x);
      if (!ipcache.has(k)) ipcache.set(k, { cidr: x, identity: cidrIdentity(blocksOf(x)), host: false });
    }
  }
  for (const a of node.hostAddrs) {
    const cidr = hostCidr(a);
    const k = formatCidr(cidr);
    ipcache.set(k, { cidr, identity: ipcache.get(k)?.identity ?? cidrIdentity(blocksOf(cidr)), host: true });
  }

  // Which identities a peer selects. Every identity exists by now; an index by label keeps a
  // peer that names a label from scanning all of them (10,000 pods, 1,000 policies).
  // Built on first use, once the local pods' identities exist too.
  let everyone: Identity[] | undefined;
  const byLabel = new Map<string, Identity[]>();
  const byBlock = new Map<number, Identity[]>();
  const push = <K>(m: Map<K, Identity[]>, k: K, i: Identity): void => {
    const l = m.get(k);
    if (l) l.push(i);
    else m.set(k, [i]);
  };
  const index = (i: Identity): void => {
    for (const [k, v] of Object.entries(i.pod?.labels ?? {})) push(byLabel, `${k}=${v}`, i);
    for (const b of i.blocks) push(byBlock, b, i);
  };
  const all = (): Identity[] => {
    if (everyone) return everyone;
    everyone = [...ids.byId.values()];
    for (const i of everyone) index(i);
    return everyone;
  };
  const candidates = (peer: Peer): Identity[] => {
    all();
    if (peer.ipBlock) {
      const b = peerBlocks.get(peer);
      return b === undefined ? [] : byBlock.get(b) ?? [];
    }
    const named = Object.entries(peer.podSelector?.matchLabels ?? {});
    if (named.length === 0) return all();
    return named.map(([k, v]) => byLabel.get(`${k}=${v}`) ?? []).reduce((a, b) => (b.length < a.length ? b : a));
  };
  const selected = new Map<string, number[]>();
  const peerIds = (p: PolicyObj, r: Rule): number[] => {
    const key = `${p.namespace}\0${JSON.stringify(r.peers)}`;
    const hit = selected.get(key);
    if (hit) return hit;
    const out = new Set<number>();
    for (const peer of r.peers!) for (const i of candidates(peer)) if (selects(p, peer, i)) out.add(i.id);
    const list = [...out].sort((a, b) => a - b);
    selected.set(key, list);
    return list;
  };
  const selects = (p: PolicyObj, peer: Peer, i: Identity): boolean => {
    if (peer.ipBlock) {
      const b = peerBlocks.get(peer);
      return b !== undefined && i.blocks.includes(b);
    }
    if (!i.pod) return false;
    if (peer.namespaceSelector ? !matches(peer.namespaceSelector, i.pod.nsLabels) : i.pod.namespace !== p.namespace) return false;
    return !peer.podSelector || matches(peer.podSelector, i.pod.labels);
  };

  // Local pods' identities first (a pod not started yet has one per chunk of the node's
  // ranges), so that every pod's allowances see all of them.
  const localChunks = new Map<string, PodPolicy['chunks']>();
  for (const key of node.local) {
    const pod = c.pods.get(key);
    if (!pod) continue;
    const chunks = chunksOf(node.ranges, blocks).map((x) => ({ cidr: formatCidr(x), identity: podIdentity(pod, blocksOf(x)) }));
    for (const ip of pod.ips) {
      const a = parseAddr(ip);
      if (a) chunks.push({ cidr: formatCidr(hostCidr(a)), identity: ipcache.get(formatCidr(hostCidr(a)))?.identity ?? ID_UNKNOWN });
    }
    localChunks.set(key, chunks);
  }
  /** The policies selecting each local pod, per direction (kept for remotePod). */
  const selecting = new Map<string, PolicyObj[]>();
  const pods = new Map<string, PodPolicy>();
  for (const [key, chunks] of localChunks) pods.set(key, { ...allowances(c.pods.get(key)!, key), chunks });

  function allowances(pod: PodObj, key: string): Omit<PodPolicy, 'chunks'> {
    const out: Omit<PodPolicy, 'chunks'> = { selectedBy: { ingress: [], egress: [] } };
    for (const dir of ['Ingress', 'Egress'] as Direction[]) {
      const sel = policies.filter((p) => p.namespace === pod.namespace && p.types.includes(dir) && matches(p.podSelector, pod.labels));
      selecting.set(`${dir} ${key}`, sel);
      out.selectedBy[dir === 'Ingress' ? 'ingress' : 'egress'] = sel.map((p) => policyIndex.get(p)!);
      if (sel.length === 0) continue;
      const seen = new Map<string, Allow>();
      for (const p of sel) {
        for (const r of dir === 'Ingress' ? p.ingress : p.egress) {
          for (const a of ruleAllows(p, r, dir, pod)) {
            const k = `${a.identity}/${a.protoBits}/${a.proto}/${a.portBits}/${a.port}`;
            if (!seen.has(k)) seen.set(k, a);
          }
        }
      }
      out[dir === 'Ingress' ? 'ingress' : 'egress'] = [...seen.values()];
    }
    return out;
  }

  /** A rule's allowances; with only, just those naming that identity that "any peer" entries do not already cover. */
  function ruleAllows(p: PolicyObj, r: Rule, dir: Direction, pod: PodObj, only?: Identity): Allow[] {
    const policy = policyIndex.get(p)!;
    const peers = only ? (r.peers?.some((peer) => selects(p, peer, only)) ? [only.id] : r.peers ? [] : [ID_ANY]) : r.peers ? peerIds(p, r) : [ID_ANY];
    if (only && peers.includes(ID_ANY) && !(dir === 'Egress' && r.ports?.some((x) => typeof x.port === 'string'))) return [];
    if (!r.ports) return peers.map((identity) => ({ identity, proto: 0, protoBits: 0, port: 0, portBits: 0, policy }));
    const out: Allow[] = [];
    for (const spec of r.ports) {
      const proto = PROTO[spec.protocol];
      const emit = (identity: number, from: number, to: number): void => {
        for (const b of portBlocks(from, to)) out.push({ identity, proto, protoBits: 8, port: b.port, portBits: b.bits, policy });
      };
      if (spec.port === undefined) {
        if (!(only && peers.includes(ID_ANY))) for (const identity of peers) out.push({ identity, proto, protoBits: 8, port: 0, portBits: 0, policy });
      } else if (typeof spec.port === 'number') {
        if (only && peers.includes(ID_ANY)) continue;
        const to = spec.endPort !== undefined && spec.endPort >= spec.port ? spec.endPort : spec.port;
        for (const identity of peers) emit(identity, spec.port, Math.min(to, 65535));
      } else if (dir === 'Ingress') {
        // A named port is the selected pod's own container port of that name and protocol.
        for (const cp of pod.ports.filter((x) => x.name === spec.port && x.protocol === spec.protocol)) for (const identity of peers) emit(identity, cp.port, cp.port);
      } else {
        // Egress: each destination's own port of that name; "any peer" means every pod that has one.
        const dests = peers.includes(ID_ANY) ? (only ? [only] : all()).filter((i) => i.pod) : peers.map((id) => ids.byId.get(id)!).filter((i) => i.pod);
        for (const i of dests) for (const cp of i.pod!.ports.filter((x) => x.name === spec.port && x.protocol === spec.protocol)) emit(i.id, cp.port, cp.port);
      }
    }
    return out;
  }

  const remotePod = (pod: PodObj): PodDelta => {
    all();
    const entries: IpcacheEntry[] = [];
    const fresh: Identity[] = [];
    for (const ip of pod.ips) {
      const a = parseAddr(ip);
      if (!a) continue;
      const cidr = hostCidr(a);
      const size = ids.byId.size;
      const identity = podIdentity(pod, blocksOf(cidr));
      entries.push({ cidr, identity, host: false });
      if (ids.byId.size > size) fresh.push(ids.byId.get(identity)!);
    }
    const allows: PodDelta['allows'] = [];
    for (const i of fresh) {
      everyone!.push(i);
      index(i);
      for (const key of localChunks.keys()) {
        const lp = c.pods.get(key)!;
        for (const dir of ['Ingress', 'Egress'] as Direction[]) {
          for (const p of selecting.get(`${dir} ${key}`) ?? []) {
            for (const r of dir === 'Ingress' ? p.ingress : p.egress) for (const allow of ruleAllows(p, r, dir, lp, i)) allows.push({ pod: key, dir: dir === 'Ingress' ? 'ingress' : 'egress', allow });
          }
        }
      }
    }
    return { ipcache: entries, allows, table: ids.table() };
  };

  return { remotePod, identities: ids.byId, table: ids.table(), ipcache: [...ipcache.values()], pods, policies: policies.map((p) => `${p.namespace}/${p.name}`), blocks: blocks.map((b) => ({ cidr: formatCidr(b.cidr), except: b.except.map(formatCidr) })), problems };
}

/**
 * The prefixes that split the node's ranges by ipBlock membership: each range and every
 * block prefix or exception inside one. An address's identity is the one of the longest.
 */
function chunksOf(ranges: Cidr[], blocks: Block[]): Cidr[] {
  const out = new Map<string, Cidr>();
  for (const r of ranges) {
    const n = network(r);
    out.set(formatCidr(n), n);
    for (const b of blocks) for (const x of [b.cidr, ...b.except]) if (within(n, x)) out.set(formatCidr(x), x);
  }
  return [...out.values()];
}

/** The identity of an address among chunks (longest prefix), or undefined. */
export function chunkIdentity(chunks: PodPolicy['chunks'], a: Addr): number | undefined {
  let best: { prefix: number; identity: number } | undefined;
  for (const ch of chunks) {
    const c = parseCidr(ch.cidr);
    if (c && c.addr.family === a.family && contains(c, a) && (!best || c.prefix > best.prefix)) best = { prefix: c.prefix, identity: ch.identity };
  }
  return best?.identity;
}
