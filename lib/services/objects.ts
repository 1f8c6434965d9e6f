// The Service and EndpointSlice fields load balancing is computed from, as plain typed data
// with the API server's defaults applied (the parsers live with the cluster cache,
// cluster/objects.ts; the vocabulary is the compile layer's, so compile.ts can read it).
import type { Protocol } from '../policy/objects.js';

export interface ServicePort {
  /** "" for an unnamed port: slices name it "" too, and the two are matched by name. */
  name: string;
  protocol: Protocol;
  port: number;
  /** A number or a container port's name; undefined: the same as port. Informational: the slice carries each endpoint's number. */
  targetPort?: number | string;
  nodePort?: number;
}

export interface ServiceObj {
  namespace: string;
  name: string;
  /** spec.type: ClusterIP (default), NodePort, LoadBalancer, ExternalName. */
  type: string;
  /** spec.clusterIPs (or the single clusterIP); ["None"] for a headless Service. */
  clusterIPs: string[];
  /** spec.ipFamilies ("IPv4" | "IPv6"), index-matched to clusterIPs; [] from an older API server. */
  ipFamilies: string[];
  ports: ServicePort[];
  sessionAffinity: 'None' | 'ClientIP';
  /** sessionAffinityConfig.clientIP.timeoutSeconds, defaulted to 10800 (3 h) as the API server does; meaningful with ClientIP only. */
  affinityTimeoutSeconds: number;
  internalTrafficPolicy: 'Cluster' | 'Local';
  externalTrafficPolicy: 'Cluster' | 'Local';
  /** spec.healthCheckNodePort; 0 when unset. */
  healthCheckNodePort: number;
  externalIPs: string[];
  /** status.loadBalancer.ingress[] with an ip; ipMode "VIP" when unset. */
  loadBalancerIngress: { ip: string; ipMode: string }[];
  loadBalancerSourceRanges: string[];
  /** The label service.kubernetes.io/service-proxy-name: another proxy owns the Service. */
  proxyName?: string;
  /** The label service.kubernetes.io/headless is present. */
  headlessLabel: boolean;
  /** metadata.creationTimestamp (RFC 3339, UTC): the oldest Service wins a clash of external claims. */
  created?: string;
}

export interface SliceEndpoint {
  addresses: string[];
  /** conditions.ready; unset means ready. */
  ready: boolean;
  /** conditions.serving; unset means true (kube-proxy's slice cache: nil || true). */
  serving: boolean;
  /** conditions.terminating; unset means false. */
  terminating: boolean;
  nodeName?: string;
}

export interface SlicePort {
  name: string;
  protocol: Protocol;
  port: number;
}

export interface EndpointSliceObj {
  namespace: string;
  name: string;
  /** The kubernetes.io/service-name label: the Service the slice belongs to. */
  service: string;
  /** IPv4, IPv6 or FQDN. */
  addressType: string;
  endpoints: SliceEndpoint[];
  ports: SlicePort[];
}
