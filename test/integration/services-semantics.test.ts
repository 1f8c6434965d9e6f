// Kubernetes Service semantics through `twill sync`, as a user writes them: Service and
// EndpointSlice objects as the API server serves them (plus the Namespace, Pods and
// NetworkPolicies of the same cluster) in one file, pods attached by twill ADD on a network that
// serves both Services and policy, clients run inside the network's cgroupRoot, real traffic.
// One `it` per behaviour of kube-proxy's pkg/proxy and the e2e suite's service.go.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { cgroup2Mount } from '../../lib/bpf/attach/cgroup.js';
import { openObject } from '../../lib/bpf/loader.js';
import { SOCK_OBJECT } from '../../lib/bpf/manifest.js';
import { mapKeys } from '../../lib/bpf/sys.js';
import { FakeKube } from '../helpers/fake-kube.js';
import { testNet } from '../helpers/netconf.js';
import { tempBpffs } from '../helpers/traffic.js';
import { cleanupNetns, makeNetns, netnsPath, removeDir, sh, tempDir, TWILL, twill } from '../helpers/twill.js';

const ID = `tse${process.pid % 100000}`;
const NODE = `${ID}-node`;
const NS = 'tse';
// ClusterIPs: only sockets in this file's cgroup are translated, so they clash with no one.
const VIP = (i: number): string => `10.96.${200 + Math.floor(i / 250)}.${(i % 250) + 1}`;
const BIG = (i: number): string => `10.97.${Math.floor(i / 250)}.${(i % 250) + 1}`;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// Every pod serves TCP on 8080, 8081 and 9090: a connection gets "name:port", then its bytes echoed.
const SERVER = `
import socket, sys, threading
name = sys.argv[1]
def conn(c, port):
    try:
        c.sendall(('%s:%d' % (name, port)).encode())
        while True:
            d = c.recv(100)
            if not d: break
            c.sendall(d)
    except OSError: pass
    c.close()
def tcp(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(('0.0.0.0', port)); s.listen(512)
    while True:
        c, _ = s.accept()
        threading.Thread(target=conn, args=(c, port), daemon=True).start()
ts = [threading.Thread(target=tcp, args=(p,), daemon=True) for p in (8080, 8081, 9090)]
for t in ts: t.start()
for t in ts: t.join()
`;

// kind tcp: n connections (name read, closed); loop: connections until the stop file exists;
// hold: connections until one reaches op.want, kept open and pinged every 20 ms until the stop
// file exists (prints "ready" once held). src: the address to bind (a forged one for the hostile pod).
const CLIENT = `
import socket, sys, json, time, errno, os
op = json.loads(sys.argv[1])
to = op.get('timeout', 3)
def err(e): return errno.errorcode.get(e.errno, str(e)) if e.errno else 'TIMEOUT'
def connect():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM); s.settimeout(to)
    if op.get('src'): s.bind((op['src'], 0))
    s.connect((op['addr'], op['port']))
    return s
def tcp():
    t = time.monotonic()
    s = None
    try:
        s = connect(); peer = s.getpeername()
        return {'who': s.recv(100).decode(), 'peer': '%s:%d' % peer, 'ms': (time.monotonic() - t) * 1000}
    except OSError as e:
        return {'err': err(e), 'ms': (time.monotonic() - t) * 1000}
    finally:
        if s: s.close()
if op['kind'] == 'loop':
    out = []
    while not os.path.exists(op['stop']): out.append(tcp())
elif op['kind'] == 'hold':
    held = None
    for _ in range(40):
        s = connect(); who = s.recv(100).decode()
        if who == op['want']: held = s; break
        s.close()
    print('ready', flush=True)
    sent = ok = 0; fail = None
    end = time.monotonic() + 120
    while held and not os.path.exists(op['stop']) and time.monotonic() < end:
        sent += 1
        try:
            held.sendall(b'p%d' % sent)
            if held.recv(100) == b'p%d' % sent: ok += 1
            else: fail = fail or 'closed'
        except OSError as e: fail = fail or err(e)
        time.sleep(0.02)
    out = {'held': held is not None, 'sent': sent, 'ok': ok, 'fail': fail}
else:
    out = [tcp() for _ in range(op.get('n', 1))]
print(json.dumps(out))
`;

interface Result { who?: string; peer?: string; err?: string; ms: number }
interface Hold { held: boolean; sent: number; ok: number; fail: string | null }
interface Op { kind: 'tcp' | 'loop' | 'hold'; addr: string; port: number; n?: number; stop?: string; want?: string; src?: string; timeout?: number }

const PODS = ['b1', 'b2', 'b3', 'c', 'd', 'e', 'h'] as const;
type PodName = (typeof PODS)[number];
interface Pod { netns: string; ip: string; gw: string; id: string; labels: Record<string, string> }

interface Ep { pod: PodName; ready?: boolean; serving?: boolean; terminating?: boolean; node?: string }
interface SvcPort { name: string; port: number; targetPort?: number | string; nodePort?: number }

const mount = cgroup2Mount();

describe('Kubernetes Service semantics through twill sync', { skip: !mount && 'no cgroup v2 mount' }, () => {
  const net = testNet({ prefix: 'tse' });
  const bpffs = tempBpffs();
  const confDir = tempDir(`${ID}-conf`);
  const cniCache = tempDir(`${ID}-cnicache`);
  const cg = `${mount}/${ID}`;
  const dummy = `${ID}d`.slice(0, 14);
  const conf = net.conf({
    datapath: 'ebpf', bpffsRoot: bpffs.root, nodeName: NODE, cniCacheDir: cniCache, cgroupRoot: cg,
    policy: { type: 'k8s' }, services: { type: 'k8s', devices: [dummy] },
  });
  const pods = {} as Record<PodName, Pod>;
  const servers: ChildProcess[] = [];
  const file = `${confDir}/objects.json`;

  const run = (args: string[]): { status: number; out: string } => {
    const r = spawnSync(TWILL, [...args, '--conf-dir', confDir], { encoding: 'utf8', timeout: 120_000 });
    return { status: r.status ?? -1, out: `${r.stdout}${r.stderr}` };
  };
  const script = `echo $$ > ${cg}/cgroup.procs && exec ip netns exec "$1" python3 -c "$0" "$2"`;
  const client = (pod: PodName, op: Op): Result[] => {
    const r = spawnSync('sh', ['-c', script, CLIENT, pods[pod].netns, JSON.stringify(op)], { encoding: 'utf8', timeout: 120_000 });
    if (r.status !== 0) throw new Error(`client: ${r.stderr}`);
    return JSON.parse(r.stdout) as Result[];
  };
  /** A client running in the background; ready resolves once a hold client holds its connection. */
  const background = <T>(pod: PodName, op: Op): { ready: Promise<void>; done: Promise<T> } => {
    const p = spawn('sh', ['-c', script, CLIENT, pods[pod].netns, JSON.stringify(op)]);
    let out = '', errs = '';
    let onReady = (): void => {};
    const ready = new Promise<void>((r) => (onReady = r));
    p.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('ready\n')) onReady();
    });
    p.stderr.on('data', (d: Buffer) => (errs += d.toString()));
    const done = new Promise<T>((res, rej) => p.on('close', (code) => {
      onReady();
      return code === 0 ? res(JSON.parse(out.replace('ready\n', '')) as T) : rej(new Error(`client: ${errs}`));
    }));
    return { ready, done };
  };
  const who = (rs: Result[]): string[] => rs.map((r) => r.who ?? `error ${r.err}`);
  const whoSet = (rs: Result[]): Set<string> => new Set(who(rs));

  const service = (name: string, ip: string, ports: SvcPort[], spec: Record<string, unknown> = {}, labels: Record<string, string> = {}): object => ({
    apiVersion: 'v1', kind: 'Service',
    metadata: { namespace: NS, name, uid: `${ID}-${name}`, resourceVersion: '1', ...(Object.keys(labels).length ? { labels } : {}) },
    spec: {
      type: 'ClusterIP', clusterIP: ip, clusterIPs: [ip], ipFamilies: ['IPv4'], ipFamilyPolicy: 'SingleStack', sessionAffinity: 'None', internalTrafficPolicy: 'Cluster',
      selector: { svc: name }, ports: ports.map((p) => ({ name: p.name, port: p.port, protocol: 'TCP', targetPort: p.targetPort ?? p.port, ...(p.nodePort ? { nodePort: p.nodePort } : {}) })),
      ...spec,
    },
    status: { loadBalancer: {} },
  });
  /** An EndpointSlice as the controller writes it: ports with the endpoints' numbers, conditions, nodeName, targetRef. */
  const slice = (svc: string, name: string, ports: { name: string; port: number }[], eps: Ep[]): object => ({
    apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
    metadata: { namespace: NS, name, labels: { 'kubernetes.io/service-name': svc, 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io' } },
    addressType: 'IPv4',
    ports: ports.map((p) => ({ name: p.name, port: p.port, protocol: 'TCP' })),
    endpoints: eps.map((e) => ({
      addresses: [pods[e.pod].ip], nodeName: e.node ?? NODE, targetRef: { kind: 'Pod', namespace: NS, name: e.pod },
      conditions: { ready: e.ready ?? true, serving: e.serving ?? e.ready ?? true, terminating: e.terminating ?? false },
    })),
  });
  /** A one-port Service (80 → 8080) and its slice. */
  const simple = (name: string, ip: string, eps: Ep[], spec: Record<string, unknown> = {}): object[] =>
    [service(name, ip, [{ name: 'http', port: 80, targetPort: 8080 }], spec), slice(name, `${name}-x1`, [{ name: 'http', port: 8080 }], eps)];
  const podObjects = (): object[] => [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS, labels: { 'kubernetes.io/metadata.name': NS } } },
    ...PODS.map((p) => ({
      apiVersion: 'v1', kind: 'Pod', metadata: { namespace: NS, name: p, labels: pods[p].labels },
      spec: { nodeName: NODE, containers: [{ name: 'c', ports: [{ name: 'web', containerPort: 8080, protocol: 'TCP' }] }] },
      status: { phase: 'Running', podIP: pods[p].ip, podIPs: [{ ip: pods[p].ip }] },
    })),
  ];
  /** The whole cluster in one `List` file, synced; the sync's output. */
  const sync = (objects: object[]): string => {
    writeFileSync(file, JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [...podObjects(), ...objects] }));
    const r = run(['sync', '--from-file', file]);
    assert.equal(r.status, 0, r.out);
    return r.out;
  };
  interface Row { id: number; frontend: { address: string; port: number }; service?: { namespace: string; name: string; port: string }; backends: { address: string; port: number; state: string }[] }
  const rows = (): Row[] => {
    const r = run(['services', '-o', 'json']);
    assert.equal(r.status, 0, r.out);
    return JSON.parse(r.out) as Row[];
  };

  before(async () => {
    mkdirSync(cg);
    // A device for the per-packet program that nothing from outside reaches (no dummy driver here).
    sh('ip', ['link', 'add', dummy, 'type', 'veth', 'peer', 'name', `${dummy.slice(0, 14)}p`]);
    writeFileSync(`${confDir}/10-${ID}.conflist`, JSON.stringify({ cniVersion: conf.cniVersion, name: conf.name, plugins: [conf] }));
    for (const p of PODS) {
      const netns = makeNetns();
      const id = `${ID}${p}`;
      const r = twill({ CNI_COMMAND: 'ADD', CNI_CONTAINERID: id, CNI_NETNS: netnsPath(netns), CNI_IFNAME: 'eth0', CNI_ARGS: `K8S_POD_NAMESPACE=${NS};K8S_POD_NAME=${p}` }, conf);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      mkdirSync(`${cniCache}/results`, { recursive: true });
      writeFileSync(`${cniCache}/results/${conf.name}-${id}-eth0`, JSON.stringify({ kind: 'cniCacheV1', containerId: id, ifName: 'eth0', networkName: conf.name, result: r.json }));
      pods[p] = { netns, id, ip: String(r.json.ips[0].address).split('/')[0]!, gw: String(r.json.ips[0].gateway ?? ''), labels: { pod: p, ...(p.startsWith('b') ? { app: 'web' } : {}) } };
      servers.push(spawn('ip', ['netns', 'exec', netns, 'python3', '-c', SERVER, p], { stdio: 'ignore' }));
    }
    // Policy isolates a pod the sync does not know: the pods first, no Service, no policy.
    sync([]);
    // Up once every backend answers directly (from outside the cgroup: nothing translated).
    for (let i = 0; i < 100; i++) {
      const ok = PODS.every((p) => spawnSync('ip', ['netns', 'exec', pods.c.netns, 'python3', '-c', CLIENT, JSON.stringify({ kind: 'tcp', addr: pods[p].ip, port: 8080 })], { encoding: 'utf8' }).stdout.includes(`${p}:8080`));
      if (ok) break;
      await sleep(100);
      assert.ok(i < 99, 'every pod answers on its address');
    }
  });

  after(() => {
    for (const s of servers) s.kill();
    run(['sync', '--cleanup']);
    for (const p of Object.values(pods)) twill({ CNI_COMMAND: 'DEL', CNI_CONTAINERID: p.id, CNI_NETNS: netnsPath(p.netns), CNI_IFNAME: 'eth0' }, conf);
    cleanupNetns();
    sh('ip', ['link', 'del', dummy], { allowFail: true });
    for (let i = 0; i < 50 && existsSync(cg); i++) {
      try {
        rmdirSync(cg);
      } catch {
        spawnSync('sleep', ['0.1']);
      }
    }
    bpffs.release();
    for (const d of [confDir, cniCache, net.stateDir, net.dataDir]) removeDir(d);
  });

  it('sessionAffinity ClientIP: 30 connections from one client land on one backend; without it they spread over ≥2 of 3', () => {
    const all: Ep[] = [{ pod: 'b1' }, { pod: 'b2' }, { pod: 'b3' }];
    sync(simple('spread', VIP(1), all));
    const spread = whoSet(client('c', { kind: 'tcp', addr: VIP(1), port: 80, n: 30 }));
    assert.ok(spread.size >= 2 && [...spread].every((w) => /^b[123]:8080$/.test(w)), [...spread].join(' '));
    sync(simple('sticky', VIP(2), all, { sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 10800 } } }));
    const got = who(client('c', { kind: 'tcp', addr: VIP(2), port: 80, n: 30 }));
    assert.equal(new Set(got).size, 1, got.join(' '));
    assert.match(got[0]!, /^b[123]:8080$/);
  });

  it('hairpin: a backend reaching its own Service may get itself, and is answered', () => {
    sync([...simple('self', VIP(3), [{ pod: 'b1' }]), ...simple('hair', VIP(4), [{ pod: 'b1' }, { pod: 'b2' }, { pod: 'b3' }])]);
    assert.deepEqual(whoSet(client('b1', { kind: 'tcp', addr: VIP(3), port: 80, n: 5 })), new Set(['b1:8080']));
    const rs = client('b1', { kind: 'tcp', addr: VIP(4), port: 80, n: 30 });
    assert.ok(rs.every((r) => r.who), who(rs).join(' '));
    assert.ok(who(rs).includes('b1:8080'), `b1 never got itself: ${who(rs).join(' ')}`);
  });

  it('internalTrafficPolicy Local: only this node\'s endpoints; none local → refused at connect()', () => {
    sync(simple('itp', VIP(5), [{ pod: 'b1' }, { pod: 'b2', node: 'node-2' }, { pod: 'b3', node: 'node-3' }], { internalTrafficPolicy: 'Local' }));
    assert.deepEqual(whoSet(client('c', { kind: 'tcp', addr: VIP(5), port: 80, n: 20 })), new Set(['b1:8080']));
    // kube-proxy drops here (its DROP rule for "has endpoints, none local": the client waits for
    // its SYN timeout); at the socket twill refuses at once, as for a Service with no endpoints.
    sync(simple('itp', VIP(5), [{ pod: 'b2', node: 'node-2' }, { pod: 'b3', node: 'node-3' }], { internalTrafficPolicy: 'Local' }));
    for (const r of client('c', { kind: 'tcp', addr: VIP(5), port: 80, n: 3 })) {
      assert.equal(r.err, 'ECONNREFUSED', JSON.stringify(r));
      assert.ok(r.ms < 200, `refused in ${r.ms} ms`);
    }
    const row = rows().find((x) => x.frontend.address === VIP(5))!;
    assert.deepEqual(row.backends, [], 'no backend programmed for this node');
  });

  it('NetworkPolicy through a ClusterIP, both ways: egress judged on the backend, ingress on the real client', () => {
    // The node's address on this network (a NodePort address: the node's global addresses serve them).
    const gw = pods.c.gw;
    assert.match(gw, /^\d+\.\d+\.\d+\.\d+$/, 'the pod has a gateway');
    const policies = [
      // c may only talk to pod b1 (by its labels), on any port.
      { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { namespace: NS, name: 'c-egress' }, spec: { podSelector: { matchLabels: { pod: 'c' } }, policyTypes: ['Egress'], egress: [{ to: [{ podSelector: { matchLabels: { app: 'web', pod: 'b1' } } }] }] } },
      // b3 admits only pod d.
      { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { namespace: NS, name: 'b3-ingress' }, spec: { podSelector: { matchLabels: { pod: 'b3' } }, policyTypes: ['Ingress'], ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'd' } } }] }] } },
    ];
    sync([
      ...simple('allowed', VIP(6), [{ pod: 'b1' }]),
      // b2 by its ClusterIP, an externalIP and a NodePort on the node's address on this network.
      ...[service('denied', VIP(7), [{ name: 'http', port: 80, targetPort: 8080, nodePort: 30000 + (process.pid % 2000) }], { type: 'NodePort', externalTrafficPolicy: 'Cluster', externalIPs: ['192.0.2.77'] }),
        slice('denied', 'denied-x1', [{ name: 'http', port: 8080 }], [{ pod: 'b2' }])],
      ...simple('guarded', VIP(8), [{ pod: 'b3' }]),
      ...policies,
    ]);
    const short = { kind: 'tcp' as const, port: 80, timeout: 1 };
    // Translated at connect(): tc sees b1, which c's egress rule allows.
    assert.deepEqual(who(client('c', { ...short, addr: VIP(6), n: 3 })), ['b1:8080', 'b1:8080', 'b1:8080']);
    assert.deepEqual(who(client('c', { ...short, addr: pods.b1.ip, port: 8080 })), ['b1:8080']);
    // b2 by every address that leads to it: none answers.
    for (const [addr, port] of [[VIP(7), 80], [pods.b2.ip, 8080], ['192.0.2.77', 80], [gw!, 30000 + (process.pid % 2000)]] as const) {
      const r = client('c', { ...short, addr, port })[0]!;
      assert.ok(r.err, `c reached b2 via ${addr}:${port}: ${JSON.stringify(r)}`);
    }
    // b3's ingress rule judges the client it sees: d is admitted through the ClusterIP, e is not.
    assert.deepEqual(who(client('d', { ...short, addr: VIP(8), n: 3 })), ['b3:8080', 'b3:8080', 'b3:8080']);
    for (const r of client('e', { ...short, addr: VIP(8), n: 2 })) assert.ok(r.err, `e reached b3 through the ClusterIP: ${JSON.stringify(r)}`);
    assert.ok(client('e', { ...short, addr: pods.b3.ip, port: 8080 })[0]!.err, 'e reached b3 directly');
    // Without the policies, everyone gets through again (the denials above were the policies').
    sync([...simple('denied', VIP(7), [{ pod: 'b2' }]), ...simple('guarded', VIP(8), [{ pod: 'b3' }])]);
    assert.deepEqual(who(client('c', { ...short, addr: VIP(7) })), ['b2:8080']);
    assert.deepEqual(who(client('e', { ...short, addr: VIP(8) })), ['b3:8080']);
  });

  it('terminating fallback: no endpoint ready → the serving-and-terminating ones; a ready one back → only it', () => {
    sync(simple('term', VIP(9), [{ pod: 'b1', ready: false, serving: true, terminating: true }, { pod: 'b2', ready: false, serving: false, terminating: true }]));
    assert.deepEqual(whoSet(client('c', { kind: 'tcp', addr: VIP(9), port: 80, n: 15 })), new Set(['b1:8080']));
    sync(simple('term', VIP(9), [{ pod: 'b1', ready: false, serving: true, terminating: true }, { pod: 'b3' }]));
    assert.deepEqual(whoSet(client('c', { kind: 'tcp', addr: VIP(9), port: 80, n: 15 })), new Set(['b3:8080']));
    sync(simple('term', VIP(9), [{ pod: 'b1', ready: false, serving: true, terminating: true }]));
    assert.deepEqual(whoSet(client('c', { kind: 'tcp', addr: VIP(9), port: 80, n: 15 })), new Set(['b1:8080']));
  });

  it('several ports per Service, targetPort by name: two backends with different numbers, one slice each', () => {
    sync([
      service('multi', VIP(10), [{ name: 'http', port: 80, targetPort: 'web' }, { name: 'metrics', port: 81, targetPort: 9090 }]),
      // The endpointslice controller groups endpoints by their ports: b1's "web" is 8080, b2's 8081.
      slice('multi', 'multi-a', [{ name: 'http', port: 8080 }, { name: 'metrics', port: 9090 }], [{ pod: 'b1' }]),
      slice('multi', 'multi-b', [{ name: 'http', port: 8081 }, { name: 'metrics', port: 9090 }], [{ pod: 'b2' }]),
    ]);
    const http = client('c', { kind: 'tcp', addr: VIP(10), port: 80, n: 20 });
    assert.deepEqual(whoSet(http), new Set(['b1:8080', 'b2:8081']));
    assert.ok(http.every((r) => r.peer === `${VIP(10)}:80`));
    assert.deepEqual(whoSet(client('c', { kind: 'tcp', addr: VIP(10), port: 81, n: 20 })), new Set(['b1:9090', 'b2:9090']));
  });

  it('a headless Service and one labelled service.kubernetes.io/service-proxy-name are left alone', () => {
    const out = sync([
      service('headless', 'None', [{ name: 'http', port: 80, targetPort: 8080 }]), slice('headless', 'headless-x1', [{ name: 'http', port: 8080 }], [{ pod: 'b1' }]),
      service('other', VIP(11), [{ name: 'http', port: 80, targetPort: 8080 }], {}, { 'service.kubernetes.io/service-proxy-name': 'someone-else' }), slice('other', 'other-x1', [{ name: 'http', port: 8080 }], [{ pod: 'b1' }]),
      ...simple('mine', VIP(12), [{ pod: 'b1' }]),
    ]);
    assert.match(out, /services: 1 services, 1 frontends, 1 backends/);
    const listed = rows();
    assert.deepEqual(listed.map((r) => `${r.service?.name} ${r.frontend.address}`), [`mine ${VIP(12)}`]);
    assert.ok(!run(['services']).out.includes(VIP(11)));
    // Not translated: nothing listens on VIP(11) (the connection fails), the other proxy's business.
    const r = client('c', { kind: 'tcp', addr: VIP(11), port: 80, timeout: 1 })[0]!;
    assert.ok(r.err, JSON.stringify(r));
    assert.deepEqual(who(client('c', { kind: 'tcp', addr: VIP(12), port: 80 })), ['b1:8080']);
  });

  it('1,000 Services in one sync: all programmed, one of them reached', () => {
    const objs: object[] = [];
    for (let i = 0; i < 1000; i++) objs.push(...simple(`many-${i}`, BIG(i), [{ pod: (['b1', 'b2', 'b3'] as const)[i % 3]! }]));
    const t = Date.now();
    const out = sync(objs);
    assert.match(out, /services: 1000 services, 1000 frontends, 1000 backends/);
    assert.equal(rows().length, 1000);
    assert.deepEqual(who(client('c', { kind: 'tcp', addr: BIG(778), port: 80, n: 3 })), ['b2:8080', 'b2:8080', 'b2:8080']);
    assert.ok(Date.now() - t < 60_000);
  });

  it('a hostile pod cannot poison another pod\'s affinity or translation', () => {
    sync(simple('sticky', VIP(2), [{ pod: 'b1' }, { pod: 'b2' }, { pod: 'b3' }], { sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 10800 } } }));
    const mine = who(client('c', { kind: 'tcp', addr: VIP(2), port: 80 }))[0]!;
    assert.match(mine, /^b[123]:8080$/);
    // h takes c's address as its own and connects from it, over and over, and connects to every
    // backend directly: kube-proxy keys affinity by source address, so this would steer c there.
    // twill keys it by the socket's network namespace cookie, which h cannot choose: c's entry is
    // untouched, and h's own connections get an entry of their own.
    sh('ip', ['-n', pods.h.netns, 'addr', 'add', `${pods.c.ip}/32`, 'dev', 'lo']);
    try {
      client('h', { kind: 'tcp', addr: VIP(2), port: 80, src: pods.c.ip, n: 5, timeout: 0.3 });
      for (let i = 0; i < 3; i++) client('h', { kind: 'tcp', addr: VIP(2), port: 80, n: 10 });
      for (const b of ['b1', 'b2', 'b3'] as const) client('h', { kind: 'tcp', addr: pods[b].ip, port: 8080 });
    } finally {
      sh('ip', ['-n', pods.h.netns, 'addr', 'del', `${pods.c.ip}/32`, 'dev', 'lo'], { allowFail: true });
    }
    assert.deepEqual(whoSet(client('c', { kind: 'tcp', addr: VIP(2), port: 80, n: 15 })), new Set([mine]));
    const svcId = rows().find((r) => r.frontend.address === VIP(2))!.id;
    const o = openObject(SOCK_OBJECT, bpffs.root)!;
    try {
      // lb_aff keys: { netns_cookie u64, svc_id u32, pad u32 } (earlier tests' Services left entries of other ids).
      const mine2 = [...mapKeys(o.maps.get('lb_aff')!, 16)].filter((k) => k.readUInt32LE(8) === svcId);
      assert.equal(mine2.length, 2, 'one affinity entry per client namespace (c, h), whatever address h forged');
    } finally {
      o.close();
    }
    // And h's translation is its own: a Service h cannot write is what c sees, whatever h connects to.
    assert.deepEqual(whoSet(client('c', { kind: 'tcp', addr: VIP(2), port: 80, n: 5 })), new Set([mine]));
  });

  it('updates never hurt what stays: one backend added, one removed, one staying — no refusal, the held connection lives', async () => {
    const dir = tempDir(`${ID}-stop`);
    const stop = `${dir}/stop`;
    try {
      sync(simple('upd', VIP(13), [{ pod: 'b1' }, { pod: 'b2' }]));
      const hold = background<Hold>('d', { kind: 'hold', addr: VIP(13), port: 80, want: 'b2:8080', stop });
      await hold.ready;
      const loop = background<Result[]>('c', { kind: 'loop', addr: VIP(13), port: 80, stop });
      // b2 stays throughout; b1 and b3 take turns. (A TCP connection to the one that left lives on
      // too, as kube-proxy leaves established TCP alone: the held one proves no apply disturbs
      // the flow, the loop that no new connection meets an empty or half-written Service.)
      const sets: Ep[][] = [[{ pod: 'b2' }, { pod: 'b3' }], [{ pod: 'b1' }, { pod: 'b2' }]];
      for (let round = 0; round < 8; round++) {
        sync(simple('upd', VIP(13), sets[round % 2]!));
        await sleep(50);
      }
      writeFileSync(stop, '');
      const [rs, h] = await Promise.all([loop.done, hold.done]);
      const bad = rs.filter((r) => !r.who);
      assert.ok(rs.length > 20, `only ${rs.length} connections`);
      assert.deepEqual(bad, [], `${bad.length} of ${rs.length} failed`);
      assert.ok(h.held, 'a connection to b2 was made');
      assert.equal(h.fail, null, JSON.stringify(h));
      assert.ok(h.sent > 10 && h.ok === h.sent, JSON.stringify(h));
    } finally {
      writeFileSync(stop, '');
      await sleep(200);
      removeDir(dir);
    }
  });

  it('a restart of the sync (killed, started again) drops no established connection and rewrites nothing unchanged', async () => {
    const dir = tempDir(`${ID}-kube`);
    const stop = `${dir}/stop`;
    const kube = new FakeKube('token-tse');
    const syncs: ChildProcess[] = [];
    let hold: { ready: Promise<void>; done: Promise<Hold> } | undefined;
    const start = (): { log: () => string } => {
      let log = '';
      const p = spawn(TWILL, ['sync', '--kubeconfig', `${dir}/kubeconfig`, '--watch', '3600', '--conf-dir', confDir], { stdio: ['ignore', 'ignore', 'pipe'] });
      p.stderr!.on('data', (d: Buffer) => (log += d.toString()));
      syncs.push(p);
      return { log: () => log };
    };
    const synced = async (l: { log: () => string }): Promise<string> => {
      const t0 = Date.now();
      while (!/services synced/.test(l.log()) && Date.now() - t0 < 20_000) await sleep(50);
      const line = l.log().split('\n').find((x) => x.includes('services synced'));
      assert.ok(line, `no sync: ${l.log()}`);
      return line;
    };
    try {
      await kube.start(dir);
      kube.writeKubeconfig(dir, 'token: token-tse');
      const objs = [...simple('keep', VIP(14), [{ pod: 'b1' }, { pod: 'b2' }, { pod: 'b3' }]), ...simple('sticky', VIP(2), [{ pod: 'b1' }, { pod: 'b2' }, { pod: 'b3' }], { sessionAffinity: 'ClientIP' })];
      // Twice: the second round prunes what the first retired (what earlier tests left), so the kernel holds exactly this.
      sync(objs);
      sync(objs);
      for (const o of [...podObjects(), ...simple('keep', VIP(14), [{ pod: 'b1' }, { pod: 'b2' }, { pod: 'b3' }]), ...simple('sticky', VIP(2), [{ pod: 'b1' }, { pod: 'b2' }, { pod: 'b3' }], { sessionAffinity: 'ClientIP' })] as { kind: string }[]) kube.put(o.kind, o as never);
      const first = start();
      assert.match(await synced(first), /"written":0/, 'a first sync over the state it wants writes nothing');
      const idsBefore = rows().map((r) => `${r.frontend.address}:${r.frontend.port}=${r.id}`).sort();
      hold = background<Hold>('d', { kind: 'hold', addr: VIP(14), port: 80, want: 'b3:8080', stop });
      await hold.ready;
      syncs[0]!.kill('SIGKILL');
      await new Promise((r) => syncs[0]!.exitCode !== null || syncs[0]!.signalCode !== null ? r(null) : syncs[0]!.on('exit', r));
      const second = start();
      const line = await synced(second);
      // The restarted sync finds the kernel as it wants it: no frontend moved, no entry written.
      assert.match(line, /"moved":0/, line);
      assert.match(line, /"written":0/, line);
      assert.deepEqual(rows().map((r) => `${r.frontend.address}:${r.frontend.port}=${r.id}`).sort(), idsBefore);
      assert.deepEqual(whoSet(client('c', { kind: 'tcp', addr: VIP(14), port: 80, n: 10 })).size > 0, true);
      await sleep(300);
      writeFileSync(stop, '');
      const h = await hold.done;
      hold = undefined;
      assert.ok(h.held, 'a connection to b3 was made');
      assert.equal(h.fail, null, JSON.stringify(h));
      assert.ok(h.sent > 10 && h.ok === h.sent, JSON.stringify(h));
    } finally {
      writeFileSync(stop, '');
      await hold?.done.catch(() => undefined);
      for (const s of syncs) s.kill('SIGKILL');
      kube.stop();
      removeDir(dir);
    }
  });
});
