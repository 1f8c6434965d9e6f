// Services at the socket, in the kernel: the cgroup hooks of bpf/twill_sock.c attached to a
// cgroup this test makes, frontends written by applyServices, and real traffic from "pods"
// (network namespaces on one bridge) whose client runs inside that cgroup.
import { removeCgroup } from '../../testkit/cgroup.js';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { cgroup2Mount, cgroupLinkPin } from '../../lib/bpf/attach/cgroup.js';
import { closeFd, mapKeys, objGet, objInfo } from '../../lib/bpf/sys.js';
import { bpfObject } from '../../lib/bpf/object.js';
import { applyServices, cgroupTag, ensureServiceHooks, openServiceMaps, removeServiceHooks } from '../../lib/datapath/services.js';
import { memoryRecord } from '../../lib/mirror/record.js';
import { loadObject, openObject } from '../../lib/bpf/loader.js';
import { SOCK_OBJECT } from '../../lib/bpf/manifest.js';
import type { LbFrontend, ServiceBackend } from '../../lib/services/model.js';
import { cleanupNetns, inNs, makeNetns, netnsPath, sh, tempDir, removeDir, twill } from '../helpers/twill.js';
import { testNet } from '../helpers/netconf.js';
import { tempBpffs } from '../helpers/traffic.js';

const ID = `tsv${process.pid % 100000}`;
const HUB = `${ID}hub`;
const PODS = { b1: 11, b2: 12, b3: 13, c1: 21, c2: 22 } as const;
type Pod = keyof typeof PODS;
const ns = (p: Pod): string => `${ID}${p}`;
const v4 = (p: Pod): string => `10.251.0.${PODS[p]}`;
const v6 = (p: Pod): string => `fd00:251::${PODS[p]}`;
const VIP = '10.96.0.10', VIP6 = 'fd00:96::10';

// Each backend answers with its name and port: TCP on 8080 and 9090, UDP on 5353; dual-stack.
const SERVER = `
import socket, sys, threading
name = sys.argv[1]
def tcp(port):
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(('::', port)); s.listen(128)
    while True:
        c, _ = s.accept()
        try: c.sendall(('%s:%d' % (name, port)).encode())
        except OSError: pass
        c.close()
def udp(port):
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(('::', port))
    while True:
        d, a = s.recvfrom(100)
        s.sendto(('%s:%d' % (name, port)).encode(), a)
for p in (8080, 9090): threading.Thread(target=tcp, args=(p,), daemon=True).start()
udp(5353)
`;

// One client run: connects (or datagrams) as op says, one JSON line of results.
const CLIENT = `
import socket, sys, json, time, errno, os
op = json.loads(sys.argv[1])
def fam(a): return socket.AF_INET6 if ':' in a else socket.AF_INET
def err(e): return errno.errorcode.get(e.errno, str(e)) if e.errno else 'TIMEOUT'
def tcp(a, p):
    s = socket.socket(fam(a), socket.SOCK_STREAM); s.settimeout(3)
    t = time.monotonic()
    try:
        s.connect((a, p)); peer = s.getpeername()
        d = s.recv(100).decode()
        return {'who': d, 'peer': '%s:%d' % (peer[0], peer[1]), 'ms': (time.monotonic() - t) * 1000}
    except OSError as e:
        return {'err': err(e), 'ms': (time.monotonic() - t) * 1000}
    finally: s.close()
def udp(a, p):
    s = socket.socket(fam(a), socket.SOCK_DGRAM); s.settimeout(3)
    t = time.monotonic()
    try:
        s.sendto(b'hi', (a, p)); d, f = s.recvfrom(100)
        return {'who': d.decode(), 'peer': '%s:%d' % (f[0], f[1]), 'ms': (time.monotonic() - t) * 1000}
    except OSError as e:
        return {'err': err(e), 'ms': (time.monotonic() - t) * 1000}
    finally: s.close()
if op['kind'] == 'loop':
    out = []
    while not os.path.exists(op['stop']): out.append(tcp(op['addr'], op['port']))
else:
    f = tcp if op['kind'] == 'tcp' else udp
    out = [f(op['addr'], op['port']) for _ in range(op.get('n', 1))]
print(json.dumps(out))
`;

interface Result {
  who?: string;
  peer?: string;
  err?: string;
  ms: number;
}

interface Op {
  kind: 'tcp' | 'udp' | 'loop';
  addr: string;
  port: number;
  n?: number;
  stop?: string;
}

const haveMount = cgroup2Mount();

describe('Services at the socket (cgroup hooks, real traffic)', { skip: !haveMount && 'no cgroup v2 mount' }, () => {
  const bpffs = tempBpffs();
  const stateDir = tempDir('tsv-state');
  const cg = `${haveMount}/${ID}`;
  const servers: ChildProcess[] = [];
  const record = memoryRecord();
  let svc: ReturnType<typeof openServiceMaps>;

  const script = (inCgroup: boolean): string => (inCgroup ? `echo $$ > ${cg}/cgroup.procs && exec ip netns exec "$1" python3 -c "$0" "$2"` : 'exec ip netns exec "$1" python3 -c "$0" "$2"');
  const client = (pod: Pod, op: Op, inCgroup = true): Result[] => {
    const r = spawnSync('sh', ['-c', script(inCgroup), CLIENT, ns(pod), JSON.stringify(op)], { encoding: 'utf8', timeout: 60_000 });
    if (r.status !== 0) throw new Error(`client: ${r.stderr}`);
    return JSON.parse(r.stdout) as Result[];
  };
  const clientAsync = (pod: Pod, op: Op): Promise<Result[]> => new Promise((res, rej) => {
    const p = spawn('sh', ['-c', script(true), CLIENT, ns(pod), JSON.stringify(op)]);
    let out = '', errs = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (errs += d));
    p.on('close', (code) => (code === 0 ? res(JSON.parse(out) as Result[]) : rej(new Error(`client: ${errs}`))));
  });
  const be = (pods: Pod[], port: number, family: 4 | 6 = 4): ServiceBackend[] => pods.map((p) => ({ address: family === 4 ? v4(p) : v6(p), port }));
  const fe = (f: Partial<LbFrontend> & Pick<LbFrontend, 'port' | 'backends'>): LbFrontend => ({
    family: 4, address: VIP, protocol: 'TCP', scope: 'internal', serviceId: 1, terminating: [], whenEmpty: 'reject', affinitySeconds: 0, ...f,
  });
  const apply = (fes: LbFrontend[]): void => {
    applyServices(svc!.maps, fes, record);
  };
  const names = (rs: Result[]): string[] => rs.map((r) => r.who ?? `error ${r.err}`);

  before(() => {
    sh('ip', ['netns', 'add', HUB]);
    sh('ip', ['-n', HUB, 'link', 'add', 'br0', 'type', 'bridge']);
    sh('ip', ['-n', HUB, 'link', 'set', 'br0', 'up']);
    for (const p of Object.keys(PODS) as Pod[]) {
      sh('ip', ['netns', 'add', ns(p)]);
      sh('ip', ['-n', HUB, 'link', 'add', p, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns(p)]);
      sh('ip', ['-n', HUB, 'link', 'set', p, 'master', 'br0', 'up']);
      sh('ip', ['-n', ns(p), 'addr', 'add', `${v4(p)}/24`, 'dev', 'eth0']);
      sh('ip', ['-n', ns(p), 'addr', 'add', `${v6(p)}/64`, 'dev', 'eth0', 'nodad']);
      sh('ip', ['-n', ns(p), 'link', 'set', 'eth0', 'up']);
      sh('ip', ['-n', ns(p), 'link', 'set', 'lo', 'up']);
      if (p.startsWith('b')) servers.push(spawn('ip', ['netns', 'exec', ns(p), 'python3', '-c', SERVER, p], { stdio: 'ignore' }));
    }
    mkdirSync(cg);
    ensureServiceHooks({ bpffsRoot: bpffs.root, cgroupRoot: cg, stateDir });
    svc = openServiceMaps(bpffs.root);
    // The servers listen once python is up.
    for (let i = 0; i < 50; i++) {
      if (['b1', 'b2', 'b3'].every((p) => client('c1', { kind: 'tcp', addr: v4(p as Pod), port: 8080 }, false)[0]!.who)) break;
      spawnSync('sleep', ['0.1']);
    }
  });

  after(() => {
    svc?.close();
    for (const s of servers) s.kill();
    try {
      removeServiceHooks({ bpffsRoot: bpffs.root, cgroupRoot: cg, stateDir });
    } catch {
      // the test that removes them ran
    }
    for (const p of Object.keys(PODS) as Pod[]) sh('ip', ['netns', 'del', ns(p)], { allowFail: true });
    sh('ip', ['netns', 'del', HUB], { allowFail: true });
    removeCgroup(cg);
    bpffs.release();
    removeDir(stateDir);
  });

  it('TCP to ClusterIP:port reaches a backend, and getpeername() says the ClusterIP', () => {
    apply([fe({ port: 80, backends: be(['b1', 'b2', 'b3'], 8080) })]);
    const rs = client('c1', { kind: 'tcp', addr: VIP, port: 80, n: 5 });
    for (const r of rs) {
      assert.match(r.who ?? `error ${r.err}`, /^b[123]:8080$/);
      assert.equal(r.peer, `${VIP}:80`);
    }
  });

  it('several ports of one Service go to their own target ports', () => {
    apply([fe({ port: 80, backends: be(['b1', 'b2'], 8080) }), fe({ port: 81, serviceId: 2, backends: be(['b1', 'b2'], 9090) })]);
    assert.match(names(client('c1', { kind: 'tcp', addr: VIP, port: 80 }))[0]!, /^b[12]:8080$/);
    const r = client('c1', { kind: 'tcp', addr: VIP, port: 81 })[0]!;
    assert.match(r.who ?? `error ${r.err}`, /^b[12]:9090$/);
    assert.equal(r.peer, `${VIP}:81`);
  });

  it('UDP sendto the ClusterIP is answered, and recvfrom() says the ClusterIP', () => {
    apply([fe({ port: 53, protocol: 'UDP', serviceId: 3, backends: be(['b1', 'b2', 'b3'], 5353) })]);
    const rs = client('c1', { kind: 'udp', addr: VIP, port: 53, n: 5 });
    for (const r of rs) {
      assert.match(r.who ?? `error ${r.err}`, /^b[123]:5353$/);
      assert.equal(r.peer, `${VIP}:53`);
    }
  });

  it('a Service with no endpoints refuses at once: ECONNREFUSED at connect() and sendto(), no timeout', () => {
    apply([fe({ port: 80, backends: [] }), fe({ port: 53, protocol: 'UDP', serviceId: 3, backends: [] }), fe({ port: 82, serviceId: 4, backends: [], whenEmpty: 'drop' })]);
    for (const r of [...client('c1', { kind: 'tcp', addr: VIP, port: 80, n: 3 }), ...client('c1', { kind: 'udp', addr: VIP, port: 53 }), ...client('c1', { kind: 'tcp', addr: VIP, port: 82 })]) {
      assert.equal(r.err, 'ECONNREFUSED');
      assert.ok(r.ms < 200, `refused in ${r.ms} ms`);
    }
  });

  it('serving-and-terminating endpoints serve only when no endpoint is ready', () => {
    apply([fe({ port: 80, backends: [], terminating: be(['b3'], 8080) })]);
    assert.deepEqual(new Set(names(client('c1', { kind: 'tcp', addr: VIP, port: 80, n: 10 }))), new Set(['b3:8080']));
    apply([fe({ port: 80, backends: be(['b1'], 8080), terminating: be(['b3'], 8080) })]);
    assert.deepEqual(new Set(names(client('c1', { kind: 'tcp', addr: VIP, port: 80, n: 10 }))), new Set(['b1:8080']));
  });

  it('session affinity: 30 connections land on one backend; without it they spread', () => {
    apply([fe({ port: 80, backends: be(['b1', 'b2', 'b3'], 8080) })]);
    assert.ok(new Set(names(client('c1', { kind: 'tcp', addr: VIP, port: 80, n: 30 }))).size > 1, 'spread without affinity');
    apply([fe({ port: 80, backends: be(['b1', 'b2', 'b3'], 8080), affinitySeconds: 10800 })]);
    const got = names(client('c1', { kind: 'tcp', addr: VIP, port: 80, n: 30 }));
    assert.equal(new Set(got).size, 1, got.join(' '));
  });

  it('a hostile pod cannot move another pod\'s affinity: entries are keyed by the kernel\'s netns cookie', () => {
    apply([fe({ port: 80, backends: be(['b1', 'b2', 'b3'], 8080), affinitySeconds: 10800 })]);
    const mine = names(client('c1', { kind: 'tcp', addr: VIP, port: 80 }))[0]!;
    // c2 connects from its own namespace as often as it likes, and to every backend directly.
    for (let i = 0; i < 5; i++) client('c2', { kind: 'tcp', addr: VIP, port: 80, n: 10 });
    for (const p of ['b1', 'b2', 'b3'] as Pod[]) client('c2', { kind: 'tcp', addr: v4(p), port: 8080 });
    assert.deepEqual(new Set(names(client('c1', { kind: 'tcp', addr: VIP, port: 80, n: 10 }))), new Set([mine]));
    const o = openObject(SOCK_OBJECT, bpffs.root)!;
    try {
      assert.equal([...mapKeys(o.maps.get('lb_aff')!, 16)].length, 2, 'one entry per client namespace');
    } finally {
      o.close();
    }
  });

  it('swapping a Service\'s backends never refuses a client that connects meanwhile', async () => {
    apply([fe({ port: 80, backends: be(['b1', 'b2'], 8080) })]);
    const dir = tempDir('tsv-stop');
    const stop = `${dir}/stop`;
    try {
      const loop = clientAsync('c1', { kind: 'loop', addr: VIP, port: 80, stop });
      const sets: Pod[][] = [['b2', 'b3'], ['b3'], ['b1'], ['b1', 'b2', 'b3'], ['b2'], ['b1', 'b3']];
      for (let round = 0; round < 60; round++) {
        apply([fe({ port: 80, backends: be(sets[round % sets.length]!, 8080) })]);
        await new Promise((r) => setTimeout(r, 20));
      }
      writeFileSync(stop, '');
      const rs = await loop;
      const bad = rs.filter((r) => !r.who);
      assert.ok(rs.length > 50, `only ${rs.length} connections`);
      assert.deepEqual(bad, [], `${bad.length} of ${rs.length} failed`);
    } finally {
      removeDir(dir);
    }
  });

  it('a client outside the cgroup is not translated', () => {
    apply([fe({ port: 80, backends: be(['b1'], 8080) })]);
    assert.equal(client('c1', { kind: 'tcp', addr: VIP, port: 80 })[0]!.who, 'b1:8080');
    assert.equal(client('c1', { kind: 'tcp', addr: VIP, port: 80 }, false)[0]!.err, 'ENETUNREACH');
  });

  it('dual-stack: an IPv6 frontend, and an IPv4 Service reached by a v4-mapped address on an AF_INET6 socket', () => {
    apply([
      fe({ port: 80, backends: be(['b1'], 8080) }),
      fe({ family: 6, address: VIP6, port: 80, serviceId: 6, backends: be(['b2', 'b3'], 8080, 6) }),
      fe({ family: 6, address: VIP6, port: 53, protocol: 'UDP', serviceId: 7, backends: be(['b2'], 5353, 6) }),
    ]);
    for (const r of client('c1', { kind: 'tcp', addr: VIP6, port: 80, n: 5 })) {
      assert.match(r.who ?? `error ${r.err}`, /^b[23]:8080$/);
      assert.equal(r.peer, `${VIP6}:80`);
    }
    const u = client('c1', { kind: 'udp', addr: VIP6, port: 53 })[0]!;
    assert.equal(u.who, 'b2:5353');
    assert.equal(u.peer, `${VIP6}:53`);
    const m = client('c1', { kind: 'tcp', addr: `::ffff:${VIP}`, port: 80 })[0]!;
    assert.equal(m.who, 'b1:8080');
    assert.equal(m.peer, `::ffff:${VIP}:80`);
  });

  it('a new build of the object takes over every pinned link (link update), and translation goes on with the same maps', () => {
    apply([fe({ port: 80, backends: be(['b2'], 8080) })]);
    const next = loadObject(SOCK_OBJECT, { ...bpfObject('twill_sock.o'), sha256: 'e'.repeat(64) }, { root: bpffs.root, sizes: { endpoints: 0 } });
    try {
      assert.equal(next.report.reloaded, true);
      for (const p of SOCK_OBJECT.programs.filter((x) => x.attach.kind === 'cgroup')) {
        const link = objGet(cgroupLinkPin(`${bpffs.root}/twill-node/links`, p.name, cgroupTag(cg)))!;
        const progId = objInfo(link).readUInt32LE(8); // bpf_link_info.prog_id
        closeFd(link);
        assert.equal(progId, objInfo(next.programs.get(p.name)!).readUInt32LE(4), p.name);
      }
    } finally {
      next.close();
    }
    const r = client('c1', { kind: 'tcp', addr: VIP, port: 80 })[0]!;
    assert.deepEqual([r.who, r.peer], ['b2:8080', `${VIP}:80`]);
  });

  it('hooks are loaded once: a second ensure attaches nothing new', () => {
    assert.deepEqual(ensureServiceHooks({ bpffsRoot: bpffs.root, cgroupRoot: cg, stateDir }).attached, []);
  });

  it('removeServiceHooks leaves no links and no pins, and sockets are no longer translated', () => {
    svc?.close();
    svc = undefined;
    const r = removeServiceHooks({ bpffsRoot: bpffs.root, cgroupRoot: cg, stateDir });
    assert.equal(r.detached, 8);
    assert.equal(existsSync(`${bpffs.root}/twill-node`), false, readdirSync(bpffs.root).join(' '));
    assert.equal(client('c1', { kind: 'tcp', addr: VIP, port: 80 })[0]!.err, 'ENETUNREACH');
    const links = spawnSync('bpftool', ['cgroup', 'show', cg], { encoding: 'utf8' });
    if (links.status === 0) assert.equal(links.stdout.trim(), '', links.stdout);
  });
});

describe('ADD of a network that serves Services', { skip: !haveMount && 'no cgroup v2 mount' }, () => {
  const bpffs = tempBpffs();
  const net = testNet();
  const cg = `${haveMount}/${ID}add`;
  let podNs: string;
  before(() => {
    mkdirSync(cg);
    podNs = makeNetns();
  });
  after(() => {
    try {
      removeServiceHooks({ bpffsRoot: bpffs.root, cgroupRoot: cg, stateDir: net.stateDir });
    } catch {
      // nothing was attached
    }
    cleanupNetns();
    rmdirSync(cg);
    bpffs.release();
    removeDir(net.dataDir);
  });
  const env = (cmd: string) => ({ CNI_COMMAND: cmd, CNI_CONTAINERID: `${ID}ctr`, CNI_NETNS: netnsPath(podNs), CNI_IFNAME: 'eth0' });

  it('a cgroupRoot that is not cgroup v2 (or not absolute) is a configuration error (7), with nothing attached or pinned', () => {
    for (const cgroupRoot of ['/tmp', '/nonexistent-tsv', 'sys/fs/cgroup', `${cg}/../x`]) {
      const r = twill(env('ADD'), net.conf({ bpffsRoot: bpffs.root, services: { type: 'k8s' }, cgroupRoot }));
      assert.equal(r.json.code, 7, `${cgroupRoot}: ${r.stdout}`);
      assert.match(r.json.msg, /cgroupRoot/);
    }
    assert.equal(existsSync(`${bpffs.root}/twill-node`), false);
    assert.equal(inNs(podNs, ['ip', '-o', 'link', 'show', 'eth0'], true), '');
  });

  it('ADD attaches the node\'s hooks to cgroupRoot (once), and the pod still gets its address', () => {
    const conf = net.conf({ bpffsRoot: bpffs.root, services: { type: 'k8s' }, cgroupRoot: cg });
    const r = twill(env('ADD'), conf);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const links = readdirSync(`${bpffs.root}/twill-node/links`).filter((f) => f.startsWith('twill_'));
    assert.equal(links.length, 8, links.join(' '));
    assert.equal(twill(env('DEL'), conf).code, 0);
  });
});
