// `twill sync --from-file`: cluster objects from a file (policy/source.ts parses and judges
// them) fed into the same cache the API server's watches fill.
import { readFileSync } from '../sys/fs.js';
import type { ClusterObjects } from '../policy/objects.js';
import { parseObjects } from '../policy/source.js';
import { ClusterCache, policyObjects } from './cache.js';

/** The file's objects in a cache; what was skipped and why. */
export async function readObjectsInto(cache: ClusterCache, path: string): Promise<string[]> {
  return cache.feed(await parseObjects(readFileSync(path, 'utf8'), path));
}

/** Policy's objects of a file (a List or multi-document YAML). */
export async function readObjectsFile(path: string): Promise<{ cluster: ClusterObjects; skipped: string[] }> {
  const cache = new ClusterCache();
  const skipped = await readObjectsInto(cache, path);
  return { cluster: policyObjects(cache), skipped };
}
