// A port range as the fewest prefix-aligned blocks (what an LPM trie can hold): 1-65535 is
// 16 blocks, any single port one, a range at most 30.

export interface PortBlock {
  port: number;
  /** Leading bits of the port that must match: 16 for one port. */
  bits: number;
}

export function portBlocks(from: number, to: number): PortBlock[] {
  const out: PortBlock[] = [];
  let p = from;
  while (p <= to) {
    let size = 1;
    let bits = 16;
    // Grow the block while it stays aligned and inside the range.
    while (bits > 0 && p % (size * 2) === 0 && p + size * 2 - 1 <= to) {
      size *= 2;
      bits--;
    }
    out.push({ port: p, bits });
    p += size;
  }
  return out;
}
