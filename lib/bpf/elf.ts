// Reads a clang-built BPF object: its maps (the legacy "maps" section, BTF-defined ".maps",
// and the .rodata/.data/.bss sections as one-entry array maps), and its programs, each with
// the subprograms it calls (bpf-to-bpf calls) appended and its map, data and kfunc references
// recorded. Sections it has no use for (.BTF, .BTF.ext, .debug_*, …) are skipped. Plain bytes
// in, plain data out.
import { Kind, ObjectBtf } from './btf-types.js';

export interface ElfMap {
  name: string;
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
  /** A data section's map (.rodata, .data, .bss): the one value, written before the programs load. */
  data?: Buffer;
  /** .rodata: frozen once written, so neither user space nor the programs change it. */
  frozen?: boolean;
}

export interface MapRef {
  /** Byte offset of the ld_imm64 instruction. */
  offset: number;
  map: string;
  /** Set for a reference into a data section's value (BPF_PSEUDO_MAP_VALUE): the byte offset in it. */
  valueOffset?: number;
}

export interface ElfProgram {
  name: string;
  section: string;
  /** The entry function's instructions, followed by every subprogram it calls (transitively). */
  insns: Buffer;
  /** Byte offset of an ld_imm64 instruction → the map it loads. */
  mapRefs: MapRef[];
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

interface ElfSymbol {
  name: string;
  info: number;
  shndx: number;
  value: number;
  size: number;
}

interface Rel {
  offset: number;
  sym: ElfSymbol;
  type: number;
}

/** One function: instructions [start, start + len) of section shndx. */
interface Fn {
  shndx: number;
  start: number;
  len: number;
}

const SHT_SYMTAB = 2;
const SHT_NOBITS = 8;
const SHT_REL = 9;
const SHF_EXECINSTR = 4n;
const EM_BPF = 247;
const R_BPF_64_64 = 1;
const R_BPF_64_32 = 10;
const SHN_UNDEF = 0;
const STT_FUNC = 2;
const STB_GLOBAL = 1;
const MAP_DEF_SIZE = 20;
const BPF_MAP_TYPE_ARRAY = 2;
const BPF_F_RDONLY_PROG = 1 << 7;
const LD_IMM64 = 0x18;
const BPF_PSEUDO_CALL = 1;
const INSN = 8;

const cstrAt = (b: Buffer, off: number): string => b.toString('latin1', off, b.indexOf(0, off));
const isDataSection = (name: string): boolean => /^\.(rodata|data|bss)(\..+)?$/.test(name);

/** type, max_entries, … of a BTF-defined map: `int (*name)[value]` (__uint) or `T *name` (__type). */
function btfMaps(btf: ObjectBtf, mapsData: Buffer, mapSyms: ElfSymbol[]): ElfMap[] {
  const sec = btf.datasec('.maps');
  if (!sec) throw new Error('the object has a .maps section but its BTF does not describe it');
  // In an object file the DATASEC's offsets are not filled in yet (libbpf fixes them up from the
  // symbols): a map is its variable's name, placed by its symbol.
  const syms = new Map(mapSyms.map((s) => [s.name, s]));
  return btf.members(sec).map((v) => {
    const name = v.name;
    const sym = syms.get(name);
    if (!sym) throw new Error(`map ${name}: no symbol in the .maps section`);
    const def = btf.resolve(v.type);
    if (def.kind !== Kind.Struct) throw new Error(`map ${name}: its BTF definition is not a struct`);
    const m: ElfMap = { name, type: 0, keySize: 0, valueSize: 0, maxEntries: 0, flags: 0 };
    for (const f of btf.members(def)) {
      const ptr = btf.resolve(f.type);
      if (ptr.kind !== Kind.Ptr) throw new Error(`map ${name}: field ${f.name} is not declared with __uint or __type`);
      const uint = (): number => btf.array(btf.resolve(ptr.sizeOrType)).nelems;
      switch (f.name) {
        case 'type': m.type = uint(); break;
        case 'max_entries': m.maxEntries = uint(); break;
        case 'map_flags': m.flags = uint(); break;
        case 'key_size': m.keySize = uint(); break;
        case 'value_size': m.valueSize = uint(); break;
        case 'key': m.keySize = btf.size(ptr.sizeOrType); break;
        case 'value': m.valueSize = btf.size(ptr.sizeOrType); break;
        case 'pinning': case 'numa_node': break; // pins are the manifest's business
        default: throw new Error(`map ${name}: field ${f.name} is not supported`);
      }
    }
    if (sym.value + sym.size > mapsData.length) throw new Error(`map ${name} lies outside the .maps section`);
    return m;
  });
}

/** The section table of a 64-bit little-endian ELF object, names resolved. */
function sectionTable(b: Buffer): Section[] {
  if (b.length < 64 || b.readUInt32BE(0) !== 0x7f454c46) throw new Error('not an ELF file');
  if (b[4] !== 2 || b[5] !== 1) throw new Error('only 64-bit little-endian BPF objects are supported');
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
  return raw.map(({ nameOff, ...s }) => ({ ...s, name: cstrAt(b, shstr.offset + nameOff) }));
}

/** The bytes of the object's section of that name (e.g. ".BTF"), or undefined. */
export function sectionBytes(b: Buffer, name: string): Buffer | undefined {
  const s = sectionTable(b).find((x) => x.name === name);
  if (!s) return undefined;
  return s.type === SHT_NOBITS ? Buffer.alloc(s.size) : b.subarray(s.offset, s.offset + s.size);
}

export function parseElf(b: Buffer): ElfObject {
  const sections = sectionTable(b);
  if (b.readUInt16LE(18) !== EM_BPF) throw new Error('not a BPF object (e_machine)');
  const data = (s: Section): Buffer => (s.type === SHT_NOBITS ? Buffer.alloc(s.size) : b.subarray(s.offset, s.offset + s.size));
  const isExec = (idx: number): boolean => {
    const s = sections[idx];
    return s !== undefined && (s.flags & SHF_EXECINSTR) !== 0n;
  };

  const symtab = sections.find((s) => s.type === SHT_SYMTAB);
  if (!symtab) throw new Error('BPF object has no symbol table');
  const strtab = sections[symtab.link]!;
  const symbols: ElfSymbol[] = Array.from({ length: symtab.size / 24 }, (_, i) => {
    const o = symtab.offset + i * 24;
    return { name: cstrAt(b, strtab.offset + b.readUInt32LE(o)), info: b[o + 4]!, shndx: b.readUInt16LE(o + 6), value: Number(b.readBigUInt64LE(o + 8)), size: Number(b.readBigUInt64LE(o + 16)) };
  });
  const named = (idx: number): ElfSymbol[] => symbols.filter((s) => s.shndx === idx && s.name !== '' && (s.info & 0xf) !== 3 /* STT_SECTION */);

  // Maps, and how a relocation's symbol names one.
  const maps: ElfMap[] = [];
  const mapsIdx = sections.findIndex((s) => s.name === 'maps');
  const legacyByOffset = new Map<number, string>();
  if (mapsIdx >= 0) {
    const md = data(sections[mapsIdx]!);
    for (const sym of named(mapsIdx)) {
      const o = sym.value;
      if (o + MAP_DEF_SIZE > md.length) throw new Error(`map ${sym.name} lies outside the maps section`);
      maps.push({ name: sym.name, type: md.readUInt32LE(o), keySize: md.readUInt32LE(o + 4), valueSize: md.readUInt32LE(o + 8), maxEntries: md.readUInt32LE(o + 12), flags: md.readUInt32LE(o + 16) });
      legacyByOffset.set(o, sym.name);
    }
  }
  const btfMapsIdx = sections.findIndex((s) => s.name === '.maps');
  const btfByOffset = new Map<number, string>();
  if (btfMapsIdx >= 0 && sections[btfMapsIdx]!.size > 0) {
    const btfSec = sections.find((s) => s.name === '.BTF');
    if (!btfSec) throw new Error('BTF-defined maps (.maps) need the object\'s BTF: build it with -g');
    const syms = named(btfMapsIdx);
    for (const m of btfMaps(new ObjectBtf(data(btfSec)), data(sections[btfMapsIdx]!), syms)) maps.push(m);
    for (const s of syms) btfByOffset.set(s.value, s.name);
  }
  const dataIdx = new Map<number, string>();
  sections.forEach((s, idx) => {
    if (!isDataSection(s.name) || s.size === 0 || isExec(idx)) return;
    const rodata = s.name.startsWith('.rodata');
    maps.push({ name: s.name, type: BPF_MAP_TYPE_ARRAY, keySize: 4, valueSize: s.size, maxEntries: 1, flags: rodata ? BPF_F_RDONLY_PROG : 0, data: Buffer.from(data(s)), frozen: rodata });
    dataIdx.set(idx, s.name);
  });

  // Relocations of each code section, and its functions.
  const rels = new Map<number, Rel[]>();
  for (const r of sections) {
    if (r.type !== SHT_REL || !isExec(r.info)) continue;
    const list = rels.get(r.info) ?? [];
    for (let o = r.offset; o < r.offset + r.size; o += 16) {
      const info = b.readBigUInt64LE(o + 8);
      list.push({ offset: Number(b.readBigUInt64LE(o)), sym: symbols[Number(info >> 32n)]!, type: Number(info & 0xffffffffn) });
    }
    rels.set(r.info, list);
  }
  const fns = new Map<string, Fn>();
  const fnAt = (shndx: number, start: number): Fn => {
    const key = `${shndx}:${start}`;
    let f = fns.get(key);
    if (f) return f;
    const s = sections[shndx]!;
    const sym = symbols.find((x) => x.shndx === shndx && (x.info & 0xf) === STT_FUNC && x.value === start * INSN);
    if (!sym && start !== 0) throw new Error(`a call into ${s.name} at instruction ${start} names no function`);
    // Without a size, the function runs to the next one (or the section's end).
    const next = symbols.filter((x) => x.shndx === shndx && (x.info & 0xf) === STT_FUNC && x.value > start * INSN).reduce((m, x) => Math.min(m, x.value), s.size);
    f = { shndx, start, len: (sym?.size ? sym.size : next - start * INSN) / INSN };
    fns.set(key, f);
    return f;
  };

  /** The entry function with every function it calls appended, and its references. */
  const link = (entry: Fn): Omit<ElfProgram, 'name' | 'section'> => {
    const placed = new Map<Fn, { base: number; code: Buffer }>();
    const order: Fn[] = [];
    let total = 0;
    const place = (f: Fn): number => {
      const p = placed.get(f);
      if (p) return p.base;
      const s = sections[f.shndx]!;
      const code = Buffer.from(data(s).subarray(f.start * INSN, (f.start + f.len) * INSN));
      placed.set(f, { base: total, code });
      order.push(f);
      total += f.len;
      return total - f.len;
    };
    place(entry);
    const mapRefs: MapRef[] = [];
    const kfuncRefs: ElfProgram['kfuncRefs'] = [];
    for (let i = 0; i < order.length; i++) {
      const f = order[i]!;
      const { base, code } = placed.get(f)!;
      const sec = sections[f.shndx]!.name;
      const relocated = new Set<number>();
      const callTo = (at: number, target: Fn): void => {
        const tb = place(target);
        code.writeInt32LE(tb - (base + at / INSN + 1), at + 4);
      };
      for (const r of rels.get(f.shndx) ?? []) {
        const at = r.offset - f.start * INSN;
        if (at < 0 || at >= f.len * INSN) continue;
        relocated.add(at);
        const pos = base * INSN + at;
        const { sym } = r;
        const where = `in ${sec} at ${r.offset} (symbol ${sym.name || sections[sym.shndx]?.name})`;
        if (r.type === R_BPF_64_32 && sym.shndx === SHN_UNDEF) {
          kfuncRefs.push({ offset: pos, name: sym.name });
        } else if (r.type === R_BPF_64_32 && isExec(sym.shndx)) {
          if (code[at] !== 0x85 || code[at + 1]! >> 4 !== BPF_PSEUDO_CALL) throw new Error(`relocation ${where} is not a bpf-to-bpf call`);
          // Global functions: imm is -1 and the symbol the callee; static ones: the section's symbol and imm the callee's place.
          callTo(at, fnAt(sym.shndx, sym.value / INSN + code.readInt32LE(at + 4) + 1));
        } else if (r.type === R_BPF_64_64 && code[at] === LD_IMM64) {
          const legacy = sym.shndx === mapsIdx ? legacyByOffset.get(sym.value) : undefined;
          const btfMap = sym.shndx === btfMapsIdx ? btfByOffset.get(sym.value) : undefined;
          const dsec = dataIdx.get(sym.shndx);
          if (legacy ?? btfMap) mapRefs.push({ offset: pos, map: (legacy ?? btfMap)! });
          else if (dsec !== undefined) mapRefs.push({ offset: pos, map: dsec, valueOffset: sym.value + code.readInt32LE(at + 4) });
          else if (sym.shndx === mapsIdx || sym.shndx === btfMapsIdx) throw new Error(`relocation ${where} refers to an unknown map at offset ${sym.value}`);
          else throw new Error(`unsupported relocation ${where}: only map, data, subprogram and kfunc references are supported`);
        } else {
          throw new Error(`unsupported relocation ${where}: only map, data, subprogram and kfunc references are supported`);
        }
      }
      // A call to a function of the same section carries no relocation: imm is relative.
      for (let at = 0; at < code.length; at += INSN) {
        if (code[at] === LD_IMM64) {
          at += INSN;
          continue;
        }
        if (relocated.has(at) || code[at] !== 0x85 || code[at + 1]! >> 4 !== BPF_PSEUDO_CALL) continue;
        callTo(at, fnAt(f.shndx, f.start + at / INSN + code.readInt32LE(at + 4) + 1));
      }
    }
    return { insns: Buffer.concat(order.map((f) => placed.get(f)!.code)), mapRefs, kfuncRefs };
  };

  // Every global function of a code section other than .text is a program; a section without one is one.
  const programs: ElfProgram[] = [];
  sections.forEach((s, idx) => {
    if (!(s.flags & SHF_EXECINSTR) || s.size === 0 || s.name === '.text') return;
    const entries = symbols.filter((sym) => sym.shndx === idx && (sym.info & 0xf) === STT_FUNC && sym.info >> 4 === STB_GLOBAL);
    if (entries.length === 0) programs.push({ name: s.name, section: s.name, ...link(fnAt(idx, 0)) });
    for (const e of entries) programs.push({ name: e.name, section: s.name, ...link(fnAt(idx, e.value / INSN)) });
  });

  const lic = sections.find((s) => s.name === 'license');
  return { license: lic ? cstrAt(b, lic.offset) : '', maps, programs };
}

/**
 * Patches ld_imm64 map references with map fds (src_reg = BPF_PSEUDO_MAP_FD), and references
 * into a data section with its map's fd and the offset (BPF_PSEUDO_MAP_VALUE).
 */
export function linkMaps(p: ElfProgram, fds: ReadonlyMap<string, number>): Buffer {
  const insns = Buffer.from(p.insns);
  for (const ref of p.mapRefs) {
    const fd = fds.get(ref.map);
    if (fd === undefined) throw new Error(`no fd for map ${ref.map}`);
    if (insns[ref.offset] !== 0x18) throw new Error(`relocation at ${ref.offset} is not an ld_imm64`);
    insns[ref.offset + 1] = (insns[ref.offset + 1]! & 0x0f) | ((ref.valueOffset === undefined ? 1 : 2) << 4);
    insns.writeInt32LE(fd, ref.offset + 4);
    if (ref.valueOffset !== undefined) insns.writeInt32LE(ref.valueOffset, ref.offset + 12);
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

const LDX_MEM_SIZES = new Set([0x61, 0x69, 0x71, 0x79]); // BPF_LDX | BPF_MEM | W, H, B, DW

/**
 * Rewrites loads of any width at [marker, marker + span) to the kernel's field offset (plus
 * their distance from marker): a 16-byte address read as two words moves as one. Returns how many.
 */
export function patchFieldLoads(insns: Buffer, marker: number, span: number, offset: number): number {
  let n = 0;
  for (let o = 0; o + 8 <= insns.length; o += 8) {
    if (insns[o] === LD_IMM64) {
      o += 8;
      continue;
    }
    const off = insns.readInt16LE(o + 2);
    if (!LDX_MEM_SIZES.has(insns[o]!) || off < marker || off >= marker + span) continue;
    insns.writeInt16LE(offset + off - marker, o + 2);
    n++;
  }
  return n;
}
