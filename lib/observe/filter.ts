// hubble observe's filters over flow lines: a flow passes when it matches every filter given.
import { parseAddr, parseCidr, type Cidr } from '../net/ip.js';
import type { HubbleFlow } from './flow.js';

export interface FlowFilter {
  pod?: string;
  fromPod?: string;
  toPod?: string;
  namespace?: string;
  verdict?: 'FORWARDED' | 'DROPPED';
  protocol?: string;
  port?: number;
  ip?: string;
}

/** "ns/prefix" matches pods of ns whose name starts with prefix; "prefix" matches in any namespace. */
function podMatch(spec: string, p: HubbleFlow['source']): boolean {
  if (!p.pod_name) return false;
  const i = spec.indexOf('/');
  if (i < 0) return p.pod_name.startsWith(spec);
  return p.namespace === spec.slice(0, i) && p.pod_name.startsWith(spec.slice(i + 1));
}

function inCidr(c: Cidr, s: string): boolean {
  const a = parseAddr(s);
  if (!a || a.family !== c.addr.family) return false;
  const bits = a.family === 4 ? 32 : 128;
  const shift = BigInt(bits - c.prefix);
  return a.value >> shift === c.addr.value >> shift;
}

const ports = (f: HubbleFlow): number[] => Object.values(f.l4 ?? {}).flatMap((l) => [l.source_port, l.destination_port].filter((p): p is number => typeof p === 'number'));

/** Compiles the filters once; the result tells whether a flow passes. */
export function flowFilter(f: FlowFilter): (flow: HubbleFlow) => boolean {
  const proto = f.protocol?.toUpperCase().replace(/^ICMP$/, 'ICMPV4');
  const ip = f.ip === undefined ? undefined : (parseCidr(f.ip.includes('/') ? f.ip : `${f.ip}/${f.ip.includes(':') ? 128 : 32}`) ?? null);
  if (ip === null) throw new Error(`--ip: "${f.ip}" is not an address or CIDR`);
  return (flow) =>
    (f.pod === undefined || podMatch(f.pod, flow.source) || podMatch(f.pod, flow.destination)) &&
    (f.fromPod === undefined || podMatch(f.fromPod, flow.source)) &&
    (f.toPod === undefined || podMatch(f.toPod, flow.destination)) &&
    (f.namespace === undefined || flow.source.namespace === f.namespace || flow.destination.namespace === f.namespace) &&
    (f.verdict === undefined || flow.verdict === f.verdict) &&
    (proto === undefined || Object.keys(flow.l4 ?? {}).some((k) => k.toUpperCase() === proto)) &&
    (f.port === undefined || ports(flow).includes(f.port)) &&
    (ip === undefined || inCidr(ip, flow.IP.source) || inCidr(ip, flow.IP.destination));
}
