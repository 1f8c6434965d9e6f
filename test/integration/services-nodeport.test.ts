// Services from outside the node, in the kernel: bpf/twill_nodeport.c attached by tcx on a
// device of this host (the host end of a veth whose other end is an "outside" network
// namespace), external-scope frontends written by applyServices, backends in namespaces
// routed from the host. The program only creates conntrack entries with their NAT; the
// stack's nf_nat translates every packet, the first one included.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { ensureNodePortPrograms, nodePortLinkPin, removeNodePortPrograms } from '../../lib/datapath/nodeport.js';
import { applyServices, openServiceMaps } from '../../lib/datapath/services.js';
import { loadManifestObject, nodeDir } from '../../lib/bpf/loader.js';
import { SOCK_OBJECT } from '../../lib/bpf/manifest.js';
import { memoryRecord } from '../../lib/mirror/record.js';
import type { LbFrontend, ServiceBackend } from '../../lib/services/model.js';
import { removeDir, sh, tempDir } from '../helpers/twill.js';
import { inNetns, openNetns } from '../../lib/sys/netns.js';
import { NAT_HOOKS_TABLE } from '../../lib/datapath/nodeport.js';
import { tempBpffs } from '../helpers/traffic.js';

const ID = `tsn${process.pid % 100000}`;
const OUT = `${ID}out`;
const EXT = `${ID}ext`; // the host's external device under test
const NODE = '10.252.7.1', CLIENT = '10.252.7.2';
const BACKENDS = { b1: 1, b2: 2, b3: 3 } as const;
type B = keyof typeof BACKENDS;
const bns = (b: B): string => `${ID}${b}`;
const bhost = (b: B): string => `${ID}h${b}`;
const baddr = (b: B): string => `10.253.${BACKENDS[b]}.11`;

// Each backend: TCP on 8080 says "<name>:<client address>" and then echoes; UDP on 5353 answers the same.
const SERVER = `
import socket, sys, threading
name = sys.argv[1]
def serve(c, a):
    try:
        c.sendall(('%s:%s' % (name, a[0])).encode())
        while True:
            d = c.recv(100)
            if not d: break
            c.sendall(d)
    except OSError: pass
    c.close()
def tcp():
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(('0.0.0.0', 8080)); s.listen(128)
    while True:
        c, a = s.accept(); threading.Thread(target=serve, args=(c, a), daemon=True).start()
threading.Thread(target=tcp, daemon=True).start()
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(('0.0.0.0', 5353))
while True:
    d, a = u.recvfrom(100); u.sendto(('%s:%s' % (name, a[0])).encode(), a)
`;

// From the outside namespace: n TCP connections or UDP exchanges, or one connection held open
// until a file appears and then used once more (op.hold).
const CLIENT_PY = `
import socket, sys, json, time, errno, os
op = json.loads(sys.argv[1])
def err(e): return errno.errorcode.get(e.errno, str(e)) if getattr(e, 'errno', None) else 'TIMEOUT'
def tcp():
    s = socket.socket(); s.settimeout(op.get('timeout', 3)); t = time.monotonic()
    try:
        s.connect((op['addr'], op['port'])); peer = s.getpeername()
        r = {'who': s.recv(100).decode(), 'peer': '%s:%d' % peer}
        if 'hold' in op:
            while not os.path.exists(op['hold']): time.sleep(0.05)
            s.sendall(b'still'); r['echo'] = s.recv(100).decode()
        return r
    except OSError as e: return {'err': err(e), 'ms': (time.monotonic() - t) * 1000}
    finally: s.close()
def udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(op.get('timeout', 3))
    try:
        s.sendto(b'hi', (op['addr'], op['port'])); d, f = s.recvfrom(100)
        return {'who': d.decode(), 'peer': '%s:%d' % f}
    except OSError as e: return {'err': err(e)}
    finally: s.close()
f = udp if op['kind'] == 'udp' else tcp
print(json.dumps([f() for _ in range(op.get('n', 1))]))
`;

interface Result {
  who?: string;
  peer?: string;
  echo?: string;
  err?: string;
  ms?: number;
}

interface Op {
  kind: 'tcp' | 'udp';
  port: number;
  addr?: string;
  n?: number;
  timeout?: number;
  hold?: string;
}

const run = (op: Op): Result[] => {
  const r = spawnSync('ip', ['netns', 'exec', OUT, 'python3', '-c', CLIENT_PY, JSON.stringify({ addr: NODE, ...op })], { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`client: ${r.stderr}`);
  return JSON.parse(r.stdout) as Result[];
};

const runAsync = (op: Op): Promise<Result[]> => new Promise((res, rej) => {
  const p = spawn('ip', ['netns', 'exec', OUT, 'python3', '-c', CLIENT_PY, JSON.stringify({ addr: NODE, ...op })]);
  let out = '', errs = '';
  p.stdout.on('data', (d) => (out += d));
  p.stderr.on('data', (d) => (errs += d));
  p.on('close', (code) => (code === 0 ? res(JSON.parse(out) as Result[]) : rej(new Error(`client: ${errs}`))));
});

const who = (r: Result): string => r.who ?? `error ${r.err}`;

describe('Services from outside the node (tcx on the external device, kernel conntrack/NAT)', () => {
  const bpffs = tempBpffs();
  const stateDir = tempDir('tsn-state');
  const record = memoryRecord();
  const servers: ChildProcess[] = [];
  let svc: ReturnType<typeof openServiceMaps>;

  const be = (bs: B[], port: number, local = true): ServiceBackend[] => bs.map((b) => ({ address: baddr(b), port, local }) as ServiceBackend);
  const fe = (f: Partial<LbFrontend> & Pick<LbFrontend, 'port' | 'backends'>): LbFrontend => ({
    family: 4, address: NODE, protocol: 'TCP', scope: 'external', serviceId: 1, terminating: [], whenEmpty: 'reject', affinitySeconds: 0, ...f,
  });
  const apply = (fes: LbFrontend[]): void => {
    applyServices(svc!.maps, fes, record);
  };

  before(() => {
    sh('ip', ['netns', 'add', OUT]);
    sh('ip', ['link', 'add', EXT, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', OUT]);
    sh('ip', ['addr', 'add', `${NODE}/24`, 'dev', EXT]);
    sh('ip', ['link', 'set', EXT, 'up']);
    sh('ip', ['-n', OUT, 'addr', 'add', `${CLIENT}/24`, 'dev', 'eth0']);
    sh('ip', ['-n', OUT, 'link', 'set', 'eth0', 'up']);
    sh('ip', ['-n', OUT, 'link', 'set', 'lo', 'up']);
    for (const b of Object.keys(BACKENDS) as B[]) {
      sh('ip', ['netns', 'add', bns(b)]);
      sh('ip', ['link', 'add', bhost(b), 'type', 'veth', 'peer', 'name', 'eth0', 'netns', bns(b)]);
      sh('ip', ['addr', 'add', `10.253.${BACKENDS[b]}.1/24`, 'dev', bhost(b)]);
      sh('ip', ['link', 'set', bhost(b), 'up']);
      sh('ip', ['-n', bns(b), 'addr', 'add', `${baddr(b)}/24`, 'dev', 'eth0']);
      sh('ip', ['-n', bns(b), 'link', 'set', 'eth0', 'up']);
      sh('ip', ['-n', bns(b), 'link', 'set', 'lo', 'up']);
      sh('ip', ['-n', bns(b), 'route', 'add', 'default', 'via', `10.253.${BACKENDS[b]}.1`]);
      servers.push(spawn('ip', ['netns', 'exec', bns(b), 'python3', '-c', SERVER, b], { stdio: 'ignore' }));
    }
    // The Service maps are the socket object's: they exist once it is loaded (as ensureServiceHooks does).
    loadManifestObject(SOCK_OBJECT, { root: bpffs.root, sizes: { endpoints: 0 } }).close();
    const r = ensureNodePortPrograms({ bpffsRoot: bpffs.root, stateDir }, [EXT]);
    assert.deepEqual(r.attached, [EXT]);
    assert.equal(r.snat.v4, NODE);
    svc = openServiceMaps(bpffs.root);
    for (let i = 0; i < 50; i++) {
      const ok = (Object.keys(BACKENDS) as B[]).every((b) => spawnSync('ip', ['netns', 'exec', OUT, 'python3', '-c', CLIENT_PY, JSON.stringify({ kind: 'tcp', addr: baddr(b), port: 8080 })], { encoding: 'utf8' }).stdout.includes(`${b}:`));
      if (ok) break;
      spawnSync('sleep', ['0.1']);
    }
  });

  after(() => {
    svc?.close();
    for (const s of servers) s.kill();
    try {
      removeNodePortPrograms({ bpffsRoot: bpffs.root, stateDir });
    } catch {
      // nothing attached
    }
    sh('ip', ['link', 'del', EXT], { allowFail: true });
    for (const b of Object.keys(BACKENDS) as B[]) {
      sh('ip', ['link', 'del', bhost(b)], { allowFail: true });
      sh('ip', ['netns', 'del', bns(b)], { allowFail: true });
    }
    sh('ip', ['netns', 'del', OUT], { allowFail: true });
    sh('conntrack', ['-D', '-s', CLIENT], { allowFail: true });
    bpffs.release();
    removeDir(stateDir);
  });

  it('TCP to nodeAddr:nodePort reaches a backend from the first SYN; the client sees the node, the backend sees the client', () => {
    apply([fe({ port: 30080, backends: be(['b1', 'b2'], 8080) })]);
    const rs = run({ kind: 'tcp', port: 30080, n: 6 });
    for (const r of rs) {
      assert.match(who(r), new RegExp(`^b[12]:${CLIENT.replace(/\./g, '\\.')}$`));
      assert.equal(r.peer, `${NODE}:30080`);
    }
    assert.ok(new Set(rs.map((r) => r.who)).size >= 1);
  });

  it('UDP: the very first datagram is translated and answered from the node address', () => {
    apply([fe({ port: 30053, protocol: 'UDP', serviceId: 2, backends: be(['b1', 'b2'], 5353) })]);
    const rs = run({ kind: 'udp', port: 30053, n: 4 });
    for (const r of rs) {
      assert.match(who(r), new RegExp(`^b[12]:${CLIENT.replace(/\./g, '\\.')}$`));
      assert.equal(r.peer, `${NODE}:30053`);
    }
  });

  it('traffic policy Cluster, backend on another node: SNAT to the node, replies translated back', () => {
    apply([fe({ port: 30081, serviceId: 3, backends: be(['b3'], 8080, false) }), fe({ port: 30054, protocol: 'UDP', serviceId: 4, backends: be(['b3'], 5353, false) })]);
    const [t] = run({ kind: 'tcp', port: 30081 });
    assert.equal(who(t!), `b3:${NODE}`);
    assert.equal(t!.peer, `${NODE}:30081`);
    const [u] = run({ kind: 'udp', port: 30054 });
    assert.equal(who(u!), `b3:${NODE}`);
    assert.equal(u!.peer, `${NODE}:30054`);
  });

  it('no endpoints (reject) and traffic policy Local without a local one (drop): the packet is dropped', () => {
    apply([fe({ port: 30082, serviceId: 5, backends: [], whenEmpty: 'reject' }), fe({ port: 30083, serviceId: 6, backends: [], whenEmpty: 'drop' })]);
    for (const port of [30082, 30083]) {
      const [r] = run({ kind: 'tcp', port, timeout: 1 });
      assert.equal(r!.err, 'TIMEOUT', `port ${port}: ${JSON.stringify(r)}`);
    }
  });

  it('a port that is no frontend is untouched: the node itself answers', () => {
    apply([fe({ port: 30080, backends: be(['b1'], 8080) })]);
    // Nothing listens on the node at 30099: the node's own RST, at once.
    const [r] = run({ kind: 'tcp', port: 30099, timeout: 2 });
    assert.equal(r!.err, 'ECONNREFUSED');
    // The same port over UDP is no frontend either.
    const [u] = run({ kind: 'udp', port: 30080, timeout: 1 });
    assert.ok(u!.err, JSON.stringify(u));
  });

  it('removing the frontend stops new connections; an established one keeps going through conntrack', async () => {
    apply([fe({ port: 30085, serviceId: 7, backends: be(['b1'], 8080) })]);
    const flag = `${stateDir}/go`;
    const held = runAsync({ kind: 'tcp', port: 30085, hold: flag, timeout: 10 });
    await new Promise((r) => setTimeout(r, 700));
    apply([]);
    const [fresh] = run({ kind: 'tcp', port: 30085, timeout: 2 });
    assert.equal(fresh!.err, 'ECONNREFUSED', JSON.stringify(fresh));
    writeFileSync(flag, '');
    const [h] = await held;
    assert.equal(h!.who, `b1:${CLIENT}`);
    assert.equal(h!.echo, 'still');
  });

  it('idempotent: a second ensure attaches nothing; a device no longer listed is detached', () => {
    const again = ensureNodePortPrograms({ bpffsRoot: bpffs.root, stateDir }, [EXT]);
    assert.deepEqual(again.attached, []);
    assert.equal(again.report.reloaded, false);
    const none = ensureNodePortPrograms({ bpffsRoot: bpffs.root, stateDir }, []);
    assert.deepEqual(none.detached, [EXT]);
    assert.ok(!existsSync(nodePortLinkPin(bpffs.root, EXT)));
    apply([fe({ port: 30086, serviceId: 8, backends: be(['b1'], 8080) })]);
    const [r] = run({ kind: 'tcp', port: 30086, timeout: 2 });
    assert.equal(r!.err, 'ECONNREFUSED', 'without the program the node answers as its own');
    ensureNodePortPrograms({ bpffsRoot: bpffs.root, stateDir }, [EXT]);
    assert.equal(who(run({ kind: 'tcp', port: 30086 })[0]!), `b1:${CLIENT}`);
    assert.ok(existsSync(`${nodeDir(bpffs.root)}/lb_np_snat`));
  });
});

// A node whose namespace has no netfilter rule at all (a fresh netns stands for it): the
// kernel runs neither conntrack nor nf_nat there, and an entry the program makes would never
// be applied. ensureNodePortPrograms registers both (an nftables nat chain and a ct rule).
describe('Services from outside a node without netfilter rules of its own', () => {
  const bpffs = tempBpffs();
  const stateDir = tempDir('tsn-state2');
  const N = `${ID}n`, O = `${ID}o`, BK = `${ID}k`;
  let srv: ChildProcess | undefined;
  const inNode = <T>(fn: () => T): T => {
    const ns = openNetns(`/run/netns/${N}`);
    try {
      return inNetns(ns, fn);
    } finally {
      ns.close();
    }
  };

  before(() => {
    for (const n of [N, O, BK]) sh('ip', ['netns', 'add', n]);
    sh('ip', ['-n', N, 'link', 'add', 'ext', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', O]);
    sh('ip', ['-n', N, 'link', 'add', 'tob', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', BK]);
    sh('ip', ['-n', N, 'addr', 'add', '10.254.9.1/24', 'dev', 'ext']);
    sh('ip', ['-n', N, 'addr', 'add', '10.254.8.1/24', 'dev', 'tob']);
    sh('ip', ['-n', O, 'addr', 'add', '10.254.9.2/24', 'dev', 'eth0']);
    sh('ip', ['-n', BK, 'addr', 'add', '10.254.8.2/24', 'dev', 'eth0']);
    for (const [n, d] of [[N, 'ext'], [N, 'tob'], [O, 'eth0'], [BK, 'eth0'], [N, 'lo'], [O, 'lo'], [BK, 'lo']] as const) sh('ip', ['-n', n, 'link', 'set', d, 'up']);
    sh('ip', ['-n', BK, 'route', 'add', 'default', 'via', '10.254.8.1']);
    sh('ip', ['netns', 'exec', N, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
    srv = spawn('ip', ['netns', 'exec', BK, 'python3', '-c', SERVER, 'k'], { stdio: 'ignore' });
    loadManifestObject(SOCK_OBJECT, { root: bpffs.root, sizes: { endpoints: 0 } }).close();
  });

  after(() => {
    srv?.kill();
    for (const n of [N, O, BK]) sh('ip', ['netns', 'del', n], { allowFail: true });
    bpffs.release();
    removeDir(stateDir);
  });

  it('the first datagram and the first SYN are translated; the nat-hooks table goes with the program', () => {
    assert.equal(sh('ip', ['netns', 'exec', N, 'nft', 'list', 'ruleset']).trim(), '');
    inNode(() => ensureNodePortPrograms({ bpffsRoot: bpffs.root, stateDir }, ['ext']));
    const svc = openServiceMaps(bpffs.root)!;
    try {
      const f = { family: 4 as const, address: '10.254.9.1', scope: 'external' as const, terminating: [], whenEmpty: 'reject' as const, affinitySeconds: 0 };
      applyServices(svc.maps, [
        { ...f, port: 30053, protocol: 'UDP', serviceId: 1, backends: [{ address: '10.254.8.2', port: 5353, local: true } as ServiceBackend] },
        { ...f, port: 30080, protocol: 'TCP', serviceId: 2, backends: [{ address: '10.254.8.2', port: 8080, local: true } as ServiceBackend] },
      ], memoryRecord());
    } finally {
      svc.close();
    }
    const out = (op: Op): Result => {
      for (let i = 0; i < 30; i++) {
        const r = spawnSync('ip', ['netns', 'exec', O, 'python3', '-c', CLIENT_PY, JSON.stringify({ addr: '10.254.9.1', timeout: 1, ...op })], { encoding: 'utf8' });
        const res = (JSON.parse(r.stdout) as Result[])[0]!;
        if (res.err !== 'ECONNREFUSED' || i === 29) return res; // the server may still be starting
        spawnSync('sleep', ['0.1']);
      }
      throw new Error('unreachable');
    };
    assert.equal(who(out({ kind: 'tcp', port: 30080 })), 'k:10.254.9.2');
    assert.equal(who(out({ kind: 'udp', port: 30053 })), 'k:10.254.9.2');
    inNode(() => removeNodePortPrograms({ bpffsRoot: bpffs.root, stateDir }));
    assert.doesNotMatch(sh('ip', ['netns', 'exec', N, 'nft', 'list', 'ruleset']), new RegExp(NAT_HOOKS_TABLE));
  });
});
