// `twill sync` programs Services: a network that says "services": {"type": "k8s"}, two pods
// attached by twill ADD running servers, a Service (two ports, one targetPort by name) and its
// EndpointSlice from a file and then from the API server's watch; a client in the network's
// cgroupRoot connects to the ClusterIP and reaches a backend, and `twill services`, `status`,
// `metrics` and `sync --cleanup` say and undo what the sync did.
import { removeCgroup } from '../../testkit/cgroup.js';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { cgroup2Mount } from '../../lib/bpf/attach/cgroup.js';
import { FakeKube } from '../helpers/fake-kube.js';
import { testNet } from '../helpers/netconf.js';
import { tempBpffs } from '../helpers/traffic.js';
import { cleanupNetns, makeNetns, netnsPath, removeDir, tempDir, TWILL, twill } from '../helpers/twill.js';

const ID = `tss${process.pid % 100000}`;
const VIP = `10.96.${process.pid % 200}.${10 + (process.pid % 40)}`;

// Each backend answers with its name and the port it was reached on.
const SERVER = `
import socket, sys, threading
name = sys.argv[1]
def tcp(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(('0.0.0.0', port)); s.listen(128)
    while True:
        c, _ = s.accept()
        try: c.sendall(('%s:%d' % (name, port)).encode())
        except OSError: pass
        c.close()
ts = [threading.Thread(target=tcp, args=(p,), daemon=True) for p in (8080, 9090)]
for t in ts: t.start()
for t in ts: t.join()
`;

const CLIENT = `
import socket, sys, json, time, errno
addr, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
out = []
for _ in range(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM); s.settimeout(3)
    t = time.monotonic()
    try:
        s.connect((addr, port)); peer = s.getpeername()
        out.append({'who': s.recv(100).decode(), 'peer': '%s:%d' % peer, 'ms': (time.monotonic() - t) * 1000})
    except OSError as e:
        out.append({'err': errno.errorcode.get(e.errno, str(e)) if e.errno else 'TIMEOUT', 'ms': (time.monotonic() - t) * 1000})
    finally: s.close()
print(json.dumps(out))
`;

interface Result { who?: string; peer?: string; err?: string; ms: number }

const mount = cgroup2Mount();
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('twill sync programs Services', { skip: !mount && 'no cgroup v2 mount' }, () => {
  const net = testNet();
  const bpffs = tempBpffs();
  const confDir = tempDir(`${ID}-conf`);
  const cg = `${mount}/${ID}`;
  const conf = net.conf({ bpffsRoot: bpffs.root, services: { type: 'k8s' }, cgroupRoot: cg });
  const pods: Record<'b1' | 'b2' | 'c', { ns: string; ip: string; id: string }> = {} as never;
  const servers: ChildProcess[] = [];
  const file = `${confDir}/objects.yaml`;

  const run = (args: string[]): { status: number; out: string } => {
    const r = spawnSync(TWILL, [...args, '--conf-dir', confDir], { encoding: 'utf8', timeout: 60_000 });
    return { status: r.status ?? -1, out: `${r.stdout}${r.stderr}` };
  };
  const client = (addr: string, port: number, n = 1): Result[] => {
    const r = spawnSync('sh', ['-c', `echo $$ > ${cg}/cgroup.procs && exec ip netns exec "$1" python3 -c "$0" "$2" "$3" "$4"`, CLIENT, pods.c.ns, addr, String(port), String(n)], { encoding: 'utf8', timeout: 60_000 });
    if (r.status !== 0) throw new Error(`client: ${r.stderr}`);
    return JSON.parse(r.stdout) as Result[];
  };
  const names = (rs: Result[]): Set<string> => new Set(rs.map((r) => r.who ?? `error ${r.err}`));

  const service = { apiVersion: 'v1', kind: 'Service', metadata: { namespace: 'x', name: 'web' }, spec: { type: 'ClusterIP', clusterIP: VIP, clusterIPs: [VIP], ipFamilies: ['IPv4'], selector: { app: 'web' }, ports: [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 'web' }, { name: 'metrics', port: 81, protocol: 'TCP', targetPort: 9090 }] } };
  const slice = (eps: { pod: 'b1' | 'b2'; ready?: boolean; terminating?: boolean }[]) => ({
    apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { namespace: 'x', name: 'web-abcde', labels: { 'kubernetes.io/service-name': 'web' } }, addressType: 'IPv4',
    ports: [{ name: 'http', port: 8080, protocol: 'TCP' }, { name: 'metrics', port: 9090, protocol: 'TCP' }],
    endpoints: eps.map((e) => ({ addresses: [pods[e.pod].ip], nodeName: 'elsewhere', conditions: { ready: e.ready ?? true, serving: true, terminating: e.terminating ?? false } })),
  });
  const writeObjects = (eps: Parameters<typeof slice>[0]): void => writeFileSync(file, [service, slice(eps)].map((o) => `---\n${JSON.stringify(o)}`).join('\n'));
  const syncFile = (): string => {
    const r = run(['sync', '--from-file', file]);
    assert.equal(r.status, 0, r.out);
    return r.out;
  };

  before(async () => {
    mkdirSync(cg);
    writeFileSync(`${confDir}/10-${ID}.conflist`, JSON.stringify({ cniVersion: '1.1.0', name: conf.name, plugins: [conf] }));
    for (const p of ['b1', 'b2', 'c'] as const) {
      const ns = makeNetns();
      const id = `${ID}${p}`;
      const r = twill({ CNI_COMMAND: 'ADD', CNI_CONTAINERID: id, CNI_NETNS: netnsPath(ns), CNI_IFNAME: 'eth0' }, conf);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      pods[p] = { ns, id, ip: String(r.json.ips[0].address).split('/')[0]! };
      if (p !== 'c') servers.push(spawn('ip', ['netns', 'exec', ns, 'python3', '-c', SERVER, p], { stdio: 'ignore' }));
    }
    // Up once both answer directly (from outside the cgroup: no translation involved).
    for (let i = 0; i < 100; i++) {
      const ok = ['b1', 'b2'].every((p) => spawnSync('ip', ['netns', 'exec', pods.c.ns, 'python3', '-c', CLIENT, pods[p as 'b1'].ip, '8080', '1'], { encoding: 'utf8' }).stdout.includes(`${p}:8080`));
      if (ok) break;
      await sleep(100);
    }
  });

  after(() => {
    for (const s of servers) s.kill();
    run(['sync', '--cleanup']);
    for (const p of Object.values(pods)) twill({ CNI_COMMAND: 'DEL', CNI_CONTAINERID: p.id, CNI_NETNS: netnsPath(p.ns), CNI_IFNAME: 'eth0' }, conf);
    cleanupNetns();
    removeCgroup(cg);
    bpffs.release();
    for (const d of [confDir, net.stateDir, net.dataDir]) removeDir(d);
  });

  it('sync --from-file: the ClusterIP reaches a backend on each port (targetPort by name), getpeername() says the ClusterIP', () => {
    writeObjects([{ pod: 'b1' }, { pod: 'b2' }]);
    assert.match(syncFile(), /services: 1 services, 2 frontends, 4 backends/);
    const rs = client(VIP, 80, 12);
    for (const r of rs) {
      assert.match(r.who ?? `error ${r.err}`, /^b[12]:8080$/);
      assert.equal(r.peer, `${VIP}:80`);
    }
    assert.equal(names(rs).size, 2, 'both backends are used');
    const m = client(VIP, 81)[0]!;
    assert.match(m.who ?? `error ${m.err}`, /^b[12]:9090$/);
    assert.equal(m.peer, `${VIP}:81`);
  });

  it('twill services lists the frontends and their backends; -o json parses; status and metrics show them', () => {
    const t = run(['services']);
    assert.equal(t.status, 0, t.out);
    assert.match(t.out, new RegExp(`${VIP.replace(/\./g, '\\.')}:80/TCP\\s+internal\\s+x/web:http\\s+1 => ${pods.b1.ip.replace(/\./g, '\\.')}:8080/TCP \\(active\\)`));
    const j = run(['services', '-o', 'json']);
    assert.equal(j.status, 0, j.out);
    const rows = JSON.parse(j.out) as { id: number; frontend: { address: string; port: number }; service?: { namespace: string; name: string; port: string }; backends: { address: string; port: number; state: string }[] }[];
    assert.equal(rows.length, 2);
    const http = rows.find((r) => r.frontend.port === 80)!;
    assert.deepEqual(http.service, { namespace: 'x', name: 'web', port: 'http' });
    assert.deepEqual(http.backends.map((b) => `${b.address}:${b.port} ${b.state}`).sort(), [`${pods.b1.ip}:8080 active`, `${pods.b2.ip}:8080 active`].sort());
    assert.notEqual(http.id, rows.find((r) => r.frontend.port === 81)!.id);
    const st = run(['status']);
    assert.match(st.out, new RegExp(`services:  hooks (\\d+)/\\1 attached at ${cg}; 2 frontends, 4 backends programmed; last sync`));
    const js = JSON.parse(run(['status', '-o', 'json']).out) as { services?: { frontends: number; cgroupRoot: string } }[];
    assert.equal(js[0]!.services?.frontends, 2);
    assert.equal(js[0]!.services?.cgroupRoot, cg);
    const metrics = run(['metrics']).out;
    assert.match(metrics, /^twill_services_frontends 2$/m);
    assert.match(metrics, /^twill_services_backends\{state="active"\} 4$/m);
    assert.match(metrics, /^twill_services_sync_timestamp_seconds \d+(\.\d+)?$/m);
  });

  it('updates from the file: a backend removed, then none (ECONNREFUSED at once), then terminating-only; ids stay', () => {
    const idsBefore = (JSON.parse(run(['services', '-o', 'json']).out) as { id: number }[]).map((r) => r.id).sort();
    writeObjects([{ pod: 'b1' }]);
    syncFile();
    assert.deepEqual(names(client(VIP, 80, 10)), new Set(['b1:8080']));
    writeObjects([]);
    syncFile();
    for (const r of client(VIP, 80, 3)) {
      assert.equal(r.err, 'ECONNREFUSED');
      assert.ok(r.ms < 200, `refused in ${r.ms} ms`);
    }
    assert.match(run(['services']).out, /\(none: reject\)/);
    writeObjects([{ pod: 'b2', ready: false, terminating: true }]);
    syncFile();
    assert.deepEqual(names(client(VIP, 80, 10)), new Set(['b2:8080']));
    const rows = JSON.parse(run(['services', '-o', 'json']).out) as { id: number; backends: { state: string }[] }[];
    assert.deepEqual(rows.map((r) => r.id).sort(), idsBefore, 'the Service ports keep their ids');
    assert.deepEqual(rows[0]!.backends.map((b) => b.state), ['terminating']);
  });

  it('sync --cleanup removes the hooks and the maps; the ClusterIP is no longer translated', () => {
    const r = run(['sync', '--cleanup']);
    assert.equal(r.status, 0, r.out);
    assert.match(r.out, /services: removed [1-9]\d* hooks from .*maps unpinned/);
    assert.ok(!existsSync(`${bpffs.root}/twill-node`) || readdirSync(`${bpffs.root}/twill-node`).every((f) => !f.startsWith('lb_')), 'no Service map pinned');
    assert.notEqual(run(['services']).status, 0);
    const after = client(VIP, 80)[0]!;
    assert.ok(after.err, `untranslated: ${JSON.stringify(after)}`);
    assert.ok(!existsSync(`${net.stateDir}/services`), 'the Services state went with the maps');
  });

  it('sync --watch: an EndpointSlice change from the API server reaches the kernel', async () => {
    const dir = tempDir(`${ID}-kube`);
    const kube = new FakeKube('token-s');
    let sync: ChildProcess | undefined;
    let log = '';
    try {
      await kube.start(dir);
      kube.writeKubeconfig(dir, 'token: token-s');
      kube.put('Service', service);
      kube.put('EndpointSlice', slice([{ pod: 'b1' }]));
      sync = spawn(TWILL, ['sync', '--kubeconfig', `${dir}/kubeconfig`, '--watch', '3600', '--conf-dir', confDir], { stdio: ['ignore', 'ignore', 'pipe'] });
      sync.stderr!.on('data', (d: Buffer) => (log += d.toString()));
      const t0 = Date.now();
      while (!log.includes('services synced') && Date.now() - t0 < 15_000) await sleep(50);
      assert.match(log, /services synced/);
      assert.deepEqual(names(client(VIP, 80, 5)), new Set(['b1:8080']));
      kube.put('EndpointSlice', slice([{ pod: 'b2' }]));
      const t1 = Date.now();
      let got = new Set<string>();
      while (Date.now() - t1 < 5000) {
        got = names(client(VIP, 80, 5));
        if (got.size === 1 && got.has('b2:8080')) break;
        await sleep(20);
      }
      assert.deepEqual(got, new Set(['b2:8080']), `sync log:\n${log}`);
    } finally {
      sync?.kill();
      kube.stop();
      removeDir(dir);
    }
  });
});
