// Loads the FFI addon (koffi). Inside the single executable it travels as an asset and is
// written once to a content-addressed cache file, then dlopen'ed; in development it is
// taken from node_modules. Nothing is downloaded at run time.
import { closeSync, existsSync, openSync, renameSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { mkdirs } from '../fsx.js';

declare const TWILL_KOFFI_SHA256: string | undefined;

/** The part of koffi's API twill uses. */
export interface Koffi {
  load(path: string): { func(signature: string): (...args: unknown[]) => number | bigint };
  errno(): number;
  /** Address of a Buffer's memory (stable: Node never moves a Buffer's backing store). */
  address(value: Buffer): bigint;
  version: string;
}

const ASSET = 'koffi.node';
let cached: Koffi | undefined;

function cacheDir(): string {
  const dir = process.getuid?.() === 0 ? '/run/twill/cache' : `${process.env.TMPDIR ?? '/tmp'}/twill-${process.getuid?.() ?? 'u'}`;
  mkdirs(dir, 0o700);
  return dir;
}

const sea = (): { isSea(): boolean; getRawAsset(name: string): ArrayBuffer } | undefined => {
  const m = process.getBuiltinModule('node:sea') as { isSea(): boolean; getRawAsset(name: string): ArrayBuffer } | undefined;
  return m?.isSea() ? m : undefined;
};

function fromSea(): string | undefined {
  // The bundle also runs outside the executable once, at build time, to warm its code cache.
  if (typeof TWILL_KOFFI_SHA256 === 'undefined' || !sea()) return undefined;
  const path = `${cacheDir()}/koffi-${TWILL_KOFFI_SHA256.slice(0, 16)}.node`;
  if (existsSync(path)) return path;
  const bytes = Buffer.from(sea()!.getRawAsset(ASSET));
  // Only on first extraction: node:crypto is expensive to load.
  const { createHash } = process.getBuiltinModule('node:crypto');
  if (createHash('sha256').update(bytes).digest('hex') !== TWILL_KOFFI_SHA256) throw new Error('embedded FFI addon is corrupt');
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
