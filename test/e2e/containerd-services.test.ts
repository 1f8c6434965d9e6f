// kubelet's path with Services: a pod sandbox started through containerd 1.6's CRI on a twill
// network that serves Services reaches a Service by its ClusterIP. The socket hooks serve the
// sockets of cgroupRoot's tree, so the pod must live under it: kubelet hands the runtime a
// cgroup_parent (its kubepods tree), and containerd (cgroupfs driver) puts the sandbox at
// <cgroup_parent>/<sandbox id> in every hierarchy, the unified one included. Here the
// cgroup_parent is a directory of this test and cgroupRoot is that directory in the cgroup v2
// mount (on this hybrid host, the unified mount).
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { cgroup2Mount } from '../../lib/bpf/attach/cgroup.js';
import { startContainerd, type Containerd } from '../helpers/containerd.js';
import { testNet } from '../helpers/netconf.js';
import { tempBpffs } from '../helpers/traffic.js';
import { CNI_BIN_DIR, deleteNetns, makeNetns, netnsPath, removeDir, tempDir, twill, TWILL } from '../helpers/twill.js';

const have = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const mount = cgroup2Mount();
const skip = !(have('containerd') && have('runc') && have('ctr')) ? 'containerd/runc not installed (tools/build/install-deps.sh)' : !mount ? 'no cgroup v2 mount' : false;

const ID = `tsec${process.pid % 100000}`;
const VIP = `10.96.${process.pid % 200}.${50 + (process.pid % 50)}`;
const CLIENT = `
import socket, sys, json, errno
s = socket.socket(); s.settimeout(2)
try:
    s.connect((sys.argv[1], int(sys.argv[2]))); print(json.dumps({'who': s.recv(100).decode(), 'peer': '%s:%d' % s.getpeername()}))
except OSError as e:
    print(json.dumps({'err': errno.errorcode.get(e.errno, str(e)) if e.errno else 'TIMEOUT'}))
`;
const SERVER = `
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('0.0.0.0', 8080)); s.listen(16)
while True:
    c, _ = s.accept(); c.sendall(b'backend'); c.close()
`;

/** Every cgroup hierarchy's copy of a cgroup path, deepest first, removed. */
function removeCgroupTree(rel: string): void {
  const roots = ['/sys/fs/cgroup', ...readdirSync('/sys/fs/cgroup').map((d) => `/sys/fs/cgroup/${d}`)];
  for (const r of roots) {
    const dir = `${r}${rel}`;
    if (!existsSync(dir) || !statSync(dir).isDirectory()) continue;
    for (const c of readdirSync(dir)) {
      if (statSync(`${dir}/${c}`).isDirectory()) rmdirSync(`${dir}/${c}`);
    }
    rmdirSync(dir);
  }
}

describe('containerd CRI: a pod reaches a Service by its ClusterIP', { skip }, () => {
  const net = testNet({ stack: 'v4', cniVersion: '1.0.0' });
  const bpffs = tempBpffs();
  const bin = tempDir('e2e-bin');
  const confDir = tempDir(`${ID}-conf`);
  const logFile = `${net.stateDir}/twill.log`;
  const parent = `/${ID}`;
  const cgroupRoot = `${mount}${parent}`;
  const conf = net.conf({ logFile, bpffsRoot: bpffs.root, services: { type: 'k8s' }, cgroupRoot });
  let ctrd: Containerd | undefined;
  let sandbox = '';
  let backend: { netns: string; ip: string; server: ChildProcess } | undefined;

  before(async () => {
    mkdirSync(cgroupRoot);
    symlinkSync(TWILL, `${bin}/twill`);
    symlinkSync(`${CNI_BIN_DIR}/loopback`, `${bin}/loopback`);
    const entry = { ...conf } as Record<string, unknown>;
    delete entry.cniVersion;
    delete entry.name;
    writeFileSync(`${confDir}/10-twill.conflist`, JSON.stringify({ cniVersion: '1.0.0', name: net.name, plugins: [entry] }));
    ctrd = await startContainerd(bin, confDir);
  });
  after(async () => {
    if (sandbox) {
      await ctrd?.cri.stopPodSandbox(sandbox).catch(() => undefined);
      await ctrd?.cri.removePodSandbox(sandbox).catch(() => undefined);
    }
    ctrd?.stop();
    if (backend) {
      backend.server.kill();
      twill({ CNI_COMMAND: 'DEL', CNI_CONTAINERID: `${ID}be`, CNI_NETNS: netnsPath(backend.netns), CNI_IFNAME: 'eth0' }, conf);
      deleteNetns(backend.netns);
    }
    spawnSync(TWILL, ['sync', '--cleanup', '--conf-dir', confDir]);
    for (let i = 0; i < 50; i++) {
      try {
        removeCgroupTree(parent);
        break;
      } catch {
        spawnSync('sleep', ['0.1']);
      }
    }
    bpffs.release();
    for (const d of [bin, confDir, net.dataDir, net.stateDir]) removeDir(d);
  });

  it('the sandbox lives under cgroupRoot; its namespace, joined by a process in its cgroup, reaches the ClusterIP; outside the cgroup it does not', async (t) => {
    // A backend pod on the same network (attached by twill directly) and its Service.
    const bns = makeNetns();
    const r = twill({ CNI_COMMAND: 'ADD', CNI_CONTAINERID: `${ID}be`, CNI_NETNS: netnsPath(bns), CNI_IFNAME: 'eth0' }, conf);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    backend = { netns: bns, ip: String(r.json.ips[0].address).split('/')[0]!, server: spawn('ip', ['netns', 'exec', bns, 'python3', '-c', SERVER], { stdio: 'ignore' }) };

    sandbox = await ctrd!.cri.runPodSandbox({ name: 'svc-client', namespace: 'e2e', uid: `${ID}-uid`, logDirectory: `${ctrd!.dir}/logs`, cgroupParent: parent });
    const st = await ctrd!.cri.podSandboxStatus(sandbox);
    assert.equal(st.state, 0, 'SANDBOX_READY');
    const netns = readFileSync(logFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { msg: string; ips?: string[]; netns?: string })
      .find((l) => l.msg === 'attached' && l.ips?.some((a) => a.startsWith(`${st.ip}/`)))?.netns;
    assert.ok(netns, 'twill attached the sandbox');
    // The pod's process (pause) and where containerd put it.
    const pids = spawnSync('ip', ['netns', 'pids', netns.split('/').pop()!], { encoding: 'utf8' }).stdout.trim().split('\n').filter(Boolean);
    t.diagnostic(`processes in the sandbox's netns: ${pids.map((p) => `${p} ${readFileSync(`/proc/${p}/cmdline`, 'utf8').replace(/\0/g, ' ')}`).join('; ')}`);
    const pid = pids[0];
    assert.ok(pid, 'the sandbox\'s pause process');
    const cgroups = readFileSync(`/proc/${pid}/cgroup`, 'utf8');
    t.diagnostic(`pause ${pid} /proc/pid/cgroup:\n${cgroups}`);
    const unified = /^0::(\S+)$/m.exec(cgroups)?.[1];
    assert.equal(unified, `${parent}/${sandbox}`, 'containerd put the sandbox at <cgroup_parent>/<id> in the unified hierarchy');

    writeFileSync(`${confDir}/objects.yaml`, [
      { apiVersion: 'v1', kind: 'Service', metadata: { namespace: 'e2e', name: 'web' }, spec: { type: 'ClusterIP', clusterIP: VIP, clusterIPs: [VIP], ipFamilies: ['IPv4'], selector: { app: 'web' }, ports: [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 8080 }] } },
      { apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { namespace: 'e2e', name: 'web-1', labels: { 'kubernetes.io/service-name': 'web' } }, addressType: 'IPv4', ports: [{ name: 'http', port: 8080, protocol: 'TCP' }], endpoints: [{ addresses: [backend.ip], conditions: { ready: true } }] },
    ].map((o) => `---\n${JSON.stringify(o)}`).join('\n'));
    const s = spawnSync(TWILL, ['sync', '--from-file', `${confDir}/objects.yaml`, '--conf-dir', confDir], { encoding: 'utf8' });
    assert.equal(s.status, 0, s.stdout + s.stderr);
    assert.match(s.stdout + s.stderr, new RegExp(`services: 1 services, 1 frontends, 1 backends; hooks at ${cgroupRoot}`));

    // A process of the pod: in the sandbox's cgroup and network namespace (as a container of it would be).
    const inPod = (inCgroup: boolean): { who?: string; peer?: string; err?: string } => {
      const join = inCgroup ? `echo $$ > ${mount}${unified}/cgroup.procs && ` : '';
      const c = spawnSync('sh', ['-c', `${join}exec nsenter --net=${netns} python3 -c "$0" "$1" 80`, CLIENT, VIP], { encoding: 'utf8', timeout: 30_000 });
      assert.equal(c.status, 0, c.stderr);
      return JSON.parse(c.stdout) as { who?: string; peer?: string; err?: string };
    };
    let got = inPod(true);
    for (let i = 0; i < 30 && got.err; i++) {
      await new Promise((res) => setTimeout(res, 100));
      got = inPod(true);
    }
    assert.deepEqual(got, { who: 'backend', peer: `${VIP}:80` });
    // The same namespace from a process outside cgroupRoot: no socket hook, the ClusterIP is just an address.
    assert.ok(inPod(false).err, 'not translated outside cgroupRoot');
  });
});
