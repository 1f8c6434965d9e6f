// The node table's reconciler under `twill sync --watch` with an API server: it subscribes to
// the cache's Nodes (watched, not listed each round) and wakes the sync loop early when the
// table itself changes — a pod CIDR allocated, an address changed, a node come or gone — not
// on each Node status update. The loop keeps its interval as the periodic resync.
import type { ClusterCache } from './cache.js';
import { nodeTable, type NodeList } from './k8s.js';

const DEBOUNCE_MS = 200;
/** How long the first round waits for the first Node list (a GET's deadline). */
const FIRST_LIST_MS = 15_000;

/** Subscribes to Nodes; returns what each round reads the table with (throws while Nodes have never been listed). */
export function nodesReconciler(cache: ClusterCache, wake: () => void): () => Promise<NodeList> {
  const store = cache.store('Node');
  let used = '';
  let timer: NodeJS.Timeout | undefined;
  cache.subscribe('Node', {
    changed: () => {
      timer ??= setTimeout(() => {
        timer = undefined;
        if (JSON.stringify(nodeTable(store.items.values())) !== used) wake();
      }, DEBOUNCE_MS);
    },
  });
  return async () => {
    await cache.settled('Node', FIRST_LIST_MS);
    if (!store.synced) throw new Error(cache.lastError('Node') ?? 'no Node list from the API server yet');
    const table = nodeTable(store.items.values());
    used = JSON.stringify(table);
    return table;
  };
}
