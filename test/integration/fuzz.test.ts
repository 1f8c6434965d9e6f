// A fixed-seed slice of the hostile-input fuzzer (make test-stress runs ≥ 10,000 cases).
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { after, describe, it } from 'node:test';
import { caseArb, checkCase, edgeCases, fuzzFixtures } from '../helpers/fuzz.js';
import { forgetStateDir } from '../helpers/netconf.js';
import { cleanupNetns, removeDir, sh, tempDir } from '../helpers/twill.js';

after(cleanupNetns);

describe('hostile input', () => {
  const sandbox = tempDir('fuzz');
  const { ns, notNs } = fuzzFixtures(sandbox);
  after(() => {
    sh('ip', ['-br', 'link'], { allowFail: true });
    sh('umount', [`${sandbox}/bpffs`], { allowFail: true });
    forgetStateDir(`${sandbox}/state`);
    removeDir(sandbox);
  });

  it('edge cases: 10 MB stdin, 100,000-deep nesting, unicode and NUL in names', () => {
    for (const c of edgeCases(sandbox, ns)) {
      const o = checkCase(c, sandbox);
      assert.ok(o.ok, o.why);
    }
  });

  it(`${process.env.FUZZ_RUNS ?? 150} generated cases (seed ${process.env.FUZZ_SEED ?? 20261123})`, () => {
    fc.assert(
      fc.property(caseArb(sandbox, ns, notNs), (c) => {
        const o = checkCase(c, sandbox);
        if (!o.ok) throw new Error(`${o.why}\ncase: ${JSON.stringify(c).slice(0, 2000)}`);
      }),
      { seed: Number(process.env.FUZZ_SEED ?? 20261123), numRuns: Number(process.env.FUZZ_RUNS ?? 150), endOnFailure: true },
    );
  });
});
