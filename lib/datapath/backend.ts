// Cross-node backends: programs the tunnel device, neighbours, FDB and peer routes from the
// node table, idempotently (the second run changes nothing), removing what a departed node
// left. ADD calls it cheaply: it skips when the applied state is current.
import { readFileSync, rmSync } from '../sys/fs.js';
import { Code, CniError } from '../cni/errors.js';
import type { NetConf } from '../config/types.js';
import { mkdirs, writeAtomic } from '../fsx.js';
import { bits, formatAddr, formatCidr, sameAddr, type Addr } from '../net/ip.js';
import { log } from '../log.js';
import { fnv1a64, runMarker } from '../naming.js';
import { backendDir, backendStatePath as statePath, lastGoodNodesPath as lastGoodPath, readJson } from '../state/files.js';
import { Netlink } from '../sys/netlink.js';
import {
  addTwillRoute, createVxlan, delNeigh, delTwillRoute, listNeighs, setTxChecksum, listTwillRoutes, routeGet, setNeigh, type Neigh, type TwillRoute,
} from '../sys/overlay.js';
import { addAddress, deleteLink, getLink, getLinkByIndex, IFA_F_NODAD, IFA_F_NOPREFIXROUTE, listAddresses, setLinkUp } from '../sys/rtnl.js';
import { NodeTableUnreadable, nodeTable, splitNodes, usableTable, type Peer } from './nodes.js';
import { refreshNetworkGuard } from './guard.js';
import type { NodeEntry } from '../config/types.js';

export interface BackendState {
  backend: NetConf['backend'];
  device?: string;
  mtu: number;
  self?: string;
  peers: string[];
  problems: string[];
  changes: number;
}

const VXLAN_OVERHEAD = { 4: 50, 6: 70 } as const;
const DEFAULT_MTU = 1500;

/** A node's VTEP MAC, derived from its address: every node computes every other's. */
export function vtepMac(ip: Addr): string {
  const h = fnv1a64(formatAddr(ip)).toString(16).padStart(16, '0');
  return `0e:${h.slice(0, 2)}:${h.slice(2, 4)}:${h.slice(4, 6)}:${h.slice(6, 8)}:${h.slice(8, 10)}`;
}

/**
 * Kernels before 5.7 rewrote the (zero) UDP checksum of VXLAN packets they NAT'd, so peers
 * dropped them: offload off there, as flannel does. Elsewhere off only costs throughput.
 */
function txChecksumOn(conf: NetConf): boolean {
  if (conf.vxlan.txChecksumOffload !== 'auto') return conf.vxlan.txChecksumOffload === 'on';
  let release = '0.0';
  try {
    release = readFileSync('/proc/sys/kernel/osrelease', 'utf8');
  } catch {
    return false;
  }
  const [maj = 0, min = 0] = release.split('.').map((x) => parseInt(x, 10));
  return maj > 5 || (maj === 5 && min >= 7);
}

const appliedPath = (conf: NetConf): string => runMarker(conf.stateDir, 'applied', conf.name);
export const vxlanDevice = (conf: NetConf): string => conf.vxlan.device ?? `twill.${conf.vxlan.vni}`;

export const readBackendState = (conf: NetConf): BackendState | undefined => readJson<BackendState>(statePath(conf));

function neighKey(n: Neigh): string {
  return `${n.family}|${formatAddr(n.dst)}|${n.mac}`;
}
function routeKey(r: TwillRoute): string {
  return `${formatCidr(r.dst)}|${formatAddr(r.gw)}|${r.oif}|${r.onlink}|${r.metric}`;
}

/** A route metric per network (1000..65535), so networks never touch each other's routes. */
export const networkMetric = (conf: NetConf): number => Number(fnv1a64(conf.name) % 64536n) + 1000;

interface Plan {
  routes: TwillRoute[];
  neighs: Neigh[];
  problems: string[];
}

function planVxlan(dev: number, peers: Peer[], metric: number): Plan {
  const routes: TwillRoute[] = [];
  const neighs: Neigh[] = [];
  for (const p of peers) {
    const mac = vtepMac(p.ip);
    neighs.push({ family: 'bridge', ifindex: dev, dst: p.ip, mac });
    for (const c of p.podCIDRs) {
      // As flannel does: the peer's pod network address is the on-link next hop on the
      // VXLAN device, resolved statically to the peer's VTEP MAC.
      neighs.push({ family: c.addr.family, ifindex: dev, dst: c.addr, mac });
      routes.push({ dst: c, gw: c.addr, oif: dev, onlink: true, metric });
    }
  }
  return { routes, neighs, problems: [] };
}

function planHostgw(nl: Netlink, peers: Peer[], metric: number): Plan {
  const routes: TwillRoute[] = [];
  const problems: string[] = [];
  for (const p of peers) {
    for (const c of p.podCIDRs) {
      const via = c.addr.family === p.ip.family ? p.ip : p.ip6?.family === c.addr.family ? p.ip6 : undefined;
      if (!via) {
        problems.push(`node ${p.name}: no IPv${c.addr.family} node address for ${formatCidr(c)}`);
        continue;
      }
      const r = routeGet(nl, via);
      if (!r || r.gw) {
        // A route through a router would send pod traffic where nobody expects it: skip it.
        problems.push(`node ${p.name} (${formatAddr(via)}) is not directly reachable on the underlay: no route for ${formatCidr(c)}`);
        continue;
      }
      routes.push({ dst: c, gw: via, oif: r.oif, onlink: false, metric });
    }
  }
  return { routes, neighs: [], problems };
}

function localAddrs(nl: Netlink): { addr: Addr; index: number }[] {
  return listAddresses(nl).map((a) => ({ addr: a.cidr.addr, index: a.index }));
}

/** Brings the kernel to the node table; returns what it changed and what it could not do. */
export function reconcile(conf: NetConf, opts: { cleanup?: boolean } = {}): BackendState {
  const nl = new Netlink();
  try {
    const addrs = localAddrs(nl);
    const problems: string[] = [];
    const usable = opts.cleanup ? { table: [] } : usableTable(conf);
    if (usable.problem) problems.push(usable.problem);
    const table = usable.table;
    const { self, peers, bad } = splitNodes(conf, table, addrs.map((a) => a.addr));
    problems.push(...bad.map((b) => `${b}: skipped`));
    let changes = 0;
    let mtu = conf.mtu ?? DEFAULT_MTU;
    let plan: Plan = { routes: [], neighs: [], problems: [] };
    let devIndex: number | undefined;
    if (conf.backend === 'vxlan' && !opts.cleanup) {
      if (!self) throw new CniError(Code.InvalidConfig, `vxlan: this node is not in the node table (set nodeName, or list a node whose ip is local)`);
      const underlay = addrs.find((a) => sameAddr(a.addr, self.ip));
      const uLink = underlay ? getLinkByIndex(nl, underlay.index) : undefined;
      if (!uLink) throw new CniError(Code.InvalidConfig, `vxlan: no local interface holds ${formatAddr(self.ip)}`);
      const devMtu = uLink.mtu - VXLAN_OVERHEAD[self.ip.family];
      mtu = conf.mtu ?? devMtu;
      const name = vxlanDevice(conf);
      let link = getLink(nl, name);
      if (!link) {
        createVxlan(nl, { name, vni: conf.vxlan.vni, port: conf.vxlan.port, local: self.ip, underlayIndex: uLink.index, mac: vtepMac(self.ip), mtu: devMtu });
        link = getLink(nl, name);
        changes++;
      }
      if (!link) throw new CniError(Code.TryAgainLater, `vxlan device ${name} vanished`);
      devIndex = link.index;
      const have = listAddresses(nl, link.index);
      for (const c of self.podCIDRs) {
        if (have.some((a) => sameAddr(a.cidr.addr, c.addr))) continue;
        addAddress(nl, { index: link.index, cidr: { addr: c.addr, prefix: bits(c.addr.family) }, flags: IFA_F_NOPREFIXROUTE | IFA_F_NODAD });
        changes++;
      }
      if (!link.up) {
        setLinkUp(nl, link.index);
        changes++;
      }
      setTxChecksum(name, txChecksumOn(conf));
      plan = planVxlan(link.index, peers, networkMetric(conf));
    } else if (conf.backend === 'hostgw' && !opts.cleanup) {
      plan = planHostgw(nl, peers, networkMetric(conf));
    } else if (opts.cleanup && getLink(nl, vxlanDevice(conf))) {
      // Deleting the device takes its FDB, neighbours and routes with it.
      deleteLink(nl, vxlanDevice(conf));
      changes++;
    }
    problems.push(...plan.problems);
    changes += apply(nl, conf, plan, devIndex);
    const st: BackendState = { backend: conf.backend, ...(devIndex !== undefined ? { device: vxlanDevice(conf) } : {}), mtu, ...(self ? { self: self.name } : {}), peers: peers.map((p) => p.name), problems, changes };
    for (const p of problems) log.warn('backend', { problem: p });
    if (opts.cleanup) rmSync(appliedPath(conf), { force: true }); // nothing programmed: nothing to remember until next boot
    else {
      saveState(conf, st, table, !usable.problem);
      if (conf.backend === 'vxlan') refreshNetworkGuard(conf, table);
    }
    return st;
  } finally {
    nl.close();
  }
}

function apply(nl: Netlink, conf: NetConf, plan: Plan, dev: number | undefined): number {
  let changes = 0;
  // Routes are twill's by protocol tag; this network's are those through its device
  // (vxlan) or towards its peers' pod CIDRs (hostgw).
  const want = new Map(plan.routes.map((r) => [routeKey(r), r]));
  const metric = networkMetric(conf);
  const mine = (r: TwillRoute): boolean => r.metric === metric;
  const have = [...listTwillRoutes(nl, 4), ...listTwillRoutes(nl, 6)].filter(mine);
  for (const r of have) {
    if (want.has(routeKey(r))) {
      want.delete(routeKey(r));
      continue;
    }
    delTwillRoute(nl, r);
    changes++;
  }
  if (dev !== undefined) {
    const wantN = new Map(plan.neighs.map((n) => [neighKey(n), n]));
    for (const fam of [4, 6, 'bridge'] as const) {
      for (const n of listNeighs(nl, fam, dev)) {
        if (wantN.has(neighKey(n))) {
          wantN.delete(neighKey(n));
          continue;
        }
        delNeigh(nl, n);
        changes++;
      }
    }
    for (const n of wantN.values()) {
      setNeigh(nl, n);
      changes++;
    }
  }
  // Neighbours before routes: the kernel would otherwise try to resolve the next hop.
  for (const r of want.values()) {
    addTwillRoute(nl, r);
    changes++;
  }
  return changes;
}

function saveState(conf: NetConf, st: BackendState, table: NodeEntry[], good: boolean): void {
  mkdirs(backendDir(conf), 0o700);
  writeAtomic(statePath(conf), `${JSON.stringify(st)}\n`);
  if (good && !conf.nodes) writeAtomic(lastGoodPath(conf), `${JSON.stringify({ nodes: table })}\n`);
  mkdirs('/run/twill', 0o700);
  writeAtomic(appliedPath(conf), inputsHash(conf, table));
}

/** A change detector over the inputs (FNV-1a 32 with Math.imul: a 10,000-node table hashes in ~2 ms). */
function inputsHash(conf: NetConf, table: unknown): string {
  const s = JSON.stringify([conf.backend, conf.vxlan, conf.nodeName, conf.mtu, table]);
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return `${(h >>> 0).toString(16)}-${s.length}`;
}

/**
 * ADD's check: the backend exists and was programmed from the current table (one file read
 * and one link lookup when nothing changed); reconciles otherwise. Returns the pod MTU.
 */
export function ensureBackend(conf: NetConf): number {
  if (conf.backend === 'none') return conf.mtu ?? DEFAULT_MTU;
  let table: NodeEntry[];
  try {
    table = nodeTable(conf);
  } catch (e) {
    if (!(e instanceof NodeTableUnreadable)) throw e;
    // What is programmed came from the last good table: keep it, and say why.
    const st = readBackendState(conf);
    log.warn('node table unreadable; the backend keeps what it was programmed with', { reason: e.message });
    if (st) return st.mtu;
    return reconcile(conf).mtu;
  }
  let applied = '';
  try {
    applied = readFileSync(appliedPath(conf), 'utf8');
  } catch {
    // never applied since boot
  }
  const st = readBackendState(conf);
  if (st && applied === inputsHash(conf, table)) {
    if (conf.backend !== 'vxlan') return st.mtu;
    const nl = new Netlink();
    try {
      if (getLink(nl, vxlanDevice(conf))) return st.mtu;
    } finally {
      nl.close();
    }
  }
  return reconcile(conf).mtu;
}
