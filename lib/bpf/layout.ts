// Byte layouts of the map keys and values in bpf/twill_maps.h. Their sizes and constants are
// C's, generated from the object's BTF (abi.generated.ts); the encoders below write at the
// offsets a unit test checks against the generated layouts.
import { addrBytes, addrFromBytes, bits, type Addr } from '../net/ip.js';
import { macBytes, macString } from '../net/mac.js';
import { LAYOUTS, TWILL_CT_STATUS_MARKER } from './abi.generated.js';

export {
  CLASS_CLUSTER_POD, EP_F_NO_FAST, EP_F_PENDING, EP_F_POL_IN, EP_F_POL_OUT, EV_DROP, EV_END, EV_NEW, FLOW_DROPPED, FLOW_FORWARDED, ID_ANY, ID_HOST, ID_UNKNOWN, ID_WORLD,
  IPC_F_HOST, IPC_F_POD, OBS_CONF, OBS_CONF_OFF, OBS_LOST, OBS_READER, OBS_RECORD_TTL, POL_EGRESS, POL_INGRESS,
} from './abi.generated.js';

export const EP_KEY_SIZE = LAYOUTS.ep_key.size;
export const EP_VALUE_SIZE = LAYOUTS.ep_value.size;
export const COUNTERS_SIZE = LAYOUTS.ep_counters.size;
export const IPC_KEY_SIZE = LAYOUTS.ipc_key.size;
export const IPC_VALUE_SIZE = LAYOUTS.ipc_value.size;
export const POL_KEY_SIZE = LAYOUTS.pol_key.size;
export const POL_VALUE_SIZE = LAYOUTS.pol_value.size;
/** A policy trie entry stored for ADD: key, then value. */
export const ALLOW_RECORD = POL_KEY_SIZE + POL_VALUE_SIZE;
/** The maps of twill_tc.c, by their pin names. */
export const MAP_NAMES = ['endpoints', 'counters', 'ipcache', 'policy', 'flows', 'events', 'observer', 'frags', 'echoes'] as const;
export type MapName = (typeof MAP_NAMES)[number];
/** Marker offset the loader replaces with nf_conn.status's (TWILL_CT_STATUS_MARKER). */
export const CT_STATUS_MARKER = TWILL_CT_STATUS_MARKER;

export function epKey(a: Addr): Buffer {
  const k = Buffer.alloc(EP_KEY_SIZE);
  k.writeUInt32LE(a.family, 0);
  addrBytes(a).copy(k, 4);
  return k;
}

export function epKeyAddr(k: Buffer): Addr {
  const family = k.readUInt32LE(0) === 6 ? 6 : 4;
  return addrFromBytes(k.subarray(4, family === 4 ? 8 : 20));
}

export interface Endpoint {
  ifindex: number;
  flags: number;
  podMac: string;
  hostMac: string;
  /** The pod's slot in the policy trie (0: none). */
  policySlot?: number;
}

export function epValue(e: Endpoint): Buffer {
  const v = Buffer.alloc(EP_VALUE_SIZE);
  v.writeUInt32LE(e.ifindex, 0);
  v.writeUInt32LE(e.flags, 4);
  macBytes(e.podMac).copy(v, 8);
  macBytes(e.hostMac).copy(v, 14);
  v.writeUInt32LE(e.policySlot ?? 0, 20);
  return v;
}

export function parseEpValue(v: Buffer): Endpoint {
  const slot = v.readUInt32LE(20);
  return { ifindex: v.readUInt32LE(0), flags: v.readUInt32LE(4), podMac: macString(v.subarray(8, 14)), hostMac: macString(v.subarray(14, 20)), ...(slot ? { policySlot: slot } : {}) };
}

export interface Counters {
  redirectPackets: bigint;
  redirectBytes: bigint;
  passPackets: bigint;
  passBytes: bigint;
  spoofedPackets: bigint;
  spoofedBytes: bigint;
  policyInPackets: bigint;
  policyInBytes: bigint;
  policyOutPackets: bigint;
  policyOutBytes: bigint;
  /** New flows over the veth's record budget: neither recorded nor an event. */
  recordsSuppressed: bigint;
}

const COUNTER_FIELDS = ['redirectPackets', 'redirectBytes', 'passPackets', 'passBytes', 'spoofedPackets', 'spoofedBytes', 'policyInPackets', 'policyInBytes', 'policyOutPackets', 'policyOutBytes', 'recordsSuppressed'] as const;
/** ep_counters.budget_tat follows the counters: the record budget's state, not a count. */

/** Sums a per-CPU counters value (each CPU's slot is 8-byte aligned). */
export function sumCounters(v: Buffer, cpus: number): Counters {
  const c = Object.fromEntries(COUNTER_FIELDS.map((f) => [f, 0n])) as unknown as Counters;
  for (let i = 0; i < cpus; i++) {
    COUNTER_FIELDS.forEach((f, j) => {
      c[f] += v.readBigUInt64LE(i * COUNTERS_SIZE + j * 8);
    });
  }
  return c;
}

/** ipcache key: the prefix counts the 32 family bits first (struct ipc_key); default: the address alone. */
export function ipcKey(a: Addr, prefix = bits(a.family)): Buffer {
  const k = Buffer.alloc(IPC_KEY_SIZE);
  k.writeUInt32LE(32 + prefix, 0);
  k.writeUInt32LE(a.family, 4);
  addrBytes(a).copy(k, 8);
  return k;
}

export function parseIpcKey(k: Buffer): { addr: Addr; prefix: number } {
  const family = k.readUInt32LE(4) === 6 ? 6 : 4;
  return { addr: addrFromBytes(k.subarray(8, family === 4 ? 12 : 24)), prefix: k.readUInt32LE(0) - 32 };
}

export interface IpcEntry {
  identity: number;
  flags: number;
  /** A pod's namespace class (with IPC_F_POD); 0: none. */
  ns?: number;
}

export function ipcValue(e: IpcEntry): Buffer {
  const v = Buffer.alloc(IPC_VALUE_SIZE);
  v.writeUInt32LE(e.identity, 0);
  v.writeUInt32LE(e.flags, 4);
  v.writeUInt32LE(e.ns ?? 0, 8);
  return v;
}

export const parseIpcValue = (v: Buffer): IpcEntry => ({ identity: v.readUInt32LE(0), flags: v.readUInt32LE(4), ns: v.readUInt32LE(8) });

/** One policy trie entry: proto 0 with protoBits 0 is any protocol; portBits 0 is any port. */
export interface PolKey {
  slot: number;
  identity: number;
  dir: number;
  proto: number;
  /** Whether the protocol is part of the prefix. */
  protoBits: 0 | 8;
  port: number;
  portBits: number;
}

export function polKey(p: PolKey): Buffer {
  const k = Buffer.alloc(POL_KEY_SIZE);
  k.writeUInt32LE(72 + p.protoBits + (p.protoBits ? p.portBits : 0), 0);
  k.writeUInt32LE(p.slot, 4);
  k.writeUInt32LE(p.identity, 8);
  k[12] = p.dir;
  k[13] = p.protoBits ? p.proto : 0;
  k.writeUInt16BE(p.protoBits && p.portBits ? p.port : 0, 14);
  return k;
}

export function parsePolKey(k: Buffer): PolKey {
  const len = k.readUInt32LE(0);
  const protoBits = len >= 80 ? 8 : 0;
  return { slot: k.readUInt32LE(4), identity: k.readUInt32LE(8), dir: k[12]!, proto: k[13]!, protoBits, port: k.readUInt16BE(14), portBits: Math.max(0, len - 80) };
}

export function polValue(policy: number): Buffer {
  const v = Buffer.alloc(POL_VALUE_SIZE);
  v.writeUInt32LE(policy, 0);
  return v;
}

export const ifindexKey = (ifindex: number): Buffer => {
  const k = Buffer.alloc(4);
  k.writeUInt32LE(ifindex);
  return k;
};

/** Later fragments' transport fields, from the first (struct frag_key / frag_value). */
export const FRAG_KEY_SIZE = LAYOUTS.frag_key.size;
export const FRAG_VALUE_SIZE = LAYOUTS.frag_value.size;
/** Echo requests whose replies may pass (struct echo_key; value: __u64, valid until). */
export const ECHO_KEY_SIZE = LAYOUTS.echo_key.size;
export const ECHO_VALUE_SIZE = 8;
export const FLOW_KEY_SIZE = LAYOUTS.flow_key.size;
export const FLOW_VALUE_SIZE = LAYOUTS.flow_value.size;
export const FLOW_EVENT_SIZE = LAYOUTS.flow_event.size;

export const obsIndex = (i: number): Buffer => ifindexKey(i);
export const u64 = (n: number | bigint): Buffer => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(n));
  return b;
};

/** One direction of a connection as its packets name it (struct flow_key). */
export interface FlowKey {
  src: Addr;
  dst: Addr;
  proto: number;
  /** TCP/UDP/SCTP ports; for ICMP the type and code. */
  sport: number;
  dport: number;
}

/** What the kernel recorded of a flow (struct flow_value); times are bpf_ktime_get_ns(). */
export interface FlowRecord {
  firstNs: bigint;
  lastNs: bigint;
  packets: bigint;
  bytes: bigint;
  /** The allowing policy's index in the sync state, when a policy judged it. */
  allowedOut?: number;
  allowedIn?: number;
  /** Slot of the pod whose policy denied it. */
  slot: number;
  verdict: number;
  reason: number;
  point: number;
  tcpFlags: number;
  /** undefined: conntrack did not know. */
  reply?: boolean;
  dir: number;
  ifindex: number;
}

export function parseFlowKey(k: Buffer, o = 0): FlowKey {
  const family = k.readUInt32LE(o) === 6 ? 6 : 4;
  const n = family === 4 ? 4 : 16;
  return {
    proto: k[o + 4]!, sport: k.readUInt16BE(o + 8), dport: k.readUInt16BE(o + 10),
    src: addrFromBytes(k.subarray(o + 12, o + 12 + n)), dst: addrFromBytes(k.subarray(o + 28, o + 28 + n)),
  };
}

export function flowKey(f: FlowKey): Buffer {
  const k = Buffer.alloc(FLOW_KEY_SIZE);
  k.writeUInt32LE(f.src.family, 0);
  k[4] = f.proto;
  k.writeUInt16BE(f.sport, 8);
  k.writeUInt16BE(f.dport, 10);
  addrBytes(f.src).copy(k, 12);
  addrBytes(f.dst).copy(k, 28);
  return k;
}

export function parseFlowValue(v: Buffer, o = 0): FlowRecord {
  const out = v.readUInt32LE(o + 32), inn = v.readUInt32LE(o + 36), reply = v[o + 48]!;
  return {
    firstNs: v.readBigUInt64LE(o), lastNs: v.readBigUInt64LE(o + 8), packets: v.readBigUInt64LE(o + 16), bytes: v.readBigUInt64LE(o + 24),
    ...(out ? { allowedOut: out - 1 } : {}), ...(inn ? { allowedIn: inn - 1 } : {}),
    slot: v.readUInt32LE(o + 40), verdict: v[o + 44]!, reason: v[o + 45]!, point: v[o + 46]!, tcpFlags: v[o + 47]!,
    ...(reply ? { reply: reply === 2 } : {}), dir: v[o + 49]!, ifindex: v.readUInt32LE(o + 52),
  };
}
