// Legacy tc attachment of a program: a clsact qdisc and a direct-action cls_bpf filter on a
// device. The netlink door is lib/sys/tc.ts; this is what the loader and the data path ask of it.
import { attachClsact, attachClsactFilters, hasFilter, type TcDirection } from '../../sys/tc.js';

export type { TcDirection } from '../../sys/tc.js';

/** Attaches the programs (one per direction) to ifindex as filters named name; replace swaps existing ones. */
export function attachTc(ifindex: number, progs: [TcDirection, number][], name: string, replace = false): void {
  attachClsactFilters(ifindex, progs, name, replace);
}

/** Attaches one program in one direction. */
export const attachTcOne = (ifindex: number, progFd: number, name: string, dir: TcDirection = 'ingress', replace = false): void =>
  attachClsact(ifindex, progFd, name, replace, dir);

/** True when a filter of that direction is on ifindex. */
export const hasTcFilter = (ifindex: number, dir: TcDirection = 'ingress'): boolean => hasFilter(ifindex, dir);

/** Points the filters that exist on each device at the new programs (an upgrade or a map swap). */
export function switchTcAttachments(ifindexes: Iterable<number>, progs: Record<TcDirection, number>, name: string): void {
  for (const ifindex of ifindexes) {
    for (const dir of ['ingress', 'egress'] as const) if (hasFilter(ifindex, dir)) attachClsact(ifindex, progs[dir], name, true, dir);
  }
}
