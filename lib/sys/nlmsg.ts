// rtnetlink message encoding and decoding: plain bytes, no I/O.

export const NLM_F_REQUEST = 0x1;
export const NLM_F_MULTI = 0x2;
export const NLM_F_ACK = 0x4;
export const NLM_F_DUMP = 0x300;
export const NLM_F_REPLACE = 0x100;
export const NLM_F_EXCL = 0x200;
export const NLM_F_CREATE = 0x400;
export const NLM_F_DUMP_INTR = 0x10;
export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;
export const NLA_F_NESTED = 0x8000;

const align = (n: number): number => (n + 3) & ~3;

/** One netlink attribute; nested attributes are given as arrays. */
export type Attr = [type: number, value: Buffer | Attr[]];

export function encodeAttrs(attrs: readonly Attr[]): Buffer {
  const parts: Buffer[] = [];
  for (const [type, value] of attrs) {
    const body = Array.isArray(value) ? encodeAttrs(value) : value;
    const hdr = Buffer.alloc(4);
    hdr.writeUInt16LE(4 + body.length, 0);
    hdr.writeUInt16LE(Array.isArray(value) ? type | NLA_F_NESTED : type, 2);
    parts.push(hdr, body, Buffer.alloc(align(body.length) - body.length));
  }
  return Buffer.concat(parts);
}

export function decodeAttrs(buf: Buffer): Map<number, Buffer> {
  const out = new Map<number, Buffer>();
  for (let off = 0; off + 4 <= buf.length; ) {
    const len = buf.readUInt16LE(off);
    const type = buf.readUInt16LE(off + 2) & ~NLA_F_NESTED;
    if (len < 4 || off + len > buf.length) break;
    if (!out.has(type)) out.set(type, buf.subarray(off + 4, off + len));
    off += align(len);
  }
  return out;
}

export function message(type: number, flags: number, seq: number, body: Buffer): Buffer {
  const hdr = Buffer.alloc(16);
  hdr.writeUInt32LE(16 + body.length, 0);
  hdr.writeUInt16LE(type, 4);
  hdr.writeUInt16LE(flags, 6);
  hdr.writeUInt32LE(seq, 8);
  return Buffer.concat([hdr, body]);
}

export interface RawMessage {
  type: number;
  flags: number;
  seq: number;
  body: Buffer;
}

export function* splitMessages(buf: Buffer): Generator<RawMessage> {
  for (let off = 0; off + 16 <= buf.length; ) {
    const len = buf.readUInt32LE(off);
    if (len < 16 || off + len > buf.length) return;
    yield { type: buf.readUInt16LE(off + 4), flags: buf.readUInt16LE(off + 6), seq: buf.readUInt32LE(off + 8), body: buf.subarray(off + 16, off + len) };
    off += align(len);
  }
}

export const u8 = (v: number): Buffer => Buffer.from([v & 0xff]);
export function u32(v: number): Buffer { const b = Buffer.alloc(4); b.writeUInt32LE(v >>> 0); return b; }
export function i32(v: number): Buffer { const b = Buffer.alloc(4); b.writeInt32LE(v); return b; }
export const str = (s: string): Buffer => Buffer.from(`${s}\0`);
export const cstr = (b: Buffer | undefined): string => (b ? b.toString('utf8').replace(/\0.*$/s, '') : '');
