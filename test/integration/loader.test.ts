// The loader's failure path: a program the verifier rejects raises an error carrying the
// tail of the verifier log, and nothing is left loaded or pinned.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { progLoad, ProgType, VerifierError } from '../../lib/bpf/sys.js';

describe('BPF program load', () => {
  it('a verifier rejection carries the tail of the verifier log', () => {
    // r0 = *(u64 *)(r1 + 4096); exit — out of bounds of struct __sk_buff.
    const insns = Buffer.alloc(16);
    insns.writeUInt8(0x79, 0); // BPF_LDX | BPF_MEM | BPF_DW
    insns.writeUInt8(0x10, 1); // dst r0, src r1
    insns.writeInt16LE(4096, 2);
    insns.writeUInt8(0x95, 8); // exit
    assert.throws(
      () => progLoad('twill_bad', ProgType.SchedCls, insns, 'GPL'),
      (e: unknown) => e instanceof VerifierError && /verifier rejected twill_bad/.test(e.message) && /invalid bpf_context access|off=4096/.test(e.message),
    );
  });
});
