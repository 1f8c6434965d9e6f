// The rtnetlink vocabulary (include/uapi/linux/rtnetlink.h, if_link.h, if_addr.h,
// neighbour.h, pkt_sched.h): message types, attribute numbers, and the fixed headers every
// request starts with. One copy, used by rtnl.ts, overlay.ts and tc.ts.

export const RTM = {
  NEWLINK: 16, DELLINK: 17, GETLINK: 18,
  NEWADDR: 20, DELADDR: 21, GETADDR: 22,
  NEWROUTE: 24, DELROUTE: 25, GETROUTE: 26,
  NEWNEIGH: 28, DELNEIGH: 29, GETNEIGH: 30,
  NEWQDISC: 36, GETQDISC: 38,
  NEWTFILTER: 44, GETTFILTER: 46,
} as const;

export const IFLA = { ADDRESS: 1, IFNAME: 3, MTU: 4, LINK: 5, LINKINFO: 18, IFALIAS: 20, NET_NS_FD: 28 } as const;
export const IFLA_INFO = { KIND: 1, DATA: 2 } as const;
export const VETH_INFO_PEER = 1;
export const IFLA_VXLAN = { ID: 1, LINK: 3, LOCAL: 4, LEARNING: 7, PORT: 15, LOCAL6: 17 } as const;
export const IFA = { ADDRESS: 1, LOCAL: 2, FLAGS: 8 } as const;
export const IFA_F_NODAD = 0x02, IFA_F_NOPREFIXROUTE = 0x200;
export const RTA = { DST: 1, OIF: 4, GATEWAY: 5, PRIORITY: 6, TABLE: 15 } as const;
export const NDA = { DST: 1, LLADDR: 2 } as const;
export const NUD_PERMANENT = 0x80, NTF_SELF = 0x02;
export const RT_SCOPE_UNIVERSE = 0, RT_SCOPE_LINK = 253;
export const RTPROT_STATIC = 4, RTN_UNICAST = 1, RT_TABLE_MAIN = 254, RTNH_F_ONLINK = 4;
export const IFF_UP = 1;
export const AF_UNSPEC = 0, AF_INET = 2, AF_BRIDGE = 7, AF_INET6 = 10;
export const TCA = { KIND: 1, OPTIONS: 2 } as const;

export const af = (f: 4 | 6): number => (f === 4 ? AF_INET : AF_INET6);

export function ifinfomsg(index = 0, flags = 0, change = 0, family = AF_UNSPEC): Buffer {
  const b = Buffer.alloc(16);
  b.writeUInt8(family, 0);
  b.writeInt32LE(index, 4);
  b.writeUInt32LE(flags, 8);
  b.writeUInt32LE(change, 12);
  return b;
}

/** struct rtmsg for a main-table unicast route (type 0 for a delete: any type matches). */
export function rtmsg(family: 4 | 6, prefix: number, protocol: number, scope: number, opts: { type?: number; flags?: number } = {}): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt8(af(family), 0);
  b.writeUInt8(prefix, 1);
  b.writeUInt8(RT_TABLE_MAIN, 4);
  b.writeUInt8(protocol, 5);
  b.writeUInt8(scope, 6);
  b.writeUInt8(opts.type ?? RTN_UNICAST, 7);
  b.writeUInt32LE(opts.flags ?? 0, 8);
  return b;
}

export function ndmsg(family: number, ifindex: number, state: number, flags: number): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt8(family, 0);
  b.writeInt32LE(ifindex, 4);
  b.writeUInt16LE(state, 8);
  b.writeUInt8(flags, 10);
  return b;
}

export function tcmsg(ifindex: number, handle: number, parent: number, info: number): Buffer {
  const b = Buffer.alloc(20);
  b.writeInt32LE(ifindex, 4);
  b.writeUInt32LE(handle >>> 0, 8);
  b.writeUInt32LE(parent >>> 0, 12);
  b.writeUInt32LE(info >>> 0, 16);
  return b;
}
