import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { describe, it } from 'node:test';
import { linkMaps, parseElf } from '../../lib/bpf/elf.js';
import { COUNTERS_SIZE, EP_KEY_SIZE, EP_VALUE_SIZE, FLOW_KEY_SIZE, epKey, epKeyAddr, epValue, parseEpValue } from '../../lib/bpf/layout.js';
import { MapType } from '../../lib/bpf/sys.js';
import { formatAddr, parseAddr } from '../../lib/ipam/ip.js';
import { ROOT } from '../helpers/twill.js';

const object = readFileSync(`${ROOT}/bpf/twill_tc.o`);

describe('the committed tc object', () => {
  const elf = parseElf(object);

  it('declares the maps with the layouts the loader writes', () => {
    const byName = new Map(elf.maps.map((m) => [m.name, m]));
    assert.deepEqual(byName.get('endpoints'), { name: 'endpoints', type: MapType.Hash, keySize: EP_KEY_SIZE, valueSize: EP_VALUE_SIZE, maxEntries: 65536, flags: 0 });
    assert.equal(byName.get('flows')?.type, MapType.LruHash);
    assert.equal(byName.get('flows')?.keySize, FLOW_KEY_SIZE);
    assert.equal(byName.get('counters')?.type, MapType.PercpuHash);
    assert.equal(byName.get('counters')?.valueSize, COUNTERS_SIZE);
    assert.equal(elf.license, 'GPL');
  });

  it('has the program, and every map reference relocates to an ld_imm64 with a map fd', () => {
    const prog = elf.programs.find((p) => p.name === 'twill_from_pod');
    assert.ok(prog);
    assert.ok(prog.mapRefs.length > 0);
    const fds = new Map(elf.maps.map((m, i) => [m.name, 100 + i]));
    const linked = linkMaps(prog, fds);
    for (const ref of prog.mapRefs) {
      assert.equal(linked[ref.offset], 0x18);
      assert.equal(linked[ref.offset + 1]! >> 4, 1, 'src_reg = BPF_PSEUDO_MAP_FD');
      assert.equal(linked.readInt32LE(ref.offset + 4), fds.get(ref.map));
    }
  });

  it('rejects what it cannot load', () => {
    assert.throws(() => parseElf(Buffer.from('not an elf at all, not at all')), /ELF/);
    const wrongMachine = Buffer.from(object);
    wrongMachine.writeUInt16LE(62, 18);
    assert.throws(() => parseElf(wrongMachine), /e_machine/);
  });

  it('matches its source (rebuilt with clang)', (t) => {
    const clang = spawnSync('clang', ['--version']);
    if (clang.status !== 0) {
      t.skip('clang is not installed: cannot rebuild bpf/twill_tc.o to compare');
      return;
    }
    const dir = mkdtempSync(`${tmpdir()}/twill-bpf-`);
    try {
      const arch = spawnSync('uname', ['-m'], { encoding: 'utf8' }).stdout.trim();
      const r = spawnSync('clang', ['-O2', '-g0', '-target', 'bpf', '-Wall', '-Werror', `-I/usr/include/${arch}-linux-gnu`, '-c', `${ROOT}/bpf/twill_tc.c`, '-o', `${dir}/t.o`], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      assert.ok(readFileSync(`${dir}/t.o`).equals(object), 'bpf/twill_tc.o is stale: run `make bpf` and commit it');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('map key and value layouts', () => {
  it('round-trip endpoint keys and values', () => {
    for (const s of ['10.1.2.3', 'fd00::1:2']) assert.equal(formatAddr(epKeyAddr(epKey(parseAddr(s)!))), s);
    const v = { ifindex: 77, flags: 1, podMac: '02:aa:bb:cc:dd:ee', hostMac: '06:11:22:33:44:55' };
    assert.deepEqual(parseEpValue(epValue(v)), v);
    assert.equal(epKey(parseAddr('10.1.2.3')!).length, EP_KEY_SIZE);
  });
});
