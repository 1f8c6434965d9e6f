// Cluster objects from a file: a Kubernetes List (`kubectl get ns,pods,netpol -A -o json`),
// a JSON array or single object, or multi-document YAML.
import { readFileSync } from '../sys/fs.js';
import { addObjects, emptyCluster, type ClusterObjects } from './objects.js';

export async function readObjectsFile(path: string): Promise<{ cluster: ClusterObjects; skipped: string[] }> {
  const text = readFileSync(path, 'utf8');
  let docs: unknown[];
  const t = text.trimStart();
  if (t.startsWith('{') || t.startsWith('[')) {
    const j = JSON.parse(text) as unknown;
    docs = Array.isArray(j) ? j : [j];
  } else {
    const { parseAllDocuments } = await import('yaml');
    docs = parseAllDocuments(text).map((d) => {
      if (d.errors.length > 0) throw new Error(`${path}: ${d.errors[0]!.message}`);
      return d.toJS() as unknown;
    }).filter((d) => d !== null && d !== undefined);
  }
  const cluster = emptyCluster();
  const skipped = addObjects(cluster, docs);
  return { cluster, skipped };
}
