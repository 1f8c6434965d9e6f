// What the socket-level Service translation serves, as the compile step hands it to apply: one
// frontend per (address, port, protocol, scope) with the backends it translates to. Pure data;
// lib/datapath/services.ts turns it into the node's maps.

export type ServiceProtocol = 'TCP' | 'UDP' | 'SCTP';

/** internal: what sockets and pods on the node reach (ClusterIP, and every frontend for them); external: traffic from outside. */
export type FrontendScope = 'internal' | 'external';

export interface ServiceBackend {
  address: string;
  port: number;
}

export interface Frontend {
  family: 4 | 6;
  address: string;
  port: number;
  protocol: ServiceProtocol;
  scope: FrontendScope;
  /** Stable id of (Service, port), 1..2^32-1: affinity and reverse translation key on it. */
  serviceId: number;
  /** Ready endpoints. */
  backends: ServiceBackend[];
  /** Serving and terminating endpoints: used only when there is no ready one (KEP-1669). */
  terminating: ServiceBackend[];
  /** With no endpoint at all: reject (no endpoints) or drop (traffic policy Local, none local). Both refuse a socket. */
  whenEmpty: 'reject' | 'drop';
  /** sessionAffinity ClientIP timeoutSeconds; 0: no affinity. */
  affinitySeconds: number;
}
