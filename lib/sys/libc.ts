// The few libc calls Node does not offer, bound lazily through koffi.
import { koffi } from './native.js';

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

type Fn = (...args: unknown[]) => number | bigint;
interface Libc {
  socket: Fn; bind: Fn; send: Fn; recv: Fn; close: Fn; setns: Fn; flock: Fn; syscall: Fn; ioctl: Fn; mount: Fn; statfs: Fn;
  spawn: Fn; faInit: Fn; faOpen: Fn; faDup2: Fn; attrInit: Fn; attrSetFlags: Fn;
  mmap: (...args: unknown[]) => unknown; munmap: Fn; clockGettime: Fn; sysconf: Fn;
}
let bound: Libc | undefined;

export function libc(): Libc {
  if (bound) return bound;
  const lib = koffi().load('libc.so.6');
  bound = {
    socket: lib.func('int socket(int, int, int)'),
    bind: lib.func('int bind(int, const void *, uint32_t)'),
    send: lib.func('long send(int, const void *, size_t, int)'),
    recv: lib.func('long recv(int, _Out_ void *, size_t, int)'),
    close: lib.func('int close(int)'),
    setns: lib.func('int setns(int, int)'),
    flock: lib.func('int flock(int, int)'),
    // Declared with fixed arguments: on Linux x86-64 and arm64 a variadic callee reads
    // integer arguments from the same registers.
    syscall: lib.func('long syscall(long, long, void *, unsigned long)'),
    mount: lib.func('int mount(const char *, const char *, const char *, unsigned long, const char *)'),
    statfs: lib.func('int statfs(const char *, _Out_ void *)'),
    // posix_spawn: a detached helper without loading child_process (and with it net, dgram…).
    spawn: lib.func('int posix_spawn(_Out_ int *pid, const char *path, void *fa, void *attr, const char **argv, const char **envp)'),
    faInit: lib.func('int posix_spawn_file_actions_init(_Inout_ void *)'),
    faOpen: lib.func('int posix_spawn_file_actions_addopen(_Inout_ void *, int, const char *, int, unsigned int)'),
    faDup2: lib.func('int posix_spawn_file_actions_adddup2(_Inout_ void *, int, int)'),
    attrInit: lib.func('int posix_spawnattr_init(_Inout_ void *)'),
    attrSetFlags: lib.func('int posix_spawnattr_setflags(_Inout_ void *, short)'),
    ioctl: lib.func('int ioctl(int, unsigned long, void *)'),
    mmap: lib.func('void *mmap(void *, size_t, int, int, int, long)'),
    munmap: lib.func('int munmap(void *, size_t)'),
    clockGettime: lib.func('int clock_gettime(int, _Out_ void *)'),
    sysconf: lib.func('long sysconf(int)'),
  };
  return bound;
}

export const errno = (): number => koffi().errno();

/** The result of a libc call; throws SysError with errno on -1. */
export function check(call: string, r: number | bigint): number {
  const n = Number(r);
  if (n < 0) throw new SysError(call, errno());
  return n;
}

const CLOCK_MONOTONIC = 1;
/** CLOCK_MONOTONIC in nanoseconds: the clock of bpf_ktime_get_ns(). */
export function monotonicNs(): bigint {
  const ts = Buffer.alloc(16);
  check('clock_gettime', libc().clockGettime(CLOCK_MONOTONIC, ts));
  return ts.readBigInt64LE(0) * 1_000_000_000n + ts.readBigInt64LE(8);
}
