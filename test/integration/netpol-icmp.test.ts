// ICMP under NetworkPolicy, against a hostile pod: an echo reply or ICMP error passes only
// as the answer to something that was really sent (an echo request let out and delivered, a
// connection the kernel's conntrack tracks); everything else ICMP is judged by policy like any
// protocol — a rule with no ports admits it, a rule with ports does not, deny-all denies it.
// A pod cannot tunnel data through "echo replies" or unknown ICMPv6 types past deny-all, nor
// inject port-unreachable into another pod's connection.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { NetpolCluster, type Pod } from '../helpers/netpol.js';
import { pkt, pktBackground, sleep } from '../helpers/pkt.js';
import { cleanupNetns } from '../helpers/twill.js';

after(cleanupNetns);

const pol = (name: string, spec: object): object => ({ metadata: { namespace: 'x', name }, spec });
const sel = (pod: string): object => ({ matchLabels: { pod } });
const DENY_ALL = pol('deny-all', { podSelector: {}, policyTypes: ['Ingress', 'Egress'] });

describe('ICMP under NetworkPolicy', () => {
  let c: NetpolCluster;
  const pod = (n: string): Pod => c.pods.get(`x/${n}`)!;
  const ip = (n: string, v6: boolean): string => pod(n).ips.find((a) => a.includes(':') === v6)!;
  const ping = (from: string, to: string, v6 = false): boolean =>
    spawnSync('ip', ['netns', 'exec', pod(from).netns, 'ping', ...(v6 ? ['-6'] : []), '-c', '2', '-i', '0.3', '-W', '2', ip(to, v6)]).status === 0;
  /** How many ICMP messages carrying tag reach `to` while `send` runs. */
  const received = async (to: string, tag: string, send: () => void): Promise<number> => {
    const w = await pktBackground(pod(to).netns, ['icmpwatch', 1.5, tag]);
    send();
    return Number(await w.done);
  };

  before(() => {
    c = new NetpolCluster({ namespaces: ['x'], pods: ['a', 'b', 'c'], ports: [80], protocols: ['UDP'] }, 'dual').setup();
  });
  after(() => c.teardown());

  it('without policy, ping and arbitrary ICMP reach the pod (the harness sees what it must later not see)', async () => {
    c.sync([]);
    assert.ok(ping('a', 'b'));
    assert.ok(ping('a', 'b', true));
    assert.ok(await received('b', 'open-tunnel', () => pkt(pod('a').netns, ['icmp', ip('b', false), 0, 0, 4242, 'open-tunnel', 5])) >= 5);
  });

  for (const v6 of [false, true]) {
    const fam = v6 ? 'ICMPv6' : 'ICMPv4';
    it(`deny-all: echo replies nobody asked for carry no data between two pods (${fam})`, async () => {
      c.sync([DENY_ALL]);
      assert.equal(ping('a', 'b', v6), false, 'ping is denied');
      const tag = `tunnel-reply-${fam}`;
      const got = await received('b', tag, () => pkt(pod('a').netns, ['icmp', ip('b', v6), v6 ? 129 : 0, 0, 4243, tag, 10]));
      assert.equal(got, 0, `${got} forged echo replies reached b`);
    });
  }

  it('deny-all: ICMPv6 type 200 (an unknown type above 130) is judged, and denied', async () => {
    c.sync([DENY_ALL]);
    const got = await received('b', 'tunnel-200', () => pkt(pod('a').netns, ['icmp', ip('b', true), 200, 0, 1, 'tunnel-200', 10]));
    assert.equal(got, 0, `${got} type-200 messages reached b`);
  });

  it('deny-all: neighbour-discovery types sent to a pod\'s global address are judged, and denied', async () => {
    c.sync([DENY_ALL]);
    // A neighbour advertisement (136) to a unicast global address: not link traffic.
    const got = await received('b', 'tunnel-136', () => pkt(pod('a').netns, ['icmp', ip('b', true), 136, 0, 1, 'tunnel-136', 10]));
    assert.equal(got, 0, `${got} type-136 messages reached b`);
  });

  for (const v6 of [false, true]) {
    const fam = v6 ? 'ICMPv6' : 'ICMPv4';
    it(`a denied pod cannot inject port-unreachable into another pod's allowed UDP connection (${fam})`, async () => {
      // b talks to c on UDP 80 (allowed both ways); a may send nothing at all.
      c.sync([
        DENY_ALL,
        pol('b-to-c', { podSelector: sel('b'), policyTypes: ['Egress'], egress: [{ to: [{ podSelector: sel('c') }], ports: [{ protocol: 'UDP', port: 80 }] }] }),
        pol('c-from-b', { podSelector: sel('c'), ingress: [{ from: [{ podSelector: sel('b') }], ports: [{ protocol: 'UDP', port: 80 }] }] }),
      ]);
      const sport = v6 ? 40662 : 40661;
      const victim = await pktBackground(pod('b').netns, ['udpwait', ip('c', v6), 80, sport, 2]);
      await sleep(300);
      pkt(pod('a').netns, ['icmperr', ip('b', v6), ip('b', v6), ip('c', v6), sport, 80, 5]);
      const out = await victim.done;
      assert.match(out, /^ok [1-9]/, `b's connected socket: ${out}`);
    });
  }

  it('a rule with no ports admits ICMP: ping works both ways under deny-all plus such rules, its replies as answers', () => {
    c.sync([
      DENY_ALL,
      pol('a-to-b', { podSelector: sel('a'), policyTypes: ['Egress'], egress: [{ to: [{ podSelector: sel('b') }] }] }),
      pol('b-from-a', { podSelector: sel('b'), ingress: [{ from: [{ podSelector: sel('a') }] }] }),
    ]);
    assert.ok(ping('a', 'b'), 'a pings b (IPv4)');
    assert.ok(ping('a', 'b', true), 'a pings b (IPv6)');
    assert.equal(ping('b', 'a'), false, 'b may not ping a: the rules go one way');
  });

  it('a rule with ports does not admit ICMP', () => {
    c.sync([
      DENY_ALL,
      pol('a-to-b', { podSelector: sel('a'), policyTypes: ['Egress'], egress: [{ to: [{ podSelector: sel('b') }], ports: [{ protocol: 'UDP', port: 80 }] }] }),
      pol('b-from-a', { podSelector: sel('b'), ingress: [{ from: [{ podSelector: sel('a') }], ports: [{ protocol: 'UDP', port: 80 }] }] }),
    ]);
    assert.equal(ping('a', 'b'), false);
    assert.equal(ping('a', 'b', true), false);
  });
});
