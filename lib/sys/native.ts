// Loads the FFI addon (koffi). Inside the single executable it travels as an asset and is
// written once to a content-addressed cache file, then dlopen'ed; in development it is
// taken from node_modules. Nothing is downloaded at run time.
import { closeSync, lstatSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { mkdirs } from '../fsx.js';

declare const TWILL_KOFFI_SHA256: string | undefined;

/** The part of koffi's API twill uses. */
export interface Koffi {
  load(path: string): { func(signature: string): (...args: unknown[]) => number | bigint };
  errno(): number;
  /** Address of a Buffer's memory (stable: Node never moves a Buffer's backing store). */
  address(value: unknown): bigint;
  /** An ArrayBuffer over raw memory (mmap'ed), without a copy. */
  view(ptr: unknown, len: number): ArrayBuffer;
  version: string;
}

const ASSET = 'koffi.node';
let cached: Koffi | undefined;

/**
 * The directory the addon is extracted to: root's is under /run (only root can write there);
 * anyone else's under $TMPDIR, where another local user could have planted it first — so it
 * must be a real directory owned by us and writable by nobody else, or it is not used.
 */
function cacheDir(): string {
  const uid = process.getuid?.() ?? -1;
  const dir = uid === 0 ? '/run/twill/cache' : `${process.env.TMPDIR ?? '/tmp'}/twill-${uid}`;
  mkdirs(dir, 0o700);
  const st = lstatSync(dir);
  if (!st.isDirectory() || st.uid !== uid || (st.mode & 0o022) !== 0) {
    throw new Error(`refusing the addon cache ${dir}: not a directory owned by uid ${uid} and writable only by it`);
  }
  return dir;
}

/** A cached addon is used only if it is a regular file of ours that nobody else can write. */
function trusted(path: string, uid: number): boolean {
  const st = lstatSync(path, { throwIfNoEntry: false });
  if (!st) return false;
  if (!st.isFile() || st.uid !== uid || (st.mode & 0o022) !== 0) throw new Error(`refusing the cached addon ${path}: not a regular file owned by uid ${uid} and writable only by it`);
  return true;
}

const sha256 = (b: Buffer): string => process.getBuiltinModule('node:crypto').createHash('sha256').update(b).digest('hex');

interface Assets {
  getRawAsset(name: string): ArrayBuffer;
}

declare global {
  /** Set by the Bun build's entry (scripts/bun-main.cjs): asset name → its path inside the executable. */
  var __twillAssets: Readonly<Record<string, string>> | undefined;
}

/** The executable's own assets: a Node single-executable's, or a Bun-compiled one's. */
const sea = (): Assets | undefined => {
  const bun = globalThis.__twillAssets;
  if (bun) {
    return {
      getRawAsset: (name) => {
        const path = bun[name];
        if (!path) throw new Error(`the executable has no asset ${name}`);
        const b = readFileSync(path);
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
    if (uid === 0 || sha256(readFileSync(path)) === TWILL_KOFFI_SHA256) return path;
    unlinkSync(path);
  }
  const bytes = Buffer.from(sea()!.getRawAsset(ASSET));
  if (sha256(bytes) !== TWILL_KOFFI_SHA256) throw new Error('embedded FFI addon is corrupt');
  const tmp = `${path}.${process.pid}.tmp`;
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    writeSync(fd, bytes);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  return path;
}

function fromNodeModules(): string {
  const req = createRequire(typeof TWILL_KOFFI_SHA256 === 'undefined' ? import.meta.url : `${process.cwd()}/package.json`);
  return req.resolve(`@koromix/koffi-linux-${process.arch}/linux_${process.arch}/koffi.node`);
}

export { sea as seaApi };

export function koffi(): Koffi {
  if (cached) return cached;
  const path = fromSea() ?? fromNodeModules();
  const mod = { exports: {} as Koffi };
  process.dlopen(mod, path);
  cached = mod.exports;
  return cached;
}
