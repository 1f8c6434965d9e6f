// The consumer side of a BPF ring buffer (BPF_MAP_TYPE_RINGBUF): the consumer position page
// mapped writable, the producer position and the data (mapped twice in a row by the kernel,
// so a record that wraps reads as one) read-only. Polled: the programs ask for no wakeup.
import { check, libc, pageSize } from '../sys/libc.js';
import { native } from '../sys/native.js';
import { objInfo } from './sys.js';

const PROT_READ = 1, PROT_WRITE = 2, MAP_SHARED = 1;
const BUSY = 0x80000000, DISCARD = 0x40000000, HDR = 8;

function map(len: number, prot: number, fd: number, offset: number): { ptr: number; view: DataView } {
  const ptr = check('mmap ring buffer', libc().mmap(null, len, prot, MAP_SHARED, fd, offset));
  return { ptr, view: new DataView(native().view(ptr, len)) };
}

export class RingReader {
  private readonly page: number;
  private readonly size: number;
  private readonly cons: { ptr: number; view: DataView };
  private readonly prod: { ptr: number; view: DataView };

  constructor(fd: number) {
    this.size = objInfo(fd).readUInt32LE(16); // bpf_map_info.max_entries: the data size
    this.page = pageSize();
    this.cons = map(this.page, PROT_READ | PROT_WRITE, fd, 0);
    try {
      this.prod = map(this.page + 2 * this.size, PROT_READ, fd, this.page);
    } catch (e) {
      libc().munmap(this.cons.ptr, this.page);
      throw e;
    }
  }

  /** Hands every complete record to fn (a copy), frees its space; returns how many. */
  drain(fn: (rec: Buffer) => void): number {
    const cv = this.cons.view, pv = this.prod.view;
    let cons = cv.getBigUint64(0, true);
    const prod = pv.getBigUint64(0, true);
    const mask = BigInt(this.size - 1);
    let n = 0;
    while (cons < prod) {
      const off = this.page + Number(cons & mask);
      const hdr = pv.getUint32(off, true);
      if (hdr & BUSY) break; // reserved, not yet submitted
      const len = hdr & ~(BUSY | DISCARD);
      if (!(hdr & DISCARD)) {
        fn(Buffer.from(new Uint8Array(pv.buffer, off + HDR, len)));
        n++;
      }
      cons += BigInt((len + HDR + 7) & ~7);
      cv.setBigUint64(0, cons, true);
    }
    return n;
  }

  close(): void {
    libc().munmap(this.prod.ptr, this.page + 2 * this.size);
    libc().munmap(this.cons.ptr, this.page);
  }
}
