// Logs: JSON lines in logFile, nothing but the result on stdout, symlinks not followed.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { testNet } from '../helpers/netconf.js';
import { cleanupNetns, makeNetns, netnsPath, removeDir, tempDir, TWILL, twill } from '../helpers/twill.js';

after(cleanupNetns);

describe('logging', () => {
  const net = testNet();
  const dir = tempDir('log');
  after(() => {
    removeDir(net.dataDir);
    removeDir(net.stateDir);
    removeDir(dir);
  });

  it('writes JSON lines to logFile at logLevel, and only the result to stdout', () => {
    const ns = makeNetns();
    const logFile = `${dir}/twill.log`;
    const conf = net.conf({ logFile, logLevel: 'debug' });
    const env = { CNI_CONTAINERID: 'log1', CNI_NETNS: netnsPath(ns), CNI_IFNAME: 'eth0' };
    const add = twill({ ...env, CNI_COMMAND: 'ADD' }, conf);
    assert.equal(add.code, 0, add.stdout);
    assert.equal(add.stdout.trim().split('\n').length, 1);
    assert.ok(twill({ ...env, CNI_COMMAND: 'DEL' }, conf).code === 0);
    const lines = readFileSync(logFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.ok(lines.some((l) => l.msg === 'attached' && l.verb === 'ADD' && l.containerId === 'log1' && l.network === net.name));
    assert.ok(lines.some((l) => l.msg === 'released' && l.verb === 'DEL'));
  });

  it('logs a failed ADD with its reason', () => {
    const ns = makeNetns();
    const logFile = `${dir}/fail.log`;
    const conf = net.conf({ logFile, ipam: { ...net.conf().ipam, routes: [{ dst: '198.18.0.0/24', gw: '198.19.0.1' }] } });
    const r = twill({ CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'log2', CNI_NETNS: netnsPath(ns), CNI_IFNAME: 'eth0' }, conf);
    assert.notEqual(r.code, 0);
    const lines = readFileSync(logFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.ok(lines.some((l) => l.level === 'error' && /ENETUNREACH/.test(l.error)), JSON.stringify(lines));
  });

  it('a config rejected for what it says names no log file that gets written (bad input changes nothing)', () => {
    const logFile = `${dir}/rejected.log`;
    const ipam = { ...net.conf().ipam };
    delete ipam.ranges; // schema-valid, refused by the IPAM when the verb reads its ranges
    const conf = net.conf({ logFile, logLevel: 'debug', ipam });
    for (const verb of ['STATUS', 'ADD']) {
      const r = twill({ CNI_COMMAND: verb, CNI_CONTAINERID: 'log3', CNI_NETNS: netnsPath(makeNetns()), CNI_IFNAME: 'eth0' }, conf);
      assert.equal(JSON.parse(r.stdout).code, 7, r.stdout);
    }
    assert.equal(existsSync(logFile), false, 'a call that fails on good input is logged: the test above');
  });

  it('does not follow a symlink planted at the log path', () => {
    const target = `${dir}/victim`;
    writeFileSync(target, 'untouched');
    const link = `${dir}/link.log`;
    symlinkSync(target, link);
    const r = twill({ CNI_COMMAND: 'STATUS' }, net.conf({ logFile: link, logLevel: 'debug' }));
    assert.equal(r.code, 0, r.stdout);
    assert.match(r.stderr, /cannot write log file/);
    assert.equal(readFileSync(target, 'utf8'), 'untouched');
    assert.ok(existsSync(link));
  });

  it('never blocks on a FIFO planted at the log path (the verb and twill status both answer)', () => {
    const fifo = `${dir}/fifo.log`;
    spawnSync('mkfifo', [fifo]);
    const conf = net.conf({ logFile: fifo, logLevel: 'debug' });
    const r = runPluginTimed({ CNI_COMMAND: 'STATUS' }, conf, 10_000);
    assert.equal(r.status, 0, `STATUS with a FIFO as its log: ${r.signal ?? ''} ${r.stdout}`);
    assert.match(r.stderr, /cannot write log file/);
    const confDir = `${dir}/confd`;
    mkdirSync(confDir);
    const entry: Record<string, unknown> = { ...conf };
    delete entry.cniVersion;
    delete entry.name;
    writeFileSync(`${confDir}/10-twill.conflist`, JSON.stringify({ cniVersion: '1.1.0', name: net.name, plugins: [entry] }));
    const st = spawnSync(TWILL, ['status', '--conf-dir', confDir, '-o', 'json'], { encoding: 'utf8', timeout: 10_000 });
    assert.notEqual(st.signal, 'SIGTERM', 'twill status blocked reading the log');
    assert.ok(Array.isArray(JSON.parse(st.stdout)));
  });
});

function runPluginTimed(env: Record<string, string>, conf: object, timeout: number) {
  return spawnSync(TWILL, [], { input: JSON.stringify(conf), encoding: 'utf8', env: { PATH: process.env.PATH, ...env }, timeout });
}
