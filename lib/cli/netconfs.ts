// The twill networks configured on this host: every twill entry of the conflists (and
// single-plugin .conf/.json files) in a CNI configuration directory, validated with the
// same schema as a CNI call, as the runtime would hand it to us.
import { readdirSync, readFileSync } from '../sys/fs.js';
import { loadNetConf } from '../config/load.js';
import type { NetConf } from '../config/types.js';

export interface HostNetwork {
  file: string;
  conf?: NetConf;
  error?: string;
}

export function twillNetworks(confDir: string, pluginType = 'twill'): HostNetwork[] {
  let files: string[];
  try {
    files = readdirSync(confDir).filter((f) => /\.(conflist|conf|json)$/.test(f)).sort();
  } catch {
    return [];
  }
  const out: HostNetwork[] = [];
  for (const f of files) {
    const file = `${confDir}/${f}`;
    let doc: Record<string, unknown>;
    try {
      doc = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    } catch (e) {
      out.push({ file, error: `unreadable: ${(e as Error).message}` });
      continue;
    }
    const entries = Array.isArray(doc.plugins) ? (doc.plugins as Record<string, unknown>[]) : [doc];
    for (const entry of entries.filter((p) => p?.type === pluginType)) {
      try {
        out.push({ file, conf: loadNetConf(JSON.stringify({ ...entry, name: doc.name, cniVersion: doc.cniVersion })) });
      } catch (e) {
        out.push({ file, error: (e as Error).message });
      }
    }
  }
  return out;
}
