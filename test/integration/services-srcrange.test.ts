// loadBalancerSourceRanges from outside the node, in the kernel: bpf/twill_nodeport.c on a
// device of this host (the host end of a veth whose other end is an "outside" namespace with
// two addresses, one inside the ranges and one outside), a load-balancer IP routed to the node,
// frontends written by applyServices and the ranges by services-src.ts. kube-proxy drops a
// source outside the ranges; the program does so before it makes any conntrack entry.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { ensureNodePortPrograms, removeNodePortPrograms } from '../../lib/datapath/nodeport.js';
import { applyServices, openServiceMaps } from '../../lib/datapath/services.js';
import { openSourceRanges, putSourceRanges, readSourceRanges } from '../../lib/datapath/services-src.js';
import { loadManifestObject } from '../../lib/bpf/loader.js';
import { SOCK_OBJECT } from '../../lib/bpf/manifest.js';
import { memoryRecord } from '../../lib/mirror/record.js';
import type { LbFrontend } from '../../lib/services/model.js';
import { removeDir, sh, tempDir } from '../helpers/twill.js';
import { tempBpffs } from '../helpers/traffic.js';

const ID = `tsr${process.pid % 100000}`;
const OUT = `${ID}out`, BNS = `${ID}b`;
const EXT = `${ID}ext`, BHOST = `${ID}hb`;
const NODE = '10.247.61.1', INSIDE = '10.247.61.2', OUTSIDE = '10.247.61.130';
const BACKEND = '10.247.62.11', LB = '10.247.63.10';

// TCP on 8080 says "b:<client address>"; UDP on 5353 answers the same.
const SERVER = `
import socket, threading
def tcp():
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(('0.0.0.0', 8080)); s.listen(128)
    while True:
        c, a = s.accept(); c.sendall(('b:%s' % a[0]).encode()); c.close()
threading.Thread(target=tcp, daemon=True).start()
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(('0.0.0.0', 5353))
while True:
    d, a = u.recvfrom(100); u.sendto(('b:%s' % a[0]).encode(), a)
`;

// From the outside namespace, from the source address op.src.
const CLIENT_PY = `
import socket, sys, json, errno
op = json.loads(sys.argv[1])
kind = socket.SOCK_DGRAM if op['kind'] == 'udp' else socket.SOCK_STREAM
s = socket.socket(socket.AF_INET, kind); s.settimeout(op.get('timeout', 1)); s.bind((op['src'], 0))
try:
    if op['kind'] == 'udp':
        s.sendto(b'hi', (op['addr'], op['port'])); r = s.recvfrom(100)[0].decode()
    else:
        s.connect((op['addr'], op['port'])); r = s.recv(100).decode()
except OSError as e:
    r = 'error ' + (errno.errorcode.get(e.errno, str(e)) if getattr(e, 'errno', None) else 'TIMEOUT')
print(json.dumps(r))
`;

const from = (src: string, op: { kind: 'tcp' | 'udp'; port: number; addr?: string; timeout?: number }): string => {
  const r = spawnSync('ip', ['netns', 'exec', OUT, 'python3', '-c', CLIENT_PY, JSON.stringify({ addr: LB, src, ...op })], { encoding: 'utf8', timeout: 30_000 });
  if (r.status !== 0) throw new Error(`client: ${r.stderr}`);
  return JSON.parse(r.stdout) as string;
};

describe('loadBalancerSourceRanges from outside the node (tcx, lb_src trie)', () => {
  const bpffs = tempBpffs();
  const stateDir = tempDir('tsr-state');
  const record = memoryRecord();
  let server: ChildProcess | undefined;
  let svc: ReturnType<typeof openServiceMaps>;
  let src: ReturnType<typeof openSourceRanges>;

  const fe = (f: Partial<LbFrontend> & Pick<LbFrontend, 'port'>): LbFrontend => ({
    family: 4, address: LB, protocol: 'TCP', scope: 'external', serviceId: 1, terminating: [], whenEmpty: 'reject', affinitySeconds: 0,
    backends: [{ address: BACKEND, port: f.protocol === 'UDP' ? 5353 : 8080, local: true }], ...f,
  });
  // As the sync does: ranges added, frontends written, stale ranges removed.
  const apply = (fes: LbFrontend[], only?: ReadonlySet<number>): void => {
    const round = putSourceRanges(src!.io, fes, only);
    applyServices(svc!.maps, fes, record, only ? { only } : {});
    round.prune();
  };
  const conntrackFrom = (a: string): string => sh('conntrack', ['-L', '-s', a, '-d', LB], { allowFail: true });

  before(() => {
    sh('ip', ['netns', 'add', OUT]);
    sh('ip', ['netns', 'add', BNS]);
    sh('ip', ['link', 'add', EXT, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', OUT]);
    sh('ip', ['addr', 'add', `${NODE}/24`, 'dev', EXT]);
    sh('ip', ['link', 'set', EXT, 'up']);
    for (const a of [INSIDE, OUTSIDE]) sh('ip', ['-n', OUT, 'addr', 'add', `${a}/24`, 'dev', 'eth0']);
    sh('ip', ['-n', OUT, 'link', 'set', 'eth0', 'up']);
    sh('ip', ['-n', OUT, 'link', 'set', 'lo', 'up']);
    // The load balancer sends its IP's traffic to the node.
    sh('ip', ['-n', OUT, 'route', 'add', `${LB}/32`, 'via', NODE]);
    sh('ip', ['link', 'add', BHOST, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', BNS]);
    sh('ip', ['addr', 'add', '10.247.62.1/24', 'dev', BHOST]);
    sh('ip', ['link', 'set', BHOST, 'up']);
    sh('ip', ['-n', BNS, 'addr', 'add', `${BACKEND}/24`, 'dev', 'eth0']);
    sh('ip', ['-n', BNS, 'link', 'set', 'eth0', 'up']);
    sh('ip', ['-n', BNS, 'link', 'set', 'lo', 'up']);
    sh('ip', ['-n', BNS, 'route', 'add', 'default', 'via', '10.247.62.1']);
    server = spawn('ip', ['netns', 'exec', BNS, 'python3', '-c', SERVER], { stdio: 'ignore' });
    loadManifestObject(SOCK_OBJECT, { root: bpffs.root, sizes: { endpoints: 0 } }).close();
    ensureNodePortPrograms({ bpffsRoot: bpffs.root, stateDir }, [EXT]);
    svc = openServiceMaps(bpffs.root);
    src = openSourceRanges(bpffs.root);
    assert.ok(src, 'lb_src is pinned with the per-packet program');
    for (let i = 0; i < 50; i++) {
      if (from(INSIDE, { kind: 'tcp', port: 8080, addr: BACKEND }).startsWith('b:')) break;
      spawnSync('sleep', ['0.1']);
    }
  });

  after(() => {
    src?.close();
    svc?.close();
    server?.kill();
    try {
      removeNodePortPrograms({ bpffsRoot: bpffs.root, stateDir });
    } catch {
      // nothing attached
    }
    sh('ip', ['link', 'del', EXT], { allowFail: true });
    sh('ip', ['link', 'del', BHOST], { allowFail: true });
    sh('ip', ['netns', 'del', OUT], { allowFail: true });
    sh('ip', ['netns', 'del', BNS], { allowFail: true });
    for (const a of [INSIDE, OUTSIDE]) sh('conntrack', ['-D', '-s', a], { allowFail: true });
    bpffs.release();
    removeDir(stateDir);
  });

  it('tsr: a client inside the range reaches the LB IP; a source outside it is dropped, and leaves no conntrack entry', () => {
    apply([fe({ port: 80, sourceRanges: [`${INSIDE}/32`] }), fe({ port: 53, protocol: 'UDP', serviceId: 2, sourceRanges: ['10.247.61.0/25'] })]);
    assert.equal(from(INSIDE, { kind: 'tcp', port: 80 }), `b:${INSIDE}`);
    assert.equal(from(INSIDE, { kind: 'udp', port: 53 }), `b:${INSIDE}`);
    assert.equal(from(OUTSIDE, { kind: 'tcp', port: 80 }), 'error TIMEOUT');
    assert.equal(from(OUTSIDE, { kind: 'udp', port: 53 }), 'error TIMEOUT');
    assert.doesNotMatch(conntrackFrom(OUTSIDE), /dport=(80|53)\b/);
  });

  it('tsr: a frontend without ranges is open to every source', () => {
    apply([fe({ port: 80 }), fe({ port: 53, protocol: 'UDP', serviceId: 2, sourceRanges: [] })]);
    for (const a of [INSIDE, OUTSIDE]) {
      assert.equal(from(a, { kind: 'tcp', port: 80 }), `b:${a}`);
      assert.equal(from(a, { kind: 'udp', port: 53 }), `b:${a}`);
    }
    assert.equal(readSourceRanges(src!.io).size, 0, 'no Service port keeps ranges');
  });

  it('tsr: ranges changed: the new set applies, the old one is gone from the trie', () => {
    // Other source ports: a conntrack entry of the previous test must not carry these connections.
    apply([fe({ port: 81, sourceRanges: [`${INSIDE}/32`] })]);
    assert.equal(from(INSIDE, { kind: 'tcp', port: 81 }), `b:${INSIDE}`);
    assert.equal(from(OUTSIDE, { kind: 'tcp', port: 81 }), 'error TIMEOUT');
    apply([fe({ port: 81, sourceRanges: [`${OUTSIDE}/32`, '192.0.2.0/24'] })]);
    assert.equal(from(OUTSIDE, { kind: 'tcp', port: 81 }), `b:${OUTSIDE}`);
    assert.equal(from(INSIDE, { kind: 'tcp', port: 81 }), 'error TIMEOUT');
    assert.deepEqual(readSourceRanges(src!.io), new Map([[1, [`${OUTSIDE}/32`, '192.0.2.0/24']]]));
  });

  it('tsr: a partial update keeps the other Service ports\' ranges; a removed Service port takes its ranges along', () => {
    apply([fe({ port: 82, sourceRanges: [`${INSIDE}/32`] }), fe({ port: 83, serviceId: 3, sourceRanges: [`${OUTSIDE}/32`] })]);
    apply([fe({ port: 83, serviceId: 3, sourceRanges: [`${INSIDE}/32`] })], new Set([3]));
    assert.deepEqual(readSourceRanges(src!.io), new Map([[1, [`${INSIDE}/32`]], [3, [`${INSIDE}/32`]]]));
    assert.equal(from(INSIDE, { kind: 'tcp', port: 82 }), `b:${INSIDE}`);
    assert.equal(from(OUTSIDE, { kind: 'tcp', port: 83 }), 'error TIMEOUT');
    apply([fe({ port: 83, serviceId: 3, sourceRanges: [`${INSIDE}/32`] })]);
    assert.deepEqual(readSourceRanges(src!.io), new Map([[3, [`${INSIDE}/32`]]]));
  });

  it('tsr: an internal-scope frontend with ranges is not filtered (pods and the node itself): neither flag nor trie entry', () => {
    apply([fe({ port: 84, scope: 'internal', sourceRanges: [`${INSIDE}/32`] })]);
    assert.equal(readSourceRanges(src!.io).size, 0);
  });

  it('tsr: a range of the wrong family is refused before anything changes', () => {
    apply([fe({ port: 85, sourceRanges: [`${INSIDE}/32`] })]);
    assert.throws(() => putSourceRanges(src!.io, [fe({ port: 85, sourceRanges: ['2001:db8::/32'] })]), /no IPv4 CIDR/);
    assert.deepEqual(readSourceRanges(src!.io), new Map([[1, [`${INSIDE}/32`]]]));
  });
});
