// ADD of a pod the last sync did not know, on a network with policy.kubeconfig: given the pod,
// its namespace and that namespace's NetworkPolicies as the API server has them
// (cluster/pod-policy.ts), the pod's allowances are computed against the identities the last sync
// knew. Its own identities take numbers from a range of their own until the next sync names
// it, so they never collide with the sync's. Anything failing leaves the pod isolated.
import type { NetConf } from '../config/types.js';
import { compile, type IdTable } from '../policy/compile.js';
import type { ClusterObjects } from '../policy/objects.js';
import { withNetworkLock } from './netlock.js';
import { nodeRanges, policyRecord, writePodStart, writeSlots } from './policy-state.js';
import { learnedNextPath, readIdTable, readSlots, readSyncRecord } from '../state/files.js';
import { readFileSync } from '../sys/fs.js';
import { writeAtomic } from '../fsx.js';

/** Identities ADD makes are numbered from here (the sync's count up from 256). */
const LEARNED_BASE = 0x80000000;
export function learnPod(conf: NetConf, pod: { namespace: string; name: string }, objects: ClusterObjects): boolean {
  const key = `${pod.namespace}/${pod.name}`;
  if (!objects.pods.has(key)) return false;
  return withNetworkLock(conf.stateDir, conf.name, () => {
    const counter = learnedNextPath(conf);
    let next = LEARNED_BASE;
    try {
      next = Math.max(LEARNED_BASE, Number(readFileSync(counter, 'utf8')) || LEARNED_BASE);
    } catch {
      // the first
    }
    const table: IdTable = { next, ids: readIdTable(conf)?.ids ?? {} };
    const compiled = compile(objects, { local: new Set([key]), hostAddrs: [], ranges: nodeRanges(conf) }, table, { blocks: readSyncRecord(conf)?.blocks ?? [] });
    const pp = compiled.pods.get(key);
    if (!pp) return false;
    writeAtomic(counter, String(compiled.table.next));
    // A slot of its own: a group's slot is shared, and these entries are the pod's alone.
    const slots = readSlots(conf);
    const slot = slots.next++;
    slots.slots[key] = slot;
    writeSlots(conf, slots);
    // ADD writes the entries itself: the last sync's record of the maps no longer holds.
    policyRecord(conf).forget();
    writePodStart(conf, key, pp, slot, true);
    return true;
  });
}
