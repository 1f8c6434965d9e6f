// Kernel objects of the cross-node backends: the VXLAN device, static neighbours and FDB
// entries, routes tagged with twill's own route protocol, and the TX-checksum switch.
import { addrBytes, addrFromBytes, type Addr, type Cidr } from '../ipam/ip.js';
import { koffi } from './native.js';
import { check, EEXIST, ENOENT, ESRCH, libc } from './libc.js';
import type { Netlink } from './netlink.js';
import { NetlinkError } from './netlink.js';
import { decodeAttrs, encodeAttrs, i32, NLM_F_CREATE, NLM_F_REPLACE, str, u32, u8, type Attr } from './nlmsg.js';
import { macBytes, macString } from './rtnl.js';

const RTM_NEWLINK = 16, RTM_NEWROUTE = 24, RTM_DELROUTE = 25, RTM_GETROUTE = 26, RTM_NEWNEIGH = 28, RTM_DELNEIGH = 29, RTM_GETNEIGH = 30;
const IFLA_ADDRESS = 1, IFLA_IFNAME = 3, IFLA_MTU = 4, IFLA_LINKINFO = 18, IFLA_INFO_KIND = 1, IFLA_INFO_DATA = 2;
const IFLA_VXLAN_ID = 1, IFLA_VXLAN_LINK = 3, IFLA_VXLAN_LOCAL = 4, IFLA_VXLAN_LEARNING = 7, IFLA_VXLAN_PORT = 15, IFLA_VXLAN_LOCAL6 = 17;
const NDA_DST = 1, NDA_LLADDR = 2;
const NUD_PERMANENT = 0x80, NTF_SELF = 0x02;
const RTA_DST = 1, RTA_OIF = 4, RTA_GATEWAY = 5, RTA_PRIORITY = 6, RTA_TABLE = 15;
const RTNH_F_ONLINK = 4, RTN_UNICAST = 1, RT_TABLE_MAIN = 254, RT_SCOPE_UNIVERSE = 0;
const AF_INET = 2, AF_INET6 = 10, AF_BRIDGE = 7;
/** rtm_protocol of every route a backend installs: how twill finds its own routes again. */
export const RTPROT_TWILL = 119;

const af = (f: 4 | 6): number => (f === 4 ? AF_INET : AF_INET6);

export interface VxlanSpec {
  name: string;
  vni: number;
  port: number;
  local: Addr;
  underlayIndex: number;
  mac: string;
  mtu: number;
}

export function createVxlan(nl: Netlink, v: VxlanSpec): void {
  const port = Buffer.alloc(2);
  port.writeUInt16BE(v.port);
  const data: Attr[] = [
    [IFLA_VXLAN_ID, u32(v.vni)],
    [v.local.family === 4 ? IFLA_VXLAN_LOCAL : IFLA_VXLAN_LOCAL6, addrBytes(v.local)],
    [IFLA_VXLAN_LINK, u32(v.underlayIndex)],
    [IFLA_VXLAN_PORT, port],
    [IFLA_VXLAN_LEARNING, u8(0)],
  ];
  const hdr = Buffer.alloc(16);
  const attrs = encodeAttrs([[IFLA_IFNAME, str(v.name)], [IFLA_ADDRESS, macBytes(v.mac)], [IFLA_MTU, u32(v.mtu)], [IFLA_LINKINFO, [[IFLA_INFO_KIND, str('vxlan')], [IFLA_INFO_DATA, data]]]]);
  try {
    nl.request(`create vxlan ${v.name}`, RTM_NEWLINK, NLM_F_CREATE, Buffer.concat([hdr, attrs]));
  } catch (e) {
    if (!(e instanceof NetlinkError) || e.errno !== EEXIST) throw e;
  }
}

function ndmsg(family: number, ifindex: number, state: number, flags: number): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt8(family, 0);
  b.writeInt32LE(ifindex, 4);
  b.writeUInt16LE(state, 8);
  b.writeUInt8(flags, 10);
  return b;
}

export interface Neigh {
  family: 4 | 6 | 'bridge';
  ifindex: number;
  dst: Addr;
  mac: string;
}

const neighFamily = (n: Neigh): number => (n.family === 'bridge' ? AF_BRIDGE : af(n.family));
const neighFlags = (n: Neigh): number => (n.family === 'bridge' ? NTF_SELF : 0);

export function setNeigh(nl: Netlink, n: Neigh): void {
  const body = Buffer.concat([ndmsg(neighFamily(n), n.ifindex, NUD_PERMANENT, neighFlags(n)), encodeAttrs([[NDA_DST, addrBytes(n.dst)], [NDA_LLADDR, macBytes(n.mac)]])]);
  nl.request('set neighbour', RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE, body);
}

export function delNeigh(nl: Netlink, n: Neigh): void {
  // An FDB entry is identified by its MAC; a neighbour by its address.
  const attrs: Attr[] = n.family === 'bridge' ? [[NDA_LLADDR, macBytes(n.mac)], [NDA_DST, addrBytes(n.dst)]] : [[NDA_DST, addrBytes(n.dst)]];
  try {
    nl.request('delete neighbour', RTM_DELNEIGH, 0, Buffer.concat([ndmsg(neighFamily(n), n.ifindex, 0, neighFlags(n)), encodeAttrs(attrs)]));
  } catch (e) {
    if (!(e instanceof NetlinkError) || (e.errno !== ENOENT && e.errno !== ESRCH)) throw e;
  }
}

/** Permanent neighbours (4/6) or FDB entries ('bridge') on ifindex. */
export function listNeighs(nl: Netlink, family: 4 | 6 | 'bridge', ifindex: number): Neigh[] {
  const out: Neigh[] = [];
  const fam = family === 'bridge' ? AF_BRIDGE : af(family);
  for (const m of nl.dump(RTM_GETNEIGH, ndmsg(fam, 0, 0, 0))) {
    if (m.type !== RTM_NEWNEIGH || m.body.readInt32LE(4) !== ifindex) continue;
    if ((m.body.readUInt16LE(8) & NUD_PERMANENT) === 0) continue;
    const attrs = decodeAttrs(m.body.subarray(12));
    const dst = attrs.get(NDA_DST);
    const mac = attrs.get(NDA_LLADDR);
    if (!dst || !mac) continue;
    out.push({ family, ifindex, dst: addrFromBytes(dst), mac: macString(mac) });
  }
  return out;
}

export interface TwillRoute {
  dst: Cidr;
  gw: Addr;
  oif: number;
  onlink: boolean;
  /** Route metric naming the network the route belongs to (realms do not exist for IPv6). */
  metric: number;
}

function rtmsg(r: TwillRoute, del = false): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt8(af(r.dst.addr.family), 0);
  b.writeUInt8(r.dst.prefix, 1);
  b.writeUInt8(RT_TABLE_MAIN, 4);
  b.writeUInt8(RTPROT_TWILL, 5);
  b.writeUInt8(RT_SCOPE_UNIVERSE, 6);
  b.writeUInt8(del ? 0 : RTN_UNICAST, 7);
  b.writeUInt32LE(r.onlink ? RTNH_F_ONLINK : 0, 8);
  return Buffer.concat([b, encodeAttrs([[RTA_DST, addrBytes(r.dst.addr)], [RTA_GATEWAY, addrBytes(r.gw)], [RTA_OIF, i32(r.oif)], [RTA_PRIORITY, u32(r.metric)], [RTA_TABLE, u32(RT_TABLE_MAIN)]])]);
}

export const addTwillRoute = (nl: Netlink, r: TwillRoute): void => nl.request('add peer route', RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, rtmsg(r));

export function delTwillRoute(nl: Netlink, r: TwillRoute): void {
  try {
    nl.request('delete peer route', RTM_DELROUTE, 0, rtmsg(r, true));
  } catch (e) {
    if (!(e instanceof NetlinkError) || (e.errno !== ESRCH && e.errno !== ENOENT)) throw e;
  }
}

/** Routes of the main table carrying twill's protocol tag. */
export function listTwillRoutes(nl: Netlink, family: 4 | 6): TwillRoute[] {
  const out: TwillRoute[] = [];
  const req = Buffer.alloc(12);
  req.writeUInt8(af(family), 0);
  for (const m of nl.dump(RTM_GETROUTE, req)) {
    if (m.type !== RTM_NEWROUTE || m.body.readUInt8(5) !== RTPROT_TWILL || m.body.readUInt8(4) !== RT_TABLE_MAIN) continue;
    const attrs = decodeAttrs(m.body.subarray(12));
    const dst = attrs.get(RTA_DST);
    const gw = attrs.get(RTA_GATEWAY);
    if (!dst || !gw) continue;
    out.push({
      dst: { addr: addrFromBytes(dst), prefix: m.body.readUInt8(1) }, gw: addrFromBytes(gw), oif: attrs.get(RTA_OIF)?.readInt32LE(0) ?? 0,
      onlink: (m.body.readUInt32LE(8) & RTNH_F_ONLINK) !== 0, metric: attrs.get(RTA_PRIORITY)?.readUInt32LE(0) ?? 0,
    });
  }
  return out;
}

/** The kernel's answer to "how would a packet to a leave": its device and gateway, if any. */
export function routeGet(nl: Netlink, a: Addr): { oif: number; gw?: Addr } | undefined {
  const b = Buffer.alloc(12);
  b.writeUInt8(af(a.family), 0);
  b.writeUInt8(a.family === 4 ? 32 : 128, 1);
  const m = nl.get(RTM_GETROUTE, Buffer.concat([b, encodeAttrs([[RTA_DST, addrBytes(a)]])]), [101, 113, 22]);
  if (!m) return undefined;
  const attrs = decodeAttrs(m.body.subarray(12));
  const gw = attrs.get(RTA_GATEWAY);
  return { oif: attrs.get(RTA_OIF)?.readInt32LE(0) ?? 0, ...(gw ? { gw: addrFromBytes(gw) } : {}) };
}

const SIOCETHTOOL = 0x8946;
const ETHTOOL_STXCSUM = 0x17;

/** Sets TX checksum offload (ethtool -K dev tx on|off). */
export function setTxChecksum(dev: string, on: boolean): void {
  const c = libc();
  const fd = check('socket(AF_INET)', c.socket(AF_INET, 2 /* SOCK_DGRAM */ | 0x80000, 0));
  try {
    const value = Buffer.alloc(8);
    value.writeUInt32LE(ETHTOOL_STXCSUM, 0);
    value.writeUInt32LE(on ? 1 : 0, 4);
    const ifr = Buffer.alloc(40);
    ifr.write(dev, 0, 15, 'latin1');
    ifr.writeBigUInt64LE(koffi().address(value), 16);
    check(`ethtool tx ${on ? 'on' : 'off'} ${dev}`, c.ioctl(fd, SIOCETHTOOL, ifr));
  } finally {
    c.close(fd);
  }
}

