// The loader's failure paths: a program the verifier rejects raises an error carrying the
// tail of the verifier log, and nothing is left loaded or pinned — neither the program nor
// the maps a first load had already created.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { parseElf } from '../../lib/bpf/elf.js';
import { loadNetwork } from '../../lib/bpf/loader.js';
import { closeFd, progLoad, ProgType, VerifierError } from '../../lib/bpf/sys.js';
import { tempBpffs } from '../helpers/traffic.js';
import { removeDir, ROOT, tempDir } from '../helpers/twill.js';

/** BPF objects (programs, maps, links) this process holds open. */
function openBpfFds(): string[] {
  return readdirSync('/proc/self/fd').flatMap((fd) => {
    try {
      const t = readlinkSync(`/proc/self/fd/${fd}`);
      return t.startsWith('anon_inode:bpf') ? [t] : [];
    } catch {
      return [];
    }
  });
}

/** n times "r0 = 0", then (bad) the out-of-bounds context load, then exit. */
function longProgram(n: number, bad = false): Buffer {
  const insns = Buffer.alloc((n + (bad ? 2 : 1)) * 8);
  for (let i = 0; i < n; i++) insns.writeUInt8(0xb7, i * 8); // BPF_ALU64 | BPF_MOV | BPF_K, dst r0, imm 0
  if (bad) {
    insns.writeUInt8(0x79, n * 8);
    insns.writeUInt8(0x10, n * 8 + 1);
    insns.writeInt16LE(4096, n * 8 + 2);
  }
  insns.writeUInt8(0x95, insns.length - 8); // exit
  return insns;
}

describe('BPF program load', () => {
  it('a verifier rejection carries the tail of the verifier log and leaves no program open', () => {
    const before = openBpfFds();
    // r0 = *(u64 *)(r1 + 4096); exit — out of bounds of struct __sk_buff.
    const insns = Buffer.alloc(16);
    insns.writeUInt8(0x79, 0); // BPF_LDX | BPF_MEM | BPF_DW
    insns.writeUInt8(0x10, 1); // dst r0, src r1
    insns.writeInt16LE(4096, 2);
    insns.writeUInt8(0x95, 8); // exit
    assert.throws(
      () => progLoad('twill_bad', ProgType.SchedCls, insns, 'GPL'),
      (e: unknown) => e instanceof VerifierError && /^program twill_bad load: EACCES/.test(e.message) && /invalid bpf_context access|off=4096/.test(e.message),
    );
    assert.deepEqual(openBpfFds(), before);
  });

  it('a valid program whose level-1 verifier log exceeds 1 MiB loads', () => {
    const before = openBpfFds();
    // 150,000 straight-line instructions: the verifier's log at level 1 prints each (~20 bytes).
    const fd = progLoad('twill_long', ProgType.SchedCls, longProgram(150_000), 'GPL');
    assert.ok(fd > 0);
    closeFd(fd);
    assert.deepEqual(openBpfFds(), before);
  });

  it('a rejection at the end of a log longer than 1 MiB still reports the verifier\'s reason', () => {
    const before = openBpfFds();
    assert.throws(
      () => progLoad('twill_longbad', ProgType.SchedCls, longProgram(150_000, true), 'GPL'),
      (e: unknown) => e instanceof VerifierError && /^program twill_longbad load: EACCES/.test(e.message) && /invalid bpf_context access|off=4096/.test(e.message),
    );
    assert.deepEqual(openBpfFds(), before);
  });

  it('a network whose program is rejected pins nothing and holds nothing open', () => {
    const bpffs = tempBpffs();
    const dir = tempDir('badobj');
    after(() => {
      bpffs.release();
      removeDir(dir);
    });
    // The committed object with its first instruction turned into the out-of-bounds load.
    const obj = Buffer.from(readFileSync(`${ROOT}/bpf/twill_tc.o`));
    const prog = parseElf(obj).programs.find((p) => p.name === 'twill_from_pod')!;
    const at = obj.indexOf(prog.insns);
    obj.writeUInt8(0x79, at);
    obj.writeUInt8(0x10, at + 1);
    obj.writeInt16LE(4096, at + 2);
    writeFileSync(`${dir}/bad.o`, obj);
    process.env.TWILL_BPF_OBJECT = `${dir}/bad.o`;
    const before = openBpfFds();
    try {
      assert.throws(() => loadNetwork(bpffs.root, 'badnet', { endpoints: 64 }), VerifierError);
    } finally {
      delete process.env.TWILL_BPF_OBJECT;
    }
    assert.equal(existsSync(`${bpffs.root}/twill/badnet`), false, 'no maps, program or links pinned');
    assert.deepEqual(openBpfFds(), before);
  });
});
