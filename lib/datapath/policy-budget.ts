// What a policy state costs in the network's maps, against what they hold: a sync counts it
// before it writes anything, and refuses a state that cannot fit (a partly written one would
// mix two policies: new allowances in, revoked ones not yet out, selections not switched).
// The rule: make before break keeps the old entries until the new ones are all in, so a map
// holds at most |old ∪ new| entries during a swap — the figure checked, not |new|.
import type { NetConf } from '../config/types.js';
import type { Allow, PodPolicy } from '../policy/compile.js';
import { mkdirs, writeAtomic } from '../fsx.js';
import { budgetPath, policyDir, readBudget, type BudgetMap, type BudgetRecord, type Refusal } from '../state/files.js';

export type { BudgetMap, BudgetRecord, MapUse, Refusal } from '../state/files.js';
/** The peak of a swap is the mirror's rule (make before break: put, then prune). */
export { peakEntries } from '../mirror/mirror.js';

/**
 * Entries of the policy map one allowance of the compiled output becomes (datapath/policy.ts
 * allowKeys writes one key per Allow). The one place that knows it: kept true with the compiler.
 */
export const allowEntries = (_a: Allow): number => 1;

/**
 * Entries each policy (index into Compiled.policies) asks of the policy map for this node's
 * pods, pods selected by the same policies counted once (the largest of them): exact where
 * such pods share a slot, a lower bound where each has its own — never more than the maps
 * will hold, so a state refused on it cannot fit. The exact count is the keys' (applyPolicy's gate).
 */
export function entriesByPolicy(pods: Iterable<Pick<PodPolicy, 'ingress' | 'egress' | 'selectedBy'> & Partial<Pick<PodPolicy, 'group'>>>): Map<number, number> {
  const groups = new Map<string, Map<number, number>>();
  for (const pp of pods) {
    const mine = new Map<number, number>();
    for (const a of [...(pp.ingress ?? []), ...(pp.egress ?? [])]) mine.set(a.policy, (mine.get(a.policy) ?? 0) + allowEntries(a));
    // The compiler's group is the slot pods share; without it, the policies selecting them.
    const sig = pp.group ?? `${pp.selectedBy.ingress.join(',')}/${pp.selectedBy.egress.join(',')}`;
    const had = groups.get(sig);
    const size = (m: Map<number, number>): number => [...m.values()].reduce((x, y) => x + y, 0);
    if (!had || size(mine) > size(had)) groups.set(sig, mine);
  }
  const out = new Map<number, number>();
  for (const g of groups.values()) for (const [i, n] of g) out.set(i, (out.get(i) ?? 0) + n);
  return out;
}

export class PolicyRefused extends Error {
  constructor(readonly refusal: Refusal) {
    super(refusal.message);
  }
}

/**
 * The first map whose peak does not fit, as a refusal naming the policy that asks most of
 * it (policy map) or what fills it (ipcache). undefined: everything fits.
 */
export function overBudget(
  peaks: Record<BudgetMap, { needed: number; available: number; alone?: number }>,
  byPolicy: ReadonlyMap<number, number>,
  policies: readonly string[],
  ipcacheWhat: string,
): Refusal | undefined {
  for (const map of ['policy', 'ipcache'] as BudgetMap[]) {
    const { needed, available, alone } = peaks[map];
    if (needed <= available) continue;
    let top: [number, number] | undefined;
    if (map === 'policy') for (const [i, n] of byPolicy) if (!top || n > top[1]) top = [i, n];
    const policy = top ? policies[top[0]] : undefined;
    // The new state alone would fit: the old one's entries stay until the new ones are in.
    const swap = alone !== undefined && alone < needed ? `; ${alone} for the new set alone and ${needed - alone} of the set applied before, kept until the new one is in: remove the old rules first` : '';
    const cause = policy ? `NetworkPolicy ${policy} asks ${top![1]} of them` : map === 'ipcache' ? ipcacheWhat : 'no single policy';
    return {
      time: new Date().toISOString(), map, needed, available, ...(policy ? { policy, policyEntries: top![1] } : {}),
      message: `the ${map} map needs ${needed} entries, ${available} available (${cause}${swap}): policy set refused, the state applied before stays enforced`,
    };
  }
  return undefined;
}

/** The size the network's map has, or will have once an ADD makes it. */
export function configuredSize(conf: NetConf, map: BudgetMap): number {
  return (map === 'policy' ? conf.policy?.policyEntries : conf.policy?.ipcacheEntries) ?? (map === 'policy' ? 262144 : 524288);
}

export function writeBudget(conf: NetConf, rec: BudgetRecord): void {
  mkdirs(policyDir(conf), 0o700);
  writeAtomic(budgetPath(conf), `${JSON.stringify(rec, null, 2)}\n`);
}

/** A refusal recorded over the last applied state's figures (those still hold). */
export function recordRefusal(conf: NetConf, r: Refusal): void {
  const prev = readBudget(conf);
  const maps: BudgetRecord['maps'] = { ...(prev?.maps ?? {}) };
  maps[r.map] = { used: maps[r.map]?.used ?? 0, available: r.available, needed: r.needed };
  writeBudget(conf, { time: r.time, maps, refused: r });
}
