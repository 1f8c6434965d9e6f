// NetworkPolicy at the edges of the node: traffic from outside through a portmap hostPort is
// judged on its post-DNAT destination, egress to addresses outside the cluster by ipBlock, and
// a network that enforces policy where eBPF cannot run refuses with code 50.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { symlinkSync, writeFileSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { runChain, type ChainCall, type ConfList } from '../../tools/dev/chain.js';
import { AGENT, NODE } from '../helpers/netpol.js';
import { testNet } from '../helpers/netconf.js';
import { tempBpffs } from '../helpers/traffic.js';
import { CNI_BIN_DIR, cleanupNetns, makeNetns, netnsPath, removeDir, sh, tempDir, TWILL, twill } from '../helpers/twill.js';
import { sleep } from '../helpers/pkt.js';

after(cleanupNetns);

const EXT_NET = '198.51.100';

function probe(netns: string, addr: string, port: number): Promise<boolean> {
  return new Promise((res) => {
    const p = spawn('ip', ['netns', 'exec', netns, 'python3', AGENT, 'probe', '0.5'], { stdio: ['pipe', 'pipe', 'inherit'] });
    let s = '';
    p.stdout.on('data', (d) => (s += d));
    p.on('close', () => res((JSON.parse(s || '[false]') as boolean[])[0] === true));
    p.stdin.end(JSON.stringify([[addr, port, 'TCP']]));
  });
}

describe('NetworkPolicy for traffic from and to outside the node', () => {
  const net = testNet({ stack: 'v4', cniVersion: '1.0.0', prefix: 'twe' });
  const bpffs = tempBpffs();
  const bin = tempDir('edgebin');
  const confDir = tempDir('edgeconf');
  symlinkSync(TWILL, `${bin}/twill`);
  symlinkSync(`${CNI_BIN_DIR}/portmap`, `${bin}/portmap`);
  const twillConf = net.conf({ datapath: 'ebpf', bpffsRoot: bpffs.root, policy: { type: 'k8s' }, nodeName: NODE });
  twillConf.ipam.routes = [{ dst: '0.0.0.0/0' }];
  delete twillConf.cniVersion;
  delete twillConf.name;
  const list: ConfList = { cniVersion: '1.0.0', name: net.name, plugins: [twillConf, { type: 'portmap', capabilities: { portMappings: true } }] };
  writeFileSync(`${confDir}/10-edge.conflist`, JSON.stringify(list));
  const subnet = twillConf.ipam.ranges[0][0].subnet as string;
  const pod = makeNetns();
  const ext = makeNetns(); // a host outside the cluster, on its own link to this node
  const call = (verb: ChainCall['verb']) => runChain({ verb, conflist: list, containerId: 'edge-a', netns: netnsPath(pod), ifName: 'eth0', cniPath: bin, capArgs: { portMappings: [{ hostPort: 18181, containerPort: 5401, protocol: 'tcp' }] }, cacheFile: `${bin}/cache.json`, args: 'K8S_POD_NAMESPACE=x;K8S_POD_NAME=a' });
  const servers: ReturnType<typeof spawn>[] = [];
  let podIp = '';
  after(() => {
    for (const s of servers) s.kill();
    try {
      call('DEL');
    } catch {
      // best effort
    }
    sh('ip', ['link', 'del', 'twedgeh'], { allowFail: true });
    bpffs.release();
    for (const d of [bin, confDir, net.dataDir, net.stateDir]) removeDir(d);
  });
  const sync = (policies: object[]) => {
    const objects = { kind: 'List', items: [
      { kind: 'Namespace', metadata: { name: 'x' } },
      { kind: 'Pod', metadata: { namespace: 'x', name: 'a', labels: { app: 'a' } }, spec: { nodeName: NODE, containers: [{ name: 'c', ports: [{ name: 'web', containerPort: 5401 }] }] }, status: podIp ? { phase: 'Running', podIPs: [{ ip: podIp }] } : { phase: 'Pending' } },
      ...policies.map((p) => ({ kind: 'NetworkPolicy', ...p })),
    ] };
    writeFileSync(`${confDir}/objects.json`, JSON.stringify(objects));
    sh(TWILL, ['sync', '--conf-dir', confDir, '--from-file', `${confDir}/objects.json`]);
  };

  it('attaches a pod with a hostPort; an outside host reaches it through the hostPort and serves it', async () => {
    sync([]);
    podIp = (call('ADD')!.ips as { address: string }[])[0]!.address.split('/')[0]!;
    sync([]);
    sh('ip', ['link', 'add', 'twedgeh', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ext]);
    sh('ip', ['addr', 'add', `${EXT_NET}.1/24`, 'dev', 'twedgeh']);
    sh('ip', ['link', 'set', 'twedgeh', 'up']);
    sh('ip', ['netns', 'exec', ext, 'ip', 'addr', 'add', `${EXT_NET}.2/24`, 'dev', 'eth0']);
    sh('ip', ['netns', 'exec', ext, 'ip', 'link', 'set', 'eth0', 'up']);
    sh('ip', ['netns', 'exec', ext, 'ip', 'link', 'set', 'lo', 'up']);
    sh('ip', ['netns', 'exec', ext, 'ip', 'route', 'add', subnet, 'via', `${EXT_NET}.1`]);
    servers.push(spawn('ip', ['netns', 'exec', pod, 'python3', AGENT, 'serve', '5401'], { stdio: 'ignore' }));
    servers.push(spawn('ip', ['netns', 'exec', ext, 'python3', AGENT, 'serve', '7001'], { stdio: 'ignore' }));
    await sleep(500);
    assert.equal(await probe(ext, `${EXT_NET}.1`, 18181), true, 'outside → node:18181 → pod:5401');
    assert.equal(await probe(pod, `${EXT_NET}.2`, 7001), true, 'pod → outside');
  });

  it('ingress through a hostPort is judged on the post-DNAT destination: the container port, not the host port', async () => {
    sync([{ metadata: { namespace: 'x', name: 'ext-5401' }, spec: { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: `${EXT_NET}.0/24` } }], ports: [{ port: 5401 }] }] } }]);
    assert.equal(await probe(ext, `${EXT_NET}.1`, 18181), true, 'allowed on 5401');
    sync([{ metadata: { namespace: 'x', name: 'ext-18181' }, spec: { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: `${EXT_NET}.0/24` } }], ports: [{ port: 18181 }] }] } }]);
    assert.equal(await probe(ext, `${EXT_NET}.1`, 18181), false, 'a rule on the host port does not admit it');
    sync([{ metadata: { namespace: 'x', name: 'ext-except' }, spec: { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: `${EXT_NET}.0/24`, except: [`${EXT_NET}.2/32`] } }], ports: [{ port: 'web' }] }] } }]);
    assert.equal(await probe(ext, `${EXT_NET}.1`, 18181), false, 'the except clause holds for outside addresses');
  });

  it('egress to outside addresses by ipBlock, with except', async () => {
    const egress = (block: object) => sync([{ metadata: { namespace: 'x', name: 'out' }, spec: { podSelector: {}, policyTypes: ['Egress'], egress: [{ to: [{ ipBlock: block }] }] } }]);
    egress({ cidr: `${EXT_NET}.0/24` });
    assert.equal(await probe(pod, `${EXT_NET}.2`, 7001), true);
    egress({ cidr: `${EXT_NET}.0/24`, except: [`${EXT_NET}.2/32`] });
    assert.equal(await probe(pod, `${EXT_NET}.2`, 7001), false);
    egress({ cidr: '10.0.0.0/8' });
    assert.equal(await probe(pod, `${EXT_NET}.2`, 7001), false, 'outside every block: world, denied');
  });
});

describe('NetworkPolicy where eBPF cannot run', () => {
  it('ADD fails with code 50 and leaves nothing; STATUS then reports code 50 with the reason', () => {
    const net = testNet({ stack: 'v4' });
    try {
      const conf = net.conf({ datapath: 'auto', bpffsRoot: '/proc/twill-no-bpffs', policy: { type: 'k8s' } });
      const ns = makeNetns();
      const r = twill({ CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'nobpf', CNI_NETNS: netnsPath(ns), CNI_IFNAME: 'eth0' }, conf);
      assert.equal(r.json.code, 50, r.stdout);
      assert.match(r.json.msg, /NetworkPolicy is enforced.*eBPF data path it needs is unavailable/);
      assert.equal(sh('ip', ['netns', 'exec', ns, 'ip', '-o', 'link']).trim().split('\n').length, 1, 'nothing left in the pod');
      const st = twill({ CNI_COMMAND: 'STATUS' }, conf);
      assert.equal(st.json.code, 50, st.stdout);
      assert.match(st.json.msg, /could not use/);
    } finally {
      removeDir(net.dataDir);
      removeDir(net.stateDir);
    }
  });
});
