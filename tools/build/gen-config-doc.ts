// Renders docs/config.md from the JSON Schema, so the reference and the validator agree.
import { schema } from '../../lib/config/schema.js';

interface Node {
  type?: string;
  enum?: readonly string[];
  const?: unknown;
  default?: unknown;
  description?: string;
  properties?: Record<string, Node>;
  items?: Node;
  pattern?: string;
  minimum?: number;
  maximum?: number;
  required?: readonly string[];
}

function typeOf(n: Node): string {
  if (n.enum) return n.enum.map((e) => `"${e}"`).join(' \\| ');
  if (n.const !== undefined) return `${JSON.stringify(n.const)} only`;
  if (n.type === 'array' && n.items) return `array of ${typeOf(n.items)}`;
  return n.type ?? 'any';
}

function rows(n: Node, prefix: string, required: readonly string[] = []): string[] {
  const out: string[] = [];
  for (const [k, v] of Object.entries(n.properties ?? {})) {
    const path = `${prefix}${k}`;
    const bounds = v.minimum !== undefined ? ` (${v.minimum}–${v.maximum})` : '';
    const def = v.default !== undefined ? `\`${JSON.stringify(v.default)}\`` : required.includes(k) ? '**required**' : '';
    out.push(`| \`${path}\` | ${typeOf(v)}${bounds} | ${def} | ${(v.description ?? '').replaceAll('|', '\\|')} |`);
    if (v.properties) out.push(...rows(v, `${path}.`, v.required));
    const item = v.items?.type === 'array' ? v.items.items : v.items;
    if (item?.properties) out.push(...rows(item, `${path}[].`, item.required));
  }
  return out;
}

export function configDoc(): string {
  return [
    '# twill network configuration reference',
    '',
    'Generated from `lib/config/schema.ts` by `make docs`; do not edit. Every field below is what the',
    'validator accepts: an invalid value is answered with CNI error code 7 naming the field.',
    '',
    '| field | type | default | meaning |',
    '| --- | --- | --- | --- |',
    ...rows(schema as unknown as Node, '', schema.required),
    '',
  ].join('\n');
}

if (process.argv[1]?.endsWith('gen-config-doc.js')) process.stdout.write(configDoc());
