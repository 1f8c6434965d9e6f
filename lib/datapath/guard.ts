// The guard of a network (sys/guard.ts): installed by the network's first ADD of a boot (a
// marker under /run keeps later ADDs from running nft); removed by a GC that keeps nothing
// and by `twill sync --cleanup`. Callers hold the network lock.
import { existsSync, rmSync } from '../sys/fs.js';
import type { NetConf } from '../config/types.js';
import { mkdirs, writeAtomic } from '../fsx.js';
import { log } from '../log.js';
import { runMarker } from '../naming.js';
import { ensureGuard, removeGuard } from '../sys/guard.js';
import { masqTag } from './masq.js';

const marker = (conf: NetConf): string => runMarker(conf.stateDir, 'guard', conf.name);

/** False (and a warning) when the host cannot install it: ADD goes on without. */
export function ensureNetworkGuard(conf: NetConf): boolean {
  if (existsSync(marker(conf))) return true;
  try {
    ensureGuard(masqTag(conf), conf.hostVethPrefix);
  } catch (e) {
    log.warn('no source validation for packets that reach the host stack', { reason: (e as Error).message });
    return false;
  }
  mkdirs('/run/twill', 0o700);
  writeAtomic(marker(conf), 'nftables\n');
  log.info('source validation installed', { table: `inet twill_guard_${masqTag(conf)}` });
  return true;
}

export function removeNetworkGuard(conf: NetConf): void {
  removeGuard(masqTag(conf));
  rmSync(marker(conf), { force: true });
}
