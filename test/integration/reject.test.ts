// Bad input: the right CNI code, exactly one JSON document, and a host left exactly as it was.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { testNet } from '../helpers/netconf.js';
import { cleanupNetns, hostSnapshot, makeNetns, netnsPath, removeDir, sh, twill, type Env } from '../helpers/twill.js';

after(cleanupNetns);

describe('rejected input changes nothing', () => {
  const net = testNet();
  const ns = makeNetns();
  const good = net.conf();
  const env: Env = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'rej1', CNI_NETNS: netnsPath(ns), CNI_IFNAME: 'eth0' };
  const regular = `${net.stateDir}/not-a-netns`;
  writeFileSync(regular, '');
  // A recycled CNI_NETNS path that now points at the host's own namespace (plugins#714).
  const recycled = `${net.stateDir}/recycled-netns`;
  writeFileSync(recycled, '');
  sh('mount', ['--bind', `/proc/${process.pid}/ns/net`, recycled]);
  after(() => {
    sh('umount', [recycled], { allowFail: true });
    removeDir(net.dataDir);
    removeDir(net.stateDir);
  });

  const cases: { name: string; env?: Partial<Env>; stdin?: string | object; code: number; msg?: RegExp }[] = [
    { name: 'malformed JSON', stdin: '{"cniVersion": "1.0.0", ', code: 6 },
    { name: 'a JSON array', stdin: '[1,2]', code: 6 },
    { name: 'unsupported cniVersion', stdin: { ...good, cniVersion: '0.2.0' }, code: 1 },
    { name: 'unknown cniVersion', stdin: { ...good, cniVersion: '7.0.0' }, code: 1 },
    { name: 'missing CNI_NETNS', env: { CNI_NETNS: undefined }, code: 4, msg: /CNI_NETNS/ },
    { name: 'missing CNI_CONTAINERID', env: { CNI_CONTAINERID: undefined }, code: 4, msg: /CNI_CONTAINERID/ },
    { name: 'unknown CNI_COMMAND', env: { CNI_COMMAND: 'EXPLODE' }, code: 4 },
    { name: 'ifname of 16 characters', env: { CNI_IFNAME: 'abcdefghijklmnop' }, code: 4, msg: /CNI_IFNAME/ },
    { name: 'ifname with a slash', env: { CNI_IFNAME: 'eth/0' }, code: 4, msg: /CNI_IFNAME/ },
    { name: 'container ID with a path', env: { CNI_CONTAINERID: '../../etc' }, code: 4, msg: /CNI_CONTAINERID/ },
    { name: 'network name with a slash', stdin: { ...good, name: 'a/b' }, code: 7, msg: /name/ },
    { name: 'network name ..', stdin: { ...good, name: '..' }, code: 7, msg: /name/ },
    { name: 'dataDir with ..', stdin: { ...good, ipam: { ...good.ipam, dataDir: '/tmp/../etc' } }, code: 7, msg: /dataDir/ },
    { name: 'wrong field type', stdin: { ...good, mtu: '1500' }, code: 7, msg: /mtu/ },
    { name: 'bad subnet', stdin: { ...good, ipam: { ...good.ipam, ranges: [[{ subnet: '10.0.0.0/99' }]] } }, code: 7, msg: /subnet/ },
    { name: 'unknown CNI_ARGS key', env: { CNI_ARGS: 'FOO=1' }, code: 4, msg: /FOO/ },
    { name: 'CNI_NETNS that does not exist', env: { CNI_NETNS: '/run/netns/twill-no-such-ns' }, code: 4, msg: /does not exist/ },
    { name: 'CNI_NETNS that is a regular file', env: { CNI_NETNS: regular }, code: 4, msg: /not a network namespace/ },
    { name: 'CNI_NETNS that is the host netns', env: { CNI_NETNS: recycled }, code: 4, msg: /host/ },
    { name: 'CNI_NETNS that is our own netns', env: { CNI_NETNS: '/proc/self/ns/net' }, code: 4 },
    { name: 'CHECK on a 0.3.1 config', env: { CNI_COMMAND: 'CHECK' }, stdin: { ...good, cniVersion: '0.3.1', prevResult: {} }, code: 1 },
    { name: 'GC on a 1.0.0 config', env: { CNI_COMMAND: 'GC' }, stdin: { ...good, cniVersion: '1.0.0' }, code: 1 },
  ];

  for (const c of cases) {
    it(`${c.name} → code ${c.code}`, () => {
      const before = hostSnapshot(['/var/lib/cni', net.dataDir, net.stateDir]);
      const e: Record<string, string | undefined> = { ...env, ...c.env };
      for (const k of Object.keys(e)) if (e[k] === undefined) delete e[k];
      const r = twill(e as unknown as Env, c.stdin ?? good);
      assert.notEqual(r.code, 0);
      assert.equal(r.stdout.trim().split('\n').length, 1, 'one JSON document');
      assert.equal(r.json.code, c.code, r.stdout);
      assert.equal(typeof r.json.msg, 'string');
      assert.ok(!/\n\s+at /.test(r.stdout + r.stderr), 'no stack trace');
      if (c.msg) assert.match(r.json.msg, c.msg);
      assert.equal(hostSnapshot(['/var/lib/cni', net.dataDir, net.stateDir]), before);
    });
  }
});
