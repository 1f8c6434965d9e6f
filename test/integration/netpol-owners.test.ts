// An address reused while its old Pod object still lists it: a Terminating pod (kept by a
// finalizer) and the new pod the node gave its address to both name it. The new pod is never
// judged as the old one — through `twill sync --from-file` with real traffic, and through the
// watch path, where the old pod's late MODIFIED and DELETED must leave the new owner's entry
// alone and, when the owner goes, the next candidate takes over.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { FakeKube } from '../helpers/fake-kube.js';
import { NetpolCluster, NODE } from '../helpers/netpol.js';
import { sleep } from '../helpers/pkt.js';
import { cleanupNetns, removeDir, tempDir, TWILL } from '../helpers/twill.js';

after(cleanupNetns);

const T_OLD = '2026-01-01T00:00:00Z';
const T_NEW = '2026-01-01T00:05:00Z';
/** The old pod: its sandbox is gone (containers terminated), a finalizer keeps the object. */
const terminated = (ns: string, name: string, ip: string, labels: Record<string, string>, nodeName: string, running = false): object => ({
  kind: 'Pod', apiVersion: 'v1',
  metadata: { namespace: ns, name, labels, creationTimestamp: T_OLD, deletionTimestamp: '2026-01-01T00:04:00Z', finalizers: ['example.com/keep'] },
  spec: { nodeName, containers: [{ name: 'c' }] },
  status: { phase: 'Running', podIP: ip, podIPs: [{ ip }], containerStatuses: [{ name: 'c', state: running ? { running: { startedAt: T_OLD } } : { terminated: { exitCode: 0 } } }] },
});
/** x's database admits the monitoring pods of any namespace, and nothing else. */
const dbAdmitsMonitoring = { metadata: { namespace: 'x', name: 'db' }, spec: { podSelector: {}, ingress: [{ from: [{ namespaceSelector: {}, podSelector: { matchLabels: { app: 'monitoring' } } }] }] } };

describe('an address reused while its old pod object still lists it (sync --from-file, real traffic)', () => {
  let c: NetpolCluster;
  before(() => {
    c = new NetpolCluster({ namespaces: ['x', 'y'], pods: ['a'], ports: [80], protocols: ['TCP'] }).setup();
  });
  after(() => c.teardown());

  const reach = async (): Promise<boolean> => (await c.probe({ timeout: 0.4 })).get('y/a -> x/a 80/TCP') === true;

  it('the new pod gets its own identity: a policy admitting the old monitoring pod does not admit it', async () => {
    const ip = c.pods.get('y/a')!.ips[0]!;
    // The old pod listed after the new one (last writer), then before it: the order never matters.
    c.sync([dbAdmitsMonitoring], [terminated('y', 'monitor', ip, { app: 'monitoring' }, NODE)]);
    assert.equal(await reach(), false, 'y/a is not the monitoring pod whose address it now holds');
    // Its own identity holds: a policy admitting y/a's own labels admits it.
    c.sync([{ metadata: { namespace: 'x', name: 'db' }, spec: { podSelector: {}, ingress: [{ from: [{ namespaceSelector: {}, podSelector: { matchLabels: { pod: 'a' } } }] }] } }], [terminated('y', 'monitor', ip, { app: 'monitoring' }, NODE)]);
    assert.equal(await reach(), true, 'y/a is judged as itself');
  });

  it('a terminating pod whose container still runs loses the address to a pod not terminating', async () => {
    const ip = c.pods.get('y/a')!.ips[0]!;
    c.sync([dbAdmitsMonitoring], [terminated('y', 'monitor', ip, { app: 'monitoring' }, NODE, true)]);
    assert.equal(await reach(), false);
    c.sync([]);
    assert.equal(await reach(), true);
  });
});

describe('an address reused while its old pod object still lists it (sync --watch)', () => {
  const dir = tempDir('owners-watch');
  const kube = new FakeKube('owners-token');
  let c: NetpolCluster;
  let sync: ChildProcess;
  let log = '';
  const IP = '10.99.0.7';

  /** `twill policy why` on the kernel's maps: from the address to x/a on 80/TCP. */
  const allowed = (): boolean => spawnSync(TWILL, ['policy', 'why', IP, 'x/a', '80/tcp', '--conf-dir', c.confDir], { encoding: 'utf8' }).status === 0;
  const until = async (want: boolean, what: string): Promise<void> => {
    const t0 = Date.now();
    while (allowed() !== want && Date.now() - t0 < 3000) await sleep(50);
    assert.equal(allowed(), want, `${what}\n${log}`);
  };
  /** The verdict stays as it is for a while (an event that must change nothing). */
  const holds = async (want: boolean, what: string): Promise<void> => {
    for (let i = 0; i < 10; i++) {
      assert.equal(allowed(), want, `${what}\n${log}`);
      await sleep(50);
    }
  };
  const remote = (name: string, labels: Record<string, string>, created: string, extra: { terminating?: boolean } = {}) => ({
    metadata: { namespace: 'y', name, labels, creationTimestamp: created, ...(extra.terminating ? { deletionTimestamp: '2026-01-01T00:04:00Z', finalizers: ['example.com/keep'] } : {}) },
    spec: { nodeName: 'node-9', containers: [{ name: 'c' }] },
    status: { phase: 'Running', podIPs: [{ ip: IP }], containerStatuses: [{ name: 'c', state: { running: { startedAt: created } } }] },
  });

  before(async () => {
    c = new NetpolCluster({ namespaces: ['x', 'y'], pods: ['a'], ports: [80], protocols: ['TCP'] }).setup();
    await kube.start(dir);
    kube.writeKubeconfig(dir, 'token: owners-token');
    for (const [ns, labels] of c.nsLabels) kube.put('Namespace', { metadata: { name: ns, labels } });
    for (const p of c.pods.values()) {
      const metadata = { namespace: p.ns, name: p.name, labels: p.labels, creationTimestamp: T_OLD };
      kube.put('Pod', { metadata, spec: { nodeName: NODE, containers: [{ name: 'c' }] }, status: { phase: 'Running', podIPs: p.ips.map((ip) => ({ ip })) } });
    }
    // x admits the web pods of any namespace.
    kube.put('NetworkPolicy', { metadata: { namespace: 'x', name: 'from-web' }, spec: { podSelector: {}, ingress: [{ from: [{ namespaceSelector: {}, podSelector: { matchLabels: { app: 'web' } } }] }] } });
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

  it('late MODIFIED and DELETED of the old pod leave the new owner\'s entry; when the owner goes, the next candidate takes over', async () => {
    kube.put('Pod', remote('monitor', { app: 'monitoring' }, T_OLD));
    await until(false, 'the monitoring pod is not admitted');
    // The old pod is deleted but kept by a finalizer (its container still stopping); the node gives its address to a web pod.
    kube.put('Pod', remote('monitor', { app: 'monitoring' }, T_OLD, { terminating: true }));
    kube.put('Pod', remote('web', { app: 'web' }, T_NEW));
    await until(true, 'the new web pod is admitted');
    const mark = log.length;
    // A late MODIFIED of the old pod (a status update while it stops) must not give the address back to it.
    const late = remote('monitor', { app: 'monitoring' }, T_OLD, { terminating: true });
    const lateMeta = { ...late.metadata, annotations: { late: '1' } };
    kube.put('Pod', { ...late, metadata: lateMeta });
    await holds(true, 'a late MODIFIED of the old pod does not take the address');
    // The finalizer goes: the old pod's late DELETED must not erase the web pod's entry.
    kube.delete('Pod', 'y', 'monitor');
    await holds(true, 'the old pod\'s late DELETED does not erase the new owner\'s entry');
    assert.match(log.slice(mark), /"incremental":true/, 'applied as single remote pods');
    // Another object still lists the address (an older, stale one): the newer pod keeps it.
    kube.put('Pod', remote('stale', { app: 'monitoring' }, T_OLD));
    await holds(true, 'the newer pod keeps the address');
    // The stale one is relabelled web and the owner goes: the address passes to it, not out of the ipcache.
    kube.put('Pod', remote('stale', { app: 'web', was: 'stale' }, T_OLD));
    kube.delete('Pod', 'y', 'web');
    await holds(true, 'the remaining claimant takes the address over');
    kube.put('Pod', remote('stale', { app: 'monitoring' }, T_OLD));
    await until(false, 'and is judged by its own labels');
    kube.delete('Pod', 'y', 'stale');
    await holds(false, 'no owner: the address is unknown');
  });
});
