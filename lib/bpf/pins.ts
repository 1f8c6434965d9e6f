// Where pins live and how one is made: a network's under <root>/twill/<network>/, the node's
// (maps and programs every network shares) under <root>/twill-node/ — a sibling, so no
// network name can collide with it and listing networks never meets it.
import { unlinkSync } from '../sys/fs.js';
import { EEXIST, SysError } from '../sys/libc.js';
import { closeFd, objGet, objInfo, objPin } from './sys.js';
import type { Scope } from './manifest.js';

export const networkDir = (root: string, network: string): string => `${root}/twill/${network}`;
export const nodeDir = (root: string): string => `${root}/twill-node`;
export const linksDir = (dir: string): string => `${dir}/links`;

/** The directory a pin of that scope lives in. */
export const scopeDir = (root: string, network: string | undefined, scope: Scope): string => {
  if (scope === 'node') return nodeDir(root);
  if (network === undefined) throw new Error('a network-scoped pin needs a network');
  return networkDir(root, network);
};

export const isErrno = (e: unknown, errno: number): boolean => e instanceof SysError && e.errno === errno;

/** Pins fd at path, or, when another process won the race, adopts the object pinned there. */
export function pinOrAdopt(fd: number, path: string): number {
  try {
    objPin(fd, path);
    return fd;
  } catch (e) {
    if (!isErrno(e, EEXIST)) throw e;
    closeFd(fd);
    const other = objGet(path);
    if (other === undefined) throw new Error(`${path} vanished while pinning`);
    return other;
  }
}

/** Pins fd at path in place of whatever is pinned there. */
export function repin(fd: number, path: string): void {
  try {
    unlinkSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  objPin(fd, path);
}

/** Opens a pin; undefined when absent or not openable (a pin of another kind of object). */
export function openPin(path: string): number | undefined {
  try {
    return objGet(path);
  } catch {
    return undefined;
  }
}

/** A map's layout as bpf_map_info reports it. */
export interface PinnedLayout {
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
  name: string;
  id: number;
}

export function mapLayout(fd: number): PinnedLayout {
  const info = objInfo(fd);
  const raw = info.subarray(24, 40);
  return {
    type: info.readUInt32LE(0), id: info.readUInt32LE(4), keySize: info.readUInt32LE(8), valueSize: info.readUInt32LE(12),
    maxEntries: info.readUInt32LE(16), flags: info.readUInt32LE(20), name: raw.toString('latin1', 0, Math.max(0, raw.indexOf(0))),
  };
}
