// NetworkPolicy against what a live system does: a pod's first packet, a pod the last sync
// never heard of, policy changed under traffic (fast path included), and a pod that forges
// an allowed peer's address.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { agent, NetpolCluster, NODE, type StreamResult } from '../helpers/netpol.js';
import { endpointsJson } from '../helpers/traffic.js';
import { forge, echo, send, sleep } from '../helpers/pkt.js';
import { spawnSync } from 'node:child_process';
import { cleanupNetns, makeNetns, netnsPath, pingOk, sh, twill, TWILL } from '../helpers/twill.js';

after(cleanupNetns);

const pol = (ns: string, name: string, spec: object): object => ({ metadata: { namespace: ns, name }, spec });
const futurePod = (ns: string, name: string, labels: Record<string, string> = { pod: name }) => ({
  kind: 'Pod', metadata: { namespace: ns, name, labels }, spec: { nodeName: NODE, containers: [{ name: 'c' }] }, status: { phase: 'Pending' },
});

describe('NetworkPolicy, live', () => {
  let c: NetpolCluster;
  before(() => {
    c = new NetpolCluster({ namespaces: ['x', 'y', 'z'], pods: ['a'], ports: [80, 81], protocols: ['TCP', 'UDP'] }).setup();
  });
  after(() => c.teardown());

  it('a selected pod receives nothing its policy denies from its first packet: ADD applies the last sync before the veth comes up', async () => {
    const denyX = pol('x', 'deny-in', { podSelector: {}, policyTypes: ['Ingress'] });
    c.sync([denyX], [futurePod('x', 'new'), futurePod('y', 'open')]);
    const prefix = c.pods.get('y/a')!.ips[0]!.split('.').slice(0, 3).join('.');
    for (const [ns, expectSome] of [['x', false], ['y', true]] as const) {
      const netns = makeNetns();
      let ready!: () => void;
      const up = new Promise<void>((r) => (ready = r));
      const sniffed = agent(netns, ['sniff', '7777', '3'], ready);
      await up;
      // y/a sprays every address of the pool while the new pod is being attached.
      const sprayed = agent(c.pods.get('y/a')!.netns, ['spray', prefix, '2', '40', '7777', '2.5']);
      await sleep(300);
      const p = { ns, name: ns === 'x' ? 'new' : 'open', netns, ips: [] as string[], labels: {}, containerId: `win${ns}${process.pid}` };
      const r = twill(c.env('ADD', p), c.conf);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      p.ips = r.json.ips.map((i: { address: string }) => i.address.split('/')[0]);
      c.pods.set(`${ns}/${p.name}`, p);
      const [got, n] = [Number(await sniffed), Number(await sprayed)];
      assert.ok(n > 1000, `sprayed ${n}`);
      if (expectSome) assert.ok(got > 0, 'the unselected pod receives the spray: the test sees traffic when it flows');
      else assert.equal(got, 0, 'the selected pod received packets its policy denies');
      c.delPod(ns, p.name);
    }
  });

  it('a pod the last sync did not know starts isolated (this node still reaches it), and is opened by the next sync', async () => {
    c.sync([]);
    const ghost = c.addPod('y', 'ghost');
    const m = await c.probe();
    assert.equal(m.get('y/a -> y/ghost 80/TCP'), false);
    assert.equal(m.get('y/ghost -> y/a 80/TCP'), false);
    assert.ok(pingOk(undefined, ghost.ips[0]!), 'kubelet\'s probes from the node pass');
    c.sync([]);
    const m2 = await c.probe();
    assert.equal(m2.get('y/a -> y/ghost 80/TCP'), true);
    assert.equal(m2.get('y/ghost -> y/a 81/UDP'), true);
    c.delPod('y', 'ghost');
  });

  it('a policy change under traffic stops a connection it denies and never interrupts one it keeps, fast path included', async () => {
    const allow = (ports: number[]) => [pol('x', 'from-y', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'y' } } }], ports: ports.map((port) => ({ port, protocol: 'TCP' })) }] })];
    c.sync(allow([80, 81]));
    const xa = c.pods.get('x/a')!.ips[0]!;
    const ya = c.pods.get('y/a')!;
    const redirected = () => endpointsJson(c.bpffs.root).filter((e) => ya.ips.includes(e.addr)).reduce((s, e) => s + (e.counters?.redirectPackets ?? 0), 0);
    const before = redirected();
    const kept = agent(ya.netns, ['stream', xa, '80', '4']);
    const cutOff = agent(ya.netns, ['stream', xa, '81', '4']);
    await sleep(1500);
    c.sync(allow([80]));
    const [k, d] = [JSON.parse(await kept) as StreamResult, JSON.parse(await cutOff) as StreamResult];
    assert.ok(redirected() - before > 100, 'the streams took the fast path');
    assert.equal(k.cut, false, JSON.stringify(k));
    assert.ok(k.maxGapMs < 250, `the kept connection blipped: ${JSON.stringify(k)}`);
    assert.equal(d.cut, true, `the denied connection went on: ${JSON.stringify(d)}`);
    assert.ok(d.cutAfterMs! > 1000, JSON.stringify(d));
  });

  it('a pod forging an allowed peer\'s address gains nothing: dropped as spoofed before any policy', async () => {
    c.sync([pol('x', 'only-y', { podSelector: {}, ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'y' } } }] }] })]);
    const xa = c.pods.get('x/a')!, ya = c.pods.get('y/a')!, za = c.pods.get('z/a')!;
    xa.server?.kill();
    await sleep(200);
    const hostMac = JSON.parse(sh('ip', ['netns', 'exec', za.netns, 'ip', '-j', 'neigh', 'show']) || '[]') as { lladdr?: string }[];
    const gwMac = hostMac.find((n) => n.lladdr)?.lladdr ?? JSON.parse(sh('ip', ['-j', 'link', 'show', endpointsJson(c.bpffs.root).find((e) => za.ips.includes(e.addr))!.hostIfName]))[0].address;
    const got = echo(xa.netns, 80, 5);
    await sleep(300);
    forge(za.netns, gwMac, ya.ips[0]!, xa.ips[0]!, 4000, 80, 50);
    assert.equal(send(za.netns, 4001, xa.ips[0]!, 80, 3), 0, 'z/a itself is denied');
    assert.ok(send(ya.netns, 4002, xa.ips[0]!, 80, 5) > 0, 'y/a itself is allowed');
    const counts = await got;
    assert.equal(counts.forged ?? 0, 0, JSON.stringify(counts));
    const spoofed = endpointsJson(c.bpffs.root).find((e) => za.ips.includes(e.addr)) as { counters?: { spoofedPackets?: number } };
    assert.ok((spoofed.counters?.spoofedPackets ?? 0) >= 50, JSON.stringify(spoofed));
    c.serve(xa);
  });

  it('twill policy why / show and twill status answer from the kernel\'s tries, naming the policy that decides', () => {
    c.sync([pol('x', 'from-y-80', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'y' } } }], ports: [{ port: 80, protocol: 'TCP' }] }] })]);
    const cli = (...args: string[]) => spawnSync(TWILL, [...args, '--conf-dir', c.confDir], { encoding: 'utf8' });
    const yes = cli('policy', 'why', 'y/a', 'x/a', '80/tcp');
    assert.equal(yes.status, 0, yes.stdout + yes.stderr);
    assert.match(yes.stdout, /ALLOWED/);
    assert.match(yes.stdout, /x\/from-y-80 allows pods of y/);
    const no = cli('policy', 'why', 'z/a', c.pods.get('x/a')!.ips[0]!, '80/tcp');
    assert.equal(no.status, 1, no.stdout + no.stderr);
    assert.match(no.stdout, /DENIED/);
    assert.match(no.stdout, /selected by x\/from-y-80, and none allows pods of z/);
    const port = JSON.parse(cli('policy', 'why', 'y/a', 'x/a', '81/tcp', '-o', 'json').stdout);
    assert.equal(port.verdict, 'DENIED');
    assert.equal(port.egress.verdict, 'unrestricted');
    const show = JSON.parse(cli('policy', 'show', 'x/a', '-o', 'json').stdout);
    assert.equal(show.pod, 'x/a');
    assert.equal(show.ingress.enforced, true);
    assert.deepEqual(show.ingress.selectedBy, ['x/from-y-80']);
    assert.deepEqual(show.ingress.allow.map((a: { ports: string; policy: string; peers: string[] }) => [a.ports, a.policy, a.peers]), [['TCP 80', 'x/from-y-80', ['y/a']]]);
    assert.equal(show.egress.enforced, false);
    assert.equal(cli('policy', 'why', 'nobody/here', 'x/a', '80').status, 2);
    const st = JSON.parse(cli('status', '-o', 'json').stdout)[0];
    assert.equal(st.policy.enforced, true);
    assert.ok(Date.now() - Date.parse(st.policy.lastSync) < 60_000);
    assert.ok(Number(st.policy.drops.ingressPolicy) > 0 && Number(st.policy.drops.spoofed) >= 50, JSON.stringify(st.policy));
    assert.ok(st.policy.mapMemory > 0);
  });

  it('drops are counted per endpoint and direction', () => {
    const xa = endpointsJson(c.bpffs.root).find((e) => c.pods.get('x/a')!.ips.includes(e.addr)) as { counters?: { policyInPackets?: number } };
    assert.ok((xa.counters?.policyInPackets ?? 0) > 0, JSON.stringify(xa));
  });
});

describe('NetworkPolicy needs the eBPF data path', () => {
  it('a routed network that enforces policy refuses ADD and STATUS with code 50, and changes nothing', () => {
    const c = new NetpolCluster({ namespaces: ['x'], pods: [], ports: [80], protocols: ['TCP'] }, 'v4', { datapath: 'routed' });
    try {
      const ns = makeNetns();
      const env = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'routed1', CNI_NETNS: netnsPath(ns), CNI_IFNAME: 'eth0' };
      const add = twill(env, c.conf);
      assert.notEqual(add.code, 0);
      assert.equal(add.json.code, 50, add.stdout);
      assert.match(add.json.msg, /eBPF/);
      assert.equal(sh('ip', ['netns', 'exec', ns, 'ip', '-o', 'link']).trim().split('\n').length, 1, 'nothing was attached');
      const st = twill({ CNI_COMMAND: 'STATUS' }, c.conf);
      assert.equal(st.json.code, 50, st.stdout);
    } finally {
      c.teardown();
    }
  });
});

describe('NetworkPolicy on a node whose network has no pod yet', () => {
  it('the first pods install their own entries from the last sync: enforced with no sync after them', async () => {
    const c = new NetpolCluster({ namespaces: ['x', 'y'], pods: [], ports: [80], protocols: ['TCP'] });
    try {
      c.sync([pol('x', 'only-x', { podSelector: {}, ingress: [{ from: [{ podSelector: {} }] }] })], [futurePod('x', 'a'), futurePod('x', 'b'), futurePod('y', 'a')]);
      c.addPod('x', 'a');
      c.addPod('x', 'b');
      c.addPod('y', 'a');
      const m = await c.probe();
      assert.equal(m.get('y/a -> x/a 80/TCP'), false, 'y/a denied by the policy the first ADD installed');
      assert.equal(m.get('x/b -> x/a 80/TCP'), true, 'x/b\'s ADD published its identity (from the sync\'s chunks), which x/a\'s entries name');
      assert.equal(m.get('x/a -> y/a 80/TCP'), true, 'egress unrestricted, y unselected');
      c.sync([pol('x', 'only-x', { podSelector: {}, ingress: [{ from: [{ podSelector: {} }] }] })]);
      const m2 = await c.probe();
      assert.equal(m2.get('x/b -> x/a 80/TCP'), true, 'named by the sync: allowed');
      assert.equal(m2.get('y/a -> x/a 80/TCP'), false);
    } finally {
      c.teardown();
    }
  });
});

describe('ADD of a pod the last sync did not know, with policy.kubeconfig', () => {
  it('reads the pod, its namespace and their policies from the API server: enforced as written, not isolated; an API server that fails leaves it isolated', async () => {
    const { FakeKube } = await import('../helpers/fake-kube.js');
    const { readFileSync, writeFileSync } = await import('node:fs');
    const { tempDir, removeDir } = await import('../helpers/twill.js');
    const dir = tempDir('learn');
    const kube = new FakeKube('t0k3n');
    await kube.start(dir);
    writeFileSync(`${dir}/kubeconfig`, ['apiVersion: v1', 'kind: Config', 'current-context: t', 'clusters:', '- name: c', '  cluster:', `    server: https://127.0.0.1:${kube.port}`, `    certificate-authority-data: ${readFileSync(`${dir}/ca.crt`).toString('base64')}`,
      'users:', '- name: u', '  user:', '    token: t0k3n', 'contexts:', '- name: t', '  context:', '    cluster: c', '    user: u', ''].join('\n'));
    const c = new NetpolCluster({ namespaces: ['x', 'y', 'z'], pods: ['a'], ports: [80], protocols: ['TCP'] }, 'v4', { policy: { type: 'k8s', kubeconfig: `${dir}/kubeconfig` } }).setup();
    try {
      c.sync([]);
      for (const n of ['x', 'y', 'z']) kube.put('Namespace', { metadata: { name: n, labels: { ns: n } } });
      for (const name of ['new', 'other']) kube.put('Pod', { metadata: { namespace: 'x', name, labels: { pod: name } }, spec: { nodeName: NODE, containers: [{ name: 'c' }] }, status: { phase: 'Pending' } });
      kube.put('NetworkPolicy', { metadata: { namespace: 'x', name: 'from-y' }, spec: { podSelector: {}, ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'y' } } }] }] } });
      await c.addPodAsync('x', 'new');
      const m = await c.probe();
      assert.equal(m.get('y/a -> x/new 80/TCP'), true, 'allowed by x/from-y, read at ADD');
      assert.equal(m.get('z/a -> x/new 80/TCP'), false, 'denied by x/from-y');
      assert.equal(m.get('x/new -> z/a 80/TCP'), true, 'egress unrestricted');
      kube.failWith = 503;
      await c.addPodAsync('x', 'other');
      const m2 = await c.probe();
      assert.equal(m2.get('y/a -> x/other 80/TCP'), false, 'API server away: isolated');
      assert.equal(m2.get('x/other -> y/a 80/TCP'), false, 'isolated both ways');
    } finally {
      c.teardown();
      kube.stop();
      removeDir(dir);
    }
  });
});
