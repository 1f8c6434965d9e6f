// Legacy tc attachment: a clsact qdisc and a direct-action cls_bpf filter, over rtnetlink.
import { EEXIST } from './libc.js';
import { Netlink, NetlinkError } from './netlink.js';
import { encodeAttrs, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, str, u32 } from './nlmsg.js';

const RTM_NEWQDISC = 36, RTM_NEWTFILTER = 44, RTM_GETTFILTER = 46;
const TCA_KIND = 1, TCA_OPTIONS = 2;
const TCA_BPF_FD = 6, TCA_BPF_NAME = 7, TCA_BPF_FLAGS = 8, TCA_BPF_FLAG_ACT_DIRECT = 1;
const TC_H_CLSACT = 0xfffffff1, TC_H_MIN_INGRESS = 0xfff2;
const ETH_P_ALL_BE = 0x0300;

function tcmsg(ifindex: number, handle: number, parent: number, info: number): Buffer {
  const b = Buffer.alloc(20);
  b.writeInt32LE(ifindex, 4);
  b.writeUInt32LE(handle >>> 0, 8);
  b.writeUInt32LE(parent >>> 0, 12);
  b.writeUInt32LE(info >>> 0, 16);
  return b;
}

/** Adds (or, with replace, swaps the program of) the ingress filter on ifindex. */
export function attachClsact(ifindex: number, progFd: number, name: string, replace = false): void {
  const nl = new Netlink();
  try {
    try {
      nl.request(`add clsact to ${ifindex}`, RTM_NEWQDISC, NLM_F_CREATE | NLM_F_EXCL, Buffer.concat([tcmsg(ifindex, 0xffff0000, TC_H_CLSACT, 0), encodeAttrs([[TCA_KIND, str('clsact')]])]));
    } catch (e) {
      if (!(e instanceof NetlinkError) || e.errno !== EEXIST) throw e;
    }
    const parent = ((TC_H_CLSACT & 0xffff0000) | TC_H_MIN_INGRESS) >>> 0;
    const info = ((1 << 16) | ETH_P_ALL_BE) >>> 0; // priority 1, all protocols
    const opts = encodeAttrs([[TCA_BPF_FD, u32(progFd)], [TCA_BPF_NAME, str(name)], [TCA_BPF_FLAGS, u32(TCA_BPF_FLAG_ACT_DIRECT)]]);
    nl.request(`add bpf filter to ${ifindex}`, RTM_NEWTFILTER, NLM_F_CREATE | (replace ? NLM_F_REPLACE : NLM_F_EXCL), Buffer.concat([tcmsg(ifindex, 1, parent, info), encodeAttrs([[TCA_KIND, str('bpf')], [TCA_OPTIONS, opts]])]));
  } finally {
    nl.close();
  }
}

/** True when an ingress filter exists on ifindex (CHECK of the legacy attachment). */
export function hasIngressFilter(ifindex: number): boolean {
  const nl = new Netlink();
  try {
    const parent = ((TC_H_CLSACT & 0xffff0000) | TC_H_MIN_INGRESS) >>> 0;
    return nl.dump(RTM_GETTFILTER, tcmsg(ifindex, 0, parent, 0)).some((m) => m.type === 44);
  } catch {
    return false;
  } finally {
    nl.close();
  }
}
