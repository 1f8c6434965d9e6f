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
import { applyServices, ensureServiceHooks, openServiceMaps, removeServiceHooks, serviceHookTarget, type HookTarget } from '../datapath/services.js';
import { podNetnsPaths, terminateStale } from '../datapath/services-term.js';
import { detectNodePortDevices, ensureNodePortPrograms, removeNodePortPrograms } from '../datapath/nodeport.js';
import { withNodeLock } from '../datapath/netlock.js';
import { fileRecord } from '../mirror/record.js';
import { mkdirs, writeAtomic } from '../fsx.js';
import { contains, formatAddr, parseAddr, parseCidr, type Addr } from '../net/ip.js';
import { compileServices } from '../services/compile.js';
import { allocateServiceIds, modelServicePorts, toLbFrontends } from '../services/ids.js';
import type { EndpointSliceObj, ServiceObj } from '../services/objects.js';
import { readServiceIds, readServicesSync, serviceIdsPath, servicesDir, servicesRecordDir, servicesSyncPath, type ServicesSyncRecord } from '../state/files.js';
import { localAddresses } from '../sys/podlink.js';
import { logLine, type Log } from './sync-watch.js';

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
  return { hooks: { ...hooks, stateDir: first.stateDir }, ...(first.services?.devices ? { devices: first.services.devices } : {}), stateDir: first.stateDir, nodeName: first.nodeName ?? hostname(), problems };
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
}

/** The first sync of this process terminates too: a sync that stopped between an apply and its termination leaves sockets behind. */
let terminatedOnce = false;

/** One full Services sync: compile, ids, hooks, apply under the node lock, record. */
export function syncServices(confs: readonly NetConf[], view: ServicesView, source: string): ServicesSync | undefined {
  const t = servicesTarget(confs);
  if (!t) return undefined;
  const model = compileServices(view.services, view.slices, { name: t.nodeName, addresses: nodeAddresses(t.nodeName, view.nodes) });
  const st = { stateDir: t.stateDir };
  const prev = readServiceIds(st);
  const table = allocateServiceIds(prev, modelServicePorts(model));
  // The ids are on disk before any map carries them: a restart never hands one out twice.
  if (JSON.stringify(table) !== JSON.stringify(prev)) {
    mkdirs(servicesDir(st), 0o700);
    writeAtomic(serviceIdsPath(st), `${JSON.stringify(table)}\n`);
  }
  const frontends = toLbFrontends(model, table);
  const { attached } = ensureServiceHooks(t.hooks);
  // Traffic from outside the node: a tcx program on the node's devices, only while some frontend needs it.
  const addresses = nodeAddresses(t.nodeName, view.nodes);
  let devices: string[] = [];
  if (frontends.some((f) => f.scope === 'external')) {
    devices = t.devices ?? detectNodePortDevices(addresses);
    ensureNodePortPrograms({ bpffsRoot: t.hooks.bpffsRoot, stateDir: t.stateDir }, devices);
  } else {
    removeNodePortPrograms({ bpffsRoot: t.hooks.bpffsRoot, stateDir: t.stateDir });
  }
  const { moved, retired, maps: written } = withNodeLock(t.stateDir, () => {
    const maps = openServiceMaps(t.hooks.bpffsRoot);
    if (!maps) throw new Error(`Service maps not found under ${t.hooks.bpffsRoot} after loading the hooks`);
    try {
      return applyServices(maps.maps, frontends, fileRecord(servicesRecordDir(st)));
    } finally {
      maps.close();
    }
  });
  // Connected sockets translated to a backend that left are destroyed, in the host's and every
  // pod's namespace, so they reconnect through the hooks to a live backend.
  let destroyed = 0;
  if (retired > 0 || !terminatedOnce) {
    const r = terminateStale(t.hooks, servicesNetworks(confs).flatMap((c) => podNetnsPaths(c)));
    destroyed = r.destroyed;
    terminatedOnce = true;
  }
  const services = new Set(model.frontends.map((f) => f.service));
  const record: ServicesSyncRecord = {
    time: new Date().toISOString(), source, bpffsRoot: t.hooks.bpffsRoot, cgroupRoot: t.hooks.cgroupRoot,
    services: services.size, frontends: frontends.length, backends: frontends.reduce((s, f) => s + f.backends.length + f.terminating.length, 0),
    skipped: model.skipped, problems: t.problems,
  };
  mkdirs(servicesDir(st), 0o700);
  writeAtomic(servicesSyncPath(st), `${JSON.stringify(record, null, 2)}\n`);
  return { record, attached, moved, written: [...written.values()].reduce((n, m) => n + m.put + m.removed + m.patched, 0), destroyed, devices };
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
  const run = (): boolean => {
    if (!cache.synced(SERVICE_KINDS)) return false;
    const started = clock.now();
    const s = syncServices(servicesNetworks(networks()), cacheServicesView(cache), source);
    if (!s) return true;
    log('info', first ? 'services synced' : 'services updated', {
      ms: clock.now() - started, services: s.record.services, frontends: s.record.frontends, backends: s.record.backends, moved: s.moved, written: s.written,
      ...(s.record.problems.length ? { problems: s.record.problems } : {}),
    });
    first = false;
    return true;
  };
  const rec = new Reconciler({ clock, ...SERVICES_TIMING, ...opts.timing }, run, (e, ms) => log('warn', 'services sync retrying', { error: e.message, retryIn: ms / 1000 }));
  const changed = { changed: (): void => rec.changed(true) };
  for (const k of SERVICE_KINDS) cache.subscribe(k, changed);
  return rec;
}
