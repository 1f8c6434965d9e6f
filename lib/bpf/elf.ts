// Reads a clang-built BPF object: program sections, legacy "maps" definitions and the map
// relocations of each program. Plain bytes in, plain data out.

export interface ElfMap {
  name: string;
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
}

export interface ElfProgram {
  name: string;
  section: string;
  insns: Buffer;
  /** Byte offset of an ld_imm64 instruction → the map it loads. */
  mapRefs: { offset: number; map: string }[];
  /** Byte offset of a call instruction → the kernel function (kfunc) it calls. */
  kfuncRefs: { offset: number; name: string }[];
}

export interface ElfObject {
  license: string;
  maps: ElfMap[];
  programs: ElfProgram[];
}

interface Section {
  name: string;
  type: number;
  flags: bigint;
  offset: number;
  size: number;
  link: number;
  info: number;
}

const SHT_SYMTAB = 2;
const SHT_REL = 9;
const SHF_EXECINSTR = 4n;
const EM_BPF = 247;
const R_BPF_64_64 = 1;
const R_BPF_64_32 = 10;
const SHN_UNDEF = 0;
const MAP_DEF_SIZE = 20;

const cstrAt = (b: Buffer, off: number): string => b.toString('latin1', off, b.indexOf(0, off));

export function parseElf(b: Buffer): ElfObject {
  if (b.readUInt32BE(0) !== 0x7f454c46) throw new Error('not an ELF file');
  if (b[4] !== 2 || b[5] !== 1) throw new Error('only 64-bit little-endian BPF objects are supported');
  if (b.readUInt16LE(18) !== EM_BPF) throw new Error('not a BPF object (e_machine)');
  const shoff = Number(b.readBigUInt64LE(0x28));
  const shentsize = b.readUInt16LE(0x3a);
  const shnum = b.readUInt16LE(0x3c);
  const shstrndx = b.readUInt16LE(0x3e);
  const raw = Array.from({ length: shnum }, (_, i) => {
    const o = shoff + i * shentsize;
    return {
      nameOff: b.readUInt32LE(o), type: b.readUInt32LE(o + 4), flags: b.readBigUInt64LE(o + 8),
      offset: Number(b.readBigUInt64LE(o + 24)), size: Number(b.readBigUInt64LE(o + 32)), link: b.readUInt32LE(o + 40), info: b.readUInt32LE(o + 44),
    };
  });
  const shstr = raw[shstrndx]!;
  const sections: Section[] = raw.map((s) => ({ ...s, name: cstrAt(b, shstr.offset + s.nameOff) }));
  const data = (s: Section): Buffer => b.subarray(s.offset, s.offset + s.size);

  const symtab = sections.find((s) => s.type === SHT_SYMTAB);
  if (!symtab) throw new Error('BPF object has no symbol table');
  const strtab = sections[symtab.link]!;
  const symbols = Array.from({ length: symtab.size / 24 }, (_, i) => {
    const o = symtab.offset + i * 24;
    return { name: cstrAt(b, strtab.offset + b.readUInt32LE(o)), info: b[o + 4]!, shndx: b.readUInt16LE(o + 6), value: Number(b.readBigUInt64LE(o + 8)) };
  });

  const mapsIdx = sections.findIndex((s) => s.name === 'maps');
  const maps: ElfMap[] = [];
  const mapByOffset = new Map<number, string>();
  if (mapsIdx >= 0) {
    const md = data(sections[mapsIdx]!);
    for (const sym of symbols.filter((s) => s.shndx === mapsIdx && s.name !== '')) {
      const o = sym.value;
      if (o + MAP_DEF_SIZE > md.length) throw new Error(`map ${sym.name} lies outside the maps section`);
      maps.push({ name: sym.name, type: md.readUInt32LE(o), keySize: md.readUInt32LE(o + 4), valueSize: md.readUInt32LE(o + 8), maxEntries: md.readUInt32LE(o + 12), flags: md.readUInt32LE(o + 16) });
      mapByOffset.set(o, sym.name);
    }
  }

  const programs: ElfProgram[] = [];
  sections.forEach((s, idx) => {
    if (!(s.flags & SHF_EXECINSTR) || s.size === 0) return;
    const fn = symbols.find((sym) => sym.shndx === idx && (sym.info & 0xf) === 2 && sym.value === 0);
    const rel = sections.find((r) => r.type === SHT_REL && r.info === idx);
    const mapRefs: ElfProgram['mapRefs'] = [];
    const kfuncRefs: ElfProgram['kfuncRefs'] = [];
    if (rel) {
      for (let o = rel.offset; o < rel.offset + rel.size; o += 16) {
        const offset = Number(b.readBigUInt64LE(o));
        const info = b.readBigUInt64LE(o + 8);
        const sym = symbols[Number(info >> 32n)]!;
        const type = Number(info & 0xffffffffn);
        if (type === R_BPF_64_32 && sym.shndx === SHN_UNDEF) {
          kfuncRefs.push({ offset, name: sym.name });
          continue;
        }
        if (type !== R_BPF_64_64 || sym.shndx !== mapsIdx) {
          throw new Error(`unsupported relocation in ${s.name} at ${offset} (symbol ${sym.name}): only map references and kfunc calls are supported`);
        }
        const map = mapByOffset.get(sym.value);
        if (!map) throw new Error(`relocation in ${s.name} refers to an unknown map at offset ${sym.value}`);
        mapRefs.push({ offset, map });
      }
    }
    programs.push({ name: fn?.name ?? s.name, section: s.name, insns: Buffer.from(data(s)), mapRefs, kfuncRefs });
  });

  const lic = sections.find((s) => s.name === 'license');
  return { license: lic ? cstrAt(b, lic.offset) : '', maps, programs };
}

/** Patches ld_imm64 map references with map fds (src_reg = BPF_PSEUDO_MAP_FD). */
export function linkMaps(p: ElfProgram, fds: ReadonlyMap<string, number>): Buffer {
  const insns = Buffer.from(p.insns);
  for (const ref of p.mapRefs) {
    const fd = fds.get(ref.map);
    if (fd === undefined) throw new Error(`no fd for map ${ref.map}`);
    if (insns[ref.offset] !== 0x18) throw new Error(`relocation at ${ref.offset} is not an ld_imm64`);
    insns[ref.offset + 1] = (insns[ref.offset + 1]! & 0x0f) | (1 << 4);
    insns.writeInt32LE(fd, ref.offset + 4);
  }
  return insns;
}

const BPF_PSEUDO_KFUNC_CALL = 2;
const CALL = 0x85, LDX_DW = 0x79;

export interface KernelSymbols {
  funcId(name: string): number | undefined;
}

/** Points every kfunc call at its BTF id in the running kernel (vmlinux: off 0). */
export function linkKfuncs(insns: Buffer, p: ElfProgram, kernel: KernelSymbols): void {
  for (const ref of p.kfuncRefs) {
    if (insns[ref.offset] !== CALL) throw new Error(`kfunc relocation at ${ref.offset} is not a call`);
    const id = kernel.funcId(ref.name);
    if (id === undefined) throw new Error(`the kernel has no kfunc ${ref.name}`);
    insns[ref.offset + 1] = (insns[ref.offset + 1]! & 0x0f) | (BPF_PSEUDO_KFUNC_CALL << 4);
    insns.writeInt16LE(0, ref.offset + 2);
    insns.writeInt32LE(id, ref.offset + 4);
  }
}

/** Rewrites 64-bit loads at the marker offset to the kernel's field offset; returns how many. */
export function patchFieldOffset(insns: Buffer, marker: number, offset: number): number {
  let n = 0;
  for (let o = 0; o + 8 <= insns.length; o += 8) {
    if (insns[o] === LDX_DW && insns.readInt16LE(o + 2) === marker) {
      insns.writeInt16LE(offset, o + 2);
      n++;
    }
  }
  return n;
}
