// The node table of a network: the config's nodes, else its nodesFile, else what `twill sync`
// last wrote. Validated with the same schema; this node is found by name or local address.
import { readFileSync } from 'node:fs';
import { Code, CniError } from '../cni/errors.js';
import type { NetConf, NodeEntry } from '../config/types.js';
import { validateNodesFile } from '../config/validate.generated.js';
import { network, parseAddr, parseCidr, type Addr, type Cidr } from '../ipam/ip.js';
import { fileName } from '../naming.js';

export interface Peer {
  name: string;
  ip: Addr;
  ip6?: Addr;
  podCIDRs: Cidr[];
}

export const syncedNodesPath = (conf: NetConf): string => `${conf.stateDir}/nodes/${fileName(conf.name)}.json`;

export function readNodesFile(path: string, what: string): NodeEntry[] {
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new CniError(Code.InvalidConfig, `${what} ${path}: ${(e as Error).message}`);
  }
  if (!validateNodesFile(doc)) {
    const err = validateNodesFile.errors?.[0];
    throw new CniError(Code.InvalidConfig, `${what} ${path}: ${err?.instancePath || '(root)'} ${err?.message ?? 'is invalid'}`);
  }
  return (doc as { nodes: NodeEntry[] }).nodes;
}

export function nodeTable(conf: NetConf): NodeEntry[] {
  if (conf.nodes) return conf.nodes;
  if (conf.nodesFile) return readNodesFile(conf.nodesFile, 'nodesFile');
  try {
    return readNodesFile(syncedNodesPath(conf), 'synced node table');
  } catch {
    return [];
  }
}

export function toPeer(n: NodeEntry): Peer {
  const ip = parseAddr(n.ip);
  if (!ip) throw new CniError(Code.InvalidConfig, `node ${n.name}: ip "${n.ip}" is not an address`);
  const ip6 = n.ip6 ? parseAddr(n.ip6) : undefined;
  const podCIDRs = n.podCIDRs.map((c) => {
    const p = parseCidr(c);
    if (!p) throw new CniError(Code.InvalidConfig, `node ${n.name}: pod CIDR "${c}" is not a CIDR`);
    return network(p);
  });
  return { name: n.name, ip, ...(ip6 ? { ip6 } : {}), podCIDRs };
}

/** Splits the table into this node and its peers. */
export function splitNodes(conf: NetConf, table: NodeEntry[], localAddrs: Addr[]): { self?: Peer; peers: Peer[] } {
  const peers = table.map(toPeer);
  const isLocal = (p: Peer): boolean => localAddrs.some((a) => a.family === p.ip.family && a.value === p.ip.value);
  const self = peers.find((p) => (conf.nodeName ? p.name === conf.nodeName : isLocal(p)));
  return { ...(self ? { self } : {}), peers: peers.filter((p) => p !== self) };
}
