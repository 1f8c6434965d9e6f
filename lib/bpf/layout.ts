// Byte layouts of the map keys and values in bpf/twill_maps.h.
import { addrBytes, addrFromBytes, bits, type Addr } from '../net/ip.js';
import { macBytes, macString } from '../sys/rtnl.js';

export const EP_KEY_SIZE = 20;
export const EP_VALUE_SIZE = 24;
export const COUNTERS_SIZE = 80;
export const EP_F_NO_FAST = 0x1;
export const EP_F_PENDING = 0x2;
export const EP_F_POL_IN = 0x4;
export const EP_F_POL_OUT = 0x8;
export const IPC_KEY_SIZE = 24;
export const IPC_VALUE_SIZE = 8;
export const POL_KEY_SIZE = 16;
export const POL_VALUE_SIZE = 8;
/** A policy trie entry stored for ADD: key, then value. */
export const ALLOW_RECORD = POL_KEY_SIZE + POL_VALUE_SIZE;
export const ID_ANY = 0;
export const ID_HOST = 1;
export const ID_WORLD = 2;
export const ID_UNKNOWN = 3;
export const IPC_F_HOST = 0x1;
export const POL_INGRESS = 1;
export const POL_EGRESS = 2;
/** The maps of twill_tc.c, by their pin names. */
export const MAP_NAMES = ['endpoints', 'counters', 'ipcache', 'policy'] as const;
export type MapName = (typeof MAP_NAMES)[number];
/** Marker offset the loader replaces with nf_conn.status's (TWILL_CT_STATUS_MARKER). */
export const CT_STATUS_MARKER = 0x7ee8;

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
}

const COUNTER_FIELDS = ['redirectPackets', 'redirectBytes', 'passPackets', 'passBytes', 'spoofedPackets', 'spoofedBytes', 'policyInPackets', 'policyInBytes', 'policyOutPackets', 'policyOutBytes'] as const;

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
}

export function ipcValue(e: IpcEntry): Buffer {
  const v = Buffer.alloc(IPC_VALUE_SIZE);
  v.writeUInt32LE(e.identity, 0);
  v.writeUInt32LE(e.flags, 4);
  return v;
}

export const parseIpcValue = (v: Buffer): IpcEntry => ({ identity: v.readUInt32LE(0), flags: v.readUInt32LE(4) });

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
