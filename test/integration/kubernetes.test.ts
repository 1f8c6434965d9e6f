// The node table from Kubernetes: a fake API server (TLS with a test CA, bearer token, paging)
// answering NodeList JSON shaped like the real one, read by the library and by `twill sync`.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { inClusterAccess, kubeconfigAccess, listNodes } from '../../lib/cluster/k8s.js';
import { makeCluster } from '../helpers/cluster.js';
import { kubeconfig, serve, type FakeNode } from '../helpers/fake-apiserver.js';
import { cleanupNetns, inNs, removeDir, ROOT, tempDir } from '../helpers/twill.js';

after(cleanupNetns);

const fleet: FakeNode[] = [
  { name: 'node-a', podCIDRs: ['10.244.1.0/24', 'fd00:244:1::/64'], internal: ['192.0.2.1', '2001:db8::1'] },
  { name: 'node-b', podCIDRs: ['10.244.2.0/24'], internal: ['192.0.2.2'] },
  { name: 'node-c', internal: ['192.0.2.3'] }, // no pod CIDR allocated yet
  { name: 'node-d', podCIDRs: ['fd00:244:4::/64'], internal: ['2001:db8::4'] },
];

describe('Kubernetes node source', () => {
  const dir = tempDir('k8s');
  const requests: string[] = [];
  let stop = (): void => undefined;
  after(() => {
    stop();
    removeDir(dir);
  });

  it('reads every page with the bearer token over TLS verified by the kubeconfig CA', async () => {
    const { server, port } = await serve(dir, 's3cret', fleet, requests);
    stop = () => server.close();
    kubeconfig(`${dir}/kubeconfig`, port, `${dir}/ca.crt`, 's3cret');
    const list = await listNodes(await kubeconfigAccess(`${dir}/kubeconfig`), 2);
    assert.deepEqual(list.nodes, [
      { name: 'node-a', ip: '192.0.2.1', ip6: '2001:db8::1', podCIDRs: ['10.244.1.0/24', 'fd00:244:1::/64'] },
      { name: 'node-b', ip: '192.0.2.2', podCIDRs: ['10.244.2.0/24'] },
      { name: 'node-d', ip: '2001:db8::4', podCIDRs: ['fd00:244:4::/64'] },
    ]);
    assert.deepEqual(list.pending, ['node-c']);
    assert.equal(requests.filter((r) => r.startsWith('/api/v1/nodes')).length, 2, 'two pages');
    assert.match(requests[1]!, /continue=/);
  });

  it('reads the in-cluster service account (token, CA, KUBERNETES_SERVICE_HOST/PORT)', async () => {
    const sa = tempDir('sa');
    const { server, port } = await serve(sa, 'sa-token', fleet);
    try {
      writeFileSync(`${sa}/token`, 'sa-token\n');
      const saved = { host: process.env.KUBERNETES_SERVICE_HOST, port: process.env.KUBERNETES_SERVICE_PORT };
      process.env.KUBERNETES_SERVICE_HOST = '127.0.0.1';
      process.env.KUBERNETES_SERVICE_PORT = String(port);
      try {
        const list = await listNodes(inClusterAccess(sa));
        assert.deepEqual(list.nodes.map((n) => n.name), ['node-a', 'node-b', 'node-d']);
      } finally {
        if (saved.host === undefined) delete process.env.KUBERNETES_SERVICE_HOST;
        else process.env.KUBERNETES_SERVICE_HOST = saved.host;
        if (saved.port === undefined) delete process.env.KUBERNETES_SERVICE_PORT;
        else process.env.KUBERNETES_SERVICE_PORT = saved.port;
      }
    } finally {
      server.close();
      removeDir(sa);
    }
  });

  it('skips a Node whose InternalIP is not an address instead of failing the table', async () => {
    const odd = tempDir('k8s-odd');
    const { server, port } = await serve(odd, 't', [...fleet, { name: 'node-x', podCIDRs: ['10.244.9.0/24'], internal: ['not-an-ip'] }]);
    try {
      kubeconfig(`${odd}/kubeconfig`, port, `${odd}/ca.crt`, 't');
      const list = await listNodes(await kubeconfigAccess(`${odd}/kubeconfig`));
      assert.deepEqual(list.nodes.map((n) => n.name), ['node-a', 'node-b', 'node-d']);
      assert.ok(list.pending.includes('node-x'));
    } finally {
      server.close();
      removeDir(odd);
    }
  });

  it('sync --watch survives an API server that is away: it backs off and keeps trying', async () => {
    const gone = tempDir('k8s-gone');
    try {
      kubeconfig(`${gone}/kubeconfig`, 9, `${dir}/ca.crt`, 'x'); // nothing listens on port 9
      writeFileSync(`${gone}/10-twill.conflist`, JSON.stringify({ cniVersion: '1.1.0', name: 'twtest-watch', plugins: [{ type: 'twill', stateDir: `${gone}/state`, ipam: { type: 'host-local', dataDir: `${gone}/ipam`, ranges: [[{ subnet: '10.249.9.0/24' }]] } }] }));
      const p = spawn(process.env.TWILL_BIN ?? `${ROOT}/dist/twill`, ['sync', '--watch', '1', '--conf-dir', gone, '--kubeconfig', `${gone}/kubeconfig`], { stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      p.stderr.on('data', (d: Buffer) => (err += d.toString()));
      let exited = false;
      p.on('exit', () => (exited = true));
      await new Promise((r) => setTimeout(r, 4000));
      p.kill();
      assert.equal(exited, false, `sync --watch exited: ${err}`);
      const failures = err.split('\n').filter((l) => l.includes('"sync failed"'));
      assert.ok(failures.length >= 2, err);
      assert.deepEqual(failures.slice(0, 3).map((l) => JSON.parse(l).retryIn), [1, 2, 4].slice(0, Math.min(3, failures.length)));
    } finally {
      removeDir(gone);
    }
  });

  it('fails clearly on a wrong token and on an unknown CA', async () => {
    const other = tempDir('k8s2');
    const { server, port } = await serve(other, 'right', fleet);
    try {
      kubeconfig(`${dir}/bad-token`, port, `${other}/ca.crt`, 'wrong');
      await assert.rejects(listNodes(await kubeconfigAccess(`${dir}/bad-token`)), /HTTP 401/);
      kubeconfig(`${dir}/bad-ca`, port, `${dir}/ca.crt`, 'right');
      await assert.rejects(listNodes(await kubeconfigAccess(`${dir}/bad-ca`)), /certificate|verify/i);
    } finally {
      server.close();
      removeDir(other);
    }
  });
});

describe('twill sync --kubeconfig programs the backend from Node objects', () => {
  const c = makeCluster({ backend: 'hostgw', datapath: 'routed', count: 2 });
  after(() => c.destroy());

  it('writes the node table and installs routes to the peers; a second run changes nothing', async () => {
    const a = c.nodes[0]!;
    // Node objects for the simulated cluster; the API server runs inside node 1's namespace.
    const nodes: FakeNode[] = [...c.nodes.map((n) => ({ name: n.name, podCIDRs: [n.cidr4, n.cidr6], internal: [n.ip, n.ip6] })), { name: 'fresh', internal: ['10.250.9.9'] }];
    const kdir = tempDir('k8s-sync');
    writeFileSync(`${kdir}/nodes.json`, JSON.stringify(nodes));
    const srv = spawn('ip', ['netns', 'exec', a.ns, process.execPath, `${ROOT}/build/test/helpers/fake-apiserver.js`, kdir, 'tok', `${kdir}/nodes.json`], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      await new Promise<void>((res) => srv.stdout.once('data', () => res()));
      // The config names no node table: the synced one is used.
      delete a.conf.nodesFile;
      const entry = { ...a.conf };
      delete entry.cniVersion;
      delete entry.name;
      writeFileSync(`${a.confDir}/10-twill.conflist`, JSON.stringify({ cniVersion: '1.1.0', name: a.conf.name, plugins: [entry] }));
      const r = c.cli(a, ['sync', '--conf-dir', a.confDir, '--kubeconfig', `${kdir}/kubeconfig`, '--json']);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      const out = JSON.parse(r.stdout);
      assert.match(out.source, /2 nodes from https:\/\/127\.0\.0\.1:\d+; without a pod CIDR yet: fresh/);
      assert.deepEqual(out.networks[0].state.peers, [c.nodes[1]!.name]);
      assert.ok(inNs(a.ns, ['ip', 'route']).includes(`${c.nodes[1]!.cidr4} via ${c.nodes[1]!.ip}`));
      assert.ok(inNs(a.ns, ['ip', '-6', 'route']).includes(`${c.nodes[1]!.cidr6} via ${c.nodes[1]!.ip6}`), `${inNs(a.ns, ['ip', '-6', 'route'])}\n${r.stdout}`);
      const again = c.cli(a, ['sync', '--conf-dir', a.confDir, '--kubeconfig', `${kdir}/kubeconfig`, '--json']);
      assert.equal(JSON.parse(again.stdout).networks[0].state.changes, 0);
    } finally {
      srv.kill();
      removeDir(kdir);
    }
  });
});
