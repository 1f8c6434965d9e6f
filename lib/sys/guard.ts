// The host-side guard of a network's pods, one nftables table (inet) per network:
// - source validation for every packet that reaches the host's stack from a pod veth (the
//   routed path, shaped pods, anything the tc program passes on): a source the host would
//   not route back out of that same veth is dropped — strict reverse-path filtering for
//   IPv4 and IPv6 alike (IPv6 has no rp_filter sysctl);
// - a conntrack expression, so the host's conntrack tracks forwarded flows even where no
//   other rule asks for it: the eBPF fast path serves only connections conntrack holds.
import { NFT, find, run } from './nft.js';

export const guardTable = (tag: string): string => `twill_guard_${tag}`;

export class GuardError extends Error {}

/** Installs (or refreshes) the guard for host veths named ifPrefix*; throws nft's message. */
export function ensureGuard(tag: string, ifPrefix: string): void {
  const nft = find(NFT);
  if (!nft) throw new GuardError('nft(8) not found: install nftables for source validation on the routed path');
  const t = `inet ${guardTable(tag)}`;
  const rules = [
    `add table ${t}`, `delete table ${t}`,
    `table ${t} {`,
    '  chain prerouting {',
    '    type filter hook prerouting priority raw; policy accept;',
    // Link-local and unspecified sources (neighbour discovery, MLD, DAD) never leave the link.
    `    iifname "${ifPrefix}*" ip6 saddr != { fe80::/10, :: } fib saddr . iif oif missing counter drop`,
    `    iifname "${ifPrefix}*" meta nfproto ipv4 ip saddr != 0.0.0.0 fib saddr . iif oif missing counter drop`,
    '  }',
    '  chain forward {',
    '    type filter hook forward priority filter; policy accept;',
    `    iifname "${ifPrefix}*" ct state invalid counter`,
    '  }',
    '}',
  ];
  const r = run(nft, ['-f', '-'], `${rules.join('\n')}\n`);
  if (!r.ok) throw new GuardError(`nft: ${r.out}`);
}

export function removeGuard(tag: string): void {
  const nft = find(NFT);
  if (nft) run(nft, ['delete', 'table', 'inet', guardTable(tag)]);
}
