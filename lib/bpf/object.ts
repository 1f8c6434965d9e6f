// The precompiled tc object: inside the executable as an asset, or bpf/ in a checkout.
import { readFileSync } from '../sys/fs.js';
import { seaApi } from '../sys/native.js';

declare const TWILL_BPF_SHA256: string | undefined;

export const OBJECT_NAME = 'twill_tc.o';

export interface BpfObjectBytes {
  bytes: Buffer;
  sha256: string;
}

let cached: BpfObjectBytes | undefined;

export function tcObject(): BpfObjectBytes {
  if (cached) return cached;
  const sea = seaApi();
  if (typeof TWILL_BPF_SHA256 !== 'undefined' && sea) {
    cached = { bytes: Buffer.from(sea.getRawAsset(OBJECT_NAME)), sha256: TWILL_BPF_SHA256 };
    return cached;
  }
  // Development (build/lib/bpf/object.js → <repo>/bpf/), or the bundle warming up at build time.
  const here = (): string => process.getBuiltinModule('node:url').fileURLToPath(new URL('.', import.meta.url));
  const path = typeof TWILL_BPF_SHA256 !== 'undefined'
    ? `${process.cwd()}/bpf/${OBJECT_NAME}`
    : (process.env.TWILL_BPF_OBJECT ?? `${here()}../../../bpf/${OBJECT_NAME}`);
  const bytes = readFileSync(path);
  const { createHash } = process.getBuiltinModule('node:crypto');
  cached = { bytes, sha256: createHash('sha256').update(bytes).digest('hex') };
  return cached;
}
