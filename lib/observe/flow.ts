// A recorded flow in Hubble's terms (flow.proto's JSON field names where the same thing
// exists), so `twill observe -o json` feeds the jq scripts and log shippers written for
// `hubble observe -o json`; what Hubble has no field for sits under "twill".
import { formatAddr } from '../net/ip.js';
import { EV_DROP, EV_END, EV_NEW, FLOW_DROPPED, POL_EGRESS, POL_INGRESS } from '../bpf/layout.js';
import {
  POINT_TO_ENDPOINT, POINT_TO_STACK, REASON_BAD_EXT_HDR, REASON_FRAG_NOT_FOUND, REASON_INVALID_PACKET, REASON_INVALID_SOURCE_IP, REASON_POLICY_DENIED, REASON_UNKNOWN_L4,
  REASON_UNROUTABLE_IP, REASON_UNSUPPORTED_L3,
} from '../bpf/abi.generated.js';
import type { FlowEntry } from '../bpf/flows.js';
import type { Namer, Peer, PolicyRef } from './names.js';

export const DROP_REASONS: Record<number, string> = {
  [REASON_INVALID_SOURCE_IP]: 'INVALID_SOURCE_IP', [REASON_POLICY_DENIED]: 'POLICY_DENIED', [REASON_INVALID_PACKET]: 'INVALID_PACKET_DROPPED', [REASON_UNSUPPORTED_L3]: 'UNSUPPORTED_L3_PROTOCOL',
  [REASON_UNKNOWN_L4]: 'UNKNOWN_L4_PROTOCOL', [REASON_UNROUTABLE_IP]: 'STALE_OR_UNROUTABLE_IP', [REASON_BAD_EXT_HDR]: 'INVALID_IPV6_EXTENSION_HEADER',
  [REASON_FRAG_NOT_FOUND]: 'FIRST_LOGICAL_DATAGRAM_FRAGMENT_NOT_FOUND',
};
const POINTS: Record<number, string> = { [POINT_TO_STACK]: 'TO_STACK', [POINT_TO_ENDPOINT]: 'TO_ENDPOINT' };
const EVENTS: Record<number, string> = { [EV_NEW]: 'new', [EV_DROP]: 'drop', [EV_END]: 'end' };
/** TCP header bits (FIN = 1 … CWR = 128), in the order hubble prints them. */
const TCP_FLAGS: [string, number][] = [['SYN', 2], ['ACK', 16], ['FIN', 1], ['RST', 4], ['PSH', 8], ['URG', 32], ['ECE', 64], ['CWR', 128]];
export const PROTOCOLS: Record<number, string> = { 6: 'TCP', 17: 'UDP', 132: 'SCTP', 1: 'ICMPv4', 58: 'ICMPv6' };

export interface HubbleFlow {
  time: string;
  verdict: 'FORWARDED' | 'DROPPED';
  drop_reason?: number;
  drop_reason_desc?: string;
  IP: { source: string; destination: string; ipVersion: 'IPv4' | 'IPv6' };
  l4?: Record<string, Record<string, unknown>>;
  source: Peer;
  destination: Peer;
  Type: 'L3_L4';
  node_name: string;
  event_type: { type: number };
  traffic_direction: 'INGRESS' | 'EGRESS';
  trace_observation_point?: string;
  is_reply?: boolean;
  Summary: string;
  egress_allowed_by?: PolicyRef[];
  ingress_allowed_by?: PolicyRef[];
  egress_denied_by?: PolicyRef[];
  ingress_denied_by?: PolicyRef[];
  twill: { network: string; event: string; first_seen: string; last_seen: string; packets: number; bytes: number; sent_by?: string; denied_pod?: string };
}

/** The line a terminal shows: the same flow, named for reading. */
export interface FlowLine {
  time: Date;
  source: string;
  destination: string;
  protocol: string;
  verdict: 'FORWARDED' | 'DROPPED';
  /** TYPE/REASON: where it went, or why it was dropped and by what. */
  why: string;
  summary: string;
  flow: HubbleFlow;
}

export type Clock = (ns: bigint) => Date;

const iso = (d: Date): string => d.toISOString();
const tcpFlags = (f: number): string[] => TCP_FLAGS.filter(([, bit]) => f & bit).map(([n]) => n);
// gopacket's names for the types (what Hubble's summaries print).
const ICMP4: Record<number, string> = {
  0: 'EchoReply', 3: 'DestinationUnreachable', 4: 'SourceQuench', 5: 'Redirect', 8: 'EchoRequest',
  9: 'RouterAdvertisement', 10: 'RouterSolicitation', 11: 'TimeExceeded', 12: 'ParameterProblem', 13: 'Timestamp', 14: 'TimestampReply',
};
const ICMP6: Record<number, string> = {
  1: 'DestinationUnreachable', 2: 'PacketTooBig', 3: 'TimeExceeded', 4: 'ParameterProblem', 128: 'EchoRequest', 129: 'EchoReply',
  130: 'MLDv1MulticastListenerQuery', 131: 'MLDv1MulticastListenerReport', 132: 'MLDv1MulticastListenerDone',
  133: 'RouterSolicitation', 134: 'RouterAdvertisement', 135: 'NeighborSolicitation', 136: 'NeighborAdvertisement', 137: 'Redirect',
  143: 'MLDv2MulticastListenerReport',
};

function l4Of(e: FlowEntry): HubbleFlow['l4'] {
  const { proto, sport, dport } = e.key;
  if (proto === 6) return { TCP: { source_port: sport, destination_port: dport, flags: Object.fromEntries(tcpFlags(e.rec.tcpFlags).map((f) => [f, true])) } };
  if (proto === 17) return { UDP: { source_port: sport, destination_port: dport } };
  if (proto === 132) return { SCTP: { source_port: sport, destination_port: dport } };
  if (proto === 1) return { ICMPv4: { type: sport, code: dport } };
  if (proto === 58) return { ICMPv6: { type: sport, code: dport } };
  return undefined;
}

export function summaryOf(e: Pick<FlowEntry, 'key'> & { rec: Pick<FlowEntry['rec'], 'tcpFlags'> }): string {
  const { proto, sport } = e.key;
  if (proto === 6) return `TCP Flags: ${tcpFlags(e.rec.tcpFlags).join(', ') || '-'}`;
  if (proto === 1) return `ICMPv4 ${ICMP4[sport] ?? `type ${sport}`}`;
  if (proto === 58) return `ICMPv6 ${ICMP6[sport] ?? `type ${sport}`}`;
  return PROTOCOLS[proto] ?? `protocol ${proto}`;
}

const hasPorts = (proto: number): boolean => proto === 6 || proto === 17 || proto === 132;
const policyName = (p: PolicyRef): string => `${p.namespace}/${p.name}`;

/** A flow entry (from the history or an event) as Hubble's flow and as a line. */
export function describe(e: FlowEntry, names: Namer, clock: Clock, opts: { network: string; node: string; timeNs?: bigint; kind?: number }): FlowLine {
  const { key, rec } = e;
  const dropped = rec.verdict === FLOW_DROPPED;
  const reason = DROP_REASONS[rec.reason] ?? (rec.reason ? `REASON_${rec.reason}` : undefined);
  // A packet judged at a pod's host veth on its way out (a sender's) is its egress; at the
  // receiver's veth, its ingress. A forged source is the sender's egress, whoever it names.
  const egress = rec.reason === REASON_INVALID_SOURCE_IP || names.servedBy(rec.ifindex, key.src) || (!names.servedBy(rec.ifindex, key.dst) && rec.dir === POL_EGRESS);
  const sentBy = rec.reason === REASON_INVALID_SOURCE_IP ? names.podOfVeth(rec.ifindex) : undefined;
  const source = sentBy ? names.podPeer(sentBy) : names.peer(key.src);
  const destination = names.peer(key.dst);
  const denied = dropped && rec.reason === REASON_POLICY_DENIED ? names.denying(rec.slot, rec.dir, names.pod(rec.dir === POL_EGRESS ? key.src : key.dst)) : undefined;
  const time = clock(opts.timeNs ?? rec.lastNs);
  const l4 = l4Of(e);
  const flow: HubbleFlow = {
    time: iso(time),
    verdict: dropped ? 'DROPPED' : 'FORWARDED',
    ...(dropped ? { drop_reason: rec.reason, drop_reason_desc: reason! } : {}),
    IP: { source: formatAddr(key.src), destination: formatAddr(key.dst), ipVersion: key.src.family === 4 ? 'IPv4' : 'IPv6' },
    ...(l4 ? { l4 } : {}),
    source, destination,
    Type: 'L3_L4',
    node_name: opts.node,
    event_type: { type: dropped ? 1 : 4 }, // Cilium's monitor: 1 drop, 4 trace
    traffic_direction: egress ? 'EGRESS' : 'INGRESS',
    ...(!dropped && POINTS[rec.point] ? { trace_observation_point: POINTS[rec.point]! } : {}),
    ...(rec.reply !== undefined ? { is_reply: rec.reply } : {}),
    Summary: summaryOf(e),
    ...(rec.allowedOut !== undefined ? { egress_allowed_by: [names.policy(rec.allowedOut)] } : {}),
    ...(rec.allowedIn !== undefined ? { ingress_allowed_by: [names.policy(rec.allowedIn)] } : {}),
    ...(denied && rec.dir === POL_EGRESS ? { egress_denied_by: denied.policies } : {}),
    ...(denied && rec.dir === POL_INGRESS ? { ingress_denied_by: denied.policies } : {}),
    twill: {
      network: opts.network, event: opts.kind ? EVENTS[opts.kind] ?? String(opts.kind) : 'flow', first_seen: iso(clock(rec.firstNs)), last_seen: iso(clock(rec.lastNs)),
      packets: Number(rec.packets), bytes: Number(rec.bytes),
      ...(sentBy ? { sent_by: sentBy } : {}), ...(denied?.pod ? { denied_pod: denied.pod } : {}),
    },
  };
  const end = (label: string, port: number): string => (hasPorts(key.proto) ? `${label}:${port}` : label);
  let why: string;
  if (!dropped) {
    const by = [...(flow.egress_allowed_by ?? []), ...(flow.ingress_allowed_by ?? [])].map(policyName);
    why = `${(POINTS[rec.point] ?? 'forwarded').toLowerCase().replace('_', '-')}${by.length ? ` allowed-by ${[...new Set(by)].join(',')}` : ''}`;
  } else if (rec.reason === REASON_POLICY_DENIED) {
    const ps = denied?.policies.map(policyName) ?? [];
    why = `policy ${ps.length ? ps.join(',') : `(${rec.dir === POL_EGRESS ? 'egress' : 'ingress'}: pod unknown to the last sync)`}`;
  } else if (rec.reason === REASON_INVALID_SOURCE_IP) {
    why = `invalid-source-ip${sentBy ? ` sent-by ${sentBy}` : ''}`;
  } else {
    why = (reason ?? 'dropped').toLowerCase().replace(/_/g, '-');
  }
  return {
    time, source: end(sentBy ? `${formatAddr(key.src)} (forged)` : names.label(key.src), key.sport), destination: end(names.label(key.dst), key.dport),
    protocol: PROTOCOLS[key.proto] ?? String(key.proto), verdict: flow.verdict, why,
    summary: `${flow.Summary}${opts.kind === EV_END ? ' (end)' : ''}${opts.kind ? '' : `, ${rec.packets} pkts ${rec.bytes} B`}`,
    flow,
  };
}
