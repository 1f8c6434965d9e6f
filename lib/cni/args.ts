// CNI_ARGS ("K=V;K2=V2") as the reference library reads it (pkg/types/args.go).
import { Code, CniError } from './errors.js';

const KNOWN = new Set(['IgnoreUnknown', 'IP', 'K8S_POD_NAMESPACE', 'K8S_POD_NAME', 'K8S_POD_INFRA_CONTAINER_ID', 'K8S_POD_UID']);

export type CniArgs = ReadonlyMap<string, string>;

export function parseCniArgs(raw: string | undefined): CniArgs {
  const out = new Map<string, string>();
  if (!raw) return out;
  for (const pair of raw.split(';')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new CniError(Code.InvalidEnv, `CNI_ARGS: invalid pair "${pair.slice(0, 64)}" (want KEY=VALUE)`);
    out.set(pair.slice(0, eq), pair.slice(eq + 1));
  }
  const ignore = ['1', 'true'].includes((out.get('IgnoreUnknown') ?? '').toLowerCase());
  if (!ignore) {
    for (const k of out.keys()) {
      if (!KNOWN.has(k)) throw new CniError(Code.InvalidEnv, `CNI_ARGS: unknown key "${k.slice(0, 64)}" (set IgnoreUnknown=1 to allow it)`);
    }
  }
  return out;
}
