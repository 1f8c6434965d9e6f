// The file-system calls of every layer. Under Bun, system calls (fs-syscalls.ts): Bun's node:fs
// is a JavaScript module compiled from source on its first require, which cost each CNI call
// ~3 MB of peak RSS and the time to touch it, for a dozen system calls. Under Node, node:fs
// itself: Node's own start-up has loaded it already, and the FFI (which a failure to load it
// must still be able to report through stderr) is not needed to write a line.
import * as calls from './fs-syscalls.js';

type Fs = typeof calls;
const impl: Fs = process.versions.bun === undefined ? (process.getBuiltinModule('node:fs') as unknown as Fs) : calls;

export const {
  accessSync, chmodSync, closeSync, constants, copyFileSync, existsSync, fstatSync, fsyncSync, linkSync, lstatSync, mkdirSync,
  openSync, readdirSync, readFileSync, readSync, renameSync, rmdirSync, rmSync, statSync, unlinkSync, writeFileSync, writeSync,
} = impl;
