// The bpffs under which pins live: mounted on demand, checked by its filesystem magic.
import { check, libc } from '../sys/libc.js';
import { mkdirs } from '../fsx.js';

const BPF_FS_MAGIC = 0xcafe4a11n;

export function isBpffs(path: string): boolean {
  const buf = Buffer.alloc(128);
  if (Number(libc().statfs(path, buf)) !== 0) return false;
  return buf.readBigUInt64LE(0) === BPF_FS_MAGIC;
}

/** Makes sure root is a bpffs mount, mounting one there if it is not. */
export function ensureBpffs(root: string): void {
  if (isBpffs(root)) return;
  mkdirs(root, 0o700);
  check(`mount bpffs at ${root}`, libc().mount('bpffs', root, 'bpf', 0, 'mode=0700'));
}
