// The ABI the tc object shares with its loader and readers, read from the object's BTF: the
// constants (C enums) and the layouts of the map keys and values that bpf/twill_maps.h
// gathers in struct twill_abi. C is their one definition; abiSource() renders them as the
// TypeScript module lib/bpf/abi.generated.ts (tools/build/gen-abi.ts writes it).
import { BtfError, tailSize } from './btf.js';

const BTF_MAGIC = 0xeb9f;
const KIND = { STRUCT: 4, ENUM: 6, TYPEDEF: 8, VOLATILE: 9, CONST: 10, RESTRICT: 11, TYPE_TAG: 18, ENUM64: 19 } as const;
const MODIFIERS: ReadonlySet<number> = new Set([KIND.TYPEDEF, KIND.VOLATILE, KIND.CONST, KIND.RESTRICT, KIND.TYPE_TAG]);

/** The struct of the object whose members name the ABI's enums and structs. */
export const ABI_ANCHOR = 'twill_abi';

export interface AbiEnum {
  name: string;
  values: { name: string; value: number }[];
}

export interface AbiStruct {
  name: string;
  size: number;
  /** Member name → byte offset, in declaration order. */
  offsets: { name: string; offset: number }[];
}

export interface Abi {
  enums: AbiEnum[];
  structs: AbiStruct[];
}

interface BtfType {
  kind: number;
  name: string;
  /** STRUCT/ENUM: its byte size; modifiers: the type they refer to. */
  sizeOrType: number;
  kindFlag: boolean;
  /** Offset of the type's tail (members, enumerators) in the blob. */
  tail: number;
  vlen: number;
}

/** The .BTF section of a 64-bit little-endian ELF object, or undefined. */
export function btfSection(elf: Buffer): Buffer | undefined {
  if (elf.length < 64 || elf.readUInt32BE(0) !== 0x7f454c46 || elf[4] !== 2 || elf[5] !== 1) throw new BtfError('not a 64-bit little-endian ELF object');
  const shoff = Number(elf.readBigUInt64LE(0x28)), shentsize = elf.readUInt16LE(0x3a), shnum = elf.readUInt16LE(0x3c);
  const strOff = Number(elf.readBigUInt64LE(shoff + elf.readUInt16LE(0x3e) * shentsize + 24));
  for (let i = 0; i < shnum; i++) {
    const o = shoff + i * shentsize;
    const nameAt = strOff + elf.readUInt32LE(o);
    if (elf.toString('latin1', nameAt, elf.indexOf(0, nameAt)) !== '.BTF') continue;
    const off = Number(elf.readBigUInt64LE(o + 24));
    return elf.subarray(off, off + Number(elf.readBigUInt64LE(o + 32)));
  }
  return undefined;
}

function btfTypes(b: Buffer): { types: BtfType[]; str: (off: number) => string } {
  if (b.length < 24 || b.readUInt16LE(0) !== BTF_MAGIC) throw new BtfError('not a little-endian BTF blob');
  const hdrLen = b.readUInt32LE(4);
  const typeOff = hdrLen + b.readUInt32LE(8), typeLen = b.readUInt32LE(12);
  const strOff = hdrLen + b.readUInt32LE(16);
  const str = (off: number): string => b.toString('latin1', strOff + off, b.indexOf(0, strOff + off));
  const types: BtfType[] = [{ kind: 0, name: '', sizeOrType: 0, kindFlag: false, tail: 0, vlen: 0 }]; // id 0: void
  for (let o = typeOff; o < typeOff + typeLen;) {
    const info = b.readUInt32LE(o + 4);
    const kind = (info >>> 24) & 0x1f, vlen = info & 0xffff;
    types.push({ kind, name: str(b.readUInt32LE(o)), sizeOrType: b.readUInt32LE(o + 8), kindFlag: info >>> 31 === 1, tail: o + 12, vlen });
    o += 12 + tailSize(kind, vlen);
  }
  return { types, str };
}

/** The enums and structs struct twill_abi's members name, from an object's .BTF blob. */
export function parseAbi(btf: Buffer): Abi {
  const { types, str } = btfTypes(btf);
  const anchor = types.find((t) => t.kind === KIND.STRUCT && t.name === ABI_ANCHOR);
  if (!anchor) throw new BtfError(`the object's BTF has no struct ${ABI_ANCHOR}`);
  const resolve = (id: number): BtfType => {
    let t = types[id];
    for (let hops = 0; t && MODIFIERS.has(t.kind) && hops < 16; hops++) t = types[t.sizeOrType];
    if (!t) throw new BtfError(`BTF type ${id} does not exist`);
    return t;
  };
  const abi: Abi = { enums: [], structs: [] };
  for (let i = 0; i < anchor.vlen; i++) {
    const m = anchor.tail + i * 12;
    const t = resolve(btf.readUInt32LE(m + 4));
    if (t.kind === KIND.ENUM || t.kind === KIND.ENUM64) {
      const step = t.kind === KIND.ENUM ? 8 : 12;
      const values = Array.from({ length: t.vlen }, (_, j) => {
        const e = t.tail + j * step;
        const value = t.kind === KIND.ENUM ? btf.readInt32LE(e + 4) : Number((BigInt(btf.readUInt32LE(e + 8)) << 32n) | BigInt(btf.readUInt32LE(e + 4)));
        return { name: str(btf.readUInt32LE(e)), value };
      });
      abi.enums.push({ name: t.name, values });
    } else if (t.kind === KIND.STRUCT) {
      const offsets = Array.from({ length: t.vlen }, (_, j) => {
        const e = t.tail + j * 12;
        const bits = btf.readUInt32LE(e + 8);
        return { name: str(btf.readUInt32LE(e)), offset: (t.kindFlag ? bits & 0xffffff : bits) / 8 };
      });
      abi.structs.push({ name: t.name, size: t.sizeOrType, offsets });
    } else {
      throw new BtfError(`struct ${ABI_ANCHOR} member ${str(btf.readUInt32LE(m))} is neither an enum nor a struct`);
    }
  }
  return abi;
}

const hex = (n: number): string => `0x${n.toString(16)}`;

/** abi.generated.ts: every enumerator as a constant, every struct as its size and offsets. */
export function abiSource(abi: Abi, from: string): string {
  const out = [
    `// Generated from ${from}'s BTF by tools/build/gen-abi.ts (\`make abi\`): do not edit.`,
    '// The definitions are C\'s, in bpf/twill_maps.h; a unit test fails when this file is stale.',
    '',
  ];
  for (const e of abi.enums) {
    out.push(`// enum ${e.name}`);
    for (const v of e.values) out.push(`export const ${v.name} = ${/(flags|marker)$/.test(e.name) ? hex(v.value) : String(v.value)};`);
    out.push('');
  }
  out.push('/** Byte size and member offsets of each map key and value (and event) struct. */');
  out.push('export const LAYOUTS = {');
  for (const s of abi.structs) {
    out.push(`  ${s.name}: { size: ${s.size}, offsets: { ${s.offsets.map((o) => `${o.name}: ${o.offset}`).join(', ')} } },`);
  }
  out.push('} as const;');
  out.push('');
  return out.join('\n');
}

/** The generated module's text for an object's bytes. */
export function abiSourceOf(object: Buffer, from: string): string {
  const btf = btfSection(object);
  if (!btf) throw new BtfError(`${from} has no .BTF section: build it with -g`);
  return abiSource(parseAbi(btf), from);
}
