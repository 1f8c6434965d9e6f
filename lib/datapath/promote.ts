// Pods whose shaping twill cannot know at ADD. In the conflist people copy, only portmap and
// bandwidth declare capabilities, so twill never sees runtimeConfig.bandwidth — and the
// bandwidth plugin runs after twill. Such a pod starts *pending*: published (so its source is
// validated by the other pods' programs and by the guard table) but with no program of its
// own and no fast path to or from it. Once its chain is done — libcni (containerd, CRI-O,
// podman, cnitool) caches the chain's result only after every plugin succeeded — the host
// veth's qdiscs say what the bandwidth plugin did: a shaped pod stays off the fast path so
// its limits hold between local pods too; any other gets its program. This runs in every
// later twill call of the network (ADD, DEL, CHECK, GC) and in `twill sync`, under the
// network lock; with no pending pod it costs one readdir.
import { existsSync, readdirSync, rmSync } from '../sys/fs.js';
import type { NetConf } from '../config/types.js';
import { mkdirs, writeAtomic } from '../fsx.js';
import { log } from '../log.js';
import { pendingDir as dir, readJson } from '../state/files.js';
import { withNetlink } from '../sys/netlink.js';
import { getLinkByIndex } from '../sys/rtnl.js';
import { qdiscKinds } from '../sys/tc.js';
import { ebpfPromote } from './ebpf.js';
import { ebpfNet } from './select.js';

interface Pending {
  containerId: string;
  ifName: string;
  hostIndex: number;
}

export function markPending(conf: NetConf, hostName: string, p: Pending): void {
  mkdirs(dir(conf), 0o700);
  writeAtomic(`${dir(conf)}/${hostName}`, `${JSON.stringify(p)}\n`);
}

export function clearPending(conf: NetConf, hostName: string): void {
  rmSync(`${dir(conf)}/${hostName}`, { force: true });
}

/** Where libcni caches a chain's ADD result (written once every plugin of the chain succeeded). */
const cachedResult = (conf: NetConf, p: Pending): string => `${conf.cniCacheDir}/results/${conf.name}-${p.containerId}-${p.ifName}`;

/** Settles every pending pod whose chain is done; returns what it settled. Call with the network lock held. */
export function promotePending(conf: NetConf): string[] {
  let names: string[];
  try {
    names = readdirSync(dir(conf)).filter((n) => !n.startsWith('.'));
  } catch {
    return [];
  }
  const done: string[] = [];
  for (const hostName of names) {
    const p = readJson<Pending>(`${dir(conf)}/${hostName}`);
    if (!p) {
      clearPending(conf, hostName);
      continue;
    }
    const link = withNetlink((nl) => getLinkByIndex(nl, p.hostIndex));
    if (!link || link.name !== hostName) {
      clearPending(conf, hostName); // the pod is gone
      continue;
    }
    if (!existsSync(cachedResult(conf, p))) continue; // its chain is still running
    const kinds = qdiscKinds(p.hostIndex);
    const shaped = kinds.includes('tbf') || kinds.includes('ingress');
    const how = ebpfPromote(ebpfNet(conf), hostName, p.hostIndex, shaped);
    clearPending(conf, hostName);
    if (how) {
      log.info('pending pod settled', { host: hostName, containerId: p.containerId, how });
      done.push(`${hostName}: ${how}`);
    }
  }
  return done;
}
