// `twill sync --watch` against the API server: Namespaces, Pods and NetworkPolicies are
// watched (cluster/watch.ts) and every change reaches the kernel within a debounce of
// milliseconds; the node table keeps its interval.
import type { NetConf } from '../config/types.js';
import type { KubeAccess } from '../cluster/k8s.js';
import { COLLECTIONS } from '../cluster/k8s.js';
import { Informer } from '../cluster/watch.js';
import { addObjects, emptyCluster, parsePod, type PodObj } from '../policy/objects.js';
import { AddressClaims } from '../policy/owners.js';
import { applyRemotePod, syncNetworkPolicyView, type PolicyView } from './sync-policy.js';

const DEBOUNCE_MS = 20;

function logLine(level: string, msg: string, fields: Record<string, unknown>): void {
  process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields })}\n`);
}

/** A full compile again at least this often while only single remote pods changed. */
const FULL_EVERY_MS = 60_000;

/**
 * Starts the watches; resolves never (until stop aborts). A change of one pod of another
 * node is applied alone (sync-policy.ts applyRemotePod: work that grows with this node's
 * rules, not with the cluster); anything else — a namespace, a policy, a pod of this node,
 * a fresh list — compiles everything again.
 */
export async function watchPolicy(access: KubeAccess, networks: () => NetConf[], stop: AbortSignal): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  let first = true;
  let full = true;
  let lastFull = 0;
  /** Remote pods changed since the last apply (or whose share of an address did), with the addresses they owned then. */
  const changedPods = new Map<string, string[]>();
  const views = new Map<string, PolicyView>();
  // The objects, parsed once each: an event re-parses only what it carries.
  const objects = emptyCluster();
  // Who owns each address as pods come and go: a late event of a pod that no longer owns an address never touches it.
  const claims = new AddressClaims(objects.pods);
  const isLocal = (key: string, p: PodObj | undefined): boolean => [...views.values()].some((v) => v.local.has(key) || p?.nodeName === v.node);
  const collection = (kind: string): Map<string, unknown> => (kind === 'Namespace' ? objects.namespaces : kind === 'Pod' ? objects.pods : objects.policies);
  const informers = Object.entries(COLLECTIONS).map(([kind, path]) => new Informer(access, kind, path, (key, object) => {
    const c = collection(kind);
    if (key === undefined) {
      c.clear();
      addObjects(objects, [...informers.find((i) => i.kind === kind)!.items.values()]);
      if (kind === 'Pod') claims.reset();
      full = true;
    } else if (kind !== 'Pod') {
      // Namespaces are keyed by name; the informer's key is "namespace/name" (empty namespace).
      c.delete(kind === 'Namespace' ? key.slice(key.indexOf('/') + 1) : key);
      if (object !== undefined) addObjects(objects, [object]);
      full = true;
    } else {
      const before = objects.pods.get(key);
      const next = object !== undefined ? parsePod(object) : undefined;
      // Every pod listing an address this change touches may gain or lose it: what each owned before.
      const touched = new Set([key, ...[...(before?.ips ?? []), ...(next?.ips ?? [])].flatMap((ip) => claims.claimants(ip))]);
      const owned = new Map([...touched].map((k) => [k, claims.owned(k)?.ips ?? []]));
      c.delete(key);
      if (object !== undefined) addObjects(objects, [object]);
      const after = objects.pods.get(key);
      claims.update(key, before, after);
      const moved = [...owned].filter(([k, ips]) => k === key || String(claims.owned(k)?.ips ?? []) !== String(ips));
      // A pod of this node: its addresses come from this node's endpoint records (the whole compile).
      const local = isLocal(key, before) || moved.some(([k]) => isLocal(k, objects.pods.get(k)));
      if (!local && views.size > 0) {
        for (const [k, ips] of moved) if (!changedPods.has(k)) changedPods.set(k, ips);
      } else {
        full = true;
      }
    }
    schedule();
  }, logLine));
  const apply = (): void => {
    timer = undefined;
    // Until every collection has been listed once, a partial view would isolate or open pods wrongly.
    if (informers.some((i) => i.lists === 0)) return;
    const started = Date.now();
    const whole = full || Date.now() - lastFull > FULL_EVERY_MS;
    const pods = [...changedPods];
    full = false;
    changedPods.clear();
    for (const conf of networks()) {
      try {
        const view = views.get(conf.name);
        if (!whole && view) {
          let written = 0;
          for (const [key, oldIps] of pods) {
            const now = claims.owned(key);
            // An address another pod owns now is that pod's to write (it changed too): only one nobody owns goes.
            const gone = oldIps.filter((ip) => !now?.ips.includes(ip) && claims.owner(ip) === undefined);
            written += applyRemotePod(conf, view, now, gone);
          }
          logLine('info', 'policy updated', { network: conf.name, ms: Date.now() - started, pods: pods.map(([k]) => k), written, incremental: true });
          continue;
        }
        const { sync: r, view: v } = syncNetworkPolicyView(conf, objects, `watch of ${access.server}`, view?.compiled.table);
        views.set(conf.name, v);
        const a = r.applied;
        logLine('info', first ? 'policy synced' : 'policy updated', {
          network: conf.name, ms: Date.now() - started, policies: r.policies, identities: r.identities,
          ...(a ? { added: a.policyAdded, removed: a.policyRemoved, ipcacheChanged: a.ipcacheChanged, endpointsSwitched: a.flagsChanged } : {}),
          ...(r.problems.length ? { problems: r.problems } : {}),
        });
      } catch (e) {
        views.delete(conf.name);
        full = true;
        logLine('error', 'policy sync failed', { network: conf.name, error: (e as Error).message });
      }
    }
    if (whole) lastFull = Date.now();
    first = false;
  };
  const schedule = (): void => {
    timer ??= setTimeout(apply, DEBOUNCE_MS);
  };
  await Promise.all(informers.map((i) => i.run(stop)));
  if (timer) clearTimeout(timer);
}
