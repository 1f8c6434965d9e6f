// Loads what the manifest (bpf/manifest.ts) lists. Load once, reuse: the first load of an
// object creates and pins its maps and programs (a network's under <root>/twill/<network>/, the
// node's under <root>/twill-node/); later calls only open the pins. A program whose object hash
// changed (an upgrade) is loaded anew and every attachment is switched to it. A map the
// manifest adds is created beside the pinned ones; a pinned map whose layout changed is
// migrated (or recreated) and swapped in with programs that use it. Callers hold the lock of
// what they load (the network's, datapath/netlock.ts). The last endpoint of a network takes its
// maps and programs with it (releaseNetwork).
import { readdirSync, rmdirSync, unlinkSync } from '../sys/fs.js';
import { parseElf, linkKfuncs, linkMaps, patchFieldLoads, patchFieldOffset, type ElfMap, type ElfObject } from './elf.js';
import { ensureBpffs } from './bpffs.js';
import { kernelFacts } from './btf.js';
import { bpfObject, tcObject, type BpfObjectBytes } from './object.js';
import { AttachType, closeFd, mapCreate, mapFreeze, mapKeys, mapLookup, mapUpdate, MapType, named, possibleCpus, progLoad, type LoadOpts } from './sys.js';
import { CGROUP_HOOKS, kernelMapName, mapNames, mapSize, PROG_TYPES, TC_OBJECT, versionOfName, type MapSizes, type MapSpec, type ObjectSpec, type ProgramSpec } from './manifest.js';
import { linksDir, mapLayout, networkDir, nodeDir, openPin, pinOrAdopt, repin, scopeDir } from './pins.js';
import { switchTcAttachments } from './attach/tc.js';
import { switchLinks } from './attach/tcx.js';
import { EP_KEY_SIZE, EP_VALUE_SIZE, parseEpValue, type MapName } from './layout.js';
import { mkdirs } from '../fsx.js';

export { linksDir, networkDir, nodeDir } from './pins.js';
export type { MapSizes } from './manifest.js';

/** An object's programs and maps, open; close() drops this process's fds (the pins stay). */
export interface LoadedObject<M extends string = string> {
  /** The network's pin directory (node-scoped objects: the node's). */
  dir: string;
  programs: Map<string, number>;
  maps: Map<M, number>;
  close(): void;
}

export interface Loaded extends LoadedObject<MapName> {
  /** twill_from_pod (veth ingress) and twill_to_pod (veth egress, networks that enforce policy). */
  progFd: number;
  toProgFd: number;
}

/** A network's pinned maps, opened by name: those that exist, and the names of those that do not. */
export interface OpenedNetwork<M extends string = MapName> {
  dir: string;
  maps: Map<M, number>;
  /** Maps the manifest lists that are not pinned (an upgrade added them; the next ADD creates them). */
  missing: M[];
  close(): void;
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

/** Where the loader is asked to load: the bpffs root, the network (network-scoped pins), the sizes. */
export interface LoadTarget {
  root: string;
  network?: string;
  sizes: MapSizes;
}

/** Why a pinned map cannot serve the object as it is now, or undefined when it can (max_entries may differ: kept until released). */
function layoutChange(fd: number, m: ElfMap, spec: MapSpec): string | undefined {
  const got = mapLayout(fd);
  const version = versionOfName(got.name);
  const diffs = [
    got.type !== m.type && `type ${got.type} → ${m.type}`, got.keySize !== m.keySize && `key ${got.keySize} → ${m.keySize}`,
    got.valueSize !== m.valueSize && `value ${got.valueSize} → ${m.valueSize}`, got.flags !== m.flags && `flags ${got.flags} → ${m.flags}`,
    version !== spec.version && `version ${version} → ${spec.version}`,
  ].filter((x): x is string => typeof x === 'string');
  return diffs.length ? diffs.join(', ') : undefined;
}

function createMap(name: string, m: ElfMap, spec: MapSpec, sizes: MapSizes): number {
  const fd = mapCreate(kernelMapName(name, spec.version), { ...m, maxEntries: mapSize(spec, m.maxEntries, sizes) });
  named(fd, name);
  try {
    spec.init?.(fd, sizes);
  } catch (e) {
    closeFd(fd);
    throw e;
  }
  return fd;
}

const PERCPU = new Set<number>([MapType.PercpuHash, MapType.PercpuArray, 10 /* LRU_PERCPU_HASH */]);
const NOT_ITERABLE = new Set<number>([MapType.RingBuf, MapType.ProgArray, 12 /* PERF_EVENT_ARRAY */]);

/** Copies the old map's entries into the new one through spec.migrate; returns how many. */
function migrateEntries(name: string, oldFd: number, newFd: number, spec: MapSpec): number {
  const from = mapLayout(oldFd);
  if (!spec.migrate || NOT_ITERABLE.has(from.type)) return 0;
  const valueLen = PERCPU.has(from.type) ? Math.ceil(from.valueSize / 8) * 8 * possibleCpus() : from.valueSize;
  let n = 0;
  const v = Buffer.alloc(valueLen);
  for (const key of [...mapKeys(oldFd, from.keySize)]) {
    if (!mapLookup(oldFd, key, v)) continue;
    try {
      const e = spec.migrate({ key, value: Buffer.from(v) }, { version: versionOfName(from.name), keySize: from.keySize, valueSize: from.valueSize });
      if (!e) continue;
      mapUpdate(newFd, e.key, e.value);
      n++;
    } catch (err) {
      throw new Error(`map ${name} migrate: ${(err as Error).message}`);
    }
  }
  return n;
}

/** A data section's map (.rodata, …): made for each load, held by the programs, never pinned. */
function dataMap(m: ElfMap): number {
  const fd = named(mapCreate(m.name, m), m.name);
  try {
    const zero = Buffer.alloc(4);
    mapUpdate(fd, zero, m.data!);
    if (m.frozen) mapFreeze(fd, m.name);
  } catch (e) {
    closeFd(fd);
    throw e;
  }
  return fd;
}

function expectedAttach(p: ProgramSpec): number | undefined {
  if (p.expectedAttach !== undefined) return p.expectedAttach;
  if (p.attach.kind === 'iter') return AttachType.TraceIter;
  return p.attach.kind === 'cgroup' ? CGROUP_HOOKS[p.attach.hook] : undefined;
}

/** The vmlinux function an iterator program is loaded for (its attach_btf_id). */
const iterTarget = (p: ProgramSpec): string | undefined => (p.attach.kind === 'iter' ? `bpf_iter_${p.attach.target}` : undefined);

/** Loads every program of the object against maps (data maps are made here); fds by program name. */
function loadPrograms(spec: ObjectSpec, elf: ElfObject, maps: ReadonlyMap<string, number>): Map<string, number> {
  const all = new Map(maps);
  const data: number[] = [];
  const progs = new Map<string, number>();
  try {
    for (const m of elf.maps) if (m.data) {
      const fd = dataMap(m);
      data.push(fd);
      all.set(m.name, fd);
    }
    const kfuncs = [...new Set([...elf.programs.flatMap((p) => p.kfuncRefs.map((r) => r.name)), ...spec.programs.flatMap((p) => iterTarget(p) ?? [])])];
    const fields = (spec.fields ?? []).map((f): [string, string] => [f.struct, f.member]);
    const facts = kfuncs.length || fields.length ? kernelFacts(kfuncs, fields) : { funcs: {}, fields: {} };
    for (const p of spec.programs) {
      const prog = elf.programs.find((x) => x.name === p.name && x.section === p.section);
      if (!prog) throw new Error(`object ${spec.name} has no program ${p.name} in section ${p.section}`);
      const insns = linkMaps(prog, all);
      linkKfuncs(insns, prog, { funcId: (n) => facts.funcs[n] });
      for (const f of spec.fields ?? []) {
        const off = facts.fields[`${f.struct}.${f.member}`]!;
        const n = f.span === undefined ? patchFieldOffset(insns, f.marker, off) : patchFieldLoads(insns, f.marker, f.span, off);
        if (n === 0 && f.required) throw new Error(`program ${p.name} reads no ${f.struct}.${f.member}`);
      }
      const opts: LoadOpts = {};
      const ea = expectedAttach(p);
      if (ea !== undefined) opts.expectedAttachType = ea;
      const target = iterTarget(p);
      if (target !== undefined) opts.attachBtfId = facts.funcs[target];
      progs.set(p.name, progLoad(p.name, PROG_TYPES[p.type], insns, elf.license, opts));
    }
    // Tail calls: each target in its prog array slot.
    for (const p of spec.programs) {
      if (p.attach.kind !== 'tail-call') continue;
      const arr = all.get(p.attach.map);
      if (arr === undefined) throw new Error(`program ${p.name}: no prog array ${p.attach.map}`);
      const k = Buffer.alloc(4), v = Buffer.alloc(4);
      k.writeUInt32LE(p.attach.index);
      v.writeUInt32LE(progs.get(p.name)!);
      mapUpdate(arr, k, v);
    }
    return progs;
  } catch (e) {
    for (const fd of progs.values()) closeFd(fd);
    throw e;
  } finally {
    for (const fd of data) closeFd(fd);
  }
}

const progPin = (p: ProgramSpec, hash: string): string => p.pin.replace('{hash}', hash.slice(0, 16));

/** What a load found and made, for the caller's attachment switch. */
export interface LoadReport {
  /** Programs were loaded by this call (first load, upgrade, or maps swapped). */
  reloaded: boolean;
  /** Maps created because they were not pinned. */
  created: string[];
  /** Maps whose pinned layout changed, swapped for new ones (migrated where the manifest says how). */
  replaced: { name: string; why: string; migrated: number }[];
}

/**
 * Loads (or opens) the object for target: maps by the manifest, programs pinned by the
 * object's hash. onSwitch runs when programs were loaded while others may be attached: it
 * moves every attachment to the new programs.
 */
export function loadObject<M extends string>(spec: ObjectSpec<M>, obj: BpfObjectBytes, t: LoadTarget, onSwitch?: (progs: ReadonlyMap<string, number>, maps: ReadonlyMap<M, number>, dir: string) => void): LoadedObject<M> & { report: LoadReport } {
  ensureBpffs(t.root);
  const dirs = new Set<string>();
  for (const s of [...spec.programs.map((p) => p.scope), ...Object.values<MapSpec>(spec.maps).map((m) => m.scope)]) dirs.add(scopeDir(t.root, t.network, s));
  for (const d of dirs) mkdirs(linksDir(d), 0o700);
  const home = t.network !== undefined ? networkDir(t.root, t.network) : nodeDir(t.root);
  const maps = new Map<M, number>();
  const progs = new Map<string, number>();
  const fresh: string[] = [];
  const swaps: { name: M; path: string; fd: number; why: string; migrated: number }[] = [];
  const report: LoadReport = { reloaded: false, created: [], replaced: [] };
  const closeAll = (): void => {
    for (const fd of maps.values()) closeFd(fd);
    for (const fd of progs.values()) closeFd(fd);
    for (const s of swaps) closeFd(s.fd);
    maps.clear();
    progs.clear();
  };
  // Programs pinned for this very object: nothing to load unless a map must change.
  for (const p of spec.programs) {
    const fd = openPin(`${scopeDir(t.root, t.network, p.scope)}/${progPin(p, obj.sha256)}`);
    if (fd !== undefined) progs.set(p.name, fd);
  }
  const freshNetwork = t.network !== undefined && progs.size === 0 && readdirSync(home).every((f) => f === 'links');
  try {
    let elf: ElfObject | undefined;
    const elfOf = (): ElfObject => (elf ??= parseElf(obj.bytes));
    const defOf = (name: string): ElfMap => {
      const m = elfOf().maps.find((x) => x.name === name);
      if (!m) throw new Error(`object ${spec.name} declares no map ${name}`);
      return m;
    };
    for (const name of mapNames(spec)) {
      const ms: MapSpec = spec.maps[name];
      const path = `${scopeDir(t.root, t.network, ms.scope)}/${name}`;
      const pinned = openPin(path);
      if (pinned === undefined) {
        const fd = pinOrAdopt(createMap(name, defOf(name), ms, t.sizes), path);
        named(fd, name);
        maps.set(name, fd);
        fresh.push(path);
        report.created.push(name);
        continue;
      }
      named(pinned, name);
      maps.set(name, pinned);
      // Checking the layout needs the ELF; with the programs of this object pinned, the maps are theirs.
      if (progs.size === spec.programs.length) continue;
      const why = layoutChange(pinned, defOf(name), ms);
      if (why === undefined) continue;
      const fd = createMap(name, defOf(name), ms, t.sizes);
      swaps.push({ name, path, fd, why, migrated: 0 });
      swaps[swaps.length - 1]!.migrated = migrateEntries(name, pinned, fd, ms);
    }
    if (elf === undefined && progs.size === spec.programs.length && report.created.length === 0) {
      return { dir: home, programs: progs, maps, report, close: closeAll };
    }
    if (elf === undefined) elfOf();
    for (const name of mapNames(spec)) if (!elfOf().maps.some((m) => m.name === name)) throw new Error(`object ${spec.name} declares no map ${name}`);
    for (const m of elfOf().maps) if (!m.data && !(m.name in spec.maps)) throw new Error(`object ${spec.name} declares a map the manifest does not list: ${m.name}`);
    // The programs run against the maps as they will be pinned: the swapped ones new.
    const use = new Map<string, number>(maps);
    for (const s of swaps) use.set(s.name, s.fd);
    for (const fd of progs.values()) closeFd(fd);
    progs.clear();
    const loaded = loadPrograms(spec, elfOf(), use);
    for (const [k, v] of loaded) progs.set(k, v);
    report.reloaded = true;
    // Swap the changed maps' pins: from here on the pins are the new object's. A swap that
    // fails half way puts the old maps back: the pins never mix versions.
    const done: typeof swaps = [];
    try {
      for (const s of swaps) {
        repin(s.fd, s.path);
        done.push(s);
      }
    } catch (e) {
      for (const s of done) repin(maps.get(s.name)!, s.path);
      throw e;
    }
    for (const s of swaps) {
      closeFd(maps.get(s.name)!);
      maps.set(s.name, s.fd);
      report.replaced.push({ name: s.name, why: s.why, migrated: s.migrated });
    }
    swaps.length = 0;
    for (const p of spec.programs) {
      const path = `${scopeDir(t.root, t.network, p.scope)}/${progPin(p, obj.sha256)}`;
      repin(progs.get(p.name)!, path);
    }
    onSwitch?.(progs, maps, home);
    // Cgroup links of node-scoped programs (attach/cgroup.ts cgroupLinkPin) follow their program.
    const cgroupProgs = spec.programs.filter((p) => p.scope === 'node' && p.attach.kind === 'cgroup');
    if (cgroupProgs.length > 0) {
      switchLinks(linksDir(nodeDir(t.root)), (pin) => progs.get(pin.slice(0, pin.indexOf(':')))!, (pin) => cgroupProgs.some((p) => pin.startsWith(`${p.name}:`)));
    }
    // Older programs' pins, and pins of maps the object no longer has, go.
    const keep = new Set<string>(['links', ...mapNames(spec), ...spec.programs.map((p) => progPin(p, obj.sha256))]);
    if (t.network !== undefined) for (const f of readdirSync(home)) if (!keep.has(f)) unlinkSync(`${home}/${f}`);
    // The node's directory is shared by objects: only this object's older program pins go.
    for (const p of spec.programs.filter((x) => x.scope === 'node')) {
      const older = new RegExp(`^${p.pin.replace('{hash}', '[0-9a-f]{16}')}$`);
      for (const f of readdirSync(nodeDir(t.root))) if (older.test(f) && f !== progPin(p, obj.sha256)) unlinkSync(`${nodeDir(t.root)}/${f}`);
    }
    return { dir: home, programs: progs, maps, report, close: closeAll };
  } catch (e) {
    closeAll();
    // A network this call began pinning and could not finish is not left half there.
    if (freshNetwork) releaseNetwork(t.root, t.network!);
    else for (const p of fresh) {
      try {
        unlinkSync(p);
      } catch {
        // already gone
      }
    }
    throw e;
  }
}

/** Loads a manifest entry from its object file (an asset of the executable, bpf/ in a checkout). */
export const loadManifestObject = <M extends string>(spec: ObjectSpec<M>, t: LoadTarget): LoadedObject<M> & { report: LoadReport } => loadObject(spec, bpfObject(spec.file), t);

/** Opens an object's pinned maps by name, reporting the missing ones; undefined when none is pinned. */
export function openObject<M extends string>(spec: ObjectSpec<M>, root: string, network?: string): OpenedNetwork<M> | undefined {
  const maps = new Map<M, number>();
  const missing: M[] = [];
  for (const name of mapNames(spec)) {
    const fd = openPin(`${scopeDir(root, network, spec.maps[name].scope)}/${name}`);
    if (fd === undefined) missing.push(name);
    else maps.set(name, named(fd, name));
  }
  if (maps.size === 0) return undefined;
  return { dir: network !== undefined ? networkDir(root, network) : nodeDir(root), maps, missing, close: () => { for (const f of maps.values()) closeFd(f); } };
}

/** The tc programs' attachments on the network's endpoints, moved to the new programs. */
function switchTc(progs: ReadonlyMap<string, number>, maps: ReadonlyMap<MapName, number>, dir: string): void {
  const from = progs.get('twill_from_pod')!, to = progs.get('twill_to_pod')!;
  const eps = maps.get('endpoints')!;
  const ifindexes = new Set<number>();
  const v = Buffer.alloc(EP_VALUE_SIZE);
  for (const k of mapKeys(eps, EP_KEY_SIZE)) if (mapLookup(eps, k, v)) ifindexes.add(parseEpValue(v).ifindex);
  switchTcAttachments(ifindexes, { ingress: from, egress: to }, 'twill');
  switchLinks(linksDir(dir), (pin) => (pinOwner(pin).toPod ? to : from));
}

export function loadNetwork(root: string, network: string, sizes: MapSizes): Loaded {
  const l = loadObject(TC_OBJECT, tcObject(), { root, network, sizes }, switchTc);
  return { ...l, progFd: l.programs.get('twill_from_pod')!, toProgFd: l.programs.get('twill_to_pod')! };
}

/**
 * Opens an existing network's maps without loading anything: those pinned, and the names of
 * those missing (an upgrade added them; the next ADD creates them). Undefined when none is pinned.
 */
export function openNetwork(root: string, network: string): OpenedNetwork | undefined {
  return openObject(TC_OBJECT, root, network);
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
