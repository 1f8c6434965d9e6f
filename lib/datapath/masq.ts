// ipMasq of a network: which sources and exemptions, when to install and when to remove.
// A marker under /run (cleared by a reboot, like the rules) keeps ADD from running nft twice.
import { existsSync, rmSync } from '../sys/fs.js';
import type { NetConf } from '../config/types.js';
import { mkdirs, writeAtomic } from '../fsx.js';
import { network, parseCidr, type Cidr } from '../net/ip.js';
import { log } from '../log.js';
import { fnv1a64, runMarker } from '../naming.js';
import { ensureMasq, removeMasq } from '../sys/masq.js';
import { splitNodes, toPeers } from './nodes.js';
import { usableTable } from './nodes.js';
import { rangeSets } from '../ipam/ranges.js';

export const masqTag = (conf: NetConf): string => fnv1a64(conf.name).toString(16).slice(0, 12);
const marker = (conf: NetConf): string => runMarker(conf.stateDir, 'masq', conf.name);

function spec(conf: NetConf, localAddrs: { family: 4 | 6; value: bigint }[]): { sources: Cidr[]; exempt: Cidr[] } {
  const { table } = usableTable(conf);
  const { self } = splitNodes(conf, table, localAddrs);
  const sources = self?.podCIDRs ?? (conf.ipam?.type === 'host-local' ? rangeSets(conf).flat().map((r) => r.subnet) : []);
  const exempt = conf.clusterCIDRs
    ? conf.clusterCIDRs.map((c) => parseCidr(c)).filter((c): c is Cidr => c !== undefined).map(network)
    : [...sources, ...toPeers(table).peers.flatMap((p) => p.podCIDRs)];
  return { sources, exempt };
}

export function ensureNetworkMasq(conf: NetConf, localAddrs: () => { family: 4 | 6; value: bigint }[], force = false): void {
  if (!conf.ipMasq || (!force && existsSync(marker(conf)))) return;
  const how = ensureMasq({ tag: masqTag(conf), ...spec(conf, localAddrs()) });
  mkdirs('/run/twill', 0o700);
  writeAtomic(marker(conf), `${how}\n`);
  log.info('egress masquerade installed', { with: how });
}

export function removeNetworkMasq(conf: NetConf): void {
  removeMasq(masqTag(conf));
  rmSync(marker(conf), { force: true });
  log.info('egress masquerade removed');
}
