// Kernel objects of the cross-node backends: the VXLAN device, static neighbours and FDB
// entries, routes tagged with twill's own route protocol, and the TX-checksum switch.
import { addrBytes, addrFromBytes, type Addr, type Cidr } from '../net/ip.js';
import { native } from './native.js';
import { check, EEXIST, EHOSTUNREACH, EINVAL, ENETUNREACH, ENOENT, ESRCH, libc } from './libc.js';
import type { Netlink } from './netlink.js';
import { NetlinkError } from './netlink.js';
import { decodeAttrs, encodeAttrs, i32, NLM_F_CREATE, NLM_F_REPLACE, str, u32, u8, type Attr } from './nlmsg.js';
import { macBytes, macString } from '../net/mac.js';
import {
  af, AF_BRIDGE, AF_INET, IFLA, ndmsg, IFLA_INFO, IFLA_VXLAN, ifinfomsg, NDA, NTF_SELF, NUD_PERMANENT, RT_SCOPE_UNIVERSE, RT_TABLE_MAIN, RTA, RTM, rtmsg, RTN_UNICAST, RTNH_F_ONLINK,
} from './rtnl-wire.js';

/** rtm_protocol of every route a backend installs: how twill finds its own routes again. */
export const RTPROT_TWILL = 119;

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
    [IFLA_VXLAN.ID, u32(v.vni)],
    [v.local.family === 4 ? IFLA_VXLAN.LOCAL : IFLA_VXLAN.LOCAL6, addrBytes(v.local)],
    [IFLA_VXLAN.LINK, u32(v.underlayIndex)],
    [IFLA_VXLAN.PORT, port],
    [IFLA_VXLAN.LEARNING, u8(0)],
  ];
  const hdr = ifinfomsg();
  const attrs = encodeAttrs([[IFLA.IFNAME, str(v.name)], [IFLA.ADDRESS, macBytes(v.mac)], [IFLA.MTU, u32(v.mtu)], [IFLA.LINKINFO, [[IFLA_INFO.KIND, str('vxlan')], [IFLA_INFO.DATA, data]]]]);
  try {
    nl.request(`create vxlan ${v.name}`, RTM.NEWLINK, NLM_F_CREATE, Buffer.concat([hdr, attrs]));
  } catch (e) {
    if (!(e instanceof NetlinkError) || e.errno !== EEXIST) throw e;
  }
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
  const body = Buffer.concat([ndmsg(neighFamily(n), n.ifindex, NUD_PERMANENT, neighFlags(n)), encodeAttrs([[NDA.DST, addrBytes(n.dst)], [NDA.LLADDR, macBytes(n.mac)]])]);
  nl.request('set neighbour', RTM.NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE, body);
}

export function delNeigh(nl: Netlink, n: Neigh): void {
  // An FDB entry is identified by its MAC; a neighbour by its address.
  const attrs: Attr[] = n.family === 'bridge' ? [[NDA.LLADDR, macBytes(n.mac)], [NDA.DST, addrBytes(n.dst)]] : [[NDA.DST, addrBytes(n.dst)]];
  try {
    nl.request('delete neighbour', RTM.DELNEIGH, 0, Buffer.concat([ndmsg(neighFamily(n), n.ifindex, 0, neighFlags(n)), encodeAttrs(attrs)]));
  } catch (e) {
    if (!(e instanceof NetlinkError) || (e.errno !== ENOENT && e.errno !== ESRCH)) throw e;
  }
}

/** Permanent neighbours (4/6) or FDB entries ('bridge') on ifindex. */
export function listNeighs(nl: Netlink, family: 4 | 6 | 'bridge', ifindex: number): Neigh[] {
  const out: Neigh[] = [];
  const fam = family === 'bridge' ? AF_BRIDGE : af(family);
  for (const m of nl.dump(RTM.GETNEIGH, ndmsg(fam, 0, 0, 0))) {
    if (m.type !== RTM.NEWNEIGH || m.body.readInt32LE(4) !== ifindex) continue;
    if ((m.body.readUInt16LE(8) & NUD_PERMANENT) === 0) continue;
    const attrs = decodeAttrs(m.body.subarray(12));
    const dst = attrs.get(NDA.DST);
    const mac = attrs.get(NDA.LLADDR);
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

function routeMsg(r: TwillRoute, del = false): Buffer {
  const head = rtmsg(r.dst.addr.family, r.dst.prefix, RTPROT_TWILL, RT_SCOPE_UNIVERSE, { type: del ? 0 : RTN_UNICAST, flags: r.onlink ? RTNH_F_ONLINK : 0 });
  return Buffer.concat([head, encodeAttrs([[RTA.DST, addrBytes(r.dst.addr)], [RTA.GATEWAY, addrBytes(r.gw)], [RTA.OIF, i32(r.oif)], [RTA.PRIORITY, u32(r.metric)], [RTA.TABLE, u32(RT_TABLE_MAIN)]])]);
}

export const addTwillRoute = (nl: Netlink, r: TwillRoute): void => nl.request('add peer route', RTM.NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, routeMsg(r));

export function delTwillRoute(nl: Netlink, r: TwillRoute): void {
  try {
    nl.request('delete peer route', RTM.DELROUTE, 0, routeMsg(r, true));
  } catch (e) {
    if (!(e instanceof NetlinkError) || (e.errno !== ESRCH && e.errno !== ENOENT)) throw e;
  }
}

/** Routes of the main table carrying twill's protocol tag. */
export function listTwillRoutes(nl: Netlink, family: 4 | 6): TwillRoute[] {
  const out: TwillRoute[] = [];
  const req = Buffer.alloc(12);
  req.writeUInt8(af(family), 0);
  for (const m of nl.dump(RTM.GETROUTE, req)) {
    if (m.type !== RTM.NEWROUTE || m.body.readUInt8(5) !== RTPROT_TWILL || m.body.readUInt8(4) !== RT_TABLE_MAIN) continue;
    const attrs = decodeAttrs(m.body.subarray(12));
    const dst = attrs.get(RTA.DST);
    const gw = attrs.get(RTA.GATEWAY);
    if (!dst || !gw) continue;
    out.push({
      dst: { addr: addrFromBytes(dst), prefix: m.body.readUInt8(1) }, gw: addrFromBytes(gw), oif: attrs.get(RTA.OIF)?.readInt32LE(0) ?? 0,
      onlink: (m.body.readUInt32LE(8) & RTNH_F_ONLINK) !== 0, metric: attrs.get(RTA.PRIORITY)?.readUInt32LE(0) ?? 0,
    });
  }
  return out;
}

/** The kernel's answer to "how would a packet to a leave": its device and gateway, if any. */
export function routeGet(nl: Netlink, a: Addr): { oif: number; gw?: Addr } | undefined {
  const b = Buffer.alloc(12);
  b.writeUInt8(af(a.family), 0);
  b.writeUInt8(a.family === 4 ? 32 : 128, 1);
  const m = nl.get(RTM.GETROUTE, Buffer.concat([b, encodeAttrs([[RTA.DST, addrBytes(a)]])]), [ENETUNREACH, EHOSTUNREACH, EINVAL]);
  if (!m) return undefined;
  const attrs = decodeAttrs(m.body.subarray(12));
  const gw = attrs.get(RTA.GATEWAY);
  return { oif: attrs.get(RTA.OIF)?.readInt32LE(0) ?? 0, ...(gw ? { gw: addrFromBytes(gw) } : {}) };
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
    ifr.writeBigUInt64LE(native().address(value), 16);
    check(`ethtool tx ${on ? 'on' : 'off'} ${dev}`, c.ioctl(fd, SIOCETHTOOL, ifr));
  } finally {
    c.close(fd);
  }
}

