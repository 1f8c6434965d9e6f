// BPF iterators (iter/udp, iter/tcp): a link of the program, an iterator opened from it, read to
// its end. The program runs once per object as the reads go; what it bpf_seq_write()s is the
// text read. A socket iterator walks only the network namespace its creator was in when
// BPF_ITER_CREATE ran, so one run serves one namespace.
import { readSync, statSync } from '../../sys/fs.js';
import { inNetns, openNetns } from '../../sys/netns.js';
import { closeFd, iterCreate, linkCreateIter } from '../sys.js';

const CHUNK = 1 << 16;

/** Reads fd until EOF. */
function readAll(fd: number): Buffer {
  const parts: Buffer[] = [];
  for (;;) {
    const b = Buffer.alloc(CHUNK);
    const n = readSync(fd, b, 0, CHUNK, null);
    if (n === 0) return Buffer.concat(parts);
    parts.push(b.subarray(0, n));
  }
}

/** netnsPath names the namespace the calling thread is in (entering it is needless, and openNetns refuses it). */
function isOwnNetns(netnsPath: string): boolean {
  const a = statSync(netnsPath), b = statSync('/proc/thread-self/ns/net');
  return a.ino === b.ino && a.dev === b.dev;
}

/**
 * Runs the iterator program progFd once over every object of its kind in netnsPath's network
 * namespace (default: the caller's own), and returns what the program wrote. The thread enters
 * the namespace only to create the iterator and is back in its own before the first read.
 */
export function runIterator(progFd: number, netnsPath?: string): Buffer {
  const link = linkCreateIter(progFd);
  try {
    let it: number;
    if (netnsPath === undefined || isOwnNetns(netnsPath)) it = iterCreate(link);
    else {
      const ns = openNetns(netnsPath);
      try {
        it = inNetns(ns, () => iterCreate(link));
      } finally {
        ns.close();
      }
    }
    try {
      return readAll(it);
    } finally {
      closeFd(it);
    }
  } finally {
    closeFd(link);
  }
}
