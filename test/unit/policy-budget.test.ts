// The budget of a policy state: the peak of a swap (old and new together, keys once; one more
// for an in-place rewrite), and the refusal naming the policy that asks most.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { entriesByPolicy, overBudget, peakEntries } from '../../lib/datapath/policy-budget.js';
import type { Allow } from '../../lib/policy/compile.js';

const m = (entries: [string, number][]): Map<string, Buffer> => new Map(entries.map(([k, v]) => [k, Buffer.from([v])]));
const allow = (policy: number, port: number): Allow => ({ identity: 256, proto: 6, protoBits: 8, port, portBits: 16, policy });

describe('policy budget', () => {
  it('a swap peaks at old ∪ new, keys counted once', () => {
    assert.equal(peakEntries(m([['a', 1], ['b', 1]]), m([['b', 1], ['c', 1]])), 3);
    assert.equal(peakEntries(new Map(), m([['a', 1]])), 1);
    assert.equal(peakEntries(m([['a', 1]]), new Map()), 1);
  });

  it('an in-place rewrite of a kept key needs one spare entry (older kernels refuse it in a full trie)', () => {
    assert.equal(peakEntries(m([['a', 1], ['b', 1]]), m([['a', 2], ['b', 1]])), 3);
  });

  it('counts entries per policy over the local pods, both directions; pods selected by the same policies once', () => {
    const sel = (ingress: number[], egress: number[] = []) => ({ selectedBy: { ingress, egress } });
    const by = entriesByPolicy([
      { ingress: [allow(0, 80), allow(1, 81)], egress: [allow(1, 53)], ...sel([0, 1], [1]) },
      { ingress: [allow(1, 80)], ...sel([1]) },
      { ingress: [allow(1, 80), allow(1, 82)], ...sel([1]) },
      sel([]),
    ]);
    assert.deepEqual([...by].sort(), [[0, 1], [1, 4]]);
  });

  it('refuses the first map over its size, naming the policy that asks most and the counts', () => {
    const r = overBudget({ policy: { needed: 300, available: 256 }, ipcache: { needed: 10, available: 65536 } }, new Map([[0, 20], [1, 280]]), ['x/small', 'x/wide'], 'pods');
    assert.equal(r?.map, 'policy');
    assert.equal(r?.policy, 'x/wide');
    assert.equal(r?.policyEntries, 280);
    assert.match(r!.message, /needs 300 entries, 256 available/);
    assert.match(r!.message, /x\/wide/);
  });

  it('names what fills the ipcache; fits exactly at the size', () => {
    const r = overBudget({ policy: { needed: 256, available: 256 }, ipcache: { needed: 70000, available: 65536 } }, new Map([[0, 256]]), ['x/a'], 'the cluster\'s pod addresses');
    assert.equal(r?.map, 'ipcache');
    assert.equal(r?.policy, undefined);
    assert.match(r!.message, /ipcache map needs 70000 entries, 65536 available \(the cluster's pod addresses\)/);
    assert.equal(overBudget({ policy: { needed: 256, available: 256 }, ipcache: { needed: 1, available: 1 } }, new Map(), [], ''), undefined);
  });
});
