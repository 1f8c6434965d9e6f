// A policy set that does not fit the network's maps is refused before the kernel is touched:
// the sync exits non-zero naming the policy and the entries needed against those available,
// `twill status`, `twill metrics` and the log say so, and the state applied before stays
// enforced, whole (real traffic). And the compile holds no lock: an ADD on the same network
// completes while a slow one runs.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { NetpolCluster, NODE, type Pod } from '../helpers/netpol.js';
import { sleep } from '../helpers/pkt.js';
import { cleanupNetns, TWILL } from '../helpers/twill.js';

after(cleanupNetns);

const pol = (ns: string, name: string, spec: object): object => ({ metadata: { namespace: ns, name }, spec });
const is = (p: Pod, key: string): boolean => `${p.ns}/${p.name}` === key;
const run = (args: string[]): { code: number; out: string } => {
  const r = spawnSync(TWILL, args, { encoding: 'utf8', timeout: 120_000 });
  return { code: r.status ?? -1, out: `${r.stdout}${r.stderr}` };
};

describe('a policy set larger than the maps', () => {
  let c: NetpolCluster;
  const logFile = (): string => join(c.confDir, 'twill.log');
  // Ingress of namespace x denied but for y/b to x/a on 80.
  const before1 = [
    pol('x', 'deny', { podSelector: {}, policyTypes: ['Ingress'] }),
    pol('x', 'allow-yb', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'y' } }, podSelector: { matchLabels: { pod: 'b' } } }], ports: [{ port: 80, protocol: 'TCP' }] }] }),
  ];
  const truth = (f: Pod, t: Pod, port: number): boolean => f === t || t.ns !== 'x' || (is(t, 'x/a') && is(f, 'y/b') && port === 80);
  // 401 single ports no prefix can merge (81, then every other port from 2000): more than
  // 256 entries however peers and pods are grouped. 81 first: a partial write opens it.
  const wide = pol('x', 'wide', {
    podSelector: {},
    ingress: [{ from: [{ namespaceSelector: {} }], ports: [81, ...Array.from({ length: 400 }, (_, i) => 2000 + 2 * i)].map((port) => ({ port, protocol: 'TCP' })) }],
  });
  const small = pol('x', 'small', { podSelector: { matchLabels: { pod: 'b' } }, ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'a' } } }], ports: [{ port: 9, protocol: 'UDP' }] }] });

  before(() => {
    c = new NetpolCluster({ namespaces: ['x', 'y'], pods: ['a', 'b'], ports: [80, 81], protocols: ['TCP'] }, 'v4', {
      policy: { type: 'k8s', policyEntries: 256 },
    });
    c.conf.logFile = join(c.confDir, 'twill.log');
    c.conf.logLevel = 'debug';
    writeFileSync(join(c.confDir, '10-netpol.conflist'), JSON.stringify({ cniVersion: c.conf.cniVersion, name: c.conf.name, plugins: [c.conf] }));
    c.setup();
    c.sync(before1);
  });
  after(() => c?.teardown());

  it('is refused whole: non-zero exit naming the policy and the counts; the applied state still enforced; status, metrics and log say so', async () => {
    assert.deepEqual(c.expect(await c.probe(), truth), []);
    writeFileSync(c.objectsFile, JSON.stringify(c.objects([before1[0]!, wide, small])));
    const r = run(['sync', '--conf-dir', c.confDir, '--from-file', c.objectsFile]);
    assert.notEqual(r.code, 0, r.out);
    // Nothing of the refused set reached the kernel (81 would open), nothing of the old one left it (y/b on 80).
    assert.deepEqual(c.expect(await c.probe(), truth), []);
    assert.match(r.out, /x\/wide/, r.out);
    assert.match(r.out, /needs \d+ entries, 256 available/, r.out);

    const st = run(['status', '--conf-dir', c.confDir]);
    assert.match(st.out, /refused/i, st.out);
    assert.match(st.out, /x\/wide/, st.out);
    assert.match(st.out, /needs \d+ entries, 256 available/, st.out);
    const js = JSON.parse(run(['status', '--json', '--conf-dir', c.confDir]).out) as { policy?: { refused?: { policy: string; needed: number; available: number } } }[];
    assert.equal(js[0]!.policy?.refused?.policy, 'x/wide');
    assert.equal(js[0]!.policy?.refused?.available, 256);
    assert.ok(js[0]!.policy!.refused!.needed > 256);
    const m = run(['metrics', '--conf-dir', c.confDir]).out;
    assert.match(m, new RegExp(`twill_policy_sync_refused\\{network="${c.conf.name}",policy="x/wide"\\} 1`), m);
    assert.match(m, new RegExp(`twill_policy_map_entries\\{network="${c.conf.name}",map="policy",state="available"\\} 256`), m);
    assert.match(m, new RegExp(`twill_policy_map_entries\\{network="${c.conf.name}",map="policy",state="needed"\\} \\d+`), m);
    const errors = readFileSync(logFile(), 'utf8').split('\n').filter((l) => l.includes('"level":"error"'));
    assert.ok(errors.some((l) => l.includes('x/wide') && /needs \d+ entries, 256 available/.test(l)), errors.join('\n'));

    // Again (as a watch would on its next event): still refused, still nothing touched.
    assert.notEqual(run(['sync', '--conf-dir', c.confDir, '--from-file', c.objectsFile]).code, 0);
    assert.deepEqual(c.expect(await c.probe(), truth), []);
  });

  it('a set that fits alone but not beside the applied one (make before break) is refused; applied once the old rules are gone', async () => {
    // One peer pod, one selected pod, every other port: an entry per port in any layout.
    const ports = (from: number, name: string): object => pol('x', name, {
      podSelector: { matchLabels: { pod: 'a' } },
      ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'b' } } }], ports: Array.from({ length: 140 }, (_, i) => ({ port: from + 2 * i, protocol: 'TCP' })) }],
    });
    c.sync([...before1, ports(3000, 'old-ports')]);
    assert.deepEqual(c.expect(await c.probe(), truth), []);
    writeFileSync(c.objectsFile, JSON.stringify(c.objects([...before1, ports(5000, 'new-ports')])));
    const r = run(['sync', '--conf-dir', c.confDir, '--from-file', c.objectsFile]);
    assert.notEqual(r.code, 0, r.out);
    assert.deepEqual(c.expect(await c.probe(), truth), []);
    assert.match(r.out, /needs \d+ entries, 256 available \(NetworkPolicy x\/new-ports asks 140 of them; \d+ for the new set alone/, r.out);
    c.sync(before1);
    c.sync([...before1, ports(5000, 'new-ports')]);
    assert.deepEqual(c.expect(await c.probe(), truth), []);
  });

  it('a set that fits afterwards applies and clears the refusal', async () => {
    c.sync([before1[0]!, small]);
    assert.deepEqual(c.expect(await c.probe(), (f, t) => f === t || t.ns !== 'x'), []);
    const st = run(['status', '--conf-dir', c.confDir]);
    assert.doesNotMatch(st.out, /REFUSED at/, st.out);
    const js = JSON.parse(run(['status', '--json', '--conf-dir', c.confDir]).out) as { policy?: { refused?: unknown } }[];
    assert.equal(js[0]!.policy?.refused, undefined);
    const m = run(['metrics', '--conf-dir', c.confDir]).out;
    assert.match(m, new RegExp(`twill_policy_sync_refused\\{network="${c.conf.name}",policy=""\\} 0`), m);
    assert.match(m, new RegExp(`twill_policy_map_entries\\{network="${c.conf.name}",map="policy",state="used"\\} \\d+`), m);
  });
});

describe('the compile holds no lock', () => {
  let c: NetpolCluster;
  const REMOTE = 30_000;

  before(() => {
    c = new NetpolCluster({ namespaces: ['x'], pods: ['a'], ports: [80], protocols: ['TCP'] });
    c.conf.logFile = join(c.confDir, 'twill.log');
    c.conf.logLevel = 'debug';
    writeFileSync(join(c.confDir, '10-netpol.conflist'), JSON.stringify({ cniVersion: c.conf.cniVersion, name: c.conf.name, plugins: [c.conf] }));
    c.setup();
  });
  after(() => c?.teardown());

  it('an ADD on the network completes while a slow compile runs', async () => {
    // Pods of StatefulSets elsewhere (each a label set of its own), admitted by one broad rule.
    const remote = Array.from({ length: REMOTE }, (_, i) => ({
      kind: 'Pod', apiVersion: 'v1',
      metadata: { namespace: `r${i % 100}`, name: `db-${i}`, labels: { app: `db${i % 100}`, 'statefulset.kubernetes.io/pod-name': `db-${i}`, 'controller-revision-hash': `db-${i % 100}-7f9c` } },
      spec: { nodeName: `node-${2 + (i % 50)}`, containers: [{ name: 'c' }] },
      status: { phase: 'Running', podIPs: [{ ip: `10.${100 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}` }] },
    }));
    for (let n = 0; n < 100; n++) c.nsLabels.set(`r${n}`, { team: `t${n % 10}` });
    const broad = pol('x', 'from-all', { podSelector: {}, ingress: [{ from: [{ namespaceSelector: {} }], ports: [{ port: 80, protocol: 'TCP' }] }] });
    // Teams by label: each selector weighed against every peer (a compile of seconds).
    const teams = Array.from({ length: 8 }, (_, k) => pol('x', `from-team-${k}`, { podSelector: {}, ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: `t${k}` } } }], ports: [{ port: 81 + k, protocol: 'TCP' }] }] }));
    writeFileSync(c.objectsFile, JSON.stringify(c.objects([broad, ...teams], remote)));
    const lock = `${c.conf.stateDir}/locks/${c.conf.name}.lock`;
    const t0 = Date.now();
    const sync = spawn(TWILL, ['sync', '--conf-dir', c.confDir, '--from-file', c.objectsFile], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    sync.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    sync.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    let syncEnd = 0, syncCode: number | null = null;
    const done = new Promise<void>((res) => sync.on('close', (code) => {
      syncEnd = Date.now();
      syncCode = code;
      res();
    }));
    // The compile has begun: the sync says so in its log, or (a sync that compiles under the
    // lock) the lock stays taken for 150 ms (longer than the sync's other locked steps). The
    // sync is then stopped (SIGSTOP) where it stands: an ADD that needs nothing the compile
    // holds completes; one that waits for the sync's lock never does while it is stopped.
    let busySince: number | undefined;
    const log = (): string => (existsSync(c.conf.logFile) ? readFileSync(c.conf.logFile, 'utf8') : '');
    const compiling = (): boolean => {
      if (log().includes('"policy compiling"')) return true;
      const busy = existsSync(lock) && spawnSync('flock', ['-n', lock, 'true']).status === 1;
      busySince = busy ? busySince ?? Date.now() : undefined;
      return busySince !== undefined && Date.now() - busySince >= 150;
    };
    while (!syncEnd && !compiling() && Date.now() - t0 < 60_000) await sleep(2);
    assert.ok(!syncEnd, `the sync ended before its compile was seen: ${out}`);
    sync.kill('SIGSTOP');
    try {
      assert.doesNotMatch(log(), /"policy compiled"/, 'the sync was stopped after its compile: a compile of 30,000 pods took less than the poll');
      let timer: NodeJS.Timeout | undefined;
      const added = await Promise.race([c.addPodAsync('x', 'b').then(() => true), new Promise<boolean>((res) => (timer = setTimeout(() => res(false), 15_000)))]);
      clearTimeout(timer);
      assert.ok(added, 'the ADD waited for the sync stopped in its compile (the compile holds the network lock)');
    } finally {
      sync.kill('SIGCONT');
    }
    await done;
    assert.equal(syncCode, 0, out);
  });
});
