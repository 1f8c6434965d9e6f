// The precompiled tc object: inside the executable as an asset, or bpf/ in a checkout.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

declare const TWILL_BPF_SHA256: string | undefined;

export const OBJECT_NAME = 'twill_tc.o';

export interface BpfObjectBytes {
  bytes: Buffer;
  sha256: string;
}

let cached: BpfObjectBytes | undefined;

export function tcObject(): BpfObjectBytes {
  if (cached) return cached;
  if (typeof TWILL_BPF_SHA256 !== 'undefined') {
    const sea = process.getBuiltinModule('node:sea') as { getRawAsset(name: string): ArrayBuffer };
    cached = { bytes: Buffer.from(sea.getRawAsset(OBJECT_NAME)), sha256: TWILL_BPF_SHA256 };
    return cached;
  }
  // Development: build/lib/bpf/object.js → <repo>/bpf/twill_tc.o
  const path = process.env.TWILL_BPF_OBJECT ?? resolve(dirname(fileURLToPath(import.meta.url)), '../../../bpf', OBJECT_NAME);
  const bytes = readFileSync(path);
  cached = { bytes, sha256: createHash('sha256').update(bytes).digest('hex') };
  return cached;
}
