// The Kubernetes objects policy is computed from — Namespaces, Pods, NetworkPolicies — read
// from API JSON (a List, a watch event's object, `kubectl get -o json`) into plain typed data.
// Defaults the API server applies are applied here too, so a file of hand-written objects
// means what the same objects would mean in a cluster.

export type Labels = Readonly<Record<string, string>>;

export interface Requirement {
  key: string;
  operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';
  values: string[];
}

/** A label selector; undefined fields match everything. */
export interface Selector {
  matchLabels: Labels;
  matchExpressions: Requirement[];
}

export interface NamespaceObj {
  name: string;
  labels: Labels;
}

export type Protocol = 'TCP' | 'UDP' | 'SCTP';

export interface ContainerPort {
  name: string;
  port: number;
  protocol: Protocol;
}

export interface PodObj {
  namespace: string;
  name: string;
  labels: Labels;
  ips: string[];
  nodeName: string;
  ports: ContainerPort[];
  /** metadata.creationTimestamp (RFC 3339): of two pods listing one address, the newer holds it. */
  creationTimestamp?: string;
  /** metadata.deletionTimestamp: the pod is terminating; a finalizer can keep its object (and the address it lists) long after its sandbox is gone. */
  deletionTimestamp?: string;
  /** status.phase. */
  phase?: string;
  /** status.containerStatuses: whether each container is running now. */
  containerStatuses?: { name: string; running: boolean }[];
}

export interface Peer {
  podSelector?: Selector;
  namespaceSelector?: Selector;
  ipBlock?: { cidr: string; except: string[] };
}

export interface PortSpec {
  protocol: Protocol;
  /** undefined: every port of the protocol. */
  port?: number | string;
  endPort?: number;
}

export interface Rule {
  /** undefined (or empty in the object): every peer. */
  peers?: Peer[];
  /** undefined (or empty): every port and protocol. */
  ports?: PortSpec[];
}

export type Direction = 'Ingress' | 'Egress';

export interface PolicyObj {
  namespace: string;
  name: string;
  podSelector: Selector;
  types: Direction[];
  ingress: Rule[];
  egress: Rule[];
}

export interface ClusterObjects {
  namespaces: Map<string, NamespaceObj>;
  /** By "namespace/name". */
  pods: Map<string, PodObj>;
  /** By "namespace/name". */
  policies: Map<string, PolicyObj>;
}

export const emptyCluster = (): ClusterObjects => ({ namespaces: new Map(), pods: new Map(), policies: new Map() });

type Obj = Record<string, unknown>;
const obj = (x: unknown): Obj => (typeof x === 'object' && x !== null && !Array.isArray(x) ? (x as Obj) : {});
const arr = (x: unknown): unknown[] => (Array.isArray(x) ? x : []);
const str = (x: unknown): string => (typeof x === 'string' ? x : '');

function labels(x: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(obj(x))) if (typeof v === 'string') out[k] = v;
  return out;
}

function selector(x: unknown): Selector {
  const o = obj(x);
  const ops = new Set(['In', 'NotIn', 'Exists', 'DoesNotExist']);
  return {
    matchLabels: labels(o.matchLabels),
    matchExpressions: arr(o.matchExpressions).map(obj).map((e) => {
      const op = str(e.operator);
      // An operator the API would refuse: a requirement nothing satisfies, never one that widens.
      return { key: str(e.key), operator: (ops.has(op) ? op : 'In') as Requirement['operator'], values: ops.has(op) ? arr(e.values).map(str) : [] };
    }),
  };
}

const protocol = (x: unknown): Protocol => (x === 'UDP' || x === 'SCTP' ? x : 'TCP');

function rule(x: unknown, peersKey: 'from' | 'to'): Rule {
  const o = obj(x);
  const peers = arr(o[peersKey]).map(obj).map((p): Peer => ({
    ...(p.podSelector !== undefined && p.podSelector !== null ? { podSelector: selector(p.podSelector) } : {}),
    ...(p.namespaceSelector !== undefined && p.namespaceSelector !== null ? { namespaceSelector: selector(p.namespaceSelector) } : {}),
    ...(p.ipBlock ? { ipBlock: { cidr: str(obj(p.ipBlock).cidr), except: arr(obj(p.ipBlock).except).map(str) } } : {}),
  }));
  const ports = arr(o.ports).map(obj).map((p): PortSpec => ({
    protocol: protocol(p.protocol),
    ...(typeof p.port === 'number' || typeof p.port === 'string' ? { port: p.port } : {}),
    ...(typeof p.endPort === 'number' ? { endPort: p.endPort } : {}),
  }));
  return { ...(peers.length ? { peers } : {}), ...(ports.length ? { ports } : {}) };
}

export function parseNamespace(x: unknown): NamespaceObj | undefined {
  const m = obj(obj(x).metadata);
  const name = str(m.name);
  if (!name) return undefined;
  // The API server labels every namespace with its name (1.21+).
  return { name, labels: { ...labels(m.labels), 'kubernetes.io/metadata.name': name } };
}

export function parsePod(x: unknown): PodObj | undefined {
  const o = obj(x);
  const m = obj(o.metadata);
  const spec = obj(o.spec);
  const st = obj(o.status);
  const name = str(m.name);
  if (!name) return undefined;
  // A host-network pod has the node's address; a finished pod's address may already be another's.
  if (spec.hostNetwork === true || st.phase === 'Succeeded' || st.phase === 'Failed') return undefined;
  const ips = arr(st.podIPs).map((p) => str(obj(p).ip)).filter(Boolean);
  if (ips.length === 0 && str(st.podIP)) ips.push(str(st.podIP));
  const ports = arr(spec.containers).flatMap((c) => arr(obj(c).ports)).map(obj)
    .filter((p) => typeof p.containerPort === 'number')
    .map((p) => ({ name: str(p.name), port: p.containerPort as number, protocol: protocol(p.protocol) }));
  const statuses = Array.isArray(st.containerStatuses)
    ? { containerStatuses: st.containerStatuses.map(obj).map((c) => ({ name: str(c.name), running: obj(c.state).running !== undefined && obj(c.state).running !== null })) }
    : {};
  return {
    namespace: str(m.namespace) || 'default', name, labels: labels(m.labels), ips, nodeName: str(spec.nodeName), ports,
    ...(str(m.creationTimestamp) ? { creationTimestamp: str(m.creationTimestamp) } : {}),
    ...(str(m.deletionTimestamp) ? { deletionTimestamp: str(m.deletionTimestamp) } : {}),
    ...(str(st.phase) ? { phase: str(st.phase) } : {}),
    ...statuses,
  };
}

export function parsePolicy(x: unknown): PolicyObj | undefined {
  const o = obj(x);
  const m = obj(o.metadata);
  const spec = obj(o.spec);
  const name = str(m.name);
  if (!name) return undefined;
  const ingress = arr(spec.ingress).map((r) => rule(r, 'from'));
  const egress = arr(spec.egress).map((r) => rule(r, 'to'));
  // The API server's default: Ingress always, Egress when there are egress rules.
  let types = arr(spec.policyTypes).filter((t): t is Direction => t === 'Ingress' || t === 'Egress');
  if (types.length === 0) types = egress.length > 0 ? ['Ingress', 'Egress'] : ['Ingress'];
  return { namespace: str(m.namespace) || 'default', name, podSelector: selector(spec.podSelector), types, ingress, egress };
}

/** Adds every object of a List (or of a plain array) by its kind; returns what was skipped and why. */
export function addObjects(c: ClusterObjects, items: unknown[]): string[] {
  const skipped: string[] = [];
  for (const it of items) {
    const kind = str(obj(it).kind);
    if (kind === 'List' || kind.endsWith('List')) {
      const inner = arr(obj(it).items).map((i) => (str(obj(i).kind) ? i : { ...obj(i), kind: kind.slice(0, -4) }));
      skipped.push(...addObjects(c, inner));
      continue;
    }
    const name = `${kind} ${str(obj(obj(it).metadata).name) || '(unnamed)'}`;
    if (kind === 'Namespace') {
      const n = parseNamespace(it);
      if (n) c.namespaces.set(n.name, n);
      else skipped.push(`${name}: no name`);
    } else if (kind === 'Pod') {
      const p = parsePod(it);
      if (p) c.pods.set(`${p.namespace}/${p.name}`, p);
      else skipped.push(`${name}: no name, host network or finished`);
    } else if (kind === 'NetworkPolicy') {
      const p = parsePolicy(it);
      if (p) c.policies.set(`${p.namespace}/${p.name}`, p);
      else skipped.push(`${name}: no name`);
    } else if (kind !== 'Node') {
      skipped.push(`${name}: kind not used`);
    }
  }
  return skipped;
}
