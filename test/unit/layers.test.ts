// The layer rule of docs/layers.md, checked on the source: every relative import of every .ts
// under lib/ and cmd/ (static, re-export, dynamic, type-only alike: a type import still ties a
// module to another's vocabulary, and a cycle through one still makes a knot) must point to
// the importer's own layer or one it may use, and the import graph must have no cycle.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';

// The test runs from build/test/unit/; the source it reads is the repository's.
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

interface Layer {
  name: string;
  /** Folders (ending in /) and files, relative to the root; the longest match places a file. */
  paths: string[];
  /** The other layers this one may import ('*': any). */
  may: string[];
}

// Top to bottom (docs/layers.md says why). A file-level entry marks a module that sits in a
// lower layer than its folder: state kept beside the feature that writes it, a pure encoding
// beside the door that uses it.
export const LAYERS: Layer[] = [
  { name: 'entry', paths: ['cmd/', 'lib/cli/', 'lib/verbs.ts', 'lib/attachment.ts', 'lib/kernel-errors.ts'], may: ['*'] },
  { name: 'cluster', paths: ['lib/cluster/'], may: ['compile', 'protocol', 'support', 'kernel', 'values'] },
  { name: 'apply', paths: ['lib/datapath/', 'lib/ipam/', 'lib/mirror/'], may: ['state', 'compile', 'protocol', 'support', 'kernel', 'values'] },
  { name: 'observe', paths: ['lib/observe/'], may: ['compile', 'kernel', 'values'] },
  { name: 'state', paths: ['lib/state/', 'lib/ipam/store.ts', 'lib/ipam/index-file.ts'], may: ['compile', 'kernel', 'values'] },
  { name: 'compile', paths: ['lib/policy/', 'lib/config/', 'lib/services/'], may: ['protocol', 'values'] },
  { name: 'protocol', paths: ['lib/cni/'], may: ['compile', 'values'] },
  { name: 'support', paths: ['lib/log.ts', 'lib/stdio.ts', 'lib/crash.ts'], may: ['compile', 'kernel', 'values'] },
  { name: 'kernel', paths: ['lib/sys/', 'lib/bpf/', 'lib/fsx.ts'], may: ['values'] },
  { name: 'values', paths: ['lib/net/', 'lib/naming.ts', 'lib/bpf/layout.ts', 'lib/bpf/abi.generated.ts', 'lib/bpf/abi-sock.generated.ts'], may: [] },
];

// Imports that break the rule today and are owed a fix elsewhere: each names its edge and why it
// is still here. An entry no import needs any more fails the test, so none outlives its fix.
export const ALLOWED: { from: string; to: string; why: string }[] = [
];

const SPEC = /^\s*(?:import|export)\b[^'";]*?\bfrom\s*['"]([^'"]+)['"]|^\s*import\s*['"]([^'"]+)['"]|\bimport\(\s*['"]([^'"]+)['"]\s*\)/gm;

function sources(): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const e of readdirSync(join(ROOT, dir), { withFileTypes: true })) {
      const p = `${dir}/${e.name}`;
      if (e.isDirectory()) walk(p);
      else if (p.endsWith('.ts') && !p.endsWith('.d.ts')) out.push(p);
    }
  };
  walk('lib');
  walk('cmd');
  return out.sort();
}

/** file → the files it imports (relative specifiers only: packages and node: are outside the rule). */
export function importGraph(files: string[], read = (f: string): string => readFileSync(join(ROOT, f), 'utf8')): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  const known = new Set(files);
  for (const f of files) {
    const to = new Set<string>();
    for (const m of read(f).matchAll(SPEC)) {
      const spec = m[1] ?? m[2] ?? m[3]!;
      if (!spec.startsWith('.')) continue;
      const js = relative(ROOT, resolve(ROOT, dirname(f), spec));
      const ts = js.replace(/\.js$/, '.ts');
      // A generated .js beside its .d.ts (lib/config/validate.generated.js) is a module too.
      to.add(known.has(ts) || existsSync(join(ROOT, ts)) ? ts : js);
    }
    graph.set(f, [...to].sort());
  }
  return graph;
}

export function layerOf(file: string, layers = LAYERS): Layer | undefined {
  let best: { layer: Layer; len: number } | undefined;
  for (const layer of layers) {
    for (const p of layer.paths) {
      const hit = p.endsWith('/') ? file.startsWith(p) : file === p;
      if (hit && (!best || p.length > best.len)) best = { layer, len: p.length };
    }
  }
  return best?.layer;
}

/** Every import that breaks the table, as "from → to (rule)". */
export function violations(graph: Map<string, string[]>, layers = LAYERS): string[] {
  const out: string[] = [];
  for (const [from, tos] of graph) {
    const lf = layerOf(from, layers);
    if (!lf) {
      out.push(`${from}: in no layer (place it in LAYERS, test/unit/layers.test.ts, and docs/layers.md)`);
      continue;
    }
    for (const to of tos) {
      const lt = layerOf(to, layers);
      if (!lt) {
        out.push(`${from} → ${to}: the imported module is in no layer`);
        continue;
      }
      if (lt === lf || lf.may.includes('*') || lf.may.includes(lt.name)) continue;
      out.push(`${from} → ${to}: ${lf.name} may import ${lf.may.length ? lf.may.join(', ') : 'nothing else'}, not ${lt.name}`);
    }
  }
  return out;
}

/** One cycle per strongly connected component with more than one module (or a self-import). */
export function cycles(graph: Map<string, string[]>): string[][] {
  // Tarjan's algorithm, iterative enough for a few hundred modules.
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const on = new Set<string>();
  const sccs: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    on.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        on.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1 || (graph.get(v) ?? []).includes(v)) sccs.push(scc);
    }
  };
  for (const v of [...graph.keys()].sort()) if (!index.has(v)) visit(v);
  // Name each knot by one concrete path round it: the shortest from its first module back to it.
  return sccs.map((scc) => {
    const inScc = new Set(scc);
    const start = [...scc].sort()[0]!;
    const prev = new Map<string, string>();
    const queue = [start];
    for (let i = 0; i < queue.length; i++) {
      for (const w of graph.get(queue[i]!) ?? []) {
        if (!inScc.has(w)) continue;
        if (w === start) {
          const path = [start];
          for (let at: string | undefined = queue[i]; at !== undefined && at !== start; at = prev.get(at)) path.splice(1, 0, at);
          return [...path, start];
        }
        if (!prev.has(w)) {
          prev.set(w, queue[i]!);
          queue.push(w);
        }
      }
    }
    return [...scc, scc[0]!];
  });
}

const withoutAllowed = (graph: Map<string, string[]>): Map<string, string[]> =>
  new Map([...graph].map(([f, tos]) => [f, tos.filter((t) => !ALLOWED.some((a) => a.from === f && a.to === t))]));

describe('layers', () => {
  const graph = importGraph(sources());

  it('reads the whole source: every module and its imports', () => {
    assert.ok(graph.size > 80, `only ${graph.size} modules found under ${ROOT}/lib and cmd`);
    assert.ok(graph.get('cmd/twill.ts')!.includes('lib/verbs.ts'), 'a dynamic import() is an edge');
    assert.ok(graph.get('lib/cni/plugin.ts')!.includes('lib/config/types.ts'), 'an import type is an edge');
    for (const tos of graph.values()) for (const t of tos) assert.ok(existsSync(join(ROOT, t)), `imported module ${t} does not exist`);
  });

  it('has no import cycle', () => {
    const found = cycles(withoutAllowed(graph));
    assert.deepEqual(found.map((c) => c.join(' → ')), [], `import cycles:\n  ${found.map((c) => c.join(' → ')).join('\n  ')}`);
  });

  it('every import follows the layer table', () => {
    const bad = violations(withoutAllowed(graph));
    assert.deepEqual(bad, [], `imports that break the layer rule (docs/layers.md):\n  ${bad.join('\n  ')}`);
  });

  it('every allow-list entry is still needed', () => {
    const stale = ALLOWED.filter((a) => !(graph.get(a.from) ?? []).includes(a.to));
    assert.deepEqual(stale.map((a) => `${a.from} → ${a.to}`), [], 'allow-list entries whose import is gone: remove them');
  });

  it('catches what it guards: a cycle, an upward import, a door that speaks CNI', () => {
    const files: Record<string, string> = {
      'lib/net/a.ts': "import { b } from './b.js';\n",
      'lib/net/b.ts': "export { a } from './a.js';\n",
      'lib/sys/x.ts': "import type { Code } from '../cni/errors.js';\nconst later = () => import('../datapath/ebpf.js');\n",
      'lib/cni/errors.ts': '',
      'lib/datapath/ebpf.ts': '',
    };
    const g = importGraph(Object.keys(files), (f) => files[f]!);
    assert.deepEqual(cycles(g), [['lib/net/a.ts', 'lib/net/b.ts', 'lib/net/a.ts']]);
    assert.deepEqual(violations(g), [
      'lib/sys/x.ts → lib/cni/errors.ts: kernel may import values, not protocol',
      'lib/sys/x.ts → lib/datapath/ebpf.ts: kernel may import values, not apply',
    ]);
  });
});
