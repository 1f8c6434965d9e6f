// `twill sync --watch` answers a LoadBalancer Service's healthCheckNodePort as kube-proxy does,
// on the node's address (its Node's InternalIP, here on a veth this test makes): 200
// while the Service has a local endpoint, 503 once none is local, refused once the Service is
// gone; a port another process holds is a problem of the sync, not a crash.
import { removeCgroup } from '../../testkit/cgroup.js';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { cgroup2Mount } from '../../lib/bpf/attach/cgroup.js';
import { testNet } from '../helpers/netconf.js';
import { tempBpffs } from '../helpers/traffic.js';
import { removeDir, sh, tempDir, TWILL } from '../helpers/twill.js';

const ID = `tsh${process.pid % 100000}`;
const DEV = `${ID}d`;
const NODE_IP = `10.254.${process.pid % 250}.1`;
const VIP = `10.97.${process.pid % 200}.${10 + (process.pid % 40)}`;

const mount = cgroup2Mount();
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A port free on NODE_IP right now (and a server holding one, for the clash). */
const hold = (): Promise<Server> => new Promise((res, rej) => {
  const s = createServer();
  s.once('error', rej);
  s.listen({ port: 0, host: NODE_IP }, () => res(s));
});
const portOf = (s: Server): number => (s.address() as { port: number }).port;

type Answer = { status: number; weight: string | null; type: string | null; nosniff: string | null; body: string } | { error: string };
async function ask(port: number, path = '/healthz'): Promise<Answer> {
  try {
    const r = await fetch(`http://${NODE_IP}:${port}${path}`, { signal: AbortSignal.timeout(2000) });
    return { status: r.status, weight: r.headers.get('x-load-balancing-endpoint-weight'), type: r.headers.get('content-type'), nosniff: r.headers.get('x-content-type-options'), body: await r.text() };
  } catch (e) {
    const c = (e as { cause?: { code?: string } }).cause;
    return { error: c?.code ?? (e as Error).message };
  }
}
async function until(port: number, ok: (a: Answer) => boolean, what: string, log: () => string): Promise<Answer> {
  let a: Answer = { error: 'not asked' };
  for (const t0 = Date.now(); Date.now() - t0 < 15_000; await sleep(100)) if (ok((a = await ask(port)))) return a;
  assert.fail(`${what}: last answer ${JSON.stringify(a)}\nsync output:\n${log()}`);
}

describe('twill sync --watch serves healthCheckNodePorts', { skip: !mount && 'no cgroup v2 mount' }, () => {
  const net = testNet();
  const bpffs = tempBpffs();
  const confDir = tempDir(`${ID}-conf`);
  const cg = `${mount}/${ID}`;
  const conf = net.conf({ bpffsRoot: bpffs.root, cgroupRoot: cg, nodeName: ID, services: { type: 'k8s', devices: [DEV] } });
  const file = `${confDir}/objects.yaml`;
  let sync: ChildProcess | undefined;
  let out = '';

  const node = { apiVersion: 'v1', kind: 'Node', metadata: { name: ID }, spec: { podCIDR: '10.254.250.0/24' }, status: { addresses: [{ type: 'InternalIP', address: NODE_IP }] } };
  const service = (name: string, hc: number, np: number) => ({
    apiVersion: 'v1', kind: 'Service', metadata: { namespace: 'x', name },
    spec: { type: 'LoadBalancer', clusterIP: VIP, clusterIPs: [VIP], ipFamilies: ['IPv4'], externalTrafficPolicy: 'Local', healthCheckNodePort: hc, ports: [{ name: 'http', port: name === 'web' ? 80 : 81, protocol: 'TCP', targetPort: 8080, nodePort: np }] },
  });
  const slice = (name: string, nodeName: string) => ({
    apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { namespace: 'x', name: `${name}-abcde`, labels: { 'kubernetes.io/service-name': name } }, addressType: 'IPv4',
    ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
    endpoints: [{ addresses: ['10.254.250.11'], nodeName, conditions: { ready: true, serving: true, terminating: false } }],
  });
  const write = (objs: object[]): void => writeFileSync(file, objs.map((o) => `---\n${JSON.stringify(o)}`).join('\n'));

  before(() => {
    mkdirSync(cg);
    sh('ip', ['link', 'add', DEV, 'type', 'veth', 'peer', 'name', `${DEV}p`]);
    sh('ip', ['addr', 'add', `${NODE_IP}/32`, 'dev', DEV]);
    for (const d of [DEV, `${DEV}p`]) sh('ip', ['link', 'set', d, 'up']);
    writeFileSync(`${confDir}/10-${ID}.conflist`, JSON.stringify({ cniVersion: '1.1.0', name: conf.name, plugins: [conf] }));
  });

  after(() => {
    sync?.kill();
    spawnSync(TWILL, ['sync', '--cleanup', '--conf-dir', confDir], { encoding: 'utf8', timeout: 60_000 });
    sh('ip', ['link', 'del', DEV], { allowFail: true });
    removeCgroup(cg);
    bpffs.release();
    for (const d of [confDir, net.stateDir, net.dataDir]) removeDir(d);
  });

  it('200 with a local endpoint, 503 without, refused once the Service goes; a port in use is a problem', async () => {
    const free = await hold();
    const hc = portOf(free);
    await new Promise((r) => free.close(r));
    write([node, service('web', hc, 30000 + (process.pid % 2000)), slice('web', ID)]);
    sync = spawn(TWILL, ['sync', '--from-file', file, '--watch', '1', '--conf-dir', confDir], { stdio: ['ignore', 'pipe', 'pipe'] });
    sync.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    sync.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    const log = (): string => out.slice(-4000);

    const up = await until(hc, (a) => 'status' in a, 'served', log);
    assert.ok('status' in up);
    assert.equal(up.status, 200, up.body);
    assert.equal(up.weight, '1');
    assert.equal(up.type, 'application/json');
    assert.equal(up.nosniff, 'nosniff');
    assert.equal(up.body, `{\n\t"service": {\n\t\t"namespace": "x",\n\t\t"name": "web"\n\t},\n\t"localEndpoints": 1,\n\t"serviceProxyHealthy": true\n}`);
    const other = await ask(hc, '/any/path?x=1');
    assert.ok('status' in other && other.status === 200, 'any path');

    write([node, service('web', hc, 30000 + (process.pid % 2000)), slice('web', 'elsewhere')]);
    const down = await until(hc, (a) => 'status' in a && a.status === 503, '503 without a local endpoint', log);
    assert.ok('status' in down);
    assert.equal(down.weight, '0');
    assert.deepEqual(JSON.parse(down.body), { service: { namespace: 'x', name: 'web' }, localEndpoints: 0, serviceProxyHealthy: true });

    // Another process holds the second Service's port: reported, and the first keeps being served.
    const held = await hold();
    const hc2 = portOf(held);
    try {
      write([node, service('web', hc, 30000 + (process.pid % 2000)), slice('web', ID), service('web2', hc2, 32001 + (process.pid % 700)), slice('web2', ID)]);
      for (const t0 = Date.now(); Date.now() - t0 < 15_000 && !/problem: healthCheckNodePort of x\/web2: listen on .*EADDRINUSE/.test(out); ) await sleep(100);
      assert.match(out, new RegExp(`problem: healthCheckNodePort of x/web2: listen on ${NODE_IP.replace(/\./g, '\\.')}:${hc2}: EADDRINUSE`), log());
      assert.equal(sync.exitCode, null, 'the sync keeps running');
      await until(hc, (a) => 'status' in a && a.status === 200, 'the first Service still served', log);
    } finally {
      await new Promise((r) => held.close(r));
    }

    write([node]);
    await until(hc, (a) => 'error' in a && a.error === 'ECONNREFUSED', 'refused once the Service is gone', log);
    assert.equal(sync.exitCode, null, 'the sync keeps running');
  });
});
