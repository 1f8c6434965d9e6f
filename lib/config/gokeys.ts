// Go's encoding/json matches object keys to struct fields case-insensitively (an exact match
// preferred). Runtimes and tools written in Go hand plugins what Go accepts — containerd's
// CRI passes runtimeConfig with Go field names ("IngressRate", "HostPort") — so before the
// config is validated, every key the schema knows is given its canonical spelling.

interface SchemaNode {
  properties?: Record<string, SchemaNode>;
  items?: SchemaNode;
}

type Json = unknown;

function canon(data: Json, schema: SchemaNode | undefined): Json {
  if (!schema) return data;
  if (Array.isArray(data)) return schema.items ? data.map((d) => canon(d, schema.items)) : data;
  if (typeof data !== 'object' || data === null || !schema.properties) return data;
  const props = schema.properties;
  const byLower = new Map(Object.keys(props).map((k) => [k.toLowerCase(), k]));
  const src = data as Record<string, Json>;
  const out: Record<string, Json> = {};
  // Exact keys first: Go prefers them over a case-insensitive match.
  for (const [k, v] of Object.entries(src)) if (k in props) out[k] = canon(v, props[k]);
  for (const [k, v] of Object.entries(src)) {
    if (k in props) continue;
    const name = byLower.get(k.toLowerCase());
    if (name === undefined) out[k] = v; // unknown keys pass through untouched
    else if (!(name in out)) out[name] = canon(v, props[name]);
  }
  return out;
}

/** A copy of data with the schema's spelling for every key Go would have matched. */
export function goKeys(data: Json, schema: object): Json {
  return canon(data, schema as SchemaNode);
}
