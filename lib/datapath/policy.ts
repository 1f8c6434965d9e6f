// Policy in the kernel: an endpoint's allowances and the ipcache, written so that no packet
// ever meets a moment of allow-all or deny-all. A sync adds what is new, then switches the
// endpoints' "selected" flags and the ipcache, then removes what is gone (make before break).
import { parseAddr, parseCidr, type Addr } from '../net/ip.js';
import { BPF_NOEXIST, mapUpdate } from '../bpf/sys.js';
import type { MapIO } from '../bpf/map-io.js';
import { Mirror, type Op, type Step } from '../mirror/mirror.js';
import type { Entries, MirrorRecord } from '../mirror/record.js';
import {
  ALLOW_RECORD, EP_F_POL_IN, EP_F_POL_OUT, ID_UNKNOWN, IPC_F_HOST, IPC_F_POD, POL_EGRESS, POL_INGRESS, POL_KEY_SIZE,
  epValue, ipcKey, ipcValue, parseEpValue, parseIpcValue, polKey, polValue, type MapName,
} from '../bpf/layout.js';
import { chunkIdentity, type Allow, type IpcacheEntry, type PodDelta, type PodPolicy } from '../policy/compile.js';
import type { PodStart } from '../state/files.js';

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

/** The tries' contents a sync wants, or finds (hex key → value): what the budget gate weighs. */
export interface Written {
  policy: Entries;
  ipcache: Entries;
}

/** The maps a policy state is mirrored into. */
export type PolicyMap = 'policy' | 'ipcache' | 'endpoints';
export const POLICY_MAPS: readonly PolicyMap[] = ['policy', 'ipcache', 'endpoints'];

/**
 * Make before break: everything that allows more and the addresses' new identities first,
 * then which endpoints a policy selects and in which slot, then what is gone — so no packet
 * meets a slot pointing at entries not yet written, or a revoked allowance before its
 * replacement's selection is switched.
 */
const policyOrder = (patch: (key: Buffer, value: Buffer) => Buffer | undefined): Step<PolicyMap>[] => [
  { put: 'policy' }, { put: 'ipcache' }, { patch: 'endpoints', fn: patch }, { prune: 'ipcache' }, { prune: 'policy' },
];

/**
 * Brings the network's policy and ipcache tries and its endpoints' flags to desired; gate
 * sees what is wanted and what is there before anything is written, and may refuse. With a
 * record of what the previous sync wrote into these same maps the tries are not read back:
 * at 10,000 pods reading them costs ~50,000 syscalls. Local pods' addresses are written either
 * way, since ADD and DEL change those.
 */
export function applyPolicy(maps: ReadonlyMap<PolicyMap, MapIO>, d: Desired, record: MirrorRecord, gate?: (want: Written, have: Written) => void): ApplyReport {
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
  const local: string[] = [];
  for (const [cidr, identity] of d.localAddrs) {
    const c = parseCidr(cidr)!;
    const k = ipcKey(c.addr, c.prefix).toString('hex');
    const prev = wantIpc.get(k);
    wantIpc.set(k, podIpcValue(identity, identity === ID_UNKNOWN ? 0 : nsOf.get(identity) ?? 0, prev ? parseIpcValue(prev).flags & IPC_F_HOST : 0));
    local.push(k);
  }
  // Which endpoints a policy selects, each direction, and the slot of their entries.
  const select = (_k: Buffer, v: Buffer): Buffer | undefined => {
    const ep = parseEpValue(v);
    const e = d.endpoints.get(ep.ifindex);
    if (!e) return undefined;
    const flags = (ep.flags & ~(EP_F_POL_IN | EP_F_POL_OUT)) | policyFlags(e.pp);
    const slot = e.pp ? e.slot : 0;
    if (flags === ep.flags && slot === (ep.policySlot ?? 0)) return undefined;
    return epValue({ ...ep, flags, policySlot: slot });
  };
  const rep = new Mirror(maps, record).apply(policyOrder(select), new Map([['policy', want], ['ipcache', wantIpc]]), {
    shared: { ipcache: local },
    ...(gate ? { gate: (w, h) => gate({ policy: w.get('policy')!, ipcache: w.get('ipcache')! }, { policy: h.get('policy')!, ipcache: h.get('ipcache')! }) } : {}),
  });
  const pol = rep.get('policy')!, ipc = rep.get('ipcache')!;
  return {
    policyAdded: pol.put, policyRemoved: pol.removed, ipcacheChanged: ipc.put, ipcacheRemoved: ipc.removed,
    flagsChanged: rep.get('endpoints')?.patched ?? 0, policyEntries: want.size, ipcacheEntries: wantIpc.size,
  };
}

/**
 * A remote pod's change (compile.ts remotePod): new allowances first, then the addresses'
 * identities, then addresses gone. The record of the last full sync no longer describes the
 * maps after it. Returns the entries written.
 */
export function applyPodDelta(maps: ReadonlyMap<PolicyMap, MapIO>, record: MirrorRecord, d: PodDelta | undefined, slots: Readonly<Record<string, number>>, gone: string[]): number {
  const ops: Op<PolicyMap>[] = [];
  for (const { pod, dir, allow: a } of d?.allows ?? []) {
    const slot = slots[pod];
    if (slot) ops.push({ map: 'policy', key: allowKey(slot, dir === 'ingress' ? POL_INGRESS : POL_EGRESS, a), value: polValue(a.policy) });
  }
  for (const e of d?.ipcache ?? []) ops.push({ map: 'ipcache', key: ipcKey(e.cidr.addr, e.cidr.prefix), value: podIpcValue(e.identity, e.ns) });
  for (const ip of gone) {
    const a = parseAddr(ip);
    if (a) ops.push({ map: 'ipcache', key: ipcKey(a) });
  }
  return new Mirror(maps, record).write(ops);
}
