// UDP across a backend replacement, in the kernel: a UDP Service with two backends (pods on one
// bridge, each echoing its name), clients inside a cgroup this test makes that send a datagram
// every 50 ms on long-lived sockets. One backend leaves the Service (applyServices without it)
// and the termination runs (services-term.ts terminateStale): the connected sockets translated to
// it are destroyed, reconnect on ECONNABORTED and are answered by the other backend within a
// second; unconnected sockets (sendto) move by themselves and are never destroyed; sockets on the
// backend that stays and sockets to a pod address (not translated) are untouched. A hostile pod
// that translates its own sockets to the leaving backend's exact address and port cannot get
// another pod's socket to that address destroyed: the iterator judges a socket by the entry the
// hooks wrote under its kernel-assigned cookie, never by its destination alone.
import { removeCgroup } from '../../testkit/cgroup.js';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { cgroup2Mount } from '../../lib/bpf/attach/cgroup.js';
import { applyServices, ensureServiceHooks, openServiceMaps, removeServiceHooks } from '../../lib/datapath/services.js';
import { HOST_NETNS, terminateStale } from '../../lib/datapath/services-term.js';
import { memoryRecord } from '../../lib/mirror/record.js';
import type { LbFrontend } from '../../lib/services/model.js';
import { netnsPath, removeDir, sh, tempDir } from '../helpers/twill.js';
import { tempBpffs } from '../helpers/traffic.js';

const ID = `tsu${process.pid % 100000}`;
const HUB = `${ID}hub`;
const PODS = { b1: 11, b2: 12, c1: 21, c2: 22 } as const;
type Pod = keyof typeof PODS;
const ns = (p: Pod): string => `${ID}${p}`;
const v4 = (p: Pod): string => `10.252.0.${PODS[p]}`;
const VIP = '10.96.0.25', VPORT = 53, BPORT = 5353;

const SERVER = `
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('0.0.0.0', ${BPORT}))
while True:
    d, a = s.recvfrom(100)
    s.sendto(sys.argv[1].encode(), a)
`;

// Each socket in its own thread, one datagram every 50 ms; one JSON line per event, stamped
// with CLOCK_MONOTONIC in ms (the test's process.hrtime is the same clock). A connected socket
// that gets ECONNABORTED or EDESTADDRREQ (destroyed: which depends on whether it was in recv()
// or about to send()) reconnects, as a resolver does.
const AGENT = `
import socket, sys, json, time, errno, os, threading
spec = json.loads(sys.argv[1])
lock = threading.Lock()
def out(d):
    d['t'] = time.monotonic() * 1000
    with lock: print(json.dumps(d), flush=True)
def cookie(s): return int.from_bytes(s.getsockopt(socket.SOL_SOCKET, 57, 8), 'little')
def en(e): return errno.errorcode.get(e.errno, str(e.errno)) if e.errno else 'TIMEOUT'
def run(name, mode, addr, port):
    def mk():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(0.3)
        if mode == 'connect': s.connect((addr, port))
        out({'s': name, 'cookie': str(cookie(s))})
        return s
    s = mk()
    while not os.path.exists(spec['stop']):
        try:
            if mode == 'connect':
                s.send(b'x'); d = s.recv(100); p = s.getpeername()
            else:
                s.sendto(b'x', (addr, port)); d, p = s.recvfrom(100)
            out({'s': name, 'who': d.decode(), 'peer': '%s:%d' % p})
        except socket.timeout:
            out({'s': name, 'err': 'TIMEOUT'})
        except OSError as e:
            out({'s': name, 'err': en(e)})
            if mode == 'connect' and e.errno in (errno.ECONNABORTED, errno.EDESTADDRREQ):
                s.close(); s = mk()
        time.sleep(0.05)
ts = [threading.Thread(target=run, args=tuple(x)) for x in spec['sockets']]
for t in ts: t.start()
for t in ts: t.join()
`;

interface Ev {
  s: string;
  t: number;
  cookie?: string;
  who?: string;
  peer?: string;
  err?: string;
}

const now = (): number => Number(process.hrtime.bigint()) / 1e6;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const haveMount = cgroup2Mount();

describe('UDP across a backend replacement (socket iterators, real traffic)', { skip: !haveMount && 'no cgroup v2 mount' }, () => {
  const bpffs = tempBpffs();
  const stateDir = tempDir('tsu-state');
  const stopDir = tempDir('tsu-stop');
  const cg = `${haveMount}/${ID}`;
  const procs: ChildProcess[] = [];
  const record = memoryRecord();
  let svc: ReturnType<typeof openServiceMaps>;

  const fe = (backends: Pod[]): LbFrontend => ({
    family: 4, address: VIP, port: VPORT, protocol: 'UDP', scope: 'internal', serviceId: 1, backends: backends.map((p) => ({ address: v4(p), port: BPORT })),
    terminating: [], whenEmpty: 'reject', affinitySeconds: 0,
  });

  /** An agent in pod's netns and in the test cgroup; its events land in evs. */
  const agent = (pod: Pod, sockets: [string, 'connect' | 'sendto', string, number][], stop: string, evs: Ev[]): void => {
    const p = spawn('sh', ['-c', `echo $$ > ${cg}/cgroup.procs && exec ip netns exec "$1" python3 -c "$0" "$2"`, AGENT, ns(pod), JSON.stringify({ stop, sockets })], { stdio: ['ignore', 'pipe', 'inherit'] });
    procs.push(p);
    createInterface({ input: p.stdout! }).on('line', (l) => evs.push(JSON.parse(l) as Ev));
  };

  before(() => {
    sh('ip', ['netns', 'add', HUB]);
    sh('ip', ['-n', HUB, 'link', 'add', 'br0', 'type', 'bridge']);
    sh('ip', ['-n', HUB, 'link', 'set', 'br0', 'up']);
    for (const p of Object.keys(PODS) as Pod[]) {
      sh('ip', ['netns', 'add', ns(p)]);
      sh('ip', ['-n', HUB, 'link', 'add', p, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns(p)]);
      sh('ip', ['-n', HUB, 'link', 'set', p, 'master', 'br0', 'up']);
      sh('ip', ['-n', ns(p), 'addr', 'add', `${v4(p)}/24`, 'dev', 'eth0']);
      sh('ip', ['-n', ns(p), 'link', 'set', 'eth0', 'up']);
      sh('ip', ['-n', ns(p), 'link', 'set', 'lo', 'up']);
      if (p.startsWith('b')) procs.push(spawn('ip', ['netns', 'exec', ns(p), 'python3', '-c', SERVER, p], { stdio: 'ignore' }));
    }
    mkdirSync(cg);
    ensureServiceHooks({ bpffsRoot: bpffs.root, cgroupRoot: cg, stateDir });
    svc = openServiceMaps(bpffs.root);
  });

  after(() => {
    writeFileSync(`${stopDir}/stop`, '');
    svc?.close();
    for (const p of procs) p.kill('SIGKILL');
    try {
      removeServiceHooks({ bpffsRoot: bpffs.root, cgroupRoot: cg, stateDir });
    } catch {
      // never attached
    }
    for (const p of Object.keys(PODS) as Pod[]) sh('ip', ['netns', 'del', ns(p)], { allowFail: true });
    sh('ip', ['netns', 'del', HUB], { allowFail: true });
    removeCgroup(cg);
    bpffs.release();
    removeDir(stateDir);
    removeDir(stopDir);
  });

  it('connected sockets on a backend that left are destroyed and answered by a live backend within a second; sendto, the staying backend, pod addresses and other pods are untouched', async () => {
    const first = applyServices(svc!.maps, [fe(['b1', 'b2'])], record);
    assert.equal(first.retired, 0);
    const stop = `${stopDir}/stop`;
    const evs: Ev[] = [];
    const conn = Array.from({ length: 8 }, (_, i) => `k${i}`), uncon = Array.from({ length: 4 }, (_, i) => `u${i}`), hostile = Array.from({ length: 4 }, (_, i) => `h${i}`);
    agent('c1', [
      ...conn.map((s): [string, 'connect', string, number] => [s, 'connect', VIP, VPORT]),
      ...uncon.map((s): [string, 'sendto', string, number] => [s, 'sendto', VIP, VPORT]),
      ['d1', 'connect', v4('b1'), BPORT], ['d2', 'connect', v4('b2'), BPORT],
    ], stop, evs);
    // The hostile pod: sockets of its own translated to both backends, the leaving one included.
    agent('c2', hostile.map((s): [string, 'connect', string, number] => [s, 'connect', VIP, VPORT]), stop, evs);
    const all = [...conn, ...uncon, 'd1', 'd2', ...hostile];
    const of = (s: string): Ev[] => evs.filter((e) => e.s === s);
    for (let i = 0; i < 200 && !all.every((s) => of(s).filter((e) => e.who).length >= 3); i++) await sleep(50);
    assert.ok(all.every((s) => of(s).filter((e) => e.who).length >= 3), `not every socket answered: ${JSON.stringify(evs.slice(-20))}`);

    // Where each socket was before the switch (its last answer then).
    const was = new Map(all.map((s) => [s, of(s).filter((e) => e.who).at(-1)!.who!]));
    const lastWho = (s: string): string => was.get(s)!;
    const cookie0 = (s: string): string => of(s).find((e) => e.cookie)!.cookie!;
    const X = lastWho('k0') as Pod, Y: Pod = X === 'b1' ? 'b2' : 'b1';
    const onX = (l: string[]): string[] => l.filter((s) => lastWho(s) === X);
    assert.ok(onX(conn).length > 0 && onX(conn).length < conn.length, `c1's connected sockets on both backends: ${conn.map(lastWho).join(' ')}`);
    assert.ok(onX(uncon).length > 0, `an unconnected socket sends to ${X} before: ${uncon.map(lastWho).join(' ')}`);

    // X leaves the Service; its pod stays up (a connected socket left alone keeps talking to it).
    const t0 = now();
    const r = applyServices(svc!.maps, [fe([Y])], record);
    assert.equal(r.retired, 1, 'the apply says a backend left');
    const term = terminateStale({ bpffsRoot: bpffs.root }, [netnsPath(ns('c1')), netnsPath(ns('c2'))]);
    await sleep(1500);
    writeFileSync(stop, '');
    await sleep(500);

    assert.deepEqual(term.errors, []);
    assert.equal(term.unavailable, undefined);
    // Exactly the connected sockets translated to X, each in its own namespace: not c1's sockets
    // to X's pod address (same destination, no entry under their cookie), nor the unconnected ones.
    assert.deepEqual(new Set(term.cookies.get(netnsPath(ns('c1'))) ?? []), new Set(onX(conn).map((s) => BigInt(cookie0(s)))));
    assert.deepEqual(new Set(term.cookies.get(netnsPath(ns('c2'))) ?? []), new Set(onX(hostile).map((s) => BigInt(cookie0(s)))));
    assert.equal(term.byNetns.get(HOST_NETNS), 0);
    assert.equal(term.destroyed, onX(conn).length + onX(hostile).length);

    const since = (s: string): Ev[] => of(s).filter((e) => e.t > t0);
    for (const s of [...conn, ...hostile]) {
      const evsAfter = since(s);
      for (const e of of(s).filter((x) => x.who)) assert.equal(e.peer, `${VIP}:${VPORT}`, `${s}: recv/getpeername give the ClusterIP`);
      if (lastWho(s) === X) {
        // Destroyed: a recv() waiting then gets ECONNABORTED; a send() after it, EDESTADDRREQ
        // (udp_abort disconnected the socket, and sendmsg checks the peer before the error).
        assert.ok(evsAfter.some((e) => e.err === 'ECONNABORTED' || e.err === 'EDESTADDRREQ'), `${s} was destroyed: ${JSON.stringify(evsAfter.slice(0, 5))}`);
        const firstY = evsAfter.findIndex((e) => e.who === Y);
        assert.ok(firstY >= 0 && evsAfter[firstY]!.t - t0 < 1000, `${s} answered by ${Y} within a second: ${JSON.stringify(evsAfter.slice(0, 8))}`);
        assert.deepEqual(evsAfter.slice(firstY).filter((e) => e.who !== Y || e.err), [], `${s} stays on ${Y}`);
      } else {
        assert.deepEqual(evsAfter.filter((e) => e.who !== Y || e.err || e.cookie), [], `${s} (on ${Y}) untouched`);
        assert.ok(evsAfter.length >= 15, `${s} kept sending: ${evsAfter.length}`);
      }
    }
    for (const s of uncon) {
      assert.deepEqual(of(s).filter((e) => e.err), [], `${s}: no datagram lost or refused`);
      assert.equal(of(s).filter((e) => e.cookie).length, 1, `${s}: never destroyed`);
      for (const e of of(s).filter((x) => x.who)) assert.equal(e.peer, `${VIP}:${VPORT}`);
      const ans = since(s).filter((e) => e.who);
      // A reply to a datagram sent just before the switch may still come from X.
      assert.ok(ans.some((e) => e.who === Y && e.t - t0 < 1000), `${s} answered by ${Y} within a second`);
      assert.deepEqual(ans.filter((e) => e.t - t0 > 300 && e.who !== Y), [], `${s} on ${Y} after the switch`);
    }
    for (const [s, p] of [['d1', 'b1'], ['d2', 'b2']] as const) {
      assert.deepEqual(of(s).filter((e) => e.err || e.who !== p || e.peer !== `${v4(p)}:${BPORT}`).filter((e) => !e.cookie), [], `${s}: a socket to a pod address is never translated nor destroyed`);
      assert.equal(of(s).filter((e) => e.cookie).length, 1);
      assert.ok(since(s).length >= 15);
    }

    // Nothing stale is left: a second run destroys nothing.
    const again = terminateStale({ bpffsRoot: bpffs.root }, [netnsPath(ns('c1')), netnsPath(ns('c2'))]);
    assert.equal(again.destroyed, 0);
  });
});
