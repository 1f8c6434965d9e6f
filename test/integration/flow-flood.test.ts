// The node's flow history and event stream against a flooding pod: packets with forged
// sources are counted (per veth) but never become flow records or events — each forged key
// would push a real flow out of the history — and a flow's drops make at most one event per
// second, so a pod hammering a denied peer cannot fill the ring buffer for everyone else.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { NetpolCluster, type Pod } from '../helpers/netpol.js';
import { endpointsJson } from '../helpers/traffic.js';
import { forge, send, sleep } from '../helpers/pkt.js';
import { cleanupNetns, sh, TWILL } from '../helpers/twill.js';

after(cleanupNetns);

interface JsonFlow {
  flow: { verdict: string; IP: { source: string; destination: string }; twill: { event: string; packets: number } };
}

describe('a pod flooding the flow history and the event stream', () => {
  let c: NetpolCluster;
  const pod = (k: string): Pod => c.pods.get(k)!;
  const v4 = (k: string): string => pod(k).ips.find((a) => !a.includes(':'))!;
  const observe = (...args: string[]) => spawnSync(TWILL, ['observe', '--conf-dir', c.confDir, ...args], { encoding: 'utf8', timeout: 30_000 });
  const flows = (...args: string[]): JsonFlow[] => {
    const r = observe('-o', 'json', ...args);
    assert.equal(r.status, 0, r.stderr);
    return r.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as JsonFlow);
  };
  const row = (k: string) => endpointsJson(c.bpffs.root).find((e) => e.addr === v4(k)) as { hostIfName: string; counters?: { spoofedPackets?: number } };
  const gwMac = (k: string): string => JSON.parse(sh('ip', ['-j', 'link', 'show', row(k).hostIfName]))[0].address as string;

  before(() => {
    c = new NetpolCluster({ namespaces: ['x', 'y'], pods: ['a', 'b'], ports: [80], protocols: ['UDP'] }, 'v4').setup();
    // y's pods take ingress from y only.
    c.sync([{ metadata: { namespace: 'y', name: 'from-y' }, spec: { podSelector: {}, ingress: [{ from: [{ podSelector: {} }] }] } }]);
  });
  after(() => c.teardown());

  it('forged sources are counted, never recorded: no flow keyed on a forged address, the real flows stay', () => {
    assert.equal(send(pod('x/a').netns, 40901, v4('x/b'), 80, 2), 2);
    const real = flows('--ip', v4('x/b'), '--port', '40901');
    assert.ok(real.length >= 1, 'the real flow is in the history');
    const spoofed0 = row('x/a').counters?.spoofedPackets ?? 0;
    const forged = [v4('y/b'), ...Array.from({ length: 15 }, (_, i) => `10.99.${i}.7`)];
    for (const src of forged) forge(pod('x/a').netns, gwMac('x/a'), src, v4('x/b'), 40902, 80, 5);
    assert.ok((row('x/a').counters?.spoofedPackets ?? 0) >= spoofed0 + forged.length * 5, JSON.stringify(row('x/a')));
    const all = flows();
    const keyed = all.filter((f) => forged.includes(f.flow.IP.source));
    assert.deepEqual(keyed.map((f) => f.flow.IP), [], 'no record keyed on a forged source');
    assert.ok(flows('--ip', v4('x/b'), '--port', '40901').length >= 1, 'the real flow is still there');
  });

  it('a flow\'s drops make at most one event per second, however many packets', async () => {
    const p = spawn(TWILL, ['observe', '--conf-dir', c.confDir, '-f', '-o', 'json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const closed = new Promise((r) => p.on('close', r));
    try {
      // The reader registers itself in the observer map on start (observe.test.ts proves it).
      await sleep(1000);
      // 40 denied datagrams of one flow (x/a's own address, so not forged) in ~0.5 s.
      forge(pod('x/a').netns, gwMac('x/a'), v4('x/a'), v4('y/a'), 40903, 80, 40);
      await sleep(600);
    } finally {
      // A failed step must not leave the follower running: the test file would never exit.
      p.kill('SIGINT');
      await closed;
    }
    const drops = out.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as JsonFlow)
      .filter((e) => e.flow.IP.source === v4('x/a') && e.flow.IP.destination === v4('y/a') && e.flow.twill.event === 'drop');
    assert.ok(drops.length >= 1, 'the drop is an event');
    assert.ok(drops.length <= 2, `${drops.length} drop events for one flow within a second`);
    const rec = flows('--ip', v4('y/a'), '--port', '40903');
    assert.equal(rec[0]?.flow.twill.packets, 40, 'the record counts every packet');
  });
});
