// The path runtimes take: libcni (here through cnitool, built from Debian's source of the
// CNI library) loads the conflist, runs the chain, caches the result under
// <cache>/results and hands that cached prevResult to CHECK and DEL.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { testNet } from '../helpers/netconf.js';
import { CNI_BIN_DIR, cleanupNetns, hostLinksSettled, inNs, makeNetns, netnsPath, pingOk, removeDir, ROOT, tempDir, TWILL } from '../helpers/twill.js';

after(cleanupNetns);

const CNITOOL = `${ROOT}/.cache/cnitool`;

describe('cnitool (libcni) drives the chain', { skip: existsSync(CNITOOL) ? false : 'cnitool not built (tools/build/build-cnitool.sh needs root and deb-src)' }, () => {
  const net = testNet({ stack: 'v4', cniVersion: '1.0.0' });
  const confDir = tempDir('netconf');
  const bin = tempDir('cnibin');
  symlinkSync(TWILL, `${bin}/twill`);
  for (const p of ['portmap', 'bandwidth']) symlinkSync(`${CNI_BIN_DIR}/${p}`, `${bin}/${p}`);
  const twillConf = net.conf({ capabilities: { bandwidth: true } });
  delete twillConf.cniVersion;
  delete twillConf.name;
  twillConf.ipam.routes = [{ dst: '0.0.0.0/0' }];
  writeFileSync(`${confDir}/10-twill.conflist`, JSON.stringify({
    cniVersion: '1.0.0',
    name: net.name,
    plugins: [twillConf, { type: 'portmap', capabilities: { portMappings: true } }, { type: 'bandwidth', capabilities: { bandwidth: true } }],
  }));
  // CHECK goes through a twill-only conflist of the same network (same libcni cache entry):
  // Debian's portmap 1.1.1 fails CHECK on any IPv4-only pod ("could not check ipv6 dnat").
  const checkDir = tempDir('netconf-check');
  writeFileSync(`${checkDir}/10-twill.conflist`, JSON.stringify({ cniVersion: '1.0.0', name: net.name, plugins: [twillConf] }));
  const ns = makeNetns();
  // libcni's cache lives under /var/lib/cni; the files of this network are removed after.
  const results = '/var/lib/cni/results';
  const cached = (): string[] => (existsSync(results) ? readdirSync(results).filter((f) => f.startsWith(`${net.name}-`)) : []);
  const cnitool = (verb: string, caps?: object) => spawnSync(CNITOOL, [verb, net.name, netnsPath(ns)], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH, NETCONFPATH: verb === 'check' ? checkDir : confDir, CNI_PATH: bin, CNI_IFNAME: 'eth0', ...(caps ? { CAP_ARGS: JSON.stringify(caps) } : {}) },
  });
  const caps = { portMappings: [{ hostPort: 18181, containerPort: 80, protocol: 'tcp' }] };
  after(() => {
    cnitool('del', caps);
    for (const f of cached()) spawnSync('rm', ['-f', `${results}/${f}`]);
    removeDir(confDir);
    removeDir(checkDir);
    removeDir(bin);
    removeDir(net.dataDir);
    removeDir(net.stateDir);
  });

  let host = '';
  it('add: the pod is attached and libcni caches the result', () => {
    const r = cnitool('add', caps);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    const res = JSON.parse(r.stdout);
    host = res.interfaces[0].name;
    assert.match(inNs(ns, ['ip', '-br', 'addr', 'show', 'eth0']), /UP/);
    assert.ok(pingOk(undefined, res.ips[0].address.split('/')[0]));
    assert.equal(cached().length, 1);
    const entry = JSON.parse(readFileSync(`${results}/${cached()[0]}`, 'utf8'));
    assert.equal(entry.result.interfaces[1].name, 'eth0');
  });

  it('check: passes with the cached prevResult, fails once the pod address is gone', () => {
    const ok = cnitool('check', caps);
    assert.equal(ok.status, 0, ok.stdout + ok.stderr);
    const addr = JSON.parse(inNs(ns, ['ip', '-j', 'addr', 'show', 'eth0']))[0].addr_info.find((a: { family: string }) => a.family === 'inet');
    inNs(ns, ['ip', 'addr', 'del', `${addr.local}/${addr.prefixlen}`, 'dev', 'eth0']);
    const bad = cnitool('check', caps);
    assert.notEqual(bad.status, 0);
    assert.match(bad.stdout + bad.stderr, /lacks address/);
  });

  it('del: runs the chain backwards with the cached result and leaves nothing', () => {
    const r = cnitool('del', caps);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.deepEqual(cached(), []);
    assert.deepEqual(hostLinksSettled(host), []);
    assert.deepEqual(readdirSync(`${net.dataDir}/${net.name}`).filter((f) => /^\d/.test(f)), []);
  });
});
