// NetworkPolicy on kubelet's path: containerd 1.6's CRI plugin runs twill → portmap → bandwidth
// for pod sandboxes, with a pod shaped by the bandwidth annotations, for the conflist people
// copy (capabilities only on portmap and bandwidth: twill's pods start pending, attached by tcx)
// and for the one that declares bandwidth on twill (containerd hands runtimeConfig with Go
// field names: the shaped pod is attached by tcx, the others by legacy tc). Every sandbox must
// start, the policy synced from the objects must hold with real traffic, and nothing may stay.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { startContainerd, type Containerd } from '../helpers/containerd.js';
import { AGENT } from '../helpers/netpol.js';
import { testNet } from '../helpers/netconf.js';
import { endpointsJson, tempBpffs } from '../helpers/traffic.js';
import { CNI_BIN_DIR, hostLinksSettled, removeDir, tempDir, TWILL } from '../helpers/twill.js';

const have = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const skip = have('containerd') && have('runc') && have('ctr') ? false : 'containerd/runc not installed (tools/build/install-deps.sh)';
const NODE = 'node-ctrd';

/** The netns containerd made for a sandbox, from the twill log (CNI_NETNS of its ADD). */
function sandboxNetns(logFile: string, ip: string): string {
  for (const l of readFileSync(logFile, 'utf8').trim().split('\n').map((x) => JSON.parse(x) as { msg: string; ips?: string[]; netns?: string })) {
    if (l.msg === 'attached' && l.ips?.some((a) => a.startsWith(`${ip}/`)) && l.netns) return l.netns.split('/').pop()!;
  }
  throw new Error(`no ADD of ${ip} in ${logFile}`);
}

function probe(netns: string, targets: [string, number, string][]): Promise<boolean[]> {
  return new Promise((res) => {
    const p = spawn('ip', ['netns', 'exec', netns, 'python3', AGENT, 'probe', '0.5'], { stdio: ['pipe', 'pipe', 'inherit'] });
    let s = '';
    p.stdout!.on('data', (d) => (s += d));
    p.on('close', () => res(JSON.parse(s || '[]') as boolean[]));
    p.stdin!.end(JSON.stringify(targets));
  });
}

for (const variant of ['everyday', 'capability-on-twill'] as const) {
  describe(`containerd CRI: NetworkPolicy (${variant} conflist)`, { skip }, () => {
    const net = testNet({ stack: 'v4', cniVersion: '1.0.0', prefix: 'twcp' });
    const bpffs = tempBpffs();
    const bin = tempDir('e2epol-bin');
    const confDir = tempDir('e2epol-conf');
    const objDir = tempDir('e2epol-objects');
    const logFile = `${net.stateDir}/twill.log`;
    let ctrd: Containerd | undefined;
    const pods = new Map<string, { id: string; ip: string; netns: string; server?: ChildProcess }>();

    before(async () => {
      symlinkSync(TWILL, `${bin}/twill`);
      for (const p of ['portmap', 'bandwidth', 'loopback']) symlinkSync(`${CNI_BIN_DIR}/${p}`, `${bin}/${p}`);
      const twillConf = net.conf({ logFile, bpffsRoot: bpffs.root, datapath: 'ebpf', policy: { type: 'k8s' }, nodeName: NODE });
      delete twillConf.cniVersion;
      delete twillConf.name;
      if (variant === 'everyday') delete twillConf.capabilities;
      writeFileSync(`${confDir}/10-twill.conflist`, JSON.stringify({
        cniVersion: '1.0.0', name: net.name,
        plugins: [twillConf, { type: 'portmap', capabilities: { portMappings: true } }, { type: 'bandwidth', capabilities: { bandwidth: true } }],
      }));
      ctrd = await startContainerd(bin, confDir);
    });
    after(async () => {
      for (const p of pods.values()) {
        p.server?.kill();
        await ctrd?.cri.stopPodSandbox(p.id).catch(() => undefined);
        await ctrd?.cri.removePodSandbox(p.id).catch(() => undefined);
      }
      ctrd?.stop();
      bpffs.release();
      for (const d of [bin, confDir, objDir, net.dataDir, net.stateDir]) removeDir(d);
    });

    const sync = (policies: object[]): void => {
      const objects = {
        kind: 'List', apiVersion: 'v1',
        items: [
          { kind: 'Namespace', apiVersion: 'v1', metadata: { name: 'x', labels: { ns: 'x' } } },
          ...[...pods].map(([name, p]) => ({
            kind: 'Pod', apiVersion: 'v1', metadata: { namespace: 'x', name, labels: { pod: name } },
            spec: { nodeName: NODE, containers: [{ name: 'c', ports: [{ containerPort: 80 }] }] }, status: { phase: 'Running', podIP: p.ip, podIPs: [{ ip: p.ip }] },
          })),
          ...policies.map((p) => ({ kind: 'NetworkPolicy', apiVersion: 'networking.k8s.io/v1', ...p })),
        ],
      };
      writeFileSync(`${objDir}/objects.json`, JSON.stringify(objects));
      const r = spawnSync(TWILL, ['sync', '--conf-dir', confDir, '--from-file', `${objDir}/objects.json`], { encoding: 'utf8', timeout: 60_000 });
      assert.equal(r.status, 0, r.stdout + r.stderr);
    };
    /** "from->to" → reached, TCP 80 between every two pods. */
    const matrix = async (): Promise<Record<string, boolean>> => {
      const out: Record<string, boolean> = {};
      await Promise.all([...pods].map(async ([from, p]) => {
        const to = [...pods].filter(([n]) => n !== from);
        const r = await probe(p.netns, to.map(([, q]) => [q.ip, 80, 'TCP']));
        to.forEach(([n], k) => (out[`${from}->${n}`] = r[k]!));
      }));
      return out;
    };

    it('RunPodSandbox of a shaped pod and two others: every sandbox starts', async () => {
      for (const name of ['a', 'b', 'c']) {
        const id = await ctrd!.cri.runPodSandbox({
          name, namespace: 'x', uid: `uid-${variant}-${name}`, logDirectory: `${ctrd!.dir}/logs`,
          ...(name === 'a' ? { annotations: { 'kubernetes.io/ingress-bandwidth': '50M', 'kubernetes.io/egress-bandwidth': '50M' } } : {}),
        });
        const st = await ctrd!.cri.podSandboxStatus(id);
        assert.equal(st.state, 0, 'SANDBOX_READY');
        const netns = sandboxNetns(logFile, st.ip);
        pods.set(name, { id, ip: st.ip, netns, server: spawn('ip', ['netns', 'exec', netns, 'python3', AGENT, 'serve', '80'], { stdio: 'ignore' }) });
      }
      assert.equal(endpointsJson(bpffs.root).find((e) => e.addr === pods.get('a')!.ip)?.fastPath, false, 'the shaped pod is kept off the fast path');
    });

    it('the policy holds: a admits only b, c sends nothing, and with no policy all is open', async () => {
      sync([
        { metadata: { namespace: 'x', name: 'a-from-b' }, spec: { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'b' } } }] }] } },
        { metadata: { namespace: 'x', name: 'c-nothing' }, spec: { podSelector: { matchLabels: { pod: 'c' } }, policyTypes: ['Egress'] } },
      ]);
      await new Promise((r) => setTimeout(r, 300));
      assert.deepEqual(await matrix(), { 'a->b': true, 'a->c': true, 'b->a': true, 'b->c': true, 'c->a': false, 'c->b': false });
      sync([
        { metadata: { namespace: 'x', name: 'a-from-c' }, spec: { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'c' } } }] }] } },
      ]);
      assert.deepEqual(await matrix(), { 'a->b': true, 'a->c': true, 'b->a': false, 'b->c': true, 'c->a': true, 'c->b': true });
      sync([]);
      assert.ok(Object.values(await matrix()).every(Boolean));
    });

    it('StopPodSandbox and RemovePodSandbox leave nothing', async () => {
      for (const p of pods.values()) {
        p.server?.kill();
        await ctrd!.cri.stopPodSandbox(p.id);
        await ctrd!.cri.removePodSandbox(p.id);
      }
      pods.clear();
      assert.deepEqual(endpointsJson(bpffs.root).filter((e) => e.network === net.name), [], 'endpoint entries');
      assert.deepEqual(hostLinksSettled('twcp'), [], 'veths');
    });
  });
}
