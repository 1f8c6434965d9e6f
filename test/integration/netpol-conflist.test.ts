// NetworkPolicy with every conflist shape users write, each proved by real traffic: the
// everyday one (twill + portmap + bandwidth, capabilities only on portmap and bandwidth: pods
// start pending, attached by tcx, and are settled once their chain's result is cached), twill
// declaring the bandwidth capability (unshaped pods by legacy tc, a shaped pod by tcx), and
// ebpfAttach tcx / legacy. Every shape must attach (bpffs refuses a link pin with a dot in its
// name) and enforce: b reaches a, c reaches nothing, a reaches nothing but b's replies.
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { CNITOOL, NetpolCluster, type ConfShape, type Pod } from '../helpers/netpol.js';
import { endpointsJson } from '../helpers/traffic.js';
import { cleanupNetns, sh, twill } from '../helpers/twill.js';

after(cleanupNetns);

const MODEL = { namespaces: ['x'], pods: [], ports: [80], protocols: ['TCP' as const, 'UDP' as const] };
const pol = (name: string, spec: object): object => ({ metadata: { namespace: 'x', name }, spec });
const POLICIES = [
  pol('a-from-b', { podSelector: { matchLabels: { pod: 'a' } }, policyTypes: ['Ingress', 'Egress'], ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'b' } } }] }] }),
  pol('c-nothing', { podSelector: { matchLabels: { pod: 'c' } }, policyTypes: ['Egress'] }),
];
const TRUTH = (f: Pod, t: Pod): boolean => f === t || ((t.name !== 'a' || f.name === 'b') && f.name !== 'c' && f.name !== 'a');
const LIMITS = { ingressRate: 50_000_000, ingressBurst: 500_000, egressRate: 50_000_000, egressBurst: 500_000 };

interface Shape {
  name: string;
  shape: ConfShape;
  extra?: Record<string, unknown>;
  /** Pods whose ADD carries the bandwidth plugin's limits. */
  shaped?: string[];
  /** Whether the pods' chains are done before the probe (everyday: settled, not pending). */
  done: boolean;
  /** How the pods' programs must be attached: by tcx (a pin per direction) or legacy tc (none). */
  tcxPins: string[];
}

const SHAPES: Shape[] = [
  { name: 'everyday conflist, pods pending (chain not done)', shape: 'everyday', done: false, tcxPins: ['a', 'b', 'c'] },
  { name: 'everyday conflist, pods settled', shape: 'everyday', done: true, tcxPins: ['a', 'b', 'c'] },
  { name: 'everyday conflist, ebpfAttach tcx', shape: 'everyday', extra: { ebpfAttach: 'tcx' }, done: true, tcxPins: ['a', 'b', 'c'] },
  { name: 'everyday conflist, ebpfAttach legacy', shape: 'everyday', extra: { ebpfAttach: 'legacy' }, done: true, tcxPins: ['a', 'b', 'c'] },
  { name: 'capabilities on twill', shape: 'declared', done: true, tcxPins: [] },
  { name: 'capabilities on twill, a shaped pod', shape: 'declared', shaped: ['a'], done: true, tcxPins: ['a'] },
  { name: 'capabilities on twill, ebpfAttach tcx', shape: 'declared', extra: { ebpfAttach: 'tcx' }, done: true, tcxPins: ['a', 'b', 'c'] },
  { name: 'capabilities on twill, ebpfAttach legacy', shape: 'declared', extra: { ebpfAttach: 'legacy' }, done: true, tcxPins: [] },
];

/** Polls for a path's absence: DEL leaves the pins of a veth to the process that deletes it. */
async function gone(path: string): Promise<boolean> {
  for (let i = 0; i < 60; i++) {
    if (!existsSync(path)) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

describe('NetworkPolicy with every conflist shape (direct calls)', () => {
  for (const s of SHAPES) {
    it(`${s.name}: every ADD succeeds and the policy holds`, async () => {
      const c = new NetpolCluster(MODEL, 'v4', s.extra ?? {}, { shape: s.shape });
      try {
        for (const name of ['a', 'b', 'c']) c.addPod('x', name, { pod: name }, { done: s.done, ...(s.shaped?.includes(name) ? { bandwidth: LIMITS } : {}) });
        c.sync(POLICIES);
        const eps = endpointsJson(c.bpffs.root).filter((e) => e.network === c.net.name) as { addr: string; pending?: boolean; hostIfName: string }[];
        assert.equal(eps.length, 3);
        for (const e of eps) assert.equal(e.pending === true, !s.done, `${e.addr} pending`);
        const hostOf = (n: string): string => eps.find((e) => e.addr === c.pods.get(`x/${n}`)!.ips[0])!.hostIfName;
        const pins = readdirSync(`${c.bpffs.root}/twill/${c.net.name}/links`).sort();
        assert.deepEqual(pins, s.tcxPins.flatMap((n) => [hostOf(n), `${hostOf(n)}:to`]).sort(), 'a pin per direction of each tcx-attached pod');
        assert.deepEqual(c.expect(await c.probe(), TRUTH), []);
        if (!s.done) {
          // The chains finish: the next call (here the sync) settles the pods, and the policy still holds.
          for (const p of c.pods.values()) c.chainDone(p, {});
          c.sync(POLICIES);
          assert.ok(endpointsJson(c.bpffs.root).filter((e) => e.network === c.net.name).every((e) => !(e as { pending?: boolean }).pending), 'settled');
          assert.deepEqual(c.expect(await c.probe(), TRUTH), []);
        }
        c.sync([]);
        assert.deepEqual(c.expect(await c.probe(), () => true), [], 'no policy: everything open');
        for (const n of ['a', 'b', 'c']) assert.equal(c.delPod('x', n).code, 0);
        assert.ok(await gone(`${c.bpffs.root}/twill/${c.net.name}`), 'the last DEL takes every pin with it');
      } finally {
        c.teardown();
      }
    });
  }
});

describe('link pins of tcx-attached pods under policy', () => {
  it('GC keeps both pins of every valid pod (its policy still holds) and removes both of the others', async () => {
    const c = new NetpolCluster(MODEL, 'v4', {}, { shape: 'everyday' });
    try {
      for (const name of ['a', 'b', 'c']) c.addPod('x', name);
      c.sync(POLICIES);
      const links = `${c.bpffs.root}/twill/${c.net.name}/links`;
      assert.equal(readdirSync(links).length, 6);
      const valid = ['a', 'b'].map((n) => ({ containerID: c.pods.get(`x/${n}`)!.containerId, ifname: 'eth0' }));
      const gc = twill({ CNI_COMMAND: 'GC' }, { ...c.conf, 'cni.dev/valid-attachments': valid });
      assert.equal(gc.code, 0, gc.stdout);
      const hosts = endpointsJson(c.bpffs.root).filter((e) => e.network === c.net.name).map((e) => e.hostIfName);
      assert.equal(hosts.length, 2, 'c is gone');
      assert.deepEqual(readdirSync(links).sort(), hosts.flatMap((h) => [h, `${h}:to`]).sort());
      c.pods.get('x/c')!.server?.kill();
      c.pods.delete('x/c');
      // a still admits b only (its to-pod program kept), and a sends nothing.
      assert.deepEqual(c.expect(await c.probe(), TRUTH), []);
      c.sync([pol('a-from-none', { podSelector: { matchLabels: { pod: 'a' } }, policyTypes: ['Ingress'] })]);
      assert.deepEqual(c.expect(await c.probe(), (f, t) => f === t || t.name !== 'a'), []);
    } finally {
      c.teardown();
    }
  });
});

describe('NetworkPolicy with the conflist run by libcni (cnitool: twill, portmap, bandwidth)', { skip: existsSync(CNITOOL) ? false : 'cnitool not built' }, () => {
  for (const shape of ['everyday', 'declared'] as const) {
    it(`${shape === 'everyday' ? 'capabilities only on portmap and bandwidth' : 'capabilities on twill too'}, a shaped pod: every ADD succeeds and the policy holds`, async () => {
      const c = new NetpolCluster(MODEL, 'v4', {}, { shape, runtime: 'cnitool' });
      try {
        // a is shaped by the bandwidth plugin (CAP_ARGS), b and c are not.
        for (const name of ['a', 'b', 'c']) c.addPod('x', name, { pod: name }, name === 'a' ? { bandwidth: LIMITS } : {});
        assert.match(sh('tc', ['qdisc', 'show']), /tbf/, 'the bandwidth plugin shaped a');
        c.sync(POLICIES);
        const eps = endpointsJson(c.bpffs.root).filter((e) => e.network === c.net.name) as { addr: string; pending?: boolean; fastPath: boolean }[];
        assert.equal(eps.length, 3);
        assert.ok(eps.every((e) => !e.pending), 'every chain is done: settled');
        assert.equal(eps.find((e) => e.addr === c.pods.get('x/a')!.ips[0])!.fastPath, false, 'the shaped pod stays off the fast path');
        assert.deepEqual(c.expect(await c.probe(), TRUTH), []);
        for (const n of ['a', 'b', 'c']) assert.equal(c.delPod('x', n).code, 0);
        assert.ok(await gone(`${c.bpffs.root}/twill/${c.net.name}`), 'the last DEL takes every pin with it');
      } finally {
        c.teardown();
      }
    });
  }
});
