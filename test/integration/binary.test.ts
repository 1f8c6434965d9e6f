// The shipped file alone: no node, no node_modules, no network, an empty environment.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { testNet } from '../helpers/netconf.js';
import { cleanupNetns, makeNetns, netnsPath, removeDir, tempDir, TWILL } from '../helpers/twill.js';

after(cleanupNetns);

describe('the single executable', () => {
  const dir = tempDir('bin');
  const bin = `${dir}/twill`;
  copyFileSync(TWILL, bin);
  const net = testNet();
  after(() => {
    removeDir(dir);
    removeDir(net.dataDir);
    removeDir(net.stateDir);
  });
  const run = (env: Record<string, string>, input: string, args: string[] = []) =>
    spawnSync('env', ['-i', 'PATH=/nonexistent', ...Object.entries(env).map(([k, v]) => `${k}=${v}`), bin, ...args], { input, encoding: 'utf8', cwd: dir });

  it('answers VERSION from an empty directory with env -i and no node on PATH', () => {
    const r = run({ CNI_COMMAND: 'VERSION' }, '{"cniVersion":"0.4.0"}');
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { cniVersion: '0.4.0', supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] });
  });

  it('attaches and detaches a pod the same way (nothing needed beside the file)', () => {
    const ns = makeNetns();
    const env = { CNI_CONTAINERID: 'bin1', CNI_NETNS: netnsPath(ns), CNI_IFNAME: 'eth0', CNI_PATH: '/nonexistent' };
    const add = run({ ...env, CNI_COMMAND: 'ADD' }, JSON.stringify(net.conf()));
    assert.equal(add.status, 0, add.stdout + add.stderr);
    assert.equal(JSON.parse(add.stdout).ips.length, 1);
    const del = run({ ...env, CNI_COMMAND: 'DEL' }, JSON.stringify(net.conf()));
    assert.equal(del.status, 0, del.stdout);
  });

  it('is a CLI without CNI_COMMAND', () => {
    const r = run({}, '', ['version']);
    assert.equal(r.status, 0);
    assert.match(r.stdout, /^twill \S+\nCNI spec versions: 0\.3\.0, 0\.3\.1, 0\.4\.0, 1\.0\.0, 1\.1\.0\nruntime: +(node v\d+\.\d+\.\d+|bun \d+\.\d+\.\d+)\n/);
    const help = run({}, '', ['--help']);
    assert.match(help.stdout, /version/);
    assert.notEqual(run({}, '', ['no-such-command']).status, 0);
  });
});
