// Reads the whole of stdin synchronously, refusing more than a bound. The read itself is the
// caller's (lib/stdio.ts): the protocol layer makes no system call.
import { Code, CniError } from './errors.js';

/** read(2) on stdin into buf: the byte count, 0 at its end; an errno error as node:fs throws it. */
export type ReadIn = (buf: Buffer) => number;

export function readStdin(limit: number, read: ReadIn): string {
  const chunks: Buffer[] = [];
  let total = 0;
  const buf = Buffer.alloc(1 << 16);
  for (;;) {
    let n: number;
    try {
      n = read(buf);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EAGAIN') continue;
      if (code === 'EOF' || code === 'EBADF' || code === 'ENXIO') break;
      throw new CniError(Code.IoFailure, `reading stdin: ${(e as Error).message}`);
    }
    if (n === 0) break;
    total += n;
    if (total > limit) throw new CniError(Code.DecodeFailure, `network config on stdin is larger than ${limit} bytes`);
    chunks.push(Buffer.from(buf.subarray(0, n)));
  }
  return Buffer.concat(chunks).toString('utf8');
}
