// podman 4.3 with its CNI backend drives twill: two containers ping and talk TCP to each
// other, `-p` publishes a port reachable from the host and, hairpin, from the other
// container, and `podman rm -f` releases everything. podman runs with a private storage,
// run and tmp directory and a network config directory of the test's own.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { testNet } from '../helpers/netconf.js';
import { hostAddress } from '../helpers/e2e.js';
import { endpointsJson, tempBpffs } from '../helpers/traffic.js';
import { CNI_BIN_DIR, hostLinksSettled, removeDir, sh, tempDir, TWILL } from '../helpers/twill.js';

const have = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const skip = have('podman') && have('busybox') ? false : 'podman/busybox-static not installed (tools/build/install-deps.sh)';
const IMAGE = 'twill.test/busybox:e2e';

describe('podman (CNI backend): two containers, a published port, rm -f', { skip }, () => {
  const net = testNet({ stack: 'v4', cniVersion: '1.0.0' });
  const bpffs = tempBpffs();
  const dir = tempDir('podman');
  const env = { ...process.env, CONTAINERS_CONF: `${dir}/containers.conf`, CONTAINERS_STORAGE_CONF: `${dir}/storage.conf` };
  const podman = (args: string[], allowFail = false): string => {
    const r = spawnSync('podman', args, { env, encoding: 'utf8', timeout: 120_000 });
    if (r.status !== 0 && !allowFail) throw new Error(`podman ${args.join(' ')}: ${r.stderr}`);
    return r.stdout.trim();
  };
  const port = 18094;
  const ip: Record<string, string> = {};

  before(() => {
    mkdirSync(`${dir}/bin`);
    mkdirSync(`${dir}/net`);
    symlinkSync(TWILL, `${dir}/bin/twill`);
    for (const p of ['portmap', 'bandwidth', 'loopback']) symlinkSync(`${CNI_BIN_DIR}/${p}`, `${dir}/bin/${p}`);
    writeFileSync(`${dir}/containers.conf`, [
      '[containers]', 'default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]',
      '[engine]', 'runtime = "runc"', 'cgroup_manager = "cgroupfs"', 'events_logger = "file"', `tmp_dir = "${dir}/libpod"`,
      '[network]', 'network_backend = "cni"', `cni_plugin_dirs = ["${dir}/bin"]`, `network_config_dir = "${dir}/net"`, '',
    ].join('\n'));
    writeFileSync(`${dir}/storage.conf`, ['[storage]', 'driver = "overlay"', `graphroot = "${dir}/storage"`, `runroot = "${dir}/run"`, ''].join('\n'));
    const twillConf = net.conf({ bpffsRoot: bpffs.root, logFile: `${net.stateDir}/twill.log` });
    delete twillConf.cniVersion;
    delete twillConf.name;
    delete twillConf.capabilities; // as podman's users write it
    twillConf.ipam.routes = [{ dst: '0.0.0.0/0' }];
    writeFileSync(`${dir}/net/${net.name}.conflist`, JSON.stringify({ cniVersion: '1.0.0', name: net.name, plugins: [twillConf, { type: 'portmap', capabilities: { portMappings: true } }] }));
    // An image without a registry: a static busybox imported from a tarball.
    mkdirSync(`${dir}/rootfs/bin`, { recursive: true });
    mkdirSync(`${dir}/rootfs/www`);
    sh('cp', [sh('sh', ['-c', 'command -v busybox']).trim(), `${dir}/rootfs/bin/busybox`]);
    for (const a of ['sh', 'httpd', 'ping', 'wget', 'sleep']) symlinkSync('busybox', `${dir}/rootfs/bin/${a}`);
    writeFileSync(`${dir}/rootfs/www/index.html`, 'hello from a\n');
    sh('tar', ['-C', `${dir}/rootfs`, '-cf', `${dir}/img.tar`, '.']);
    podman(['import', `${dir}/img.tar`, IMAGE]);
  });
  after(() => {
    podman(['rm', '-f', '-a'], true);
    podman(['rmi', '-f', '-a'], true);
    for (const m of readFileSync('/proc/mounts', 'utf8').split('\n').map((l) => l.split(' ')[1] ?? '').filter((p) => p.startsWith(dir)).reverse()) spawnSync('umount', ['-l', m]);
    bpffs.release();
    for (const d of [dir, net.dataDir, net.stateDir]) removeDir(d);
  });

  it('runs two containers on the twill network', () => {
    podman(['run', '-d', '--network', net.name, '--name', 'pa', '-p', `${port}:8080`, IMAGE, 'httpd', '-f', '-p', '8080', '-h', '/www']);
    podman(['run', '-d', '--network', net.name, '--name', 'pb', IMAGE, 'sleep', '600']);
    for (const c of ['pa', 'pb']) ip[c] = podman(['inspect', c, '--format', `{{(index .NetworkSettings.Networks "${net.name}").IPAddress}}`]);
    assert.match(ip.pa!, /^10\./);
    assert.deepEqual(readdirSync(`${net.dataDir}/${net.name}`).filter((f) => /^\d/.test(f)).sort(), [ip.pa, ip.pb].sort());
  });

  it('they ping and talk TCP to each other', () => {
    assert.match(podman(['exec', 'pb', 'ping', '-c', '1', '-W', '2', ip.pa!]), /1 packets received/);
    assert.equal(podman(['exec', 'pb', 'wget', '-qO-', `http://${ip.pa}:8080/`]), 'hello from a');
  });

  it('-p publishes the port to the host (127.0.0.1 and the host address) and, hairpin, to the other container', () => {
    const host = hostAddress();
    const get = (url: string): string => spawnSync('node', ['-e', `fetch(${JSON.stringify(url)}).then(r=>r.text()).then(t=>process.stdout.write(t),e=>{console.error(e.message);process.exit(1)})`], { encoding: 'utf8', timeout: 10_000 }).stdout.trim();
    assert.equal(get(`http://127.0.0.1:${port}/`), 'hello from a');
    assert.equal(get(`http://${host}:${port}/`), 'hello from a');
    assert.equal(podman(['exec', 'pb', 'wget', '-qO-', `http://${host}:${port}/`]), 'hello from a', 'hairpin through the host port');
  });

  it('podman rm -f releases everything', () => {
    podman(['rm', '-f', 'pa', 'pb']);
    assert.deepEqual(readdirSync(`${net.dataDir}/${net.name}`).filter((f) => /^\d/.test(f)), []);
    assert.deepEqual(endpointsJson(bpffs.root), []);
    assert.deepEqual(hostLinksSettled('twt'), []);
    assert.ok(!sh('iptables-save', ['-t', 'nat']).includes(`--dport ${port}`), 'DNAT rules');
  });
});
