// The guard of a network (sys/guard.ts): installed by the network's first ADD of a boot, and
// again by any ADD that finds its table gone or short of rules (`nft flush ruleset`): a marker
// under /run holds the rule count installed, compared over netlink (well under a millisecond)
// rather than by running nft (~5 ms) or reinstalling (~40 ms). `twill sync` refreshes it with
// the node table. Removed by a GC that keeps nothing and by `twill sync --cleanup`. Callers
// hold the network lock. A VXLAN network never runs without it: without nft, ADD refuses.
import { existsSync, readFileSync, rmSync } from '../sys/fs.js';
import { Code, CniError } from '../cni/errors.js';
import type { NetConf } from '../config/types.js';
import { mkdirs, writeAtomic } from '../fsx.js';
import { log } from '../log.js';
import { runMarker } from '../naming.js';
import { ensureGuard, guardRuleCount, guardTable, guardUnavailable, removeGuard, type GuardEncap } from '../sys/guard.js';
import type { Addr } from '../net/ip.js';
import type { NodeEntry } from '../config/types.js';
import { localAddresses } from '../sys/podlink.js';
import { masqTag } from './masq.js';
import { splitNodes, toPeers } from './nodes.js';
import { usableTable } from './nodes.js';

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

/** What the marker says was installed: a guard of an earlier release (other rules) is replaced. */
const GUARD_VERSION = 'nftables encap 3';
/** Written when the guard was built without a node table: not current, the next ADD or sync rebuilds it. */
const STALE = 'stale';

function readMarker(conf: NetConf): { version: string; rules: string } | undefined {
  try {
    const [version = '', rules = ''] = readFileSync(marker(conf), 'utf8').split('\n');
    return { version, rules };
  } catch {
    return undefined;
  }
}

function writeMarker(conf: NetConf, rules: number | typeof STALE): void {
  mkdirs('/run/twill', 0o700);
  writeAtomic(marker(conf), `${GUARD_VERSION}\n${rules}\n`);
}

/**
 * Why the network cannot have its guard on this host, or undefined: a VXLAN network without
 * it would decapsulate whatever a pod wraps (issue of forged inner sources), so ADD refuses.
 * Other networks go on without (a warning): the guard only repeats the eBPF programs' checks.
 */
export function guardBlocker(conf: NetConf): string | undefined {
  if (conf.backend !== 'vxlan') return undefined;
  const why = guardUnavailable();
  return why && `a VXLAN network needs its nftables guard (no pod may send into the overlay), and it cannot be installed: ${why}`;
}

/** The guard the marker records is not in the kernel any more (flushed, emptied), or is stale. */
export function guardMissing(conf: NetConf): string | undefined {
  const m = readMarker(conf);
  if (!m) return undefined;
  if (m.version !== GUARD_VERSION) return 'installed by an earlier release; the next ADD or `twill sync` replaces it';
  if (m.rules === STALE) return 'built without a readable node table; the next ADD or `twill sync` rebuilds it';
  const have = guardRuleCount(masqTag(conf));
  if (have !== Number(m.rules)) return `table inet ${guardTable(masqTag(conf))} holds ${have} of its ${m.rules} rules (flushed?); the next ADD or \`twill sync\` reinstalls it`;
  return undefined;
}

/**
 * Installs the guard unless the one installed is current and whole. On a VXLAN network a guard
 * that cannot be installed fails the ADD (code 50); elsewhere it is a warning and false.
 */
export function ensureNetworkGuard(conf: NetConf): boolean {
  const m = readMarker(conf);
  if (m && m.version === GUARD_VERSION && m.rules !== STALE && guardRuleCount(masqTag(conf)) === Number(m.rules)) return true;
  let table: NodeEntry[] | undefined = [];
  if (conf.backend === 'vxlan') {
    try {
      table = usableTable(conf).table; // the last good table when the current one is unreadable
    } catch {
      table = undefined;
    }
  }
  return install(conf, table);
}

/**
 * table undefined: no node table at all. A guard already there is left as it is; else one with
 * no node is installed (no VXLAN in until the table is readable: closed, not open); either way
 * the marker says stale, so the next ADD or sync builds it again.
 */
function install(conf: NetConf, table: NodeEntry[] | undefined): boolean {
  const tag = masqTag(conf);
  try {
    if (!table && guardRuleCount(tag) > 0) {
      log.warn('node table unreadable: the guard keeps the node set it has', { table: `inet ${guardTable(tag)}` });
      writeMarker(conf, STALE);
      return true;
    }
    const rules = ensureGuard(tag, conf.hostVethPrefix, encapOf(conf, table ?? []));
    writeMarker(conf, table ? rules : STALE);
  } catch (e) {
    if (conf.backend === 'vxlan') throw new CniError(Code.NotAvailable, guardBlocker(conf) ?? `the network's nftables guard could not be installed: ${(e as Error).message}`);
    log.warn('no source validation for packets that reach the host stack', { reason: (e as Error).message });
    return false;
  }
  log.info('source validation installed', { table: `inet ${guardTable(tag)}` });
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
    install(conf, table);
  } catch (e) {
    log.warn('guard not refreshed with the node table', { reason: (e as Error).message });
  }
}
