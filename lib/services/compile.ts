// Services and EndpointSlices → the frontends this node serves, by kube-proxy's rules
// (pkg/proxy: serviceport.go, endpointslicecache.go, topology.go CategorizeEndpoints, and the
// iptables/nftables proxiers' REJECT/DROP and short-circuit rules). Pure: no kernel, no files.
import { formatAddr, formatCidr, network, parseAddr, parseCidr, type Addr, type Family } from '../net/ip.js';
import { frontendKey, type Backend, type Frontend, type FrontendKind, type Scope, type ServiceHealth, type ServicesModel, type Verdict } from './model.js';
import type { EndpointSliceObj, ServiceObj, ServicePort } from './objects.js';

export interface NodeView {
  name: string;
  /** The addresses NodePorts are served on (either family; others are ignored). */
  addresses: string[];
}

export interface CompileOptions {
  /** The families this node serves; default both. */
  families?: Family[];
}

const FAMILY_NAME: Record<Family, string> = { 4: 'IPv4', 6: 'IPv6' };

/** One endpoint of one Service port as kube-proxy's slice cache keeps it. */
interface Endpoint extends Backend {
  value: bigint;
  ready: boolean;
  serving: boolean;
  terminating: boolean;
}

function parseIn(s: string, family: Family): Addr | undefined {
  const a = parseAddr(s.trim());
  return a && a.family === family ? a : undefined;
}

/** kube-proxy's GetClusterIPByFamily: index-matched through ipFamilies, else the one clusterIP's own family. */
function clusterIPOf(svc: ServiceObj, family: Family): Addr | undefined {
  if (svc.ipFamilies.length === 0) return svc.clusterIPs[0] === undefined ? undefined : parseIn(svc.clusterIPs[0], family);
  const i = svc.ipFamilies.indexOf(FAMILY_NAME[family]);
  return i >= 0 && i < svc.clusterIPs.length ? parseIn(svc.clusterIPs[i]!, family) : undefined;
}

/** Why kube-proxy leaves a Service alone (ShouldSkipService and its informers' label selector), or undefined. */
function skipReason(svc: ServiceObj): string | undefined {
  if (svc.type === 'ExternalName') return 'type ExternalName';
  const ip = svc.clusterIPs[0] ?? '';
  if (ip === '' || ip === 'None') return 'headless (no cluster IP)';
  if (svc.proxyName !== undefined) return `label service.kubernetes.io/service-proxy-name=${svc.proxyName}`;
  if (svc.headlessLabel) return 'label service.kubernetes.io/headless';
  return undefined;
}

const byValue = (a: { value: bigint }, b: { value: bigint }): number => (a.value < b.value ? -1 : a.value > b.value ? 1 : 0);
const byEndpoint = (a: Endpoint, b: Endpoint): number => byValue(a, b) || a.port - b.port;
const backend = (e: Endpoint): Backend => ({ address: e.address, port: e.port, local: e.local });

/**
 * The endpoints of one Service port in one family: every slice of the Service with that
 * addressType, the slice port of the same name and protocol (its number, per slice), only
 * addresses[0], de-duplicated by address:port (the first slice by name wins, unless a later
 * copy is local: kube-proxy favours local).
 */
function endpointsOf(slices: readonly EndpointSliceObj[], port: ServicePort, family: Family, nodeName: string): Endpoint[] {
  const seen = new Map<string, Endpoint>();
  for (const sl of slices) {
    if (sl.addressType !== FAMILY_NAME[family]) continue;
    for (const sp of sl.ports) {
      if (sp.name !== port.name || sp.protocol !== port.protocol || sp.port < 1 || sp.port > 65535) continue;
      for (const ep of sl.endpoints) {
        const a = ep.addresses[0] === undefined ? undefined : parseIn(ep.addresses[0], family);
        if (!a) continue;
        const address = formatAddr(a);
        const local = ep.nodeName !== undefined && ep.nodeName === nodeName;
        const key = `${address}|${sp.port}`;
        if (seen.has(key) && !local) continue;
        seen.set(key, { address, value: a.value, port: sp.port, local, ready: ep.ready, serving: ep.serving, terminating: ep.terminating });
      }
    }
  }
  return [...seen.values()].sort(byEndpoint);
}

interface Choice {
  ready: Backend[];
  terminating: Backend[];
}

/** CategorizeEndpoints, without topology hints: ready ones, falling back to serving-and-terminating ones. */
function choose(eps: readonly Endpoint[], localOnly: boolean): Choice {
  const pool = localOnly ? eps.filter((e) => e.local) : eps;
  return {
    ready: pool.filter((e) => e.ready).map(backend),
    terminating: pool.filter((e) => !e.ready && e.serving && e.terminating).map(backend),
  };
}

const empty = (c: Choice): boolean => c.ready.length === 0 && c.terminating.length === 0;

export function compileServices(services: Iterable<ServiceObj>, slices: Iterable<EndpointSliceObj>, node: NodeView, opts: CompileOptions = {}): ServicesModel {
  const families = opts.families ?? [4, 6];
  const slicesBySvc = new Map<string, EndpointSliceObj[]>();
  for (const sl of slices) {
    if (!sl.service) continue;
    const k = `${sl.namespace}/${sl.service}`;
    let l = slicesBySvc.get(k);
    if (!l) slicesBySvc.set(k, (l = []));
    l.push(sl);
  }
  for (const l of slicesBySvc.values()) l.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const nodeAddrs = (family: Family): string[] =>
    [...new Set(node.addresses.map((s) => parseIn(s, family)).filter((a): a is Addr => a !== undefined).sort(byValue).map(formatAddr))];

  const frontends: Frontend[] = [];
  const health: ServiceHealth[] = [];
  const skipped: { service: string; reason: string }[] = [];

  for (const svc of services) {
    const id = `${svc.namespace}/${svc.name}`;
    const why = skipReason(svc);
    if (why) {
      skipped.push({ service: id, reason: why });
      continue;
    }
    const svcSlices = slicesBySvc.get(id) ?? [];
    const itpLocal = svc.internalTrafficPolicy === 'Local';
    // apiservice.ExternallyAccessible / ExternalPolicyLocal / NeedsHealthCheck.
    const exposed = svc.type === 'LoadBalancer' || svc.type === 'NodePort' || (svc.type === 'ClusterIP' && svc.externalIPs.length > 0);
    const etpLocal = exposed && svc.externalTrafficPolicy === 'Local';
    const hcPort = svc.type === 'LoadBalancer' && etpLocal ? svc.healthCheckNodePort : 0;
    const affinity = svc.sessionAffinity === 'ClientIP' ? svc.affinityTimeoutSeconds : 0;
    const localReady = new Set<string>();

    for (const family of families) {
      const cip = clusterIPOf(svc, family);
      if (!cip) continue;
      const ips = (xs: readonly string[]): string[] => [...new Set(xs.map((s) => parseIn(s, family)).filter((a): a is Addr => a !== undefined).map(formatAddr))];
      const externalIPs = ips(svc.externalIPs);
      const lbIPs = ips(svc.loadBalancerIngress.filter((i) => i.ipMode !== 'Proxy').map((i) => i.ip));
      const ranges = [...new Set(svc.loadBalancerSourceRanges.map((r) => parseCidr(r)).filter((c) => c !== undefined && c.addr.family === family).map((c) => formatCidr(network(c!))))];

      for (const port of svc.ports) {
        const eps = endpointsOf(svcSlices, port, family, node.name);
        for (const e of eps) if (e.local && e.ready) localReady.add(e.address);
        const cluster = choose(eps, false);
        const local = choose(eps, true);
        const hasAny = !empty(cluster);
        const add = (kind: FrontendKind, address: string, fport: number, scope: Scope, localPolicy: boolean): void => {
          const c = !hasAny ? { ready: [], terminating: [] } : localPolicy ? local : cluster;
          const verdict: Verdict = !hasAny ? 'reject' : empty(c) ? 'drop' : 'forward';
          frontends.push({
            service: id, portName: port.name, family, address, port: fport, protocol: port.protocol, scope, kind,
            policy: localPolicy ? 'Local' : 'Cluster', backends: c, verdict, affinitySeconds: affinity,
            sourceRanges: kind === 'loadBalancer' ? ranges : [], healthCheckNodePort: hcPort,
          });
        };
        add('clusterIP', formatAddr(cip), port.port, 'internal', itpLocal);
        // Every address reached from outside: external traffic by externalTrafficPolicy; pods and
        // the node itself short-circuited to the cluster endpoints, whatever either policy says.
        const outside = (kind: FrontendKind, address: string, fport: number): void => {
          add(kind, address, fport, 'external', etpLocal);
          add(kind, address, fport, 'internal', false);
        };
        if (port.nodePort !== undefined && port.nodePort > 0) for (const a of nodeAddrs(family)) outside('nodePort', a, port.nodePort);
        for (const a of externalIPs) outside('externalIP', a, port.port);
        for (const a of lbIPs) outside('loadBalancer', a, port.port);
      }
    }
    if (hcPort > 0) health.push({ service: id, namespace: svc.namespace, name: svc.name, nodePort: hcPort, localEndpoints: localReady.size });
  }

  // One frontend per map key: the first in sorted order keeps it (two Services claiming one
  // external IP and port, or a Service listing one address twice), the rest are reported.
  const order = (f: Frontend): string => `${f.service}\0${f.portName}\0${f.protocol}\0${f.family}\0${KIND_ORDER[f.kind]}\0${f.scope}\0${f.address}\0${f.port}`;
  frontends.sort((a, b) => cmp(order(a), order(b)));
  const taken = new Map<string, Frontend>();
  for (const f of frontends) {
    const k = frontendKey(f);
    const had = taken.get(k);
    if (!had) taken.set(k, f);
    else if (had.service !== f.service || had.portName !== f.portName) skipped.push({ service: f.service, reason: `${f.kind} ${k} (port ${JSON.stringify(f.portName)}) already served for ${had.service} port ${JSON.stringify(had.portName)}` });
  }
  return {
    frontends: [...taken.values()].sort((a, b) => cmp(frontendKey(a), frontendKey(b))),
    health: health.sort((a, b) => cmp(a.service, b.service)),
    skipped: skipped.sort((a, b) => cmp(a.service, b.service) || cmp(a.reason, b.reason)),
  };
}

const KIND_ORDER: Record<FrontendKind, number> = { clusterIP: 0, loadBalancer: 1, externalIP: 2, nodePort: 3 };
const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

