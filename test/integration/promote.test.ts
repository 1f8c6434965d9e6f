// The conflist people copy: capabilities only on portmap and bandwidth, so twill never learns
// at ADD whether a pod is shaped. Driven through libcni (cnitool, with its real result cache):
// a shaped pod starts (no qdisc collision with the bandwidth plugin) and keeps its limits
// between local pods; unshaped pods get the fast path once their chain is done.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { testNet } from '../helpers/netconf.js';
import { endpointsJson, iperf, iperfServer, tcpTransfer, tempBpffs } from '../helpers/traffic.js';
import { CNI_BIN_DIR, cleanupNetns, hostLinksSettled, makeNetns, netnsPath, removeDir, ROOT, sh, tempDir, TWILL } from '../helpers/twill.js';

after(cleanupNetns);

const CNITOOL = `${ROOT}/.cache/cnitool`;

describe('the everyday conflist (twill declares no capability)', { skip: existsSync(CNITOOL) ? false : 'cnitool not built' }, () => {
  const net = testNet({ stack: 'v4', cniVersion: '1.0.0' });
  const bpffs = tempBpffs();
  const confDir = tempDir('netconf');
  const bin = tempDir('cnibin');
  symlinkSync(TWILL, `${bin}/twill`);
  for (const p of ['portmap', 'bandwidth']) symlinkSync(`${CNI_BIN_DIR}/${p}`, `${bin}/${p}`);
  const twillConf = net.conf({ datapath: 'ebpf', bpffsRoot: bpffs.root });
  delete twillConf.cniVersion;
  delete twillConf.name;
  delete twillConf.capabilities; // exactly what the usual conflist has
  twillConf.ipam.routes = [{ dst: '0.0.0.0/0' }];
  writeFileSync(`${confDir}/10-twill.conflist`, JSON.stringify({
    cniVersion: '1.0.0',
    name: net.name,
    plugins: [twillConf, { type: 'portmap', capabilities: { portMappings: true } }, { type: 'bandwidth', capabilities: { bandwidth: true } }],
  }));
  const pods = { shaped: makeNetns(), b: makeNetns(), c: makeNetns() };
  const limits = { bandwidth: { ingressRate: 20_000_000, ingressBurst: 200_000, egressRate: 20_000_000, egressBurst: 200_000 } };
  const cnitool = (verb: string, ns: string, caps?: object) => spawnSync(CNITOOL, [verb, net.name, netnsPath(ns)], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH, NETCONFPATH: confDir, CNI_PATH: bin, CNI_IFNAME: 'eth0', ...(caps ? { CAP_ARGS: JSON.stringify(caps) } : {}) },
  });
  const ip: Record<string, string> = {};
  const results = '/var/lib/cni/results';
  after(() => {
    for (const [k, ns] of Object.entries(pods)) cnitool('del', ns, k === 'shaped' ? limits : undefined);
    if (existsSync(results)) for (const f of readdirSync(results).filter((x) => x.startsWith(`${net.name}-`))) spawnSync('rm', ['-f', `${results}/${f}`]);
    bpffs.release();
    for (const d of [confDir, bin, net.dataDir, net.stateDir]) removeDir(d);
  });
  const ep = (addr: string) => endpointsJson(bpffs.root).find((e) => e.addr === addr) as { fastPath: boolean; pending?: boolean; counters?: { redirectPackets: number } } | undefined;

  it('a shaped pod starts: twill attaches nothing the bandwidth plugin collides with', () => {
    const r = cnitool('add', pods.shaped, limits);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    ip.shaped = JSON.parse(r.stdout).ips[0].address.split('/')[0];
    assert.equal(ep(ip.shaped)?.pending, true);
    assert.equal(ep(ip.shaped)?.fastPath, false);
  });

  it('the next call settles it: shaped, so it stays off the fast path (no program of its own)', () => {
    const r = cnitool('add', pods.b);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    ip.b = JSON.parse(r.stdout).ips[0].address.split('/')[0];
    assert.equal(ep(ip.shaped)?.pending, undefined);
    assert.equal(ep(ip.shaped)?.fastPath, false);
    assert.equal(ep(ip.b)?.pending, true);
  });

  it('twill sync settles the rest: unshaped pods get their program and the fast path', () => {
    const r = cnitool('add', pods.c);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    ip.c = JSON.parse(r.stdout).ips[0].address.split('/')[0];
    assert.equal(ep(ip.b)?.fastPath, true, 'settled by the ADD of c');
    const s = spawnSync(TWILL, ['sync', '--conf-dir', confDir], { encoding: 'utf8' });
    assert.equal(s.status, 0, s.stdout + s.stderr);
    assert.equal(ep(ip.c)?.fastPath, true, 'settled by sync');
    const before = ep(ip.b)?.counters?.redirectPackets ?? 0;
    assert.ok(tcpTransfer(pods.b, pods.c, ip.c));
    assert.ok((ep(ip.b)?.counters?.redirectPackets ?? 0) > before + 10, 'b → c took the fast path');
  });

  it('the shaped pod\'s limits hold between local pods, both directions', () => {
    const toShaped = iperf(pods.b, ip.shaped!, iperfServer(pods.shaped), 2);
    const fromShaped = iperf(pods.shaped, ip.b!, iperfServer(pods.b), 2);
    assert.ok(toShaped > 1e6 && toShaped < 30e6, `b → shaped ${Math.round(toShaped / 1e6)} Mbit/s (ingress limit 20)`);
    assert.ok(fromShaped > 1e6 && fromShaped < 30e6, `shaped → b ${Math.round(fromShaped / 1e6)} Mbit/s (egress limit 20)`);
  });

  it('DEL through the chain leaves nothing', () => {
    for (const [k, ns] of Object.entries(pods)) assert.equal(cnitool('del', ns, k === 'shaped' ? limits : undefined).status, 0);
    assert.deepEqual(endpointsJson(bpffs.root), []);
    assert.deepEqual(hostLinksSettled('twt'), []);
    assert.ok(!sh('ip', ['-br', 'link']).includes('ifb') || !sh('tc', ['qdisc']).includes('tbf'));
    assert.deepEqual(readdirSync(`${net.stateDir}/pending`).flatMap((d) => readdirSync(`${net.stateDir}/pending/${d}`)), []);
  });
});
