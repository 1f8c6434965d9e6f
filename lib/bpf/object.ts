// The precompiled BPF objects: inside the executable as assets, or bpf/ in a checkout.
import { readFileSync } from '../sys/fs.js';
import { seaApi } from '../sys/native.js';

declare const TWILL_BPF_SHA256: string | undefined;

export const OBJECT_NAME = 'twill_tc.o';

export interface BpfObjectBytes {
  bytes: Buffer;
  sha256: string;
}

const cached = new Map<string, BpfObjectBytes>();

const sha256 = (b: Buffer): string => process.getBuiltinModule('node:crypto').createHash('sha256').update(b).digest('hex');

/** The object file a manifest entry names (lib/bpf/manifest.ts), by its file name. */
export function bpfObject(file: string): BpfObjectBytes {
  const hit = cached.get(file);
  if (hit) return hit;
  const sea = seaApi();
  let obj: BpfObjectBytes;
  if (typeof TWILL_BPF_SHA256 !== 'undefined' && sea) {
    const bytes = Buffer.from(sea.getRawAsset(file));
    // The build computed the tc object's hash; any other is hashed here (a few hundred µs).
    obj = { bytes, sha256: file === OBJECT_NAME ? TWILL_BPF_SHA256 : sha256(bytes) };
  } else {
    // Development (build/lib/bpf/object.js → <repo>/bpf/), or the bundle warming up at build time.
    const here = (): string => process.getBuiltinModule('node:url').fileURLToPath(new URL('.', import.meta.url));
    const override = file === OBJECT_NAME ? process.env.TWILL_BPF_OBJECT : undefined;
    const path = typeof TWILL_BPF_SHA256 !== 'undefined' ? `${process.cwd()}/bpf/${file}` : (override ?? `${here()}../../../bpf/${file}`);
    const bytes = readFileSync(path);
    obj = { bytes, sha256: sha256(bytes) };
  }
  cached.set(file, obj);
  return obj;
}

export const tcObject = (): BpfObjectBytes => bpfObject(OBJECT_NAME);
