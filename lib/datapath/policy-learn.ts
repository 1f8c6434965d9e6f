// ADD of a pod the last sync did not know, on a network with policy.kubeconfig: the pod, its
// namespace and that namespace's NetworkPolicies (the only ones that can select it) are read
// from the API server, and the pod's allowances computed against the identities the last sync
// knew. Its own identities take numbers from a range of their own until the next sync names
// it, so they never collide with the sync's. Anything failing leaves the pod isolated.
import type { NetConf } from '../config/types.js';
import { compile, type IdTable } from '../policy/compile.js';
import { addObjects, emptyCluster } from '../policy/objects.js';
import { withNetworkLock } from './netlock.js';
import { nodeRanges, policyRecord, writePodStart, writeSlots } from './policy-state.js';
import { learnedNextPath, readIdTable, readSlots, readSyncRecord } from '../state/files.js';
import { readFileSync } from '../sys/fs.js';
import { writeAtomic } from '../fsx.js';

/** Identities ADD makes are numbered from here (the sync's count up from 256). */
const LEARNED_BASE = 0x80000000;
const TIMEOUT_MS = 3000;

export async function learnPod(conf: NetConf, pod: { namespace: string; name: string }): Promise<boolean> {
  const path = conf.policy?.kubeconfig;
  if (!path) return false;
  const k8s = await import('../cluster/k8s.js');
  const access = await k8s.kubeconfigAccess(path);
  const ns = encodeURIComponent(pod.namespace);
  const [p, n, pols] = await Promise.all([
    k8s.getObject(access, `/api/v1/namespaces/${ns}/pods/${encodeURIComponent(pod.name)}`, TIMEOUT_MS),
    k8s.getObject(access, `/api/v1/namespaces/${ns}`, TIMEOUT_MS),
    k8s.getObject(access, `/apis/networking.k8s.io/v1/namespaces/${ns}/networkpolicies`, TIMEOUT_MS),
  ]);
  const objects = emptyCluster();
  addObjects(objects, [{ ...n, kind: 'Namespace' }, { ...p, kind: 'Pod' }, ...(Array.isArray(pols.items) ? pols.items : []).map((i) => ({ ...(i as object), kind: 'NetworkPolicy' }))]);
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
