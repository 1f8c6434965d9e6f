// IPAM at its edges: a delegate that hangs (with children of its own), a config that would
// delegate to twill itself, and the longest names the spec allows.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, readdirSync, writeFileSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { forgetNetwork, testNet } from '../helpers/netconf.js';
import { cleanupNetns, CNI_BIN_DIR, hostLinksSettled, hostSnapshot, makeNetns, netnsPath, pingOk, removeDir, tempDir, twill, type Env } from '../helpers/twill.js';

after(cleanupNetns);

const envFor = (verb: string, id: string, ns: string): Env => ({ CNI_COMMAND: verb, CNI_CONTAINERID: id, CNI_NETNS: netnsPath(ns), CNI_IFNAME: 'eth0' });

describe('IPAM edges', () => {
  const net = testNet({ stack: 'v4' });
  const bin = tempDir('ipam-bin');
  after(() => {
    removeDir(net.dataDir);
    removeDir(net.stateDir);
    removeDir(bin);
    spawnSync('pkill', ['-f', 'sleep 307']);
  });

  it('a delegated IPAM plugin that hangs is killed with everything it started; ADD answers code 11', () => {
    writeFileSync(`${bin}/ipam-hang`, '#!/bin/sh\n(sleep 307 &)\nsleep 306\n');
    chmodSync(`${bin}/ipam-hang`, 0o755);
    const ns = makeNetns();
    const before = hostSnapshot([net.dataDir]);
    const t0 = Date.now();
    const r = twill({ ...envFor('ADD', 'hang', ns), CNI_PATH: `${bin}:${CNI_BIN_DIR}`, TWILL_IPAM_TIMEOUT: '1' } as Env, net.conf({ ipam: { type: 'ipam-hang' } }));
    assert.equal(r.json.code, 11, r.stdout);
    assert.match(r.json.msg, /did not answer within 1 s/);
    assert.ok(Date.now() - t0 < 10_000);
    // The group was signalled as ADD answered; dying takes the processes a moment.
    const alive = (): boolean => spawnSync('pgrep', ['-f', 'sleep 30[67]']).status === 0;
    for (let i = 0; i < 30 && alive(); i++) spawnSync('sleep', ['0.1']);
    assert.equal(alive(), false, 'the plugin and its child are gone');
    assert.equal(hostSnapshot([net.dataDir]), before);
  });

  it('ipam.type "twill" is refused (code 7) instead of exec\'ing itself', () => {
    const ns = makeNetns();
    const r = twill(envFor('ADD', 'self', ns), net.conf({ ipam: { type: 'twill' } }));
    assert.equal(r.json.code, 7, r.stdout);
    assert.match(r.json.msg, /this plugin itself/);
    assert.deepEqual(hostLinksSettled('twt'), []);
  });

  it('a 253-byte container ID on a network with a 253-byte name: ADD, CHECK, DEL', () => {
    const long = testNet({ stack: 'v4' });
    const name = `${long.name}-${'n'.repeat(253 - long.name.length - 1)}`;
    const conf = { ...long.conf(), name };
    after(() => {
      forgetNetwork(name, long.stateDir);
      removeDir(long.dataDir);
      removeDir(long.stateDir);
    });
    const ns = makeNetns();
    const id = 'c'.repeat(253);
    const r = twill(envFor('ADD', id, ns), conf);
    assert.equal(r.code, 0, r.stdout);
    assert.ok(pingOk(undefined, r.json.ips[0].address.split('/')[0]));
    assert.equal(twill(envFor('CHECK', id, ns), { ...conf, prevResult: r.json }).code, 0);
    assert.equal(twill(envFor('DEL', id, ns), { ...conf, prevResult: r.json }).code, 0);
    assert.deepEqual(readdirSync(`${long.dataDir}/${name}`).filter((f) => /^\d/.test(f)), []);
    assert.deepEqual(hostLinksSettled('twt'), []);
  });
});
