// What operators run by hand: twill install and twill status.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { testNet } from '../helpers/netconf.js';
import { tempBpffs } from '../helpers/traffic.js';
import { cleanupNetns, makeNetns, netnsPath, removeDir, tempDir, TWILL, twill } from '../helpers/twill.js';

after(cleanupNetns);

const cli = (args: string[]) => spawnSync(TWILL, args, { encoding: 'utf8', env: { PATH: process.env.PATH } });

describe('twill install', () => {
  const dir = tempDir('install');
  after(() => removeDir(dir));

  it('puts the executable and the default conflist in place, and keeps an edited conflist', () => {
    const r = cli(['install', '--bin-dir', `${dir}/bin`, '--conf-dir', `${dir}/net.d`]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(statSync(`${dir}/bin/twill`).mode & 0o777, 0o755);
    const v = spawnSync(`${dir}/bin/twill`, [], { input: '{"cniVersion":"1.0.0"}', encoding: 'utf8', env: { CNI_COMMAND: 'VERSION' } });
    assert.equal(JSON.parse(v.stdout).cniVersion, '1.0.0');
    const conf = `${dir}/net.d/10-twill.conflist`;
    assert.equal(JSON.parse(readFileSync(conf, 'utf8')).plugins[0].type, 'twill');
    writeFileSync(conf, '{"cniVersion":"1.0.0","name":"edited","plugins":[]}');
    assert.match(cli(['install', '--bin-dir', `${dir}/bin`, '--conf-dir', `${dir}/net.d`]).stdout, /kept existing/);
    assert.equal(JSON.parse(readFileSync(conf, 'utf8')).name, 'edited');
    assert.equal(cli(['install', '--bin-dir', `${dir}/bin`, '--conf-dir', `${dir}/net.d`, '--force']).status, 0);
    assert.equal(JSON.parse(readFileSync(conf, 'utf8')).name, 'twill');
  });
});

describe('twill status', () => {
  const net = testNet({ stack: 'v4' });
  const bpffs = tempBpffs();
  const confDir = tempDir('status');
  const logFile = `${net.stateDir}/twill.log`;
  const small = net.conf({ bpffsRoot: bpffs.root, logFile });
  small.ipam.ranges = [[{ subnet: small.ipam.ranges[0][0].subnet.replace(/\/24$/, '/30') }]]; // one usable address
  const entry = { ...small };
  delete entry.cniVersion;
  delete entry.name;
  writeFileSync(`${confDir}/10-twill.conflist`, JSON.stringify({ cniVersion: '1.1.0', name: net.name, plugins: [entry] }));
  after(() => {
    bpffs.release();
    removeDir(confDir);
    removeDir(net.dataDir);
    removeDir(net.stateDir);
  });
  const status = () => {
    const r = cli(['status', '--conf-dir', confDir, '--json']);
    return { code: r.status, s: JSON.parse(r.stdout)[0] };
  };

  it('reports the live data path, pool usage, endpoints, BPF ids and readiness', () => {
    const ns = makeNetns();
    const before = status();
    assert.equal(before.code, 0);
    assert.equal(before.s.pool[0].used, 0);
    assert.equal(twill({ CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'st1', CNI_NETNS: netnsPath(ns), CNI_IFNAME: 'eth0' }, small).code, 0);
    const { code, s } = status();
    assert.equal(s.network, net.name);
    assert.equal(s.datapath.live, 'ebpf');
    assert.equal(s.endpoints, 1);
    assert.ok(s.bpf.programId > 0 && s.bpf.mapIds.endpoints > 0);
    assert.equal(s.pool[0].used, 1);
    assert.equal(s.pool[0].free, '0');
    assert.equal(s.ready, false, 'exhausted pool: cannot serve ADDs');
    assert.equal(code, 1);
    assert.match(s.problems.join(), /exhausted/);
    const fail = twill({ CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'st2', CNI_NETNS: netnsPath(makeNetns()), CNI_IFNAME: 'eth0' }, small);
    assert.equal(fail.json.code, 11);
    assert.equal(twill({ CNI_COMMAND: 'DEL', CNI_CONTAINERID: 'st2', CNI_IFNAME: 'eth0' }, small).code, 0);
    const text = cli(['status', '--conf-dir', confDir]).stdout;
    assert.match(text, /NOT READY/);
    assert.match(text, /datapath:\s+ebpf/);
    assert.equal(twill({ CNI_COMMAND: 'DEL', CNI_CONTAINERID: 'st1', CNI_NETNS: netnsPath(ns), CNI_IFNAME: 'eth0' }, small).code, 0);
    assert.equal(status().code, 0);
  });

  it('shows the last errors from the log file', () => {
    const ns = makeNetns();
    const bad = { ...small, ipam: { ...small.ipam, routes: [{ dst: '198.18.0.0/24', gw: '198.19.0.1' }] } };
    assert.notEqual(twill({ CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'st3', CNI_NETNS: netnsPath(ns), CNI_IFNAME: 'eth0' }, bad).code, 0);
    assert.match(status().s.lastErrors.join('\n'), /ENETUNREACH/);
  });
});
