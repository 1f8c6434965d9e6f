// Kubernetes Services at the socket: the node's cgroup hooks (bpf/twill_sock.c) loaded once and
// attached to the cgroup v2 directory the configuration names, and the frontends of the model
// written into the node's Service maps so that a reader never meets an empty or half-written
// Service: backends → slots → frontends (one write switches a Service) → prune frontends →
// prune slots → prune backends. What a round leaves (a Service's previous slot range, a backend
// no longer wanted) stays readable for one more round, for a program that read the frontend
// just before the switch; the next round frees it.
import { readdirSync, rmdirSync, unlinkSync } from '../sys/fs.js';
import { attachCgroup, cgroup2Mount, cgroupLinkPin, detachCgroup, isCgroup2 } from '../bpf/attach/cgroup.js';
import { Code, CniError } from '../cni/errors.js';
import type { NetConf } from '../config/types.js';
import { LB_BE_LOCAL, LB_BE_MAX, LB_BE_RETIRED, LB_BE_TERMINATING, LB_BE_VALID, LB_F_AFFINITY, LB_F_DROP, LB_F_REJECT } from '../bpf/abi-sock.generated.js';
import { linksDir, loadManifestObject, nodeDir, openObject, type LoadReport } from '../bpf/loader.js';
import { NODEPORT_OBJECT, SOCK_OBJECT, type SockMapName } from '../bpf/manifest.js';
import { bpfMapIO, type MapIO } from '../bpf/map-io.js';
import { openPin } from '../bpf/pins.js';
import { closeFd } from '../bpf/sys.js';
import { Mirror, type MapReport, type Step } from '../mirror/mirror.js';
import type { MirrorRecord } from '../mirror/record.js';
import type { LbFrontend, ServiceBackend } from '../services/model.js';
import { beValue, feKey, feValue, parseBeValue, parseFeValue, u32 } from './services-encode.js';
import { withNodeLock } from './netlock.js';

export interface HookTarget {
  bpffsRoot: string;
  /** The cgroup v2 directory whose sockets are translated (its descendants' too). */
  cgroupRoot: string;
  /** Where the node lock lives (<stateDir>/locks/node.lock). */
  stateDir?: string;
}

const DEFAULT_STATE_DIR = '/var/lib/twill';

/**
 * Where a network's configuration puts the Service hooks: cgroupRoot (the schema made it
 * absolute, without '..'), which must be a cgroup v2 directory; by default the host's cgroup v2
 * mount. A bad one is the configuration's fault (code 7); no cgroup v2 at all, the host's (50).
 */
export function serviceHookTarget(conf: Pick<NetConf, 'bpffsRoot' | 'stateDir' | 'cgroupRoot'>): HookTarget {
  let cgroupRoot = conf.cgroupRoot;
  if (cgroupRoot === undefined) {
    cgroupRoot = cgroup2Mount();
    if (cgroupRoot === undefined) throw new CniError(Code.NotAvailable, 'Services need a cgroup v2 mount: none found in /proc/self/mountinfo', 'mount cgroup2 (on hybrid hosts, the unified hierarchy) or set cgroupRoot');
  } else if (!isCgroup2(cgroupRoot)) {
    throw new CniError(Code.InvalidConfig, `invalid network config: cgroupRoot ${cgroupRoot} is not a cgroup v2 directory`);
  }
  return { bpffsRoot: conf.bpffsRoot, cgroupRoot: cgroupRoot.replace(/(.)\/+$/, '$1'), stateDir: conf.stateDir };
}

/** The tag of a cgroup directory in link pin names (bpffs refuses dots; paths have slashes). */
export const cgroupTag = (cgroupRoot: string): string => `cg${process.getBuiltinModule('node:crypto').createHash('sha256').update(cgroupRoot.replace(/\/+$/, '')).digest('hex').slice(0, 16)}`;

const linkPins = (t: HookTarget): { program: string; hook: (typeof SOCK_OBJECT.programs)[number]; pin: string }[] =>
  SOCK_OBJECT.programs.filter((p) => p.attach.kind === 'cgroup').map((p) => ({ program: p.name, hook: p, pin: cgroupLinkPin(linksDir(nodeDir(t.bpffsRoot)), p.name, cgroupTag(t.cgroupRoot)) }));

/**
 * Loads the socket object once per node (a new build of it replaces the programs under every
 * pinned link) and attaches each hook to cgroupRoot with a pinned link. Idempotent.
 */
export function ensureServiceHooks(t: HookTarget): { report: LoadReport; attached: string[] } {
  return withNodeLock(t.stateDir ?? DEFAULT_STATE_DIR, () => {
    const l = loadManifestObject(SOCK_OBJECT, { root: t.bpffsRoot, sizes: { endpoints: 0 } });
    try {
      const attached: string[] = [];
      for (const { program, hook, pin } of linkPins(t)) {
        const there = openPin(pin);
        if (there !== undefined) {
          closeFd(there);
          continue;
        }
        if (hook.attach.kind !== 'cgroup') continue;
        attachCgroup(l.programs.get(program)!, t.cgroupRoot, hook.attach.hook, pin);
        attached.push(program);
      }
      return { report: l.report, attached };
    } finally {
      l.close();
    }
  });
}

/**
 * Detaches the hooks from cgroupRoot; once no cgroup holds them, the object's program and map
 * pins go too (the node directory is shared: only this object's).
 */
export function removeServiceHooks(t: HookTarget): { detached: number; unpinned: boolean } {
  return withNodeLock(t.stateDir ?? DEFAULT_STATE_DIR, () => {
    let detached = 0;
    for (const { pin } of linkPins(t)) if (detachCgroup(pin)) detached++;
    const dir = nodeDir(t.bpffsRoot);
    const ls = (d: string): string[] => {
      try {
        return readdirSync(d);
      } catch {
        return [];
      }
    };
    // The maps are shared with the per-packet program (NODEPORT_OBJECT): they stay while any link of either is pinned.
    const ours = (f: string): boolean => [...SOCK_OBJECT.programs, ...NODEPORT_OBJECT.programs].some((p) => f.startsWith(`${p.name}:`));
    if (ls(linksDir(dir)).some(ours)) return { detached, unpinned: false };
    const progPins = SOCK_OBJECT.programs.map((p) => new RegExp(`^${p.pin.replace('{hash}', '[0-9a-f]{16}')}$`));
    for (const f of ls(dir)) if (f in SOCK_OBJECT.maps || progPins.some((r) => r.test(f))) unlinkSync(`${dir}/${f}`);
    // The node directory goes when nothing else lives there.
    if (ls(linksDir(dir)).length === 0 && ls(dir).every((f) => f === 'links')) {
      try {
        rmdirSync(linksDir(dir));
        rmdirSync(dir);
      } catch {
        // another object pinned meanwhile
      }
    }
    return { detached, unpinned: true };
  });
}

export type ServiceMapName = Extract<SockMapName, 'lb_fe' | 'lb_slots' | 'lb_be'>;

/** The node's Service maps, open (undefined when the hooks were never loaded). */
export function openServiceMaps(bpffsRoot: string): { maps: Map<ServiceMapName, MapIO>; close(): void } | undefined {
  const o = openObject(SOCK_OBJECT, bpffsRoot);
  if (!o) return undefined;
  const names: ServiceMapName[] = ['lb_fe', 'lb_slots', 'lb_be'];
  const missing = names.filter((n) => !o.maps.has(n));
  if (missing.length) {
    o.close();
    throw new Error(`Service maps not pinned: ${missing.join(', ')}`);
  }
  return { maps: new Map(names.map((n) => [n, bpfMapIO(o.maps.get(n)!, n)])), close: () => o.close() };
}

/**
 * An array map seen as a sparse one: an all-zero value is no entry, and deleting writes zeros
 * (arrays cannot delete). The scan of a large array is made once per apply.
 */
function sparseArray(io: MapIO): MapIO {
  const zero = Buffer.alloc(io.valueSize);
  let scan: Map<string, Buffer> | undefined;
  const live = (v: Buffer | undefined): Buffer | undefined => (v && !v.equals(zero) ? v : undefined);
  return {
    name: io.name, id: io.id, keySize: io.keySize, valueSize: io.valueSize, maxEntries: io.maxEntries,
    lookup: (k) => (scan ? scan.get(k.toString('hex')) : live(io.lookup(k))),
    update(k, v, flags) {
      scan = undefined;
      io.update(k, v, flags);
    },
    delete(k) {
      scan = undefined;
      if (!live(io.lookup(k))) return false;
      io.update(k, zero);
      return true;
    },
    keys() {
      if (!scan) {
        scan = new Map();
        for (let i = 0; i < io.maxEntries; i++) {
          const k = u32(i), v = live(io.lookup(k));
          if (v) scan.set(k.toString('hex'), v);
        }
      }
      return [...scan.keys()].map((k) => Buffer.from(k, 'hex'));
    },
  };
}

function entriesOf(io: MapIO, record: MirrorRecord): Map<string, Buffer> {
  const r = record.read(io);
  if (r) return r;
  const out = new Map<string, Buffer>();
  for (const k of io.keys()) {
    const v = io.lookup(k);
    if (v) out.set(k.toString('hex'), v);
  }
  return out;
}

export const SERVICE_ORDER: readonly Step<ServiceMapName>[] = [
  { put: 'lb_be' }, { put: 'lb_slots' }, { put: 'lb_fe' }, { prune: 'lb_fe' }, { prune: 'lb_slots' }, { prune: 'lb_be' },
];

const hexU32 = (n: number): string => u32(n).toString('hex');
const idxOf = (hex: string): number => Buffer.from(hex, 'hex').readUInt32LE(0);
const U16 = 0xffff;

/** First free range of n slots among the taken intervals [start, end), below max. */
function allocRange(taken: [number, number][], n: number, max: number): number {
  taken.sort((a, b) => a[0] - b[0]);
  let at = 0;
  for (const [s, e] of taken) {
    if (s - at >= n) break;
    at = Math.max(at, e);
  }
  if (at + n > max) throw new Error(`Service slots full: ${n} more needed, ${max} in all`);
  taken.push([at, at + n]);
  return at;
}

export interface ServicesReport {
  maps: Map<ServiceMapName, MapReport>;
  /** Frontends whose slot range was (re)allocated this round. */
  moved: number;
  /**
   * Backends that were live before this round and are not after it (taken out of their Service,
   * or their Service removed). Connected sockets translated to them are still talking to them:
   * when it is not 0, the caller runs services-term.ts terminateStale so they move to a live
   * backend.
   */
  retired: number;
}

/**
 * Writes the frontends (the whole desired set: the others are removed) into the node's Service
 * maps through a mirror recorded in record. Slot ranges: a frontend whose backends are
 * unchanged keeps its range; a changed one gets a fresh range beside every range a frontend
 * points at now, and its old range stays readable until the next round.
 */
export function applyServices(maps: ReadonlyMap<ServiceMapName, MapIO>, frontends: readonly LbFrontend[], record: MirrorRecord): ServicesReport {
  const io = (n: ServiceMapName): MapIO => {
    const m = maps.get(n);
    if (!m) throw new Error(`map ${n}: not open`);
    return m;
  };
  const feIO = io('lb_fe'), slotIO = sparseArray(io('lb_slots')), beIO = sparseArray(io('lb_be'));
  const haveFe = entriesOf(feIO, record), haveSlots = entriesOf(slotIO, record), haveBe = entriesOf(beIO, record);

  // Backend ids: one per (Service, address, port, protocol), kept while wanted.
  const beKey = (svc: number, f: LbFrontend, b: ServiceBackend): string => `${svc}|${f.family}|${b.address}|${b.port}|${f.protocol}`;
  const idOf = new Map<string, number>();
  const usedIds = new Set<number>([0]);
  for (const [k, v] of haveBe) {
    const id = idxOf(k), b = parseBeValue(v);
    usedIds.add(id);
    if (b.flags & LB_BE_VALID && !(b.flags & LB_BE_RETIRED)) idOf.set(`${b.svcId}|${b.family}|${b.address}|${b.port}|${b.protocol}`, id);
  }
  const wantBe = new Map<string, Buffer>();
  const ready = new Set<string>();
  let nextId = 1;
  const idFor = (f: LbFrontend, b: ServiceBackend, terminating: boolean): number => {
    const k = beKey(f.serviceId, f, b);
    let id = idOf.get(k);
    if (id === undefined) {
      while (usedIds.has(nextId)) nextId++;
      if (nextId >= LB_BE_MAX) throw new Error(`Service backends full: ${LB_BE_MAX - 1} ids`);
      id = nextId;
      usedIds.add(id);
      idOf.set(k, id);
    }
    if (!terminating) ready.add(k);
    // local (the endpoint's nodeName is this node): traffic from outside reaches it without SNAT.
    const local = b.local === true;
    const flags = LB_BE_VALID | (terminating && !ready.has(k) ? LB_BE_TERMINATING : 0) | (local ? LB_BE_LOCAL : 0);
    wantBe.set(hexU32(id), beValue({ family: f.family, address: b.address, port: b.port, protocol: f.protocol, flags, svcId: f.serviceId }));
    return id;
  };

  const taken: [number, number][] = [];
  const haveRanges: { base: number; cap: number }[] = [];
  for (const v of haveFe.values()) {
    const fe = parseFeValue(v);
    if (fe.cap > 0) {
      taken.push([fe.base, fe.base + fe.cap]);
      haveRanges.push({ base: fe.base, cap: fe.cap });
    }
  }
  const wantFe = new Map<string, Buffer>();
  const wantSlots = new Map<string, Buffer>();
  const keptRanges = new Set<number>();
  let moved = 0;
  for (const f of frontends) {
    if (!Number.isInteger(f.serviceId) || f.serviceId < 1 || f.serviceId > 0xffffffff) throw new Error(`frontend ${f.address}:${f.port}: serviceId ${f.serviceId} out of range`);
    const k = feKey(f).toString('hex');
    if (wantFe.has(k)) throw new Error(`frontend ${f.address}:${f.port}/${f.protocol} (${f.scope}) given twice`);
    const seen = new Set<string>();
    const uniq = (l: ServiceBackend[]): ServiceBackend[] => l.filter((b) => !seen.has(`${b.address}|${b.port}`) && (seen.add(`${b.address}|${b.port}`), true));
    const r = uniq(f.backends), t = uniq(f.terminating);
    const ids = [...r.map((b) => idFor(f, b, false)), ...t.map((b) => idFor(f, b, true))];
    if (ids.length > U16) throw new Error(`frontend ${f.address}:${f.port}: ${ids.length} backends, at most ${U16}`);
    const cur = haveFe.get(k) && parseFeValue(haveFe.get(k)!);
    let base = 0, cap = 0;
    if (cur && ids.length > 0 && cur.cap >= ids.length && ids.every((id, i) => haveSlots.get(hexU32(cur.base + i))?.readUInt32LE(0) === id)) {
      ({ base, cap } = cur);
      keptRanges.add(base);
    } else if (ids.length > 0) {
      cap = ids.length;
      base = allocRange(taken, cap, slotIO.maxEntries);
      moved++;
    }
    ids.forEach((id, i) => wantSlots.set(hexU32(base + i), u32(id)));
    const empty = ids.length === 0;
    const flags = (f.affinitySeconds > 0 ? LB_F_AFFINITY : 0) | (empty ? (f.whenEmpty === 'drop' ? LB_F_DROP : LB_F_REJECT) : 0);
    wantFe.set(k, feValue({ svcId: f.serviceId, base, count: r.length, term: t.length, flags, cap, affinityTimeout: f.affinitySeconds }));
  }
  // Ranges frontends point at now and will not after this round: kept (with their backends,
  // retired) until the next round, which prunes what no frontend points at.
  for (const { base, cap } of haveRanges) {
    if (keptRanges.has(base)) continue;
    for (let i = base; i < base + cap; i++) {
      const h = hexU32(i);
      const v = haveSlots.get(h);
      if (!v || wantSlots.has(h)) continue;
      wantSlots.set(h, v);
      const bh = hexU32(v.readUInt32LE(0));
      const b = haveBe.get(bh);
      if (b && !wantBe.has(bh)) {
        const pb = parseBeValue(b);
        wantBe.set(bh, beValue({ ...pb, flags: pb.flags | LB_BE_RETIRED }));
      }
    }
  }
  const live = (v: Buffer | undefined): boolean => v !== undefined && (parseBeValue(v).flags & (LB_BE_VALID | LB_BE_RETIRED)) === LB_BE_VALID;
  let retired = 0;
  for (const [h, v] of haveBe) if (live(v) && !live(wantBe.get(h))) retired++;
  const mirror = new Mirror<ServiceMapName>(new Map<ServiceMapName, MapIO>([['lb_fe', feIO], ['lb_slots', slotIO], ['lb_be', beIO]]), record);
  const report = mirror.apply(SERVICE_ORDER, new Map([['lb_fe', wantFe], ['lb_slots', wantSlots], ['lb_be', wantBe]]));
  return { maps: report, moved, retired };
}
