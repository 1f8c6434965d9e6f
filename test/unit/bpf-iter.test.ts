// What the loader needs for socket iterators, without a kernel: the ELF of iter/udp and iter/tcp
// sections (programs, the bpf_sock_destroy kfunc reference, the map), the patch that moves loads
// of any width from a marker range to a field's offset, and a struct member found through the
// anonymous structs and unions that hold it (sock_common's skc_daddr, skc_dport).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseBtf } from '../../lib/bpf/btf.js';
import { parseElf, patchFieldLoads, patchFieldOffset } from '../../lib/bpf/elf.js';
import { MapType } from '../../lib/bpf/sys.js';
import { compileBpf, hasClang } from '../helpers/bpf-objects.js';

const LDX = { B: 0x71, H: 0x69, W: 0x61, DW: 0x79 } as const;
const STX_W = 0x63, LD_IMM64 = 0x18;

function insn(code: number, dst: number, src: number, off: number, imm = 0): Buffer {
  const b = Buffer.alloc(8);
  b[0] = code;
  b[1] = (src << 4) | dst;
  b.writeInt16LE(off, 2);
  b.writeInt32LE(imm, 4);
  return b;
}
const offsets = (insns: Buffer): number[] => Array.from({ length: insns.length / 8 }, (_, i) => insns.readInt16LE(i * 8 + 2));

describe('socket iterator objects', { skip: !hasClang() && 'clang is not installed' }, () => {
  const elf = parseElf(compileBpf('test/bpf/sockdestroy.c').bytes);

  it('finds one program per iterator section, each calling bpf_sock_destroy', () => {
    assert.deepEqual(elf.programs.map((p) => [p.name, p.section]).sort(), [['destroy_tcp', 'iter/tcp'], ['destroy_udp', 'iter/udp']]);
    for (const p of elf.programs) assert.deepEqual(p.kfuncRefs.map((r) => r.name), ['bpf_sock_destroy']);
    assert.deepEqual(elf.maps.find((m) => m.name === 'targets'), { name: 'targets', type: MapType.Hash, keySize: 24, valueSize: 4, maxEntries: 64, flags: 0 });
  });

  it('reads every sock_common field with one load at its marker, which the patch moves', () => {
    const insns = Buffer.from(elf.programs.find((p) => p.name === 'destroy_udp')!.insns);
    const fields: [number, number, number][] = [[0x7d00, 2, 16], [0x7d10, 1, 18], [0x7d20, 2, 12], [0x7d30, 4, 0], [0x7d40, 16, 56]];
    const counts = fields.map(([marker, span, off]) => patchFieldLoads(insns, marker, span, off));
    assert.deepEqual(counts, [1, 1, 1, 1, 4], 'family, state, dport, daddr, and the v6 address in four words');
    assert.ok(offsets(insns).every((o) => o < 0x7d00 || o >= 0x7d50), 'no load is left at a marker');
  });
});

describe('patchFieldLoads', () => {
  it('moves loads of every width inside the span by their distance from the marker, and nothing else', () => {
    const insns = Buffer.concat([
      insn(LDX.B, 1, 6, 0x7d00), insn(LDX.H, 1, 6, 0x7d02), insn(LDX.W, 1, 6, 0x7d0c), insn(LDX.DW, 1, 6, 0x7d08),
      insn(LDX.W, 1, 6, 0x7d10), // just past the span
      insn(STX_W, 6, 1, 0x7d00), // a store is not a read of the field
      insn(LD_IMM64, 1, 0, 0x7d00), insn(0, 0, 0, 0x7d00), // ld_imm64's second half is not an instruction
    ]);
    assert.equal(patchFieldLoads(insns, 0x7d00, 16, 56), 4);
    assert.deepEqual(offsets(insns), [56, 58, 68, 64, 0x7d10, 0x7d00, 0x7d00, 0x7d00]);
  });

  it('patchFieldOffset keeps moving only 64-bit loads at the marker', () => {
    const insns = Buffer.concat([insn(LDX.DW, 1, 6, 0x7ee8), insn(LDX.W, 1, 6, 0x7ee8), insn(LDX.DW, 1, 6, 0x7ef0)]);
    assert.equal(patchFieldOffset(insns, 0x7ee8, 128), 1);
    assert.deepEqual(offsets(insns), [128, 0x7ee8, 0x7ef0]);
  });
});

/** A BTF blob: types as [kind, name, sizeOrType, members [name, type, bitOffset][]]. */
function btfBlob(types: [number, string, number, [string, number, number][]][]): Buffer {
  const strs: string[] = [''];
  const str = (s: string): number => {
    if (s === '') return 0;
    const at = Buffer.byteLength(strs.join('\0')) + 1;
    strs.push(s);
    return at;
  };
  const recs = types.map(([kind, name, size, members]) => {
    const h = Buffer.alloc(12 + members.length * 12);
    h.writeUInt32LE(str(name), 0);
    h.writeUInt32LE(((kind << 24) | members.length) >>> 0, 4);
    h.writeUInt32LE(size, 8);
    members.forEach(([n, t, bits], i) => {
      h.writeUInt32LE(str(n), 12 + i * 12);
      h.writeUInt32LE(t, 16 + i * 12);
      h.writeUInt32LE(bits, 20 + i * 12);
    });
    return h;
  });
  const typeSec = Buffer.concat(recs), strSec = Buffer.from(`${strs.join('\0')}\0`);
  const hdr = Buffer.alloc(24);
  hdr.writeUInt16LE(0xeb9f, 0);
  hdr[2] = 1;
  hdr.writeUInt32LE(24, 4);
  hdr.writeUInt32LE(0, 8);
  hdr.writeUInt32LE(typeSec.length, 12);
  hdr.writeUInt32LE(typeSec.length, 16);
  hdr.writeUInt32LE(strSec.length, 20);
  return Buffer.concat([hdr, typeSec, strSec]);
}

describe('kernel BTF member offsets', () => {
  const STRUCT = 4, UNION = 5;
  // struct sock_common { u32 skc_hash; union { u64 skc_addrpair; struct { u32 skc_daddr; u32 skc_rcv_saddr; }; }; }
  // with the union at byte 8. Ids: 1 the leaf (an empty 4-byte struct: no kind-specific tail to
  // write), 2 the anonymous struct, 3 the anonymous union, 4 sock_common.
  const btf = parseBtf(btfBlob([
    [STRUCT, 'leaf', 4, []],
    [STRUCT, '', 8, [['skc_daddr', 1, 0], ['skc_rcv_saddr', 1, 32]]],
    [UNION, '', 8, [['skc_addrpair', 1, 0], ['', 2, 0]]],
    [STRUCT, 'sock_common', 16, [['skc_hash', 1, 0], ['', 3, 64]]],
  ]));

  it('finds a direct member, and one inside an anonymous union and struct with their offsets added', () => {
    assert.equal(btf.memberOffset('sock_common', 'skc_hash'), 0);
    assert.equal(btf.memberOffset('sock_common', 'skc_addrpair'), 8);
    assert.equal(btf.memberOffset('sock_common', 'skc_daddr'), 8);
    assert.equal(btf.memberOffset('sock_common', 'skc_rcv_saddr'), 12);
  });

  it('finds nothing that is not there', () => {
    assert.equal(btf.memberOffset('sock_common', 'skc_dport'), undefined);
    assert.equal(btf.memberOffset('sock', 'skc_daddr'), undefined);
  });
});
