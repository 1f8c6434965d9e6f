// System calls by number, through libc's syscall(): one FFI binding for all of them (see
// native.ts for why), and the same few calls on every architecture twill ships for.
import { native, type Arg, type Fn } from './native.js';

const NUMBERS = {
  read: [0, 63], write: [1, 64], pread64: [17, 67], close: [3, 57], ioctl: [16, 29], mmap: [9, 222], munmap: [11, 215],
  socket: [41, 198], bind: [49, 200], sendto: [44, 206], recvfrom: [45, 207], flock: [73, 32], fsync: [74, 82],
  statfs: [137, 43], mount: [165, 40], getdents64: [217, 61], clock_gettime: [228, 113],
  openat: [257, 56], mkdirat: [258, 34], unlinkat: [263, 35], linkat: [265, 37], fchmodat: [268, 53], faccessat: [269, 48],
  setns: [308, 268], renameat2: [316, 276], bpf: [321, 280], statx: [332, 291],
} as const satisfies Record<string, readonly [number, number]>;
export type Syscall = keyof typeof NUMBERS;

const ARCH: Record<string, 0 | 1> = { x64: 0, arm64: 1 };

let call: Fn | undefined;
/** syscall(2): the kernel's answer, or -1 with errno(). */
export function syscall(name: Syscall, ...args: Arg[]): number {
  const a = ARCH[process.arch];
  if (a === undefined) throw new Error(`system calls are not wired for ${process.arch}`);
  call ??= native().fn('syscall', 7);
  const padded: Arg[] = [NUMBERS[name][a], ...args];
  while (padded.length < 7) padded.push(0);
  return call(...padded);
}

export const errno = (): number => native().errno();

/**
 * A NUL-terminated copy of s, for a system call's path or name argument. A NUL inside would
 * make the kernel see a shorter path than the one checked: refused, as node:fs refuses it.
 */
export function cstr(s: string): Buffer {
  if (s.includes('\0')) throw new TypeError(`a path or name with a NUL byte in it: ${JSON.stringify(s)}`);
  return Buffer.from(`${s}\0`);
}
