// bpf(2): the commands twill uses, with their attribute layouts (union bpf_attr).
import { readFileSync } from '../sys/fs.js';
import { check, ENOENT, errnoName, libc, SysError } from '../sys/libc.js';
import { native } from '../sys/native.js';

const ATTR_SIZE = 160; // larger than every layout used; the kernel requires the tail to be zero

const Cmd = {
  MapCreate: 0, MapLookup: 1, MapUpdate: 2, MapDelete: 3, MapNextKey: 4, ProgLoad: 5, ObjPin: 6, ObjGet: 7,
  ObjInfo: 15, LinkCreate: 28, LinkUpdate: 29,
} as const;

export const MapType = { Hash: 1, Array: 2, PercpuHash: 5, LruHash: 9 } as const;
export const ProgType = { SchedCls: 3 } as const;
export const AttachType = { TcxIngress: 46, TcxEgress: 47 } as const;
export const BPF_ANY = 0;
export const BPF_NOEXIST = 1;

const ptr = (b: Buffer): bigint => native().address(b);

function bpf(name: string, cmd: number, attr: Buffer): number {
  return check(name, libc().bpf(cmd, attr, attr.length));
}

const attr = (): Buffer => Buffer.alloc(ATTR_SIZE);

export interface MapDef {
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
}

export function mapCreate(name: string, d: MapDef): number {
  const a = attr();
  a.writeUInt32LE(d.type, 0);
  a.writeUInt32LE(d.keySize, 4);
  a.writeUInt32LE(d.valueSize, 8);
  a.writeUInt32LE(d.maxEntries, 12);
  a.writeUInt32LE(d.flags, 16);
  a.write(name.slice(0, 15), 28, 'latin1');
  return bpf(`create map ${name}`, Cmd.MapCreate, a);
}

function elemAttr(fd: number, key: Buffer, value: Buffer | undefined, flags: number): Buffer {
  const a = attr();
  a.writeUInt32LE(fd, 0);
  a.writeBigUInt64LE(ptr(key), 8);
  if (value) a.writeBigUInt64LE(ptr(value), 16);
  a.writeBigUInt64LE(BigInt(flags), 24);
  return a;
}

export function mapUpdate(fd: number, key: Buffer, value: Buffer, flags = BPF_ANY): void {
  bpf('map update', Cmd.MapUpdate, elemAttr(fd, key, value, flags));
}

/** Runs a bpf(2) command whose ENOENT means "absent": true when it succeeded. */
function unlessAbsent(name: string, cmd: number, a: Buffer): boolean {
  try {
    bpf(name, cmd, a);
    return true;
  } catch (e) {
    if (e instanceof SysError && e.errno === ENOENT) return false;
    throw e;
  }
}

/** Fills value and returns true, or false when the key is absent. */
export const mapLookup = (fd: number, key: Buffer, value: Buffer): boolean => unlessAbsent('map lookup', Cmd.MapLookup, elemAttr(fd, key, value, 0));
export const mapDelete = (fd: number, key: Buffer): boolean => unlessAbsent('map delete', Cmd.MapDelete, elemAttr(fd, key, undefined, 0));

export function* mapKeys(fd: number, keySize: number): Generator<Buffer> {
  let prev: Buffer | undefined;
  for (;;) {
    const next = Buffer.alloc(keySize);
    const a = attr();
    a.writeUInt32LE(fd, 0);
    if (prev) a.writeBigUInt64LE(ptr(prev), 8);
    a.writeBigUInt64LE(ptr(next), 16);
    if (!unlessAbsent('map next key', Cmd.MapNextKey, a)) return;
    yield next;
    prev = next;
  }
}

/** A program the verifier refused; the message ends with the tail of its log. */
export class VerifierError extends Error {
  constructor(message: string, readonly errno: number) {
    super(message);
  }
}

const ENOSPC = 28;
const LOG_LEVEL1 = 1;
const LOG_FIRST = 1 << 20;
// The kernel refuses a log_size above UINT_MAX >> 2; past 256 MiB the tail is reported as is.
const LOG_MAX = 1 << 28;

function loadOnce(name: string, type: number, insns: Buffer, license: string, log?: Buffer): number {
  const a = attr();
  const lic = Buffer.from(`${license}\0`);
  a.writeUInt32LE(type, 0);
  a.writeUInt32LE(insns.length / 8, 4);
  a.writeBigUInt64LE(ptr(insns), 8);
  a.writeBigUInt64LE(ptr(lic), 16);
  if (log) {
    a.writeUInt32LE(LOG_LEVEL1, 24);
    a.writeUInt32LE(log.length, 28);
    a.writeBigUInt64LE(ptr(log), 32);
  }
  a.write(name.slice(0, 15), 48, 'latin1');
  try {
    return bpf(`program ${name} load`, Cmd.ProgLoad, a);
  } finally {
    lic.length; // keep the license alive across the call
  }
}

/**
 * Loads a program without a verifier log: a log at level 1 costs the verifier time and, when it
 * overflows its buffer, fails a valid program (ENOSPC). Only a failure loads again with a log,
 * grown until it fits, to report the verifier's reason.
 */
export function progLoad(name: string, type: number, insns: Buffer, license: string): number {
  let first: SysError;
  try {
    return loadOnce(name, type, insns, license);
  } catch (e) {
    if (!(e instanceof SysError)) throw e;
    first = e;
  }
  for (let size = LOG_FIRST; ; size *= 4) {
    const log = Buffer.alloc(size);
    try {
      // A failure that does not repeat (memory the kernel lacked a moment ago): the program loads.
      return loadOnce(name, type, insns, license, log);
    } catch (e) {
      if (!(e instanceof SysError)) throw e;
      if (e.errno === ENOSPC && size < LOG_MAX) continue;
      const text = log.toString('utf8').replace(/\0.*$/s, '').trim();
      if (!text) throw first;
      throw new VerifierError(`program ${name} load: ${errnoName(first.errno)}: ${text.split('\n').slice(-20).join('\n')}`, first.errno);
    }
  }
}

function pathAttr(path: string, fd = 0): { a: Buffer; p: Buffer } {
  const a = attr();
  const p = Buffer.from(`${path}\0`);
  a.writeBigUInt64LE(ptr(p), 0);
  a.writeUInt32LE(fd, 8);
  return { a, p };
}

export function objPin(fd: number, path: string): void {
  const { a, p } = pathAttr(path, fd);
  bpf(`pin ${path}`, Cmd.ObjPin, a);
  p.length; // keep the path alive across the call
}

/** Opens a pinned object; undefined when nothing is pinned there. */
export function objGet(path: string): number | undefined {
  const { a, p } = pathAttr(path);
  try {
    return bpf(`open pinned ${path}`, Cmd.ObjGet, a);
  } catch (e) {
    if (e instanceof SysError && e.errno === ENOENT) return undefined;
    throw e;
  } finally {
    p.length;
  }
}

/** Raw bpf_{map,prog,link}_info of an fd. */
export function objInfo(fd: number, size = 128): Buffer {
  const info = Buffer.alloc(size);
  const a = attr();
  a.writeUInt32LE(fd, 0);
  a.writeUInt32LE(size, 4);
  a.writeBigUInt64LE(ptr(info), 8);
  bpf('object info', Cmd.ObjInfo, a);
  return info;
}

export function linkCreateTcx(progFd: number, ifindex: number, attachType: number): number {
  const a = attr();
  a.writeUInt32LE(progFd, 0);
  a.writeUInt32LE(ifindex, 4);
  a.writeUInt32LE(attachType, 8);
  return bpf(`tcx attach to ifindex ${ifindex}`, Cmd.LinkCreate, a);
}

export function linkUpdate(linkFd: number, progFd: number): void {
  const a = attr();
  a.writeUInt32LE(linkFd, 0);
  a.writeUInt32LE(progFd, 4);
  bpf('link update', Cmd.LinkUpdate, a);
}

/** The memory the kernel charges a map (its fdinfo "memlock", what `bpftool map list` prints). */
export function mapMemlock(fd: number): number {
  const m = /^memlock:\s+(\d+)/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'));
  return m ? Number(m[1]) : 0;
}

export function closeFd(fd: number): void {
  libc().close(fd);
}

let cpus: number | undefined;
/** Possible CPUs: the value multiplier of per-CPU maps. */
export function possibleCpus(): number {
  if (cpus !== undefined) return cpus;
  const text = readFileSync('/sys/devices/system/cpu/possible', 'utf8').trim();
  cpus = text.split(',').reduce((n, part) => {
    const [a, b] = part.split('-').map(Number);
    return n + (b === undefined ? 1 : b - a! + 1);
  }, 0);
  return cpus;
}
