// Load once, reuse: the first ADD of a network creates and pins its maps and program under
// <root>/twill/<network>/; later calls only open the pins. A program whose object hash
// changed (an upgrade) is loaded anew and every pinned link is switched to it. The last
// endpoint to go takes the network's maps and program with it (releaseNetwork).
import { readdirSync, rmdirSync, unlinkSync } from '../sys/fs.js';
import { parseElf, linkKfuncs, linkMaps, patchFieldOffset, type ElfMap, type ElfObject } from './elf.js';
import { ensureBpffs } from './bpffs.js';
import { kernelFacts } from './btf.js';
import { tcObject } from './object.js';
import { closeFd, linkUpdate, mapCreate, mapKeys, mapLookup, mapUpdate, objGet, objInfo, objPin, progLoad, ProgType } from './sys.js';
import { CT_STATUS_MARKER, EP_KEY_SIZE, EP_VALUE_SIZE, MAP_NAMES, OBS_CONF, OBS_CONF_OFF, obsIndex, parseEpValue, u64, type MapName } from './layout.js';
import { attachClsact, hasFilter } from '../sys/tc.js';
import { EEXIST, SysError } from '../sys/libc.js';
import { mkdirs } from '../fsx.js';

export interface Loaded {
  dir: string;
  /** twill_from_pod (veth ingress) and twill_to_pod (veth egress, networks that enforce policy). */
  progFd: number;
  toProgFd: number;
  maps: Map<MapName, number>;
  close(): void;
}

export interface MapSizes {
  /** max_entries of the endpoint and counter maps. */
  endpoints: number;
  /** max_entries of the ipcache and policy tries (default: the object's). */
  ipcache?: number;
  policy?: number;
  /** Flow history entries; 0 turns the flow record and its events off. */
  flows?: number;
}

/**
 * The tcx link pin of an endpoint's to-pod program, beside its from-pod one (named as the
 * host veth). bpffs refuses any name with a dot (EPERM: the kernel reserves them), and no
 * interface name can hold a colon, so `<veth>:to` never collides with another veth's pin.
 */
export const TO_POD_SUFFIX = ':to';
/** Every to-pod suffix any version used: removal looks for all of them. */
const TO_POD_SUFFIXES = [TO_POD_SUFFIX, '.to'] as const;

/** The link pins an endpoint may have under links/, whatever version pinned them. */
export const linkPinNames = (hostName: string): string[] => [hostName, ...TO_POD_SUFFIXES.map((s) => `${hostName}${s}`)];

/** The host veth a link pin belongs to, and whether it holds the to-pod program. */
export function pinOwner(pin: string): { hostName: string; toPod: boolean } {
  const s = TO_POD_SUFFIXES.find((x) => pin.endsWith(x));
  return s ? { hostName: pin.slice(0, -s.length), toPod: true } : { hostName: pin, toPod: false };
}

export const networkDir = (root: string, network: string): string => `${root}/twill/${network}`;
export const linksDir = (dir: string): string => `${dir}/links`;

const isErrno = (e: unknown, errno: number): boolean => e instanceof SysError && e.errno === errno;

/** Pins fd at path, or, when another process won the race, adopts the object pinned there. */
function pinOrAdopt(fd: number, path: string): number {
  try {
    objPin(fd, path);
    return fd;
  } catch (e) {
    if (!isErrno(e, EEXIST)) throw e;
    closeFd(fd);
    const other = objGet(path);
    if (other === undefined) throw new Error(`${path} vanished while pinning`);
    return other;
  }
}

/** Type, key and value must match; a different size is kept until the network is released. */
function checkCompatible(fd: number, m: ElfMap, path: string): void {
  const info = objInfo(fd);
  const got = { type: info.readUInt32LE(0), keySize: info.readUInt32LE(8), valueSize: info.readUInt32LE(12) };
  if (got.type !== m.type || got.keySize !== m.keySize || got.valueSize !== m.valueSize) {
    throw new Error(`pinned map ${path} has an incompatible layout ${JSON.stringify(got)}; remove it (twill sync --cleanup or rm) to recreate`);
  }
}

function openMap(dir: string, m: ElfMap, sizes: MapSizes): number {
  const path = `${dir}/${m.name}`;
  const pinned = objGet(path);
  if (pinned !== undefined) {
    checkCompatible(pinned, m, path);
    return pinned;
  }
  const maxEntries = {
    endpoints: sizes.endpoints, counters: sizes.endpoints, ipcache: sizes.ipcache, policy: sizes.policy,
    // An LRU map needs an entry at least: with flows off, the programs never write it.
    flows: sizes.flows === 0 ? 1 : sizes.flows,
  }[m.name as string] ?? m.maxEntries;
  const fd = mapCreate(m.name, { ...m, maxEntries });
  // Before the pin: no program sees the observer map without its setting.
  if (m.name === 'observer' && sizes.flows === 0) mapUpdate(fd, obsIndex(OBS_CONF), u64(OBS_CONF_OFF));
  return pinOrAdopt(fd, path);
}

/** A program's instructions, linked to its maps and to the running kernel. */
function linkProgram(elf: ElfObject, name: string, maps: ReadonlyMap<string, number>): { insns: Buffer; license: string } {
  const prog = elf.programs.find((p) => p.name === name);
  if (!prog) throw new Error(`object has no ${name} program`);
  const insns = linkMaps(prog, maps);
  const facts = kernelFacts([...new Set(prog.kfuncRefs.map((r) => r.name))], [['nf_conn', 'status']]);
  linkKfuncs(insns, prog, { funcId: (n) => facts.funcs[n] });
  if (patchFieldOffset(insns, CT_STATUS_MARKER, facts.fields['nf_conn.status']!) === 0) throw new Error(`${name} reads no nf_conn.status`);
  return { insns, license: elf.license };
}

/**
 * Switches every attachment of the network to progFd — pinned tcx links by LINK_UPDATE,
 * legacy filters by replacing them on each endpoint's veth — and removes older program pins
 * and the pins of maps the new object no longer has.
 */
function replaceStale(dir: string, current: string[], progFd: number, toProgFd: number, endpointsFd: number): void {
  const ifindexes = new Set<number>();
  const v = Buffer.alloc(EP_VALUE_SIZE);
  for (const k of mapKeys(endpointsFd, EP_KEY_SIZE)) if (mapLookup(endpointsFd, k, v)) ifindexes.add(parseEpValue(v).ifindex);
  for (const ifindex of ifindexes) {
    if (hasFilter(ifindex, 'ingress')) attachClsact(ifindex, progFd, 'twill', true, 'ingress');
    if (hasFilter(ifindex, 'egress')) attachClsact(ifindex, toProgFd, 'twill', true, 'egress');
  }
  for (const name of readdirSync(linksDir(dir))) {
    const fd = objGet(`${linksDir(dir)}/${name}`);
    if (fd === undefined) continue;
    try {
      linkUpdate(fd, pinOwner(name).toPod ? toProgFd : progFd);
    } finally {
      closeFd(fd);
    }
  }
  const keep = new Set<string>([...current, 'links', ...MAP_NAMES]);
  for (const f of readdirSync(dir)) if (!keep.has(f)) unlinkSync(`${dir}/${f}`);
}

function openPinnedMaps(dir: string): Map<MapName, number> | undefined {
  const maps = new Map<MapName, number>();
  for (const name of MAP_NAMES) {
    let fd: number | undefined;
    try {
      fd = objGet(`${dir}/${name}`);
    } catch {
      fd = undefined;
    }
    if (fd === undefined) {
      for (const f of maps.values()) closeFd(f);
      return undefined;
    }
    maps.set(name, fd);
  }
  return maps;
}

export function loadNetwork(root: string, network: string, sizes: MapSizes): Loaded {
  ensureBpffs(root);
  const dir = networkDir(root, network);
  mkdirs(linksDir(dir), 0o700);
  const obj = tcObject();
  const progName = `prog_${obj.sha256.slice(0, 16)}`;
  const toProgName = `${progName}_to`;
  let maps = new Map<MapName, number>();
  const close = (): void => {
    for (const fd of maps.values()) closeFd(fd);
  };
  let fresh = false;
  try {
    let progFd = objGet(`${dir}/${progName}`);
    let toProgFd = progFd === undefined ? undefined : objGet(`${dir}/${toProgName}`);
    if (progFd !== undefined && toProgFd === undefined) {
      closeFd(progFd); // an ADD died between the two pins: load both again
      progFd = undefined;
    }
    if (progFd === undefined || toProgFd === undefined) {
      fresh = readdirSync(dir).every((f) => f === 'links');
      const elf = parseElf(obj.bytes);
      for (const m of elf.maps) {
        if (!(MAP_NAMES as readonly string[]).includes(m.name)) throw new Error(`object declares an unknown map ${m.name}`);
        maps.set(m.name as MapName, openMap(dir, m, sizes));
      }
      const from = linkProgram(elf, 'twill_from_pod', maps);
      const to = linkProgram(elf, 'twill_to_pod', maps);
      progFd = pinOrAdopt(progLoad('twill_from_pod', ProgType.SchedCls, from.insns, from.license), `${dir}/${progName}`);
      toProgFd = pinOrAdopt(progLoad('twill_to_pod', ProgType.SchedCls, to.insns, to.license), `${dir}/${toProgName}`);
      replaceStale(dir, [progName, toProgName], progFd, toProgFd, maps.get('endpoints')!);
    } else {
      const pinned = openPinnedMaps(dir);
      if (!pinned) {
        closeFd(progFd);
        throw new Error(`pinned maps of ${dir} are missing while the program is pinned`);
      }
      maps = pinned;
    }
    const fd = progFd, toFd = toProgFd;
    return { dir, progFd: fd, toProgFd: toFd, maps, close: () => { close(); closeFd(fd); closeFd(toFd); } };
  } catch (e) {
    close();
    // A network this call began pinning and could not finish is not left half there.
    if (fresh) releaseNetwork(root, network);
    throw e;
  }
}

/** Opens an existing network's maps without loading anything; undefined when none are pinned. */
export function openNetwork(root: string, network: string): { dir: string; maps: Map<MapName, number>; close(): void } | undefined {
  const dir = networkDir(root, network);
  const maps = openPinnedMaps(dir);
  if (!maps) return undefined;
  return { dir, maps, close: () => { for (const f of maps.values()) closeFd(f); } };
}

/**
 * Unpins everything of a network: its maps and program are freed by the kernel once the
 * last attachment and open fd are gone. The caller holds the network's lock.
 */
export function releaseNetwork(root: string, network: string): void {
  const dir = networkDir(root, network);
  const rm = (p: string): void => {
    try {
      unlinkSync(p);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  };
  let names: string[] = [];
  try {
    names = readdirSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw e;
  }
  for (const f of names) {
    if (f !== 'links') {
      rm(`${dir}/${f}`);
      continue;
    }
    for (const l of readdirSync(linksDir(dir))) rm(`${linksDir(dir)}/${l}`);
    rmdirSync(linksDir(dir));
  }
  try {
    rmdirSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}

/** Networks with pins under root. */
export function pinnedNetworks(root: string): string[] {
  try {
    return readdirSync(`${root}/twill`).sort();
  } catch {
    return [];
  }
}
