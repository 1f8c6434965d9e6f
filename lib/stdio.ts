// stdout and stderr written with write(2) directly: touching process.stdout builds a stream
// (and for a pipe, all of net), which costs a CNI call milliseconds for one line of output.
// stdin read with read(2) the same way.
import { readSync, writeSync } from './sys/fs.js';

/** The build's warm-up run (tools/build/warm-cache.cjs) hands the program files instead of 0/1. */
interface IoOverride {
  stdin?: number;
  stdout?: number;
}
const override = (): IoOverride => (globalThis as { __twillIo?: IoOverride }).__twillIo ?? {};

function writeAll(fd: number, s: string): void {
  const buf = Buffer.from(s);
  for (let off = 0; off < buf.length; ) {
    try {
      off += writeSync(fd, buf, off);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
    }
  }
}

export const stdinFd = (): number => override().stdin ?? 0;
/** One read(2) of stdin into buf (lib/cni/stdin.ts reads it whole). */
export const readIn = (buf: Buffer): number => readSync(stdinFd(), buf, 0, buf.length, null);
export const writeOut = (s: string): void => writeAll(override().stdout ?? 1, s);
export function writeErr(s: string): void {
  try {
    writeAll(2, s);
  } catch {
    // nowhere left to report to
  }
}
