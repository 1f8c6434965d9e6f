// What a CNI call loads besides the bundle. Under Bun every node: module is JavaScript compiled
// from source on its first require (node:fs alone: ~3 MB of a call's peak RSS), so the verbs'
// path loads none: files go through lib/sys/fs-syscalls.ts, the FFI is bun:ffi. The bundle is run by
// the pinned Bun with each of its require() and getBuiltinModule() calls made to say what they load.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { testNet } from '../helpers/netconf.js';
import { cleanupNetns, makeNetns, netnsPath, removeDir, ROOT, tempDir } from '../helpers/twill.js';

after(cleanupNetns);

const BUN = `${ROOT}/node_modules/.bin/bun`;

/**
 * The executable's entry (dist/bun-main.cjs: the embedded assets, then the bundle) with every
 * load of a runtime module in the bundle written to stderr as "LOAD <name>".
 */
function tracedBundle(dir: string): string {
  const src = readFileSync(`${ROOT}/dist/twill.cjs`, 'utf8')
    .replace(/\brequire\("((?:node:|bun:)?[a-z_/]+)"\)/g, (_, m: string) => `(process.stderr.write("LOAD ${m}\\n"),require("${m}"))`)
    .replace(/process\.getBuiltinModule\(/g, '((m)=>(process.stderr.write("LOAD "+m+"\\n"),process.getBuiltinModule(m)))(');
  writeFileSync(`${dir}/twill-traced.cjs`, src);
  const entry = readFileSync(`${ROOT}/dist/bun-main.cjs`, 'utf8').replace("require('./twill.cjs')", "require('./twill-traced.cjs')");
  writeFileSync(`${dir}/main.cjs`, entry);
  return `${dir}/main.cjs`;
}

describe('the modules a CNI call loads under Bun', () => {
  const dir = tempDir('modules');
  const bundle = tracedBundle(dir);
  after(() => removeDir(dir));
  let stdout = '';
  const run = (verb: string, env: Record<string, string>, conf: object) =>
    spawnSync(BUN, [bundle], { input: JSON.stringify(conf), encoding: 'utf8', env: { PATH: process.env.PATH, CNI_COMMAND: verb, CNI_IFNAME: 'eth0', CNI_PATH: '/usr/lib/cni', ...env } });
  const loads = (verb: string, env: Record<string, string>, conf: object): string[] => {
    const r = run(verb, env, conf);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    stdout = r.stdout;
    return [...new Set(r.stderr.split('\n').filter((l) => l.startsWith('LOAD ')).map((l) => l.slice(5)))].sort();
  };

  it('VERSION loads bun:ffi and nothing else (stdin and stdout are read(2) and write(2))', () => {
    assert.deepEqual(loads('VERSION', {}, { cniVersion: '1.0.0' }), ['bun:ffi']);
  });

  // The first pod of a network on a node sets the network up (its guard table through nft,
  // its program): the verbs of the pods after it are the common case.
  for (const [datapath, label] of [['routed', 'a routed'], ['ebpf', 'an eBPF']] as const) {
    it(`ADD, CHECK and DEL of ${label} pod load bun:ffi and nothing else`, () => {
      const net = testNet();
      const bpffs = tempDir('bpffs');
      const conf = net.conf({ datapath, bpffsRoot: bpffs });
      const anchor = { CNI_CONTAINERID: 'mods0', CNI_NETNS: netnsPath(makeNetns()) };
      const env = { CNI_CONTAINERID: 'mods1', CNI_NETNS: netnsPath(makeNetns()) };
      after(() => {
        run('DEL', env, conf);
        run('DEL', anchor, conf);
        spawnSync('umount', [bpffs]);
        for (const d of [net.dataDir, net.stateDir, bpffs]) removeDir(d);
      });
      loads('ADD', anchor, conf);
      assert.deepEqual(loads('ADD', env, conf), ['bun:ffi']);
      assert.deepEqual(loads('CHECK', env, { ...conf, prevResult: JSON.parse(stdout) }), ['bun:ffi']);
      assert.deepEqual(loads('DEL', env, conf), ['bun:ffi']);
    });
  }
});
