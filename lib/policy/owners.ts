// One owner per address. Pod objects outlive what they describe: a Terminating pod kept by a
// finalizer, or a stale object, can still list an address that the node has already given to
// a new pod. The ipcache is keyed by address, so two claimants would make the last one written
// win — the new pod could inherit the old one's identity (and what policies admit it). Here
// each address gets exactly one owner, whatever order the objects arrive in:
// - a pod that no longer holds an address is never an owner: a finished pod (phase Succeeded
//   or Failed — its address is released, as the EndpointSlice controller and Cilium treat it)
//   and a terminating pod with no running container (its sandbox is gone);
// - of the rest, a pod this node attached (`held`: its own IPAM gave it the address, the
//   freshest truth there is) beats any object, then a pod not terminating beats a terminating
//   one, then the newer (creationTimestamp) beats the older, then the smaller
//   "namespace/name" (stable).
// Pure: the compile sees each pod's `ips` reduced to the addresses it owns.
import { formatAddr, parseAddr } from '../net/ip.js';
import type { PodObj } from './objects.js';

/** Whether the pod may still hold the addresses it lists. */
export function mayOwn(p: PodObj): boolean {
  if (p.phase === 'Succeeded' || p.phase === 'Failed') return false;
  if (p.deletionTimestamp && !(p.containerStatuses ?? []).some((c) => c.running)) return false;
  return true;
}

const created = (p: PodObj): number => {
  const t = p.creationTimestamp ? Date.parse(p.creationTimestamp) : NaN;
  return Number.isNaN(t) ? -Infinity : t;
};

const NONE: ReadonlySet<string> = new Set();

/** Negative when the first is the better owner of an address both list (both may own). */
function rank([ka, a]: readonly [string, PodObj], [kb, b]: readonly [string, PodObj], held: ReadonlySet<string>): number {
  const node = Number(held.has(kb)) - Number(held.has(ka));
  if (node !== 0) return node;
  const term = Number(Boolean(a.deletionTimestamp)) - Number(Boolean(b.deletionTimestamp));
  if (term !== 0) return term;
  const ta = created(a), tb = created(b);
  if (ta !== tb) return ta > tb ? -1 : 1;
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}

/** One spelling per address ("fd00:0::1" and "fd00::1" are one address). */
const canon = (ip: string): string => {
  const a = parseAddr(ip);
  return a ? formatAddr(a) : ip;
};

function best(keys: Iterable<string>, pods: ReadonlyMap<string, PodObj>): string | undefined {
  let top: [string, PodObj] | undefined;
  for (const k of keys) {
    const p = pods.get(k);
    if (!p || !mayOwn(p)) continue;
    if (!top || rank([k, p], top, NONE) < 0) top = [k, p];
  }
  return top?.[0];
}

function reduced(key: string, p: PodObj, owner: (ip: string) => string | undefined): PodObj {
  const ips = p.ips.filter((ip) => owner(ip) === key);
  return ips.length === p.ips.length ? p : { ...p, ips };
}

/**
 * Address (canonical spelling) → "namespace/name" of the pod that owns it. `held`: pods this
 * node attached, whose `ips` are what its IPAM gave them.
 */
export function addressOwners(pods: ReadonlyMap<string, PodObj>, held: ReadonlySet<string> = NONE): Map<string, string> {
  const out = new Map<string, string>();
  for (const [k, p] of pods) {
    if (!mayOwn(p)) continue;
    for (const ip of p.ips) {
      const a = canon(ip);
      const had = out.get(a);
      if (had === undefined || rank([k, p], [had, pods.get(had)!], held) < 0) out.set(a, k);
    }
  }
  return out;
}

/** The pods, each one's `ips` reduced to the addresses it owns (a pod that owns all it lists is the same object). */
export function ownedPods(pods: ReadonlyMap<string, PodObj>, held: ReadonlySet<string> = NONE): Map<string, PodObj> {
  const owners = addressOwners(pods, held);
  const owner = (ip: string): string | undefined => owners.get(canon(ip));
  return new Map([...pods].map(([k, p]) => [k, reduced(k, p, owner)]));
}

/**
 * The claims on each address kept up to date as pods change one at a time (a watch): work per
 * change grows with the pods listing the changed pod's addresses, not with the cluster. It
 * knows nothing `held`: a change touching a pod of this node goes through the whole compute.
 */
export class AddressClaims {
  private readonly byAddr = new Map<string, Set<string>>();

  /** `pods` is the live map: update() is called after each change to it. */
  constructor(private readonly pods: ReadonlyMap<string, PodObj>) {
    this.reset();
  }

  /** Everything again (after a fresh list). */
  reset(): void {
    this.byAddr.clear();
    for (const [k, p] of this.pods) this.add(k, p);
  }

  /** The pod `key` changed from `before` to `after` (undefined: absent). */
  update(key: string, before: PodObj | undefined, after: PodObj | undefined): void {
    if (before) {
      for (const ip of before.ips) {
        const a = canon(ip);
        const set = this.byAddr.get(a);
        set?.delete(key);
        if (set?.size === 0) this.byAddr.delete(a);
      }
    }
    if (after) this.add(key, after);
  }

  /** Every pod listing the address, owner or not. */
  claimants(ip: string): string[] {
    return [...(this.byAddr.get(canon(ip)) ?? [])];
  }

  owner(ip: string): string | undefined {
    const set = this.byAddr.get(canon(ip));
    return set ? best(set, this.pods) : undefined;
  }

  /** The pod with its `ips` reduced to what it owns; undefined when it is gone. */
  owned(key: string): PodObj | undefined {
    const p = this.pods.get(key);
    return p && reduced(key, p, (ip) => this.owner(ip));
  }

  private add(key: string, p: PodObj): void {
    for (const ip of p.ips) {
      const a = canon(ip);
      let set = this.byAddr.get(a);
      if (!set) this.byAddr.set(a, (set = new Set()));
      set.add(key);
    }
  }
}
