// The FFI underneath lib/sys: libc functions called with integer and pointer arguments.
// Under Bun it is bun:ffi (part of the runtime); under Node the koffi addon, which inside
// the Node single executable travels as an asset and is written once to a content-addressed
// cache file, then dlopen'ed (in development it is taken from node_modules). Nothing is
// downloaded at run time.
// The addon is found and extracted only under Node, where lib/sys/fs.ts is node:fs itself: it
// takes node:fs directly, since lib/sys/fs.ts rests on this module under Bun.
import { fsHelpers } from './fsx.js';

declare const TWILL_KOFFI_SHA256: string | undefined;

/** An argument: an integer, or a Buffer passed as the address of its bytes. */
export type Arg = number | bigint | Buffer | null;
/** A bound libc function; its result as a number (-1 and errno() on failure, as libc says). */
export type Fn = (...args: Arg[]) => number;

export interface Native {
  readonly name: 'bun:ffi' | 'koffi';
  /** Binds libc's `name`, which takes nargs integer-or-pointer arguments and returns a long. */
  fn(name: string, nargs: number): Fn;
  /** errno as the last failed call left it. */
  errno(): number;
  /** The address of a Buffer's bytes (neither runtime moves a Buffer's backing store). */
  address(b: Buffer): bigint;
  /** An ArrayBuffer over raw memory (mmap'ed), without a copy. */
  view(addr: number, len: number): ArrayBuffer;
}

const LIBC = 'libc.so.6';

interface BunFfi {
  dlopen(lib: string, symbols: Record<string, { args: string[]; returns: string }>): { symbols: Record<string, (...a: (number | bigint)[]) => number | bigint> };
  ptr(b: Buffer): number;
  toArrayBuffer(addr: number, offset: number, len: number): ArrayBuffer;
  read: { i32(addr: number, offset: number): number };
}

/**
 * bun:ffi compiles a trampoline for each symbol it binds (~80 KB of memory each), so the
 * system calls all go through libc's one syscall() (lib/sys/syscall.ts) and errno is read
 * from the thread's errno location, found once before any call can fail.
 */
function bunNative(ffi: BunFfi): Native {
  const bind = (name: string, nargs: number, returns = 'i64_fast'): ((...a: (number | bigint)[]) => number | bigint) =>
    ffi.dlopen(LIBC, { [name]: { args: Array<string>(nargs).fill('i64'), returns } }).symbols[name]!;
  const errnoAt = Number(bind('__errno_location', 0, 'ptr')());
  const arg = (a: Arg): number | bigint => (a === null ? 0 : Buffer.isBuffer(a) ? (a.length === 0 ? 0 : ffi.ptr(a)) : a);
  return {
    name: 'bun:ffi',
    fn(name, nargs) {
      const f = bind(name, nargs);
      return (...args) => Number(f(...args.map(arg)));
    },
    errno: () => ffi.read.i32(errnoAt, 0),
    address: (b) => BigInt(b.length === 0 ? 0 : ffi.ptr(b)),
    view: (addr, len) => ffi.toArrayBuffer(addr, 0, len),
  };
}

interface Koffi {
  load(path: string): { func(signature: string): (...args: unknown[]) => number | bigint };
  errno(): number;
  address(value: unknown): bigint;
  view(ptr: unknown, len: number): ArrayBuffer;
}

function koffiNative(k: Koffi): Native {
  const lib = k.load(LIBC);
  const arg = (a: Arg): number | bigint => (a === null ? 0 : Buffer.isBuffer(a) ? k.address(a) : a);
  return {
    name: 'koffi',
    fn(name, nargs) {
      const f = lib.func(`intptr_t ${name}(${Array<string>(nargs).fill('intptr_t').join(', ')})`);
      return (...args) => Number(f(...args.map(arg)));
    },
    errno: () => k.errno(),
    address: (b) => k.address(b),
    view: (addr, len) => k.view(addr, len),
  };
}

const ASSET = 'koffi.node';

const nodeFs = (): typeof import('node:fs') => process.getBuiltinModule('node:fs');

/**
 * The directory the addon is extracted to: root's is under /run (only root can write there);
 * anyone else's under $TMPDIR, where another local user could have planted it first — so it
 * must be a real directory owned by us and writable by nobody else, or it is not used.
 */
function cacheDir(): string {
  const uid = process.getuid?.() ?? -1;
  const dir = uid === 0 ? '/run/twill/cache' : `${process.env.TMPDIR ?? '/tmp'}/twill-${uid}`;
  fsHelpers(nodeFs()).mkdirs(dir, 0o700);
  const st = nodeFs().lstatSync(dir);
  if (!st.isDirectory() || st.uid !== uid || (st.mode & 0o022) !== 0) {
    throw new Error(`refusing the addon cache ${dir}: not a directory owned by uid ${uid} and writable only by it`);
  }
  return dir;
}

/** A cached addon is used only if it is a regular file of ours that nobody else can write. */
function trusted(path: string, uid: number): boolean {
  const st = nodeFs().lstatSync(path, { throwIfNoEntry: false });
  if (!st) return false;
  if (!st.isFile() || st.uid !== uid || (st.mode & 0o022) !== 0) throw new Error(`refusing the cached addon ${path}: not a regular file owned by uid ${uid} and writable only by it`);
  return true;
}

const sha256 = (b: Buffer): string => process.getBuiltinModule('node:crypto').createHash('sha256').update(b).digest('hex');

interface Assets {
  getRawAsset(name: string): ArrayBuffer;
}

declare global {
  /** Set by the Bun build's entry (tools/build/build-bun.sh): asset name → its bytes. */
  var __twillAssets: Readonly<Record<string, () => Buffer>> | undefined;
}

/** The executable's own assets: a Node single-executable's, or a Bun-compiled one's. */
const sea = (): Assets | undefined => {
  const bun = globalThis.__twillAssets;
  if (bun) {
    return {
      getRawAsset: (name) => {
        const get = bun[name];
        if (!get) throw new Error(`the executable has no asset ${name}`);
        const b = get();
        return b.buffer.slice(b.byteOffset, b.byteOffset + b.length) as ArrayBuffer;
      },
    };
  }
  let m: { isSea(): boolean; getRawAsset(name: string): ArrayBuffer } | undefined;
  try {
    m = process.getBuiltinModule('node:sea') as typeof m;
  } catch {
    m = undefined; // a runtime without node:sea
  }
  return m?.isSea() ? m : undefined;
};

function fromSea(): string | undefined {
  // The bundle also runs outside the executable once, at build time, to warm its code cache.
  if (typeof TWILL_KOFFI_SHA256 === 'undefined' || !sea()) return undefined;
  const uid = process.getuid?.() ?? -1;
  const path = `${cacheDir()}/koffi-${TWILL_KOFFI_SHA256.slice(0, 16)}.node`;
  if (trusted(path, uid)) {
    // root's cache is root's alone; elsewhere the file is checked again before it runs
    // (node:crypto costs ~3 ms: the CNI path, as root, does not pay it).
    if (uid === 0 || sha256(nodeFs().readFileSync(path)) === TWILL_KOFFI_SHA256) return path;
    nodeFs().unlinkSync(path);
  }
  const bytes = Buffer.from(sea()!.getRawAsset(ASSET));
  if (sha256(bytes) !== TWILL_KOFFI_SHA256) throw new Error('embedded FFI addon is corrupt');
  // Whole or not at all: root's cached copy is trusted unchecked, so a short write on a full
  // disk must never leave a truncated addon under its name.
  fsHelpers(nodeFs()).writeAtomic(path, bytes);
  return path;
}

function fromNodeModules(): string {
  const { createRequire } = process.getBuiltinModule('node:module');
  const req = createRequire(typeof TWILL_KOFFI_SHA256 === 'undefined' ? import.meta.url : `${process.cwd()}/package.json`);
  return req.resolve(`@koromix/koffi-linux-${process.arch}/linux_${process.arch}/koffi.node`);
}

export { sea as seaApi };

let bunFfi: BunFfi | undefined | null;
/** bun:ffi when the runtime is Bun. */
function bunRuntimeFfi(): BunFfi | undefined {
  if (bunFfi === undefined) {
    try {
      bunFfi = process.versions.bun === undefined ? null : (process.getBuiltinModule('bun:ffi') as unknown as BunFfi);
    } catch {
      bunFfi = null;
    }
  }
  return bunFfi ?? undefined;
}

let cached: Native | undefined;
/** The FFI of this runtime. The koffi addon is loaded only when the runtime is Node. */
export function native(): Native {
  if (cached) return cached;
  const ffi = bunRuntimeFfi();
  if (ffi) {
    cached = bunNative(ffi);
    return cached;
  }
  const mod = { exports: {} as Koffi };
  process.dlopen(mod, fromSea() ?? fromNodeModules());
  cached = koffiNative(mod.exports);
  return cached;
}
