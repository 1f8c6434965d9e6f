// Byte layouts of the map keys and values in bpf/twill_maps.h.
import { addrBytes, addrFromBytes, type Addr } from '../net/ip.js';
import { macBytes, macString } from '../sys/rtnl.js';

export const EP_KEY_SIZE = 20;
export const EP_VALUE_SIZE = 20;
export const COUNTERS_SIZE = 48;
export const EP_F_NO_FAST = 0x1;
export const EP_F_PENDING = 0x2;
/** The maps of twill_tc.c, by their pin names. */
export const MAP_NAMES = ['endpoints', 'counters'] as const;
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
}

export function epValue(e: Endpoint): Buffer {
  const v = Buffer.alloc(EP_VALUE_SIZE);
  v.writeUInt32LE(e.ifindex, 0);
  v.writeUInt32LE(e.flags, 4);
  macBytes(e.podMac).copy(v, 8);
  macBytes(e.hostMac).copy(v, 14);
  return v;
}

export function parseEpValue(v: Buffer): Endpoint {
  return { ifindex: v.readUInt32LE(0), flags: v.readUInt32LE(4), podMac: macString(v.subarray(8, 14)), hostMac: macString(v.subarray(14, 20)) };
}

export interface Counters {
  redirectPackets: bigint;
  redirectBytes: bigint;
  passPackets: bigint;
  passBytes: bigint;
  spoofedPackets: bigint;
  spoofedBytes: bigint;
}

/** Sums a per-CPU counters value (each CPU's slot is 8-byte aligned). */
export function sumCounters(v: Buffer, cpus: number): Counters {
  const c: Counters = { redirectPackets: 0n, redirectBytes: 0n, passPackets: 0n, passBytes: 0n, spoofedPackets: 0n, spoofedBytes: 0n };
  for (let i = 0; i < cpus; i++) {
    const o = i * COUNTERS_SIZE;
    c.redirectPackets += v.readBigUInt64LE(o);
    c.redirectBytes += v.readBigUInt64LE(o + 8);
    c.passPackets += v.readBigUInt64LE(o + 16);
    c.passBytes += v.readBigUInt64LE(o + 24);
    c.spoofedPackets += v.readBigUInt64LE(o + 32);
    c.spoofedBytes += v.readBigUInt64LE(o + 40);
  }
  return c;
}

export const ifindexKey = (ifindex: number): Buffer => {
  const k = Buffer.alloc(4);
  k.writeUInt32LE(ifindex);
  return k;
};
