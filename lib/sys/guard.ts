// The host-side guard of a network's pods, one nftables table (inet) per network:
// - source validation for every packet that reaches the host's stack from a pod veth (the
//   routed path, shaped pods, anything the tc program passes on): a source the host would
//   not route back out of that same veth is dropped — strict reverse-path filtering for
//   IPv4 and IPv6 alike (IPv6 has no rp_filter sysctl);
// - a conntrack expression, so the host's conntrack tracks forwarded flows even where no
//   other rule asks for it: the eBPF fast path serves only connections conntrack holds;
// - no encapsulation from a pod: IPIP, IPv6-in-IP, GRE, L2TP and MPLS-in-IP, and (VXLAN
//   networks) UDP to the VXLAN port whatever its destination — a node's other address (a
//   second NIC, a VIP) decapsulates on the same wildcard-bound socket — are dropped before
//   routing, and so before a masquerade could give them the node's own, trusted, source, on
//   every data path; and again after DNAT (forward, input), where a Service or a DNAT rule may
//   have turned another port into the VXLAN port. Once unwrapped, their inner packet would be
//   delivered as coming from whatever source the pod wrote in it;
// - (VXLAN networks) the VXLAN port takes packets from node addresses only, and only to this
//   node's underlay address (the VXLAN device's local address); nothing of the other family
//   (the device opens one socket, of its local address's family).
import { NFT, find, run } from './nft.js';
import { formatAddr, type Addr } from '../net/ip.js';
import { Netlink } from './netlink.js';
import { encodeAttrs } from './nlmsg.js';

const NETLINK_NETFILTER = 12;
const NFT_MSG_GETRULE = (10 << 8) | 7; // NFNL_SUBSYS_NFTABLES, NFT_MSG_GETRULE
const NFPROTO_INET = 1;
const NFTA_RULE_TABLE = 1;

/** The VXLAN port and every node's underlay addresses (this node's included). */
export interface GuardEncap {
  port: number;
  nodes: Addr[];
  /** This node's underlay address, the only destination the port takes; none when unknown. */
  local?: Addr;
}

/** IP protocols that carry a packet a pod built: IPIP, IPv6-in-IP, GRE, L2TP, MPLS-in-IP. */
export const ENCAP_PROTOCOLS = [4, 41, 47, 115, 137] as const;

export const guardTable = (tag: string): string => `twill_guard_${tag}`;

export class GuardError extends Error {}

/** Why the guard cannot be installed on this host (nft(8) missing), or undefined. */
export function guardUnavailable(): string | undefined {
  return find(NFT) ? undefined : `nft(8) not found (looked for ${NFT.join(', ')})`;
}

/**
 * The rules the guard's table holds now (0: no table), asked of the kernel over netlink —
 * well under a millisecond where running nft would cost milliseconds — so ADD can afford to
 * notice a table someone flushed (`nft flush ruleset`) or emptied.
 */
export function guardRuleCount(tag: string): number {
  const nl = new Netlink(NETLINK_NETFILTER);
  try {
    const hdr = Buffer.from([NFPROTO_INET, 0, 0, 0]); // nfgenmsg: family, version 0, res_id 0
    const body = Buffer.concat([hdr, encodeAttrs([[NFTA_RULE_TABLE, Buffer.from(`${guardTable(tag)}\0`)]])]);
    return nl.dump(NFT_MSG_GETRULE, body).length;
  } catch {
    return 0; // no table (ENOENT), or no nf_tables at all
  } finally {
    nl.close();
  }
}

/**
 * Installs (or refreshes) the guard for host veths named ifPrefix*; throws nft's message.
 * Returns how many rules the table holds, for guardRuleCount to compare with.
 */
export function ensureGuard(tag: string, ifPrefix: string, encap?: GuardEncap): number {
  const nft = find(NFT);
  if (!nft) throw new GuardError(`${guardUnavailable()}: install nftables for source validation on the routed path`);
  const t = `inet ${guardTable(tag)}`;
  const set = (name: string, type: string, fam: 4 | 6): string[] => {
    const els = (encap?.nodes ?? []).filter((a) => a.family === fam).map(formatAddr);
    return [`  set ${name} {`, `    type ${type}`, ...(els.length ? [`    elements = { ${els.join(', ')} }`] : []), '  }'];
  };
  const vx = encap ? `udp dport ${encap.port}` : '';
  const fromPod = `iifname "${ifPrefix}*"`;
  const local = encap?.local;
  // The underlay's own family must reach this node's address; the other family nothing.
  const toSelf = !local ? [`    ${vx} counter drop`]
    : local.family === 4 ? [`    ${vx} ip daddr != ${formatAddr(local)} counter drop`, `    meta nfproto ipv6 ${vx} counter drop`]
      : [`    ${vx} ip6 daddr != ${formatAddr(local)} counter drop`, `    meta nfproto ipv4 ${vx} counter drop`];
  const rules = [
    `add table ${t}`, `delete table ${t}`,
    `table ${t} {`,
    ...(encap ? [...set('nodes4', 'ipv4_addr', 4), ...set('nodes6', 'ipv6_addr', 6)] : []),
    '  chain prerouting {',
    '    type filter hook prerouting priority raw; policy accept;',
    `    ${fromPod} meta l4proto { ${ENCAP_PROTOCOLS.join(', ')} } counter drop`,
    ...(encap ? [`    ${fromPod} ${vx} counter drop`] : []),
    // Link-local and unspecified sources (neighbour discovery, MLD, DAD) never leave the link.
    `    iifname "${ifPrefix}*" ip6 saddr != { fe80::/10, :: } fib saddr . iif oif missing counter drop`,
    `    iifname "${ifPrefix}*" meta nfproto ipv4 ip saddr != 0.0.0.0 fib saddr . iif oif missing counter drop`,
    '  }',
    '  chain forward {',
    '    type filter hook forward priority filter; policy accept;',
    `    iifname "${ifPrefix}*" ct state invalid counter`,
    // Node-to-node VXLAN is never translated: a DNAT that turned another port into the VXLAN
    // port (a NodePort whose endpoint is a node's own VXLAN port) carries what a pod sent.
    ...(encap ? [`    ${fromPod} ${vx} counter drop`, `    ${vx} ct status dnat counter drop`] : []),
    '  }',
    ...(encap ? [
      '  chain input {',
      '    type filter hook input priority filter; policy accept;',
      `    ${fromPod} ${vx} counter drop`,
      `    ${vx} ct status dnat counter drop`,
      `    ${vx} ip saddr != @nodes4 counter drop`,
      `    ${vx} ip6 saddr != @nodes6 counter drop`,
      ...toSelf,
      '  }',
    ] : []),
    '}',
  ];
  const r = run(nft, ['-f', '-'], `${rules.join('\n')}\n`);
  if (!r.ok) throw new GuardError(`nft: ${r.out}`);
  return rules.filter((l) => /^ {4}(?!type |elements |})/.test(l)).length;
}

export function removeGuard(tag: string): void {
  const nft = find(NFT);
  if (nft) run(nft, ['delete', 'table', 'inet', guardTable(tag)]);
}
