// The synchronous file-system calls twill makes, as system calls (lib/sys/syscall.ts), with
// node:fs's names, signatures and errors (code, errno, syscall, path) for the subset used:
// what lib/sys/fs.ts stands on under Bun.
import { cstr, errno, syscall } from './syscall.js';

const AT_FDCWD = -100;
const AT_SYMLINK_NOFOLLOW = 0x100;
const AT_REMOVEDIR = 0x200;
const AT_EMPTY_PATH = 0x1000;
const EINTR = 4;
const arm = process.arch === 'arm64';

export const constants = {
  O_RDONLY: 0, O_WRONLY: 1, O_RDWR: 2, O_CREAT: 0o100, O_EXCL: 0o200, O_NOCTTY: 0o400, O_TRUNC: 0o1000, O_APPEND: 0o2000,
  O_NONBLOCK: 0o4000, O_DIRECTORY: arm ? 0o40000 : 0o200000, O_NOFOLLOW: arm ? 0o100000 : 0o400000, O_CLOEXEC: 0o2000000,
  F_OK: 0, X_OK: 1, W_OK: 2, R_OK: 4,
  S_IFMT: 0o170000, S_IFREG: 0o100000, S_IFDIR: 0o40000, S_IFLNK: 0o120000, S_IFIFO: 0o10000, S_IFSOCK: 0o140000, S_IFCHR: 0o20000, S_IFBLK: 0o60000,
} as const;
const C = constants;

const ERRORS: Record<number, [string, string]> = {
  1: ['EPERM', 'operation not permitted'], 2: ['ENOENT', 'no such file or directory'], 3: ['ESRCH', 'no such process'],
  4: ['EINTR', 'interrupted system call'], 5: ['EIO', 'i/o error'], 6: ['ENXIO', 'no such device or address'],
  9: ['EBADF', 'bad file descriptor'], 11: ['EAGAIN', 'resource temporarily unavailable'], 12: ['ENOMEM', 'not enough memory'],
  13: ['EACCES', 'permission denied'], 16: ['EBUSY', 'resource busy or locked'], 17: ['EEXIST', 'file already exists'],
  18: ['EXDEV', 'cross-device link not permitted'], 19: ['ENODEV', 'no such device'], 20: ['ENOTDIR', 'not a directory'],
  21: ['EISDIR', 'illegal operation on a directory'], 22: ['EINVAL', 'invalid argument'], 23: ['ENFILE', 'file table overflow'],
  24: ['EMFILE', 'too many open files'], 26: ['ETXTBSY', 'text file is busy'], 27: ['EFBIG', 'file too large'],
  28: ['ENOSPC', 'no space left on device'], 30: ['EROFS', 'read-only file system'], 31: ['EMLINK', 'too many links'],
  32: ['EPIPE', 'broken pipe'], 36: ['ENAMETOOLONG', 'name too long'], 39: ['ENOTEMPTY', 'directory not empty'],
  40: ['ELOOP', 'too many symbolic links encountered'], 95: ['ENOTSUP', 'operation not supported on socket'], 122: ['EDQUOT', 'disk quota exceeded'],
};

/** A failed call, shaped as node:fs reports one (errno negative, as libuv's). */
export class FsError extends Error {
  readonly errno: number;
  readonly code: string;
  constructor(readonly syscall: string, err: number, readonly path?: string, readonly dest?: string) {
    const [code, desc] = ERRORS[err] ?? [`E${err}`, `errno ${err}`];
    super(`${code}: ${desc}, ${syscall}${path === undefined ? '' : ` '${path}'`}${dest === undefined ? '' : ` -> '${dest}'`}`);
    this.errno = -err;
    this.code = code;
  }
}

/** Runs a system call again while a signal interrupts it; throws FsError on failure. */
function call(name: string, run: () => number, path?: string, dest?: string): number {
  for (;;) {
    const r = run();
    if (r >= 0) return r;
    const e = errno();
    if (e !== EINTR) throw new FsError(name, e, path, dest);
  }
}

const FLAGS: Record<string, number> = {
  r: C.O_RDONLY, 'r+': C.O_RDWR, w: C.O_TRUNC | C.O_CREAT | C.O_WRONLY, wx: C.O_TRUNC | C.O_CREAT | C.O_WRONLY | C.O_EXCL,
  'w+': C.O_TRUNC | C.O_CREAT | C.O_RDWR, a: C.O_APPEND | C.O_CREAT | C.O_WRONLY, ax: C.O_APPEND | C.O_CREAT | C.O_WRONLY | C.O_EXCL,
  'a+': C.O_APPEND | C.O_CREAT | C.O_RDWR,
};

/** open(2); every descriptor is close-on-exec, as node:fs opens them. */
export function openSync(path: string, flags: string | number = 'r', mode = 0o666): number {
  const f = typeof flags === 'number' ? flags : FLAGS[flags];
  if (f === undefined) throw new TypeError(`unknown file open flags ${flags}`);
  const p = cstr(path);
  return call('open', () => syscall('openat', AT_FDCWD, p, f | C.O_CLOEXEC, mode), path);
}

export function closeSync(fd: number): void {
  // Not retried on EINTR: Linux has closed the descriptor by then.
  if (syscall('close', fd) < 0 && errno() !== EINTR) throw new FsError('close', errno());
}

/** read(2) at the file's position, or pread(2) at position. */
export function readSync(fd: number, buf: Buffer, offset = 0, length = buf.length - offset, position: number | null = null): number {
  if (length <= 0) return 0;
  const at = buf.subarray(offset, offset + length);
  return call('read', () => (position === null ? syscall('read', fd, at, at.length) : syscall('pread64', fd, at, at.length, position)));
}

/** write(2): a string whole, or length bytes of a Buffer from offset; how many were written. */
export function writeSync(fd: number, data: Buffer | string, offset = 0, length?: number): number {
  const b = typeof data === 'string' ? Buffer.from(data) : data.subarray(offset, length === undefined ? undefined : offset + length);
  if (b.length === 0) return 0;
  return call('write', () => syscall('write', fd, b, b.length));
}

export function fsyncSync(fd: number): void {
  call('fsync', () => syscall('fsync', fd));
}

type Encoding = 'utf8' | 'utf-8';
/** The whole file (or what a descriptor has left): files under /proc and /sys say size 0. */
export function readFileSync(path: string | number): Buffer;
export function readFileSync(path: string | number, encoding: Encoding): string;
export function readFileSync(path: string | number, encoding?: Encoding): Buffer | string {
  const fd = typeof path === 'number' ? path : openSync(path, 'r');
  try {
    const chunks: Buffer[] = [];
    let size = 0;
    for (let chunk = Buffer.allocUnsafe(16384); ; ) {
      const n = readSync(fd, chunk, 0, chunk.length);
      if (n === 0) break;
      chunks.push(chunk.subarray(0, n));
      size += n;
      if (n === chunk.length) chunk = Buffer.allocUnsafe(Math.min(chunk.length * 2, 1 << 22));
      else chunk = chunk.subarray(n);
    }
    const all = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
    return encoding ? all.toString('utf8') : all;
  } finally {
    if (typeof path !== 'number') closeSync(fd);
  }
}

export function writeFileSync(path: string, data: string | Buffer, opts: { mode?: number } = {}): void {
  const fd = openSync(path, 'w', opts.mode ?? 0o666);
  try {
    const b = typeof data === 'string' ? Buffer.from(data) : data;
    for (let off = 0; off < b.length; ) off += writeSync(fd, b, off);
  } finally {
    closeSync(fd);
  }
}

export function renameSync(from: string, to: string): void {
  const a = cstr(from), b = cstr(to);
  call('rename', () => syscall('renameat2', AT_FDCWD, a, AT_FDCWD, b, 0), from, to);
}

export function linkSync(existing: string, path: string): void {
  const a = cstr(existing), b = cstr(path);
  call('link', () => syscall('linkat', AT_FDCWD, a, AT_FDCWD, b, 0), existing, path);
}

export function unlinkSync(path: string): void {
  const p = cstr(path);
  call('unlink', () => syscall('unlinkat', AT_FDCWD, p, 0), path);
}

export function rmdirSync(path: string): void {
  const p = cstr(path);
  call('rmdir', () => syscall('unlinkat', AT_FDCWD, p, AT_REMOVEDIR), path);
}

/** mkdir(2); recursive makes the missing parents and accepts an existing directory. */
export function mkdirSync(path: string, opts: { mode?: number; recursive?: boolean } = {}): void {
  const mode = opts.mode ?? 0o777;
  const one = (p: string): void => {
    const c = cstr(p);
    call('mkdir', () => syscall('mkdirat', AT_FDCWD, c, mode), p);
  };
  if (!opts.recursive) return one(path);
  let at = path.startsWith('/') ? '' : '.';
  for (const part of path.split('/').filter(Boolean)) {
    at += `/${part}`;
    try {
      one(at);
    } catch (e) {
      if (!(e instanceof FsError && e.code === 'EEXIST' && statSync(at).isDirectory())) throw e;
    }
  }
}

export function chmodSync(path: string, mode: number): void {
  const p = cstr(path);
  call('chmod', () => syscall('fchmodat', AT_FDCWD, p, mode), path);
}

/** access(2) with the real uid, as node:fs's. */
export function accessSync(path: string, mode: number = C.F_OK): void {
  const p = cstr(path);
  call('access', () => syscall('faccessat', AT_FDCWD, p, mode), path);
}

/** Whether path exists; false for a path no call could take (a NUL in it), as node:fs says. */
export function existsSync(path: string): boolean {
  return !path.includes('\0') && syscall('faccessat', AT_FDCWD, cstr(path), C.F_OK) === 0;
}

/** The names in a directory but . and .., sorted (node:fs's order: libuv sorts them). */
export function readdirSync(path: string): string[] {
  const p = cstr(path);
  const fd = call('scandir', () => syscall('openat', AT_FDCWD, p, C.O_RDONLY | C.O_DIRECTORY | C.O_CLOEXEC, 0), path);
  try {
    const names: string[] = [];
    const buf = Buffer.alloc(32768);
    for (;;) {
      const n = call('scandir', () => syscall('getdents64', fd, buf, buf.length), path);
      if (n === 0) break;
      for (let off = 0; off < n; ) {
        const reclen = buf.readUInt16LE(off + 16);
        const end = buf.indexOf(0, off + 19);
        const name = buf.toString('utf8', off + 19, end < 0 || end > off + reclen ? off + reclen : end);
        if (name !== '.' && name !== '..') names.push(name);
        off += reclen;
      }
    }
    return names.sort();
  } finally {
    closeSync(fd);
  }
}

/** The fields of struct statx twill reads. */
export class Stats {
  constructor(
    readonly mode: number,
    readonly uid: number,
    readonly gid: number,
    readonly nlink: number,
    readonly ino: bigint,
    readonly size: number,
    readonly dev: number,
    readonly mtimeMs: number,
  ) {}
  private is(type: number): boolean {
    return (this.mode & C.S_IFMT) === type;
  }
  isFile(): boolean {
    return this.is(C.S_IFREG);
  }
  isDirectory(): boolean {
    return this.is(C.S_IFDIR);
  }
  isSymbolicLink(): boolean {
    return this.is(C.S_IFLNK);
  }
  isFIFO(): boolean {
    return this.is(C.S_IFIFO);
  }
  isSocket(): boolean {
    return this.is(C.S_IFSOCK);
  }
  isCharacterDevice(): boolean {
    return this.is(C.S_IFCHR);
  }
  isBlockDevice(): boolean {
    return this.is(C.S_IFBLK);
  }
}

const STATX_BASIC_STATS = 0x7ff;
function statx(name: string, dirfd: number, path: string, flags: number, label?: string): Stats {
  const b = Buffer.alloc(256);
  const p = cstr(path);
  call(name, () => syscall('statx', dirfd, p, flags, STATX_BASIC_STATS, b), label);
  const mtime = Number(b.readBigInt64LE(112)) * 1000 + b.readUInt32LE(120) / 1e6;
  return new Stats(b.readUInt16LE(28), b.readUInt32LE(20), b.readUInt32LE(24), b.readUInt32LE(16), b.readBigUInt64LE(32), Number(b.readBigUInt64LE(40)), b.readUInt32LE(136) * 2 ** 32 + b.readUInt32LE(140), mtime);
}

const missing = (e: unknown): boolean => e instanceof FsError && (e.code === 'ENOENT' || e.code === 'ENOTDIR');

/** stat or lstat; with throwIfNoEntry false, a missing path is undefined (node:fs's rule). */
function statPath(name: 'stat' | 'lstat', flags: number, path: string, opts?: { throwIfNoEntry: false }): Stats | undefined {
  try {
    return statx(name, AT_FDCWD, path, flags, path);
  } catch (e) {
    if (opts && missing(e)) return undefined;
    throw e;
  }
}

export function statSync(path: string): Stats;
export function statSync(path: string, opts: { throwIfNoEntry: false }): Stats | undefined;
export function statSync(path: string, opts?: { throwIfNoEntry: false }): Stats | undefined {
  return statPath('stat', 0, path, opts);
}

export function lstatSync(path: string): Stats;
export function lstatSync(path: string, opts: { throwIfNoEntry: false }): Stats | undefined;
export function lstatSync(path: string, opts?: { throwIfNoEntry: false }): Stats | undefined {
  return statPath('lstat', AT_SYMLINK_NOFOLLOW, path, opts);
}

export function fstatSync(fd: number): Stats {
  return statx('fstat', fd, '', AT_EMPTY_PATH);
}

/** rm: a file, or with recursive a directory and what it holds; force: a missing path is fine. */
export function rmSync(path: string, opts: { force?: boolean; recursive?: boolean } = {}): void {
  const st = opts.force ? lstatSync(path, { throwIfNoEntry: false }) : lstatSync(path);
  if (!st) return;
  if (!st.isDirectory()) return unlinkSync(path);
  if (!opts.recursive) throw new FsError('rm', 21, path);
  for (const name of readdirSync(path)) rmSync(`${path}/${name}`, { recursive: true, force: true });
  rmdirSync(path);
}

/** A copy of a file's bytes and permission bits. */
export function copyFileSync(from: string, to: string): void {
  const mode = statSync(from).mode & 0o7777;
  writeFileSync(to, readFileSync(from), { mode });
  chmodSync(to, mode);
}
