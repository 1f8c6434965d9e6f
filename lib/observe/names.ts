// Who an address of a flow is, from what this host knows without asking anyone: the pods
// attached here (ADD's records), the pods the last `twill sync` read, the node's own
// addresses; and which policies a verdict names (the sync's policy list and slots).
import type { NetConf } from '../config/types.js';
import { formatAddr, type Addr } from '../net/ip.js';
import { readEndpoints, readPodNames, readPodStart, readSlots, readSyncRecord, type EndpointRecord } from '../state/files.js';
import { POL_INGRESS } from '../bpf/layout.js';

/** A flow end as Hubble's Endpoint names it. */
export interface Peer {
  namespace?: string;
  pod_name?: string;
  labels: string[];
  identity?: number;
}

export interface PolicyRef {
  name: string;
  namespace: string;
  kind: 'NetworkPolicy';
}

export class Namer {
  private readonly byAddr = new Map<string, EndpointRecord>();
  private readonly byIfindex = new Map<number, EndpointRecord>();
  private readonly remote: Record<string, string>;
  private readonly host: Set<string>;
  private readonly policies: string[];
  private readonly slotPods = new Map<number, string>();
  /** Pods selected by the same policies share a slot: the flow's own pod names it when it is one of them. */
  private readonly podSlots = new Map<string, number>();

  constructor(readonly conf: NetConf, hostAddrs: readonly Addr[]) {
    for (const e of readEndpoints(conf).values()) {
      this.byIfindex.set(e.ifindex, e);
      for (const a of e.addrs) this.byAddr.set(a, e);
    }
    this.remote = readPodNames(conf);
    this.host = new Set(hostAddrs.map(formatAddr));
    this.policies = readSyncRecord(conf)?.policies ?? [];
    for (const [pod, slot] of Object.entries(readSlots(conf).slots)) {
      this.slotPods.set(slot, pod);
      this.podSlots.set(pod, slot);
    }
  }

  /** The pod behind a host veth (by ifindex), if ADD named it. */
  podOfVeth(ifindex: number): string | undefined {
    const e = this.byIfindex.get(ifindex);
    return e ? `${e.namespace}/${e.name}` : undefined;
  }

  /** Whether the address is one of the pod's behind that veth. */
  servedBy = (ifindex: number, a: Addr): boolean => this.byIfindex.get(ifindex)?.addrs.includes(formatAddr(a)) ?? false;

  /** "namespace/name" of a pod address, local or of the cluster. */
  pod(a: Addr): string | undefined {
    const s = formatAddr(a);
    const e = this.byAddr.get(s);
    return e ? `${e.namespace}/${e.name}` : this.remote[s];
  }

  isHost = (a: Addr): boolean => this.host.has(formatAddr(a));

  podPeer(pod: string): Peer {
    const [namespace, pod_name] = pod.split('/') as [string, string];
    return { namespace, pod_name, labels: [`k8s:io.kubernetes.pod.namespace=${namespace}`] };
  }

  peer(a: Addr): Peer {
    const pod = this.pod(a);
    if (pod) return this.podPeer(pod);
    if (this.isHost(a)) return { labels: ['reserved:host'], identity: 1 };
    return { labels: ['reserved:world'], identity: 2 };
  }

  /** How a flow line shows an address. */
  label(a: Addr): string {
    const pod = this.pod(a);
    if (pod) return pod;
    return this.isHost(a) ? `${formatAddr(a)} (host)` : formatAddr(a);
  }

  policy(i: number): PolicyRef {
    const full = this.policies[i] ?? `?/#${i}`;
    const [namespace, name] = full.split('/') as [string, string];
    return { name, namespace, kind: 'NetworkPolicy' };
  }

  private readonly denied = new Map<string, { pod?: string; policies: PolicyRef[] }>();

  /** The policies that select the slot's pod in that direction: together they deny what none allows. */
  denying(slot: number, dir: number, hint?: string): { pod?: string; policies: PolicyRef[] } {
    const own = hint !== undefined && this.podSlots.get(hint) === slot ? hint : undefined;
    const key = `${slot}/${dir}/${own ?? ''}`;
    let d = this.denied.get(key);
    if (!d) {
      const pod = own ?? this.slotPods.get(slot);
      const start = pod ? readPodStart(this.conf, pod) : undefined;
      const idx = start ? (dir === POL_INGRESS ? start.selectedBy.ingress : start.selectedBy.egress) : [];
      d = pod ? { pod, policies: idx.map((i) => this.policy(i)) } : { policies: [] };
      this.denied.set(key, d); // one file read per denying pod and direction, not per flow
    }
    return d;
  }
}
