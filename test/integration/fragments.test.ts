// Fragments and IPv6 extension headers under NetworkPolicy: a later fragment carries no
// ports, so it is judged with its first fragment's (a large UDP answer of an allowed
// connection — a fragmented DNS reply — gets through whole); an IPv6 packet is judged by its
// transport header behind hop-by-hop, routing, destination-options and fragment headers, not
// by the first next-header value — so an allowed port stays allowed with such headers, and a
// denied one stays denied.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { NetpolCluster, type Pod } from '../helpers/netpol.js';
import { pkt, pktBackground } from '../helpers/pkt.js';
import { spawnSync } from 'node:child_process';
import { cleanupNetns, TWILL } from '../helpers/twill.js';

after(cleanupNetns);

const pol = (name: string, spec: object): object => ({ metadata: { namespace: 'x', name }, spec });
const sel = (pod: string): object => ({ matchLabels: { pod } });
const DENY_ALL = pol('deny-all', { podSelector: {}, policyTypes: ['Ingress', 'Egress'] });
const BIG_PORT = 7711;

describe('fragments and IPv6 extension headers under NetworkPolicy', () => {
  let c: NetpolCluster;
  const pod = (n: string): Pod => c.pods.get(`x/${n}`)!;
  const ip = (n: string, v6: boolean): string => pod(n).ips.find((a) => a.includes(':') === v6)!;

  before(() => {
    c = new NetpolCluster({ namespaces: ['x'], pods: ['a', 'b'], ports: [80], protocols: ['UDP'] }, 'dual').setup();
  });
  after(() => c.teardown());

  for (const v6 of [false, true]) {
    const fam = v6 ? 'IPv6' : 'IPv4';
    it(`a fragmented UDP answer of an allowed connection arrives whole, both ends isolated (${fam})`, async () => {
      // b asks a on UDP BIG_PORT (allowed), a answers 3000 bytes: fragmented at a's MTU of 1500.
      c.sync([
        DENY_ALL,
        pol('b-to-a', { podSelector: sel('b'), policyTypes: ['Egress'], egress: [{ to: [{ podSelector: sel('a') }], ports: [{ protocol: 'UDP', port: BIG_PORT }] }] }),
        pol('a-from-b', { podSelector: sel('a'), ingress: [{ from: [{ podSelector: sel('b') }], ports: [{ protocol: 'UDP', port: BIG_PORT }] }] }),
      ]);
      const server = await pktBackground(pod('a').netns, ['bigecho', BIG_PORT, 3000, 3]);
      const got = pkt(pod('b').netns, ['frag', ip('a', v6), BIG_PORT, v6 ? 40782 : 40781, 100]);
      await server.done;
      assert.equal(got, '3000', `b got ${got} bytes of the 3000-byte answer`);
    });

    it(`a fragmented request to an allowed port arrives whole (${fam})`, async () => {
      const server = await pktBackground(pod('a').netns, ['bigecho', BIG_PORT, 10, 3]);
      const got = pkt(pod('b').netns, ['frag', ip('a', v6), BIG_PORT, v6 ? 40784 : 40783, 4000]);
      await server.done;
      assert.equal(got, '10', 'the 4000-byte request was answered');
    });
  }

  it('a later fragment whose first one was never seen is dropped at an egress-isolated sender, with a reason of its own', () => {
    c.sync([
      DENY_ALL,
      pol('b-to-a', { podSelector: sel('b'), policyTypes: ['Egress'], egress: [{ to: [{ podSelector: sel('a') }], ports: [{ protocol: 'UDP', port: BIG_PORT }] }] }),
    ]);
    pkt(pod('b').netns, ['lonefrag', ip('a', false), 3]);
    const r = spawnSync(TWILL, ['observe', '--conf-dir', c.confDir, '-o', 'json', '--ip', ip('a', false), '--verdict', 'DROPPED'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const drops = r.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { flow: { IP: { source: string }; drop_reason_desc?: string } })
      .filter((f) => f.flow.IP.source === ip('b', false));
    assert.deepEqual([...new Set(drops.map((f) => f.flow.drop_reason_desc))], ['FIRST_LOGICAL_DATAGRAM_FRAGMENT_NOT_FOUND']);
  });

  it('an IPv6 datagram with a destination-options header is judged by its UDP port: allowed on an allowed port', () => {
    c.sync([pol('a-from-b-80', { podSelector: sel('a'), ingress: [{ from: [{ podSelector: sel('b') }], ports: [{ protocol: 'UDP', port: 80 }] }] })]);
    assert.equal(pkt(pod('b').netns, ['dstopts', ip('a', true), 80, 40785]), '1');
  });

  it('… and denied when no rule allows its port: the header is no way around the policy', () => {
    c.sync([pol('a-from-b-tcp', { podSelector: sel('a'), ingress: [{ from: [{ podSelector: sel('b') }], ports: [{ protocol: 'TCP', port: 80 }] }] })]);
    assert.equal(pkt(pod('b').netns, ['dstopts', ip('a', true), 80, 40786]), '0');
  });
});
