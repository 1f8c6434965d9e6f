// The few libc calls Node and Bun do not offer, over lib/sys/syscall.ts.
import { native, type Fn } from './native.js';
import { cstr, errno, syscall } from './syscall.js';

export class SysError extends Error {
  constructor(
    readonly call: string,
    readonly errno: number,
  ) {
    super(`${call}: ${errnoName(errno)}`);
  }
}

const NAMES: Record<number, string> = {
  1: 'EPERM (operation not permitted)', 2: 'ENOENT (no such file or directory)', 3: 'ESRCH', 9: 'EBADF', 11: 'EAGAIN', 12: 'ENOMEM',
  13: 'EACCES (permission denied)', 16: 'EBUSY', 17: 'EEXIST (already exists)', 19: 'ENODEV (no such device)', 22: 'EINVAL (invalid argument)',
  28: 'ENOSPC', 34: 'ERANGE', 95: 'EOPNOTSUPP (not supported)', 97: 'EAFNOSUPPORT', 99: 'EADDRNOTAVAIL', 101: 'ENETUNREACH (network unreachable)',
  105: 'ENOBUFS', 113: 'EHOSTUNREACH',
};
export const errnoName = (e: number): string => NAMES[e] ?? `errno ${e}`;

export const EPERM = 1;
export const EEXIST = 17;
export const ENOENT = 2;
export const ENODEV = 19;
export const ESRCH = 3;
export const EADDRNOTAVAIL = 99;
export const EINVAL = 22;
export const ENETUNREACH = 101;
export const EHOSTUNREACH = 113;

interface Libc {
  socket(domain: number, type: number, protocol: number): number;
  bind(fd: number, addr: Buffer, len: number): number;
  send(fd: number, buf: Buffer, len: number, flags: number): number;
  recv(fd: number, buf: Buffer, len: number, flags: number): number;
  close(fd: number): number;
  setns(fd: number, nstype: number): number;
  flock(fd: number, op: number): number;
  ioctl(fd: number, req: number, arg: Buffer): number;
  mount(source: string, target: string, fstype: string, flags: number, data: string): number;
  statfs(path: string, buf: Buffer): number;
  /** bpf(2) */
  bpf(cmd: number, attr: Buffer, size: number): number;
  /** The mapping's address, or -1 (MAP_FAILED). */
  mmap(addr: null, len: number, prot: number, flags: number, fd: number, offset: number): number;
  munmap(addr: number, len: number): number;
  clockGettime(clock: number, ts: Buffer): number;
  /** posix_spawn(pid, path, file_actions, attr, argv, envp): argv and envp end with null. */
  spawn(pid: Buffer, path: string, fa: Buffer, attr: Buffer, argv: (string | null)[], envp: (string | null)[]): number;
  faInit(fa: Buffer): number;
  faOpen(fa: Buffer, fd: number, path: string, flags: number, mode: number): number;
  faDup2(fa: Buffer, fd: number, to: number): number;
  attrInit(attr: Buffer): number;
  attrSetFlags(attr: Buffer, flags: number): number;
}

/** A NULL-terminated array of C strings; the strings stay reachable through keep. */
function cstrArray(items: (string | null)[], keep: Buffer[]): Buffer {
  const arr = Buffer.alloc(8 * items.length);
  items.forEach((s, i) => {
    if (s === null) return;
    const b = cstr(s);
    keep.push(b);
    arr.writeBigUInt64LE(native().address(b), 8 * i);
  });
  return arr;
}

let spawnFns: Record<'spawn' | 'faInit' | 'faOpen' | 'faDup2' | 'attrInit' | 'attrSetFlags', Fn> | undefined;
/** posix_spawn and its helpers: bound only by the verbs that start a detached helper. */
function spawning(): NonNullable<typeof spawnFns> {
  const n = native();
  spawnFns ??= {
    spawn: n.fn('posix_spawn', 6), faInit: n.fn('posix_spawn_file_actions_init', 1), faOpen: n.fn('posix_spawn_file_actions_addopen', 5),
    faDup2: n.fn('posix_spawn_file_actions_adddup2', 3), attrInit: n.fn('posix_spawnattr_init', 1), attrSetFlags: n.fn('posix_spawnattr_setflags', 2),
  };
  return spawnFns;
}

const bound: Libc = {
  socket: (d, t, p) => syscall('socket', d, t, p),
  bind: (fd, addr, len) => syscall('bind', fd, addr, len),
  send: (fd, buf, len, flags) => syscall('sendto', fd, buf, len, flags, 0, 0),
  recv: (fd, buf, len, flags) => syscall('recvfrom', fd, buf, len, flags, 0, 0),
  close: (fd) => syscall('close', fd),
  setns: (fd, t) => syscall('setns', fd, t),
  flock: (fd, op) => syscall('flock', fd, op),
  ioctl: (fd, req, arg) => syscall('ioctl', fd, req, arg),
  mount: (src, target, fstype, flags, data) => syscall('mount', cstr(src), cstr(target), cstr(fstype), flags, cstr(data)),
  statfs: (path, buf) => syscall('statfs', cstr(path), buf),
  bpf: (cmd, attr, size) => syscall('bpf', cmd, attr, size),
  mmap: (_addr, len, prot, flags, fd, offset) => syscall('mmap', 0, len, prot, flags, fd, offset),
  munmap: (addr, len) => syscall('munmap', addr, len),
  clockGettime: (clock, ts) => syscall('clock_gettime', clock, ts),
  spawn: (pid, path, fa, attr, argv, envp) => {
    const keep: Buffer[] = [];
    return spawning().spawn(pid, cstr(path), fa, attr, cstrArray(argv, keep), cstrArray(envp, keep));
  },
  faInit: (fa) => spawning().faInit(fa),
  faOpen: (fa, fd, path, flags, mode) => spawning().faOpen(fa, fd, cstr(path), flags, mode),
  faDup2: (fa, fd, to) => spawning().faDup2(fa, fd, to),
  attrInit: (attr) => spawning().attrInit(attr),
  attrSetFlags: (attr, flags) => spawning().attrSetFlags(attr, flags),
};

/** The libc calls Node and Bun do not offer, made as system calls where they are ones. */
export const libc = (): Libc => bound;

export { errno };

/** The result of a libc call; throws SysError with errno on -1. */
export function check(call: string, r: number | bigint): number {
  const n = Number(r);
  if (n < 0) throw new SysError(call, errno());
  return n;
}

let sysconf: Fn | undefined;
/** The page size (sysconf(_SC_PAGESIZE)): mmap offsets of a ring buffer are in pages. */
export function pageSize(): number {
  sysconf ??= native().fn('sysconf', 1);
  return sysconf(30);
}

const CLOCK_MONOTONIC = 1;
/** CLOCK_MONOTONIC in nanoseconds: the clock of bpf_ktime_get_ns(). */
export function monotonicNs(): bigint {
  const ts = Buffer.alloc(16);
  check('clock_gettime', libc().clockGettime(CLOCK_MONOTONIC, ts));
  return ts.readBigInt64LE(0) * 1_000_000_000n + ts.readBigInt64LE(8);
}
