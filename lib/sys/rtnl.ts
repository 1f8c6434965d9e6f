// rtnetlink verbs twill needs: links, addresses, routes. Pure encoders over a Netlink socket.
import { addrBytes, addrFromBytes, formatAddr, formatCidr, type Addr, type Cidr } from '../net/ip.js';
import { macBytes, macString } from '../net/mac.js';
import { ENODEV, ENOENT, SysError } from './libc.js';
import type { Netlink } from './netlink.js';
import {
  af, AF_UNSPEC, IFA, IFA_F_NODAD, IFA_F_NOPREFIXROUTE, IFF_UP, IFLA, IFLA_INFO, ifinfomsg, RT_SCOPE_LINK, RT_SCOPE_UNIVERSE, RT_TABLE_MAIN, RTA, RTM, rtmsg, RTPROT_STATIC, VETH_INFO_PEER,
} from './rtnl-wire.js';

export { IFA_F_NODAD, IFA_F_NOPREFIXROUTE, RT_SCOPE_LINK, RT_SCOPE_UNIVERSE };
import { cstr, decodeAttrs, encodeAttrs, i32, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, str, u32, type Attr, type RawMessage } from './nlmsg.js';



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

function parseLink(m: RawMessage): Link {
  const attrs = decodeAttrs(m.body.subarray(16));
  const info = attrs.get(IFLA.LINKINFO);
  const link = attrs.get(IFLA.LINK);
  return {
    index: m.body.readInt32LE(4),
    name: cstr(attrs.get(IFLA.IFNAME)),
    mtu: attrs.get(IFLA.MTU)?.readUInt32LE(0) ?? 0,
    mac: macString(attrs.get(IFLA.ADDRESS)),
    up: (m.body.readUInt32LE(8) & IFF_UP) !== 0,
    alias: cstr(attrs.get(IFLA.IFALIAS)),
    kind: info ? cstr(decodeAttrs(info).get(IFLA_INFO.KIND)) : '',
    peerIndex: link ? link.readInt32LE(0) : 0,
  };
}

export function getLink(nl: Netlink, name: string): Link | undefined {
  const m = nl.get(RTM.GETLINK, Buffer.concat([ifinfomsg(), encodeAttrs([[IFLA.IFNAME, str(name)]])]), [ENODEV, ENOENT]);
  return m ? parseLink(m) : undefined;
}

export function getLinkByIndex(nl: Netlink, index: number): Link | undefined {
  const m = nl.get(RTM.GETLINK, ifinfomsg(index), [ENODEV, ENOENT]);
  return m ? parseLink(m) : undefined;
}

export function listLinks(nl: Netlink): Link[] {
  return nl.dump(RTM.GETLINK, ifinfomsg()).filter((m) => m.type === RTM.NEWLINK).map(parseLink);
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
    encodeAttrs([[IFLA.IFNAME, str(s.peerName)], [IFLA.ADDRESS, macBytes(s.peerMac)], [IFLA.MTU, u32(s.mtu)], [IFLA.NET_NS_FD, u32(s.peerNetnsFd)]]),
  ]);
  const attrs: Attr[] = [
    [IFLA.IFNAME, str(s.name)],
    [IFLA.ADDRESS, macBytes(s.mac)],
    [IFLA.MTU, u32(s.mtu)],
    [IFLA.LINKINFO, [[IFLA_INFO.KIND, str('veth')], [IFLA_INFO.DATA, [[VETH_INFO_PEER, peer]]]]],
  ];
  nl.request(`create veth ${s.name}`, RTM.NEWLINK, NLM_F_CREATE | NLM_F_EXCL, Buffer.concat([ifinfomsg(), encodeAttrs(attrs)]));
}

export function setLinkUp(nl: Netlink, index: number): void {
  nl.request(`set link ${index} up`, RTM.NEWLINK, 0, ifinfomsg(index, IFF_UP, IFF_UP));
}

export function setLinkAlias(nl: Netlink, index: number, alias: string): void {
  nl.request(`set alias of link ${index}`, RTM.NEWLINK, 0, Buffer.concat([ifinfomsg(index), encodeAttrs([[IFLA.IFALIAS, str(alias)]])]));
}

/** Renames a link (it must be down). */
export function setLinkName(nl: Netlink, index: number, name: string): void {
  nl.request(`rename link ${index} to ${name}`, RTM.NEWLINK, 0, Buffer.concat([ifinfomsg(index), encodeAttrs([[IFLA.IFNAME, str(name)]])]));
}

export function setLinkDown(nl: Netlink, index: number): void {
  nl.request(`set link ${index} down`, RTM.NEWLINK, 0, ifinfomsg(index, 0, IFF_UP));
}

/** Deletes a link by name; false when it was already gone. */
export function deleteLink(nl: Netlink, name: string): boolean {
  try {
    nl.request(`delete link ${name}`, RTM.DELLINK, 0, Buffer.concat([ifinfomsg(), encodeAttrs([[IFLA.IFNAME, str(name)]])]));
    return true;
  } catch (e) {
    if (e instanceof SysError && e.errno === ENODEV) return false;
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
  const attrs: Attr[] = [[IFA.LOCAL, bytes], [IFA.ADDRESS, bytes], [IFA.FLAGS, u32(a.flags)]];
  nl.request(`add address to link ${a.index}`, RTM.NEWADDR, NLM_F_CREATE | NLM_F_REPLACE, Buffer.concat([hdr, encodeAttrs(attrs)]));
}

export interface LinkAddr {
  index: number;
  cidr: Cidr;
}

export function listAddresses(nl: Netlink, index?: number): LinkAddr[] {
  const out: LinkAddr[] = [];
  for (const m of nl.dump(RTM.GETADDR, Buffer.alloc(8))) {
    if (m.type !== RTM.NEWADDR) continue;
    const idx = m.body.readUInt32LE(4);
    if (index !== undefined && idx !== index) continue;
    const attrs = decodeAttrs(m.body.subarray(8));
    const a = attrs.get(IFA.LOCAL) ?? attrs.get(IFA.ADDRESS);
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

function routeMsg(r: RouteSpec): Buffer {
  const attrs: Attr[] = [[RTA.DST, addrBytes(r.dst.addr)], [RTA.OIF, i32(r.oif)], [RTA.TABLE, u32(RT_TABLE_MAIN)]];
  if (r.gw) attrs.push([RTA.GATEWAY, addrBytes(r.gw)]);
  return Buffer.concat([rtmsg(r.dst.addr.family, r.dst.prefix, RTPROT_STATIC, r.scope ?? (r.gw ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK)), encodeAttrs(attrs)]);
}

export function addRoute(nl: Netlink, r: RouteSpec): void {
  nl.request(`add route ${formatCidr(r.dst)}${r.gw ? ` via ${formatAddr(r.gw)}` : ''}`, RTM.NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, routeMsg(r));
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
  for (const m of nl.dump(RTM.GETROUTE, req)) {
    if (m.type !== RTM.NEWROUTE || m.body.readUInt8(4) !== RT_TABLE_MAIN) continue;
    const attrs = decodeAttrs(m.body.subarray(12));
    const dst = attrs.get(RTA.DST);
    const gw = attrs.get(RTA.GATEWAY);
    const len = m.body.readUInt8(1);
    const zero = { family, value: 0n } as const;
    out.push({
      dst: { addr: dst ? addrFromBytes(dst) : zero, prefix: len },
      ...(gw ? { gw: addrFromBytes(gw) } : {}),
      oif: attrs.get(RTA.OIF)?.readInt32LE(0) ?? 0,
    });
  }
  return out;
}

