// The routed veth of one pod: create, configure both ends, read back, delete.
// Everything here talks to the kernel; the decisions are made by lib/attachment.ts.
import { renameSync, rmSync } from './fs.js';
import { InterfaceExists, Vanished } from './errors.js';
import { bits, type Addr, type Cidr } from '../net/ip.js';
import { EEXIST } from './libc.js';
import { Netlink, NetlinkError, withNetlink } from './netlink.js';
import { inNetns, type Netns } from './netns.js';
import {
  addAddress, addRoute, createVeth, deleteLink, getLink, getLinkByIndex, IFA_F_NODAD, IFA_F_NOPREFIXROUTE, listAddresses, listLinks, listRoutes,
  setLinkAlias, setLinkDown, setLinkName, setLinkUp, type KernelRoute, type Link, type LinkAddr,
} from './rtnl.js';
import { deleteLinkDetached } from './reaper.js';
import { ensureSysctl } from './sysctl.js';

export interface PodLinkSpec {
  hostName: string;
  hostMac: string;
  podIfName: string;
  podMac: string;
  mtu: number;
  alias: string;
  netns: Netns;
  addrs: { cidr: Cidr; gateway: Addr }[];
  /** Extra pod routes, each through the gateway of its family. */
  routes: { dst: Cidr; gw: Addr }[];
  /** Runs while the host end is still down: nothing crosses the pair before it returns. */
  beforeUp?: (hostIndex: number) => void;
  /** Told as each stage is done (the caller's crash-safety tests stop there). */
  step?: (done: 'veth' | 'pod' | 'host') => void;
}

export interface PodLink {
  hostIndex: number;
  podIndex: number;
}

const host = (a: Addr): Cidr => ({ addr: a, prefix: bits(a.family) });
const addrFlags = (a: Addr): number => IFA_F_NOPREFIXROUTE | (a.family === 6 ? IFA_F_NODAD : 0);

/** A netlink socket bound inside ns (sockets keep the netns they were created in). */
export function socketIn(ns: Netns, prepare?: () => void): Netlink {
  return inNetns(ns, () => {
    prepare?.();
    return new Netlink();
  });
}

function create(nl: Netlink, s: PodLinkSpec): void {
  const veth = { name: s.hostName, mac: s.hostMac, peerName: s.podIfName, peerMac: s.podMac, peerNetnsFd: s.netns.fd, mtu: s.mtu };
  try {
    createVeth(nl, veth);
  } catch (e) {
    if (!(e instanceof NetlinkError) || e.errno !== EEXIST) throw e;
    // The host name is derived from (containerID, ifname): a link of that name whose alias says
    // it is this attachment is a leftover of an earlier attempt, safe to replace (an empty
    // alias: killed between creating the pair and naming it). Anything else is not ours to
    // delete. Without such a link, the pod already has an interface of that name: an error.
    const existing = getLink(nl, s.hostName);
    if (!existing) {
      // The pod end of this attachment's pair whose DEL was killed once its host end was a
      // tombstone is ours to remove; any other interface of that name is the pod's.
      if (freePodIfName(s.netns, s.podIfName, (h) => h.alias === s.alias, undefined).length === 0) {
        throw new InterfaceExists(`interface ${s.podIfName} already exists in ${s.netns.path}`);
      }
      createVeth(nl, veth);
      return;
    }
    if (existing.alias !== s.alias && existing.alias !== '') {
      throw new InterfaceExists(`host interface ${s.hostName} exists and belongs to something else (alias "${existing.alias}")`);
    }
    deleteLink(nl, s.hostName);
    createVeth(nl, veth);
  }
}

export function attachPod(s: PodLinkSpec): PodLink {
  const nl = new Netlink();
  try {
    create(nl, s);
    const hostLink = getLink(nl, s.hostName);
    if (!hostLink) throw new Vanished(`host veth ${s.hostName} vanished during ADD`);
    // The alias names the network for GC; set at once so a crash from here on leaves a veth
    // GC can attribute (the kernel ignores IFLA_IFALIAS in the create request itself).
    setLinkAlias(nl, hostLink.index, s.alias);
    s.step?.('veth');
    const hasV6 = s.addrs.some((a) => a.cidr.addr.family === 6);
    const pod = socketIn(s.netns, () => {
      if (!hasV6) return;
      // The pod's addresses come from our pool: no DAD, so nothing (link-local included) is
      // tentative and the first packet after ADD is answered.
      ensureSysctl(['net', 'ipv6', 'conf', s.podIfName, 'disable_ipv6'], '0');
      ensureSysctl(['net', 'ipv6', 'conf', s.podIfName, 'accept_dad'], '0');
    });
    let podIndex: number;
    try {
      podIndex = configurePod(pod, s);
    } finally {
      pod.close();
    }
    s.step?.('pod');
    if (hasV6) {
      ensureSysctl(['net', 'ipv6', 'conf', s.hostName, 'accept_dad'], '0');
      ensureSysctl(['net', 'ipv6', 'conf', s.hostName, 'accept_ra'], '0');
    }
    for (const a of s.addrs) addAddress(nl, { index: hostLink.index, cidr: host(a.gateway), flags: IFA_F_NOPREFIXROUTE | IFA_F_NODAD });
    s.beforeUp?.(hostLink.index);
    setLinkUp(nl, hostLink.index);
    for (const a of s.addrs) addRoute(nl, { dst: host(a.cidr.addr), oif: hostLink.index });
    ensureSysctl(['net', 'ipv4', 'ip_forward'], '1');
    if (hasV6) ensureSysctl(['net', 'ipv6', 'conf', 'all', 'forwarding'], '1');
    s.step?.('host');
    return { hostIndex: hostLink.index, podIndex };
  } finally {
    nl.close();
  }
}

function configurePod(pod: Netlink, s: PodLinkSpec): number {
  setLinkUp(pod, 1); // loopback is ifindex 1 in every namespace
  const link = getLink(pod, s.podIfName);
  if (!link) throw new Vanished(`${s.podIfName} vanished from ${s.netns.path} during ADD`);
  for (const a of s.addrs) addAddress(pod, { index: link.index, cidr: a.cidr, flags: addrFlags(a.cidr.addr) });
  setLinkUp(pod, link.index);
  for (const a of s.addrs) addRoute(pod, { dst: host(a.gateway), oif: link.index });
  for (const r of s.routes) addRoute(pod, { dst: r.dst, gw: r.gw, oif: link.index });
  return link.index;
}

/** The name a link being deleted in the background carries: unique while the link lives. */
export const TOMBSTONE_PREFIX = 'twdel';
export const tombstoneName = (index: number): string => `${TOMBSTONE_PREFIX}${index}`;

/**
 * Removes the pair by its host end; false when it was already gone. With background set, the
 * link is taken down now and deleted by a detached process (see reaper.ts). Before it is
 * handed off, the link and its pins are renamed to a tombstone: a runtime that re-adds the
 * same container at once (podman restart, `cnitool del` + `add`) gets the attachment's
 * name for its new veth, and the late deletion can only ever remove the old one.
 */
export function detachPod(hostName: string, background = false, thenRemove: string[] = [], step?: (done: 'down' | 'renamed') => void): boolean {
  const nl = new Netlink();
  try {
    const link = getLink(nl, hostName);
    if (!link) return false;
    let name = hostName;
    let pins = thenRemove;
    if (background) {
      setLinkDown(nl, link.index);
      step?.('down');
      name = tombstoneName(link.index);
      setLinkName(nl, link.index, name);
      step?.('renamed');
      pins = thenRemove.flatMap((p) => {
        // What follows the veth's name in a pin (a direction suffix) stays: two pins of one
        // veth keep two names, and GC still tells whose they are.
        const base = p.slice(p.lastIndexOf('/') + 1);
        const to = `${p.slice(0, p.lastIndexOf('/'))}/${name}${base.startsWith(hostName) ? base.slice(hostName.length) : ''}`;
        try {
          renameSync(p, to);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
          throw e;
        }
        return [to];
      });
      if (deleteLinkDetached(name, pins)) return true;
    }
    const removed = deleteLink(nl, name);
    for (const f of pins) rmSync(f, { force: true });
    return removed;
  } finally {
    nl.close();
  }
}

/**
 * Frees ifName in a pod's namespace, and removes what interrupted calls left there. A veth
 * named ifName or as a tombstone counts only when it is the pod end of a pair whose host end
 * (in this namespace, pointing back at it) ownsHost accepts; any other interface, a veth of
 * another pair or a device of another kind, is not ours and stays. The pod end of reapedHost
 * (a pair whose host end is about to be deleted in the background) is only taken down and
 * renamed to a tombstone: cheap, and the name is free at once. Any other pair of ours there was
 * left by an interrupted call, and is deleted now. Returns the pod ends deleted.
 */
export function freePodIfName(ns: Netns, ifName: string, ownsHost: (host: Link) => boolean, reapedHost: number | undefined): string[] {
  const pod = socketIn(ns);
  const deleted: string[] = [];
  try {
    const candidates = listLinks(pod).filter((l) => l.kind === 'veth' && (l.name === ifName || l.name.startsWith(TOMBSTONE_PREFIX)));
    if (candidates.length === 0) return deleted;
    withNetlink((nl) => {
      for (const l of candidates) {
        const host = getLinkByIndex(nl, l.peerIndex);
        if (!host || host.kind !== 'veth' || host.peerIndex !== l.index || !ownsHost(host)) continue;
        if (host.index !== reapedHost) {
          if (deleteLink(pod, l.name)) deleted.push(l.name);
        } else if (l.name === ifName) {
          setLinkDown(pod, l.index);
          setLinkName(pod, l.index, tombstoneName(l.index));
        }
      }
    });
    return deleted;
  } finally {
    pod.close();
  }
}

export interface SideState {
  link?: Link;
  addrs: LinkAddr[];
  routes: KernelRoute[];
}

function readSide(nl: Netlink, name: string, families: (4 | 6)[]): SideState {
  const link = getLink(nl, name);
  if (!link) return { addrs: [], routes: [] };
  return {
    link,
    addrs: listAddresses(nl, link.index),
    routes: families.flatMap((f) => listRoutes(nl, f)).filter((r) => r.oif === link.index),
  };
}

export function readPodSide(ns: Netns, ifName: string, families: (4 | 6)[]): SideState {
  const nl = socketIn(ns);
  try {
    return readSide(nl, ifName, families);
  } finally {
    nl.close();
  }
}

export function readHostSide(name: string, families: (4 | 6)[]): SideState {
  return withNetlink((nl) => readSide(nl, name, families));
}

/** Host veths whose alias starts with prefix (GC's view of this network's attachments). */
export function hostLinksWithAlias(prefix: string): Link[] {
  return withNetlink((nl) => listLinks(nl).filter((l) => l.alias.startsWith(prefix)));
}

export function hostLinkIndex(name: string): number | undefined {
  return withNetlink((nl) => getLink(nl, name)?.index);
}

/** ifindex → name of every host link. */
export function listHostLinkNames(): Map<number, string> {
  return withNetlink((nl) => new Map(listLinks(nl).map((l) => [l.index, l.name])));
}

/** Every address on this namespace's interfaces. */
export function localAddresses(): Addr[] {
  return withNetlink((nl) => listAddresses(nl).map((a) => a.cidr.addr));
}
