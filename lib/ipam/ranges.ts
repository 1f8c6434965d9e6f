// host-local's range semantics (backend/allocator/range.go, config.go): canonical ranges,
// range sets, requested addresses — parsed once, errors naming the field.
import { Code, CniError } from '../cni/errors.js';
import type { NetConf, RawRange } from '../config/types.js';
import { contains, formatAddr, lastAddr, network, offset, overlaps, parseAddr, parseCidr, type Addr, type Cidr } from '../net/ip.js';

export interface Range {
  subnet: Cidr;
  start: Addr;
  end: Addr;
  gateway: Addr;
}

export type RangeSet = Range[];

const bad = (field: string, why: string): CniError => new CniError(Code.InvalidConfig, `invalid network config: ${field} ${why}`);

function addrField(s: string | undefined, field: string): Addr | undefined {
  if (s === undefined) return undefined;
  const a = parseAddr(s);
  if (!a) throw bad(field, `"${s}" is not an IP address`);
  return a;
}

export function canonicalRange(r: RawRange, field: string): Range {
  const c = parseCidr(r.subnet);
  if (!c) throw bad(`${field}.subnet`, `"${r.subnet}" is not a CIDR`);
  const net = network(c);
  if (net.addr.value !== c.addr.value) throw bad(`${field}.subnet`, `"${r.subnet}" has host bits set`);
  const hostBits = (c.addr.family === 4 ? 32 : 128) - c.prefix;
  if (hostBits < 2) throw bad(`${field}.subnet`, `"${r.subnet}" is too small to allocate from`);
  const last = lastAddr(net);
  const inside = (a: Addr | undefined, f: string): Addr | undefined => {
    if (a && !contains(net, a)) throw bad(`${field}.${f}`, `${formatAddr(a)} is not in ${r.subnet}`);
    return a;
  };
  const gateway = inside(addrField(r.gateway, `${field}.gateway`), 'gateway') ?? offset(net.addr, 1n);
  const start = inside(addrField(r.rangeStart, `${field}.rangeStart`), 'rangeStart') ?? offset(net.addr, 1n);
  const end = inside(addrField(r.rangeEnd, `${field}.rangeEnd`), 'rangeEnd') ?? (c.addr.family === 4 ? offset(last, -1n) : last);
  if (start.value > end.value) throw bad(field, 'rangeStart is after rangeEnd');
  return { subnet: net, start, end, gateway };
}

export function rangeSets(conf: NetConf): RangeSet[] {
  const ipam = conf.ipam;
  if (!ipam) throw bad('ipam', 'is required');
  const raw: { set: RawRange[]; field: string }[] = [];
  (conf.runtimeConfig?.ipRanges ?? []).forEach((set, i) => raw.push({ set, field: `runtimeConfig.ipRanges.${i}` }));
  if (ipam.subnet) {
    const legacy: RawRange = { subnet: ipam.subnet };
    if (ipam.rangeStart) legacy.rangeStart = ipam.rangeStart;
    if (ipam.rangeEnd) legacy.rangeEnd = ipam.rangeEnd;
    if (ipam.gateway) legacy.gateway = ipam.gateway;
    raw.push({ set: [legacy], field: 'ipam' });
  }
  (ipam.ranges ?? []).forEach((set, i) => raw.push({ set, field: `ipam.ranges.${i}` }));
  if (raw.length === 0) throw bad('ipam.ranges', 'is required (no range set given)');
  const sets = raw.map(({ set, field }) => {
    const rs = set.map((r, j) => canonicalRange(r, `${field}.${j}`));
    if (rs.some((r) => r.subnet.addr.family !== rs[0]!.subnet.addr.family)) throw bad(field, 'mixes IPv4 and IPv6 ranges');
    for (let a = 0; a < rs.length; a++) {
      for (let b = a + 1; b < rs.length; b++) {
        if (overlaps(rs[a]!.subnet, rs[b]!.subnet)) throw bad(field, `ranges ${a} and ${b} overlap`);
      }
    }
    return rs;
  });
  for (let a = 0; a < sets.length; a++) {
    for (let b = a + 1; b < sets.length; b++) {
      if (sets[a]!.some((x) => sets[b]!.some((y) => overlaps(x.subnet, y.subnet)))) throw bad('ipam.ranges', `range sets ${a} and ${b} overlap`);
    }
  }
  return sets;
}

/** Specific addresses asked for: runtimeConfig.ips, args.cni.ips, or (only without those) CNI_ARGS IP=. */
export function requestedAddrs(conf: NetConf, cniArgsIp: string | undefined): Addr[] {
  const fromArgs = [...(conf.runtimeConfig?.ips ?? []), ...(conf.args?.cni?.ips ?? [])];
  const list = fromArgs.length > 0 ? fromArgs : (cniArgsIp ?? '').split(',').filter((s) => s !== '');
  return list.map((s) => {
    const a = parseAddr(s.includes('/') ? s.slice(0, s.indexOf('/')) : s);
    if (!a) throw new CniError(Code.InvalidConfig, `requested IP "${s.slice(0, 64)}" is not an IP address`);
    return a;
  });
}

export function rangeSize(r: Range): bigint {
  const gwInside = r.gateway.value >= r.start.value && r.gateway.value <= r.end.value;
  return r.end.value - r.start.value + 1n - (gwInside ? 1n : 0n);
}
