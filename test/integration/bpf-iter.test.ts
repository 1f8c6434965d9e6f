// A socket iterator that destroys chosen sockets, loaded by twill's own loader (tracing program,
// attach_btf_id of bpf_iter_udp / bpf_iter_tcp, the bpf_sock_destroy kfunc, sock_common fields at
// the running kernel's offsets) and run from user space in a netns this test makes: a connected
// UDP socket to a target gets ECONNABORTED (v4 and v6), a connected TCP socket to a target is
// aborted and its peer sees a reset; sockets to other destinations and an unconnected UDP socket
// that sent to the target are untouched, and so is a TCP socket to the target in CLOSE_WAIT; the iterator reports the destroyed sockets' cookies;
// an iterator created in the host netns sees none of the netns's sockets.
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { runIterator } from '../../lib/bpf/attach/iter.js';
import { loadObject, type LoadedObject } from '../../lib/bpf/loader.js';
import type { ObjectSpec } from '../../lib/bpf/manifest.js';
import { mapUpdate } from '../../lib/bpf/sys.js';
import { compileBpf, hasClang } from '../helpers/bpf-objects.js';
import { tempBpffs } from '../helpers/traffic.js';
import { cleanupNetns, inNs, makeNetns, netnsPath } from '../helpers/twill.js';

/** The marker offsets test/bpf/sockdestroy.c reads sock_common's fields at. */
const field = (marker: number, member: string, span: number): NonNullable<ObjectSpec['fields']>[number] => ({ marker, struct: 'sock_common', member, required: true, span });
const SPEC: ObjectSpec<'targets'> = {
  name: 'sockdestroy',
  file: 'sockdestroy.o',
  programs: [
    { name: 'destroy_udp', section: 'iter/udp', type: 'tracing_iter', attach: { kind: 'iter', target: 'udp' }, scope: 'node', pin: 'destroy_udp_{hash}' },
    { name: 'destroy_tcp', section: 'iter/tcp', type: 'tracing_iter', attach: { kind: 'iter', target: 'tcp' }, scope: 'node', pin: 'destroy_tcp_{hash}' },
  ],
  maps: { targets: { scope: 'node', size: { from: 'object' }, version: 1 } },
  fields: [field(0x7d00, 'skc_family', 2), field(0x7d10, 'skc_state', 1), field(0x7d20, 'skc_dport', 2), field(0x7d30, 'skc_daddr', 4), field(0x7d40, 'skc_v6_daddr', 16)],
};

const V4 = '127.0.0.25', V6 = 'fd25::1';
const TARGET = 47301, OTHER = 47302, TCP_TARGET = 47303, TCP_OTHER = 47304;

/** struct target: family, 16 address bytes, port (network order), pad. */
function targetKey(family: 'v4' | 'v6', addr: string, port: number): Buffer {
  const k = Buffer.alloc(24);
  k.writeUInt32LE(family === 'v4' ? 2 : 10, 0);
  if (family === 'v4') addr.split('.').forEach((o, i) => (k[4 + i] = Number(o)));
  else Buffer.from('fd250000000000000000000000000001', 'hex').copy(k, 4);
  k.writeUInt16BE(port, 20);
  return k;
}

// The sockets, their cookies (SO_COOKIE) on stdout; after a line on stdin, what each one sees.
const PY = `
import socket, json, sys, errno
def cookie(s): return int.from_bytes(s.getsockopt(socket.SOL_SOCKET, 57, 8), 'little')
def udp(fam, addr, port):
  s = socket.socket(fam, socket.SOCK_DGRAM); s.bind((addr, port)); return s
srv = {p: udp(socket.AF_INET, '${V4}', p) for p in (${TARGET}, ${OTHER})}
srv6 = udp(socket.AF_INET6, '${V6}', ${TARGET})
c1 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); c1.connect(('${V4}', ${TARGET}))
c2 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); c2.connect(('${V4}', ${OTHER}))
c3 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); c3.bind(('${V4}', 0)); c3.sendto(b'u', ('${V4}', ${TARGET}))
c6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); c6.connect(('${V6}', ${TARGET}))
lst = {}
for p in (${TCP_TARGET}, ${TCP_OTHER}):
  l = socket.socket(); l.bind(('${V4}', p)); l.listen(); lst[p] = l
t1 = socket.create_connection(('${V4}', ${TCP_TARGET})); a1, _ = lst[${TCP_TARGET}].accept()
t2 = socket.create_connection(('${V4}', ${TCP_OTHER})); a2, _ = lst[${TCP_OTHER}].accept()
t3 = socket.create_connection(('${V4}', ${TCP_TARGET})); a3, _ = lst[${TCP_TARGET}].accept(); a3.close()
import time; time.sleep(0.1)  # the FIN arrives: t3 is in CLOSE_WAIT, connected to the target but not established
c3port = c3.getsockname()[1]
print(json.dumps({'c1': cookie(c1), 'c2': cookie(c2), 'c3': cookie(c3), 'c6': cookie(c6), 't1': cookie(t1), 't2': cookie(t2), 't3': cookie(t3)}), flush=True)
sys.stdin.readline()
def err(f):
  try:
    f(); return 'OK'
  except socket.timeout:
    return 'timeout'
  except OSError as e:
    return errno.errorcode.get(e.errno, str(e.errno))
def udp_roundtrip(c, server):
  c.send(b'x'); server.settimeout(2); server.recvfrom(16)
for s in (c1, c6, t1, a1, t3): s.settimeout(2)
out = {
  'c1_recv': err(lambda: c1.recv(16)), 'c1_send': err(lambda: c1.send(b'x')),
  'c6_recv': err(lambda: c6.recv(16)),
  'c2': err(lambda: udp_roundtrip(c2, srv[${OTHER}])),
  'c3': err(lambda: c3.sendto(b'v', ('${V4}', ${TARGET}))), 'c3_port_kept': c3.getsockname()[1] == c3port,
  't1_recv': err(lambda: t1.recv(16)), 'a1_recv': err(lambda: a1.recv(16)),
  't2': err(lambda: (t2.send(b'y'), a2.settimeout(2), a2.recv(16))),
  't3': err(lambda: t3.recv(16)),
}
print(json.dumps(out), flush=True)
`;

const cookies = (b: Buffer): bigint[] => Array.from({ length: b.length / 8 }, (_, i) => b.readBigUInt64LE(i * 8)).sort();

describe('BPF socket iterators destroy chosen sockets', { skip: !hasClang() && 'clang is not installed' }, () => {
  const bpffs = tempBpffs();
  let l: LoadedObject<'targets'>;
  let ns: string;
  let py: ChildProcessWithoutNullStreams | undefined;
  before(() => {
    l = loadObject(SPEC, compileBpf('test/bpf/sockdestroy.c'), { root: bpffs.root, sizes: { endpoints: 1 } });
    ns = makeNetns();
    inNs(ns, ['ip', 'link', 'set', 'lo', 'up']);
    inNs(ns, ['ip', 'addr', 'add', `${V4}/32`, 'dev', 'lo']);
    inNs(ns, ['ip', 'addr', 'add', `${V6}/128`, 'dev', 'lo', 'nodad']);
  });
  after(() => {
    py?.kill();
    l?.close();
    cleanupNetns();
    bpffs.release();
  });

  it('destroys connected UDP and TCP sockets to the targets in the netns it was created in, reports their cookies, leaves the rest', async () => {
    py = spawn('ip', ['netns', 'exec', ns, 'python3', '-c', PY]);
    let stderr = '';
    py.stderr.on('data', (d) => (stderr += d));
    const lines = createInterface({ input: py.stdout })[Symbol.asyncIterator]();
    const first = await lines.next();
    assert.ok(!first.done, `python: ${stderr}`);
    const ck = JSON.parse(first.value) as Record<string, number>;
    const targets = l.maps.get('targets')!;
    mapUpdate(targets, targetKey('v4', V4, TARGET), Buffer.alloc(4));
    mapUpdate(targets, targetKey('v6', V6, TARGET), Buffer.alloc(4));
    mapUpdate(targets, targetKey('v4', V4, TCP_TARGET), Buffer.alloc(4));

    // Created in the host netns, the iterators see none of the netns's sockets.
    assert.deepEqual(cookies(runIterator(l.programs.get('destroy_udp')!)), []);
    assert.deepEqual(cookies(runIterator(l.programs.get('destroy_tcp')!)), []);
    assert.deepEqual(cookies(runIterator(l.programs.get('destroy_udp')!, '/proc/self/ns/net')), [], 'the own netns named by path: run where we are');

    const udp = cookies(runIterator(l.programs.get('destroy_udp')!, netnsPath(ns)));
    const tcp = cookies(runIterator(l.programs.get('destroy_tcp')!, netnsPath(ns)));
    assert.deepEqual(udp, [BigInt(ck.c1!), BigInt(ck.c6!)].sort(), 'the connected UDP sockets to the targets, v4 and v6');
    assert.deepEqual(tcp, [BigInt(ck.t1!)], 'the connected TCP socket to the target');
    // A second run finds nothing left to destroy: the aborted sockets are disconnected.
    assert.deepEqual(cookies(runIterator(l.programs.get('destroy_udp')!, netnsPath(ns))), []);

    py.stdin.write('go\n');
    const second = await lines.next();
    assert.ok(!second.done, `python: ${stderr}`);
    const seen = JSON.parse(second.value) as Record<string, string | boolean>;
    assert.equal(seen.c1_recv, 'ECONNABORTED', 'the destroyed UDP socket reports the abort');
    assert.equal(seen.c1_send, 'EDESTADDRREQ', 'and is no longer connected: the application must reconnect');
    assert.equal(seen.c6_recv, 'ECONNABORTED', 'v6 too');
    assert.equal(seen.c2, 'OK', 'a UDP socket to another port is untouched');
    assert.equal(seen.c3, 'OK', 'an unconnected UDP socket that sent to the target is untouched');
    assert.equal(seen.c3_port_kept, true, 'and keeps its port');
    assert.equal(seen.t1_recv, 'ECONNABORTED', 'the destroyed TCP socket reports the abort');
    assert.equal(seen.a1_recv, 'ECONNRESET', 'its peer sees a reset');
    assert.equal(seen.t2, 'OK', 'a TCP connection to another port is untouched');
    assert.equal(seen.t3, 'OK', 'a TCP socket to the target that is no longer established (CLOSE_WAIT) is untouched: it reads its EOF');
    await once(py, 'close');
    py = undefined;
  });
});
