// bpf(2): the commands twill uses, with their attribute layouts (union bpf_attr).
import { readFileSync } from '../sys/fs.js';
import { check, ENOENT, errnoName, libc, SysError } from '../sys/libc.js';
import { native } from '../sys/native.js';

const ATTR_SIZE = 160; // larger than every layout used; the kernel requires the tail to be zero

const Cmd = {
  MapCreate: 0, MapLookup: 1, MapUpdate: 2, MapDelete: 3, MapNextKey: 4, ProgLoad: 5, ObjPin: 6, ObjGet: 7,
  ProgTestRun: 10, ObjInfo: 15, MapFreeze: 22, MapLookupBatch: 24, MapUpdateBatch: 26, LinkCreate: 28, LinkUpdate: 29, IterCreate: 33, LinkDetach: 34,
} as const;

export const MapType = { Hash: 1, Array: 2, ProgArray: 3, PercpuHash: 5, PercpuArray: 6, LruHash: 9, LpmTrie: 11, RingBuf: 27 } as const;
export const ProgType = { SocketFilter: 1, SchedCls: 3, SchedAct: 4, CgroupSkb: 8, CgroupSock: 9, CgroupSockAddr: 18, Tracing: 26 } as const;
/** enum bpf_attach_type: the cgroup hooks a sock or sock_addr program is loaded for, and tcx. */
export const AttachType = {
  CgroupInetIngress: 0, CgroupInetEgress: 1, CgroupInetSockCreate: 2,
  CgroupInet4Bind: 8, CgroupInet6Bind: 9, CgroupInet4Connect: 10, CgroupInet6Connect: 11,
  CgroupInet4PostBind: 12, CgroupInet6PostBind: 13, CgroupUdp4Sendmsg: 14, CgroupUdp6Sendmsg: 15,
  CgroupUdp4Recvmsg: 19, CgroupUdp6Recvmsg: 20, CgroupInet4Getpeername: 29, CgroupInet6Getpeername: 30,
  CgroupInet4Getsockname: 31, CgroupInet6Getsockname: 32, CgroupInetSockRelease: 34,
  TraceIter: 28, TcxIngress: 46, TcxEgress: 47,
} as const;
/** Map flags (BPF_F_*) the loader sets itself. */
export const MapFlag = { NoPrealloc: 1, RdonlyProg: 1 << 7 } as const;
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
  return named(bpf(`map ${name} create`, Cmd.MapCreate, a), name);
}

/** The names of the maps this process opened through the loader: errors say `map policy update: ENOSPC`. */
const fdNames = new Map<number, string>();
/** Records fd's map name for error messages; returns fd. */
export function named(fd: number, name: string): number {
  fdNames.set(fd, name);
  return fd;
}
const mapLabel = (fd: number): string => {
  const n = fdNames.get(fd);
  return n === undefined ? 'map' : `map ${n}`;
};

function elemAttr(fd: number, key: Buffer, value: Buffer | undefined, flags: number): Buffer {
  const a = attr();
  a.writeUInt32LE(fd, 0);
  a.writeBigUInt64LE(ptr(key), 8);
  if (value) a.writeBigUInt64LE(ptr(value), 16);
  a.writeBigUInt64LE(BigInt(flags), 24);
  return a;
}

export function mapUpdate(fd: number, key: Buffer, value: Buffer, flags = BPF_ANY): void {
  bpf(`${mapLabel(fd)} update`, Cmd.MapUpdate, elemAttr(fd, key, value, flags));
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
export const mapLookup = (fd: number, key: Buffer, value: Buffer): boolean => unlessAbsent(`${mapLabel(fd)} lookup`, Cmd.MapLookup, elemAttr(fd, key, value, 0));
export const mapDelete = (fd: number, key: Buffer): boolean => unlessAbsent(`${mapLabel(fd)} delete`, Cmd.MapDelete, elemAttr(fd, key, undefined, 0));

export function* mapKeys(fd: number, keySize: number): Generator<Buffer> {
  let prev: Buffer | undefined;
  for (;;) {
    const next = Buffer.alloc(keySize);
    const a = attr();
    a.writeUInt32LE(fd, 0);
    if (prev) a.writeBigUInt64LE(ptr(prev), 8);
    a.writeBigUInt64LE(ptr(next), 16);
    if (!unlessAbsent(`${mapLabel(fd)} next key`, Cmd.MapNextKey, a)) return;
    yield next;
    prev = next;
  }
}

/**
 * Up to `max` entries from where `token` (4 bytes, zeroed for the start) says the last call
 * stopped, packed into keys and values; done when the map has no more. One syscall for what
 * BPF_MAP_GET_NEXT_KEY + LOOKUP take two per entry (arrays and hashes; a hash bucket larger
 * than max is ENOSPC).
 */
export function mapLookupBatch(fd: number, token: Buffer | undefined, out: Buffer, keys: Buffer, values: Buffer, max: number): { count: number; done: boolean } {
  const a = attr();
  if (token) a.writeBigUInt64LE(ptr(token), 0);
  a.writeBigUInt64LE(ptr(out), 8);
  a.writeBigUInt64LE(ptr(keys), 16);
  a.writeBigUInt64LE(ptr(values), 24);
  a.writeUInt32LE(max, 32);
  a.writeUInt32LE(fd, 36);
  const done = !unlessAbsent(`${mapLabel(fd)} lookup batch`, Cmd.MapLookupBatch, a);
  return { count: a.readUInt32LE(32), done };
}

/**
 * Writes count packed entries in one syscall, in order (the kernel walks them one by one: a
 * failure leaves the first ones written).
 */
export function mapUpdateBatch(fd: number, keys: Buffer, values: Buffer, count: number, flags = BPF_ANY): void {
  const a = attr();
  a.writeBigUInt64LE(ptr(keys), 16);
  a.writeBigUInt64LE(ptr(values), 24);
  a.writeUInt32LE(count, 32);
  a.writeUInt32LE(fd, 36);
  a.writeBigUInt64LE(BigInt(flags), 40);
  bpf(`${mapLabel(fd)} update batch`, Cmd.MapUpdateBatch, a);
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

export interface LoadOpts {
  /** expected_attach_type: required by cgroup sock_addr (which hook) and cgroup sock programs. */
  expectedAttachType?: number;
  /** attach_btf_id: a tracing program's target in vmlinux's BTF (an iterator: the FUNC bpf_iter_<target>). */
  attachBtfId?: number;
}

function loadOnce(name: string, type: number, insns: Buffer, license: string, opts: LoadOpts, log?: Buffer): number {
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
  if (opts.expectedAttachType !== undefined) a.writeUInt32LE(opts.expectedAttachType, 68);
  // attach_btf_obj_fd (112) stays 0: the target is in vmlinux, not a module or another program.
  if (opts.attachBtfId !== undefined) a.writeUInt32LE(opts.attachBtfId, 108);
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
export function progLoad(name: string, type: number, insns: Buffer, license: string, opts: LoadOpts = {}): number {
  let first: SysError;
  try {
    return loadOnce(name, type, insns, license, opts);
  } catch (e) {
    if (!(e instanceof SysError)) throw e;
    first = e;
  }
  for (let size = LOG_FIRST; ; size *= 4) {
    const log = Buffer.alloc(size);
    try {
      // A failure that does not repeat (memory the kernel lacked a moment ago): the program loads.
      return loadOnce(name, type, insns, license, opts, log);
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

/** A bpf_link of progFd on the cgroup v2 directory open as cgroupFd, for one cgroup hook. */
export function linkCreateCgroup(progFd: number, cgroupFd: number, attachType: number): number {
  const a = attr();
  a.writeUInt32LE(progFd, 0);
  a.writeUInt32LE(cgroupFd, 4);
  a.writeUInt32LE(attachType, 8);
  return bpf(`cgroup attach (type ${attachType})`, Cmd.LinkCreate, a);
}

/** A bpf_link of an iterator program (tcp, udp: no iterator parameters); BPF_ITER_CREATE opens runs of it. */
export function linkCreateIter(progFd: number): number {
  const a = attr();
  a.writeUInt32LE(progFd, 0);
  a.writeUInt32LE(AttachType.TraceIter, 8);
  return bpf('iterator link create', Cmd.LinkCreate, a);
}

/** BPF_ITER_CREATE: a readable fd; each read runs the program over the next objects of the creator's namespace. */
export function iterCreate(linkFd: number): number {
  const a = attr();
  a.writeUInt32LE(linkFd, 0);
  return bpf('iterator create', Cmd.IterCreate, a);
}

/** Detaches a link from its hook; its fd (and pins) then hold a defunct link. */
export function linkDetach(linkFd: number): void {
  const a = attr();
  a.writeUInt32LE(linkFd, 0);
  bpf('link detach', Cmd.LinkDetach, a);
}

/** Makes a map read-only to user space from now on (the programs' view is set by its flags). */
export function mapFreeze(fd: number, name: string): void {
  const a = attr();
  a.writeUInt32LE(fd, 0);
  bpf(`map ${name} freeze`, Cmd.MapFreeze, a);
}

/** BPF_PROG_TEST_RUN: runs the program once on data (a packet for tc programs); its return value. */
export function progTestRun(progFd: number, data: Buffer, ctx?: Buffer): { retval: number; data: Buffer } {
  const out = Buffer.alloc(data.length + 256);
  const a = attr();
  a.writeUInt32LE(progFd, 0);
  a.writeUInt32LE(data.length, 8);
  a.writeUInt32LE(out.length, 12);
  a.writeBigUInt64LE(ptr(data), 16);
  a.writeBigUInt64LE(ptr(out), 24);
  a.writeUInt32LE(1, 32);
  if (ctx) {
    a.writeUInt32LE(ctx.length, 40);
    a.writeBigUInt64LE(ptr(ctx), 48);
  }
  bpf('program test run', Cmd.ProgTestRun, a);
  return { retval: a.readUInt32LE(4), data: out.subarray(0, a.readUInt32LE(12)) };
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
  fdNames.delete(fd);
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
