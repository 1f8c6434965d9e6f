// What the node should do with Service traffic: one frontend per (address, port, protocol,
// scope), each with the backends kube-proxy would pick for it and the verdict when there are
// none. compile.ts computes it from the cluster's objects; an apply stage turns it into maps.
import type { Family } from '../net/ip.js';
import type { Protocol } from '../policy/objects.js';

/**
 * Cilium's split of one address by where the traffic comes from (kube-proxy draws the same
 * line with its "short-circuit" rules): internal is pods and the node itself (socket-level
 * translation); external is everything arriving from outside the node (per-packet).
 */
export type Scope = 'internal' | 'external';

export type FrontendKind = 'clusterIP' | 'nodePort' | 'externalIP' | 'loadBalancer';

/**
 * forward: backends exist. reject: the Service has no usable endpoint anywhere (kube-proxy's
 * REJECT: ECONNREFUSED at connect(), ICMP unreachable per packet). drop: it has some, but the
 * traffic policy is Local and none is on this node (kube-proxy's DROP).
 */
export type Verdict = 'forward' | 'reject' | 'drop';

export interface Backend {
  /** Canonical text (Go's net.IP.String()). */
  address: string;
  port: number;
  /** The endpoint's nodeName is this node. */
  local: boolean;
}

export interface Frontend {
  /** "namespace/name". */
  service: string;
  /** The Service port's name ("" when unnamed). */
  portName: string;
  family: Family;
  /** Canonical text of the ClusterIP, node address, external IP or load-balancer IP. */
  address: string;
  port: number;
  protocol: Protocol;
  scope: Scope;
  kind: FrontendKind;
  /** The traffic policy that chose the backends: Local means node-local endpoints only. */
  policy: 'Cluster' | 'Local';
  backends: {
    /** Ready endpoints: what connections are balanced over. */
    ready: Backend[];
    /** Serving and terminating, not ready (KEP-1669): used only while ready is empty. */
    terminating: Backend[];
  };
  verdict: Verdict;
  /** sessionAffinity ClientIP: seconds a client sticks to its backend; 0 without affinity. */
  affinitySeconds: number;
  /** loadBalancerSourceRanges of the frontend's family (network form) on load-balancer frontends; [] = any source. */
  sourceRanges: string[];
  /** The Service's healthCheckNodePort when kube-proxy would serve one (LoadBalancer, externalTrafficPolicy Local); else 0. */
  healthCheckNodePort: number;
}

/** What kube-proxy's healthCheckNodePort server answers for one Service. */
export interface ServiceHealth {
  /** "namespace/name". */
  service: string;
  namespace: string;
  name: string;
  nodePort: number;
  /** Distinct ready endpoint addresses on this node (kube-proxy's LocalReadyEndpoints: squashed by IP). */
  localEndpoints: number;
}

export interface ServicesModel {
  /** Sorted by frontendKey: the same objects give the same model. */
  frontends: Frontend[];
  /** Sorted by service. */
  health: ServiceHealth[];
  /** Services (or frontends) left alone, with why; sorted. */
  skipped: { service: string; reason: string }[];
  /**
   * Services that lost (part of) what they ask for to another (by: its "namespace/name"): a
   * clash, or an address refused as that one's ClusterIP or endpoint. With `only`, also the
   * Services outside it that an emitted one beat. A change of `by` may change `service`.
   */
  blocked?: { service: string; by: string }[];
}

/** A frontend's identity in the maps: two frontends never share one. */
export const frontendKey = (f: Pick<Frontend, 'family' | 'address' | 'port' | 'protocol' | 'scope'>): string =>
  `${f.family}|${f.address}|${f.port}|${f.protocol}|${f.scope}`;

/** An endpoint as apply programs it. */
export interface ServiceBackend {
  address: string;
  port: number;
  /** The endpoint is on this node: traffic from outside reaches it without SNAT (externalTrafficPolicy keeps the client). */
  local?: boolean;
}

/**
 * What apply writes for one frontend (lib/datapath/services.ts): the compile's Frontend with
 * the Service port's stable id, its backends by address, and its verdict when there are none.
 */
export interface LbFrontend {
  family: Family;
  address: string;
  port: number;
  protocol: Protocol;
  scope: Scope;
  /** Stable id of (Service, port), 1..2^32-1: affinity and reverse translation key on it. */
  serviceId: number;
  /** Ready endpoints. */
  backends: ServiceBackend[];
  /** Serving and terminating endpoints: used only when there is no ready one (KEP-1669). */
  terminating: ServiceBackend[];
  /** With no endpoint at all: reject (no endpoints) or drop (traffic policy Local, none local). A socket is refused either way. */
  whenEmpty: 'reject' | 'drop';
  /** sessionAffinity ClientIP timeoutSeconds; 0: no affinity. */
  affinitySeconds: number;
  /**
   * loadBalancerSourceRanges (CIDRs of the frontend's family) of an external-scope
   * load-balancer frontend: traffic from outside the node is served only from these. Absent or
   * empty: any source.
   */
  sourceRanges?: string[];
}
