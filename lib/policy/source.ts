// Cluster objects from a file: a Kubernetes List (`kubectl get ns,pods,netpol -A -o json`),
// a JSON array or single object, or multi-document YAML. A file means what the API server
// would make of it: YAML is read as kubectl reads it (YAML 1.1: `yes`, `on` are booleans,
// timestamps stay strings), and anything the API server would refuse is refused here
// (validate.ts), never coerced. Objects read from the API server are not judged again: the
// server validated them when they were written, and a rule tightened since (the server
// ratchets old objects) must not stop a whole node's policy. Reading the file is the
// caller's (cluster/file.ts): this module only turns text into objects.
import { refusals } from './validate.js';
import type { DocumentOptions, ParseOptions, SchemaOptions } from 'yaml';

/** The objects of a file's text (named `path` in errors), refused whole if the API server would refuse any. */
export async function parseObjects(text: string, path: string): Promise<unknown[]> {
  let docs: unknown[];
  const t = text.trimStart();
  if (t.startsWith('{') || t.startsWith('[')) {
    const j = JSON.parse(text) as unknown;
    docs = Array.isArray(j) ? j : [j];
  } else {
    const { parseAllDocuments } = await import('yaml');
    // kubectl's YAML (go-yaml v2, YAML 1.1): yes/no/on/off/y/n are booleans, but a timestamp or
    // a base-60 number stays a string.
    const kubectl: DocumentOptions & ParseOptions & SchemaOptions = {
      version: '1.1',
      customTags: (tags) => tags.filter((t) => typeof t === 'string' || (t.tag !== 'tag:yaml.org,2002:timestamp' && t.format !== 'TIME')),
    };
    docs = parseAllDocuments(text, kubectl).map((d) => {
      if (d.errors.length > 0) throw new Error(`${path}: ${d.errors[0]!.message}`);
      return d.toJS() as unknown;
    }).filter((d) => d !== null && d !== undefined);
  }
  const refused = refusals(docs);
  if (refused.length > 0) throw new Error(`${path}: the API server would refuse ${refused.length === 1 ? 'this' : 'these'}:\n  ${refused.join('\n  ')}`);
  return docs;
}
