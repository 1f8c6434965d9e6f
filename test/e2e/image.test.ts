// `make image` for real: the OCI image imported into a containerd and its init container's
// step (twill install) run against a host directory: the executable it leaves there answers
// as a CNI plugin, and the conflist is in place. The deploy/ manifests parse and agree with it.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { startContainerd, type Containerd } from '../helpers/containerd.js';
import { removeDir, ROOT, sh, tempDir } from '../helpers/twill.js';

const have = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const skip = have('containerd') && have('ctr') ? false : 'containerd not installed (tools/build/install-deps.sh)';
const version = (JSON.parse(readFileSync(`${ROOT}/package.json`, 'utf8')) as { version: string }).version;

describe('the OCI image and the DaemonSet', { skip }, () => {
  const host = tempDir('image-host');
  const empty = tempDir('image-cni');
  let ctrd: Containerd | undefined;
  before(async () => {
    const b = spawnSync('make', ['-C', ROOT, 'image'], { encoding: 'utf8' });
    assert.equal(b.status, 0, b.stdout + b.stderr);
    ctrd = await startContainerd(empty, empty);
  });
  after(() => {
    ctrd?.stop();
    removeDir(host);
    removeDir(empty);
  });

  it('imports, and its install step puts a working twill and the conflist on the host', () => {
    const ctr = (args: string[]): string => sh('ctr', ['--address', ctrd!.socket, '-n', 'k8s.io', ...args]);
    ctr(['images', 'import', `${ROOT}/dist/twill-image.tar`]);
    mkdirSync(`${host}/opt/cni/bin`, { recursive: true });
    mkdirSync(`${host}/etc/cni/net.d`, { recursive: true });
    ctr(['run', '--rm', '--mount', `type=bind,src=${host},dst=/host,options=rbind:rw`, `twill:${version}`, 'twill-install',
      '/usr/local/bin/twill', 'install', '--bin-dir', '/host/opt/cni/bin', '--conf-dir', '/host/etc/cni/net.d', '--conflist', '/etc/twill/10-twill.conflist']);
    assert.ok(existsSync(`${host}/etc/cni/net.d/10-twill.conflist`));
    assert.equal(JSON.parse(readFileSync(`${host}/etc/cni/net.d/10-twill.conflist`, 'utf8')).plugins[0].type, 'twill');
    const v = spawnSync(`${host}/opt/cni/bin/twill`, [], { input: '{"cniVersion":"1.0.0"}', encoding: 'utf8', env: { CNI_COMMAND: 'VERSION' } });
    assert.equal(v.status, 0, v.stderr);
    assert.ok(JSON.parse(v.stdout).supportedVersions.includes('1.1.0'));
  });

  it('deploy/: a DaemonSet running the image (install, then sync --in-cluster --watch), least RBAC, the conflist', () => {
    const docs = ['rbac.yaml', 'configmap.yaml', 'daemonset.yaml'].flatMap((f) => parseAllDocuments(readFileSync(`${ROOT}/deploy/${f}`, 'utf8')).map((d) => d.toJS() as Record<string, any>));
    const ds = docs.find((d) => d.kind === 'DaemonSet')!;
    const spec = ds.spec.template.spec;
    assert.equal(spec.hostNetwork, true);
    assert.deepEqual(spec.tolerations, [{ operator: 'Exists' }]);
    assert.equal(spec.initContainers[0].image, `twill:${version}`);
    assert.deepEqual(spec.initContainers[0].command.slice(0, 2), ['/usr/local/bin/twill', 'install']);
    assert.deepEqual(spec.containers[0].command.slice(0, 5), ['/usr/local/bin/twill', 'sync', '--in-cluster', '--watch', '30']);
    const role = docs.find((d) => d.kind === 'ClusterRole')!;
    // Read only: Nodes for peers; Namespaces, Pods and NetworkPolicies for policy.
    assert.deepEqual(role.rules, [
      { apiGroups: [''], resources: ['nodes', 'namespaces', 'pods', 'services'], verbs: ['get', 'list', 'watch'] },
      { apiGroups: ['networking.k8s.io'], resources: ['networkpolicies'], verbs: ['get', 'list', 'watch'] },
      { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['get', 'list', 'watch'] },
    ]);
    const cm = docs.find((d) => d.kind === 'ConfigMap')!;
    assert.equal(JSON.parse(cm.data['10-twill.conflist']).plugins[0].type, 'twill');
    // The command lines are ones the CLI accepts (a typo would exit 2 and crash-loop).
    assert.deepEqual(spec.containers[1].command.slice(0, 3), ['/usr/local/bin/twill', 'metrics', '--textfile']);
    for (const c of spec.containers) {
      const r = spawnSync(`${ROOT}/dist/twill`, [...c.command.slice(1), '--help'], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
    }
  });
});
