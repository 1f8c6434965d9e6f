// The watch (lib/cluster/watch.ts) against an in-process API server (test/helpers/fake-kube.ts)
// with a clock the test moves: the incremental path, resuming, relisting, and liveness — a
// silent watch is dropped and resumed, failures and short empty watches back off with jitter.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ClusterCache } from '../../lib/cluster/cache.js';
import { kubeconfigAccess, type KubeAccess } from '../../lib/cluster/k8s.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { FakeKube } from '../helpers/fake-kube.js';
import { removeDir, tempDir } from '../helpers/twill.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Waits (real time, briefly) for what the server or the cache does in answer. */
async function eventually(what: string, cond: () => boolean, ms = 3000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`never: ${what}`);
    await sleep(5);
  }
}

interface Logged { level: string; msg: string; fields: Record<string, unknown> }

describe('cluster watch', () => {
  const dir = tempDir('cluster-watch');
  const kube = new FakeKube('tok');
  let access: KubeAccess;
  before(async () => {
    await kube.start(dir);
    access = await kubeconfigAccess(kube.writeKubeconfig(dir, 'token: tok'));
  });
  after(() => {
    kube.stop();
    removeDir(dir);
  });

  const reqs = (kind: string, watch: boolean): string[] => kube.requests.map((r) => r.url).filter((u) => u.startsWith(kind) && u.includes('watch=1') === watch);
  const NP = '/apis/networking.k8s.io/v1/networkpolicies';

  /** A cache watching NetworkPolicies alone, on a fake clock. */
  function start(opts: { bookmarkMs?: number } = {}): { cache: ClusterCache; clock: FakeClock; log: Logged[]; stop: () => Promise<void> } {
    const clock = new FakeClock();
    const cache = new ClusterCache();
    cache.subscribe('NetworkPolicy', { changed: () => undefined });
    const log: Logged[] = [];
    const ac = new AbortController();
    const done = cache.watch(access, ac.signal, (level, msg, fields) => void log.push({ level, msg, fields }), { clock, ...opts });
    return { cache, clock, log, stop: async () => {
      ac.abort();
      clock.advance(3_600_000);
      await done;
    } };
  }
  const policy = (name: string, app = 'a'): { metadata: { namespace: string; name: string }; spec: object } => ({ metadata: { namespace: 'w', name }, spec: { podSelector: { matchLabels: { app } } } });

  it('lists, then applies each event to the store; a dropped watch resumes from the last resourceVersion without a list', async () => {
    kube.put('NetworkPolicy', policy('one'));
    const w = start();
    try {
      const store = w.cache.store('NetworkPolicy');
      await eventually('listed', () => store.synced && store.items.has('w/one'));
      const lists = reqs(NP, false).length;
      kube.put('NetworkPolicy', policy('two'));
      kube.put('NetworkPolicy', policy('one', 'b'));
      await eventually('two events', () => store.items.has('w/two') && store.items.get('w/one')!.podSelector.matchLabels.app === 'b');
      kube.delete('NetworkPolicy', 'w', 'two');
      await eventually('deleted', () => !store.items.has('w/two'));
      // Only the parsed fields are kept, never the raw object.
      assert.deepEqual(Object.keys(store.items.get('w/one')!).sort(), ['egress', 'ingress', 'name', 'namespace', 'podSelector', 'types']);
      const watches = reqs(NP, true).length;
      const rv = kube.rv;
      kube.dropWatches();
      await eventually('resumed', () => reqs(NP, true).length > watches);
      assert.match(reqs(NP, true).at(-1)!, new RegExp(`resourceVersion=${rv}(&|$)`));
      assert.equal(reqs(NP, false).length, lists, 'no list for a resumable watch');
      kube.put('NetworkPolicy', policy('three'));
      await eventually('an event on the resumed watch', () => store.items.has('w/three'));
      kube.expire();
      await eventually('listed again after 410 Gone', () => reqs(NP, false).length > lists);
    } finally {
      await w.stop();
      for (const n of ['one', 'three']) kube.delete('NetworkPolicy', 'w', n);
    }
  });

  it('a watch that hears nothing, not even a bookmark, for twice the bookmark interval is dropped and resumed', async () => {
    const earlier = reqs(NP, true).length;
    const w = start({ bookmarkMs: 60_000 });
    try {
      await eventually('watching', () => reqs(NP, true).length > earlier);
      await sleep(50);
      const watches = reqs(NP, true).length;
      const lists = reqs(NP, false).length;
      // A bookmark within the interval keeps a quiet watch: it is alive.
      w.clock.advance(100_000);
      kube.bookmark('NetworkPolicy');
      const rv = kube.rv;
      await sleep(50);
      w.clock.advance(100_000);
      await sleep(50);
      assert.equal(reqs(NP, true).length, watches, 'not dropped while bookmarks arrive');
      // Then silence (a half-open connection looks like this): dropped at twice the interval.
      w.clock.advance(20_001);
      await eventually('resumed', () => reqs(NP, true).length === watches + 1);
      assert.match(reqs(NP, true).at(-1)!, new RegExp(`resourceVersion=${rv}(&|$)`), 'resumed from the bookmark');
      assert.equal(reqs(NP, false).length, lists, 'resumed, not listed');
      assert.ok(w.log.some((l) => l.msg === 'watch stalled: resuming'), JSON.stringify(w.log));
    } finally {
      await w.stop();
    }
  });

  it('a watch that ends within a second having delivered nothing backs off exponentially with jitter', async () => {
    kube.closeWatches = true;
    const w = start();
    try {
      await eventually('the first short watch', () => w.log.some((l) => l.msg === 'watch failed: retrying'));
      const watches = reqs(NP, true).length;
      // client-go: 800 ms doubling, each stretched by up to 100% (random() is 0.5 here).
      assert.deepEqual(w.log.map((l) => l.fields.retryIn), [1.2]);
      await sleep(50);
      assert.equal(reqs(NP, true).length, watches, 'no watch before the backoff has passed');
      w.clock.advance(1199);
      await sleep(50);
      assert.equal(reqs(NP, true).length, watches);
      w.clock.advance(1);
      await eventually('the second short watch', () => w.log.length === 2);
      assert.equal(w.log[1]!.fields.retryIn, 2.4);
      kube.closeWatches = false;
      w.clock.advance(2400);
      await eventually('watching again', () => kube.watchCount() === 1);
      // A watch that delivered resets the backoff.
      kube.put('NetworkPolicy', policy('reset'));
      await eventually('delivered', () => w.cache.store('NetworkPolicy').items.has('w/reset'));
      kube.closeWatches = true;
      kube.dropWatches();
      await eventually('resumed at once after a watch that delivered, then short again', () => w.log.length === 3);
      assert.equal(w.log[2]!.fields.retryIn, 1.2);
    } finally {
      kube.closeWatches = false;
      await w.stop();
      kube.delete('NetworkPolicy', 'w', 'reset');
    }
  });

  it('a failing API server is retried with growing, jittered waits; a list whose watch at once expires backs off too', async () => {
    kube.failWith = 500;
    const w = start();
    try {
      await eventually('the first failure', () => w.log.length === 1);
      w.clock.advance(1200);
      await eventually('the second failure', () => w.log.length === 2);
      w.clock.advance(2400);
      await eventually('the third failure', () => w.log.length === 3);
      assert.deepEqual(w.log.map((l) => l.fields.retryIn), [1.2, 2.4, 4.8]);
      assert.match(String(w.log[0]!.fields.error), /HTTP 500/);
      kube.failWith = undefined;
      w.clock.advance(4800);
      await eventually('watching', () => kube.watchCount() === 1);
      // Every watch from a list answered 410 at once: a relist loop, slowed by the backoff.
      const lists = reqs(NP, false).length;
      // The watch has lived a while: its expiry means one list at once.
      w.clock.advance(5000);
      const minRv = kube.rv + 1_000_000;
      const real = kube.rv;
      kube.rv = minRv;
      kube.expire();
      kube.rv = real;
      await eventually('listed again', () => reqs(NP, false).length === lists + 1);
      await eventually('its watch refused, backing off', () => w.log.filter((l) => l.msg === 'watch failed: retrying').length === 4);
      await sleep(50);
      assert.equal(reqs(NP, false).length, lists + 1, 'no second list before the backoff');
    } finally {
      kube.failWith = undefined;
      await w.stop();
    }
  });
});
