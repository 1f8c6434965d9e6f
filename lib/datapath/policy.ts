// Policy in the kernel: an endpoint's allowances and the ipcache, written so that no packet
// ever meets a moment of allow-all or deny-all. A sync adds what is new, then switches the
// endpoints' "selected" flags and the ipcache, then removes what is gone (make before break).
import { parseAddr, parseCidr, type Addr } from '../net/ip.js';
import { BPF_ANY, BPF_NOEXIST, mapDelete, mapKeys, mapLookup, mapUpdate } from '../bpf/sys.js';
import {
  ALLOW_RECORD, EP_F_POL_IN, EP_F_POL_OUT, EP_KEY_SIZE, EP_VALUE_SIZE, ID_UNKNOWN, IPC_F_HOST, IPC_F_POD, IPC_KEY_SIZE, IPC_VALUE_SIZE, POL_EGRESS, POL_INGRESS, POL_KEY_SIZE, POL_VALUE_SIZE,
  epValue, ipcKey, ipcValue, parseEpValue, parseIpcValue, polKey, polValue, type MapName,
} from '../bpf/layout.js';
import { chunkIdentity, type Allow, type IpcacheEntry, type PodDelta, type PodPolicy } from '../policy/compile.js';
import type { PodStart } from './policy-state.js';

type Maps = ReadonlyMap<MapName, number>;

const allowKey = (slot: number, dir: number, a: Allow): Buffer => polKey({ slot, identity: a.identity, dir, proto: a.proto, protoBits: a.protoBits, port: a.port, portBits: a.portBits });

/** The policy trie entries of one pod, in its slot. */
export function allowKeys(slot: number, pp: Pick<PodPolicy, 'ingress' | 'egress'>): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const add = (dir: number, a: Allow): void => {
    const hex = allowKey(slot, dir, a).toString('hex');
    if (!out.has(hex)) out.set(hex, polValue(a.policy));
  };
  for (const a of pp.ingress ?? []) add(POL_INGRESS, a);
  for (const a of pp.egress ?? []) add(POL_EGRESS, a);
  return out;
}

/** A pod address's ipcache value: its namespace's class, when known, makes the class entries apply. */
const podIpcValue = (identity: number, ns: number, flags = 0): Buffer => ipcValue({ identity, flags: flags | (ns ? IPC_F_POD : 0), ns });

/** A direction is selected when the pod has allowances for it (an empty list: deny all); no pod known: both, isolated. */
export const policyFlags = (pp: { ingress?: unknown; egress?: unknown } | undefined): number =>
  pp === undefined ? EP_F_POL_IN | EP_F_POL_OUT : (pp.ingress ? EP_F_POL_IN : 0) | (pp.egress ? EP_F_POL_OUT : 0);

/**
 * A new endpoint's policy (ADD): its addresses' identities and the node's gateway addresses
 * as host; its entries only where the last sync could not write them (the maps did not exist
 * then). pp undefined: the last sync did not know the pod, which then starts isolated both
 * ways (only this node and replies reach it) until a sync knows it. Returns the endpoint's
 * flags and slot to publish once this is in place.
 */
export function installEndpointPolicy(maps: Maps, pp: PodStart | undefined, entriesThere: boolean, addrs: Addr[], gateways: Addr[]): { flags: number; slot: number } {
  const pol = maps.get('policy')!;
  const ipc = maps.get('ipcache')!;
  if (pp && (!entriesThere || pp.learned)) {
    const allow = pp.allow();
    for (let o = 0; o < allow.length; o += ALLOW_RECORD) mapUpdate(pol, allow.subarray(o, o + POL_KEY_SIZE), allow.subarray(o + POL_KEY_SIZE, o + ALLOW_RECORD));
  }
  for (const a of addrs) {
    const identity = (pp && chunkIdentity(pp.chunks, a)) ?? ID_UNKNOWN;
    mapUpdate(ipc, ipcKey(a), podIpcValue(identity, identity === ID_UNKNOWN ? 0 : pp?.ns ?? 0));
  }
  for (const g of gateways) {
    try {
      mapUpdate(ipc, ipcKey(g), ipcValue({ identity: ID_UNKNOWN, flags: IPC_F_HOST }), BPF_NOEXIST);
    } catch {
      // already known (a sync or an earlier pod put it there, with its identity)
    }
  }
  return { flags: policyFlags(pp), slot: pp?.slot ?? 0 };
}

export interface Desired {
  ipcache: IpcacheEntry[];
  /** Every pod of this node, started or about to be, by slot. */
  pods: Map<number, PodPolicy>;
  /** Local endpoints by host ifindex: their pod's slot and policy (undefined: unknown to the sync, isolated). */
  endpoints: Map<number, { slot: number; pp: PodPolicy | undefined }>;
  /** Addresses of local endpoints: the sync's view of them wins only where it knows them. */
  localAddrs: Map<string, number>;
}

export interface ApplyReport {
  policyAdded: number;
  policyRemoved: number;
  ipcacheChanged: number;
  ipcacheRemoved: number;
  flagsChanged: number;
  policyEntries: number;
  ipcacheEntries: number;
}

function dump(fd: number, keySize: number, valueSize: number): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const k of [...mapKeys(fd, keySize)]) {
    const v = Buffer.alloc(valueSize);
    if (mapLookup(fd, k, v)) out.set(k.toString('hex'), v);
  }
  return out;
}

/** What a sync wrote: the tries' contents as it left them (hex key → value). */
export interface Written {
  policy: Map<string, Buffer>;
  ipcache: Map<string, Buffer>;
}

/**
 * Brings the network's policy and ipcache tries and its endpoints' flags to desired; gate
 * sees what is wanted and what is there before anything is written, and may refuse. With
 * last (what the previous sync wrote into these same maps) the tries are not read back: at
 * 10,000 pods reading them costs ~50,000 syscalls. Local pods' addresses are written either
 * way, since ADD and DEL change those.
 */
export function applyPolicy(maps: Maps, d: Desired, last?: Written, gate?: (want: Written, have: Written) => void): ApplyReport & { written: Written } {
  const pol = maps.get('policy')!, ipc = maps.get('ipcache')!, eps = maps.get('endpoints')!;
  const want = new Map<string, Buffer>();
  for (const [slot, pp] of d.pods) for (const [k, v] of allowKeys(slot, pp)) want.set(k, v);
  const wantIpc = new Map<string, Buffer>();
  // The namespace class of each identity a local address may take (its pod's).
  const nsOf = new Map<number, number>();
  for (const e of d.ipcache) {
    wantIpc.set(ipcKey(e.cidr.addr, e.cidr.prefix).toString('hex'), podIpcValue(e.identity, e.ns, e.host ? IPC_F_HOST : 0));
    if (e.ns) nsOf.set(e.identity, e.ns);
  }
  for (const { pp } of d.endpoints.values()) for (const ch of pp?.chunks ?? []) if (pp!.ns) nsOf.set(ch.identity, pp!.ns);
  for (const [cidr, identity] of d.localAddrs) {
    const c = parseCidr(cidr)!;
    const k = ipcKey(c.addr, c.prefix).toString('hex');
    const prev = wantIpc.get(k);
    wantIpc.set(k, podIpcValue(identity, identity === ID_UNKNOWN ? 0 : nsOf.get(identity) ?? 0, prev ? parseIpcValue(prev).flags & IPC_F_HOST : 0));
  }
  const havePol = last?.policy ?? dump(pol, POL_KEY_SIZE, POL_VALUE_SIZE);
  const haveIpc = last ? new Map(last.ipcache) : dump(ipc, IPC_KEY_SIZE, IPC_VALUE_SIZE);
  if (last) {
    for (const cidr of d.localAddrs.keys()) {
      const c = parseCidr(cidr)!;
      haveIpc.delete(ipcKey(c.addr, c.prefix).toString('hex'));
    }
  }
  // Before the first write: a state refused here leaves the maps exactly as they were.
  gate?.({ policy: want, ipcache: wantIpc }, { policy: havePol, ipcache: haveIpc });
  const r: ApplyReport = { policyAdded: 0, policyRemoved: 0, ipcacheChanged: 0, ipcacheRemoved: 0, flagsChanged: 0, policyEntries: want.size, ipcacheEntries: wantIpc.size };
  // 1. Everything that allows more, and the new identities of addresses.
  for (const [k, v] of want) {
    if (havePol.get(k)?.equals(v)) continue;
    mapUpdate(pol, Buffer.from(k, 'hex'), v, BPF_ANY);
    r.policyAdded++;
  }
  for (const [k, v] of wantIpc) {
    if (haveIpc.get(k)?.equals(v)) continue;
    mapUpdate(ipc, Buffer.from(k, 'hex'), v, BPF_ANY);
    r.ipcacheChanged++;
  }
  // 2. Which endpoints a policy selects, each direction.
  const v = Buffer.alloc(EP_VALUE_SIZE);
  for (const k of [...mapKeys(eps, EP_KEY_SIZE)]) {
    if (!mapLookup(eps, k, v)) continue;
    const ep = parseEpValue(v);
    const e = d.endpoints.get(ep.ifindex);
    if (!e) continue;
    const flags = (ep.flags & ~(EP_F_POL_IN | EP_F_POL_OUT)) | policyFlags(e.pp);
    const slot = e.pp ? e.slot : 0;
    if (flags === ep.flags && slot === (ep.policySlot ?? 0)) continue;
    mapUpdate(eps, k, epValue({ ...ep, flags, policySlot: slot }));
    r.flagsChanged++;
  }
  // 3. What is gone.
  for (const k of haveIpc.keys()) {
    if (wantIpc.has(k)) continue;
    mapDelete(ipc, Buffer.from(k, 'hex'));
    r.ipcacheRemoved++;
  }
  for (const k of havePol.keys()) {
    if (want.has(k)) continue;
    mapDelete(pol, Buffer.from(k, 'hex'));
    r.policyRemoved++;
  }
  return { ...r, written: { policy: want, ipcache: wantIpc } };
}

/** A remote pod's change (compile.ts remotePod): new allowances first, then the addresses' identities, then addresses gone. */
export function applyPodDelta(maps: Maps, d: PodDelta | undefined, slots: Readonly<Record<string, number>>, gone: string[]): number {
  const pol = maps.get('policy')!, ipc = maps.get('ipcache')!;
  let n = 0;
  for (const { pod, dir, allow: a } of d?.allows ?? []) {
    const slot = slots[pod];
    if (!slot) continue;
    mapUpdate(pol, allowKey(slot, dir === 'ingress' ? POL_INGRESS : POL_EGRESS, a), polValue(a.policy));
    n++;
  }
  for (const e of d?.ipcache ?? []) {
    mapUpdate(ipc, ipcKey(e.cidr.addr, e.cidr.prefix), podIpcValue(e.identity, e.ns));
    n++;
  }
  for (const ip of gone) {
    const a = parseAddr(ip);
    if (a && mapDelete(ipc, ipcKey(a))) n++;
  }
  return n;
}
