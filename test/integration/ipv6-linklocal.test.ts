// IPv6 link-local (fe80::/10) and unspecified (::) sources from a pod: no pod owns them, so
// they carry neighbour discovery, MLD and DAD to link-local or multicast addresses and
// nothing else. An egress-isolated pod cannot reach the node's own services on the node's
// link-local address (what listens on ::), and what it tries is counted as spoofed; neighbour
// discovery keeps working, so the pod's IPv6 traffic a policy allows still flows.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { NetpolCluster, type Pod } from '../helpers/netpol.js';
import { echo, send, sleep } from '../helpers/pkt.js';
import { endpointsJson } from '../helpers/traffic.js';
import { cleanupNetns, sh } from '../helpers/twill.js';

after(cleanupNetns);

const pol = (name: string, spec: object): object => ({ metadata: { namespace: 'x', name }, spec });
const HOST_PORT = 47831; // the node's service, listening on ::

describe('IPv6 link-local and unspecified sources from a pod', () => {
  let c: NetpolCluster;
  const pod = (n: string): Pod => c.pods.get(`x/${n}`)!;
  const v6 = (n: string): string => pod(n).ips.find((a) => a.includes(':'))!;
  const row = (n: string) => endpointsJson(c.bpffs.root).find((e) => e.addr === v6(n)) as { hostIfName: string; counters?: { spoofedPackets?: number } };
  /** The node's link-local address on a pod's host veth, as the pod names it. */
  const nodeLinkLocal = (n: string): string => {
    const ll = /inet6 (fe80::[0-9a-f:]+)\//.exec(sh('ip', ['-o', '-6', 'addr', 'show', 'dev', row(n).hostIfName, 'scope', 'link']))?.[1];
    assert.ok(ll, `no link-local address on ${row(n).hostIfName}`);
    return `${ll}%eth0`;
  };
  /** Datagrams the node's :: listener gets while a sends to it on the node's link-local address. */
  const reachNode = async (): Promise<{ got: number; replies: number }> => {
    const got = echoOnHost(HOST_PORT, 2.5);
    await sleep(400);
    const replies = send(pod('a').netns, 40771, nodeLinkLocal('a'), HOST_PORT, 5);
    return { got: (await got).hello ?? 0, replies };
  };

  before(() => {
    c = new NetpolCluster({ namespaces: ['x'], pods: ['a', 'b'], ports: [80], protocols: ['UDP'] }, 'dual').setup();
  });
  after(() => c.teardown());

  it('an egress-isolated pod does not reach the node\'s service on the node\'s link-local address; counted as spoofed', async () => {
    c.sync([pol('a-to-b-only', { podSelector: { matchLabels: { pod: 'a' } }, policyTypes: ['Egress'], egress: [{ to: [{ podSelector: { matchLabels: { pod: 'b' } } }] }] })]);
    const before = row('a').counters?.spoofedPackets ?? 0;
    const r = await reachNode();
    assert.equal(r.got, 0, `the node's :: listener got ${r.got} datagrams from the pod's link-local address`);
    assert.equal(r.replies, 0);
    assert.ok((row('a').counters?.spoofedPackets ?? 0) >= before + 5, JSON.stringify(row('a')));
  });

  it('neighbour discovery still works: the IPv6 traffic the policy allows flows (a to b)', async () => {
    sh('ip', ['netns', 'exec', pod('a').netns, 'ip', '-6', 'neigh', 'flush', 'dev', 'eth0']);
    const got = echo(pod('b').netns, 7611, 2);
    await sleep(300);
    // The first datagram may wait out neighbour resolution past the sender's 0.3 s.
    assert.ok(send(pod('a').netns, 40772, v6('b'), 7611, 5) >= 4);
    assert.equal((await got).hello, 5);
  });

  it('without any policy a link-local source reaches no node service either: no pod owns it', async () => {
    c.sync([]);
    const r = await reachNode();
    assert.equal(r.got, 0, `the node's :: listener got ${r.got} datagrams`);
  });
});

/** The counting echo server of pkt.py, run in the node's (this process's) namespace. */
async function echoOnHost(port: number, seconds: number): Promise<Record<string, number>> {
  const { spawn } = await import('node:child_process');
  const { ROOT } = await import('../helpers/twill.js');
  return new Promise((resolve) => {
    const p = spawn('python3', [`${ROOT}/test/helpers/pkt.py`, 'echo', String(port), String(seconds)]);
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.on('close', () => resolve(Object.fromEntries(out.trim().split(' ').filter((kv) => kv.includes('=')).map((kv) => [kv.split('=')[0]!, Number(kv.split('=')[1])]))));
  });
}
