// The executable is built from the product's sources only: an edit to a test, the test kit, a
// tool, the bench or the stress run rebuilds neither the bundle nor the executables.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { ROOT } from '../helpers/twill.js';

/** What make would run for the executables if the given files had just changed (make -n -W). */
function plan(...changed: string[]): string {
  const r = spawnSync('make', ['-n', ...changed.flatMap((f) => ['-W', f]), 'dist/twill', 'dist/twill-node'], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

describe('the product build', () => {
  it('compiles cmd/ and lib/ only', () => {
    const conf = JSON.parse(readFileSync(`${ROOT}/tsconfig.json`, 'utf8')) as { include: string[] };
    for (const p of conf.include) assert.match(p, /^(cmd|lib)\//);
  });

  it('rebuilds the executables when a product source changes', () => {
    const p = plan('lib/naming.ts');
    assert.match(p, /tsc -p tsconfig\.json/);
    assert.match(p, /tools\/build\/build-bun\.sh/);
    assert.match(p, /tools\/build\/build-exe\.sh/);
  });

  it('does not rebuild them for a test, kit, tool, bench or stress edit', () => {
    const now = plan();
    for (const f of ['test/unit/build-layout.test.ts', 'test/helpers/twill.ts', 'testkit/twill.ts', 'tools/dev/chain.ts', 'tools/build/gen-config-doc.ts', 'bench/run.ts', 'stress/run.ts']) {
      assert.equal(plan(f), now, `${f} reaches the executable's build`);
    }
  });
});
