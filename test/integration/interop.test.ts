// twill and the reference host-local share one pool; concurrent ADD/DEL storms stay unique.
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { testNet } from '../helpers/netconf.js';
import { CNI_BIN_DIR, cleanupNetns, hostLinks, hostLinksSettled, makeNetns, netnsPath, removeDir, runPluginAsync, TWILL, type Env, type Run } from '../helpers/twill.js';

after(cleanupNetns);

const envFor = (verb: string, id: string, ns: string): Env => ({ CNI_COMMAND: verb, CNI_CONTAINERID: id, CNI_NETNS: netnsPath(ns), CNI_IFNAME: 'eth0' });
const reserved = (dir: string): string[] => readdirSync(dir).filter((f) => f !== 'lock' && !f.startsWith('last_reserved_ip'));
const addrs = (runs: Run[]): string[] => runs.flatMap((r) => (r.json.ips ?? []).map((i: { address: string }) => i.address));

describe('sharing a pool with the reference host-local', () => {
  const net = testNet({ stack: 'dual', cniVersion: '1.0.0' }); // Debian's host-local speaks up to 1.0.0
  const conf = net.conf();
  const store = `${net.dataDir}/${net.name}`;
  after(() => {
    removeDir(net.dataDir);
    removeDir(net.stateDir);
  });

  it('concurrent ADDs from both never hand out the same address, and each DELs the other\'s', async () => {
    const pods = Array.from({ length: 16 }, () => makeNetns());
    const runs = await Promise.all(
      pods.map((p, i) => (i % 2 === 0 ? runPluginAsync(TWILL, envFor('ADD', `tw-${i}`, p), conf) : runPluginAsync(`${CNI_BIN_DIR}/host-local`, envFor('ADD', `hl-${i}`, p), conf))),
    );
    runs.forEach((r) => assert.equal(r.code, 0, r.stdout + r.stderr));
    const all = addrs(runs);
    assert.equal(all.length, 32);
    assert.equal(new Set(all).size, 32, 'no duplicate address');
    assert.equal(reserved(store).length, 32);
    // Each releases what the other allocated.
    const dels = await Promise.all(
      pods.map((p, i) => (i % 2 === 0 ? runPluginAsync(`${CNI_BIN_DIR}/host-local`, envFor('DEL', `tw-${i}`, p), conf) : runPluginAsync(TWILL, envFor('DEL', `hl-${i}`, p), conf))),
    );
    dels.forEach((r) => assert.equal(r.code, 0, r.stdout + r.stderr));
    // host-local released twill's addresses; twill's veths remain for twill's own DEL.
    assert.deepEqual(reserved(store), []);
    await Promise.all(pods.map((p, i) => (i % 2 === 0 ? runPluginAsync(TWILL, envFor('DEL', `tw-${i}`, p), conf) : Promise.resolve())));
    assert.deepEqual(hostLinksSettled('twt'), []);
  });
});

describe('concurrency on one network', () => {
  const net = testNet({ stack: 'v4' });
  const conf = net.conf();
  after(() => {
    removeDir(net.dataDir);
    removeDir(net.stateDir);
  });

  it('8 parallel ADDs x 5 rounds, then 40 parallel DELs: unique, complete, nothing left', async () => {
    const pods = Array.from({ length: 40 }, () => makeNetns());
    const adds: Run[] = [];
    for (let round = 0; round < 5; round++) {
      const batch = pods.slice(round * 8, round * 8 + 8);
      adds.push(...(await Promise.all(batch.map((p, i) => runPluginAsync(TWILL, envFor('ADD', `cc-${round}-${i}`, p), conf)))));
    }
    adds.forEach((r) => assert.equal(r.code, 0, r.stdout + r.stderr));
    assert.equal(new Set(addrs(adds)).size, 40);
    assert.equal(new Set(adds.map((r) => r.json.interfaces[0].name)).size, 40);
    const dels = await Promise.all(pods.map((p, k) => runPluginAsync(TWILL, envFor('DEL', `cc-${Math.floor(k / 8)}-${k % 8}`, p), conf)));
    dels.forEach((r) => assert.equal(r.code, 0, r.stdout + r.stderr));
    assert.deepEqual(reserved(`${net.dataDir}/${net.name}`), []);
    assert.deepEqual(hostLinksSettled('twt'), []);
  });
});
