// Address arithmetic on bigints. Formatting must be byte-identical to Go's net.IP.String():
// the reference host-local names its reservation files that way, and we share its store.

export type Family = 4 | 6;

export interface Addr {
  readonly family: Family;
  readonly value: bigint;
}

export interface Cidr {
  readonly addr: Addr;
  readonly prefix: number;
}

export const bits = (f: Family): number => (f === 4 ? 32 : 128);
const maxOf = (f: Family): bigint => (1n << BigInt(bits(f))) - 1n;

const V4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

function parseV4(s: string): bigint | undefined {
  if (!V4.test(s)) return undefined;
  return s.split('.').reduce((acc, p) => (acc << 8n) | BigInt(Number(p)), 0n);
}

function parseV6(s: string): bigint | undefined {
  if (s.length > 45 || !/^[0-9a-fA-F:.]+$/.test(s)) return undefined;
  let tail4: bigint | undefined;
  let text = s;
  const lastColon = s.lastIndexOf(':');
  if (s.includes('.')) {
    tail4 = parseV4(s.slice(lastColon + 1));
    if (tail4 === undefined) return undefined;
    text = s.slice(0, lastColon + 1) + '0:0';
  }
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const group = (h: string): string[] => (h === '' ? [] : h.split(':'));
  const head = group(halves[0]!);
  const tail = halves.length === 2 ? group(halves[1]!) : [];
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined;
  const groups = [...head, ...Array<string>(halves.length === 2 ? missing : 0).fill('0'), ...tail];
  let v = 0n;
  for (const g of groups) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
    v = (v << 16n) | BigInt(parseInt(g, 16));
  }
  if (tail4 !== undefined) v = (v & ~0xffffffffn) | tail4;
  return v;
}

export function parseAddr(s: string): Addr | undefined {
  const v4 = parseV4(s);
  if (v4 !== undefined) return { family: 4, value: v4 };
  const v6 = s.includes(':') ? parseV6(s) : undefined;
  return v6 === undefined ? undefined : { family: 6, value: v6 };
}

/** "10.0.0.5/24" → address with its prefix, host bits kept. */
export function parseCidr(s: string): Cidr | undefined {
  const slash = s.indexOf('/');
  if (slash < 0) return undefined;
  const addr = parseAddr(s.slice(0, slash));
  const p = s.slice(slash + 1);
  if (!addr || !/^\d{1,3}$/.test(p)) return undefined;
  const prefix = Number(p);
  return prefix > bits(addr.family) ? undefined : { addr, prefix };
}

export function formatAddr(a: Addr): string {
  if (a.family === 4) {
    const v = Number(a.value);
    return [v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255].join('.');
  }
  // IPv4-mapped addresses in RFC 5952's mixed notation, as Go's netip does: ::ffff:10.1.2.3.
  if (a.value >> 32n === 0xffffn) return `::ffff:${formatAddr({ family: 4, value: a.value & 0xffffffffn })}`;
  const g: number[] = [];
  for (let i = 7; i >= 0; i--) g.push(Number((a.value >> BigInt(i * 16)) & 0xffffn));
  // RFC 5952 as Go does it: compress the first longest run of two or more zero groups.
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) { best = i; bestLen = j - i; }
    i = j;
  }
  const hex = (xs: number[]): string => xs.map((x) => x.toString(16)).join(':');
  if (best < 0) return hex(g);
  return `${hex(g.slice(0, best))}::${hex(g.slice(best + bestLen))}`;
}

export const formatCidr = (c: Cidr): string => `${formatAddr(c.addr)}/${c.prefix}`;

export function mask(f: Family, prefix: number): bigint {
  return maxOf(f) ^ ((1n << BigInt(bits(f) - prefix)) - 1n);
}

export function network(c: Cidr): Cidr {
  return { addr: { family: c.addr.family, value: c.addr.value & mask(c.addr.family, c.prefix) }, prefix: c.prefix };
}

export function lastAddr(c: Cidr): Addr {
  const f = c.addr.family;
  return { family: f, value: (c.addr.value & mask(f, c.prefix)) | (maxOf(f) ^ mask(f, c.prefix)) };
}

export function contains(c: Cidr, a: Addr): boolean {
  return a.family === c.addr.family && (a.value & mask(a.family, c.prefix)) === (c.addr.value & mask(a.family, c.prefix));
}

export const offset = (a: Addr, n: bigint): Addr => ({ family: a.family, value: a.value + n });
export const sameAddr = (a: Addr, b: Addr): boolean => a.family === b.family && a.value === b.value;

export function overlaps(a: Cidr, b: Cidr): boolean {
  return contains(a, b.addr) || contains(b, a.addr);
}

/** Big-endian bytes, as netlink wants them. */
export function addrBytes(a: Addr): Buffer {
  const n = a.family === 4 ? 4 : 16;
  const b = Buffer.alloc(n);
  let v = a.value;
  for (let i = n - 1; i >= 0; i--) { b[i] = Number(v & 0xffn); v >>= 8n; }
  return b;
}

export function addrFromBytes(b: Buffer): Addr {
  let v = 0n;
  for (const x of b) v = (v << 8n) | BigInt(x);
  return { family: b.length === 4 ? 4 : 6, value: v };
}
