// From cluster objects to what the kernel holds: identities, an ipcache entry per known
// address, and the allowances of each group of this node's pods, keyed by peer, protocol and
// port block. Pure: no kernel, no files. Identities keep their numbers across syncs (idTable).
//
// What an identity is, so that the policy trie grows with what the policies say, not with the
// cluster:
// - A pod's identity is (namespace and its labels, the values of the label keys some peer
//   podSelector names, its named ports whose names some rule uses, the ipBlocks holding its
//   address). A namespace has one label set, so its labels never multiply identities; kept
//   whole, they let a pod's ADD match namespaceSelectors the last sync did not know. A label
//   no selector names does not split identities: pod-template-hash, controller-revision-hash,
//   statefulset.kubernetes.io/pod-name, apps.kubernetes.io/pod-index, batch.kubernetes.io/*,
//   job-name... (Cilium's default exclusions) count only when a selector names them.
// - Peer classes stand for whole sets of pods and cost one entry: "any pod of the cluster"
//   (namespaceSelector {} with an empty podSelector) and "any pod of namespace N"
//   (podSelector {} alone, or a namespaceSelector by labels with an empty podSelector: one
//   class per matching namespace). The ipcache value of a pod's address carries its
//   namespace's class and a flag "a pod of this cluster", so the data path looks up
//   (identity), (namespace class), (cluster class), (any): four lookups at most.
// - Local pods selected by the same policies (and, when an ingress rule names a port, with
//   the same named ports) form a group and share one slot of entries.
//
// The bound: policy entries = Σ over this node's groups (≤ local pods, ≤ distinct sets of
// selecting policies) of Σ over those policies' rules of (targets × port blocks), where a
// class peer is 1 target, a namespaceSelector by labels with an empty podSelector is the
// number of matching namespaces, a podSelector peer is the number of distinct (namespace,
// selector-named label values, ...) among the pods it selects, an ipBlock the identities
// inside it; a port range is at most 30 prefix blocks (1024-65535: 6), a rule without ports
// one entry. Neither the cluster's pod count nor its label sets appear in it.
import { bits, contains, formatCidr, network, parseAddr, parseCidr, type Addr, type Cidr } from '../net/ip.js';
import type { ClusterObjects, ContainerPort, Direction, Labels, Peer, PodObj, PolicyObj, Protocol, Rule, Selector } from './objects.js';
import { matches } from './selector.js';
import { portBlocks } from './ports.js';

export const ID_ANY = 0, ID_HOST = 1, ID_WORLD = 2, ID_UNKNOWN = 3;
/** In policy entries: any pod of the cluster (an ipcache entry with IPC_F_POD). */
export const CLASS_CLUSTER_POD = 4;
const FIRST_ID = 256;

export const PROTO: Record<Protocol, number> = { TCP: 6, UDP: 17, SCTP: 132 };

export interface IdTable {
  next: number;
  ids: Record<string, number>;
}

export interface Identity {
  id: number;
  /** Pods: their namespace, its labels, theirs and their named ports (those selectors and rules name), their namespace's class. Absent for addresses outside any pod. */
  pod?: { namespace: string; nsLabels: Labels; labels: Labels; ports: ContainerPort[]; nsClass: number };
  /** A namespace class: any pod of that namespace. */
  nsClass?: { namespace: string; nsLabels: Labels };
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
  /** Pods of one group have the same allowances: they share a slot. */
  group: string;
  /** The class of the pod's namespace (its addresses' ipcache entries carry it). */
  ns: number;
}

export interface IpcacheEntry {
  cidr: Cidr;
  identity: number;
  host: boolean;
  /** A pod's address: its namespace's class (0: not a pod of the cluster). */
  ns: number;
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
  /** When set, collects the identities made from now on. */
  made?: Identity[];
  constructor(private readonly prev: IdTable) {
    this.next = Math.max(prev.next, FIRST_ID);
  }

  get(key: string, make: (id: number) => Identity): number {
    const had = this.used[key];
    if (had !== undefined) return had;
    // A number is never given to a different meaning (a peer's old allowances would briefly apply).
    const id = this.prev.ids[key] ?? this.next++;
    this.used[key] = id;
    const i = make(id);
    this.byId.set(id, i);
    this.made?.push(i);
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

const emptySelector = (s: Selector | undefined): boolean => !s || (Object.keys(s.matchLabels).length === 0 && s.matchExpressions.length === 0);
/** A peer that stands for whole namespaces (or the cluster): an empty podSelector, no ipBlock. */
const classPeer = (peer: Peer): boolean => !peer.ipBlock && emptySelector(peer.podSelector);
const selectorKeys = (s: Selector | undefined, into: Set<string>): void => {
  if (!s) return;
  for (const k of Object.keys(s.matchLabels)) into.add(k);
  for (const r of s.matchExpressions) into.add(r.key);
};
const keep = (l: Labels, keys: ReadonlySet<string>): [string, string][] => sortedLabels(l).filter(([k]) => keys.has(k));

export function compile(c: ClusterObjects, node: NodeView, prev: IdTable = { next: FIRST_ID, ids: {} }, seed?: Seed): Compiled {
  const problems: string[] = [];
  const policies = [...c.policies.values()].sort((a, b) => (a.namespace + '/' + a.name < b.namespace + '/' + b.name ? -1 : 1));
  const policyIndex = new Map(policies.map((p, i) => [p, i]));

  // What selectors and rules look at: only that makes identities differ.
  const podKeys = new Set<string>(), portNames = new Set<string>();
  for (const p of policies) {
    for (const r of [...p.ingress, ...p.egress]) {
      for (const peer of r.peers ?? []) selectorKeys(peer.podSelector, podKeys);
      for (const x of r.ports ?? []) if (typeof x.port === 'string') portNames.add(x.port);
    }
  }
  // Compiling against the last sync's identities (a pod's ADD sees only its namespace's
  // policies): the keys the sync kept make the pod's identity the one the sync would give it.
  if (seed) {
    for (const key of Object.keys(prev.ids)) {
      if (key.startsWith('cidr:') || key.startsWith('ns:')) continue;
      const [, , l, ports] = JSON.parse(key) as [string, [string, string][], [string, string][], [string, Protocol, number][]];
      for (const [k] of l) podKeys.add(k);
      for (const [name] of ports) portNames.add(name);
    }
  }

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
  const blocksOf = (x: Cidr): number[] => (blocks.length === 0 ? [] : blocks.flatMap((b, i) => (within(b.cidr, x) && !b.except.some((e) => within(e, x)) ? [i] : [])));

  const ids = new Identities(prev);
  const nsClasses = new Map<string, Identity>();
  const cidrIdentity = (bs: number[]): number => (bs.length === 0 ? ID_WORLD : ids.get(`cidr:${bs.join(',')}`, (id) => ({ id, blocks: bs })));
  const nsLabelsOf = (namespace: string): Labels => c.namespaces.get(namespace)?.labels ?? { 'kubernetes.io/metadata.name': namespace };
  const nsClassOf = (namespace: string, nsl: [string, string][]): number => {
    // With a seed, the class the sync gave the namespace is the one its pods' addresses carry.
    const had = seed ? nsClasses.get(namespace) : undefined;
    if (had) return had.id;
    const id = ids.get(`ns:${JSON.stringify([namespace, nsl])}`, (id) => ({ id, nsClass: { namespace, nsLabels: Object.fromEntries(nsl) }, blocks: [] }));
    nsClasses.set(namespace, ids.byId.get(id)!);
    return id;
  };
  const podIdentity = (pod: PodObj, bs: number[]): number => {
    const nsl = sortedLabels(nsLabelsOf(pod.namespace));
    const nsClass = nsClassOf(pod.namespace, nsl);
    const l = keep(pod.labels, podKeys);
    const ports = pod.ports.filter((p) => p.name && portNames.has(p.name)).sort((a, b) => (a.name + a.protocol < b.name + b.protocol ? -1 : 1));
    const key = JSON.stringify([pod.namespace, nsl, l, ports.map((p) => [p.name, p.protocol, p.port]), bs]);
    return ids.get(key, (id) => ({ id, pod: { namespace: pod.namespace, nsLabels: Object.fromEntries(nsl), labels: Object.fromEntries(l), ports, nsClass }, blocks: bs }));
  };

  if (seed) {
    for (const [key, id] of Object.entries(prev.ids)) {
      if (key.startsWith('cidr:')) {
        const bs = key.slice(5).split(',').map(Number);
        ids.get(key, () => ({ id, blocks: bs }));
        continue;
      }
      if (key.startsWith('ns:')) {
        const [namespace, nsl] = JSON.parse(key.slice(3)) as [string, [string, string][]];
        nsClassOf(namespace, nsl);
        continue;
      }
      const [namespace, nsl, l, ports, bs] = JSON.parse(key) as [string, [string, string][], [string, string][], [string, Protocol, number][], number[]];
      const nsClass = nsClassOf(namespace, nsl);
      ids.get(key, () => ({ id, pod: { namespace, nsLabels: Object.fromEntries(nsl), labels: Object.fromEntries(l), ports: ports.map(([name, protocol, port]) => ({ name, protocol, port })), nsClass }, blocks: bs }));
    }
  }
  // Every namespace has its class, pods or not (a namespaceSelector may name it before its first pod).
  for (const n of c.namespaces.values()) nsClassOf(n.name, sortedLabels(n.labels));
  for (const p of policies) if (!nsClasses.has(p.namespace)) nsClassOf(p.namespace, sortedLabels(nsLabelsOf(p.namespace)));

  // The ipcache: every pod address, then every block prefix and exception, then this node's addresses.
  const ipcache = new Map<string, IpcacheEntry>();
  const podEntry = (pod: PodObj, cidr: Cidr): IpcacheEntry => {
    const identity = podIdentity(pod, blocksOf(cidr));
    return { cidr, identity, host: false, ns: ids.byId.get(identity)!.pod!.nsClass };
  };
  for (const pod of c.pods.values()) {
    for (const ip of pod.ips) {
      const a = parseAddr(ip);
      if (!a) continue;
      const cidr = hostCidr(a);
      ipcache.set(formatCidr(cidr), podEntry(pod, cidr));
    }
  }
  for (const b of blocks) {
    for (const x of [b.cidr, ...b.except]) {
      const k = formatCidr(x);
      if (!ipcache.has(k)) ipcache.set(k, { cidr: x, identity: cidrIdentity(blocksOf(x)), host: false, ns: 0 });
    }
  }
  for (const a of node.hostAddrs) {
    const cidr = hostCidr(a);
    const k = formatCidr(cidr);
    const had = ipcache.get(k);
    ipcache.set(k, { cidr, identity: had?.identity ?? cidrIdentity(blocksOf(cidr)), host: true, ns: had?.ns ?? 0 });
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
    everyone = [...ids.byId.values()].filter((i) => !i.nsClass);
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
  /** The pod (or ipBlock) identities a peer selects, as a pod would be judged one by one. */
  const selects = (p: PolicyObj, peer: Peer, i: Identity): boolean => {
    if (peer.ipBlock) {
      const b = peerBlocks.get(peer);
      return b !== undefined && i.blocks.includes(b);
    }
    if (!i.pod) return false;
    if (peer.namespaceSelector ? !matches(peer.namespaceSelector, i.pod.nsLabels) : i.pod.namespace !== p.namespace) return false;
    return !peer.podSelector || matches(peer.podSelector, i.pod.labels);
  };
  /** Whether a class peer covers a namespace class. */
  const classSelects = (p: PolicyObj, peer: Peer, i: Identity): boolean =>
    !!i.nsClass && (peer.namespaceSelector ? !emptySelector(peer.namespaceSelector) && matches(peer.namespaceSelector, i.nsClass.nsLabels) : i.nsClass.namespace === p.namespace);
  /** What an entry names for a peer: identities, or the one class that stands for them all. */
  const targetsOf = (p: PolicyObj, peer: Peer): number[] => {
    if (!classPeer(peer)) return candidates(peer).filter((i) => selects(p, peer, i)).map((i) => i.id);
    if (!peer.namespaceSelector) return [nsClasses.get(p.namespace)!.id];
    if (emptySelector(peer.namespaceSelector)) return [CLASS_CLUSTER_POD];
    return [...nsClasses.values()].filter((i) => classSelects(p, peer, i)).map((i) => i.id);
  };
  const targets = new Map<string, number[]>();
  const peerTargets = (p: PolicyObj, r: Rule): number[] => {
    const key = `${p.namespace}\0${JSON.stringify(r.peers)}`;
    const hit = targets.get(key);
    if (hit) return hit;
    const out = new Set<number>();
    for (const peer of r.peers!) for (const id of targetsOf(p, peer)) out.add(id);
    const list = [...out].sort((a, b) => a - b);
    targets.set(key, list);
    return list;
  };
  /** The pods a rule's peers select, one by one (egress to a named port: each destination's own port). */
  const peerPods = (p: PolicyObj, r: Rule): Identity[] => {
    if (!r.peers) return all().filter((i) => i.pod);
    const out = new Set<Identity>();
    for (const peer of r.peers) for (const i of candidates(peer)) if (i.pod && selects(p, peer, i)) out.add(i);
    return [...out];
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
  /** Per group: the policies selecting its pods, per direction, and one of its pods (kept for remotePod). */
  const groups = new Map<string, { pod: string; sel: Record<Direction, PolicyObj[]> }>();
  const groupAllows = new Map<string, Omit<PodPolicy, 'chunks' | 'ns'>>();
  const pods = new Map<string, PodPolicy>();
  for (const [key, chunks] of localChunks) {
    const pod = c.pods.get(key)!;
    const sel = { Ingress: selectingOf(pod, 'Ingress'), Egress: selectingOf(pod, 'Egress') };
    // Only an ingress rule's named port makes the pod's own ports matter to its entries.
    const named = sel.Ingress.some((p) => p.ingress.some((r) => r.ports?.some((x) => typeof x.port === 'string')));
    const group = JSON.stringify([sel.Ingress.map(policyName), sel.Egress.map(policyName), named ? pod.ports.filter((x) => x.name).map((x) => [x.name, x.protocol, x.port]).sort() : []]);
    let g = groupAllows.get(group);
    if (!g) {
      g = { ...allowances(pod, sel), group };
      groupAllows.set(group, g);
      groups.set(group, { pod: key, sel });
    }
    pods.set(key, { ...g, chunks, ns: nsClasses.get(pod.namespace)?.id ?? 0 });
  }

  function policyName(p: PolicyObj): string {
    return `${p.namespace}/${p.name}`;
  }

  function selectingOf(pod: PodObj, dir: Direction): PolicyObj[] {
    return policies.filter((p) => p.namespace === pod.namespace && p.types.includes(dir) && matches(p.podSelector, pod.labels));
  }

  function allowances(pod: PodObj, sel: Record<Direction, PolicyObj[]>): Omit<PodPolicy, 'chunks' | 'group' | 'ns'> {
    const out: Omit<PodPolicy, 'chunks' | 'group' | 'ns'> = { selectedBy: { ingress: [], egress: [] } };
    for (const dir of ['Ingress', 'Egress'] as Direction[]) {
      out.selectedBy[dir === 'Ingress' ? 'ingress' : 'egress'] = sel[dir].map((p) => policyIndex.get(p)!);
      if (sel[dir].length === 0) continue;
      const seen = new Map<string, Allow>();
      for (const p of sel[dir]) {
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

  /** A rule's allowances; with only, just those a new identity or class adds ("any peer" entries already cover it otherwise). */
  function ruleAllows(p: PolicyObj, r: Rule, dir: Direction, pod: PodObj, only?: Identity): Allow[] {
    const policy = policyIndex.get(p)!;
    const peers = only
      ? r.peers?.some((peer) => (classPeer(peer) ? classSelects(p, peer, only) : selects(p, peer, only))) ? [only.id] : []
      : r.peers ? peerTargets(p, r) : [ID_ANY];
    if (!r.ports) return peers.map((identity) => ({ identity, proto: 0, protoBits: 0, port: 0, portBits: 0, policy }));
    const out: Allow[] = [];
    for (const spec of r.ports) {
      const proto = PROTO[spec.protocol];
      const emit = (identity: number, from: number, to: number): void => {
        for (const b of portBlocks(from, to)) out.push({ identity, proto, protoBits: 8, port: b.port, portBits: b.bits, policy });
      };
      if (spec.port === undefined) {
        for (const identity of peers) out.push({ identity, proto, protoBits: 8, port: 0, portBits: 0, policy });
      } else if (typeof spec.port === 'number') {
        const to = spec.endPort !== undefined && spec.endPort >= spec.port ? spec.endPort : spec.port;
        for (const identity of peers) emit(identity, spec.port, Math.min(to, 65535));
      } else if (dir === 'Ingress') {
        // A named port is the selected pod's own container port of that name and protocol.
        for (const cp of pod.ports.filter((x) => x.name === spec.port && x.protocol === spec.protocol)) for (const identity of peers) emit(identity, cp.port, cp.port);
      } else {
        // Egress: each destination pod's own port of that name, whatever class or "any peer" selected it.
        const dests = only ? (only.pod && (!r.peers || r.peers.some((peer) => selects(p, peer, only))) ? [only] : []) : peerPods(p, r);
        for (const i of dests) for (const cp of i.pod!.ports.filter((x) => x.name === spec.port && x.protocol === spec.protocol)) emit(i.id, cp.port, cp.port);
      }
    }
    return out;
  }

  const remotePod = (pod: PodObj): PodDelta => {
    all();
    const entries: IpcacheEntry[] = [];
    // A new identity, and its namespace's class when the namespace is new too.
    const fresh: Identity[] = (ids.made = []);
    try {
      for (const ip of pod.ips) {
        const a = parseAddr(ip);
        if (a) entries.push(podEntry(pod, hostCidr(a)));
      }
    } finally {
      ids.made = undefined;
    }
    const allows: PodDelta['allows'] = [];
    for (const i of fresh) {
      if (!i.nsClass) {
        everyone!.push(i);
        index(i);
      }
      for (const { pod: key, sel } of groups.values()) {
        const lp = c.pods.get(key)!;
        for (const dir of ['Ingress', 'Egress'] as Direction[]) {
          for (const p of sel[dir]) {
            for (const r of dir === 'Ingress' ? p.ingress : p.egress) for (const allow of ruleAllows(p, r, dir, lp, i)) allows.push({ pod: key, dir: dir === 'Ingress' ? 'ingress' : 'egress', allow });
          }
        }
      }
    }
    return { ipcache: entries, allows, table: ids.table() };
  };

  return { remotePod, identities: ids.byId, table: ids.table(), ipcache: [...ipcache.values()], pods, policies: policies.map(policyName), blocks: blocks.map((b) => ({ cidr: formatCidr(b.cidr), except: b.except.map(formatCidr) })), problems };
}

/** Policy trie entries the pods need: one set per group (its pods share a slot). */
export function policyEntriesNeeded(pods: ReadonlyMap<string, Pick<PodPolicy, 'group' | 'ingress' | 'egress'>>): number {
  const groups = new Map<string, number>();
  for (const pp of pods.values()) groups.set(pp.group, (pp.ingress?.length ?? 0) + (pp.egress?.length ?? 0));
  let n = 0;
  for (const v of groups.values()) n += v;
  return n;
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
