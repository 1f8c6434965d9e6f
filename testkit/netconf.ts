// Network configs for the tests, each isolated in its own store and state directories.
import { spawnSync } from 'node:child_process';
import { readdirSync, rmSync } from 'node:fs';
import { guardTable } from '../lib/sys/guard.js';
import { masqTag } from '../lib/datapath/masq.js';
import { runMarkerPrefix } from '../lib/naming.js';
import type { NetConf } from '../lib/config/types.js';
import { tempDir } from './twill.js';

/**
 * What a network leaves on the host beyond its pods, by design (the guard table, per-boot
 * markers): removed for every test network when the test process exits.
 */
export function forgetNetwork(name: string, stateDir: string): void {
  spawnSync('nft', ['delete', 'table', 'inet', guardTable(masqTag({ name } as NetConf))]);
  const prefix = runMarkerPrefix(stateDir);
  const dir = prefix.slice(0, prefix.lastIndexOf('/'));
  try {
    for (const f of readdirSync(dir)) if (`${dir}/${f}`.startsWith(prefix)) rmSync(`${dir}/${f}`, { force: true });
  } catch {
    // no markers
  }
}

/** forgetNetwork for every network that left a guard marker under stateDir (names unknown to the caller: the fuzzer's). */
export function forgetStateDir(stateDir: string): void {
  const prefix = runMarkerPrefix(stateDir);
  const dir = prefix.slice(0, prefix.lastIndexOf('/'));
  let names: string[] = [];
  try {
    names = readdirSync(dir).filter((f) => `${dir}/${f}`.startsWith(`${prefix}guard-`));
  } catch {
    return;
  }
  for (const f of names) forgetNetwork(`${dir}/${f}`.slice(`${prefix}guard-`.length), stateDir);
}

const made: { name: string; stateDir: string }[] = [];
process.on('exit', () => {
  for (const n of made) forgetNetwork(n.name, n.stateDir);
});

export type Stack = 'v4' | 'v6' | 'dual';

let n = 0;

export interface TestNet {
  name: string;
  dataDir: string;
  stateDir: string;
  conf(extra?: Record<string, unknown>): Record<string, any>;
}

export function testNet(opts: { stack?: Stack; cniVersion?: string; ranges?: unknown[][]; prefix?: string; ipam?: Record<string, unknown> } = {}): TestNet {
  const id = `${process.pid % 1000}${n++}`;
  const name = `twtest-${id}`;
  const dataDir = tempDir('data');
  const stateDir = tempDir('state');
  const octet = 200 + (Number(id) % 50);
  const v4 = [{ subnet: `10.${octet}.${n % 250}.0/24` }];
  const v6 = [{ subnet: `fd77:${octet.toString(16)}:${(n % 250).toString(16)}::/64` }];
  made.push({ name, stateDir });
  const stack = opts.stack ?? 'v4';
  const ranges = opts.ranges ?? (stack === 'v4' ? [v4] : stack === 'v6' ? [v6] : [v4, v6]);
  return {
    name,
    dataDir,
    stateDir,
    conf: (extra = {}) => ({
      cniVersion: opts.cniVersion ?? '1.1.0',
      name,
      type: 'twill',
      hostVethPrefix: opts.prefix ?? 'twt',
      // As a conflist that hands twill the pod's limits: the fast path is decided at ADD.
      // (promote.test.ts covers the entry that declares nothing.)
      capabilities: { bandwidth: true },
      stateDir,
      ipam: { type: 'host-local', dataDir, ranges, ...(opts.ipam ?? {}) },
      ...extra,
    }),
  };
}
