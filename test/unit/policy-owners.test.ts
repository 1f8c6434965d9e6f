// One owner per address: a Pod object that still lists an address another pod now holds (a
// Terminating pod kept by a finalizer, a stale object) never lends that address its identity,
// whatever the order the objects arrive in; a late event of the old pod never takes the
// address from its new owner; when an owner goes, the next candidate takes over.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parsePod, type PodObj } from '../../lib/policy/objects.js';
import { AddressClaims, addressOwners, mayOwn, ownedPods } from '../../lib/policy/owners.js';

const pod = (name: string, ips: string[], extra: Partial<PodObj> = {}): [string, PodObj] => [
  `ns/${name}`,
  { namespace: 'ns', name, labels: { app: name }, ips, nodeName: 'n1', ports: [], phase: 'Running', containerStatuses: [{ name: 'c', running: true }], ...extra },
];
const TERMINATING_STOPPED: Partial<PodObj> = { deletionTimestamp: '2026-01-01T00:10:00Z', containerStatuses: [{ name: 'c', running: false }] };
const TERMINATING_RUNNING: Partial<PodObj> = { deletionTimestamp: '2026-01-01T00:10:00Z' };
const both = (a: [string, PodObj], b: [string, PodObj]): Map<string, PodObj>[] => [new Map([a, b]), new Map([b, a])];

describe('address owners', () => {
  it('a terminating pod with no running container owns no address, even alone', () => {
    const old = pod('monitor', ['10.0.0.5'], { creationTimestamp: '2026-01-01T00:00:00Z', ...TERMINATING_STOPPED });
    assert.equal(mayOwn(old[1]), false);
    assert.equal(addressOwners(new Map([old])).get('10.0.0.5'), undefined);
    assert.deepEqual(ownedPods(new Map([old])).get('ns/monitor')!.ips, []);
    // No containerStatuses at all (the kubelet has not reported, or a hand-written object): none running.
    assert.equal(mayOwn(pod('x', ['10.0.0.6'], { deletionTimestamp: '2026-01-01T00:10:00Z', containerStatuses: undefined })[1]), false);
  });

  it('a finished pod (Succeeded, Failed) owns no address: its address is released', () => {
    for (const phase of ['Succeeded', 'Failed']) {
      const done = pod('job', ['10.0.0.7'], { phase });
      assert.equal(mayOwn(done[1]), false);
      assert.equal(addressOwners(new Map([done])).get('10.0.0.7'), undefined);
    }
  });

  it('a terminating pod listing the address of a new pod never owns it, in either order', () => {
    const old = pod('monitor', ['10.0.0.5'], { creationTimestamp: '2026-01-01T00:00:00Z', ...TERMINATING_STOPPED });
    const young = pod('db-client', ['10.0.0.5'], { creationTimestamp: '2026-01-01T00:05:00Z' });
    for (const m of both(old, young)) {
      assert.equal(addressOwners(m).get('10.0.0.5'), 'ns/db-client');
      const owned = ownedPods(m);
      assert.deepEqual(owned.get('ns/monitor')!.ips, []);
      assert.deepEqual(owned.get('ns/db-client')!.ips, ['10.0.0.5']);
    }
  });

  it('not terminating beats terminating (even a newer one whose containers still run)', () => {
    const settled = pod('a', ['10.0.0.5'], { creationTimestamp: '2026-01-01T00:00:00Z' });
    const leaving = pod('b', ['10.0.0.5'], { creationTimestamp: '2026-01-01T00:09:00Z', ...TERMINATING_RUNNING });
    assert.equal(mayOwn(leaving[1]), true);
    for (const m of both(settled, leaving)) assert.equal(addressOwners(m).get('10.0.0.5'), 'ns/a');
    // Alone, a terminating pod whose container still runs keeps its address (it still holds it).
    assert.equal(addressOwners(new Map([leaving])).get('10.0.0.5'), 'ns/b');
  });

  it('of two pods alive, the newer owns; equal or absent creation times fall to a stable order', () => {
    const older = pod('old', ['10.0.0.5'], { creationTimestamp: '2026-01-01T00:00:00Z' });
    const newer = pod('new', ['10.0.0.5'], { creationTimestamp: '2026-01-01T00:00:01Z' });
    for (const m of both(older, newer)) assert.equal(addressOwners(m).get('10.0.0.5'), 'ns/new');
    const p = pod('p', ['10.0.0.9']);
    const q = pod('q', ['10.0.0.9']);
    const [one, two] = both(p, q).map((m) => addressOwners(m).get('10.0.0.9'));
    assert.equal(one, two, 'the same owner whatever the order of the objects');
  });

  it('ownership is per address: a dual-stack pod loses only the address another holds; address spellings are one address', () => {
    const old = pod('old', ['10.0.0.5', 'fd00::5'], { creationTimestamp: '2026-01-01T00:00:00Z' });
    const young = pod('young', ['10.0.0.5', 'fd00:0:0::7'], { creationTimestamp: '2026-01-01T00:05:00Z' });
    const other = pod('other', ['fd00::7'], { creationTimestamp: '2026-01-01T00:00:00Z' });
    const owned = ownedPods(new Map([young, old, other]));
    assert.deepEqual(owned.get('ns/old')!.ips, ['fd00::5']);
    assert.deepEqual(owned.get('ns/young')!.ips, ['10.0.0.5', 'fd00:0:0::7']);
    assert.deepEqual(owned.get('ns/other')!.ips, [], 'fd00::7 and fd00:0:0::7 are one address: the newer pod holds it');
  });

  it('a pod this node attached holds what its IPAM gave it, against any object listing the address', () => {
    const attached = pod('new', ['10.0.0.5']);
    const stale = pod('stale', ['10.0.0.5'], { creationTimestamp: '2026-01-01T00:05:00Z' });
    for (const m of both(attached, stale)) {
      assert.equal(addressOwners(m).get('10.0.0.5'), 'ns/stale', 'by the objects alone, the newer');
      assert.equal(addressOwners(m, new Set(['ns/new'])).get('10.0.0.5'), 'ns/new');
      assert.deepEqual(ownedPods(m, new Set(['ns/new'])).get('ns/stale')!.ips, []);
    }
  });

  it('incrementally: a late DELETED of the old pod leaves the new owner; when the owner goes, the next candidate takes over', () => {
    const pods = new Map<string, PodObj>();
    const claims = new AddressClaims(pods);
    const put = ([k, p]: [string, PodObj]): void => {
      const before = pods.get(k);
      pods.set(k, p);
      claims.update(k, before, p);
    };
    const del = (k: string): void => {
      const before = pods.get(k);
      pods.delete(k);
      claims.update(k, before, undefined);
    };
    put(pod('monitor', ['10.0.0.5'], { creationTimestamp: '2026-01-01T00:00:00Z' }));
    assert.equal(claims.owner('10.0.0.5'), 'ns/monitor');
    put(pod('monitor', ['10.0.0.5'], { creationTimestamp: '2026-01-01T00:00:00Z', ...TERMINATING_RUNNING }));
    put(pod('client', ['10.0.0.5'], { creationTimestamp: '2026-01-01T00:05:00Z' }));
    assert.equal(claims.owner('10.0.0.5'), 'ns/client');
    // A late MODIFIED of the old pod (still listing the address): no change of owner.
    put(pod('monitor', ['10.0.0.5'], { creationTimestamp: '2026-01-01T00:00:00Z', ...TERMINATING_RUNNING, labels: { app: 'monitor', x: '1' } }));
    assert.equal(claims.owner('10.0.0.5'), 'ns/client');
    assert.deepEqual(claims.owned('ns/monitor')!.ips, []);
    del('ns/monitor');
    assert.equal(claims.owner('10.0.0.5'), 'ns/client', 'the late DELETED does not take the address');
    assert.deepEqual(claims.owned('ns/client')!.ips, ['10.0.0.5']);
    // The owner goes while another still lists the address: that one takes over.
    put(pod('stale', ['10.0.0.5'], { creationTimestamp: '2026-01-01T00:01:00Z' }));
    assert.equal(claims.owner('10.0.0.5'), 'ns/client');
    del('ns/client');
    assert.equal(claims.owner('10.0.0.5'), 'ns/stale');
    assert.equal(claims.owned('ns/client'), undefined);
    del('ns/stale');
    assert.equal(claims.owner('10.0.0.5'), undefined);
    assert.deepEqual(claims.claimants('10.0.0.5'), []);
  });

  it('incrementally always agrees with the whole computation (random events)', () => {
    let seed = 7;
    const rnd = (n: number): number => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n);
    const pods = new Map<string, PodObj>();
    const claims = new AddressClaims(pods);
    for (let step = 0; step < 3000; step++) {
      const k = `ns/p${rnd(8)}`;
      const before = pods.get(k);
      if (rnd(4) === 0) pods.delete(k);
      else {
        const extra: Partial<PodObj> = { creationTimestamp: `2026-01-01T00:00:0${rnd(3)}Z` };
        if (rnd(3) === 0) Object.assign(extra, rnd(2) ? TERMINATING_RUNNING : TERMINATING_STOPPED);
        if (rnd(8) === 0) extra.phase = 'Succeeded';
        pods.set(k, pod(k.slice(3), [...new Set([`10.0.0.${rnd(4)}`, `10.0.0.${rnd(4)}`])], extra)[1]);
      }
      claims.update(k, before, pods.get(k));
      const whole = addressOwners(pods);
      for (let i = 0; i < 4; i++) assert.equal(claims.owner(`10.0.0.${i}`), whole.get(`10.0.0.${i}`), `step ${step}`);
      if (step % 50 === 0) {
        const owned = ownedPods(pods);
        for (const key of pods.keys()) assert.deepEqual(claims.owned(key), owned.get(key));
      }
    }
    claims.reset();
    assert.deepEqual([0, 1, 2, 3].map((i) => claims.owner(`10.0.0.${i}`)), [0, 1, 2, 3].map((i) => addressOwners(pods).get(`10.0.0.${i}`)));
  });

  it('the object model reads what ownership needs from API JSON', () => {
    const p = parsePod({
      kind: 'Pod',
      metadata: { namespace: 'ns', name: 'm', creationTimestamp: '2026-01-01T00:00:00Z', deletionTimestamp: '2026-01-01T00:10:00Z', finalizers: ['example.com/keep'] },
      spec: { nodeName: 'n1', containers: [{ name: 'c' }, { name: 'd' }] },
      status: { phase: 'Running', podIPs: [{ ip: '10.0.0.5' }], containerStatuses: [{ name: 'c', state: { terminated: { exitCode: 0 } } }, { name: 'd', state: { running: { startedAt: '2026-01-01T00:00:01Z' } } }] },
    })!;
    assert.equal(p.creationTimestamp, '2026-01-01T00:00:00Z');
    assert.equal(p.deletionTimestamp, '2026-01-01T00:10:00Z');
    assert.equal(p.phase, 'Running');
    assert.deepEqual(p.containerStatuses, [{ name: 'c', running: false }, { name: 'd', running: true }]);
    assert.equal(mayOwn(p), true, 'one container still runs');
    assert.equal(mayOwn({ ...p, containerStatuses: [{ name: 'c', running: false }, { name: 'd', running: false }] }), false);
  });
});
