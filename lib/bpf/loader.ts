// Load once, reuse: the first ADD of a network creates and pins its maps and program under
// <root>/twill/<network>/; later calls only open the pins. A program whose object hash
// changed (an upgrade) is loaded anew and every pinned link is switched to it.
import { readdirSync, unlinkSync } from 'node:fs';
import { parseElf, linkMaps, type ElfMap } from './elf.js';
import { ensureBpffs } from './bpffs.js';
import { tcObject } from './object.js';
import { closeFd, linkUpdate, mapCreate, mapKeys, mapLookup, objGet, objInfo, objPin, progLoad, ProgType } from './sys.js';
import { EP_KEY_SIZE, EP_VALUE_SIZE, parseEpValue } from './layout.js';
import { attachClsact, hasIngressFilter } from '../sys/tc.js';
import { mkdirs } from '../fsx.js';

const EEXIST = 17;

export interface Loaded {
  dir: string;
  progFd: number;
  maps: Map<string, number>;
  close(): void;
}

export const networkDir = (root: string, network: string): string => `${root}/twill/${network}`;
export const linksDir = (dir: string): string => `${dir}/links`;

/** Pins fd at path, or, when another process won the race, adopts the object pinned there. */
function pinOrAdopt(fd: number, path: string): number {
  try {
    objPin(fd, path);
    return fd;
  } catch (e) {
    if ((e as { errno?: number }).errno !== EEXIST) throw e;
    closeFd(fd);
    const other = objGet(path);
    if (other === undefined) throw new Error(`${path} vanished while pinning`);
    return other;
  }
}

function checkCompatible(fd: number, m: ElfMap, path: string): void {
  const info = objInfo(fd);
  const got = { type: info.readUInt32LE(0), keySize: info.readUInt32LE(8), valueSize: info.readUInt32LE(12), maxEntries: info.readUInt32LE(16) };
  if (got.type !== m.type || got.keySize !== m.keySize || got.valueSize !== m.valueSize || got.maxEntries !== m.maxEntries) {
    throw new Error(`pinned map ${path} has an incompatible layout ${JSON.stringify(got)}; remove it (twill sync --cleanup or rm) to recreate`);
  }
}

function openMap(dir: string, m: ElfMap): number {
  const path = `${dir}/${m.name}`;
  const pinned = objGet(path);
  if (pinned !== undefined) {
    checkCompatible(pinned, m, path);
    return pinned;
  }
  return pinOrAdopt(mapCreate(m.name, m), path);
}

/**
 * Switches every attachment of the network to progFd — pinned tcx links by LINK_UPDATE,
 * legacy filters by replacing them on each endpoint's veth — and removes older program pins.
 */
function replaceStale(dir: string, current: string, progFd: number, endpointsFd: number): void {
  const ifindexes = new Set<number>();
  const v = Buffer.alloc(EP_VALUE_SIZE);
  for (const k of mapKeys(endpointsFd, EP_KEY_SIZE)) if (mapLookup(endpointsFd, k, v)) ifindexes.add(parseEpValue(v).ifindex);
  for (const ifindex of ifindexes) {
    if (hasIngressFilter(ifindex)) attachClsact(ifindex, progFd, 'twill', true);
  }
  let links: string[] = [];
  try {
    links = readdirSync(linksDir(dir));
  } catch {
    // no links yet
  }
  for (const name of links) {
    const fd = objGet(`${linksDir(dir)}/${name}`);
    if (fd === undefined) continue;
    try {
      linkUpdate(fd, progFd);
    } finally {
      closeFd(fd);
    }
  }
  for (const f of readdirSync(dir)) if (f.startsWith('prog_') && f !== current) unlinkSync(`${dir}/${f}`);
}

export function loadNetwork(root: string, network: string): Loaded {
  ensureBpffs(root);
  const dir = networkDir(root, network);
  mkdirs(linksDir(dir), 0o700);
  const obj = tcObject();
  const progName = `prog_${obj.sha256.slice(0, 16)}`;
  const maps = new Map<string, number>();
  const close = (): void => {
    for (const fd of maps.values()) closeFd(fd);
  };
  try {
    let progFd = objGet(`${dir}/${progName}`);
    if (progFd === undefined) {
      const elf = parseElf(obj.bytes);
      for (const m of elf.maps) maps.set(m.name, openMap(dir, m));
      const prog = elf.programs.find((p) => p.name === 'twill_from_pod');
      if (!prog) throw new Error('object has no twill_from_pod program');
      const fd = progLoad('twill_from_pod', ProgType.SchedCls, linkMaps(prog, maps), elf.license);
      progFd = pinOrAdopt(fd, `${dir}/${progName}`);
      replaceStale(dir, progName, progFd, maps.get('endpoints')!);
    } else {
      for (const name of ['endpoints', 'flows', 'counters']) {
        const fd = objGet(`${dir}/${name}`);
        if (fd === undefined) throw new Error(`pinned map ${dir}/${name} is missing while the program is pinned`);
        maps.set(name, fd);
      }
    }
    const fd = progFd;
    return { dir, progFd: fd, maps, close: () => { close(); closeFd(fd); } };
  } catch (e) {
    close();
    throw e;
  }
}

/** Opens an existing network's maps without loading anything; undefined when none are pinned. */
export function openNetwork(root: string, network: string): { dir: string; maps: Map<string, number>; close(): void } | undefined {
  const dir = networkDir(root, network);
  const maps = new Map<string, number>();
  for (const name of ['endpoints', 'counters']) {
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
  return { dir, maps, close: () => { for (const f of maps.values()) closeFd(f); } };
}
