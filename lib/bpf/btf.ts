// The running kernel's BTF (/sys/kernel/btf/vmlinux): just enough to resolve the ids of the
// kfuncs a program calls and the offset of a struct member it reads. Read once per load.
import { readFileSync } from '../sys/fs.js';
import { mkdirs, writeAtomic } from '../fsx.js';
import { bootId } from '../sys/boot.js';
import { BTF_MAGIC, BtfError, Kind, tailSize } from './btf-types.js';

const KIND_STRUCT = Kind.Struct, KIND_UNION = Kind.Union, KIND_FUNC = Kind.Func;

export interface KernelBtf {
  /** BTF id of the kernel function name (a kfunc), or undefined. */
  funcId(name: string): number | undefined;
  /** Byte offset of member in struct, or undefined. */
  memberOffset(struct: string, member: string): number | undefined;
}

export { BtfError };

export function parseBtf(b: Buffer): KernelBtf {
  if (b.length < 24 || b.readUInt16LE(0) !== BTF_MAGIC) throw new BtfError('not a little-endian BTF blob');
  const hdrLen = b.readUInt32LE(4);
  const typeOff = hdrLen + b.readUInt32LE(8), typeLen = b.readUInt32LE(12);
  const strOff = hdrLen + b.readUInt32LE(16);
  const name = (off: number): string => b.toString('latin1', strOff + off, b.indexOf(0, strOff + off));
  const funcs = new Map<string, number>();
  const structs = new Map<string, number>(); // name → byte offset of the type header
  const at: number[] = []; // type id → byte offset of its header
  let id = 1;
  for (let o = typeOff; o < typeOff + typeLen; id++) {
    at[id] = o;
    const info = b.readUInt32LE(o + 4);
    const kind = (info >>> 24) & 0x1f, vlen = info & 0xffff;
    if (kind === KIND_FUNC || kind === KIND_STRUCT) {
      const n = b.readUInt32LE(o);
      if (n !== 0) {
        const s = name(n);
        if (kind === KIND_FUNC) funcs.set(s, id);
        else if (!structs.has(s)) structs.set(s, o);
      }
    }
    o += 12 + tailSize(kind, vlen);
  }
  // A member may sit in an anonymous struct or union (sock_common's skc_daddr does): searched through, offsets added.
  const find = (o: number, member: string): number | undefined => {
    const info = b.readUInt32LE(o + 4);
    const bitfields = (info >>> 31) === 1;
    for (let i = 0; i < (info & 0xffff); i++) {
      const m = o + 12 + i * 12;
      const bits = b.readUInt32LE(m + 8);
      const off = (bitfields ? bits & 0xffffff : bits) / 8;
      if (b.readUInt32LE(m) !== 0) {
        if (name(b.readUInt32LE(m)) === member) return off;
        continue;
      }
      const t = at[b.readUInt32LE(m + 4)];
      const kind = t === undefined ? 0 : (b.readUInt32LE(t + 4) >>> 24) & 0x1f;
      if (t === undefined || (kind !== KIND_STRUCT && kind !== KIND_UNION)) continue;
      const inner = find(t, member);
      if (inner !== undefined) return off + inner;
    }
    return undefined;
  };
  return {
    funcId: (n) => funcs.get(n),
    memberOffset: (struct, member) => {
      const o = structs.get(struct);
      return o === undefined ? undefined : find(o, member);
    },
  };
}

let vmlinux: KernelBtf | undefined;
export function kernelBtf(path = '/sys/kernel/btf/vmlinux'): KernelBtf {
  if (!vmlinux) {
    let bytes: Buffer;
    try {
      bytes = readFileSync(path);
    } catch (e) {
      throw new BtfError(`kernel BTF unavailable (${path}): ${(e as Error).message}`);
    }
    vmlinux = parseBtf(bytes);
  }
  return vmlinux;
}

/** What a program needs from the kernel's BTF: kfunc ids and struct member offsets. */
export interface KernelFacts {
  funcs: Record<string, number>;
  fields: Record<string, number>;
}

/**
 * The ids and offsets a program needs, cached per boot under cacheDir: parsing vmlinux's BTF
 * (5 MB) takes ~80 ms, and a network whose last pod left loads its program again on the next
 * ADD. The kernel cannot change within a boot, so neither can these.
 */
export function kernelFacts(funcs: string[], fields: [string, string][], cacheDir = '/run/twill'): KernelFacts {
  const cache = `${cacheDir}/btf-facts.json`;
  const boot = bootId();
  try {
    const c = JSON.parse(readFileSync(cache, 'utf8')) as KernelFacts & { bootId: string };
    if (c.bootId === boot && funcs.every((f) => f in c.funcs) && fields.every(([s, m]) => `${s}.${m}` in c.fields)) return c;
  } catch {
    // no cache yet (or from another boot): parse
  }
  const btf = kernelBtf();
  const out: KernelFacts = { funcs: {}, fields: {} };
  for (const f of funcs) {
    const id = btf.funcId(f);
    if (id === undefined) throw new BtfError(`the kernel has no kfunc ${f}`);
    out.funcs[f] = id;
  }
  for (const [s, m] of fields) {
    const off = btf.memberOffset(s, m);
    if (off === undefined) throw new BtfError(`the kernel BTF has no ${s}.${m}`);
    out.fields[`${s}.${m}`] = off;
  }
  if (boot) {
    try {
      mkdirs(cacheDir, 0o700);
      writeAtomic(cache, `${JSON.stringify({ bootId: boot, ...out })}\n`);
    } catch {
      // a cache that cannot be written costs the next load a parse, nothing more
    }
  }
  return out;
}
