// `twill sync` for Kubernetes Services: when a network of the conf dir says
// "services": {"type": "k8s"}, the cluster cache's Services and EndpointSlices are compiled
// into frontends (services/compile.ts, kube-proxy's rules), each Service port keeps a stable
// id (services/ids.ts, table under the stateDir), and the node's one set of socket hooks and
// Service maps is programmed (datapath/services.ts). Services are node-wide: whatever the
// number of networks that ask for them, one cgroup, one bpffs, one set of maps.
import { hostname } from 'node:os';
import { rmSync } from '../sys/fs.js';
import type { NetConf } from '../config/types.js';
import type { ClusterCache } from '../cluster/cache.js';
import { realClock, type Clock } from '../cluster/clock.js';
import type { KindName } from '../cluster/kinds.js';
import type { NodeObj } from '../cluster/objects.js';
import { Reconciler, type ReconcilerOptions } from '../cluster/reconciler.js';
import type { Change } from '../cluster/store.js';
import { applyServices, ensureServiceHooks, openServiceMaps, removeServiceHooks, serviceHookTarget, type HookTarget } from '../datapath/services.js';
import { podNetnsPaths, terminateStale } from '../datapath/services-term.js';
import { detectNodePortDevices, ensureNodePortPrograms, removeNodePortPrograms } from '../datapath/nodeport.js';
import { openSourceRanges, putSourceRanges } from '../datapath/services-src.js';
import { withNodeLock } from '../datapath/netlock.js';
import { fileRecord } from '../mirror/record.js';
import { mkdirs, writeAtomic } from '../fsx.js';
import { contains, formatAddr, parseAddr, parseCidr, type Addr } from '../net/ip.js';
import { compileServices } from '../services/compile.js';
import { allocateServiceIds, modelServicePorts, splitServicePortKey, toLbFrontends, type ServiceIdTable } from '../services/ids.js';
import type { ServicesModel } from '../services/model.js';
import type { EndpointSliceObj, ServiceObj } from '../services/objects.js';
import { readServiceIds, readServicesSync, serviceIdsPath, servicesDir, servicesRecordDir, servicesSyncPath, type ServicesSyncRecord } from '../state/files.js';
import { localAddresses } from '../sys/podlink.js';
import { logLine, type Log } from './sync-watch.js';
import { healthServers } from './services-health.js';

export const SERVICE_KINDS: readonly KindName[] = ['Service', 'EndpointSlice'];

export const SERVICES_TIMING: Omit<ReconcilerOptions, 'clock'> = { debounceMs: 20, resyncMs: 60_000, retryBaseMs: 1000, retryMaxMs: 60_000 };

/** The networks that serve Services. */
export const servicesNetworks = (confs: readonly NetConf[]): NetConf[] => confs.filter((c) => c.services?.type === 'k8s');

export interface ServicesTarget {
  hooks: HookTarget;
  /** services.devices of the first network (undefined: detected). */
  devices?: string[];
  stateDir: string;
  nodeName: string;
  /** services.externalIPs of the first network: where externalIPs and LB IPs may be (undefined: anywhere not refused). */
  externalCIDRs?: string[];
  problems: string[];
}

/** Where the node's Services live: the first network's choice; a network that disagrees is a problem (its wish is not served). */
export function servicesTarget(confs: readonly NetConf[]): ServicesTarget | undefined {
  const first = confs[0];
  if (!first) return undefined;
  const hooks = serviceHookTarget(first);
  const problems: string[] = [];
  for (const c of confs.slice(1)) {
    if (c.bpffsRoot !== hooks.bpffsRoot) problems.push(`network ${c.name}: bpffsRoot ${c.bpffsRoot} differs from ${first.name}'s ${hooks.bpffsRoot}: Services are node-wide, ${hooks.bpffsRoot} is used`);
    let cg: string;
    try {
      cg = serviceHookTarget(c).cgroupRoot;
    } catch (e) {
      problems.push(`network ${c.name}: ${(e as Error).message}`);
      continue;
    }
    if (cg !== hooks.cgroupRoot) problems.push(`network ${c.name}: cgroupRoot ${cg} differs from ${first.name}'s ${hooks.cgroupRoot}: Services are node-wide, ${hooks.cgroupRoot} is used`);
  }
  return { hooks: { ...hooks, stateDir: first.stateDir }, ...(first.services?.devices ? { devices: first.services.devices } : {}), ...(first.services?.externalIPs ? { externalCIDRs: first.services.externalIPs } : {}), stateDir: first.stateDir, nodeName: first.nodeName ?? hostname(), problems };
}

const SCOPED = ['127.0.0.0/8', '169.254.0.0/16', '::1/128', 'fe80::/10'].map((c) => parseCidr(c)!);

/** The host's own global addresses (NodePorts' addresses when the Node object is not known). */
export function hostGlobalAddresses(): string[] {
  return localAddresses().filter((a: Addr) => !SCOPED.some((c) => contains(c, a))).map(formatAddr);
}

/** This node's addresses: its Node's InternalIPs when the cache has it, else the host's global ones. */
export function nodeAddresses(nodeName: string, nodes: ReadonlyMap<string, NodeObj> | undefined): string[] {
  const ips = (nodes?.get(nodeName)?.internalIPs ?? []).filter((s) => parseAddr(s) !== undefined);
  return ips.length > 0 ? ips : hostGlobalAddresses();
}

export interface ServicesView {
  services: Iterable<ServiceObj>;
  slices: Iterable<EndpointSliceObj>;
  nodes?: ReadonlyMap<string, NodeObj>;
}

export const cacheServicesView = (cache: ClusterCache): ServicesView => ({
  services: cache.store('Service').items.values(),
  slices: cache.store('EndpointSlice').items.values(),
  ...(cache.store('Node').synced ? { nodes: cache.store('Node').items } : {}),
});

export interface ServicesSync {
  record: ServicesSyncRecord;
  /** Hooks attached by this run (already there: none). */
  attached: string[];
  /** Frontends whose slot range moved. */
  moved: number;
  /** Map entries written or removed (0: the kernel already held this state, as after a restart). */
  written: number;
  /** Connected sockets destroyed because their backend left (they reconnect to a live one). */
  destroyed: number;
  /** Devices the per-packet program serves (NodePorts, external and load-balancer IPs from outside). */
  devices: string[];
  /** Service ports apply refused this run (they do not fit the maps), with why; also in record.skipped. */
  refused: { service: string; reason: string }[];
}

/** The first sync of this process terminates too: a sync that stopped between an apply and its termination leaves sockets behind. */
let terminatedOnce = false;

/** What one Service contributed to the last sync: an update of a few Services keeps the others' share. */
interface ServiceShare {
  frontends: number;
  backends: number;
  external: boolean;
  skipped: { service: string; reason: string }[];
  /** The Services that took what this one asked for (a clash, or a refusal as their ClusterIP or endpoint): a change of one of them may give it back. */
  blockedBy: string[];
}

/**
 * What the last full sync of this process computed, so that a change of a few Services costs
 * what it touches: their compile, their ids, their frontends. Another configuration, a relist
 * or the periodic resync makes a full sync again (which also settles what a partial one cannot
 * see: two Services claiming one address).
 */
interface ServicesContext {
  key: string;
  shares: Map<string, ServiceShare>;
  external: boolean;
  devices: string[];
}
let context: ServicesContext | undefined;

const svcKey = (namespace: string, name: string): string => `${namespace}/${name}`;

function sharesOf(model: ServicesModel, frontends: ReturnType<typeof toLbFrontends>, only?: ReadonlySet<string>): Map<string, ServiceShare> {
  const out = new Map<string, ServiceShare>();
  const share = (svc: string): ServiceShare => {
    let x = out.get(svc);
    if (!x) out.set(svc, (x = { frontends: 0, backends: 0, external: false, skipped: [], blockedBy: [] }));
    return x;
  };
  model.frontends.forEach((f, i) => {
    const x = share(f.service), l = frontends[i]!;
    x.frontends++;
    x.backends += l.backends.length + l.terminating.length;
    if (f.scope === 'external') x.external = true;
  });
  for (const k of model.skipped) share(k.service).skipped.push(k);
  for (const b of model.blocked ?? []) if (only === undefined || only.has(b.service)) share(b.service).blockedBy.push(b.by);
  return out;
}

/**
 * One Services sync: compile, ids, hooks, apply under the node lock, record. With `changed`
 * (the "namespace/name" of Services whose object or EndpointSlices changed since the last run
 * of this process), only those are compiled and written when the last full sync left what the
 * others need; else everything.
 */
export function syncServices(confs: readonly NetConf[], view: ServicesView, source: string, changed?: ReadonlySet<string>): ServicesSync | undefined {
  // healthCheckNodePorts answer serviceProxyHealthy: false while syncs fail.
  try {
    const s = syncServicesOnce(confs, view, source, changed);
    healthServers.healthy = true;
    return s;
  } catch (e) {
    healthServers.healthy = false;
    throw e;
  }
}

function syncServicesOnce(confs: readonly NetConf[], view: ServicesView, source: string, changed?: ReadonlySet<string>): ServicesSync | undefined {
  const t = servicesTarget(confs);
  if (!t) {
    healthServers.update([], []);
    return undefined;
  }
  const addresses = nodeAddresses(t.nodeName, view.nodes);
  const key = JSON.stringify([servicesNetworks(confs), t.nodeName, addresses]);
  let partial = changed !== undefined && context?.key === key ? context : undefined;
  const st = { stateDir: t.stateDir };
  const prev = readServiceIds(st);
  const copts = t.externalCIDRs ? { externalCIDRs: t.externalCIDRs } : {};
  // Read once: a view's iterables may be one-shot (a store's values()), and a partial sync may become a full one.
  view = { ...view, services: [...view.services], slices: [...view.slices] };
  let model: ServicesModel | undefined, table: ServiceIdTable, only: Set<number> | undefined;
  if (partial) {
    // Every Service and slice is read (clashes and refusals are decided against all of them),
    // only the changed ones are compiled whole. When the change takes from or gives back to
    // another Service (a clash won, an address that is or stops being a ClusterIP or a pod's),
    // that one changes too: a full sync.
    model = compileServices(view.services, view.slices, { name: t.nodeName, addresses }, { ...copts, only: changed! });
    const touches = (model.blocked ?? []).some((b) => !changed!.has(b.service))
      || [...partial.shares].some(([k, x]) => !changed!.has(k) && x.blockedBy.some((b) => changed!.has(b)));
    if (touches) partial = undefined;
  }
  if (partial && model) {
    // The other Services' ports keep their ids; the changed ones' are what their compile says.
    const mine = (k: string): boolean => changed!.has(splitServicePortKey(k).service);
    table = allocateServiceIds(prev, [...Object.keys(prev.ids).filter((k) => !mine(k)), ...modelServicePorts(model)]);
    only = new Set<number>();
    for (const [k, id] of Object.entries(prev.ids)) if (mine(k)) only.add(id);
    for (const k of modelServicePorts(model)) only.add(table.ids[k]!);
  } else {
    model = compileServices(view.services, view.slices, { name: t.nodeName, addresses }, copts);
    table = allocateServiceIds(prev, modelServicePorts(model));
  }
  // The ids are on disk before any map carries them: a restart never hands one out twice.
  if (JSON.stringify(table) !== JSON.stringify(prev)) {
    mkdirs(servicesDir(st), 0o700);
    writeAtomic(serviceIdsPath(st), `${JSON.stringify(table)}\n`);
  }
  const frontends = toLbFrontends(model, table);
  let shares: Map<string, ServiceShare>;
  if (partial) {
    shares = partial.shares;
    for (const k of changed!) shares.delete(k);
    for (const [k, x] of sharesOf(model, frontends, changed)) shares.set(k, x);
  } else shares = sharesOf(model, frontends);
  const external = [...shares.values()].some((x) => x.external);
  let attached: string[] = [];
  let devices: string[] = partial?.devices ?? [];
  if (!partial || external !== partial.external) {
    if (!partial) ({ attached } = ensureServiceHooks(t.hooks));
    // Traffic from outside the node: a tcx program on the node's devices, only while some frontend needs it.
    if (external) {
      devices = t.devices ?? detectNodePortDevices(addresses);
      ensureNodePortPrograms({ bpffsRoot: t.hooks.bpffsRoot, stateDir: t.stateDir }, devices);
    } else {
      devices = [];
      removeNodePortPrograms({ bpffsRoot: t.hooks.bpffsRoot, stateDir: t.stateDir });
    }
  }
  // Forgotten while the maps change: a failure half-way makes the next sync a full one.
  context = undefined;
  const { moved, retired, refused: refusedIds, maps: written } = withNodeLock(t.stateDir, () => {
    const maps = openServiceMaps(t.hooks.bpffsRoot);
    if (!maps) throw new Error(`Service maps not found under ${t.hooks.bpffsRoot} after loading the hooks`);
    // loadBalancerSourceRanges: added before a frontend is flagged, stale ones removed after.
    const src = openSourceRanges(t.hooks.bpffsRoot);
    try {
      const round = src && putSourceRanges(src.io, frontends, only);
      const r = applyServices(maps.maps, frontends, fileRecord(servicesRecordDir(st)), only ? { only } : {});
      round?.prune();
      return r;
    } finally {
      src?.close();
      maps.close();
    }
  });
  // What apply refused (a Service port that does not fit the maps) is reported, not counted as programmed.
  const refused: { service: string; reason: string }[] = [];
  if (refusedIds.length) {
    const byId = new Map(Object.entries(table.ids).map(([k, id]) => [id, splitServicePortKey(k)]));
    const gone = new Set(refusedIds.map((r) => r.serviceId));
    frontends.forEach((l, i) => {
      if (!gone.has(l.serviceId)) return;
      const x = shares.get(model!.frontends[i]!.service);
      if (!x) return;
      x.frontends--;
      x.backends -= l.backends.length + l.terminating.length;
    });
    for (const r of refusedIds) {
      const p = byId.get(r.serviceId);
      if (!p) continue;
      const entry = { service: p.service, reason: `port ${JSON.stringify(p.portName)} not programmed (what was programmed before stays): ${r.reason}` };
      refused.push(entry);
      shares.get(p.service)?.skipped.push(entry);
    }
  }
  context = { key, shares, external, devices };
  // Connected sockets translated to a backend that left are destroyed, in the host's and every
  // pod's namespace, so they reconnect through the hooks to a live backend.
  let destroyed = 0;
  if (retired > 0 || !terminatedOnce) {
    const r = terminateStale(t.hooks, servicesNetworks(confs).flatMap((c) => podNetnsPaths(c)));
    destroyed = r.destroyed;
    terminatedOnce = true;
  }
  let services = 0, nFrontends = 0, backends = 0;
  const skipped: { service: string; reason: string }[] = [];
  for (const x of shares.values()) {
    if (x.frontends) services++;
    nFrontends += x.frontends;
    backends += x.backends;
    skipped.push(...x.skipped);
  }
  skipped.sort((a, b) => (a.service < b.service ? -1 : a.service > b.service ? 1 : a.reason < b.reason ? -1 : a.reason > b.reason ? 1 : 0));
  const record: ServicesSyncRecord = {
    time: new Date().toISOString(), source, bpffsRoot: t.hooks.bpffsRoot, cgroupRoot: t.hooks.cgroupRoot,
    services, frontends: nFrontends, backends, skipped, problems: [...t.problems, ...healthServers.update(model.health, addresses, partial ? changed : undefined)],
  };
  mkdirs(servicesDir(st), 0o700);
  writeAtomic(servicesSyncPath(st), `${JSON.stringify(record, null, 2)}\n`);
  return { record, attached, moved, written: [...written.values()].reduce((n, m) => n + m.put + m.removed + m.patched, 0), destroyed, devices, refused };
}

/**
 * --cleanup: the hooks leave every cgroup a Services network names or the last sync used, and
 * with the last of them the maps and programs; the Services state goes with the maps.
 */
export function cleanupServices(confs: readonly NetConf[]): { removed: string[]; problems: string[] } {
  const targets = new Map<string, HookTarget>();
  const problems: string[] = [];
  for (const c of confs) {
    const rec = readServicesSync(c);
    if (rec) targets.set(`${rec.bpffsRoot}\0${rec.cgroupRoot}`, { bpffsRoot: rec.bpffsRoot, cgroupRoot: rec.cgroupRoot, stateDir: c.stateDir });
    if (c.services?.type !== 'k8s') continue;
    try {
      const h = serviceHookTarget(c);
      targets.set(`${h.bpffsRoot}\0${h.cgroupRoot}`, { ...h, stateDir: c.stateDir });
    } catch (e) {
      problems.push(`network ${c.name}: ${(e as Error).message}`);
    }
  }
  const removed: string[] = [];
  const unpinnedState = new Set<string>();
  for (const t of targets.values()) {
    try {
      removeNodePortPrograms(t);
      const r = removeServiceHooks(t);
      removed.push(`${r.detached} hooks from ${t.cgroupRoot}${r.unpinned ? '; maps unpinned' : ''}`);
      if (r.unpinned) unpinnedState.add(t.stateDir!);
    } catch (e) {
      problems.push(`Services hooks at ${t.cgroupRoot}: ${(e as Error).message}`);
    }
  }
  for (const d of unpinnedState) rmSync(servicesDir({ stateDir: d }), { recursive: true, force: true });
  return { removed, problems };
}

export function servicesLine(s: ServicesSync): string {
  const r = s.record;
  return [
    `services: ${r.services} services, ${r.frontends} frontends, ${r.backends} backends; hooks at ${r.cgroupRoot}${s.attached.length ? ` (attached ${s.attached.length})` : ''}${s.devices.length ? `; from outside on ${s.devices.join(', ')}` : ''}${s.destroyed ? `; ${s.destroyed} sockets of gone backends closed` : ''}`,
    ...r.skipped.map((x) => `  skipped: ${x.service}: ${x.reason}`),
    ...r.problems.map((p) => `  problem: ${p}`),
  ].join('\n');
}

/**
 * --watch with an API server: subscribes to Services and EndpointSlices (which makes them
 * watched); a change reaches the kernel after a debounce, a full run every minute repairs what
 * an event missed, and a failed run is retried with backoff.
 */
export function servicesReconciler(cache: ClusterCache, networks: () => NetConf[], source: string, opts: { clock?: Clock; log?: Log; timing?: Partial<Omit<ReconcilerOptions, 'clock'>> } = {}): Reconciler {
  const log = opts.log ?? logLine;
  const clock = opts.clock ?? realClock;
  let first = true;
  // The Services whose object or slices changed since the last run (a relist: all of them, a full run).
  let pending = new Set<string>();
  const run = ({ full }: { full: boolean }): boolean => {
    if (!cache.synced(SERVICE_KINDS)) return false;
    const started = clock.now();
    const changed = pending;
    pending = new Set();
    const s = syncServices(servicesNetworks(networks()), cacheServicesView(cache), source, full ? undefined : changed);
    if (!s) return true;
    log('info', first ? 'services synced' : 'services updated', {
      ms: clock.now() - started, services: s.record.services, frontends: s.record.frontends, backends: s.record.backends, moved: s.moved, written: s.written,
      ...(s.record.skipped.length ? { skipped: s.record.skipped.length } : {}),
      ...(s.refused.length ? { refused: s.refused } : {}),
      ...(s.record.problems.length ? { problems: s.record.problems } : {}),
    });
    first = false;
    return true;
  };
  const rec = new Reconciler({ clock, ...SERVICES_TIMING, ...opts.timing }, run, (e, ms) => log('warn', 'services sync retrying', { error: e.message, retryIn: ms / 1000 }));
  const on = <T>(names: (x: T) => string): { changed(c: Change<T>): void } => ({
    changed(c) {
      if (c.type === 'relist') return rec.changed(true);
      for (const x of [c.before, c.after]) if (x !== undefined) pending.add(names(x));
      rec.changed(false);
    },
  });
  cache.subscribe('Service', on<ServiceObj>((x) => svcKey(x.namespace, x.name)));
  cache.subscribe('EndpointSlice', on<EndpointSliceObj>((x) => svcKey(x.namespace, x.service)));
  return rec;
}
