// stdin bytes → validated NetConf, with CNI error codes for each way it can be wrong.
import { Code, CniError } from '../cni/errors.js';
import { isSupported, SUPPORTED_VERSIONS } from '../cni/versions.js';
import type { NetConf } from './types.js';
import { validate } from './validate.generated.js';
import { goKeys } from './gokeys.js';
import { schema } from './schema.js';

export const MAX_CONFIG_BYTES = 1 << 20;

export function parseJson(raw: string): unknown {
  if (raw.length > MAX_CONFIG_BYTES) throw new CniError(Code.DecodeFailure, `network config is larger than ${MAX_CONFIG_BYTES} bytes`);
  try {
    return JSON.parse(raw);
  } catch (e) {
    throw new CniError(Code.DecodeFailure, `network config is not valid JSON: ${(e as Error).message}`);
  }
}

function fieldName(instancePath: string, params: Record<string, unknown>): string {
  const base = instancePath === '' ? '' : instancePath.slice(1).replaceAll('/', '.');
  const extra = typeof params.missingProperty === 'string' ? params.missingProperty : '';
  return [base, extra].filter(Boolean).join('.') || '(root)';
}

/** Schema validation (fills defaults in place) and spec version check. */
export function loadNetConf(raw: string): NetConf {
  const data = parseJson(raw);
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw new CniError(Code.DecodeFailure, 'network config must be a JSON object');
  }
  const conf = goKeys(data, schema) as Record<string, unknown>;
  const v = conf.cniVersion;
  if (typeof v === 'string' && !isSupported(v)) {
    throw new CniError(Code.IncompatibleVersion, `cniVersion "${v.slice(0, 16)}" is not supported`, `supported: ${SUPPORTED_VERSIONS.join(', ')}`);
  }
  if (!validate(conf)) {
    const err = validate.errors?.[0];
    const field = err ? fieldName(err.instancePath, err.params) : '(root)';
    throw new CniError(Code.InvalidConfig, `invalid network config: ${field} ${err?.message ?? 'is invalid'}`);
  }
  return conf as unknown as NetConf;
}
