// The ABI the tc object shares with its loader and readers, read from the object's BTF: the
// constants (C enums) and the layouts of the map keys and values that bpf/twill_maps.h
// gathers in struct twill_abi. C is their one definition; abiSource() renders them as the
// TypeScript module lib/bpf/abi.generated.ts (tools/build/gen-abi.ts writes it).
import { BtfError, Kind, ObjectBtf } from './btf-types.js';
import { sectionBytes } from './elf.js';

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

/** The .BTF section of a 64-bit little-endian ELF object, or undefined. */
export function btfSection(elf: Buffer): Buffer | undefined {
  try {
    return sectionBytes(elf, '.BTF');
  } catch (e) {
    throw new BtfError((e as Error).message);
  }
}

/** The enums and structs struct twill_abi's members name, from an object's .BTF blob. */
export function parseAbi(btf: Buffer): Abi {
  const types = new ObjectBtf(btf);
  const anchor = types.find(Kind.Struct, ABI_ANCHOR);
  if (!anchor) throw new BtfError(`the object's BTF has no struct ${ABI_ANCHOR}`);
  const abi: Abi = { enums: [], structs: [] };
  for (const m of types.members(anchor)) {
    const t = types.resolve(m.type);
    if (t.kind === Kind.Enum || t.kind === Kind.Enum64) abi.enums.push({ name: t.name, values: types.enumerators(t) });
    else if (t.kind === Kind.Struct) abi.structs.push({ name: t.name, size: t.sizeOrType, offsets: types.members(t).map(({ name, offset }) => ({ name, offset })) });
    else throw new BtfError(`struct ${ABI_ANCHOR} member ${m.name} is neither an enum nor a struct`);
  }
  return abi;
}

const hex = (n: number): string => `0x${n.toString(16)}`;

/** abi.generated.ts: every enumerator as a constant, every struct as its size and offsets. */
export function abiSource(abi: Abi, from: string, defs = 'bpf/twill_maps.h'): string {
  const out = [
    `// Generated from ${from}'s BTF by tools/build/gen-abi.ts (\`make abi\`): do not edit.`,
    `// The definitions are C's, in ${defs}; a unit test fails when this file is stale.`,
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
export function abiSourceOf(object: Buffer, from: string, defs?: string): string {
  const btf = btfSection(object);
  if (!btf) throw new BtfError(`${from} has no .BTF section: build it with -g`);
  return abiSource(parseAbi(btf), from, defs);
}
