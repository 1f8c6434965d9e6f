// Objects files: a List as kubectl prints it, and multi-document YAML, mean the same.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { readObjectsFile } from '../../lib/cluster/file.js';
import { removeDir, tempDir } from '../helpers/twill.js';

describe('objects files', () => {
  it('multi-document YAML and a JSON List give the same objects', async () => {
    const dir = tempDir('objs');
    try {
      writeFileSync(`${dir}/c.yaml`, [
        'apiVersion: v1', 'kind: Namespace', 'metadata:', '  name: x', '  labels: {team: a}', '---',
        'apiVersion: v1', 'kind: Pod', 'metadata: {namespace: x, name: p, labels: {app: web}}', 'spec: {nodeName: n1}', 'status: {phase: Running, podIPs: [{ip: 10.0.0.5}]}', '---',
        'apiVersion: networking.k8s.io/v1', 'kind: NetworkPolicy', 'metadata: {namespace: x, name: deny}', 'spec: {podSelector: {}}', '---', '',
      ].join('\n'));
      const list = { kind: 'List', items: [
        { kind: 'Namespace', metadata: { name: 'x', labels: { team: 'a' } } },
        { kind: 'Pod', metadata: { namespace: 'x', name: 'p', labels: { app: 'web' } }, spec: { nodeName: 'n1' }, status: { phase: 'Running', podIPs: [{ ip: '10.0.0.5' }] } },
        { kind: 'NetworkPolicy', metadata: { namespace: 'x', name: 'deny' }, spec: { podSelector: {} } },
      ] };
      writeFileSync(`${dir}/c.json`, JSON.stringify(list));
      const y = await readObjectsFile(`${dir}/c.yaml`);
      const j = await readObjectsFile(`${dir}/c.json`);
      assert.deepEqual(y, j);
      assert.deepEqual([...y.cluster.pods.keys()], ['x/p']);
      assert.deepEqual(y.cluster.policies.get('x/deny')!.types, ['Ingress']);
      writeFileSync(`${dir}/bad.yaml`, 'kind: Pod\nmetadata: {name: [unclosed\n');
      await assert.rejects(readObjectsFile(`${dir}/bad.yaml`));
    } finally {
      removeDir(dir);
    }
  });
});

// What the API server would refuse is refused, naming the object and the field; nothing is
// coerced (a number label value dropped, `udp` read as TCP).
describe('objects files are judged as the API server would judge them', () => {
  const np = (spec: string, name = 'p'): string => ['apiVersion: networking.k8s.io/v1', 'kind: NetworkPolicy', `metadata: {namespace: x, name: ${name}}`, `spec: ${spec}`, ''].join('\n');
  const refused = async (yaml: string, ...want: RegExp[]): Promise<void> => {
    const dir = tempDir('objs-bad');
    try {
      writeFileSync(`${dir}/c.yaml`, yaml);
      await assert.rejects(readObjectsFile(`${dir}/c.yaml`), (e: Error) => {
        for (const w of want) assert.match(e.message, w);
        return true;
      }, yaml);
    } finally {
      removeDir(dir);
    }
  };
  const accepted = async (yaml: string): Promise<void> => {
    const dir = tempDir('objs-ok');
    try {
      writeFileSync(`${dir}/c.yaml`, yaml);
      await readObjectsFile(`${dir}/c.yaml`);
    } finally {
      removeDir(dir);
    }
  };

  it('a label value that is a number or a boolean (YAML as kubectl reads it: yes, on, y are booleans)', async () => {
    await refused(np('{podSelector: {matchLabels: {tier: 1}}}'), /NetworkPolicy x\/p: spec\.podSelector\.matchLabels\.tier: must be a string, not the number 1/);
    await refused(np('{podSelector: {matchLabels: {tier: true}}}'), /spec\.podSelector\.matchLabels\.tier: must be a string/);
    await refused(np('{podSelector: {matchLabels: {tier: yes}}}'), /spec\.podSelector\.matchLabels\.tier: must be a string, not the boolean true/);
    await refused(np('{podSelector: {}, ingress: [{from: [{namespaceSelector: {matchLabels: {env: on}}}]}]}'), /spec\.ingress\[0\]\.from\[0\]\.namespaceSelector\.matchLabels\.env: must be a string/);
    await refused('kind: Pod\nmetadata: {namespace: x, name: a, labels: {app: 1.5}}\n', /Pod x\/a: metadata\.labels\.app: must be a string/);
    await refused('kind: Namespace\nmetadata: {name: x, labels: {team: 7}}\n', /Namespace x: metadata\.labels\.team: must be a string/);
    await refused(np('{podSelector: {matchLabels: {tier: }}}'), /spec\.podSelector\.matchLabels\.tier: must be a string \(an empty value is written ""\), not null/);
    await accepted(np('{podSelector: {matchLabels: {tier: "1", "on": "yes", empty: ""}}}'));
  });

  it('label keys and values: qualified names, 63 characters, the value pattern', async () => {
    await refused(np('{podSelector: {matchLabels: {"-bad": a}}}'), /matchLabels\.-bad: invalid label key/);
    await refused(np('{podSelector: {matchLabels: {"a/b/c": a}}}'), /invalid label key "a\/b\/c"/);
    await refused(np('{podSelector: {matchLabels: {"Example.com/a": a}}}'), /invalid label key.*prefix/);
    await refused(np(`{podSelector: {matchLabels: {${'k'.repeat(64)}: a}}}`), /63 characters/);
    await refused(np(`{podSelector: {matchLabels: {k: ${'v'.repeat(64)}}}}`), /invalid label value.*63 characters/);
    await refused(np('{podSelector: {matchLabels: {k: "a b"}}}'), /matchLabels\.k: invalid label value "a b"/);
    await accepted(np(`{podSelector: {matchLabels: {"app.kubernetes.io/name": "x-1_2.y", ${'k'.repeat(63)}: "", empty: ""}}}`));
  });

  it('matchExpressions: operators, values by operator, values are label values', async () => {
    await refused(np('{podSelector: {matchExpressions: [{key: a, operator: in, values: [x]}]}}'), /spec\.podSelector\.matchExpressions\[0\]\.operator: not a valid selector operator: "in"/);
    await refused(np('{podSelector: {matchExpressions: [{key: a, operator: In, values: []}]}}'), /matchExpressions\[0\]\.values: must be specified when `operator` is In/);
    await refused(np('{podSelector: {matchExpressions: [{key: a, operator: NotIn}]}}'), /must be specified when `operator` is NotIn/);
    await refused(np('{podSelector: {matchExpressions: [{key: a, operator: Exists, values: [x]}]}}'), /may not be specified when `operator` is Exists/);
    await refused(np('{podSelector: {matchExpressions: [{key: a, operator: In, values: [1]}]}}'), /matchExpressions\[0\]\.values\[0\]: must be a string, not the number 1/);
    await refused(np('{podSelector: {matchExpressions: [{key: "a b", operator: DoesNotExist}]}}'), /matchExpressions\[0\]\.key: invalid label key/);
    await accepted(np('{podSelector: {matchExpressions: [{key: a, operator: In, values: [x, z]}, {key: b, operator: DoesNotExist}]}}'));
    // kubectl's YAML 1.1: an unquoted y is the boolean true, refused as a value.
    await refused(np('{podSelector: {matchExpressions: [{key: a, operator: In, values: [x, y]}]}}'), /values\[1\]: must be a string, not the boolean true/);
  });

  it('ports: protocol exactly TCP/UDP/SCTP, port 1-65535 or an IANA service name, endPort only after a numeric port and not below it', async () => {
    const ports = (p: string): string => np(`{podSelector: {}, ingress: [{ports: [${p}]}]}`);
    await refused(ports('{protocol: udp, port: 53}'), /NetworkPolicy x\/p: spec\.ingress\[0\]\.ports\[0\]\.protocol: unsupported value "udp"/);
    await refused(ports('{protocol: ICMP}'), /protocol: unsupported value "ICMP"/);
    await refused(ports('{port: 0}'), /ports\[0\]\.port: must be an integer between 1 and 65535, not the number 0/);
    await refused(ports('{port: 65536}'), /ports\[0\]\.port: must be an integer between 1 and 65535/);
    await refused(ports('{port: 80.5}'), /ports\[0\]\.port: must be an integer/);
    await refused(ports('{port: "80"}'), /ports\[0\]\.port: a port name must contain at least one letter/);
    await refused(ports('{port: Http}'), /ports\[0\]\.port: a port name must contain only/);
    // kubectl reads 1:20 as a string, not YAML 1.1's base-60 number 80.
    await refused(ports('{port: 1:20}'), /ports\[0\]\.port: a port name must contain only/);
    await refused(ports('{port: my--port}'), /must not contain "--"/);
    await refused(ports('{port: abcdefghijklmnop}'), /1 to 15 characters/);
    await refused(ports('{port: http, endPort: 90}'), /ports\[0\]\.endPort: may not be specified when `port` is non-numeric/);
    await refused(ports('{endPort: 90}'), /ports\[0\]\.endPort: may not be specified when `port` is not specified/);
    await refused(ports('{port: 100, endPort: 90}'), /ports\[0\]\.endPort: must be greater than or equal to `port` \(100\)/);
    await refused(ports('{port: 100, endPort: 70000}'), /ports\[0\]\.endPort: must be an integer between 1 and 65535/);
    await refused(np('{podSelector: {}, egress: [{ports: [{port: 53}, {protocol: Udp, port: 53}]}]}'), /spec\.egress\[0\]\.ports\[1\]\.protocol/);
    await accepted(ports('{protocol: SCTP, port: 1, endPort: 65535}, {port: dns-tcp}, {protocol: UDP}, {port: 80, endPort: 80}'));
  });

  it('peers and ipBlock: a peer given, ipBlock alone, cidr valid, except strictly inside it', async () => {
    const from = (p: string): string => np(`{podSelector: {}, ingress: [{from: [${p}]}]}`);
    await refused(from('{}'), /spec\.ingress\[0\]\.from\[0\]: must specify a peer/);
    await refused(from('{ipBlock: {cidr: 10.0.0.0/8}, podSelector: {}}'), /from\[0\]: may not specify both ipBlock and another peer/);
    await refused(from('{ipBlock: {cidr: 10.0.0.0/33}}'), /from\[0\]\.ipBlock\.cidr: must be a valid CIDR/);
    await refused(from('{ipBlock: {cidr: 10.0.0.0}}'), /ipBlock\.cidr: must be a valid CIDR/);
    await refused(from('{ipBlock: {}}'), /ipBlock\.cidr: required/);
    await refused(from('{ipBlock: {cidr: 10.0.0.0/8, except: [11.0.0.0/16]}}'), /ipBlock\.except\[0\]: must be a strict subset of `cidr`/);
    await refused(from('{ipBlock: {cidr: 10.0.0.0/8, except: [10.0.0.0/8]}}'), /ipBlock\.except\[0\]: must be a strict subset/);
    await refused(from('{ipBlock: {cidr: 10.0.0.0/8, except: ["fd00::/64"]}}'), /ipBlock\.except\[0\]: must be a strict subset/);
    await refused(from('{ipBlock: {cidr: 10.0.0.0/8, except: [nonsense]}}'), /ipBlock\.except\[0\]: must be a valid CIDR/);
    await accepted(from('{ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16, 10.2.3.4/32]}}, {ipBlock: {cidr: "fd00::/48", except: ["fd00:0:0:1::/64"]}}, {namespaceSelector: {}, podSelector: {}}'));
  });

  it('policyTypes, names and namespaces (DNS-1123), pod addresses', async () => {
    await refused(np('{podSelector: {}, policyTypes: [ingress]}'), /spec\.policyTypes\[0\]: unsupported value "ingress"/);
    await refused(np('{podSelector: {}, policyTypes: [Ingress, Egress, Ingress]}'), /spec\.policyTypes: may not specify more than two/);
    await refused(np('{podSelector: {}}', 'Deny_All'), /NetworkPolicy x\/Deny_All: metadata\.name: must be a lowercase RFC 1123 subdomain/);
    await refused('kind: Namespace\nmetadata: {name: a.b}\n', /Namespace a\.b: metadata\.name: must be a lowercase RFC 1123 label/);
    await refused('kind: Pod\nmetadata: {namespace: X, name: a}\n', /Pod X\/a: metadata\.namespace: must be a lowercase RFC 1123 label/);
    await refused('kind: Pod\nmetadata: {namespace: x}\n', /Pod x\/\(unnamed\): metadata\.name: required/);
    await refused('kind: Pod\nmetadata: {namespace: x, name: a}\nstatus: {podIPs: [{ip: 10.0.0.300}]}\n', /Pod x\/a: status\.podIPs\[0\]\.ip: must be a valid IP address/);
    await refused('kind: Pod\nmetadata: {namespace: x, name: a}\nstatus: {podIPs: [{ip: 10.0.0.1}, {ip: 10.0.0.2}]}\n', /status\.podIPs: expected at most one IP for each IP family/);
    await refused('kind: Pod\nmetadata: {namespace: x, name: a}\nstatus: {podIP: 10.0.0.2, podIPs: [{ip: 10.0.0.1}]}\n', /status\.podIPs\[0\]\.ip: must match status\.podIP/);
    await refused('kind: Pod\nmetadata: {namespace: x, name: a}\nspec: {containers: [{name: c, ports: [{containerPort: 80, protocol: tcp}]}]}\n', /spec\.containers\[0\]\.ports\[0\]\.protocol: unsupported value "tcp"/);
    await accepted('kind: Pod\nmetadata: {namespace: x, name: a.b-1, creationTimestamp: 2026-01-01T00:00:00Z}\nspec: {nodeName: n1}\nstatus: {phase: Running, podIP: 10.0.0.1, podIPs: [{ip: 10.0.0.1}, {ip: "fd00::1"}]}\n');
  });

  it('a List in JSON is judged the same, each item named; every refusal is listed at once', async () => {
    const dir = tempDir('objs-json');
    try {
      writeFileSync(`${dir}/c.json`, JSON.stringify({ kind: 'List', items: [
        { kind: 'NetworkPolicy', metadata: { namespace: 'x', name: 'a' }, spec: { podSelector: { matchLabels: { tier: 1 } } } },
        { kind: 'NetworkPolicy', metadata: { namespace: 'y', name: 'b' }, spec: { podSelector: {}, ingress: [{ ports: [{ protocol: 'udp' }] }] } },
      ] }));
      await assert.rejects(readObjectsFile(`${dir}/c.json`), (e: Error) => {
        assert.match(e.message, /NetworkPolicy x\/a: spec\.podSelector\.matchLabels\.tier/);
        assert.match(e.message, /NetworkPolicy y\/b: spec\.ingress\[0\]\.ports\[0\]\.protocol/);
        return true;
      });
    } finally {
      removeDir(dir);
    }
  });
});
