// NetworkPolicy truth tables — the cases of kubernetes' test/e2e/network/netpol suite that
// run without a cluster — as real traffic: namespaces x, y, z, pods a, b, c, TCP and UDP on
// 80 and 81, the full 9 x 9 x 4 reachability matrix checked after every change. As in the
// suite, a pod reaching itself is always allowed (loopback never leaves the pod).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { NetpolCluster, type Pod, type Proto } from '../helpers/netpol.js';
import { cleanupNetns } from '../helpers/twill.js';

after(cleanupNetns);

type Truth = (from: Pod, to: Pod, port: number, proto: Proto) => boolean;
const pol = (ns: string, name: string, spec: object): object => ({ metadata: { namespace: ns, name }, spec });
const is = (p: Pod, key: string): boolean => `${p.ns}/${p.name}` === key;
const xa = { podSelector: { matchLabels: { pod: 'a' } } };
const dns = { ports: [{ protocol: 'UDP', port: 53 }, { protocol: 'TCP', port: 53 }] };

interface Case {
  name: string;
  policies: (c: NetpolCluster) => object[];
  truth: Truth;
  /** Runs before the sync (label changes). */
  before?: (c: NetpolCluster) => void;
  after?: (c: NetpolCluster) => void;
}

/** Ingress to x/a allowed only for from(); everything else open. */
const onlyToXa = (ok: (f: Pod, port: number, proto: Proto) => boolean): Truth => (f, t, port, proto) => !is(t, 'x/a') || ok(f, port, proto);
/** Egress from x/a allowed only to to(); everything else open. */
const onlyFromXa = (ok: (t: Pod, port: number, proto: Proto) => boolean): Truth => (f, t, port, proto) => !is(f, 'x/a') || ok(t, port, proto);

const CASES: Case[] = [
  { name: 'default-deny-ingress', policies: () => [pol('x', 'deny-ingress', { podSelector: {}, policyTypes: ['Ingress'] })], truth: (_f, t) => t.ns !== 'x' },
  { name: 'default-deny-all', policies: () => [pol('x', 'deny-all', { podSelector: {}, policyTypes: ['Ingress', 'Egress'] })], truth: (f, t) => f.ns !== 'x' && t.ns !== 'x' },
  { name: 'allow from pods within the namespace by podSelector', policies: () => [pol('x', 'x-a-from-b', { ...xa, ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'b' } } }] }] })], truth: onlyToXa((f) => is(f, 'x/b')) },
  { name: 'allow ingress traffic for a target (ingress: [{}])', policies: () => [pol('x', 'allow-all-to-a', { ...xa, ingress: [{}] })], truth: () => true },
  { name: 'allow ingress from pods in all namespaces', policies: () => [pol('x', 'all-ns', { ...xa, ingress: [{ from: [{ namespaceSelector: {} }] }] })], truth: () => true },
  { name: 'allow only from a different namespace by namespaceSelector', policies: () => [pol('x', 'from-y', { ...xa, ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'y' } } }] }] })], truth: onlyToXa((f) => f.ns === 'y') },
  { name: 'podSelector with matchExpressions', policies: () => [pol('x', 'expr', { ...xa, ingress: [{ from: [{ podSelector: { matchExpressions: [{ key: 'pod', operator: 'In', values: ['b'] }] } }] }] })], truth: onlyToXa((f) => is(f, 'x/b')) },
  { name: 'namespaceSelector with matchExpressions', policies: () => [pol('x', 'ns-expr', { ...xa, ingress: [{ from: [{ namespaceSelector: { matchExpressions: [{ key: 'ns', operator: 'In', values: ['y'] }] } }] }] })], truth: onlyToXa((f) => f.ns === 'y') },
  { name: 'podSelector OR namespaceSelector (two peers)', policies: () => [pol('x', 'or', { ...xa, ingress: [{ from: [{ namespaceSelector: { matchExpressions: [{ key: 'ns', operator: 'NotIn', values: ['x'] }] } }, { podSelector: { matchLabels: { pod: 'b' } } }] }] })], truth: onlyToXa((f) => f.ns !== 'x' || is(f, 'x/b')) },
  { name: 'podSelector AND namespaceSelector (one peer)', policies: () => [pol('x', 'and', { ...xa, ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'y' } }, podSelector: { matchLabels: { pod: 'b' } } }] }] })], truth: onlyToXa((f) => is(f, 'y/b')) },
  { name: 'multiple podSelectors and namespaceSelectors', policies: () => [pol('x', 'multi', { ...xa, ingress: [{ from: [{ namespaceSelector: { matchExpressions: [{ key: 'ns', operator: 'NotIn', values: ['x'] }] }, podSelector: { matchExpressions: [{ key: 'pod', operator: 'In', values: ['b', 'c'] }] } }] }] })], truth: onlyToXa((f) => f.ns !== 'x' && f.name !== 'a') },
  { name: 'any podSelector (Exists)', policies: () => [pol('x', 'exists', { ...xa, ingress: [{ from: [{ podSelector: { matchExpressions: [{ key: 'pod', operator: 'Exists' }] } }] }] })], truth: onlyToXa((f) => f.ns === 'x') },
  { name: 'DoesNotExist selects nothing labelled', policies: () => [pol('x', 'not-exists', { ...xa, ingress: [{ from: [{ podSelector: { matchExpressions: [{ key: 'pod', operator: 'DoesNotExist' }] } }] }] })], truth: onlyToXa(() => false) },
  { name: 'ports: only 81 from namespace y', policies: () => [pol('x', 'port-81', { ...xa, ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'y' } } }], ports: [{ port: 81, protocol: 'TCP' }] }] })], truth: onlyToXa((f, port, proto) => f.ns === 'y' && port === 81 && proto === 'TCP') },
  { name: 'stacked policies with overlapping podSelectors (union)', policies: () => [
    pol('x', 'y-80', { ...xa, ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'y' } } }], ports: [{ port: 80, protocol: 'TCP' }] }] }),
    pol('x', 'z-81', { podSelector: {}, ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'z' } } }], ports: [{ port: 81, protocol: 'UDP' }] }] }),
  ], truth: (f, t, port, proto) => t.ns !== 'x' || (is(t, 'x/a') && f.ns === 'y' && port === 80 && proto === 'TCP') || (f.ns === 'z' && port === 81 && proto === 'UDP') },
  { name: 'allow-all policy', policies: () => [pol('x', 'allow-all', { podSelector: {}, ingress: [{}] })], truth: () => true },
  { name: 'ingress on one named port', policies: () => [pol('x', 'named', { ...xa, ingress: [{ ports: [{ port: 'serve-81-tcp', protocol: 'TCP' }] }] })], truth: onlyToXa((_f, port, proto) => port === 81 && proto === 'TCP') },
  { name: 'ingress from a namespace on one named port', policies: () => [pol('x', 'named-ns', { ...xa, ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'y' } } }], ports: [{ port: 'serve-80-udp', protocol: 'UDP' }] }] })], truth: onlyToXa((f, port, proto) => f.ns === 'y' && port === 80 && proto === 'UDP') },
  { name: 'egress on one named port (DNS allowed)', policies: () => [pol('x', 'egress-named', { ...xa, policyTypes: ['Egress'], egress: [{ ports: [{ port: 'serve-80-tcp', protocol: 'TCP' }] }, dns] })], truth: onlyFromXa((_t, port, proto) => port === 80 && proto === 'TCP') },
  { name: 'deny ingress from other namespaces', policies: () => [pol('x', 'same-ns', { podSelector: {}, ingress: [{ from: [{ podSelector: {} }] }] })], truth: (f, t) => t.ns !== 'x' || f.ns === 'x' },
  { name: 'deny egress from pods by podSelector', policies: () => [pol('x', 'deny-egress-a', { ...xa, policyTypes: ['Egress'] })], truth: onlyFromXa(() => false) },
  { name: 'deny egress from all pods of a namespace', policies: () => [pol('x', 'deny-egress', { podSelector: {}, policyTypes: ['Egress'], egress: [dns] })], truth: (f) => f.ns !== 'x' },
  { name: 'ingress and egress together', policies: () => [pol('x', 'both', { ...xa, policyTypes: ['Ingress', 'Egress'], ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'b' } } }] }], egress: [{ to: [{ podSelector: { matchLabels: { pod: 'c' } } }] }] })],
    truth: (f, t) => (!is(t, 'x/a') || is(f, 'x/b')) && (!is(f, 'x/a') || is(t, 'x/c')) },
  { name: 'client-side egress deny wins over a server that allows', policies: () => [
    pol('x', 'deny-egress-a', { ...xa, policyTypes: ['Egress'], egress: [dns] }),
    pol('y', 'allow-all-in', { podSelector: {}, ingress: [{}] }),
  ], truth: onlyFromXa(() => false) },
  { name: 'egress to a pod in another namespace by podSelector and namespaceSelector', policies: () => [pol('x', 'to-y-b', { ...xa, policyTypes: ['Egress'], egress: [{ to: [{ namespaceSelector: { matchLabels: { ns: 'y' } }, podSelector: { matchLabels: { pod: 'b' } } }] }, dns] })], truth: onlyFromXa((t) => is(t, 'y/b')) },
  { name: 'any port of one protocol (UDP)', policies: () => [pol('x', 'udp-any', { ...xa, ingress: [{ ports: [{ protocol: 'UDP' }] }] })], truth: onlyToXa((_f, _p, proto) => proto === 'UDP') },
  { name: 'multiple ingress policies: allow-all takes precedence', policies: () => [
    pol('x', 'only-80', { ...xa, ingress: [{ ports: [{ port: 80, protocol: 'TCP' }] }] }),
    pol('x', 'allow-all', { ...xa, ingress: [{}] }),
  ], truth: () => true },
  { name: 'multiple egress policies: allow-all takes precedence', policies: () => [
    pol('x', 'only-80', { ...xa, policyTypes: ['Egress'], egress: [{ ports: [{ port: 80, protocol: 'TCP' }] }] }),
    pol('x', 'allow-all', { ...xa, policyTypes: ['Egress'], egress: [{}] }),
  ], truth: () => true },
  { name: 'egress to a server in a CIDR block (a pod\'s /32)', policies: (c) => [pol('x', 'cidr', { ...xa, policyTypes: ['Egress'], egress: [{ to: [{ ipBlock: { cidr: `${c.pods.get('y/b')!.ips[0]}/32` } }] }, dns] })], truth: onlyFromXa((t) => is(t, 'y/b')) },
  { name: 'except clause of a CIDR block', policies: (c) => [pol('x', 'cidr-except', { ...xa, policyTypes: ['Egress'], egress: [{ to: [{ ipBlock: { cidr: subnetOf(c), except: [`${c.pods.get('y/b')!.ips[0]}/32`] } }] }, dns] })], truth: onlyFromXa((t) => !is(t, 'y/b')) },
  { name: 'an IP in both an except and another policy\'s CIDR is allowed', policies: (c) => [
    pol('x', 'cidr-except', { ...xa, policyTypes: ['Egress'], egress: [{ to: [{ ipBlock: { cidr: subnetOf(c), except: [`${c.pods.get('y/b')!.ips[0]}/32`] } }] }] }),
    pol('x', 'cidr-only', { ...xa, policyTypes: ['Egress'], egress: [{ to: [{ ipBlock: { cidr: `${c.pods.get('y/b')!.ips[0]}/32` } }] }] }),
  ], truth: () => true },
  { name: 'ingress ipBlock', policies: (c) => [pol('x', 'from-cidr', { ...xa, ingress: [{ from: [{ ipBlock: { cidr: `${c.pods.get('z/c')!.ips[0]}/32` } }] }] })], truth: onlyToXa((f) => is(f, 'z/c')) },
  { name: 'ingress and egress controlled independently', policies: () => [
    pol('x', 'deny-in-a', { ...xa, policyTypes: ['Ingress'] }),
    pol('x', 'deny-out-b', { podSelector: { matchLabels: { pod: 'b' } }, policyTypes: ['Egress'] }),
  ], truth: (f, t) => !is(t, 'x/a') && !is(f, 'x/b') },
  { name: 'SCTP is not TCP', policies: () => [pol('x', 'sctp-80', { ...xa, ingress: [{ ports: [{ port: 80, protocol: 'SCTP' }] }] })], truth: onlyToXa(() => false) },
  { name: 'UDP only: no TCP', policies: () => [pol('x', 'udp-81', { ...xa, ingress: [{ ports: [{ port: 81, protocol: 'UDP' }] }] })], truth: onlyToXa((_f, port, proto) => port === 81 && proto === 'UDP') },
  { name: 'namespace by its default label kubernetes.io/metadata.name', policies: () => [pol('x', 'meta-name', { ...xa, ingress: [{ from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'y' } } }] }] })], truth: onlyToXa((f) => f.ns === 'y') },
  { name: 'port range (endPort 80-81)', policies: () => [pol('x', 'range', { ...xa, ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'y' } } }], ports: [{ port: 80, endPort: 81, protocol: 'TCP' }] }] })], truth: onlyToXa((f, _p, proto) => f.ns === 'y' && proto === 'TCP') },
  { name: 'multiple ports and endPort', policies: () => [pol('x', 'ranges', { ...xa, ingress: [{ ports: [{ port: 81, endPort: 90, protocol: 'UDP' }, { port: 80, protocol: 'TCP' }] }] })], truth: onlyToXa((_f, port, proto) => (port === 81 && proto === 'UDP') || (port === 80 && proto === 'TCP')) },
];

function subnetOf(c: NetpolCluster): string {
  const ip = c.pods.get('y/b')!.ips[0]!;
  return `${ip.split('.').slice(0, 2).join('.')}.0.0/16`;
}

/** One of each kind, for the conflist that declares the bandwidth capability on twill. */
const DECLARED_CASES = new Set(['default-deny-all', 'ports: only 81 from namespace y', 'ingress and egress together', 'egress to a pod in another namespace by podSelector and namespaceSelector', 'except clause of a CIDR block', 'UDP only: no TCP']);

// Once more, over one case of each kind, with twill declaring the bandwidth capability (its pods attached by legacy tc, never pending).
describe('NetworkPolicy: the e2e truth tables, capabilities on twill', () => {
  let c: NetpolCluster;
  before(() => {
    c = new NetpolCluster(undefined, 'v4', {}, { shape: 'declared' }).setup();
  });
  after(() => c.teardown());

  for (const k of CASES.filter((x) => DECLARED_CASES.has(x.name))) {
    it(k.name, async () => {
      k.before?.(c);
      c.sync(k.policies(c));
      assert.deepEqual(c.expect(await c.probe(), (f, t, port, proto) => f === t || k.truth(f, t, port, proto)), []);
    });
  }
});

// The everyday conflist (twill + portmap + bandwidth, capabilities only on portmap and bandwidth):
// every pod starts pending, attached by tcx, and is settled once its chain's result is cached.
describe('NetworkPolicy: the e2e truth tables', () => {
  let c: NetpolCluster;
  before(() => {
    c = new NetpolCluster().setup();
  });
  after(() => c.teardown());

  const check = async (truth: Truth): Promise<void> => {
    const diff = c.expect(await c.probe(), (f, t, port, proto) => f === t || truth(f, t, port, proto));
    assert.deepEqual(diff, []);
  };

  it('with no policy, everything reaches everything', async () => {
    c.sync([]);
    await check(() => true);
  });

  for (const k of CASES) {
    it(k.name, async () => {
      k.before?.(c);
      c.sync(k.policies(c));
      await check(k.truth);
    });
  }

  it('updated policy: a policy changed in place is enforced as changed', async () => {
    c.sync([pol('x', 'p', { ...xa, ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'b' } } }] }] })]);
    await check(onlyToXa((f) => is(f, 'x/b')));
    c.sync([pol('x', 'p', { ...xa, ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'c' } } }] }] })]);
    await check(onlyToXa((f) => is(f, 'x/c')));
  });

  it('ingress from an updated namespace: a namespace label change admits its pods', async () => {
    const p = [pol('x', 'from-team', { ...xa, ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: 'blue' } } }] }] })];
    c.sync(p);
    await check(onlyToXa(() => false));
    c.nsLabels.set('y', { ns: 'y', team: 'blue' });
    c.sync(p);
    await check(onlyToXa((f) => f.ns === 'y'));
    c.nsLabels.set('y', { ns: 'y' });
  });

  it('ingress from an updated pod: a pod label change admits it', async () => {
    const p = [pol('x', 'from-b2', { ...xa, ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'b2' } } }] }] })];
    c.sync(p);
    await check(onlyToXa(() => false));
    c.pods.get('x/b')!.labels = { pod: 'b2' };
    c.sync(p);
    await check(onlyToXa((f) => is(f, 'x/b')));
    c.pods.get('x/b')!.labels = { pod: 'b' };
  });

  it('deny ingress to an updated pod: a label change that makes a pod selected isolates it', async () => {
    const p = [pol('x', 'deny-targets', { podSelector: { matchLabels: { target: 'true' } }, policyTypes: ['Ingress'] })];
    c.sync(p);
    await check(() => true);
    c.pods.get('x/a')!.labels = { pod: 'a', target: 'true' };
    c.sync(p);
    await check(onlyToXa(() => false));
    c.pods.get('x/a')!.labels = { pod: 'a' };
  });

  it('policies stop being enforced once deleted', async () => {
    c.sync([pol('x', 'deny-all', { podSelector: {}, policyTypes: ['Ingress', 'Egress'] })]);
    await check((f, t) => f.ns !== 'x' && t.ns !== 'x');
    c.sync([]);
    await check(() => true);
  });
});
