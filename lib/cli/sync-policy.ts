// `twill sync`'s policy half: cluster objects → compile → the network's kernel tries and the
// state ADD starts pods from.
import { hostname } from 'node:os';
import type { NetConf } from '../config/types.js';
import { bits, parseAddr } from '../net/ip.js';
import { compile, chunkIdentity, ID_UNKNOWN, type Compiled, type IdTable, type PodPolicy } from '../policy/compile.js';
import type { ClusterObjects, PodObj } from '../policy/objects.js';
import { openNetwork } from '../bpf/loader.js';
import { applyPodDelta, applyPolicy, type ApplyReport, type Written } from '../datapath/policy.js';
import { assignSlots, nodeRanges, readApplied, readEndpoints, readIdTable, readSlots, writeApplied, writeSyncState, type Slots } from '../datapath/policy-state.js';
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

export function syncNetworkPolicyView(conf: NetConf, objects: ClusterObjects, source: string, table?: IdTable): { sync: PolicySync; view: PolicyView } {
  const node = conf.nodeName ?? hostname();
  return withNetworkLock(conf.stateDir, conf.name, () => {
    const records = readEndpoints(conf);
    const pods = new Map(objects.pods);
    const local = new Set<string>();
    for (const p of pods.values()) if (p.nodeName === node) local.add(`${p.namespace}/${p.name}`);
    for (const r of records.values()) {
      const key = `${r.namespace}/${r.name}`;
      const pod = pods.get(key);
      if (!pod) continue;
      // This node knows its pods' addresses before the API server's status does.
      pods.set(key, { ...pod, ips: r.addrs });
      local.add(key);
    }
    const compiled = compile({ ...objects, pods }, { local, hostAddrs: localAddresses(), ranges: nodeRanges(conf) }, table ?? readIdTable(conf));
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
    let applied: ApplyReport | undefined;
    let ids: { policy: number; ipcache: number } | undefined;
    let written: Written | undefined;
    const net = openNetwork(conf.bpffsRoot, conf.name);
    if (net) {
      try {
        const id = (m: 'policy' | 'ipcache'): number => objInfo(net.maps.get(m)!).readUInt32LE(4);
        ids = { policy: id('policy'), ipcache: id('ipcache') };
        const r = applyPolicy(net.maps, { ipcache: compiled.ipcache, pods: bySlot, endpoints, localAddrs }, readApplied(conf, ids));
        ({ written, ...applied } = r);
      } finally {
        net.close();
      }
    }
    const names: Record<string, string> = {};
    for (const p of pods.values()) for (const ip of p.ips) names[ip] = `${p.namespace}/${p.name}`;
    writeApplied(conf, ids, written);
    writeSyncState(conf, compiled.pods, slots, compiled.table, names, {
      time: new Date().toISOString(), source, policies: compiled.policies, blocks: compiled.blocks,
      identities: compiled.identities.size, pods: objects.pods.size, ipcacheEntries: applied?.ipcacheEntries ?? compiled.ipcache.length, policyEntries: applied?.policyEntries ?? 0,
    });
    return {
      sync: { policies: compiled.policies.length, identities: compiled.identities.size, localPods: compiled.pods.size, unknown, ...(applied ? { applied } : {}), problems: compiled.problems },
      view: { compiled, slots, local, node },
    };
  });
}

/**
 * One pod of another node changed or went: its addresses' identities and what a new identity
 * adds to this node's pods, written alone. The record of the last full sync no longer
 * describes the maps, so the next full sync reads them back. Returns the entries written.
 */
export function applyRemotePod(conf: NetConf, view: PolicyView, pod: PodObj | undefined, oldIps: string[]): number {
  return withNetworkLock(conf.stateDir, conf.name, () => {
    const net = openNetwork(conf.bpffsRoot, conf.name);
    if (!net) return 0;
    try {
      const delta = pod ? view.compiled.remotePod(pod) : undefined;
      // The next full compile numbers from here: an identity made now keeps its number, no other takes it.
      if (delta) view.compiled.table = delta.table;
      writeApplied(conf, undefined, undefined);
      return applyPodDelta(net.maps, delta, view.slots.slots, oldIps.filter((ip) => !pod?.ips.includes(ip)));
    } finally {
      net.close();
    }
  });
}
