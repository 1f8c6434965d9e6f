// The built-in host-local IPAM: same configuration, store and locking as the reference
// plugin, served in-process (no extra exec per ADD).
import { readFileSync } from 'node:fs';
import { Code, CniError } from '../cni/errors.js';
import type { Dns, Route } from '../cni/result.js';
import type { Attachment, NetConf } from '../config/types.js';
import { allocate } from './allocator.js';
import { OwnerIndex } from './index-file.js';
import { formatAddr, formatCidr, parseAddr, type Addr, type Cidr } from './ip.js';
import { rangeSets, rangeSize, requestedAddrs } from './ranges.js';
import { Store } from './store.js';

export interface IpamIp {
  cidr: Cidr;
  gateway: Addr;
}

export interface IpamOutcome {
  ips: IpamIp[];
  routes: Route[];
  dns?: Dns;
}

const storeOf = (conf: NetConf): Store => new Store(conf.ipam!.dataDir, conf.name);
const indexOf = (conf: NetConf): OwnerIndex => new OwnerIndex(conf.stateDir, conf.name);

function parseResolvConf(path: string): Dns {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new CniError(Code.InvalidConfig, `ipam.resolvConf: cannot read ${path}: ${(e as Error).message}`);
  }
  const dns: Required<Dns> = { nameservers: [], domain: '', search: [], options: [] };
  for (const line of text.split('\n')) {
    const [key, ...vals] = line.trim().split(/\s+/);
    if (key === 'nameserver' && vals[0]) dns.nameservers.push(vals[0]);
    else if (key === 'domain' && vals[0]) dns.domain = vals[0];
    else if (key === 'search') dns.search.push(...vals);
    else if (key === 'options') dns.options.push(...vals);
  }
  return dns;
}

export function hostLocalAdd(conf: NetConf, id: string, ifname: string, cniArgsIp: string | undefined): IpamOutcome {
  const sets = rangeSets(conf);
  const requested = requestedAddrs(conf, cniArgsIp);
  const dns = conf.ipam?.resolvConf ? parseResolvConf(conf.ipam.resolvConf) : undefined;
  const store = storeOf(conf);
  const index = indexOf(conf);
  const unlock = store.lock();
  try {
    const held = (index.get(id, ifname) ?? []).filter((ip) => store.ownedBy(ip, id, ifname));
    if (held.length > 0) {
      throw new CniError(Code.InvalidConfig, `duplicate allocation is not allowed: ${id}/${ifname} already holds ${held.join(', ')}`, 'run DEL for this container first');
    }
    const got = allocate(store, sets, id, ifname, requested);
    index.set(id, ifname, got.map((a) => formatAddr(a.addr)));
    const routes: Route[] = (conf.ipam?.routes ?? []).map((r) => (r.gw ? { dst: r.dst, gw: r.gw } : { dst: r.dst }));
    return {
      ips: got.map((a) => ({ cidr: { addr: a.addr, prefix: a.range.subnet.prefix }, gateway: a.range.gateway })),
      routes,
      ...(dns ? { dns } : {}),
    };
  } finally {
    unlock();
  }
}

/** Releases every address of (id, ifname); returns what it released. Never fails on "already gone". */
export function hostLocalDel(conf: NetConf, id: string, ifname: string): string[] {
  const store = storeOf(conf);
  const index = indexOf(conf);
  const unlock = store.lock();
  try {
    const indexed = (index.get(id, ifname) ?? []).filter((ip) => store.ownedBy(ip, id, ifname));
    // A miss means the reservation predates the index, was made by host-local, or the
    // process died between reserving and indexing: scan.
    const ips = indexed.length > 0 ? indexed : store.findByOwner(id, ifname);
    for (const ip of ips) store.release(ip);
    index.remove(id, ifname);
    return ips;
  } finally {
    unlock();
  }
}

export function hostLocalHeld(conf: NetConf, id: string, ifname: string): string[] {
  const store = storeOf(conf);
  const indexed = (indexOf(conf).get(id, ifname) ?? []).filter((ip) => store.ownedBy(ip, id, ifname));
  return indexed.length > 0 ? indexed : store.findByOwner(id, ifname);
}

/** Releases every reservation whose owner is not in valid; returns the released ones. */
export function hostLocalGc(conf: NetConf, valid: readonly Attachment[]): { ip: string; id: string; ifname: string }[] {
  const keep = new Set(valid.map((a) => `${a.containerID}\n${a.ifname}`));
  const keepIds = new Set(valid.map((a) => a.containerID));
  const store = storeOf(conf);
  const index = indexOf(conf);
  const unlock = store.lock();
  try {
    const stale = store.list().filter((r) => (r.ifname === '' ? !keepIds.has(r.id) : !keep.has(`${r.id}\n${r.ifname}`)));
    for (const r of stale) {
      store.release(r.ip);
      index.remove(r.id, r.ifname);
    }
    return stale;
  } finally {
    unlock();
  }
}

export interface PoolUsage {
  rangeSet: number;
  ranges: string[];
  size: bigint;
  used: number;
}

export function hostLocalUsage(conf: NetConf): PoolUsage[] {
  const sets = rangeSets(conf);
  const held = storeOf(conf).list().map((r) => parseAddr(r.ip)).filter((a): a is Addr => a !== undefined);
  return sets.map((set, i) => ({
    rangeSet: i,
    ranges: set.map((r) => `${formatAddr(r.start)}-${formatAddr(r.end)}`),
    size: set.reduce((n, r) => n + rangeSize(r), 0n),
    used: held.filter((a) => set.some((r) => a.family === r.start.family && a.value >= r.start.value && a.value <= r.end.value)).length,
  }));
}

export const describeIp = (ip: IpamIp): string => formatCidr(ip.cidr);
