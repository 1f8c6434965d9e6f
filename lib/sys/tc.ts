// Legacy tc attachment: a clsact qdisc and a direct-action cls_bpf filter, over rtnetlink.
import { EEXIST, EINVAL, ENODEV, ENOENT } from './libc.js';
import { Netlink, NetlinkError } from './netlink.js';
import { RTM, TCA, tcmsg } from './rtnl-wire.js';
import { decodeAttrs, encodeAttrs, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, str, u32 } from './nlmsg.js';

const TCA_BPF_FD = 6, TCA_BPF_NAME = 7, TCA_BPF_FLAGS = 8, TCA_BPF_FLAG_ACT_DIRECT = 1;
const TC_H_CLSACT = 0xfffffff1, TC_H_MIN_INGRESS = 0xfff2, TC_H_MIN_EGRESS = 0xfff3;

export type TcDirection = 'ingress' | 'egress';
const parentOf = (dir: TcDirection): number => ((TC_H_CLSACT & 0xffff0000) | (dir === 'ingress' ? TC_H_MIN_INGRESS : TC_H_MIN_EGRESS)) >>> 0;
const ETH_P_ALL_BE = 0x0300;


/**
 * Adds (or, with replace, swaps the programs of) clsact filters on ifindex: one program per
 * direction given, over one netlink socket.
 */
export function attachClsactFilters(ifindex: number, progs: [TcDirection, number][], name: string, replace = false): void {
  const nl = new Netlink();
  try {
    try {
      nl.request(`add clsact to ${ifindex}`, RTM.NEWQDISC, NLM_F_CREATE | NLM_F_EXCL, Buffer.concat([tcmsg(ifindex, 0xffff0000, TC_H_CLSACT, 0), encodeAttrs([[TCA.KIND, str('clsact')]])]));
    } catch (e) {
      if (!(e instanceof NetlinkError) || e.errno !== EEXIST) throw e;
    }
    const info = ((1 << 16) | ETH_P_ALL_BE) >>> 0; // priority 1, all protocols
    for (const [dir, progFd] of progs) {
      const opts = encodeAttrs([[TCA_BPF_FD, u32(progFd)], [TCA_BPF_NAME, str(name)], [TCA_BPF_FLAGS, u32(TCA_BPF_FLAG_ACT_DIRECT)]]);
      nl.request(`add bpf ${dir} filter to ${ifindex}`, RTM.NEWTFILTER, NLM_F_CREATE | (replace ? NLM_F_REPLACE : NLM_F_EXCL), Buffer.concat([tcmsg(ifindex, 1, parentOf(dir), info), encodeAttrs([[TCA.KIND, str('bpf')], [TCA.OPTIONS, opts]])]));
    }
  } finally {
    nl.close();
  }
}

/** Adds (or, with replace, swaps the program of) the ingress or egress filter on ifindex. */
export const attachClsact = (ifindex: number, progFd: number, name: string, replace = false, dir: TcDirection = 'ingress'): void =>
  attachClsactFilters(ifindex, [[dir, progFd]], name, replace);

/** True when a clsact filter of that direction exists on ifindex (CHECK of the legacy attachment). */
export function hasFilter(ifindex: number, dir: TcDirection = 'ingress'): boolean {
  const nl = new Netlink();
  try {
    const parent = parentOf(dir);
    return nl.dump(RTM.GETTFILTER, tcmsg(ifindex, 0, parent, 0)).some((m) => m.type === RTM.NEWTFILTER);
  } catch (e) {
    // No such device, or no clsact qdisc on it: no filter. Anything else is a real failure.
    if (e instanceof NetlinkError && [ENOENT, EINVAL, ENODEV].includes(e.errno)) return false;
    throw e;
  } finally {
    nl.close();
  }
}

/** The kinds of the qdiscs on ifindex ("tbf", "ingress", "clsact", "noqueue", …). */
export function qdiscKinds(ifindex: number): string[] {
  const nl = new Netlink();
  try {
    return nl.dump(RTM.GETQDISC, tcmsg(0, 0, 0, 0))
      .filter((m) => m.type === RTM.NEWQDISC && m.body.readInt32LE(4) === ifindex)
      .map((m) => {
        const kind = decodeAttrs(m.body.subarray(20)).get(TCA.KIND);
        return kind ? kind.toString('latin1').replace(/\0.*$/s, '') : '';
      });
  } finally {
    nl.close();
  }
}
