// The eBPF data path of one endpoint: attach the pinned program to the host veth and
// publish the pod's addresses in the endpoint map; the reverse on DEL; verification on CHECK.
// Callers that change a network's maps hold its lock (datapath/netlock.ts): the DEL or GC
// that removes the last endpoint releases the network's pins, and must not race an ADD.
import { existsSync, readdirSync, unlinkSync } from '../sys/fs.js';
import type { Addr } from '../net/ip.js';
import { formatAddr } from '../net/ip.js';
import { linkPinNames, linksDir, loadNetwork, openNetwork, pinnedNetworks, pinOwner, releaseNetwork, TO_POD_SUFFIX, type Loaded } from '../bpf/loader.js';
import { COUNTERS_SIZE, EP_F_NO_FAST, EP_F_PENDING, EP_KEY_SIZE, EP_VALUE_SIZE, epKey, epKeyAddr, epValue, ifindexKey, ipcKey, parseEpValue, sumCounters, type Counters, type Endpoint } from '../bpf/layout.js';
import { mapDelete, mapKeys, mapLookup, mapUpdate, objInfo, possibleCpus } from '../bpf/sys.js';
import { attachTcx as attachTcxLink } from '../bpf/attach/tcx.js';
import { attachClsact, attachClsactFilters, hasFilter, type TcDirection } from '../bpf/attach/tc.js';
import { installEndpointPolicy } from './policy.js';
import type { PodStart } from './policy-state.js';
import { crashPoint } from '../crash.js';

export type AttachMode = 'auto' | 'tcx' | 'legacy';

export interface EbpfNet {
  root: string;
  network: string;
  attach: AttachMode;
  maxEndpoints: number;
  /** Flow history entries (0: none, and no events). */
  flowEntries: number;
  /** Set when the network enforces NetworkPolicy: the trie sizes. */
  policy?: { ipcache: number; policy: number };
}

const sizesOf = (n: EbpfNet) => ({ endpoints: n.maxEndpoints, flows: n.flowEntries, ...(n.policy ? { ipcache: n.policy.ipcache, policy: n.policy.policy } : {}) });

function isEmpty(eps: number): boolean {
  for (const _ of mapKeys(eps, EP_KEY_SIZE)) return false;
  return true;
}

export interface EndpointSpec {
  hostName: string;
  hostIndex: number;
  hostMac: string;
  podMac: string;
  addrs: Addr[];
  /** Whether the chain's bandwidth plugin shapes the pod; unknown when twill's entry does not declare the capability. */
  shaping: 'shaped' | 'unshaped' | 'unknown';
  /** Networks that enforce policy: the pod's from the last sync (undefined: unknown, isolated), the id of the policy map that sync wrote to, and the node's gateway addresses. */
  policy?: { pod: PodStart | undefined; syncedMap: number | undefined; gateways: Addr[] };
}

const linkPin = (dir: string, hostName: string, dir2: TcDirection = 'ingress'): string => `${linksDir(dir)}/${hostName}${dir2 === 'egress' ? TO_POD_SUFFIX : ''}`;

function attachTcx(l: Loaded, hostName: string, hostIndex: number, dir: TcDirection = 'ingress'): void {
  attachTcxLink(dir === 'ingress' ? l.progFd : l.toProgFd, hostIndex, dir, linkPin(l.dir, hostName, dir));
}

/**
 * Attaches and publishes; returns how the program was attached. Undoes itself on failure.
 *
 * auto attaches with legacy clsact + cls_bpf: a tcx attach or detach waits for an RCU grace
 * period in the kernel (~15 ms measured on every ADD and DEL), legacy does not. The one
 * thing legacy collides with, the bandwidth plugin's ingress qdisc, never meets it here:
 * a shaped pod gets no program at all (its traffic must cross the host veth's qdiscs, so
 * it never takes the fast path; its map entry carries EP_F_NO_FAST for the other pods).
 */
export function ebpfAdd(n: EbpfNet, s: EndpointSpec): 'tcx' | 'legacy' | 'none' | 'pending' {
  const l = loadNetwork(n.root, n.network, sizesOf(n));
  try {
    // Without policy, a pod that is (or may be) shaped gets no program now: see datapath/promote.ts.
    // With policy every pod gets both programs; a shaped or pending one by tcx, which leaves
    // the bandwidth plugin's qdiscs alone.
    const mode = n.policy ? attachBoth(n, l, s) : s.shaping === 'unshaped' ? attachProgram(n, l, s.hostName, s.hostIndex) : s.shaping === 'shaped' ? 'none' : 'pending';
    crashPoint('add:attached');
    let flags = s.shaping === 'shaped' ? EP_F_NO_FAST : s.shaping === 'unknown' ? EP_F_PENDING : 0;
    const eps = l.maps.get('endpoints')!;
    try {
      let policySlot = 0;
      if (s.policy) {
        // The sync wrote the pod's entries already unless the maps were made since.
        const there = s.policy.syncedMap !== undefined && s.policy.syncedMap === objInfo(l.maps.get('policy')!).readUInt32LE(4);
        const p = installEndpointPolicy(l.maps, s.policy.pod, there, s.addrs, s.policy.gateways);
        flags |= p.flags;
        policySlot = p.slot;
      }
      const ep = epValue({ ifindex: s.hostIndex, flags, podMac: s.podMac, hostMac: s.hostMac, policySlot });
      for (const a of s.addrs) mapUpdate(eps, epKey(a), ep);
      crashPoint('add:published');
    } catch (e) {
      for (const a of s.addrs) mapDelete(eps, epKey(a));
      unpin(l.dir, s.hostName);
      if (isEmpty(eps)) releaseNetwork(n.root, n.network);
      throw e;
    }
    return s.policy && s.shaping !== 'unshaped' ? (s.shaping === 'shaped' ? 'none' : 'pending') : mode;
  } finally {
    l.close();
  }
}

function attachBoth(n: EbpfNet, l: Loaded, s: EndpointSpec): 'tcx' | 'legacy' {
  if (s.shaping === 'unshaped' && n.attach !== 'tcx') {
    try {
      attachClsactFilters(s.hostIndex, [['ingress', l.progFd], ['egress', l.toProgFd]], 'twill');
      return 'legacy';
    } catch (e) {
      if (n.attach === 'legacy') throw e;
    }
  }
  attachTcx(l, s.hostName, s.hostIndex, 'ingress');
  attachTcx(l, s.hostName, s.hostIndex, 'egress');
  return 'tcx';
}

function attachProgram(n: EbpfNet, l: Loaded, hostName: string, hostIndex: number): 'tcx' | 'legacy' {
  if (n.attach === 'tcx') {
    attachTcx(l, hostName, hostIndex);
    return 'tcx';
  }
  try {
    attachClsact(hostIndex, l.progFd, 'twill');
    return 'legacy';
  } catch (e) {
    if (n.attach === 'legacy') throw e;
    attachTcx(l, hostName, hostIndex); // clsact unavailable (e.g. sch_ingress not built): tcx instead
    return 'tcx';
  }
}

/**
 * Settles a pending endpoint once its chain is known: a shaped pod stays off the fast path
 * (and gets no program, so the bandwidth plugin's qdiscs are its alone); any other gets its
 * program and the fast path. Returns how it was settled, or undefined when the endpoint is gone.
 */
export function ebpfPromote(n: EbpfNet, hostName: string, hostIndex: number, shaped: boolean): 'shaped' | 'tcx' | 'legacy' | undefined {
  const l = loadNetwork(n.root, n.network, sizesOf(n));
  try {
    const eps = l.maps.get('endpoints')!;
    const v = Buffer.alloc(EP_VALUE_SIZE);
    const mine = [...mapKeys(eps, EP_KEY_SIZE)].filter((k) => mapLookup(eps, k, v) && parseEpValue(v).ifindex === hostIndex);
    if (mine.length === 0) return undefined;
    // With policy the programs are attached at ADD already (tcx).
    const how = shaped ? 'shaped' : n.policy ? 'tcx' : attachProgram(n, l, hostName, hostIndex);
    for (const k of mine) {
      if (!mapLookup(eps, k, v)) continue;
      const ep = parseEpValue(v);
      mapUpdate(eps, k, epValue({ ...ep, flags: (ep.flags & ~EP_F_PENDING) | (shaped ? EP_F_NO_FAST : 0) }));
    }
    return how;
  } finally {
    l.close();
  }
}

/** The endpoint's link pins that exist, under every name a version of twill gave them. */
const pinsOf = (dir: string, hostName: string): string[] => linkPinNames(hostName).map((f) => `${linksDir(dir)}/${f}`).filter((p) => existsSync(p));

function unpin(dir: string, hostName: string): void {
  for (const p of pinsOf(dir, hostName)) {
    try {
      unlinkSync(p);
    } catch {
      // not pinned
    }
  }
}

/**
 * Removes the endpoint's entries (only those still pointing at its veth: an address may
 * already belong to a new pod) and its counters. Returns the tcx link pin, if any, for the
 * caller to remove once the veth is gone: unpinning a live tcx link waits for an RCU grace
 * period, unpinning one whose device is gone does not. Nothing to do when the network never
 * used eBPF on this host.
 */
export function ebpfDel(n: EbpfNet, hostName: string, hostIndex: number | undefined, addrs: Addr[], live?: () => ReadonlyMap<number, string>): string[] {
  const net = openNetwork(n.root, n.network);
  if (!net) return [];
  try {
    // A map an upgrade added and no ADD has made yet is missing: the others still serve the DEL.
    const eps = net.maps.get('endpoints');
    if (eps === undefined) return [];
    const v = Buffer.alloc(EP_VALUE_SIZE);
    // Without addresses (a DEL retried after the IPAM already released them, and no
    // prevResult) the map is searched for entries pointing at this veth.
    const keys = addrs.length > 0 || hostIndex === undefined ? addrs.map(epKey) : [...mapKeys(eps, EP_KEY_SIZE)];
    // With the veth gone, an entry is ours only if no other live veth holds it: the address
    // may already be a new pod's (a DEL retried after the IPAM handed it out again).
    const links = hostIndex === undefined ? live?.() : undefined;
    const ours = (ifindex: number): boolean => {
      if (hostIndex !== undefined) return ifindex === hostIndex;
      const name = links?.get(ifindex);
      return name === undefined || name === hostName;
    };
    for (const k of keys) {
      if (!mapLookup(eps, k, v) || !ours(parseEpValue(v).ifindex)) continue;
      mapDelete(eps, k);
      // The address is free again: it names no pod until the next one's ADD says which.
      const ipc = net.maps.get('ipcache');
      if (n.policy && ipc !== undefined) mapDelete(ipc, ipcKey(epKeyAddr(k)));
    }
    const ctr = net.maps.get('counters');
    if (hostIndex !== undefined && ctr !== undefined) mapDelete(ctr, ifindexKey(hostIndex));
    if (isEmpty(eps)) {
      // The last endpoint: the network's maps and program go with it.
      releaseNetwork(n.root, n.network);
      return [];
    }
    return pinsOf(net.dir, hostName);
  } finally {
    net.close();
  }
}

export function unpinLater(pins: string[]): void {
  for (const p of pins) {
    try {
      unlinkSync(p);
    } catch {
      // already gone
    }
  }
}

export interface EbpfState {
  entries: { addr: Addr; ep: Endpoint }[];
  linkPinned: boolean;
  legacyFilter: boolean;
}

export function ebpfRead(n: EbpfNet, hostName: string, hostIndex: number, addrs: Addr[]): EbpfState | undefined {
  const net = openNetwork(n.root, n.network);
  if (!net) return undefined;
  try {
    const eps = net.maps.get('endpoints');
    if (eps === undefined) return undefined;
    const entries: EbpfState['entries'] = [];
    const v = Buffer.alloc(EP_VALUE_SIZE);
    for (const a of addrs) if (mapLookup(eps, epKey(a), v)) entries.push({ addr: a, ep: parseEpValue(v) });
    return { entries, linkPinned: existsSync(linkPin(net.dir, hostName)), legacyFilter: hostIndex > 0 && hasFilter(hostIndex, 'ingress') };
  } finally {
    net.close();
  }
}

export interface MapEntry {
  addr: Addr;
  ep: Endpoint;
}

export function listEndpoints(root: string, network: string): MapEntry[] | undefined {
  const net = openNetwork(root, network);
  if (!net) return undefined;
  try {
    const eps = net.maps.get('endpoints');
    if (eps === undefined) return undefined;
    const out: MapEntry[] = [];
    const v = Buffer.alloc(EP_VALUE_SIZE);
    for (const k of mapKeys(eps, EP_KEY_SIZE)) if (mapLookup(eps, k, v)) out.push({ addr: epKeyAddr(k), ep: parseEpValue(v) });
    return out;
  } finally {
    net.close();
  }
}

/**
 * GC: drops entries and link pins of every veth not in keep (by host veth name / ifindex),
 * and releases the network's maps and program when no endpoint is left.
 */
export function ebpfGc(n: EbpfNet, keepNames: ReadonlySet<string>, liveIndexes: ReadonlyMap<number, string>): string[] {
  const net = openNetwork(n.root, n.network);
  if (!net) return [];
  const removed: string[] = [];
  try {
    const eps = net.maps.get('endpoints');
    if (eps === undefined) return [];
    const ctr = net.maps.get('counters');
    const v = Buffer.alloc(EP_VALUE_SIZE);
    for (const k of [...mapKeys(eps, EP_KEY_SIZE)]) {
      if (!mapLookup(eps, k, v)) continue;
      const ifindex = parseEpValue(v).ifindex;
      const name = liveIndexes.get(ifindex);
      if (name === undefined || !keepNames.has(name)) {
        mapDelete(eps, k);
        if (ctr !== undefined) mapDelete(ctr, ifindexKey(ifindex));
        removed.push(formatAddr(epKeyAddr(k)));
      }
    }
    for (const pin of readdirSync(linksDir(net.dir))) {
      const owner = pinOwner(pin).hostName;
      if (!keepNames.has(owner)) {
        unpinLater([`${linksDir(net.dir)}/${pin}`]);
        removed.push(`link ${pin}`);
      }
    }
    if (isEmpty(eps)) {
      releaseNetwork(n.root, n.network);
      removed.push(`maps and program of ${n.network}`);
    }
    return removed;
  } finally {
    net.close();
  }
}

/** Drops every entry and link pin of a veth that no longer exists (sync --cleanup). */
export function pruneEbpf(n: EbpfNet, liveIndexes: ReadonlyMap<number, string>): string[] {
  return ebpfGc(n, new Set(liveIndexes.values()), liveIndexes);
}

export interface EndpointRow {
  network: string;
  addr: string;
  hostIfName: string;
  hostIndex: number;
  podIfName: string;
  containerId: string;
  podMac: string;
  fastPath: boolean;
  /** Not yet known whether the chain shapes it (see datapath/promote.ts). */
  pending?: boolean;
  counters?: Counters;
}

/** Every endpoint of every network pinned under root, with its per-CPU counters summed. */
export function endpointTable(root: string, links: { index: number; name: string; alias: string }[]): EndpointRow[] {
  const rows: EndpointRow[] = [];
  const byIndex = new Map(links.map((l) => [l.index, l]));
  for (const network of pinnedNetworks(root)) {
    const net = openNetwork(root, network);
    if (!net) continue;
    try {
      const eps = net.maps.get('endpoints');
      const ctr = net.maps.get('counters');
      if (eps === undefined) continue;
      const v = Buffer.alloc(EP_VALUE_SIZE);
      const cv = Buffer.alloc(COUNTERS_SIZE * possibleCpus());
      for (const k of mapKeys(eps, EP_KEY_SIZE)) {
        if (!mapLookup(eps, k, v)) continue;
        const ep = parseEpValue(v);
        const link = byIndex.get(ep.ifindex);
        // alias: twill:<network hash>:<ifname>:<containerID>
        const [, , podIfName = '', ...id] = (link?.alias ?? '').split(':');
        rows.push({
          network, addr: formatAddr(epKeyAddr(k)), hostIfName: link?.name ?? '(gone)', hostIndex: ep.ifindex,
          podIfName, containerId: id.join(':'), podMac: ep.podMac, fastPath: (ep.flags & (EP_F_NO_FAST | EP_F_PENDING)) === 0,
          ...(ep.flags & EP_F_PENDING ? { pending: true } : {}),
          ...(ctr !== undefined && mapLookup(ctr, ifindexKey(ep.ifindex), cv) ? { counters: sumCounters(cv, possibleCpus()) } : {}),
        });
      }
    } finally {
      net.close();
    }
  }
  return rows;
}
