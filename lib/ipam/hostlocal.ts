// The built-in host-local IPAM: same configuration, store and locking as the reference
// plugin, served in-process (no extra exec per ADD).
import { readFileSync } from '../sys/fs.js';
import { Code, CniError } from '../cni/errors.js';
import type { Dns, Route } from '../cni/result.js';
import type { Attachment, NetConf } from '../config/types.js';
import { allocate } from './allocator.js';
import { indexName, OwnerIndex, PENDING } from './index-file.js';
import { formatAddr, parseAddr, type Addr, type Cidr } from '../net/ip.js';
import { log } from '../log.js';
import { rangeSets, rangeSize, requestedAddrs } from './ranges.js';
import { Store, type Reservation } from './store.js';
import { crashPoint } from '../crash.js';
import { bootId } from '../sys/boot.js';


/** The kernel's boot time (epoch ms), from /proc/stat's btime. */
function bootTimeMs(): number | undefined {
  try {
    const m = /^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'utf8'));
    return m ? Number(m[1]) * 1000 : undefined;
  } catch {
    return undefined;
  }
}

/**
 * After a reboot every pod's namespace is gone, and with it every attachment the store still
 * records: the first ADD of a new boot releases the reservations of earlier boots (a runtime
 * re-ADDs its pods after a reboot) — only those whose files predate this boot, never one the
 * reference host-local or another twill configuration sharing the store made since. The boot
 * ID is kept beside the owner index.
 */
function releaseOtherBoots(conf: NetConf, store: Store, index: OwnerIndex): void {
  const boot = bootId();
  if (boot === undefined) return;
  const seen = index.bootId();
  if (seen === boot) return;
  const booted = bootTimeMs();
  if (seen !== undefined && booted !== undefined) {
    const stale = store.writtenBefore(booted);
    for (const r of stale) {
      store.release(r.ip);
      index.remove(r.id, r.ifname);
    }
    if (stale.length > 0) log.info('released reservations of an earlier boot', { network: conf.name, count: stale.length });
  }
  index.setBootId(boot);
}

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

/** Addresses the index lists for the owner that the store still gives to it. */
function indexedHeld(store: Store, entry: string[] | typeof PENDING | undefined, id: string, ifname: string): string[] {
  return (entry === PENDING ? [] : entry ?? []).filter((ip) => store.ownedBy(ip, id, ifname));
}
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
    crashPoint('add:locked');
    releaseOtherBoots(conf, store, index);
    const entry = index.get(id, ifname);
    if (entry === PENDING) {
      // An earlier ADD of this attachment died while allocating: what it reserved is orphaned.
      for (const ip of store.findByOwner(id, ifname)) store.release(ip);
    }
    const held = indexedHeld(store, entry, id, ifname);
    if (held.length > 0) {
      throw new CniError(Code.InvalidConfig, `duplicate allocation is not allowed: ${id}/${ifname} already holds ${held.join(', ')}`, 'run DEL for this container first');
    }
    index.setPending(id, ifname);
    let got;
    try {
      got = allocate(store, sets, id, ifname, requested);
    } catch (e) {
      index.remove(id, ifname); // allocate released what it took
      throw e;
    }
    crashPoint('add:reserved');
    try {
      index.set(id, ifname, got.map((a) => formatAddr(a.addr)));
    } catch (e) {
      // The index could not be written (a full disk): the ADD fails holding nothing.
      for (const a of got) store.release(formatAddr(a.addr));
      index.remove(id, ifname);
      throw e;
    }
    crashPoint('add:indexed');
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
    const entry = index.get(id, ifname);
    const indexed = indexedHeld(store, entry, id, ifname);
    // A miss (or a pending mark) means the reservation predates the index, was made by host-local, or the
    // process died between reserving and indexing: scan.
    const ips = indexed.length > 0 ? indexed : store.findByOwner(id, ifname);
    for (const ip of ips) store.release(ip);
    crashPoint('del:released');
    index.remove(id, ifname);
    return ips;
  } finally {
    unlock();
  }
}

export function hostLocalHeld(conf: NetConf, id: string, ifname: string): string[] {
  const store = storeOf(conf);
  const indexed = indexedHeld(store, indexOf(conf).get(id, ifname), id, ifname);
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
    const all = store.list();
    const isStale = (r: Reservation): boolean => (r.ifname === '' ? !keepIds.has(r.id) : !keep.has(`${r.id}\n${r.ifname}`));
    const stale = all.filter(isStale);
    for (const r of stale) {
      store.release(r.ip);
      index.remove(r.id, r.ifname);
    }
    // Leftovers of processes killed mid-write, and index entries whose reservation is gone:
    // one scan of the store, not one per index entry.
    store.sweepTemp();
    index.sweep(new Set(all.filter((r) => !isStale(r)).map((r) => indexName(r.id, r.ifname))));
    return stale;
  } finally {
    unlock();
  }
}

export function hostLocalCount(conf: NetConf): number {
  return storeOf(conf).count();
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

