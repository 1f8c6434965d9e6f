// Egress masquerade for a network: one nftables table per network (iptables when nft is
// missing) — not one rule per pod. Created idempotently, removed with the network's last pod.
import type { Cidr } from '../net/ip.js';
import { formatCidr } from '../net/ip.js';

import { IPT, NFT, find, run } from './nft.js';

export const masqTable = (tag: string): string => `twill_${tag}`;

export interface MasqSpec {
  tag: string;
  sources: Cidr[];
  exempt: Cidr[];
}

/** Installs (or refreshes) the rules; throws with nft's/iptables' message on failure. */
export function ensureMasq(m: MasqSpec): 'nftables' | 'iptables' {
  const nft = find(NFT);
  if (nft) {
    const lines: string[] = [];
    for (const f of [4, 6] as const) {
      const fam = f === 4 ? 'ip' : 'ip6';
      const src = m.sources.filter((c) => c.addr.family === f).map(formatCidr);
      const ex = m.exempt.filter((c) => c.addr.family === f).map(formatCidr);
      const t = `${fam} ${masqTable(m.tag)}`;
      lines.push(`add table ${t}`, `delete table ${t}`);
      if (src.length === 0) continue;
      lines.push(`table ${t} {`, '  chain postrouting {', '    type nat hook postrouting priority srcnat; policy accept;',
        `    ${fam} saddr { ${src.join(', ')} }${ex.length ? ` ${fam} daddr != { ${ex.join(', ')} }` : ''} masquerade`, '  }', '}');
    }
    const r = run(nft, ['-f', '-'], `${lines.join('\n')}\n`);
    if (!r.ok) throw new Error(`nft: ${r.out}`);
    return 'nftables';
  }
  for (const f of [4, 6] as const) {
    const ipt = find(IPT[f]);
    const src = m.sources.filter((c) => c.addr.family === f);
    if (!ipt || src.length === 0) continue;
    const chain = `TWILL-MASQ-${m.tag}`.slice(0, 28).toUpperCase();
    // Every command must succeed (but -N of a chain that exists, and -C, which asks).
    const must = (args: string[]): void => {
      const r = run(ipt, ['-t', 'nat', ...args]);
      if (!r.ok) throw new Error(`${ipt} -t nat ${args.join(' ')}: ${r.out}`);
    };
    run(ipt, ['-t', 'nat', '-N', chain]);
    must(['-F', chain]);
    for (const e of m.exempt.filter((c) => c.addr.family === f)) must(['-A', chain, '-d', formatCidr(e), '-j', 'RETURN']);
    must(['-A', chain, '-j', 'MASQUERADE']);
    for (const s of src) {
      const rule = ['POSTROUTING', '-s', formatCidr(s), '-j', chain];
      if (!run(ipt, ['-t', 'nat', '-C', ...rule]).ok) must(['-A', ...rule]);
    }
  }
  return 'iptables';
}

export function removeMasq(tag: string): void {
  const nft = find(NFT);
  if (nft) {
    run(nft, ['delete', 'table', 'ip', masqTable(tag)]);
    run(nft, ['delete', 'table', 'ip6', masqTable(tag)]);
    return;
  }
  for (const f of [4, 6] as const) {
    const ipt = find(IPT[f]);
    if (!ipt) continue;
    const chain = `TWILL-MASQ-${tag}`.slice(0, 28).toUpperCase();
    const rules = run(ipt, ['-t', 'nat', '-S', 'POSTROUTING']).out.split('\n').filter((l) => l.includes(`-j ${chain}`));
    for (const l of rules) run(ipt, ['-t', 'nat', ...l.replace(/^-A /, '-D ').split(' ')]);
    run(ipt, ['-t', 'nat', '-F', chain]);
    run(ipt, ['-t', 'nat', '-X', chain]);
  }
}
