// What a hostile pod cannot get past the tc programs by the shape of its frames: a VLAN tag
// (one, or two priority tags the stack unwraps after the program), a header the program
// cannot read whole (an ICMPv6 error behind five destination-options headers), a source route
// (IPv4 LSRR, an IPv6 routing header with segments left), an encapsulation (MPLS-in-IP,
// L2TP), neighbour-discovery types to a multicast scope beyond the link, an echo record past
// its validity; nor push the other pods' flows out of the history by opening flows by the
// thousand from its own address.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { openNetwork } from '../../lib/bpf/loader.js';
import { OBS_RECORD_TTL, obsIndex, u64 } from '../../lib/bpf/layout.js';
import { mapUpdate } from '../../lib/bpf/sys.js';
import { NetpolCluster, type Pod } from '../helpers/netpol.js';
import { pkt, pktBackground, sleep } from '../helpers/pkt.js';
import { endpointsJson } from '../helpers/traffic.js';
import { cleanupNetns, sh, TWILL } from '../helpers/twill.js';

after(cleanupNetns);

const pol = (name: string, spec: object): object => ({ metadata: { namespace: 'x', name }, spec });
const sel = (pod: string): object => ({ matchLabels: { pod } });
const DENY_OUT = pol('deny-out', { podSelector: {}, policyTypes: ['Egress'] });

describe('hardened tc programs against a hostile pod', () => {
  let c: NetpolCluster;
  const pod = (n: string): Pod => c.pods.get(`x/${n}`)!;
  const ip = (n: string, v6: boolean): string => pod(n).ips.find((a) => a.includes(':') === v6)!;
  const row = (n: string) => endpointsJson(c.bpffs.root).find((e) => e.addr === ip(n, false)) as { hostIfName: string; counters?: Record<string, number> };
  const gwMac = (n: string): string => JSON.parse(sh('ip', ['-j', 'link', 'show', row(n).hostIfName]))[0].address as string;
  const ping = (from: string, to: string, v6 = false): boolean =>
    spawnSync('ip', ['netns', 'exec', pod(from).netns, 'ping', ...(v6 ? ['-6'] : []), '-c', '2', '-i', '0.3', '-W', '2', ip(to, v6)]).status === 0;
  /** How many frames carrying tag reach `to`'s eth0 while `send` runs. */
  const seen = async (to: string, tag: string, send: () => void): Promise<number> => {
    const w = await pktBackground(pod(to).netns, ['sniff', 'eth0', tag, 1.5]);
    send();
    return Number(await w.done);
  };
  const raw = (from: string, to: string, v6: boolean, kind: string, tag: string, count = 5): void => {
    pkt(pod(from).netns, ['rawframe', 'eth0', gwMac(from), ip(from, v6), ip(to, v6), kind, tag, count]);
  };
  const setTtl = (ns: bigint): void => {
    const n = openNetwork(c.bpffs.root, c.net.name)!;
    try {
      mapUpdate(n.maps.get('observer')!, obsIndex(OBS_RECORD_TTL), u64(ns));
    } finally {
      n.close();
    }
  };

  before(() => {
    c = new NetpolCluster({ namespaces: ['x'], pods: ['a', 'b', 'c'], ports: [80], protocols: ['UDP'] }, 'dual').setup();
  });
  after(() => c.teardown());

  it('the harness sees what it must later not see: a plain datagram from a reaches b without policy', async () => {
    c.sync([]);
    assert.ok((await seen('b', 'plain-udp', () => raw('a', 'b', false, 'plain', 'plain-udp'))) >= 5);
  });

  for (const kind of ['vlan1', 'vlan2'] as const) {
    it(`a VLAN-tagged datagram (${kind === 'vlan1' ? 'one tag' : 'two vid-0 priority tags'}) from a pod under egress deny-all never reaches its target`, async () => {
      c.sync([DENY_OUT]);
      const tag = `tagged-${kind}`;
      const got = await seen('b', tag, () => raw('a', 'b', false, kind, tag));
      assert.equal(got, 0, `${got} tagged frames reached b`);
    });
  }

  it('ARP and neighbour discovery still work: allowed pods ping each other after their neighbour caches are flushed', () => {
    c.sync([]);
    for (const n of ['a', 'b']) sh('ip', ['netns', 'exec', pod(n).netns, 'ip', 'neigh', 'flush', 'dev', 'eth0']);
    assert.ok(ping('a', 'b'), 'IPv4 (ARP)');
    assert.ok(ping('a', 'b', true), 'IPv6 (neighbour discovery)');
  });

  it('an ICMPv6 port-unreachable behind five destination-options headers never reaches the victim\'s connected socket', async () => {
    // b talks to c on UDP 80; a, with no policy of its own, is no router.
    c.sync([
      pol('b-to-c', { podSelector: sel('b'), policyTypes: ['Egress'], egress: [{ to: [{ podSelector: sel('c') }], ports: [{ protocol: 'UDP', port: 80 }] }] }),
    ]);
    const sport = 40671;
    const victim = await pktBackground(pod('b').netns, ['udpwait', ip('c', true), 80, sport, 2]);
    await sleep(300);
    raw('a', 'b', true, 'ext5err', `${ip('b', true)},${ip('c', true)},${sport},80`, 5);
    const out = await victim.done;
    assert.match(out, /^ok [1-9]/, `b's connected socket: ${out}`);
  });

  it('an ICMP port-unreachable whose header lies beyond the linear area never reaches the victim\'s connected socket', async () => {
    c.sync([
      pol('b-to-c', { podSelector: sel('b'), policyTypes: ['Egress'], egress: [{ to: [{ podSelector: sel('c') }], ports: [{ protocol: 'UDP', port: 80 }] }] }),
    ]);
    // Frames of 5,000 bytes need a's link to take them (the test's doing, not the pod's).
    const mtu = (v: number): void => {
      sh('ip', ['netns', 'exec', pod('a').netns, 'ip', 'link', 'set', 'eth0', 'mtu', String(v)]);
      sh('ip', ['link', 'set', row('a').hostIfName, 'mtu', String(v)]);
    };
    mtu(9000);
    try {
      const sport = 40672;
      const victim = await pktBackground(pod('b').netns, ['udpwait', ip('c', false), 80, sport, 2]);
      await sleep(300);
      pkt(pod('a').netns, ['bigerr', 'eth0', gwMac('a'), ip('a', false), ip('b', false), ip('b', false), ip('c', false), sport, 80, 5]);
      const out = await victim.done;
      assert.match(out, /^ok [1-9]/, `b's connected socket: ${out}`);
    } finally {
      mtu(1500);
    }
  });

  it('source routes from a pod are dropped: IPv4 LSRR, an IPv6 routing header with segments left', async () => {
    c.sync([]);
    assert.equal(await seen('b', 'lsrr-route', () => raw('a', 'b', false, 'lsrr', 'lsrr-route')), 0, 'LSRR');
    assert.equal(await seen('b', 'rh6-route', () => raw('a', 'b', true, 'rh6', 'rh6-route')), 0, 'routing header');
  });

  for (const proto of [137, 115]) {
    it(`IP protocol ${proto} (an encapsulation) from a pod is never carried`, async () => {
      c.sync([]);
      const w = await pktBackground(pod('b').netns, ['sniffproto', 'eth0', proto, 1.5]);
      pkt(pod('a').netns, ['ipip', ip('b', false), ip('c', false), ip('b', false), 80, 5, proto]);
      assert.equal(Number(await w.done), 0);
    });
  }

  it('neighbour-discovery types to a multicast scope beyond the link are judged (egress deny-all denies them)', () => {
    c.sync([DENY_OUT]);
    const before = row('a').counters?.policyOutPackets ?? 0;
    pkt(pod('a').netns, ['icmp', 'ff05::1', 136, 0, 1, 'nd-site-scope', 5]);
    const now = row('a').counters?.policyOutPackets ?? 0;
    assert.ok(now >= before + 5, `policy drops ${before} -> ${now}`);
  });

  it('an echo reply arriving after its request\'s record expired is dropped; within it, it passes', async () => {
    // a takes nothing in but the answers to what it sent; its echo requests are noted.
    c.sync([pol('a-in', { podSelector: sel('a'), policyTypes: ['Ingress'] })]);
    setTtl(1_500_000_000n);
    try {
      const id = 4711;
      const watch = async (tag: string): Promise<number> => {
        const w = await pktBackground(pod('a').netns, ['icmpwatch', 1.0, tag]);
        pkt(pod('b').netns, ['icmp', ip('a', false), 0, 0, id, tag, 3]);
        return Number(await w.done);
      };
      pkt(pod('a').netns, ['icmp', ip('b', false), 8, 0, id, 'echo-req', 1]);
      assert.ok((await watch('reply-fresh')) >= 1, 'a reply within the validity passes');
      await sleep(1700);
      assert.equal(await watch('reply-late'), 0, 'a reply after the validity is dropped');
    } finally {
      setTtl(0n);
    }
  });

  it('a pod opening 16,000 UDP flows does not push a third pod\'s flows out of the history', () => {
    c.sync([]);
    const observe = (...args: string[]) => spawnSync(TWILL, ['observe', '--conf-dir', c.confDir, '-o', 'json', ...args], { encoding: 'utf8', timeout: 30_000 });
    const has = (port: number): boolean => observe('--ip', ip('b', false), '--port', String(port)).stdout.trim().length > 0;
    // c's flows to b, recorded before the flood.
    for (let i = 0; i < 5; i++) pkt(pod('c').netns, ['send', 41000 + i, ip('b', false), 80, 1]);
    for (let i = 0; i < 5; i++) assert.ok(has(41000 + i), `c's flow ${41000 + i} is recorded`);
    pkt(pod('a').netns, ['spray', ip('b', false), 20000, 16000]);
    const kept = [0, 1, 2, 3, 4].filter((i) => has(41000 + i)).length;
    assert.equal(kept, 5, `${5 - kept} of c's 5 flows were pushed out`);
    assert.ok((row('a').counters?.recordsSuppressed ?? 0) > 0, JSON.stringify(row('a').counters));
    const m = spawnSync(TWILL, ['metrics', '--conf-dir', c.confDir], { encoding: 'utf8' });
    const line = m.stdout.split('\n').find((l) => l.startsWith('twill_flow_records_suppressed_total{') && l.includes('pod="a"'));
    assert.ok(line && Number(line.split(' ').pop()) > 0, line);
  });
});
