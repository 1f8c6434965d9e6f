// `twill sync --watch` against the API server: Namespaces, Pods and NetworkPolicies are
// watched (cluster/watch.ts) and every change reaches the kernel within a debounce of
// milliseconds; the node table keeps its interval.
import type { NetConf } from '../config/types.js';
import type { KubeAccess } from '../cluster/k8s.js';
import { COLLECTIONS } from '../cluster/k8s.js';
import { Informer } from '../cluster/watch.js';
import { addObjects, emptyCluster } from '../policy/objects.js';
import { syncNetworkPolicy } from './sync-policy.js';

const DEBOUNCE_MS = 20;

function logLine(level: string, msg: string, fields: Record<string, unknown>): void {
  process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields })}\n`);
}

/** Starts the watches; resolves never (until stop aborts). */
export async function watchPolicy(access: KubeAccess, networks: () => NetConf[], stop: AbortSignal): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  let first = true;
  const informers = Object.entries(COLLECTIONS).map(([kind, path]) => new Informer(access, kind, path, () => schedule(), logLine));
  const apply = (): void => {
    timer = undefined;
    // Until every collection has been listed once, a partial view would isolate or open pods wrongly.
    if (informers.some((i) => i.lists === 0)) return;
    const started = Date.now();
    const objects = emptyCluster();
    for (const i of informers) addObjects(objects, [...i.items.values()]);
    for (const conf of networks()) {
      try {
        const r = syncNetworkPolicy(conf, objects, `watch of ${access.server}`);
        const a = r.applied;
        logLine('info', first ? 'policy synced' : 'policy updated', {
          network: conf.name, ms: Date.now() - started, policies: r.policies, identities: r.identities,
          ...(a ? { added: a.policyAdded, removed: a.policyRemoved, ipcacheChanged: a.ipcacheChanged, endpointsSwitched: a.flagsChanged } : {}),
          ...(r.problems.length ? { problems: r.problems } : {}),
        });
      } catch (e) {
        logLine('error', 'policy sync failed', { network: conf.name, error: (e as Error).message });
      }
    }
    first = false;
  };
  const schedule = (): void => {
    timer ??= setTimeout(apply, DEBOUNCE_MS);
  };
  await Promise.all(informers.map((i) => i.run(stop)));
  if (timer) clearTimeout(timer);
}
