// The cluster objects twill reads beyond policy's own (policy/objects.ts): Nodes (the node
// table), Services and EndpointSlices (load balancing). Each parser keeps only the fields
// twill uses; the raw JSON is not kept.
import type { Protocol } from '../policy/objects.js';
import type { EndpointSliceObj, ServiceObj } from '../services/objects.js';

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

export type { EndpointSliceObj, ServiceObj, ServicePort, SliceEndpoint, SlicePort } from '../services/objects.js';

const LABEL_PROXY_NAME = 'service.kubernetes.io/service-proxy-name';
const LABEL_HEADLESS = 'service.kubernetes.io/headless';
/** The API server's default for sessionAffinityConfig.clientIP.timeoutSeconds (3 hours). */
const AFFINITY_DEFAULT_SECONDS = 10800;

const policy = (x: unknown): 'Cluster' | 'Local' => (x === 'Local' ? 'Local' : 'Cluster');
const isPort = (x: unknown): x is number => typeof x === 'number' && Number.isInteger(x) && x >= 1 && x <= 65535;
const num = (x: unknown): number => (typeof x === 'number' && Number.isInteger(x) && x > 0 ? x : 0);

export function parseService(x: unknown): ServiceObj | undefined {
  const o = obj(x);
  const m = obj(o.metadata);
  const spec = obj(o.spec);
  const name = str(m.name);
  if (!name) return undefined;
  const ips = arr(spec.clusterIPs).map(str).filter(Boolean);
  if (ips.length === 0 && str(spec.clusterIP)) ips.push(str(spec.clusterIP));
  const l = labels(m.labels);
  const timeout = num(obj(obj(spec.sessionAffinityConfig).clientIP).timeoutSeconds);
  return {
    namespace: str(m.namespace) || 'default', name, type: str(spec.type) || 'ClusterIP', clusterIPs: ips,
    ipFamilies: arr(spec.ipFamilies).map(str).filter(Boolean),
    // The API server's ranges: a port outside them (a file or an unvalidated source) is dropped, never encoded.
    ports: arr(spec.ports).map(obj).filter((p) => isPort(p.port)).map((p) => ({
      name: str(p.name), protocol: protocol(p.protocol), port: p.port as number,
      ...(isPort(p.targetPort) || (typeof p.targetPort === 'string' && p.targetPort) ? { targetPort: p.targetPort as number | string } : {}),
      ...(isPort(p.nodePort) ? { nodePort: p.nodePort } : {}),
    })),
    sessionAffinity: spec.sessionAffinity === 'ClientIP' ? 'ClientIP' : 'None',
    affinityTimeoutSeconds: timeout || AFFINITY_DEFAULT_SECONDS,
    internalTrafficPolicy: policy(spec.internalTrafficPolicy),
    externalTrafficPolicy: policy(spec.externalTrafficPolicy),
    healthCheckNodePort: num(spec.healthCheckNodePort),
    externalIPs: arr(spec.externalIPs).map(str).filter(Boolean),
    loadBalancerIngress: arr(obj(obj(o.status).loadBalancer).ingress).map(obj).filter((i) => str(i.ip)).map((i) => ({ ip: str(i.ip), ipMode: str(i.ipMode) || 'VIP' })),
    loadBalancerSourceRanges: arr(spec.loadBalancerSourceRanges).map((r) => str(r).trim()).filter(Boolean),
    ...(LABEL_PROXY_NAME in l ? { proxyName: l[LABEL_PROXY_NAME] } : {}),
    headlessLabel: LABEL_HEADLESS in l,
    ...(str(m.creationTimestamp) ? { created: str(m.creationTimestamp) } : {}),
  };
}

export function parseEndpointSlice(x: unknown): EndpointSliceObj | undefined {
  const o = obj(x);
  const m = obj(o.metadata);
  const name = str(m.name);
  if (!name) return undefined;
  return {
    namespace: str(m.namespace) || 'default', name, service: labels(m.labels)['kubernetes.io/service-name'] ?? '', addressType: str(o.addressType),
    endpoints: arr(o.endpoints).map(obj).map((e) => {
      const c = obj(e.conditions);
      // kube-proxy's slice cache: ready nil → true, serving nil → true, terminating nil → false.
      const ready = c.ready !== false;
      return {
        addresses: arr(e.addresses).map(str).filter(Boolean),
        ready, serving: c.serving !== false, terminating: c.terminating === true,
        ...(str(e.nodeName) ? { nodeName: str(e.nodeName) } : {}),
      };
    }),
    ports: arr(o.ports).map(obj).filter((p) => isPort(p.port)).map((p) => ({ name: str(p.name), protocol: protocol(p.protocol), port: p.port as number })),
  };
}
