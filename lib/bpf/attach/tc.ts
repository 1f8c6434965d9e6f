// Legacy tc attachment of a program: a clsact qdisc and a direct-action cls_bpf filter on a
// device. The netlink door is lib/sys/tc.ts; this is what the loader and the data path ask of it.
import { attachClsact, hasFilter, type TcDirection } from '../../sys/tc.js';

export { attachClsact, attachClsactFilters, hasFilter, type TcDirection } from '../../sys/tc.js';

/** Points the filters that exist on each device at the new programs (an upgrade or a map swap). */
export function switchTcAttachments(ifindexes: Iterable<number>, progs: Record<TcDirection, number>, name: string): void {
  for (const ifindex of ifindexes) {
    for (const dir of ['ingress', 'egress'] as const) if (hasFilter(ifindex, dir)) attachClsact(ifindex, progs[dir], name, true, dir);
  }
}
