// Any ipam.type other than host-local is executed from CNI_PATH, as the reference plugins do.
import { accessSync, constants } from '../sys/fs.js';
import { Code, CniError } from '../cni/errors.js';
import { parseResult, type Result } from '../cni/result.js';

const TIMEOUT_PATHS = ['/usr/bin/timeout', '/bin/timeout'];
/** Seconds a delegated IPAM plugin gets (TWILL_IPAM_TIMEOUT overrides: DHCP can be slow). */
const delegateTimeout = (env: NodeJS.ProcessEnv): number => {
  const v = Number(env.TWILL_IPAM_TIMEOUT);
  return Number.isInteger(v) && v > 0 && v <= 3600 ? v : 60;
};

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
  // coreutils timeout(1) runs the plugin in a process group of its own and, at the deadline,
  // signals the whole group: whatever the plugin started dies with it and nothing keeps our
  // pipes open. Where it is missing, only the direct child can be killed.
  const timeout = TIMEOUT_PATHS.find((p) => {
    try {
      accessSync(p, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
  const limit = delegateTimeout(env);
  const [cmd, args] = timeout ? [timeout, ['-k', '2', String(limit), bin]] : [bin, []];
  const r = spawnSync(cmd, args, { input: stdin, env: { ...env, CNI_COMMAND: verb }, encoding: 'utf8', timeout: (limit + 5) * 1000, maxBuffer: 4 << 20 });
  if (timeout && (r.status === 124 || r.status === 137)) throw new CniError(Code.TryAgainLater, `ipam plugin ${type} did not answer within ${limit} s`);
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
