// Any ipam.type other than host-local is executed from CNI_PATH, as the reference plugins do.
import { accessSync, constants } from 'node:fs';
import { Code, CniError } from '../cni/errors.js';
import { parseResult, type Result } from '../cni/result.js';

export function findPlugin(type: string, path: string[]): string {
  for (const dir of path) {
    const candidate = `${dir}/${type}`;
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // next directory
    }
  }
  throw new CniError(Code.InvalidConfig, `ipam plugin "${type}" not found in CNI_PATH (${path.join(':') || 'empty'})`);
}

/** Runs the IPAM plugin with the same environment and config; returns its parsed result (ADD) or nothing. */
export function delegate(verb: string, type: string, stdin: string, env: NodeJS.ProcessEnv, path: string[]): Result | undefined {
  const bin = findPlugin(type, path);
  // child_process costs ~1.5 ms to load: only delegation pays for it.
  const { spawnSync } = process.getBuiltinModule('node:child_process');
  const r = spawnSync(bin, [], { input: stdin, env: { ...env, CNI_COMMAND: verb }, encoding: 'utf8', timeout: 60_000, maxBuffer: 4 << 20 });
  if (r.error) throw new CniError(Code.Internal, `ipam plugin ${type}: ${r.error.message}`);
  let out: unknown;
  try {
    out = r.stdout.trim() ? JSON.parse(r.stdout) : undefined;
  } catch {
    throw new CniError(Code.Internal, `ipam plugin ${type} printed invalid JSON`, r.stdout.slice(0, 512));
  }
  if (r.status !== 0) {
    const e = (out ?? {}) as { code?: unknown; msg?: unknown; details?: unknown };
    throw new CniError(typeof e.code === 'number' ? e.code : Code.Internal, `ipam plugin ${type}: ${typeof e.msg === 'string' ? e.msg : `exit ${r.status}`}`, typeof e.details === 'string' ? e.details : r.stderr.slice(0, 512));
  }
  return verb === 'ADD' ? parseResult(out) : undefined;
}
