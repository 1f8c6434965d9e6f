// host-local's allocation algorithm (backend/allocator): per range set, start after the last
// reserved address, walk the ranges round-robin, skip gateways, take the first free one.
import { Code, CniError } from '../cni/errors.js';
import { contains, formatAddr, parseAddr, sameAddr, type Addr } from '../net/ip.js';
import type { Range, RangeSet } from './ranges.js';
import type { Store } from './store.js';

export interface Allocation {
  rangeSet: number;
  addr: Addr;
  range: Range;
}

const inRange = (r: Range, a: Addr): boolean => a.family === r.start.family && a.value >= r.start.value && a.value <= r.end.value;

function* walk(set: RangeSet, last: Addr | undefined): Generator<{ range: Range; addr: Addr }> {
  let ri = 0;
  let next: bigint = set[0]!.start.value;
  const at = last ? set.findIndex((r) => inRange(r, last)) : -1;
  if (at >= 0 && last) {
    ri = at;
    next = last.value + 1n;
    if (next > set[ri]!.end.value) {
      ri = (ri + 1) % set.length;
      next = set[ri]!.start.value;
    }
  }
  const firstRange = ri;
  const firstAddr = next;
  for (;;) {
    const range = set[ri]!;
    yield { range, addr: { family: range.start.family, value: next } };
    next += 1n;
    if (next > range.end.value) {
      ri = (ri + 1) % set.length;
      next = set[ri]!.start.value;
    }
    if (ri === firstRange && next === firstAddr) return;
  }
}

function allocateOne(store: Store, set: RangeSet, index: number, id: string, ifname: string, requested: Addr | undefined): Allocation {
  if (requested) {
    const range = set.find((r) => inRange(r, requested));
    if (!range) throw new CniError(Code.InvalidConfig, `requested IP ${formatAddr(requested)} is not in range set ${index}`);
    if (sameAddr(requested, range.gateway)) throw new CniError(Code.InvalidConfig, `requested IP ${formatAddr(requested)} is the gateway`);
    if (!store.reserve(formatAddr(requested), id, ifname, index)) {
      throw new CniError(Code.InvalidConfig, `requested IP address ${formatAddr(requested)} is not available in range set ${index}`);
    }
    return { rangeSet: index, addr: requested, range };
  }
  const lastText = store.lastReserved(index);
  const last = lastText ? parseAddr(lastText) : undefined;
  for (const { range, addr } of walk(set, last)) {
    if (sameAddr(addr, range.gateway)) continue;
    if (store.reserve(formatAddr(addr), id, ifname, index)) return { rangeSet: index, addr, range };
  }
  const desc = set.map((r) => `${formatAddr(r.start)}-${formatAddr(r.end)}`).join(', ');
  throw new CniError(Code.TryAgainLater, `no IP addresses available in range set ${index} (${desc})`, 'the pool is exhausted: delete unused pods or widen the ranges');
}

/**
 * Allocates one address per range set, all under the store lock. On failure, releases
 * what it took and rethrows: no partial allocation survives.
 */
export function allocate(store: Store, sets: RangeSet[], id: string, ifname: string, requested: Addr[]): Allocation[] {
  const pending = [...requested];
  const out: Allocation[] = [];
  try {
    sets.forEach((set, i) => {
      const k = pending.findIndex((a) => set.some((r) => contains(r.subnet, a)));
      const req = k >= 0 ? pending.splice(k, 1)[0] : undefined;
      out.push(allocateOne(store, set, i, id, ifname, req));
    });
    if (pending.length > 0) {
      throw new CniError(Code.InvalidConfig, `requested IP ${pending.map(formatAddr).join(', ')} is not in any configured range`);
    }
    return out;
  } catch (e) {
    for (const a of out) store.release(formatAddr(a.addr));
    throw e;
  }
}
