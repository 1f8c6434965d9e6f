// The cluster objects twill reads beyond policy's own (policy/objects.ts): Nodes (the node
// table), Services and EndpointSlices (load balancing). Each parser keeps only the fields
// twill uses; the raw JSON is not kept.
import type { Labels, Protocol } from '../policy/objects.js';

type Obj = Record<string, unknown>;
const obj = (x: unknown): Obj => (typeof x === 'object' && x !== null && !Array.isArray(x) ? (x as Obj) : {});
const arr = (x: unknown): unknown[] => (Array.isArray(x) ? x : []);
const str = (x: unknown): string => (typeof x === 'string' ? x : '');
const protocol = (x: unknown): Protocol => (x === 'UDP' || x === 'SCTP' ? x : 'TCP');

function labels(x: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(obj(x))) if (typeof v === 'string') out[k] = v;
  return out;
}

export interface NodeObj {
  name: string;
  /** spec.podCIDRs, or the single spec.podCIDR of an older API server. */
  podCIDRs: string[];
  /** status.addresses of type InternalIP, as written (not yet checked to be addresses). */
  internalIPs: string[];
}

export function parseNode(x: unknown): NodeObj | undefined {
  const o = obj(x);
  const name = str(obj(o.metadata).name);
  if (!name) return undefined;
  const spec = obj(o.spec);
  const podCIDRs = (Array.isArray(spec.podCIDRs) ? spec.podCIDRs : typeof spec.podCIDR === 'string' ? [spec.podCIDR] : []).filter((c): c is string => typeof c === 'string');
  const internalIPs = arr(obj(o.status).addresses).map(obj).filter((a) => a.type === 'InternalIP').map((a) => String(a.address));
  return { name, podCIDRs, internalIPs };
}

export interface ServicePort {
  name: string;
  protocol: Protocol;
  port: number;
  /** A number or a container port's name; undefined: the same as port. */
  targetPort?: number | string;
  nodePort?: number;
}

export interface ServiceObj {
  namespace: string;
  name: string;
  /** spec.type: ClusterIP, NodePort, LoadBalancer, ExternalName. */
  type: string;
  /** spec.clusterIPs (or clusterIP); "None" for a headless Service. */
  clusterIPs: string[];
  ports: ServicePort[];
  selector: Labels;
}

export function parseService(x: unknown): ServiceObj | undefined {
  const o = obj(x);
  const m = obj(o.metadata);
  const spec = obj(o.spec);
  const name = str(m.name);
  if (!name) return undefined;
  const ips = arr(spec.clusterIPs).map(str).filter(Boolean);
  if (ips.length === 0 && str(spec.clusterIP)) ips.push(str(spec.clusterIP));
  return {
    namespace: str(m.namespace) || 'default', name, type: str(spec.type) || 'ClusterIP', clusterIPs: ips,
    ports: arr(spec.ports).map(obj).filter((p) => typeof p.port === 'number').map((p) => ({
      name: str(p.name), protocol: protocol(p.protocol), port: p.port as number,
      ...(typeof p.targetPort === 'number' || (typeof p.targetPort === 'string' && p.targetPort) ? { targetPort: p.targetPort } : {}),
      ...(typeof p.nodePort === 'number' ? { nodePort: p.nodePort } : {}),
    })),
    selector: labels(spec.selector),
  };
}

export interface SliceEndpoint {
  addresses: string[];
  /** conditions.ready; unset means ready (the API's rule). */
  ready: boolean;
  nodeName?: string;
}

export interface EndpointSliceObj {
  namespace: string;
  name: string;
  /** The kubernetes.io/service-name label: the Service the slice belongs to. */
  service: string;
  addressType: string;
  endpoints: SliceEndpoint[];
  ports: { name: string; protocol: Protocol; port: number }[];
}

export function parseEndpointSlice(x: unknown): EndpointSliceObj | undefined {
  const o = obj(x);
  const m = obj(o.metadata);
  const name = str(m.name);
  if (!name) return undefined;
  return {
    namespace: str(m.namespace) || 'default', name, service: labels(m.labels)['kubernetes.io/service-name'] ?? '', addressType: str(o.addressType),
    endpoints: arr(o.endpoints).map(obj).map((e) => ({
      addresses: arr(e.addresses).map(str).filter(Boolean),
      ready: obj(e.conditions).ready !== false,
      ...(str(e.nodeName) ? { nodeName: str(e.nodeName) } : {}),
    })),
    ports: arr(o.ports).map(obj).filter((p) => typeof p.port === 'number').map((p) => ({ name: str(p.name), protocol: protocol(p.protocol), port: p.port as number })),
  };
}
