// The per-network lock: orders what ADD sets up once for a network (pinned maps and program,
// the guard table, egress masquerade) against the DEL that finds the network's last pod gone
// and takes it all down. Held only around those steps, never across a whole verb.
import { mkdirs } from '../fsx.js';
import { fileName } from '../naming.js';
import { lockFile } from '../sys/flock.js';

export function withNetworkLock<T>(stateDir: string, network: string, fn: () => T): T {
  const dir = `${stateDir}/locks`;
  mkdirs(dir, 0o700);
  const unlock = lockFile(`${dir}/${fileName(network)}.lock`);
  try {
    return fn();
  } finally {
    unlock();
  }
}

/** The node-wide lock: what every network shares (the Service hooks and maps), set up once per node. */
export function withNodeLock<T>(stateDir: string, fn: () => T): T {
  const dir = `${stateDir}/locks`;
  mkdirs(dir, 0o700);
  const unlock = lockFile(`${dir}/node.lock`);
  try {
    return fn();
  } finally {
    unlock();
  }
}
