// Services and EndpointSlices → the frontends this node serves, by kube-proxy's rules
// (pkg/proxy: serviceport.go, endpointslicecache.go, topology.go CategorizeEndpoints, and the
// iptables/nftables proxiers' REJECT/DROP and short-circuit rules). Pure: no kernel, no files.
import { contains, formatAddr, formatCidr, network, parseAddr, parseCidr, type Addr, type Cidr, type Family } from '../net/ip.js';
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
  /** services.externalIPs: when set, only externalIPs and load-balancer IPs inside these CIDRs are programmed. */
  externalCIDRs?: readonly string[];
  /**
   * Only these Services ("namespace/name") get frontends; every Service and slice given is still
   * read for clashes and refusals (blocked names the others a change touches).
   */
  only?: ReadonlySet<string>;
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
function endpointsOf(slices: readonly EndpointSliceObj[], port: ServicePort, family: Family, nodeName: string, ignore: (why: string) => void): Endpoint[] {
  const seen = new Map<string, Endpoint>();
  for (const sl of slices) {
    if (sl.addressType !== FAMILY_NAME[family]) continue;
    for (const sp of sl.ports) {
      if (sp.name !== port.name || sp.protocol !== port.protocol || sp.port < 1 || sp.port > 65535) continue;
      for (const ep of sl.endpoints) {
        const a = ep.addresses[0] === undefined ? undefined : parseIn(ep.addresses[0], family);
        if (!a) continue;
        const address = formatAddr(a);
        // kube-proxy would program these; they only ever serve an attack (CVE-2021-25740 class):
        // a NodePort made an open proxy, with the node's source, to the node itself or metadata.
        const special = specialAddress(a);
        if (special) {
          ignore(`endpoint ${address} of EndpointSlice ${sl.namespace}/${sl.name} ignored: ${special} address`);
          continue;
        }
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

/** The most frontends one Service may create (every kind, scope and family): beyond, it is skipped. */
export const MAX_SERVICE_FRONTENDS = 4096;
/** The most (externalIP or load-balancer IP) × port pairs of one Service and family: beyond, it is skipped. */
export const MAX_SERVICE_EXTERNAL = 256;

/**
 * Addresses no Service may claim and no endpoint may be: unspecified, loopback, link-local,
 * multicast, IPv4 broadcast, and IPv4-mapped IPv6 (which reaches the IPv4 ones).
 */
const SPECIAL = ([
  ['0.0.0.0/32', 'unspecified'], ['127.0.0.0/8', 'loopback'], ['169.254.0.0/16', 'link-local'], ['224.0.0.0/4', 'multicast'], ['255.255.255.255/32', 'broadcast'],
  ['::/128', 'unspecified'], ['::1/128', 'loopback'], ['fe80::/10', 'link-local'], ['ff00::/8', 'multicast'], ['::ffff:0:0/96', 'IPv4-mapped'],
] as const).map(([c, why]) => ({ cidr: parseCidr(c)!, why }));

/** Why an address may never be a Service frontend or an endpoint, or undefined. */
export function specialAddress(a: Addr): string | undefined {
  return SPECIAL.find((s) => s.cidr.addr.family === a.family && contains(s.cidr, a))?.why;
}

/** An address as formatAddr writes it (the text itself when it is none). */
function canonical(s: string): string {
  const a = parseAddr(s.trim());
  return a ? formatAddr(a) : s;
}

/** Every address of a slice, canonical; kept per object (the cache replaces an object on change, never edits it), so a watch change does not parse every slice again. */
const sliceAddrCache = new WeakMap<EndpointSliceObj, string[]>();
function sliceAddresses(sl: EndpointSliceObj): string[] {
  let l = sliceAddrCache.get(sl);
  if (l) return l;
  const fam = sl.addressType === 'IPv4' ? 4 : sl.addressType === 'IPv6' ? 6 : undefined;
  l = [];
  if (fam) for (const ep of sl.endpoints) for (const s of ep.addresses) {
    const a = parseIn(s, fam);
    if (a) l.push(formatAddr(a));
  }
  sliceAddrCache.set(sl, l);
  return l;
}

const claimCache = new WeakMap<ServiceObj, { sig: string; claims: Claim[] }>();
const cipCache = new WeakMap<ServiceObj, (string | undefined)[]>();
/** clusterIPOf as text, kept per object. */
function clusterIPText(svc: ServiceObj, family: Family): string | undefined {
  let l = cipCache.get(svc);
  if (!l) {
    const f = (x: Family): string | undefined => {
      const a = clusterIPOf(svc, x);
      return a ? formatAddr(a) : undefined;
    };
    cipCache.set(svc, (l = [f(4), f(6)]));
  }
  return l[family === 4 ? 0 : 1];
}

/** One frontend a Service asks for, before its endpoints are known. */
interface Claim {
  kind: FrontendKind;
  family: Family;
  address: string;
  port: number;
  protocol: ServicePort['protocol'];
  scope: Scope;
  portName: string;
  svcPort: ServicePort;
  localPolicy: boolean;
  /** frontendKey of the claim. */
  key: string;
}

interface Ask {
  svc: ServiceObj;
  id: string;
  claims: Claim[];
  /** Who wins a clash: ClusterIPs first, then the oldest Service, then by namespace/name. */
  created: string;
}

/** "namespace/name" of a Service. */
const idOf = (svc: ServiceObj): string => `${svc.namespace}/${svc.name}`;

/**
 * What decides a clash between two Services' claims of one address:port/protocol: a ClusterIP
 * always beats another kind (an externalIP, LB IP or NodePort never takes a ClusterIP), then the
 * oldest Service (creationTimestamp; unset counts as newest), then namespace/name — never the
 * name first, which a tenant chooses.
 */
const rank = (c: Claim, a: Ask): string => `${c.kind === 'clusterIP' ? 0 : 1}\0${a.created}\0${a.id}\0${KIND_ORDER[c.kind]}\0${c.portName}\0${c.protocol}\0${c.family}\0${c.scope}\0${c.address}\0${c.port}`;

export function compileServices(services: Iterable<ServiceObj>, slices: Iterable<EndpointSliceObj>, node: NodeView, opts: CompileOptions = {}): ServicesModel {
  const families = opts.families ?? [4, 6];
  const allSlices = [...slices];
  const slicesBySvc = new Map<string, EndpointSliceObj[]>();
  for (const sl of allSlices) {
    if (!sl.service) continue;
    const k = `${sl.namespace}/${sl.service}`;
    let l = slicesBySvc.get(k);
    if (!l) slicesBySvc.set(k, (l = []));
    l.push(sl);
  }
  for (const l of slicesBySvc.values()) l.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const nodeAddrs = (family: Family): string[] =>
    [...new Set(node.addresses.map((s) => parseIn(s, family)).filter((a): a is Addr => a !== undefined).sort(byValue).map(formatAddr))];
  const nodeByFamily: Record<Family, string[]> = { 4: nodeAddrs(4), 6: nodeAddrs(6) };
  const nodeSet = new Set([...nodeByFamily[4], ...nodeByFamily[6]]);
  // A Service without externalIPs or LB IPs asks for the same claims whatever the others are: kept per object.
  const sig = `${families.join(',')}|${nodeByFamily[4].join(',')}|${nodeByFamily[6].join(',')}`;
  const allow = (opts.externalCIDRs ?? []).map((c) => parseCidr(c)).filter((c): c is Cidr => c !== undefined);

  const frontends: Frontend[] = [];
  const health: ServiceHealth[] = [];
  const skipped: { service: string; reason: string }[] = [];
  const blocked: { service: string; by: string }[] = [];

  // 1. Every Service's ClusterIPs and every slice's endpoint addresses that some Service names as
  // an externalIP or LB IP: those it may never take (a tenant would intercept a Service or a pod).
  // Only the addresses asked for are looked up: most clusters have few, and a watch change stays cheap.
  const allServices = [...services];
  const asked = new Set<string>();
  for (const svc of allServices) {
    for (const x of svc.externalIPs) asked.add(canonical(x));
    for (const x of svc.loadBalancerIngress) asked.add(canonical(x.ip));
  }
  const clusterOwner = new Map<string, string>();
  const endpointOwner = new Map<string, string>();
  if (asked.size) {
    for (const svc of allServices) {
      if (skipReason(svc)) continue;
      for (const family of families) {
        const cip = clusterIPText(svc, family);
        if (cip && asked.has(cip) && !clusterOwner.has(cip)) clusterOwner.set(cip, idOf(svc));
      }
    }
    for (const sl of allSlices) {
      for (const a of sliceAddresses(sl)) if (asked.has(a) && !endpointOwner.has(a)) endpointOwner.set(a, `${sl.namespace}/${sl.service || sl.name}`);
    }
  }

  // 2. What each Service asks for (no endpoints yet), with what is refused.
  const asks: Ask[] = [];
  for (const svc of allServices) {
    const id = idOf(svc);
    const emit = !opts.only || opts.only.has(id);
    const note = (reason: string): void => void (emit && skipped.push({ service: id, reason }));
    const why = skipReason(svc);
    if (why) {
      note(why);
      continue;
    }
    const itpLocal = svc.internalTrafficPolicy === 'Local';
    // apiservice.ExternallyAccessible / ExternalPolicyLocal / NeedsHealthCheck.
    const exposed = svc.type === 'LoadBalancer' || svc.type === 'NodePort' || (svc.type === 'ClusterIP' && svc.externalIPs.length > 0);
    const etpLocal = exposed && svc.externalTrafficPolicy === 'Local';
    const plain = svc.externalIPs.length === 0 && svc.loadBalancerIngress.length === 0;
    const cached = plain ? claimCache.get(svc) : undefined;
    if (cached && cached.sig === sig) {
      asks.push({ svc, id, claims: cached.claims, created: svc.created || '\uffff' });
      continue;
    }
    const claims: Claim[] = [];
    let tooMany: string | undefined;
    for (const family of families) {
      const cip = clusterIPText(svc, family);
      if (!cip) continue;
      // An externalIP or LB IP that is refused: skipped (with why) and never programmed, in either scope.
      const external = (kind: 'externalIP' | 'loadBalancer', xs: readonly string[]): string[] => {
        const out: string[] = [];
        for (const s of new Set(xs)) {
          const a = parseIn(s, family);
          if (!a) continue;
          const addr = formatAddr(a);
          if (out.includes(addr)) continue;
          const what = kind === 'externalIP' ? 'externalIP' : 'load-balancer IP';
          const special = specialAddress(a);
          const refuse = (reason: string, by?: string): void => {
            note(`${what} ${addr} refused: ${reason}`);
            if (by && (emit || opts.only?.has(by))) blocked.push({ service: id, by });
          };
          if (special) refuse(`${special} address`);
          else if (clusterOwner.has(addr)) refuse(`the ClusterIP of ${clusterOwner.get(addr)}`, clusterOwner.get(addr));
          else if (nodeSet.has(addr)) refuse('an address of this node (its own ports and NodePorts live there)');
          else if (endpointOwner.has(addr)) refuse(`an endpoint (pod) address of ${endpointOwner.get(addr)}`, endpointOwner.get(addr));
          else if (opts.externalCIDRs !== undefined && !allow.some((c) => contains(c, a))) refuse(`outside services.externalIPs (${opts.externalCIDRs.join(', ') || 'empty'})`);
          else out.push(addr);
        }
        return out;
      };
      const externalIPs = external('externalIP', svc.externalIPs);
      const lbIPs = external('loadBalancer', svc.loadBalancerIngress.filter((i) => i.ipMode !== 'Proxy').map((i) => i.ip));
      const nExternal = (externalIPs.length + lbIPs.length) * svc.ports.length;
      if (nExternal > MAX_SERVICE_EXTERNAL) tooMany = `${nExternal} ${FAMILY_NAME[family]} (externalIP or load-balancer IP) × port frontends, at most ${MAX_SERVICE_EXTERNAL}`;
      for (const port of svc.ports) {
        const c = (kind: FrontendKind, address: string, fport: number, scope: Scope, localPolicy: boolean): void =>
          void claims.push({ kind, family, address, port: fport, protocol: port.protocol, scope, portName: port.name, svcPort: port, localPolicy, key: frontendKey({ family, address, port: fport, protocol: port.protocol, scope }) });
        c('clusterIP', cip, port.port, 'internal', itpLocal);
        // Every address reached from outside: external traffic by externalTrafficPolicy; pods and
        // the node itself short-circuited to the cluster endpoints, whatever either policy says.
        const outside = (kind: FrontendKind, address: string, fport: number): void => {
          c(kind, address, fport, 'external', etpLocal);
          c(kind, address, fport, 'internal', false);
        };
        if (port.nodePort !== undefined && port.nodePort > 0) for (const a of nodeByFamily[family]) outside('nodePort', a, port.nodePort);
        for (const a of externalIPs) outside('externalIP', a, port.port);
        for (const a of lbIPs) outside('loadBalancer', a, port.port);
      }
    }
    if (!tooMany && claims.length > MAX_SERVICE_FRONTENDS) tooMany = `${claims.length} frontends, at most ${MAX_SERVICE_FRONTENDS}`;
    if (tooMany) {
      note(`does not fit: ${tooMany}`);
      continue;
    }
    if (plain) claimCache.set(svc, { sig, claims });
    asks.push({ svc, id, claims, created: svc.created || '\uffff' });
  }

  // 3. One claim per map key, over every Service (a partial compile still sees the others' claims).
  // A partial compile only needs the keys its Services claim.
  const wanted = opts.only ? new Set(asks.filter((a) => opts.only!.has(a.id)).flatMap((a) => a.claims.map((c) => c.key))) : undefined;
  const winner = new Map<string, { c: Claim; a: Ask }>();
  for (const a of asks) {
    for (const c of a.claims) {
      if (wanted && !wanted.has(c.key)) continue;
      const had = winner.get(c.key);
      if (!had || rank(c, a) < rank(had.c, had.a)) winner.set(c.key, { c, a });
    }
  }

  // 4. The emitted Services' frontends, with their endpoints.
  for (const a of asks) {
    const { svc, id } = a;
    if (opts.only && !opts.only.has(id)) {
      // Another's claim beaten by an emitted Service, or beating one: the caller must look at both.
      for (const c of a.claims) {
        const w = winner.get(c.key);
        if (w && w.a !== a && opts.only.has(w.a.id)) blocked.push({ service: id, by: w.a.id });
      }
      continue;
    }
    const svcSlices = slicesBySvc.get(id) ?? [];
    const exposed = svc.type === 'LoadBalancer' || svc.type === 'NodePort' || (svc.type === 'ClusterIP' && svc.externalIPs.length > 0);
    const hcPort = svc.type === 'LoadBalancer' && exposed && svc.externalTrafficPolicy === 'Local' ? svc.healthCheckNodePort : 0;
    const affinity = svc.sessionAffinity === 'ClientIP' ? svc.affinityTimeoutSeconds : 0;
    const localReady = new Set<string>();
    const epsOf = new Map<string, Endpoint[]>();
    const ignored = new Set<string>();
    for (const c of a.claims) {
      const k = c.key;
      const w = winner.get(k)!;
      if (w.a !== a) {
        skipped.push({ service: id, reason: `${c.kind} ${k} (port ${JSON.stringify(c.portName)}) already served for ${w.a.id} port ${JSON.stringify(w.c.portName)} (${w.c.kind})` });
        blocked.push({ service: id, by: w.a.id });
        continue;
      }
      if (w.c !== c) continue; // the same Service names one key twice: the first keeps it
      const ek = `${c.family}|${c.portName}|${c.protocol}`;
      let eps = epsOf.get(ek);
      if (!eps) {
        eps = endpointsOf(svcSlices, c.svcPort, c.family, node.name, (why) => ignored.add(why));
        epsOf.set(ek, eps);
        for (const e of eps) if (e.local && e.ready) localReady.add(e.address);
      }
      const cluster = choose(eps, false);
      const hasAny = !empty(cluster);
      const ch = !hasAny ? { ready: [], terminating: [] } : c.localPolicy ? choose(eps, true) : cluster;
      const verdict: Verdict = !hasAny ? 'reject' : empty(ch) ? 'drop' : 'forward';
      const ranges = c.kind === 'loadBalancer'
        ? [...new Set(svc.loadBalancerSourceRanges.map((r) => parseCidr(r)).filter((x) => x !== undefined && x.addr.family === c.family).map((x) => formatCidr(network(x!))))]
        : [];
      frontends.push({
        service: id, portName: c.portName, family: c.family, address: c.address, port: c.port, protocol: c.protocol, scope: c.scope, kind: c.kind,
        policy: c.localPolicy ? 'Local' : 'Cluster', backends: ch, verdict, affinitySeconds: affinity, sourceRanges: ranges, healthCheckNodePort: hcPort,
      });
    }
    for (const why of ignored) skipped.push({ service: id, reason: why });
    if (hcPort > 0) health.push({ service: id, namespace: svc.namespace, name: svc.name, nodePort: hcPort, localEndpoints: localReady.size });
  }

  return {
    frontends: frontends.sort((a, b) => cmp(frontendKey(a), frontendKey(b))),
    health: health.sort((a, b) => cmp(a.service, b.service)),
    skipped: skipped.sort((a, b) => cmp(a.service, b.service) || cmp(a.reason, b.reason)),
    blocked: [...new Map(blocked.map((b) => [`${b.service}\0${b.by}`, b])).values()],
  };
}

const KIND_ORDER: Record<FrontendKind, number> = { clusterIP: 0, loadBalancer: 1, externalIP: 2, nodePort: 3 };
const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
