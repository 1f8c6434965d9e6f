// The node table of a network: the config's nodes, else its nodesFile, else what `twill sync`
// last wrote. Validated with the same schema; this node is found by name or local address.
import { existsSync, readFileSync } from '../sys/fs.js';
import type { NetConf, NodeEntry } from '../config/types.js';
import { validateNodesFile } from '../config/validate.generated.js';
import { network, parseAddr, parseCidr, type Addr, type Cidr } from '../net/ip.js';
import { lastGoodNodesPath, readJson, syncedNodesPath } from '../state/files.js';
import { invalidNetworkName } from '../cni/names.js';
import { Code, CniError } from '../cni/errors.js';

export interface Peer {
  name: string;
  ip: Addr;
  ip6?: Addr;
  podCIDRs: Cidr[];
}

export { syncedNodesPath };

/** The table exists but cannot be read or parsed: keep what was programmed from the last good one. */
export class NodeTableUnreadable extends Error {}

export function readNodesFile(path: string, what: string): NodeEntry[] {
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new NodeTableUnreadable(`${what} ${path}: ${(e as Error).message}`);
  }
  if (!validateNodesFile(doc)) {
    const err = validateNodesFile.errors?.[0];
    throw new NodeTableUnreadable(`${what} ${path}: ${err?.instancePath || '(root)'} ${err?.message ?? 'is invalid'}`);
  }
  return (doc as { nodes: NodeEntry[] }).nodes;
}

/**
 * The configured table. Throws NodeTableUnreadable when a nodes file or the synced table is
 * there but unreadable; an empty table only when nothing was ever synced.
 */
export function nodeTable(conf: NetConf): NodeEntry[] {
  if (conf.nodes) return conf.nodes;
  if (conf.nodesFile) return readNodesFile(conf.nodesFile, 'nodesFile');
  const path = syncedNodesPath(conf);
  if (!existsSync(path)) return [];
  return readNodesFile(path, 'synced node table');
}

/** One node of the table as a peer, or why it cannot be one. */
export function toPeer(n: NodeEntry): Peer | string {
  const raw = n as unknown as Record<string, unknown>;
  const name = typeof raw.name === 'string' && invalidNetworkName(raw.name) === undefined ? raw.name : undefined;
  if (!name) return `node ${JSON.stringify(raw.name ?? null).slice(0, 80)}: invalid name`;
  const ip = typeof raw.ip === 'string' ? parseAddr(raw.ip) : undefined;
  if (!ip) return `node ${name}: ip ${JSON.stringify(raw.ip ?? null).slice(0, 80)} is not an address`;
  const ip6 = typeof raw.ip6 === 'string' ? parseAddr(raw.ip6) : undefined;
  if (raw.ip6 !== undefined && !ip6) return `node ${name}: ip6 ${JSON.stringify(raw.ip6).slice(0, 80)} is not an address`;
  if (!Array.isArray(raw.podCIDRs) || raw.podCIDRs.length > 4) return `node ${name}: podCIDRs must be a list of at most 4 CIDRs`;
  const podCIDRs: Cidr[] = [];
  for (const c of raw.podCIDRs) {
    const p = typeof c === 'string' ? parseCidr(c) : undefined;
    if (!p) return `node ${name}: pod CIDR ${JSON.stringify(c).slice(0, 80)} is not a CIDR`;
    podCIDRs.push(network(p));
  }
  return { name, ip, ...(ip6 ? { ip6 } : {}), podCIDRs };
}

/** Every usable node as a peer; the others are skipped and named in bad. */
export function toPeers(table: NodeEntry[]): { peers: Peer[]; bad: string[] } {
  const peers: Peer[] = [];
  const bad: string[] = [];
  for (const n of table) {
    const p = toPeer(n);
    if (typeof p === 'string') bad.push(p);
    else peers.push(p);
  }
  return { peers, bad };
}

/** Splits the table into this node and its peers; nodes that cannot be used are in bad. */
export function splitNodes(conf: NetConf, table: NodeEntry[], localAddrs: Addr[]): { self?: Peer; peers: Peer[]; bad: string[] } {
  const { peers, bad } = toPeers(table);
  const isLocal = (p: Peer): boolean => localAddrs.some((a) => a.family === p.ip.family && a.value === p.ip.value);
  const self = peers.find((p) => (conf.nodeName ? p.name === conf.nodeName : isLocal(p)));
  return { ...(self ? { self } : {}), peers: peers.filter((p) => p !== self), bad };
}

/**
 * The node table to program from: the current one, or — when it is there but cannot be read
 * (a half-written nodes file, a corrupt sync) — the last one that could, with a problem to
 * report. Never an empty table in its place: that would delete every peer's routes.
 */
export function usableTable(conf: NetConf): { table: NodeEntry[]; problem?: string } {
  try {
    return { table: nodeTable(conf) };
  } catch (e) {
    if (!(e instanceof NodeTableUnreadable)) throw e;
    const last = readJson<{ nodes: NodeEntry[] }>(lastGoodNodesPath(conf))?.nodes;
    if (!last) throw new CniError(Code.InvalidConfig, `${e.message} (and no earlier table to keep)`);
    return { table: last, problem: `${e.message}; kept the last good table (${last.length} nodes)` };
  }
}
