// kubelet's path for real: containerd 1.6's CRI plugin runs the chain twill → portmap →
// bandwidth for pod sandboxes created over the CRI, with the bandwidth annotations and a
// hostPort, for the conflist people copy (capabilities only on portmap and bandwidth) and
// for the one that also declares bandwidth on twill. containerd hands runtimeConfig with Go
// field names, calls DEL on StopPodSandbox and once more, without netns or prevResult, on
// RemovePodSandbox. Nothing may be left after.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { startContainerd, type Containerd } from '../helpers/containerd.js';
import { hostAddress } from '../helpers/e2e.js';
import { testNet } from '../helpers/netconf.js';
import { endpointsJson, iperf, iperfServer, tempBpffs } from '../helpers/traffic.js';
import { CNI_BIN_DIR, hostLinks, hostLinksSettled, inNs, pingOk, removeDir, sh, tempDir, TWILL } from '../helpers/twill.js';

const have = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const skip = have('containerd') && have('runc') && have('ctr') ? false : 'containerd/runc not installed (tools/build/install-deps.sh)';

/** The netns containerd made for the sandbox, from the twill log (CNI_NETNS of its ADD). */
function sandboxNetns(logFile: string, ip: string): string {
  for (const l of readFileSync(logFile, 'utf8').trim().split('\n').map((x) => JSON.parse(x) as { msg: string; ips?: string[]; netns?: string })) {
    if (l.msg === 'attached' && l.ips?.some((a) => a.startsWith(`${ip}/`)) && l.netns) return l.netns.split('/').pop()!;
  }
  throw new Error(`no ADD of ${ip} in ${logFile}`);
}

for (const variant of ['everyday', 'capability-on-twill'] as const) {
  describe(`containerd CRI: a shaped pod with a hostPort (${variant} conflist)`, { skip }, () => {
    const net = testNet({ stack: 'v4', cniVersion: '1.0.0' });
    const bpffs = tempBpffs();
    const bin = tempDir('e2e-bin');
    const confDir = tempDir('e2e-conf');
    const logFile = `${net.stateDir}/twill.log`;
    const hostPort = variant === 'everyday' ? 18091 : 18092;
    let ctrd: Containerd | undefined;
    let id = '';
    let ip = '';
    let netns = '';

    before(async () => {
      symlinkSync(TWILL, `${bin}/twill`);
      for (const p of ['portmap', 'bandwidth', 'loopback']) symlinkSync(`${CNI_BIN_DIR}/${p}`, `${bin}/${p}`);
      const twillConf = net.conf({ logFile, logLevel: 'debug', bpffsRoot: bpffs.root });
      delete twillConf.cniVersion;
      delete twillConf.name;
      if (variant === 'everyday') delete twillConf.capabilities;
      twillConf.ipam.routes = [{ dst: '0.0.0.0/0' }];
      writeFileSync(`${confDir}/10-twill.conflist`, JSON.stringify({
        cniVersion: '1.0.0', name: net.name,
        plugins: [twillConf, { type: 'portmap', capabilities: { portMappings: true } }, { type: 'bandwidth', capabilities: { bandwidth: true } }],
      }));
      ctrd = await startContainerd(bin, confDir);
    });
    after(() => {
      ctrd?.stop();
      bpffs.release();
      for (const d of [bin, confDir, net.dataDir, net.stateDir]) removeDir(d);
    });

    let ifbBefore: string[] = [];
    it('RunPodSandbox with bandwidth annotations and a hostPort starts the pod; its IP is twill\'s', async () => {
      ifbBefore = hostLinks('bwp');
      const v = await ctrd!.cri.version();
      assert.equal(v.runtimeName, 'containerd');
      id = await ctrd!.cri.runPodSandbox({
        name: `shaped-${variant}`, namespace: 'e2e', uid: `uid-${variant}`, logDirectory: `${ctrd!.dir}/logs`,
        annotations: { 'kubernetes.io/ingress-bandwidth': '10M', 'kubernetes.io/egress-bandwidth': '10M' },
        portMappings: [{ containerPort: 8080, hostPort }],
      });
      const st = await ctrd!.cri.podSandboxStatus(id);
      assert.equal(hostLinks('bwp').filter((l) => !ifbBefore.includes(l)).length, 1, 'the bandwidth plugin made its ifb');
      assert.equal(st.state, 0, 'SANDBOX_READY');
      ip = st.ip;
      assert.deepEqual(readdirSync(`${net.dataDir}/${net.name}`).filter((f) => /^\d/.test(f)), [ip], 'the address twill reserved');
      netns = sandboxNetns(logFile, ip);
      const ep = endpointsJson(bpffs.root).find((e) => e.addr === ip);
      assert.equal(ep?.fastPath, false, 'a shaped pod is kept off the fast path');
    });

    it('the host reaches the pod, and the hostPort on 127.0.0.1 and the host address', () => {
      assert.ok(pingOk(undefined, ip));
      // One-shot servers (a daemon left running would outlive the test, holding the pod's netns).
      const hostAddr = hostAddress();
      iperfServer(netns, 8080);
      assert.ok(iperf(undefined, hostAddr, hostPort, 1) > 0, `hostPort via ${hostAddr}`);
      iperfServer(netns, 8080);
      assert.ok(iperf(undefined, '127.0.0.1', hostPort, 1) > 0, 'hostPort via 127.0.0.1');
    });

    it('the limits hold both ways (10 Mbit/s, once containerd\'s 512 MiB default burst is spent)', () => {
      // A one-shot server of its own for each direction (the hostPort one may still be busy).
      const toPod = iperf(undefined, ip, iperfServer(netns), 3, false, 4);
      const fromPod = iperf(undefined, ip, iperfServer(netns), 3, true, 4);
      assert.ok(toPod > 1e6 && toPod < 16e6, `host → pod ${Math.round(toPod / 1e6)} Mbit/s`);
      assert.ok(fromPod > 1e6 && fromPod < 16e6, `pod → host ${Math.round(fromPod / 1e6)} Mbit/s`);
    });

    it('StopPodSandbox and RemovePodSandbox (DEL twice, the second without netns) leave nothing', async () => {
      await ctrd!.cri.stopPodSandbox(id);
      await ctrd!.cri.removePodSandbox(id);
      assert.deepEqual(readdirSync(`${net.dataDir}/${net.name}`).filter((f) => /^\d/.test(f)), [], 'reservation');
      assert.deepEqual(endpointsJson(bpffs.root), [], 'endpoint entries');
      assert.deepEqual(hostLinksSettled('twt'), [], 'veth');
      assert.ok(!sh('iptables-save', ['-t', 'nat']).includes(`--dport ${hostPort}`), 'DNAT rules');
      assert.deepEqual(hostLinksSettled('bwp').filter((l) => !ifbBefore.includes(l)), [], 'the ifb device of the egress limit');
      assert.equal(existsSync(`/var/run/netns/${netns}`), false, 'netns');
      const dels = readFileSync(logFile, 'utf8').split('\n').filter((l) => l.includes('"verb":"DEL"') && l.includes('"msg":"released"')).length;
      assert.ok(dels >= 2, `containerd ran DEL ${dels} times`);
    });
  });
}
