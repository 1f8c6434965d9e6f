// `twill sync`: one-shot, idempotent reconciliation of every twill network on this host with
// its node table — from Kubernetes Node objects, a nodes file, or the config itself — never
// needed for a packet to flow once programmed. --watch repeats it on an interval.
import { readFileSync } from '../sys/fs.js';
import type { NetConf, NodeEntry } from '../config/types.js';
import { reconcile, type BackendState } from '../datapath/backend.js';
import { ensureNetworkMasq, removeNetworkMasq } from '../datapath/masq.js';
import { removeNetworkGuard } from '../datapath/guard.js';
import { readNodesFile, syncedNodesPath } from '../datapath/nodes.js';
import { mkdirs, writeAtomic } from '../fsx.js';
import { listHostLinkNames, localAddresses } from '../sys/podlink.js';
import { pruneEbpf } from '../datapath/ebpf.js';
import { ebpfNet } from '../datapath/select.js';
import { pinnedNetworks } from '../bpf/loader.js';
import { promotePending } from '../datapath/promote.js';
import { withNetworkLock } from '../datapath/netlock.js';
import { twillNetworks } from './netconfs.js';
import { syncNetworkPolicy, type PolicySync } from './sync-policy.js';
import type { ClusterObjects } from '../policy/objects.js';
import type { NodeList } from '../cluster/k8s.js';
import { readObjectsInto } from '../cluster/file.js';
import { cleanupServices, servicesLine, servicesNetworks, syncServices, type ServicesSync, type ServicesView } from './sync-services.js';

export interface SyncOpts {
  confDir: string;
  network?: string | undefined;
  kubeconfig?: string | undefined;
  inCluster: boolean;
  nodesFile?: string | undefined;
  /** Namespaces, Pods and NetworkPolicies from a file (a List or multi-document YAML). */
  fromFile?: string | undefined;
  cleanup: boolean;
  watch?: number | undefined;
  json: boolean;
  /** Policy comes from the API server's watches (sync-watch.ts), not from each round's list. */
  policyWatched?: boolean;
  /** The node table from the watched cache (cluster/nodes.ts), not from each round's list. */
  nodesWatched?: () => Promise<NodeList>;
  /** Services come from the API server's watches (sync-services.ts servicesReconciler), not from each round. */
  servicesWatched?: boolean;
}

interface Source {
  nodes?: NodeEntry[];
  objects?: ClusterObjects;
  /** Services, EndpointSlices (and Nodes) when a network serves Services. */
  services?: ServicesView;
  note: string;
}

async function source(o: SyncOpts, wantPolicy: boolean, wantServices = false): Promise<Source> {
  if (o.kubeconfig || o.inCluster) {
    const k8s = await import('../cluster/k8s.js');
    const access = o.kubeconfig ? await k8s.kubeconfigAccess(o.kubeconfig) : k8s.inClusterAccess();
    const list = o.nodesWatched ? await o.nodesWatched() : await k8s.listNodes(access);
    let objects: ClusterObjects | undefined;
    if (wantPolicy) {
      const [{ ClusterCache, policyObjects }, { KINDS }, { POLICY_KINDS }] = await Promise.all([import('../cluster/cache.js'), import('../cluster/kinds.js'), import('./sync-watch.js')]);
      const cache = new ClusterCache();
      for (const kind of POLICY_KINDS) cache.relist(kind, (await k8s.listAll(access, KINDS[kind].path)).items);
      objects = policyObjects(cache);
    }
    let services: ServicesView | undefined;
    if (wantServices) {
      const [{ ClusterCache }, { KINDS }, { cacheServicesView }] = await Promise.all([import('../cluster/cache.js'), import('../cluster/kinds.js'), import('./sync-services.js')]);
      const cache = new ClusterCache();
      for (const kind of ['Service', 'EndpointSlice', 'Node'] as const) cache.relist(kind, (await k8s.listAll(access, KINDS[kind].path)).items);
      services = cacheServicesView(cache);
    }
    const objs = objects ? `; ${objects.namespaces.size} namespaces, ${objects.pods.size} pods, ${objects.policies.size} network policies` : '';
    return { nodes: list.nodes, ...(objects ? { objects } : {}), ...(services ? { services } : {}), note: `${list.nodes.length} nodes from ${access.server}${list.pending.length ? `; without a pod CIDR yet: ${list.pending.join(', ')}` : ''}${objs}` };
  }
  if (o.fromFile) {
    const [{ ClusterCache, policyObjects }, { cacheServicesView }] = await Promise.all([import('../cluster/cache.js'), import('./sync-services.js')]);
    const cache = new ClusterCache();
    const skipped = await readObjectsInto(cache, o.fromFile);
    const cluster = policyObjects(cache);
    const services = wantServices ? cacheServicesView(cache) : undefined;
    const svcs = services ? `, ${cache.store('Service').items.size} services, ${cache.store('EndpointSlice').items.size} endpoint slices` : '';
    const nodes = o.nodesFile ? readNodesFile(o.nodesFile, 'nodes file') : undefined;
    return { ...(nodes ? { nodes } : {}), objects: cluster, ...(services ? { services } : {}), note: `${cluster.namespaces.size} namespaces, ${cluster.pods.size} pods, ${cluster.policies.size} network policies${svcs} from ${o.fromFile}${skipped.length ? ` (skipped: ${skipped.slice(0, 5).join('; ')}${skipped.length > 5 ? '; …' : ''})` : ''}` };
  }
  if (o.nodesFile) {
    const nodes = readNodesFile(o.nodesFile, 'nodes file');
    return { nodes, note: `${nodes.length} nodes from ${o.nodesFile}` };
  }
  return { note: 'node table from each network\'s own configuration' };
}

function storeTable(conf: NetConf, nodes: NodeEntry[]): boolean {
  const path = syncedNodesPath(conf);
  const body = `${JSON.stringify({ nodes }, null, 2)}\n`;
  try {
    if (readFileSync(path, 'utf8') === body) return false;
  } catch {
    // first sync
  }
  mkdirs(`${conf.stateDir}/nodes`, 0o700);
  writeAtomic(path, body);
  return true;
}

interface SyncResult {
  network: string;
  tableChanged?: boolean;
  state?: BackendState;
  /** eBPF state removed by --cleanup. */
  pruned?: string[];
  policy?: PolicySync;
  error?: string;
}

/**
 * --cleanup of networks pinned on this host whose configuration is gone: entries of veths
 * that no longer exist go, and the maps and program with the last of them.
 */
function pruneOrphans(o: SyncOpts): SyncResult[] {
  const confs = twillNetworks(o.confDir).flatMap((n) => (n.conf ? [n.conf] : []));
  const names = new Set(confs.map((c) => c.name));
  const byRoot = new Map(confs.map((c) => [c.bpffsRoot, c]));
  const out: SyncResult[] = [];
  for (const conf of byRoot.values()) {
    for (const network of pinnedNetworks(conf.bpffsRoot).filter((x) => !names.has(x))) {
      try {
        out.push({ network, pruned: withNetworkLock(conf.stateDir, network, () => pruneEbpf({ ...ebpfNet(conf), network }, listHostLinkNames())) });
      } catch (e) {
        out.push({ network, error: (e as Error).message });
      }
    }
  }
  return out;
}

async function once(o: SyncOpts): Promise<number> {
  const networks = twillNetworks(o.confDir);
  const confs = networks.flatMap((n) => (n.conf ? [n.conf] : []));
  // Services are node-wide: every network that serves them counts, unless --network names one that does not.
  const svcNets = servicesNetworks(confs);
  const wantServices = !o.cleanup && !o.servicesWatched && svcNets.length > 0 && (!o.network || svcNets.some((c) => c.name === o.network));
  const src = await source(o, !o.policyWatched && networks.some((n) => n.conf?.policy && (!o.network || n.conf.name === o.network)), wantServices);
  const results: SyncResult[] = [];
  for (const n of networks) {
    if (!n.conf) {
      results.push({ network: n.file, error: n.error ?? 'invalid' });
      continue;
    }
    if (o.network && n.conf.name !== o.network) continue;
    const conf = n.conf;
    try {
      const tableChanged = src.nodes && !conf.nodes && !conf.nodesFile ? storeTable(conf, src.nodes) : false;
      const state = reconcile(conf, { cleanup: o.cleanup });
      let pruned: string[] | undefined;
      if (o.cleanup) {
        // Under the network lock, as a DEL takes them down: an ADD must not see its marker and skip the table being removed.
        pruned = withNetworkLock(conf.stateDir, conf.name, () => {
          removeNetworkMasq(conf);
          removeNetworkGuard(conf);
          return pruneEbpf(ebpfNet(conf), listHostLinkNames());
        });
      } else {
        ensureNetworkMasq(conf, localAddresses, true);
        if (conf.datapath !== 'routed') withNetworkLock(conf.stateDir, conf.name, () => promotePending(conf));
      }
      const policy = conf.policy && src.objects && !o.cleanup ? syncNetworkPolicy(conf, src.objects, src.note) : undefined;
      results.push({ network: conf.name, tableChanged, state, ...(pruned ? { pruned } : {}), ...(policy ? { policy } : {}) });
    } catch (e) {
      results.push({ network: conf.name, error: (e as Error).message });
    }
  }
  if (o.cleanup) results.push(...pruneOrphans(o));
  let services: ServicesSync | { error: string } | { note: string } | undefined;
  let servicesCleanup: ReturnType<typeof cleanupServices> | undefined;
  if (o.cleanup) {
    servicesCleanup = cleanupServices(confs);
    if (servicesCleanup.removed.length === 0 && servicesCleanup.problems.length === 0) servicesCleanup = undefined;
  } else if (wantServices) {
    if (!src.services) services = { note: 'no source of Services: give --from-file, --kubeconfig or --in-cluster' };
    else {
      try {
        services = syncServices(svcNets, src.services, src.note);
      } catch (e) {
        services = { error: (e as Error).message };
      }
    }
  }
  if (o.json) process.stdout.write(`${JSON.stringify({ source: src.note, networks: results, ...(services ? { services: 'record' in services ? { ...services.record, attached: services.attached, moved: services.moved } : services } : {}), ...(servicesCleanup ? { servicesCleanup } : {}) }, null, 2)}\n`);
  else {
    process.stdout.write(`${src.note}\n`);
    for (const r of results) {
      if (r.error) process.stdout.write(`${r.network}: error: ${r.error}\n`);
      else if (!r.state) process.stdout.write(`${r.network}: no configuration; removed ${r.pruned?.length ? r.pruned.join(', ') : 'nothing (veths still attached)'}\n`);
      else process.stdout.write(`${r.network}: ${r.state!.backend}, ${r.state!.peers.length} peers, ${r.state!.changes} changes${r.state!.problems.map((p) => `\n  problem: ${p}`).join('')}${r.policy ? `\n  ${policyLine(r.policy)}` : ''}\n`);
    }
    if (services) process.stdout.write(`${'record' in services ? servicesLine(services) : 'error' in services ? `services: error: ${services.error}` : `services: ${services.note}`}\n`);
    if (servicesCleanup) process.stdout.write(`services: removed ${servicesCleanup.removed.join('; ') || 'nothing'}${servicesCleanup.problems.map((p) => `\n  problem: ${p}`).join('')}\n`);
  }
  const servicesBad = services !== undefined && ('error' in services || ('record' in services && services.record.problems.length > 0));
  return servicesBad || (servicesCleanup?.problems.length ?? 0) > 0 || results.some((r) => r.error || (r.state?.problems.length ?? 0) > 0 || (r.policy?.problems.length ?? 0) > 0) ? 1 : 0;
}

function policyLine(p: PolicySync): string {
  const a = p.applied;
  const kernel = a ? `${a.policyEntries} policy entries (+${a.policyAdded} -${a.policyRemoved}), ${a.ipcacheEntries} ipcache entries (${a.ipcacheChanged} changed, ${a.ipcacheRemoved} removed), ${a.flagsChanged} endpoints switched` : 'no pod attached yet: state kept for the next ADD';
  return [`policy: ${p.policies} policies, ${p.identities} identities, ${p.localPods} local pods; ${kernel}`, ...(p.unknown.length ? [`  isolated (pod unknown to the sync): ${p.unknown.join(', ')}`] : []), ...p.problems.map((x) => `  problem: ${x}`)].join('\n');
}

/**
 * --watch: a sync every interval; a failed one (API server away, token rejected) is retried
 * with exponential backoff up to five minutes, and the loop never exits on an error.
 */
export async function runSync(o: SyncOpts): Promise<number> {
  const interval = o.watch;
  if (!interval) return once(o);
  if (!o.cleanup) (await import('./services-health.js')).serveHealthChecks();
  const policyNets = (): NetConf[] => twillNetworks(o.confDir).flatMap((n) => (n.conf?.policy && (!o.network || n.conf.name === o.network) ? [n.conf] : []));
  /** Ends the wait between rounds early (the node table changed). */
  let wake: (() => void) | undefined;
  if (o.kubeconfig || o.inCluster) {
    // One cache for every reconciler: nodes, and policy when a network enforces it.
    const k8s = await import('../cluster/k8s.js');
    const access = o.kubeconfig ? await k8s.kubeconfigAccess(o.kubeconfig) : k8s.inClusterAccess();
    const [{ ClusterCache }, { nodesReconciler }, { policyReconciler, logLine }] = await Promise.all([import('../cluster/cache.js'), import('../cluster/nodes.js'), import('./sync-watch.js')]);
    const cache = new ClusterCache();
    o = { ...o, nodesWatched: nodesReconciler(cache, () => wake?.()) };
    if (policyNets().length > 0) {
      policyReconciler(cache, policyNets, `watch of ${access.server}`);
      o = { ...o, policyWatched: true };
    }
    const svcNets = (): NetConf[] => servicesNetworks(twillNetworks(o.confDir).flatMap((n) => (n.conf ? [n.conf] : [])));
    if (!o.cleanup && svcNets().length > 0) {
      const { servicesReconciler } = await import('./sync-services.js');
      servicesReconciler(cache, svcNets, `watch of ${access.server}`);
      o = { ...o, servicesWatched: true };
    }
    void cache.watch(access, new AbortController().signal, logLine);
  }
  let backoff = 1;
  for (;;) {
    let wait = interval;
    try {
      await once(o);
      backoff = 1;
    } catch (e) {
      wait = Math.min(backoff, 300);
      backoff = Math.min(backoff * 2, 300);
      process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), level: 'error', msg: 'sync failed', error: (e as Error).message, retryIn: wait })}\n`);
    }
    await new Promise<void>((r) => {
      const t = setTimeout(r, wait * 1000);
      wake = () => {
        clearTimeout(t);
        r();
      };
    });
    wake = undefined;
  }
}
