// `twill endpoints`: the endpoint maps of this host, with what the fast path did for each.
import { endpointTable, type EndpointRow } from '../datapath/ebpf.js';
import { hostLinksWithAlias } from '../sys/podlink.js';

function render(rows: EndpointRow[]): string {
  if (rows.length === 0) return 'no eBPF endpoints on this host\n';
  const head = ['NETWORK', 'ADDRESS', 'HOST VETH', 'POD IF', 'CONTAINER', 'FAST PATH', 'REDIRECTED pkts/bytes', 'TO STACK pkts/bytes', 'SPOOFED pkts'];
  const body = rows.map((r) => [
    r.network, r.addr, `${r.hostIfName}(${r.hostIndex})`, r.podIfName, r.containerId.slice(0, 16), r.fastPath ? 'yes' : 'no (shaped)',
    r.counters ? `${r.counters.redirectPackets}/${r.counters.redirectBytes}` : '-', r.counters ? `${r.counters.passPackets}/${r.counters.passBytes}` : '-',
    r.counters ? String(r.counters.spoofedPackets) : '-',
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((row) => row[i]!.length)));
  return [head, ...body].map((row) => row.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n') + '\n';
}

export function runEndpoints(opts: { bpffsRoot: string; json: boolean; network?: string | undefined }): number {
  const rows = endpointTable(opts.bpffsRoot, hostLinksWithAlias('')).filter((r) => !opts.network || r.network === opts.network);
  process.stdout.write(opts.json ? `${JSON.stringify(rows, (_k, v) => (typeof v === 'bigint' ? Number(v) : v), 2)}\n` : render(rows));
  return 0;
}
