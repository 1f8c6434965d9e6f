// rtnetlink verbs twill needs: links, addresses, routes. Pure encoders over a Netlink socket.
import { addrBytes, addrFromBytes, type Addr, type Cidr } from '../ipam/ip.js';
import { ENODEV, ENOENT } from './libc.js';
import type { Netlink } from './netlink.js';
import { cstr, decodeAttrs, encodeAttrs, i32, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, str, u32, type Attr, type RawMessage } from './nlmsg.js';

const RTM_NEWLINK = 16, RTM_DELLINK = 17, RTM_GETLINK = 18;
const RTM_NEWADDR = 20, RTM_DELADDR = 21, RTM_GETADDR = 22;
const RTM_NEWROUTE = 24, RTM_DELROUTE = 25, RTM_GETROUTE = 26;
const IFLA_ADDRESS = 1, IFLA_IFNAME = 3, IFLA_MTU = 4, IFLA_LINK = 5, IFLA_LINKINFO = 18, IFLA_IFALIAS = 20, IFLA_NET_NS_FD = 28;
const IFLA_INFO_KIND = 1, IFLA_INFO_DATA = 2, VETH_INFO_PEER = 1;
const IFA_ADDRESS = 1, IFA_LOCAL = 2, IFA_FLAGS = 8;
export const IFA_F_NODAD = 0x02, IFA_F_NOPREFIXROUTE = 0x200;
const RTA_DST = 1, RTA_OIF = 4, RTA_GATEWAY = 5, RTA_TABLE = 15;
export const RT_SCOPE_UNIVERSE = 0, RT_SCOPE_LINK = 253;
const RTPROT_STATIC = 4, RTN_UNICAST = 1, RT_TABLE_MAIN = 254;
const IFF_UP = 1;
const AF_UNSPEC = 0, AF_INET = 2, AF_INET6 = 10;

const af = (f: 4 | 6): number => (f === 4 ? AF_INET : AF_INET6);

function ifinfomsg(index = 0, flags = 0, change = 0, family = AF_UNSPEC): Buffer {
  const b = Buffer.alloc(16);
  b.writeUInt8(family, 0);
  b.writeInt32LE(index, 4);
  b.writeUInt32LE(flags, 8);
  b.writeUInt32LE(change, 12);
  return b;
}

export interface Link {
  index: number;
  name: string;
  mtu: number;
  mac: string;
  up: boolean;
  alias: string;
  kind: string;
  peerIndex: number;
}

export const macString = (b: Buffer | undefined): string => (b ? [...b].map((x) => x.toString(16).padStart(2, '0')).join(':') : '');
export const macBytes = (s: string): Buffer => Buffer.from(s.split(':').map((x) => parseInt(x, 16)));

function parseLink(m: RawMessage): Link {
  const attrs = decodeAttrs(m.body.subarray(16));
  const info = attrs.get(IFLA_LINKINFO);
  const link = attrs.get(IFLA_LINK);
  return {
    index: m.body.readInt32LE(4),
    name: cstr(attrs.get(IFLA_IFNAME)),
    mtu: attrs.get(IFLA_MTU)?.readUInt32LE(0) ?? 0,
    mac: macString(attrs.get(IFLA_ADDRESS)),
    up: (m.body.readUInt32LE(8) & IFF_UP) !== 0,
    alias: cstr(attrs.get(IFLA_IFALIAS)),
    kind: info ? cstr(decodeAttrs(info).get(IFLA_INFO_KIND)) : '',
    peerIndex: link ? link.readInt32LE(0) : 0,
  };
}

export function getLink(nl: Netlink, name: string): Link | undefined {
  const m = nl.get(RTM_GETLINK, Buffer.concat([ifinfomsg(), encodeAttrs([[IFLA_IFNAME, str(name)]])]), [ENODEV, ENOENT]);
  return m ? parseLink(m) : undefined;
}

export function getLinkByIndex(nl: Netlink, index: number): Link | undefined {
  const m = nl.get(RTM_GETLINK, ifinfomsg(index), [ENODEV, ENOENT]);
  return m ? parseLink(m) : undefined;
}

export function listLinks(nl: Netlink): Link[] {
  return nl.dump(RTM_GETLINK, ifinfomsg()).filter((m) => m.type === RTM_NEWLINK).map(parseLink);
}

export interface VethSpec {
  name: string;
  mac: string;
  peerName: string;
  peerMac: string;
  peerNetnsFd: number;
  mtu: number;
}

/** Creates both ends at once, the peer directly inside the pod's namespace. */
export function createVeth(nl: Netlink, s: VethSpec): void {
  const peer = Buffer.concat([
    ifinfomsg(),
    encodeAttrs([[IFLA_IFNAME, str(s.peerName)], [IFLA_ADDRESS, macBytes(s.peerMac)], [IFLA_MTU, u32(s.mtu)], [IFLA_NET_NS_FD, u32(s.peerNetnsFd)]]),
  ]);
  const attrs: Attr[] = [
    [IFLA_IFNAME, str(s.name)],
    [IFLA_ADDRESS, macBytes(s.mac)],
    [IFLA_MTU, u32(s.mtu)],
    [IFLA_LINKINFO, [[IFLA_INFO_KIND, str('veth')], [IFLA_INFO_DATA, [[VETH_INFO_PEER, peer]]]]],
  ];
  nl.request(`create veth ${s.name}`, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, Buffer.concat([ifinfomsg(), encodeAttrs(attrs)]));
}

export function setLinkUp(nl: Netlink, index: number): void {
  nl.request(`set link ${index} up`, RTM_NEWLINK, 0, ifinfomsg(index, IFF_UP, IFF_UP));
}

export function setLinkAlias(nl: Netlink, index: number, alias: string): void {
  nl.request(`set alias of link ${index}`, RTM_NEWLINK, 0, Buffer.concat([ifinfomsg(index), encodeAttrs([[IFLA_IFALIAS, str(alias)]])]));
}

/** Renames a link (it must be down). */
export function setLinkName(nl: Netlink, index: number, name: string): void {
  nl.request(`rename link ${index} to ${name}`, RTM_NEWLINK, 0, Buffer.concat([ifinfomsg(index), encodeAttrs([[IFLA_IFNAME, str(name)]])]));
}

export function setLinkDown(nl: Netlink, index: number): void {
  nl.request(`set link ${index} down`, RTM_NEWLINK, 0, ifinfomsg(index, 0, IFF_UP));
}

/** Deletes a link by name; false when it was already gone. */
export function deleteLink(nl: Netlink, name: string): boolean {
  try {
    nl.request(`delete link ${name}`, RTM_DELLINK, 0, Buffer.concat([ifinfomsg(), encodeAttrs([[IFLA_IFNAME, str(name)]])]));
    return true;
  } catch (e) {
    if ((e as { errno?: number }).errno === ENODEV) return false;
    throw e;
  }
}

export interface AddrSpec {
  index: number;
  cidr: Cidr;
  flags: number;
  scope?: number;
}

export function addAddress(nl: Netlink, a: AddrSpec): void {
  const hdr = Buffer.alloc(8);
  hdr.writeUInt8(af(a.cidr.addr.family), 0);
  hdr.writeUInt8(a.cidr.prefix, 1);
  hdr.writeUInt8(a.flags & 0xff, 2);
  hdr.writeUInt8(a.scope ?? RT_SCOPE_UNIVERSE, 3);
  hdr.writeUInt32LE(a.index, 4);
  const bytes = addrBytes(a.cidr.addr);
  const attrs: Attr[] = [[IFA_LOCAL, bytes], [IFA_ADDRESS, bytes], [IFA_FLAGS, u32(a.flags)]];
  nl.request(`add address to link ${a.index}`, RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE, Buffer.concat([hdr, encodeAttrs(attrs)]));
}

export interface LinkAddr {
  index: number;
  cidr: Cidr;
}

export function listAddresses(nl: Netlink, index?: number): LinkAddr[] {
  const out: LinkAddr[] = [];
  for (const m of nl.dump(RTM_GETADDR, Buffer.alloc(8))) {
    if (m.type !== RTM_NEWADDR) continue;
    const idx = m.body.readUInt32LE(4);
    if (index !== undefined && idx !== index) continue;
    const attrs = decodeAttrs(m.body.subarray(8));
    const a = attrs.get(IFA_LOCAL) ?? attrs.get(IFA_ADDRESS);
    if (a) out.push({ index: idx, cidr: { addr: addrFromBytes(a), prefix: m.body.readUInt8(1) } });
  }
  return out;
}

export interface RouteSpec {
  dst: Cidr;
  gw?: Addr;
  oif: number;
  scope?: number;
}

function rtmsg(r: RouteSpec): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt8(af(r.dst.addr.family), 0);
  b.writeUInt8(r.dst.prefix, 1);
  b.writeUInt8(RT_TABLE_MAIN, 4);
  b.writeUInt8(RTPROT_STATIC, 5);
  b.writeUInt8(r.scope ?? (r.gw ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK), 6);
  b.writeUInt8(RTN_UNICAST, 7);
  const attrs: Attr[] = [[RTA_DST, addrBytes(r.dst.addr)], [RTA_OIF, i32(r.oif)], [RTA_TABLE, u32(RT_TABLE_MAIN)]];
  if (r.gw) attrs.push([RTA_GATEWAY, addrBytes(r.gw)]);
  return Buffer.concat([b, encodeAttrs(attrs)]);
}

export function addRoute(nl: Netlink, r: RouteSpec): void {
  nl.request(`add route ${r.dst.prefix}`, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, rtmsg(r));
}

export interface KernelRoute {
  dst: Cidr;
  gw?: Addr;
  oif: number;
}

export function listRoutes(nl: Netlink, family: 4 | 6): KernelRoute[] {
  const out: KernelRoute[] = [];
  const req = Buffer.alloc(12);
  req.writeUInt8(af(family), 0);
  for (const m of nl.dump(RTM_GETROUTE, req)) {
    if (m.type !== RTM_NEWROUTE || m.body.readUInt8(4) !== RT_TABLE_MAIN) continue;
    const attrs = decodeAttrs(m.body.subarray(12));
    const dst = attrs.get(RTA_DST);
    const gw = attrs.get(RTA_GATEWAY);
    const len = m.body.readUInt8(1);
    const zero = { family, value: 0n } as const;
    out.push({
      dst: { addr: dst ? addrFromBytes(dst) : zero, prefix: len },
      ...(gw ? { gw: addrFromBytes(gw) } : {}),
      oif: attrs.get(RTA_OIF)?.readInt32LE(0) ?? 0,
    });
  }
  return out;
}

