// The Service maps' keys and values as bytes (bpf/twill_sock_abi.h; offsets from the generated
// ABI, so a C change that moves a field fails the agreement test, not a connection).
import { LAYOUTS, LB_AF_INET, LB_AF_INET6, LB_SCOPE_EXT, LB_SCOPE_INT } from '../bpf/abi-sock.generated.js';
import { addrBytes, addrFromBytes, formatAddr, parseAddr } from '../net/ip.js';
import type { Protocol as ServiceProtocol } from '../policy/objects.js';
import type { Scope as FrontendScope } from '../services/model.js';

export const PROTO_NUMBER: Record<ServiceProtocol, number> = { TCP: 6, UDP: 17, SCTP: 132 };
const PROTO_NAME = new Map<number, ServiceProtocol>(Object.entries(PROTO_NUMBER).map(([k, v]) => [v, k as ServiceProtocol]));

const FE_K = LAYOUTS.lb_fe_key, FE_V = LAYOUTS.lb_fe_val, BE = LAYOUTS.lb_be;
export const FE_KEY_SIZE = FE_K.size, FE_VALUE_SIZE = FE_V.size, BE_VALUE_SIZE = BE.size, SLOT_VALUE_SIZE = 4;

/** 16 address bytes (IPv4 in the first 4) for a family; throws on an address of another family. */
function addr16(family: 4 | 6, address: string): Buffer {
  const a = parseAddr(address);
  if (!a || a.family !== family) throw new Error(`not an IPv${family} address: ${address}`);
  const b = Buffer.alloc(16);
  addrBytes(a).copy(b);
  return b;
}

const familyCode = (f: 4 | 6): number => (f === 4 ? LB_AF_INET : LB_AF_INET6);
const familyOf = (code: number): 4 | 6 => (code === LB_AF_INET ? 4 : 6);
const addrOf = (family: 4 | 6, b: Buffer): string => formatAddr(addrFromBytes(family === 4 ? b.subarray(0, 4) : b.subarray(0, 16)));

export interface FeKey {
  family: 4 | 6;
  address: string;
  port: number;
  protocol: ServiceProtocol;
  scope: FrontendScope;
}

export function feKey(k: FeKey): Buffer {
  const b = Buffer.alloc(FE_K.size);
  b.writeUInt32LE(familyCode(k.family), FE_K.offsets.family);
  addr16(k.family, k.address).copy(b, FE_K.offsets.addr);
  b.writeUInt16BE(k.port, FE_K.offsets.port);
  b[FE_K.offsets.proto] = PROTO_NUMBER[k.protocol];
  b[FE_K.offsets.scope] = k.scope === 'internal' ? LB_SCOPE_INT : LB_SCOPE_EXT;
  return b;
}

export function parseFeKey(b: Buffer): FeKey {
  const family = familyOf(b.readUInt32LE(FE_K.offsets.family));
  return {
    family, address: addrOf(family, b.subarray(FE_K.offsets.addr, FE_K.offsets.addr + 16)), port: b.readUInt16BE(FE_K.offsets.port),
    protocol: PROTO_NAME.get(b[FE_K.offsets.proto]!) ?? 'TCP', scope: b[FE_K.offsets.scope] === LB_SCOPE_INT ? 'internal' : 'external',
  };
}

export interface FeValue {
  svcId: number;
  base: number;
  count: number;
  term: number;
  flags: number;
  cap: number;
  affinityTimeout: number;
}

export function feValue(v: FeValue): Buffer {
  const b = Buffer.alloc(FE_V.size);
  b.writeUInt32LE(v.svcId, FE_V.offsets.svc_id);
  b.writeUInt32LE(v.base, FE_V.offsets.base);
  b.writeUInt16LE(v.count, FE_V.offsets.count);
  b.writeUInt16LE(v.term, FE_V.offsets.term);
  b.writeUInt16LE(v.flags, FE_V.offsets.flags);
  b.writeUInt16LE(v.cap, FE_V.offsets.cap);
  b.writeUInt32LE(v.affinityTimeout, FE_V.offsets.affinity_timeout);
  return b;
}

export function parseFeValue(b: Buffer): FeValue {
  return {
    svcId: b.readUInt32LE(FE_V.offsets.svc_id), base: b.readUInt32LE(FE_V.offsets.base), count: b.readUInt16LE(FE_V.offsets.count), term: b.readUInt16LE(FE_V.offsets.term),
    flags: b.readUInt16LE(FE_V.offsets.flags), cap: b.readUInt16LE(FE_V.offsets.cap), affinityTimeout: b.readUInt32LE(FE_V.offsets.affinity_timeout),
  };
}

export interface BeValue {
  family: 4 | 6;
  address: string;
  port: number;
  protocol: ServiceProtocol;
  flags: number;
  svcId: number;
}

export function beValue(v: BeValue): Buffer {
  const b = Buffer.alloc(BE.size);
  b.writeUInt32LE(familyCode(v.family), BE.offsets.family);
  addr16(v.family, v.address).copy(b, BE.offsets.addr);
  b.writeUInt16BE(v.port, BE.offsets.port);
  b[BE.offsets.proto] = PROTO_NUMBER[v.protocol];
  b[BE.offsets.flags] = v.flags;
  b.writeUInt32LE(v.svcId, BE.offsets.svc_id);
  return b;
}

export function parseBeValue(b: Buffer): BeValue {
  const family = familyOf(b.readUInt32LE(BE.offsets.family));
  return {
    family, address: addrOf(family, b.subarray(BE.offsets.addr, BE.offsets.addr + 16)), port: b.readUInt16BE(BE.offsets.port),
    protocol: PROTO_NAME.get(b[BE.offsets.proto]!) ?? 'TCP', flags: b[BE.offsets.flags]!, svcId: b.readUInt32LE(BE.offsets.svc_id),
  };
}

/** An array map's key (u32 index). */
export function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
}
