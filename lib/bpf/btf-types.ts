// An object's own BTF (its .BTF section): the type table by id, enough to read what a
// BTF-defined map declares (type, key and value sizes, max_entries, flags) from its struct.
/** BTF that cannot be read, or lacks what is asked of it. */
export class BtfError extends Error {}

export const BTF_MAGIC = 0xeb9f;
export const Kind = {
  Int: 1, Ptr: 2, Array: 3, Struct: 4, Union: 5, Enum: 6, Fwd: 7, Typedef: 8, Volatile: 9, Const: 10, Restrict: 11,
  Func: 12, FuncProto: 13, Var: 14, Datasec: 15, Float: 16, DeclTag: 17, TypeTag: 18, Enum64: 19,
} as const;

/** Bytes that follow the 12-byte type header, per kind (include/uapi/linux/btf.h). */
export function tailSize(kind: number, vlen: number): number {
  switch (kind) {
    case Kind.Int: case Kind.Var: case Kind.DeclTag: return 4;
    case Kind.Array: return 12;
    case Kind.Struct: case Kind.Union: case Kind.Datasec: case Kind.Enum64: return vlen * 12;
    case Kind.Enum: case Kind.FuncProto: return vlen * 8;
    default: return 0;
  }
}

export interface BtfType {
  id: number;
  kind: number;
  name: string;
  /** size (INT, STRUCT, UNION, ENUM, DATASEC, FLOAT) or the referenced type id (PTR, TYPEDEF, VAR, …). */
  sizeOrType: number;
  vlen: number;
  /** Offset of the kind-specific tail in the blob. */
  tail: number;
}

export interface BtfMember {
  name: string;
  type: number;
  /** Byte offset (DATASEC: of the variable in its section). */
  offset: number;
  /** DATASEC only: the variable's size. */
  size?: number;
}

export class ObjectBtf {
  private readonly types: BtfType[] = [];
  private readonly strOff: number;

  constructor(private readonly b: Buffer) {
    if (b.length < 24 || b.readUInt16LE(0) !== BTF_MAGIC) throw new BtfError('not a little-endian BTF blob');
    const hdrLen = b.readUInt32LE(4);
    const typeOff = hdrLen + b.readUInt32LE(8), typeLen = b.readUInt32LE(12);
    this.strOff = hdrLen + b.readUInt32LE(16);
    let id = 1;
    for (let o = typeOff; o < typeOff + typeLen; id++) {
      const info = b.readUInt32LE(o + 4);
      const kind = (info >>> 24) & 0x1f, vlen = info & 0xffff;
      this.types[id] = { id, kind, name: this.str(b.readUInt32LE(o)), sizeOrType: b.readUInt32LE(o + 8), vlen, tail: o + 12 };
      o += 12 + tailSize(kind, vlen);
    }
  }

  private str(off: number): string {
    return this.b.toString('latin1', this.strOff + off, this.b.indexOf(0, this.strOff + off));
  }

  type(id: number): BtfType {
    const t = this.types[id];
    if (!t) throw new BtfError(`BTF has no type ${id}`);
    return t;
  }

  /** The DATASEC of that name (".maps", ".rodata", …), or undefined. */
  datasec(name: string): BtfType | undefined {
    return this.find(Kind.Datasec, name);
  }

  /** The type of that kind and name, or undefined. */
  find(kind: number, name: string): BtfType | undefined {
    return this.types.find((t) => t?.kind === kind && t.name === name);
  }

  /** An ENUM's or ENUM64's enumerators. */
  enumerators(t: BtfType): { name: string; value: number }[] {
    const b = this.b;
    if (t.kind === Kind.Enum) return Array.from({ length: t.vlen }, (_, j) => ({ name: this.str(b.readUInt32LE(t.tail + j * 8)), value: b.readInt32LE(t.tail + j * 8 + 4) }));
    if (t.kind !== Kind.Enum64) throw new BtfError(`BTF type ${t.id} is not an enum`);
    return Array.from({ length: t.vlen }, (_, j) => {
      const e = t.tail + j * 12;
      return { name: this.str(b.readUInt32LE(e)), value: Number((BigInt(b.readUInt32LE(e + 8)) << 32n) | BigInt(b.readUInt32LE(e + 4))) };
    });
  }

  /** Members of a STRUCT or UNION (byte offsets), or the variables of a DATASEC. */
  members(t: BtfType): BtfMember[] {
    const b = this.b;
    return Array.from({ length: t.vlen }, (_, i) => {
      const m = t.tail + i * 12;
      if (t.kind === Kind.Datasec) {
        const v = this.type(b.readUInt32LE(m));
        return { name: v.name, type: v.sizeOrType, offset: b.readUInt32LE(m + 4), size: b.readUInt32LE(m + 8) };
      }
      const bits = b.readUInt32LE(m + 8);
      const bitfields = (b.readUInt32LE(t.tail - 8) >>> 31) === 1;
      return { name: this.str(b.readUInt32LE(m)), type: b.readUInt32LE(m + 4), offset: (bitfields ? bits & 0xffffff : bits) / 8 };
    });
  }

  /** The type behind typedefs and qualifiers. */
  resolve(id: number): BtfType {
    let t = this.type(id);
    while (([Kind.Typedef, Kind.Volatile, Kind.Const, Kind.Restrict, Kind.TypeTag] as number[]).includes(t.kind)) t = this.type(t.sizeOrType);
    return t;
  }

  /** An ARRAY's element count and element type. */
  array(t: BtfType): { nelems: number; type: number } {
    if (t.kind !== Kind.Array) throw new BtfError(`BTF type ${t.id} is not an array`);
    return { type: this.b.readUInt32LE(t.tail), nelems: this.b.readUInt32LE(t.tail + 8) };
  }

  /** sizeof the type. */
  size(id: number): number {
    const t = this.resolve(id);
    switch (t.kind) {
      case Kind.Ptr: return 8;
      case Kind.Array: {
        const a = this.array(t);
        return a.nelems * this.size(a.type);
      }
      case Kind.Int: case Kind.Struct: case Kind.Union: case Kind.Enum: case Kind.Enum64: case Kind.Float: case Kind.Datasec: return t.sizeOrType;
      default: throw new BtfError(`BTF type ${t.id} (kind ${t.kind}) has no size`);
    }
  }
}
