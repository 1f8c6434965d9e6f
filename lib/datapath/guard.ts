// The guard of a network (sys/guard.ts): installed by the network's first ADD of a boot (a
// marker under /run keeps later ADDs from running nft); removed by a GC that keeps nothing
// and by `twill sync --cleanup`. Callers hold the network lock.
import { existsSync, readFileSync, rmSync } from '../sys/fs.js';
import type { NetConf } from '../config/types.js';
import { mkdirs, writeAtomic } from '../fsx.js';
import { log } from '../log.js';
import { runMarker } from '../naming.js';
import { ensureGuard, removeGuard, type GuardEncap } from '../sys/guard.js';
import type { Addr } from '../net/ip.js';
import type { NodeEntry } from '../config/types.js';
import { masqTag } from './masq.js';
import { nodeTable, splitNodes, toPeers } from './nodes.js';
import { localAddresses } from '../sys/podlink.js';

const marker = (conf: NetConf): string => runMarker(conf.stateDir, 'guard', conf.name);

/** A VXLAN network's port and node addresses; undefined for other backends. */
function encapOf(conf: NetConf, table: NodeEntry[]): GuardEncap | undefined {
  if (conf.backend !== 'vxlan') return undefined;
  const nodes: Addr[] = [];
  for (const p of toPeers(table).peers) nodes.push(p.ip, ...(p.ip6 ? [p.ip6] : []));
  // The VXLAN device's local address is this node's ip in the table (backend.ts creates it so).
  const { self } = splitNodes(conf, table, conf.nodeName ? [] : localAddresses());
  return { port: conf.vxlan.port, nodes, ...(self ? { local: self.ip } : {}) };
}

/** False (and a warning) when the host cannot install it: ADD goes on without. */
/** What the marker says was installed: a guard of an earlier release (no encapsulation rules) is replaced. */
const GUARD_VERSION = 'nftables encap 2\n';

export function ensureNetworkGuard(conf: NetConf): boolean {
  if (existsSync(marker(conf)) && readFileSync(marker(conf), 'utf8') === GUARD_VERSION) return true;
  let table: NodeEntry[] = [];
  try {
    table = conf.backend === 'vxlan' ? nodeTable(conf) : [];
  } catch {
    // unreadable: the backend keeps its last good table, and refreshes the guard from it
  }
  try {
    ensureGuard(masqTag(conf), conf.hostVethPrefix, encapOf(conf, table));
  } catch (e) {
    log.warn('no source validation for packets that reach the host stack', { reason: (e as Error).message });
    return false;
  }
  mkdirs('/run/twill', 0o700);
  writeAtomic(marker(conf), GUARD_VERSION);
  log.info('source validation installed', { table: `inet twill_guard_${masqTag(conf)}` });
  return true;
}

export function removeNetworkGuard(conf: NetConf): void {
  removeGuard(masqTag(conf));
  rmSync(marker(conf), { force: true });
}

/** The node table changed (the backend was reprogrammed from it): the guard's node set follows. */
export function refreshNetworkGuard(conf: NetConf, table: NodeEntry[]): void {
  if (!existsSync(marker(conf))) return;
  try {
    ensureGuard(masqTag(conf), conf.hostVethPrefix, encapOf(conf, table));
  } catch (e) {
    log.warn('guard not refreshed with the node table', { reason: (e as Error).message });
  }
}
