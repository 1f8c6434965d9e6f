// `twill sync`'s policy half: cluster objects → compile → the network's kernel tries and the
// state ADD starts pods from.
import { hostname } from 'node:os';
import type { NetConf } from '../config/types.js';
import { bits, parseAddr } from '../net/ip.js';
import { compile, chunkIdentity, ID_UNKNOWN, type Compiled, type IdTable, type PodPolicy } from '../policy/compile.js';
import type { ClusterObjects, PodObj } from '../policy/objects.js';
import { ownedPods } from '../policy/owners.js';
import { openNetwork } from '../bpf/loader.js';
import { allowKeys, applyPodDelta, applyPolicy, POLICY_MAPS, type ApplyReport } from '../datapath/policy.js';
import { assignSlots, nodeRanges, policyRecord, writeSyncState } from '../datapath/policy-state.js';
import { readEndpoints, readIdTable, readSlots, type EndpointRecord, type Slots } from '../state/files.js';
import { bpfMapIOs } from '../bpf/map-io.js';
import { configuredSize, entriesByPolicy, overBudget, peakEntries, PolicyRefused, recordRefusal, writeBudget, type BudgetMap, type BudgetRecord, type Refusal } from '../datapath/policy-budget.js';
import { Logger } from '../log.js';
import { objInfo } from '../bpf/sys.js';
import { withNetworkLock } from '../datapath/netlock.js';
import { localAddresses } from '../sys/podlink.js';

export interface PolicySync {
  policies: number;
  identities: number;
  localPods: number;
  /** Local endpoints whose pod the objects do not name: kept isolated. */
  unknown: string[];
  applied?: ApplyReport;
  problems: string[];
}


/** What a long-running sync keeps of its last full compile to apply one remote pod's change alone. */
export interface PolicyView {
  compiled: Compiled;
  slots: Slots;
  local: ReadonlySet<string>;
  node: string;
}

export const syncNetworkPolicy = (conf: NetConf, objects: ClusterObjects, source: string): PolicySync => syncNetworkPolicyView(conf, objects, source).sync;

/** Compiles that may be thrown away because this node's pods changed meanwhile, before one is applied as it is. */
const RECOMPILES = 2;

/** This node's pods the objects name, with the addresses ADD gave them: what a compile took of the endpoint records. */
function localBasis(records: ReadonlyMap<string, EndpointRecord>, objects: ClusterObjects): string {
  const out: string[] = [];
  for (const r of records.values()) if (objects.pods.has(`${r.namespace}/${r.name}`)) out.push(`${r.namespace}/${r.name} ${r.addrs.join(',')}`);
  return out.sort().join('\n');
}

function compileFor(conf: NetConf, objects: ClusterObjects, records: ReadonlyMap<string, EndpointRecord>, node: string, table: IdTable | undefined): { compiled: Compiled; pods: Map<string, PodObj>; local: Set<string> } {
  const pods = new Map(objects.pods);
  const local = new Set<string>();
  const attached = new Set<string>();
  for (const p of pods.values()) if (p.nodeName === node) local.add(`${p.namespace}/${p.name}`);
  for (const r of records.values()) {
    const key = `${r.namespace}/${r.name}`;
    const pod = pods.get(key);
    if (!pod) continue;
    // This node knows its pods' addresses before the API server's status does.
    pods.set(key, { ...pod, ips: r.addrs });
    local.add(key);
    attached.add(key);
  }
  // One owner per address before the compile sees the pods: its ipcache is "last writer wins".
  for (const [key, pod] of ownedPods(pods, attached)) pods.set(key, pod);
  const compiled = compile({ ...objects, pods }, { local, hostAddrs: localAddresses(), ranges: nodeRanges(conf) }, table ?? readIdTable(conf));
  return { compiled, pods, local };
}

/**
 * Compiles with no lock held (ADD and DEL of the node go on meanwhile), then under the
 * network lock checks that the state fits the maps at its peak (policy-budget.ts) and
 * applies it, or refuses it whole: PolicyRefused, recorded for status and metrics, logged,
 * the maps untouched. A compile whose view of this node's pods an ADD or DEL changed is
 * done again (a few times, then applied as it is: a pod it does not know stays isolated).
 */
export function syncNetworkPolicyView(conf: NetConf, objects: ClusterObjects, source: string, table?: IdTable): { sync: PolicySync; view: PolicyView } {
  const node = conf.nodeName ?? hostname();
  const log = new Logger();
  log.configure(conf, { network: conf.name });
  for (let attempt = 0; ; attempt++) {
    const seen = readEndpoints(conf);
    const basis = localBasis(seen, objects);
    const t0 = Date.now();
    log.debug('policy compiling', { pods: objects.pods.size, policies: objects.policies.size, attempt });
    const { compiled, pods, local } = compileFor(conf, objects, seen, node, table);
    log.debug('policy compiled', { ms: Date.now() - t0, identities: compiled.identities.size, localPods: compiled.pods.size });
    // The new state alone does not fit: refused without taking the lock (no swap can make room).
    const alone = entriesAlone(conf, compiled);
    const r = alone ?? withNetworkLock(conf.stateDir, conf.name, () => {
      const records = readEndpoints(conf);
      if (attempt < RECOMPILES && localBasis(records, objects) !== basis) return undefined;
      return applyCompiled(conf, compiled, records, pods, source, objects.pods.size);
    });
    if (!r) {
      log.info('policy compile outdated: this node\'s pods changed meanwhile', { attempt });
      continue;
    }
    if ('refusal' in r) {
      recordRefusal(conf, r.refusal);
      log.error('policy sync refused', { error: r.refusal.message, map: r.refusal.map, needed: r.refusal.needed, available: r.refusal.available, ...(r.refusal.policy ? { policy: r.refusal.policy } : {}) });
      throw new PolicyRefused(r.refusal);
    }
    return { sync: r.sync, view: { compiled, slots: r.slots, local, node } };
  }
}

/** The network's pinned maps when the policy maps are among them (an upgrade may not have made them yet). */
function openPolicyMaps(conf: NetConf): ReturnType<typeof openNetwork> {
  const net = openNetwork(conf.bpffsRoot, conf.name);
  if (net && (net.missing.includes('policy') || net.missing.includes('ipcache'))) {
    net.close();
    return undefined;
  }
  return net;
}

/** max_entries (bpf_map_info) of the pinned maps a policy state fills. */
function budgetMaps(maps: ReadonlyMap<string, number>): { sizes: Record<BudgetMap, number> } {
  const policy = objInfo(maps.get('policy')!), ipcache = objInfo(maps.get('ipcache')!);
  return { sizes: { policy: policy.readUInt32LE(16), ipcache: ipcache.readUInt32LE(16) } };
}

const configuredSizes = (conf: NetConf): Record<BudgetMap, number> => ({ policy: configuredSize(conf, 'policy'), ipcache: configuredSize(conf, 'ipcache') });

/** max_entries of the network's pinned maps, or the configured sizes before the first ADD made them. */
function mapSizes(conf: NetConf): Record<BudgetMap, number> {
  const net = openPolicyMaps(conf);
  if (!net) return configuredSizes(conf);
  try {
    return budgetMaps(net.maps).sizes;
  } finally {
    net.close();
  }
}

/** A refusal when the compiled state alone, before any swap, is larger than the maps. */
function entriesAlone(conf: NetConf, compiled: Compiled): { refusal: Refusal } | undefined {
  const byPolicy = entriesByPolicy(compiled.pods.values());
  let policy = 0;
  for (const n of byPolicy.values()) policy += n;
  const size = mapSizes(conf);
  const refused = overBudget({ policy: { needed: policy, available: size.policy }, ipcache: { needed: compiled.ipcache.length, available: size.ipcache } }, byPolicy, compiled.policies, IPCACHE_WHAT);
  return refused ? { refusal: refused } : undefined;
}

const IPCACHE_WHAT = 'the cluster\'s pod addresses, this node\'s and the ipBlock prefixes';

/** Under the network lock: the compile against this node's endpoints as they are now, written if it fits. */
function applyCompiled(conf: NetConf, compiled: Compiled, records: ReadonlyMap<string, EndpointRecord>, pods: ReadonlyMap<string, PodObj>, source: string, podCount: number): { sync: PolicySync; slots: Slots } | { refusal: Refusal } {
  // A slot per group of this node's pods, kept while the group is: its entries live there from before a pod's ADD.
  const slots: Slots = assignSlots(readSlots(conf), compiled.pods);
  const bySlot = new Map([...compiled.pods].map(([key, pp]) => [slots.slots[key]!, pp]));
  const endpoints = new Map<number, { slot: number; pp: PodPolicy | undefined }>();
  const localAddrs = new Map<string, number>();
  const unknown: string[] = [];
  for (const r of records.values()) {
    const pp = compiled.pods.get(`${r.namespace}/${r.name}`);
    if (!pp) unknown.push(`${r.namespace}/${r.name}`);
    endpoints.set(r.ifindex, { slot: slots.slots[`${r.namespace}/${r.name}`] ?? 0, pp });
    for (const s of r.addrs) {
      const a = parseAddr(s);
      if (a) localAddrs.set(`${s}/${bits(a.family)}`, (pp && chunkIdentity(pp.chunks, a)) ?? ID_UNKNOWN);
    }
  }
  const byPolicy = entriesByPolicy(compiled.pods.values());
  let applied: ApplyReport | undefined;
  let use: BudgetRecord['maps'];
  const net = openPolicyMaps(conf);
  if (net) {
    try {
      const size = budgetMaps(net.maps).sizes;
      applied = applyPolicy(bpfMapIOs(net.maps, POLICY_MAPS), { ipcache: compiled.ipcache, pods: bySlot, endpoints, localAddrs }, policyRecord(conf), (want, have) => {
        const peaks = {
          policy: { needed: peakEntries(have.policy, want.policy), available: size.policy, alone: want.policy.size },
          ipcache: { needed: peakEntries(have.ipcache, want.ipcache), available: size.ipcache, alone: want.ipcache.size },
        };
        const refused = overBudget(peaks, byPolicy, compiled.policies, IPCACHE_WHAT);
        if (refused) throw new PolicyRefused(refused);
        use = { policy: { used: want.policy.size, available: size.policy }, ipcache: { used: want.ipcache.size, available: size.ipcache } };
      });
    } catch (e) {
      if (e instanceof PolicyRefused) return { refusal: e.refusal };
      throw e;
    } finally {
      net.close();
    }
  } else {
    // No pod attached yet: ADDs will write these entries into maps of the configured size.
    policyRecord(conf).forget();
    let entries = 0;
    for (const [slot, pp] of bySlot) entries += allowKeys(slot, pp).size;
    const ipc = compiled.ipcache.length + localAddrs.size;
    const size = configuredSizes(conf);
    const peaks = { policy: { needed: entries, available: size.policy }, ipcache: { needed: ipc, available: size.ipcache } };
    const refused = overBudget(peaks, byPolicy, compiled.policies, IPCACHE_WHAT);
    if (refused) return { refusal: refused };
    use = { policy: { used: entries, available: peaks.policy.available }, ipcache: { used: ipc, available: peaks.ipcache.available } };
  }
  const names: Record<string, string> = {};
  for (const p of pods.values()) for (const ip of p.ips) names[ip] = `${p.namespace}/${p.name}`;
  const time = new Date().toISOString();
  writeSyncState(conf, compiled.pods, slots, compiled.table, names, {
    time, source, policies: compiled.policies, blocks: compiled.blocks,
    identities: compiled.identities.size, pods: podCount, ipcacheEntries: applied?.ipcacheEntries ?? compiled.ipcache.length, policyEntries: applied?.policyEntries ?? 0,
  });
  writeBudget(conf, { time, maps: use! });
  return {
    sync: { policies: compiled.policies.length, identities: compiled.identities.size, localPods: compiled.pods.size, unknown, ...(applied ? { applied } : {}), problems: compiled.problems },
    slots,
  };
}

/**
 * One pod of another node changed or went: its addresses' identities and what a new identity
 * adds to this node's pods, written alone. The record of the last full sync no longer
 * describes the maps, so the next full sync reads them back. Returns the entries written.
 */
export function applyRemotePod(conf: NetConf, view: PolicyView, pod: PodObj | undefined, oldIps: string[]): number {
  return withNetworkLock(conf.stateDir, conf.name, () => {
    const net = openPolicyMaps(conf);
    if (!net) return 0;
    try {
      const delta = pod ? view.compiled.remotePod(pod) : undefined;
      // The next full compile numbers from here: an identity made now keeps its number, no other takes it.
      if (delta) view.compiled.table = delta.table;
      return applyPodDelta(bpfMapIOs(net.maps, POLICY_MAPS), policyRecord(conf), delta, view.slots.slots, oldIps.filter((ip) => !pod?.ips.includes(ip)));
    } finally {
      net.close();
    }
  });
}
