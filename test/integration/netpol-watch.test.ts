// `twill sync --watch` on the API server's watch API: a policy change reaches the kernel (how
// fast is make bench's to measure), bookmarks and "410 Gone" (a fresh list) are handled, a rotated token
// is picked up without a restart, and failures are retried.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { FakeKube } from '../helpers/fake-kube.js';
import { NetpolCluster, NODE } from '../helpers/netpol.js';
import { sleep } from '../helpers/pkt.js';
import { cleanupNetns, removeDir, tempDir, TWILL } from '../helpers/twill.js';

after(cleanupNetns);

describe('NetworkPolicy from the watch API', () => {
  const dir = tempDir('watch');
  const kube = new FakeKube('token-1');
  let c: NetpolCluster;
  let sync: ChildProcess;
  let log = '';

  const reachable = async (from: string, to: string, port = 80): Promise<boolean> => {
    const m = await c.probe({ timeout: 0.25 });
    return m.get(`${from} -> ${to} ${port}/TCP`) === true;
  };
  /** Polls until the pair's reachability is want (three probes in a row: one slow answer is not a verdict); the milliseconds until the first of them. */
  const until = async (want: boolean, from = 'y/a', to = 'x/a'): Promise<number> => {
    const t0 = Date.now();
    let first: number | undefined;
    let streak = 0;
    while (Date.now() - t0 < 5000) {
      const at = Date.now() - t0;
      if ((await reachable(from, to)) === want) {
        first ??= at;
        if (++streak === 3) return first;
      } else {
        first = undefined;
        streak = 0;
      }
    }
    throw new Error(`${from} -> ${to} never became ${want ? 'reachable' : 'unreachable'}; sync log:\n${log}`);
  };
  const denyX = { metadata: { namespace: 'x', name: 'deny' }, spec: { podSelector: {}, policyTypes: ['Ingress'] } };

  before(async () => {
    c = new NetpolCluster({ namespaces: ['x', 'y'], pods: ['a'], ports: [80], protocols: ['TCP'] }).setup();
    await kube.start(dir);
    writeFileSync(`${dir}/token`, 'token-1\n');
    kube.writeKubeconfig(dir, `tokenFile: ${dir}/token`);
    for (const [ns, labels] of c.nsLabels) kube.put('Namespace', { metadata: { name: ns, labels } });
    for (const p of c.pods.values()) {
      kube.put('Pod', { metadata: { namespace: p.ns, name: p.name, labels: p.labels }, spec: { nodeName: NODE, containers: [{ name: 'c' }] }, status: { phase: 'Running', podIPs: p.ips.map((ip) => ({ ip })) } });
    }
    sync = spawn(TWILL, ['sync', '--kubeconfig', `${dir}/kubeconfig`, '--watch', '3600', '--conf-dir', c.confDir], { stdio: ['ignore', 'ignore', 'pipe'] });
    sync.stderr!.on('data', (d: Buffer) => (log += d.toString()));
    const t0 = Date.now();
    while (!log.includes('policy synced') && Date.now() - t0 < 10_000) await sleep(50);
    assert.match(log, /policy synced/);
  });
  after(() => {
    sync?.kill();
    kube.stop();
    c.teardown();
    removeDir(dir);
  });

  it('a new policy is enforced, and a deleted one lifted', async () => {
    assert.equal(await reachable('y/a', 'x/a'), true);
    kube.put('NetworkPolicy', denyX);
    await until(false);
    kube.delete('NetworkPolicy', 'x', 'deny');
    await until(true);
  });

  it('watches resume from the last resourceVersion; bookmarks move it; after 410 Gone a fresh list', async () => {
    const lists = () => kube.requests.filter((r) => r.url.startsWith('/apis/networking.k8s.io/v1/networkpolicies') && !r.url.includes('watch=1')).length;
    const before = lists();
    kube.bookmark();
    kube.dropWatches();
    await sleep(300);
    const resumed = kube.requests.filter((r) => r.url.includes('networkpolicies') && r.url.includes('watch=1')).pop()!;
    assert.match(resumed.url, new RegExp(`resourceVersion=${kube.rv}`), 'resumed from the bookmark');
    assert.equal(lists(), before, 'no list for a resumable watch');
    kube.put('NetworkPolicy', denyX);
    kube.expire();
    await sleep(300);
    assert.ok(lists() > before, 'listed again after 410');
    assert.equal(await reachable('y/a', 'x/a'), false, 'the policy put just before the expiry is there');
    kube.delete('NetworkPolicy', 'x', 'deny');
    await until(true);
  });

  it('a rotated token is read again: requests after rotation carry the new one', async () => {
    kube.tokens.add('token-2');
    writeFileSync(`${dir}/token`, 'token-2\n');
    kube.tokens.delete('token-1');
    kube.dropWatches();
    await sleep(300);
    kube.put('NetworkPolicy', denyX);
    await until(false);
    assert.equal(kube.requests.at(-1)!.token, 'token-2');
    kube.delete('NetworkPolicy', 'x', 'deny');
    await until(true);
  });

  it('a pod of another node changing labels is applied alone (incremental), and the kernel\'s verdict follows', async () => {
    const why = () => spawnSync(TWILL, ['policy', 'why', '10.99.0.5', 'x/a', '80/tcp', '--conf-dir', c.confDir], { encoding: 'utf8' });
    const remote = (labels: Record<string, string>) => ({ metadata: { namespace: 'y', name: 'far', labels }, spec: { nodeName: 'node-9', containers: [{ name: 'c' }] }, status: { phase: 'Running', podIPs: [{ ip: '10.99.0.5' }] } });
    kube.put('Pod', remote({ app: 'db' }));
    kube.put('NetworkPolicy', { metadata: { namespace: 'x', name: 'from-web' }, spec: { podSelector: {}, ingress: [{ from: [{ namespaceSelector: {}, podSelector: { matchLabels: { app: 'web' } } }] }] } });
    const t0 = Date.now();
    while (why().status !== 1 && Date.now() - t0 < 3000) await sleep(50);
    assert.equal(why().status, 1, 'denied while the pod is app=db');
    const mark = log.length;
    kube.put('Pod', remote({ app: 'web' }));
    const t1 = Date.now();
    while (why().status !== 0 && Date.now() - t1 < 3000) await sleep(50);
    assert.equal(why().status, 0, `allowed once it is app=web:\n${why().stdout}\n${log.slice(mark)}`);
    // The sync logs after it applied: the kernel may answer before the line reaches this pipe.
    const t2 = Date.now();
    while (!/"incremental":true/.test(log.slice(mark)) && Date.now() - t2 < 3000) await sleep(50);
    assert.match(log.slice(mark), /"incremental":true/);
    kube.delete('NetworkPolicy', 'x', 'from-web');
    kube.delete('Pod', 'y', 'far');
    await until(true);
  });

  it('an API server that fails is retried with backoff, and changes made meanwhile arrive', async () => {
    kube.failWith = 500;
    kube.dropWatches();
    await sleep(1500);
    assert.match(log, /watch failed: retrying/);
    kube.put('NetworkPolicy', denyX);
    kube.failWith = undefined;
    await until(false);
    assert.ok(sync.exitCode === null, 'still running');
  });
});
