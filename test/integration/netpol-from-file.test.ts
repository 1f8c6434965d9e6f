// `twill sync --from-file` takes only what the API server would accept: a file whose policy
// says `tier: 1` (a number, which the API server refuses and an older twill dropped, admitting
// the whole namespace) or `protocol: udp` (once read as TCP) is refused — exit 1, the object and
// the field named — and the kernel's maps stay exactly as the last good sync left them.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { openNetwork } from '../../lib/bpf/loader.js';
import { mapKeys, mapLookup, objInfo } from '../../lib/bpf/sys.js';
import { NetpolCluster } from '../helpers/netpol.js';
import { cleanupNetns, TWILL } from '../helpers/twill.js';

after(cleanupNetns);

describe('sync --from-file refuses what the API server would refuse', () => {
  let c: NetpolCluster;
  before(() => {
    c = new NetpolCluster({ namespaces: ['x', 'y'], pods: ['a'], ports: [80], protocols: ['TCP'] }).setup();
  });
  after(() => c.teardown());

  /** Every entry of the policy, ipcache and endpoints maps, as hex. */
  const maps = (): Record<string, string[]> => {
    const net = openNetwork(c.bpffs.root, c.conf.name as string)!;
    try {
      const out: Record<string, string[]> = {};
      for (const name of ['policy', 'ipcache', 'endpoints'] as const) {
        const fd = net.maps.get(name)!;
        const info = objInfo(fd);
        const value = Buffer.alloc(info.readUInt32LE(12));
        out[name] = [...mapKeys(fd, info.readUInt32LE(8))].map((k) => (mapLookup(fd, k, value) ? `${k.toString('hex')}=${value.toString('hex')}` : `${k.toString('hex')} gone`)).sort();
      }
      return out;
    } finally {
      net.close();
    }
  };
  const reach = async (): Promise<boolean> => (await c.probe({ timeout: 0.4 })).get('y/a -> x/a 80/TCP') === true;
  /** The cluster's objects as YAML documents (JSON is YAML), then the policy as written by hand. */
  const fileWith = (policyYaml: string): string => {
    const items = (c.objects([]) as { items: object[] }).items;
    const path = `${c.confDir}/hand.yaml`;
    writeFileSync(path, [...items.map((i) => `---\n${JSON.stringify(i)}`), `---\n${policyYaml}`].join('\n'));
    return path;
  };
  const policy = (ingress: string[]): string => ['apiVersion: networking.k8s.io/v1', 'kind: NetworkPolicy', 'metadata:', '  namespace: x', '  name: db', 'spec:', '  podSelector: {}', '  ingress:', ...ingress, ''].join('\n');

  it('a numeric label value (`tier: 1`) and `protocol: udp`: exit 1 naming the object and the field; the maps unchanged, the last policy still enforced', async () => {
    // The last good sync: x/a admits tier "1" pods (there are none) and x's own pod a: y/a is denied.
    const good = spawnSync(TWILL, ['sync', '--conf-dir', c.confDir, '--from-file', fileWith(policy(['  - from:', '    - namespaceSelector: {}', '      podSelector:', '        matchLabels:', '          tier: "1"', '  - from:', '    - podSelector:', '        matchLabels:', '          pod: a']))], { encoding: 'utf8' });
    assert.equal(good.status, 0, good.stdout + good.stderr);
    assert.equal(await reach(), false);
    const kept = maps();
    assert.ok(kept.policy!.length > 0 && kept.ipcache!.length > 0);

    const numeric = spawnSync(TWILL, ['sync', '--conf-dir', c.confDir, '--from-file', fileWith(policy(['  - from:', '    - namespaceSelector: {}', '      podSelector:', '        matchLabels:', '          tier: 1']))], { encoding: 'utf8' });
    assert.equal(numeric.status, 1, numeric.stdout + numeric.stderr);
    assert.match(numeric.stderr, /NetworkPolicy x\/db: spec\.ingress\[0\]\.from\[0\]\.podSelector\.matchLabels\.tier: must be a string, not the number 1/);
    assert.deepEqual(maps(), kept, 'the kernel\'s maps are unchanged');
    assert.equal(await reach(), false, 'y/a is still denied (a dropped label would have admitted the whole cluster)');

    const udp = spawnSync(TWILL, ['sync', '--conf-dir', c.confDir, '--from-file', fileWith(policy(['  - ports:', '    - protocol: udp', '      port: 80']))], { encoding: 'utf8' });
    assert.equal(udp.status, 1, udp.stdout + udp.stderr);
    assert.match(udp.stderr, /NetworkPolicy x\/db: spec\.ingress\[0\]\.ports\[0\]\.protocol: unsupported value "udp"/);
    assert.deepEqual(maps(), kept, 'the kernel\'s maps are unchanged');
    assert.equal(await reach(), false, 'TCP 80 is still denied (udp read as TCP would have admitted it)');
  });
});
