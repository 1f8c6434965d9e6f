// Reads the whole of stdin synchronously, refusing more than a bound.
import { readSync } from '../sys/fs.js';
import { Code, CniError } from './errors.js';

export function readStdin(limit: number, fd = 0): string {
  const chunks: Buffer[] = [];
  let total = 0;
  const buf = Buffer.alloc(1 << 16);
  for (;;) {
    let n: number;
    try {
      n = readSync(fd, buf, 0, buf.length, null);
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
