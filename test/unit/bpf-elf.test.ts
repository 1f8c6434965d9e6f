// The ELF reader beyond the legacy maps section, on objects clang builds here: BTF-defined
// maps, data sections as maps, subprograms appended and their calls relocated, tail-call maps;
// and the manifest that says what the loader loads.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { linkMaps, parseElf, type ElfProgram } from '../../lib/bpf/elf.js';
import { kernelMapName, mapNames, mapSize, TC_OBJECT, versionOfName } from '../../lib/bpf/manifest.js';
import { MAP_NAMES } from '../../lib/bpf/layout.js';
import { MapType } from '../../lib/bpf/sys.js';
import { compileBpf, hasClang } from '../helpers/bpf-objects.js';

const CALL = 0x85;

/** Every bpf-to-bpf call of p lands on an instruction inside p. */
function callTargets(p: ElfProgram): number[] {
  const out: number[] = [];
  for (let o = 0; o < p.insns.length; o += 8) {
    if (p.insns[o] === CALL && p.insns[o + 1]! >> 4 === 1) out.push(o / 8 + p.insns.readInt32LE(o + 4) + 1);
  }
  return out;
}

describe('BPF objects beyond the legacy maps section', { skip: !hasClang() && 'clang is not installed' }, () => {
  const elf = parseElf(compileBpf('test/bpf/features.c').bytes);
  const prog = (n: string): ElfProgram => elf.programs.find((p) => p.name === n)!;

  it('reads BTF-defined maps from the object\'s BTF', () => {
    const byName = new Map(elf.maps.map((m) => [m.name, m]));
    assert.deepEqual(byName.get('results'), { name: 'results', type: MapType.Array, keySize: 4, valueSize: 8, maxEntries: 4, flags: 0 });
    assert.deepEqual(byName.get('jumps'), { name: 'jumps', type: MapType.ProgArray, keySize: 4, valueSize: 4, maxEntries: 2, flags: 0 });
  });

  it('makes .rodata a frozen, program-read-only map holding the section, and .data a writable one', () => {
    const ro = elf.maps.find((m) => m.name === '.rodata')!;
    assert.equal(ro.type, MapType.Array);
    assert.equal(ro.maxEntries, 1);
    assert.equal(ro.frozen, true);
    assert.equal(ro.flags & 0x80, 0x80, 'BPF_F_RDONLY_PROG');
    assert.equal(ro.data!.readUInt32LE(0), 0x5eed);
    const data = elf.maps.find((m) => m.name === '.data')!;
    assert.equal(data.frozen, false);
    assert.equal(data.data!.readUInt32LE(0), 2);
  });

  it('finds one program per global function of each code section, none in .text', () => {
    assert.deepEqual(elf.programs.map((p) => p.name).sort(), ['connect4', 'rodata', 'sub_call', 'tail_entry', 'tail_target']);
    assert.equal(prog('connect4').section, 'cgroup/connect4');
  });

  it('appends the subprograms a program calls, each once, and points every call at its copy', () => {
    const p = prog('sub_call');
    // sub_call (8 insns) + twice (3) + add (3): the static and the global function, appended.
    assert.equal(p.insns.length / 8, 14);
    const targets = callTargets(p);
    assert.equal(targets.length, 2);
    assert.deepEqual(targets.sort((a, b) => a - b), [8, 11]);
    for (const t of targets) assert.ok(t > 0 && t < p.insns.length / 8);
    assert.equal(callTargets(prog('rodata')).length, 0, 'no subprogram appended where none is called');
  });

  it('relocates a .rodata read to the data map\'s value (BPF_PSEUDO_MAP_VALUE with the offset)', () => {
    const p = prog('rodata');
    const ref = p.mapRefs.find((r) => r.map === '.rodata')!;
    assert.equal(ref.valueOffset, 0);
    const linked = linkMaps(p, new Map([['.rodata', 42]]));
    assert.equal(linked[ref.offset + 1]! >> 4, 2);
    assert.equal(linked.readInt32LE(ref.offset + 4), 42);
    assert.equal(linked.readInt32LE(ref.offset + 12), 0);
    const deny = prog('connect4').mapRefs.find((r) => r.map === '.rodata')!;
    assert.equal(deny.valueOffset, 4, 'deny_port lies after magic');
  });

  it('references the prog array of a tail call as a map', () => {
    assert.deepEqual(prog('tail_entry').mapRefs.map((r) => r.map), ['jumps']);
  });

  it('reads twill\'s tc object built with -g (.BTF, .BTF.ext, .debug_*) as it reads it without', () => {
    const plain = parseElf(compileBpf('bpf/twill_tc.c', ['-g0']).bytes);
    const debug = parseElf(compileBpf('bpf/twill_tc.c', ['-g']).bytes);
    assert.deepEqual(debug.maps, plain.maps);
    assert.deepEqual(debug.programs.map((p) => [p.name, p.section, p.insns.length, p.mapRefs.length, p.kfuncRefs.length]), plain.programs.map((p) => [p.name, p.section, p.insns.length, p.mapRefs.length, p.kfuncRefs.length]));
  });
});

describe('the manifest', () => {
  it('lists exactly the tc object\'s maps (layout.ts MAP_NAMES), its two programs by section', () => {
    assert.deepEqual(mapNames(TC_OBJECT).sort(), [...MAP_NAMES].sort());
    assert.deepEqual(TC_OBJECT.programs.map((p) => [p.name, p.section, p.type, p.attach.kind === 'tc' ? p.attach.direction : '']), [['twill_from_pod', 'tc/from_pod', 'sched_cls', 'ingress'], ['twill_to_pod', 'tc/to_pod', 'sched_cls', 'egress']]);
  });

  it('sizes the tc maps from the network\'s configuration, the others from the object', () => {
    const sizes = { endpoints: 300, flows: 0, ipcache: 5000 };
    assert.equal(mapSize(TC_OBJECT.maps.endpoints, 1024, sizes), 300);
    assert.equal(mapSize(TC_OBJECT.maps.counters, 1024, sizes), 300);
    assert.equal(mapSize(TC_OBJECT.maps.ipcache, 65536, sizes), 5000);
    assert.equal(mapSize(TC_OBJECT.maps.policy, 65536, sizes), 65536, 'not configured: the object\'s');
    assert.equal(mapSize(TC_OBJECT.maps.flows, 8192, sizes), 1, 'flows off: an LRU map needs an entry');
    assert.equal(mapSize(TC_OBJECT.maps.flows, 8192, { endpoints: 1, flows: 100 }), 100);
    assert.equal(mapSize(TC_OBJECT.maps.frags, 4096, sizes), 4096);
  });

  it('names a map\'s kernel object by its layout version, within the kernel\'s 15 bytes', () => {
    assert.equal(kernelMapName('endpoints', 1), 'endpoints');
    assert.equal(kernelMapName('policy', 3), 'policy.v3');
    assert.equal(kernelMapName('a_very_long_map_name', 12).length, 15);
    assert.equal(versionOfName(kernelMapName('a_very_long_map_name', 12)), 12);
    assert.equal(versionOfName('endpoints'), 1);
  });
});
