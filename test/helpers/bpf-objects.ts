// Test BPF objects: C sources under test/bpf/ compiled by clang into a temp dir, and the
// manifest entry the loader loads them by.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { ObjectSpec, Scope } from '../../lib/bpf/manifest.js';
import { ROOT, tempDir, removeDir } from './twill.js';

export const hasClang = (): boolean => spawnSync('clang', ['--version']).status === 0;

/** Compiles test/bpf/<name>.c (or any source under ROOT) with the flags given; the object's bytes and hash. */
export function compileBpf(source: string, flags: string[] = ['-g']): { bytes: Buffer; sha256: string } {
  const dir = tempDir('bpfobj');
  try {
    const out = `${dir}/obj.o`;
    const arch = spawnSync('uname', ['-m'], { encoding: 'utf8' }).stdout.trim();
    const r = spawnSync('clang', ['-O2', '-target', 'bpf', '-Wall', `-I/usr/include/${arch}-linux-gnu`, `-I${ROOT}/bpf`, ...flags, '-c', `${ROOT}/${source}`, '-o', out], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`clang ${source}: ${r.stderr}`);
    const bytes = readFileSync(out);
    return { bytes, sha256: createHash('sha256').update(bytes).digest('hex') };
  } finally {
    removeDir(dir);
  }
}

/** test/bpf/features.c as the manifest describes it: results node-wide, the rest per network. */
export function featuresSpec(resultsScope: Scope = 'node', resultsVersion = 1): ObjectSpec<'results' | 'jumps'> {
  const tc = (name: string, attach: ObjectSpec['programs'][number]['attach'] = { kind: 'none' }): ObjectSpec['programs'][number] =>
    ({ name, section: `tc/${name}`, type: 'sched_cls', attach, scope: 'network', pin: `${name}_{hash}` });
  return {
    name: 'features',
    file: 'features.o',
    programs: [
      tc('sub_call'), tc('rodata'), tc('tail_entry'), tc('tail_target', { kind: 'tail-call', map: 'jumps', index: 0 }),
      { name: 'connect4', section: 'cgroup/connect4', type: 'cgroup_sock_addr', attach: { kind: 'cgroup', hook: 'connect4' }, scope: 'node', pin: 'connect4_{hash}' },
    ],
    maps: {
      results: { scope: resultsScope, size: { from: 'object' }, version: resultsVersion },
      jumps: { scope: 'network', size: { from: 'object' }, version: 1 },
    },
  };
}
