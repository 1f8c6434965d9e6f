// Objects files: a List as kubectl prints it, and multi-document YAML, mean the same.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { readObjectsFile } from '../../lib/policy/source.js';
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
