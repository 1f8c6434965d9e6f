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
import { sourceRangeFlag } from './services-src.js';
import { linksDir, loadManifestObject, nodeDir, openObject, type LoadReport } from '../bpf/loader.js';
import { NODEPORT_OBJECT, SOCK_OBJECT, type SockMapName } from '../bpf/manifest.js';
import { bpfMapIO, dumpMap, writeMany, type MapIO } from '../bpf/map-io.js';
import { openPin } from '../bpf/pins.js';
import { closeFd } from '../bpf/sys.js';
import type { MapReport, Step } from '../mirror/mirror.js';
import type { MirrorRecord } from '../mirror/record.js';
import type { LbFrontend, ServiceBackend } from '../services/model.js';
import { backendKey, SlotAllocator, SlotsFull, type BackendRef, type Placement, type SlotRound, type WantedFrontend } from '../services/slots.js';
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

/** The order a round writes in (kept for readers of the old mirror-based order). */
export const SERVICE_ORDER: readonly Step<ServiceMapName>[] = [
  { put: 'lb_be' }, { put: 'lb_slots' }, { put: 'lb_fe' }, { prune: 'lb_fe' }, { prune: 'lb_slots' }, { prune: 'lb_be' },
];

/** The most backends of one frontend: a range is a power of two whose size fits lb_fe_val.cap (u16). */
const MAX_FRONTEND_BACKENDS = 1 << 15;

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
  /**
   * Service ports (ids) left as they were because they do not fit (too many backends for one
   * frontend, the slot array, the backend table or lb_fe full), with why: a new one is not
   * programmed, one already there keeps what it had. Everything else is applied.
   */
  refused: { serviceId: number; reason: string }[];
}

export interface ApplyServicesOptions {
  /**
   * The frontends given are every frontend of these Service ports (serviceIds) and the others
   * stay as they are: a frontend of one of them that is not given goes. Without it the
   * frontends given are the whole desired set.
   */
  only?: ReadonlySet<number>;
}

/**
 * What this process knows the maps hold, kept across rounds (one per set of maps): the slot
 * allocator, the frontends' and backends' values as written, and what the last round left
 * readable for this one to free. Trusted while the record holds the token of the last write.
 */
interface ApplyState {
  token: number;
  alloc: SlotAllocator;
  fe: Map<string, { value: Buffer; svc: number }>;
  svcFes: Map<number, Set<string>>;
  be: Map<number, Buffer>;
  /** Slots a live placement names (a slot is zeroed only when none does). */
  slotLive: Uint8Array;
  slotsLive: number;
  /** Left readable by the last round (generation gen): freed by the next. */
  left: { gen: number; slots: number[]; bes: number[] };
  /** Slots a broken frontend found at adoption pointed at: zeroed the round after it is rewritten. */
  later: number[];
}

/** The record's entry that says which state wrote the maps last. */
const TOKEN_MAP = 'lb_state';
const states = new Map<string, ApplyState>();

const live = (v: Buffer | undefined): boolean => v !== undefined && (parseBeValue(v).flags & (LB_BE_VALID | LB_BE_RETIRED)) === LB_BE_VALID;

/** The state the maps hold, read in bulk (a restarted sync re-adopts ids and ranges, so an unchanged set rewrites nothing). */
function adopt(feIO: MapIO, slotIO: MapIO, beIO: MapIO): ApplyState {
  const fes = dumpMap(feIO), slots = dumpMap(slotIO), bes = dumpMap(beIO);
  const slotAt = new Uint32Array(slotIO.maxEntries);
  for (let i = 0; i < slots.count; i++) {
    const idx = slots.keys.readUInt32LE(i * 4);
    if (idx < slotAt.length) slotAt[idx] = slots.values.readUInt32LE(i * 4);
  }
  const be = new Map<number, Buffer>();
  const held: [number, BackendRef][] = [], heldRetired: [number, BackendRef][] = [];
  const bs = beIO.valueSize;
  for (let i = 0; i < bes.count; i++) {
    const id = bes.keys.readUInt32LE(i * 4);
    const v = bes.values.subarray(i * bs, (i + 1) * bs);
    if (!(v[LB_FLAGS_AT]! & LB_BE_VALID)) continue;
    const b = parseBeValue(v);
    be.set(id, Buffer.from(v));
    (b.flags & LB_BE_RETIRED ? heldRetired : held).push([id, { address: b.address, port: b.port, protocol: b.protocol, service: b.svcId }]);
  }
  const fe = new Map<string, { value: Buffer; svc: number }>();
  const svcFes = new Map<number, Set<string>>();
  const frontends: [string, Placement][] = [];
  const fs = feIO.valueSize, ks = feIO.keySize;
  for (let i = 0; i < fes.count; i++) {
    const key = fes.keys.toString('hex', i * ks, (i + 1) * ks);
    const value = Buffer.from(fes.values.subarray(i * fs, (i + 1) * fs));
    const p = parseFeValue(value);
    fe.set(key, { value, svc: p.svcId });
    let set = svcFes.get(p.svcId);
    if (!set) svcFes.set(p.svcId, (set = new Set()));
    set.add(key);
    frontends.push([key, { base: p.base, count: p.count, term: p.term, cap: p.cap }]);
  }
  const alloc = SlotAllocator.adopt({ slots: slotIO.maxEntries, backends: beIO.maxEntries }, {
    frontends, slot: (i) => slotAt[i] ?? 0, backends: [...held, ...heldRetired],
  });
  const slotLive = new Uint8Array(slotIO.maxEntries);
  let slotsLive = 0;
  const named = new Set<number>();
  for (const [key] of frontends) {
    const p = alloc.placement(key);
    if (!p) continue;
    for (let i = 0; i < p.ids.length; i++) slotLive[p.base + i] = 1;
    slotsLive += p.ids.length;
  }
  // Slots no adopted placement names: zeroed by the first round, except those a frontend the
  // allocator found broken still points at (zeroed the round after it is rewritten).
  const leftSlots: number[] = [];
  for (const [key, pl] of frontends) if (!alloc.placement(key)) for (let i = pl.base; i < pl.base + pl.count + pl.term && i < slotAt.length; i++) named.add(i);
  const later: number[] = [];
  for (let i = 0; i < slotAt.length; i++) if (slotAt[i] && !slotLive[i]) (named.has(i) ? later : leftSlots).push(i);
  return { token: 0, alloc, fe, svcFes, be, slotLive, slotsLive, left: { gen: 0, slots: leftSlots, bes: [] }, later };
}

/** Writes gathered for one map, sent in order by flush (in batches where the map can). */
function gather(io: MapIO): { add(k: Buffer, v: Buffer): void; flush(): number } {
  let keys: Buffer[] = [], values: Buffer[] = [];
  return {
    add(k, v) {
      keys.push(k);
      values.push(v);
    },
    flush() {
      const n = keys.length;
      if (n) writeMany(io, { count: n, keys: Buffer.concat(keys), values: Buffer.concat(values) });
      keys = [];
      values = [];
      return n;
    },
  };
}

const LB_FLAGS_AT = (() => {
  // the flags byte of struct lb_be: found by encoding a known value.
  const v = beValue({ family: 4, address: '0.0.0.0', port: 0, protocol: 'TCP', flags: 0xff, svcId: 0 });
  return v.indexOf(0xff);
})();

/**
 * Writes the frontends into the node's Service maps so that a reader never meets an empty or
 * half-written Service: backends → slots → frontends (one write switches a Service) → gone
 * frontends deleted → gone backends marked retired. Slot ranges and backend ids come from a
 * SlotAllocator kept for the maps across rounds (adopted from the maps on first use); a
 * frontend whose backends are unchanged keeps its range, a changed one gets a fresh range, and
 * what a round leaves (the old range, retired backends) stays readable until the next round,
 * which frees it. With opts.only, only those Service ports are compared: a change costs what it
 * touches. record: which process wrote the maps last (another's writes make this one re-adopt).
 */
export function applyServices(maps: ReadonlyMap<ServiceMapName, MapIO>, frontends: readonly LbFrontend[], record: MirrorRecord, opts: ApplyServicesOptions = {}): ServicesReport {
  const io = (n: ServiceMapName): MapIO => {
    const m = maps.get(n);
    if (!m) throw new Error(`map ${n}: not open`);
    return m;
  };
  const feIO = io('lb_fe'), slotIO = io('lb_slots'), beIO = io('lb_be');

  // 1. The wanted frontends, checked and encoded before anything changes.
  const want = new Map<string, WantedFrontend>();
  const wantFe = new Map<string, { f: LbFrontend; ready: number; term: number }>();
  const ready = new Set<string>();
  const beOf = new Map<string, { b: ServiceBackend; f: LbFrontend; terminating: boolean }>();
  // One Service port that does not fit is left as it was, never the round: a tenant's object must not stop the others.
  const refused = new Map<number, string>();
  for (const f of frontends) {
    if (refused.has(f.serviceId)) continue;
    if (!Number.isInteger(f.serviceId) || f.serviceId < 1 || f.serviceId > 0xffffffff) throw new Error(`frontend ${f.address}:${f.port}: serviceId ${f.serviceId} out of range`);
    if (opts.only && !opts.only.has(f.serviceId)) throw new Error(`frontend ${f.address}:${f.port}: serviceId ${f.serviceId} not among the Service ports this update names`);
    const k = feKey(f).toString('hex');
    if (want.has(k)) throw new Error(`frontend ${f.address}:${f.port}/${f.protocol} (${f.scope}) given twice`);
    const seen = new Set<string>();
    const uniq = (l: ServiceBackend[]): ServiceBackend[] => l.filter((b) => !seen.has(`${b.address}|${b.port}`) && (seen.add(`${b.address}|${b.port}`), true));
    const r = uniq(f.backends), t = uniq(f.terminating);
    if (r.length + t.length > MAX_FRONTEND_BACKENDS) {
      refused.set(f.serviceId, `frontend ${f.address}:${f.port}/${f.protocol}: ${r.length + t.length} backends, at most ${MAX_FRONTEND_BACKENDS}`);
      continue;
    }
    const ref = (b: ServiceBackend): BackendRef => ({ address: b.address, port: b.port, protocol: f.protocol, service: f.serviceId });
    const rr = r.map(ref), tr = t.map(ref);
    rr.forEach((x, i) => {
      const bk = backendKey(x);
      ready.add(bk);
      beOf.set(bk, { b: r[i]!, f, terminating: false });
    });
    tr.forEach((x, i) => {
      const bk = backendKey(x);
      if (!beOf.has(bk)) beOf.set(bk, { b: t[i]!, f, terminating: true });
    });
    want.set(k, { ready: rr, terminating: tr });
    wantFe.set(k, { f, ready: r.length, term: t.length });
  }
  const keysOf = new Map<number, string[]>();
  for (const [k, { f }] of wantFe) {
    let l = keysOf.get(f.serviceId);
    if (!l) keysOf.set(f.serviceId, (l = []));
    l.push(k);
  }
  const unwant = (id: number): void => {
    for (const k of keysOf.get(id) ?? []) {
      want.delete(k);
      wantFe.delete(k);
    }
    keysOf.delete(id);
  };
  for (const id of refused.keys()) unwant(id);
  // local (the endpoint's nodeName is this node): traffic from outside reaches it without SNAT.
  const beValues = new Map<string, Buffer>();
  for (const [bk, { b, f, terminating }] of beOf) {
    const flags = LB_BE_VALID | (terminating && !ready.has(bk) ? LB_BE_TERMINATING : 0) | (b.local === true ? LB_BE_LOCAL : 0);
    beValues.set(bk, beValue({ family: f.family, address: b.address, port: b.port, protocol: f.protocol, flags, svcId: f.serviceId }));
  }

  // 2. What the maps hold: this process's state while the record says it wrote them last.
  const mapsKey = `${feIO.id}:${slotIO.id}:${beIO.id}`;
  let st = states.get(mapsKey);
  if (!st || record.mapId(TOKEN_MAP) !== st.token) {
    st = adopt(feIO, slotIO, beIO);
    states.set(mapsKey, st);
  }
  const changes = new Map<string, WantedFrontend | undefined>(want);
  if (opts.only) {
    for (const id of opts.only) for (const k of st.svcFes.get(id) ?? []) if (!want.has(k)) changes.set(k, undefined);
  } else {
    for (const k of st.fe.keys()) if (!want.has(k)) changes.set(k, undefined);
  }
  // A refused Service port keeps what the maps hold for it (its frontends are neither rewritten nor deleted).
  const keep = (id: number, reason: string): void => {
    refused.set(id, reason);
    for (const k of keysOf.get(id) ?? []) changes.delete(k);
    unwant(id);
    for (const k of st!.svcFes.get(id) ?? []) if (changes.has(k) && changes.get(k) === undefined) changes.delete(k);
  };
  for (const [id, reason] of refused) keep(id, reason);
  // lb_fe has room for what stays and what comes: else the Service ports that add the most new
  // frontends are refused, new ones before those already there (a newcomer never evicts them).
  const feCount = (): number => {
    let n = st!.fe.size;
    for (const [k, w] of changes) n += w ? (st!.fe.has(k) ? 0 : 1) : st!.fe.has(k) ? -1 : 0;
    return n;
  };
  if (feCount() > feIO.maxEntries) {
    const adds = [...keysOf].map(([id, ks]) => ({ id, n: ks.filter((k) => !st!.fe.has(k)).length, old: st!.svcFes.has(id) })).filter((x) => x.n > 0)
      .sort((a, b) => Number(a.old) - Number(b.old) || b.n - a.n || a.id - b.id);
    for (const x of adds) {
      if (feCount() <= feIO.maxEntries) break;
      keep(x.id, `${x.n} new frontends do not fit: lb_fe holds ${feIO.maxEntries}`);
    }
  }

  const reports = new Map<ServiceMapName, MapReport>((['lb_be', 'lb_slots', 'lb_fe'] as const).map((n) => [n, { put: 0, removed: 0, patched: 0, entries: 0 }]));
  const rep = (n: ServiceMapName): MapReport => reports.get(n)!;
  const ZERO_SLOT = Buffer.alloc(slotIO.valueSize), ZERO_BE = Buffer.alloc(beIO.valueSize);
  let forgot = false;
  const writing = (): void => {
    if (forgot) return;
    forgot = true;
    record.forget();
  };
  const s = st;
  const slotW = gather(slotIO), beW = gather(beIO), feW = gather(feIO);

  // 3. What the last round left readable is freed: nothing points at it any more.
  const left = s.left;
  for (const i of left.slots) {
    if (s.slotLive[i]) continue;
    writing();
    slotW.add(u32(i), ZERO_SLOT);
    rep('lb_slots').removed++;
  }
  slotW.flush();
  for (const id of left.bes) {
    if (!s.be.has(id)) continue;
    writing();
    beW.add(u32(id), ZERO_BE);
    s.be.delete(id);
    rep('lb_be').removed++;
  }
  beW.flush();
  s.alloc.release(left.gen);
  s.left = { gen: left.gen, slots: s.later, bes: [] };
  s.later = [];

  // 4. The round: ids and ranges (throws SlotsFull with nothing changed).
  const old = new Map<string, { base: number; n: number } | undefined>();
  for (const k of changes.keys()) {
    const p = s.alloc.placement(k);
    old.set(k, p && p.ids.length ? { base: p.base, n: p.ids.length } : undefined);
  }
  let round: SlotRound | undefined;
  // The slot array or the backend table cannot hold the update: refuse Service ports until it
  // fits, new ones before those already there, the hungriest first (the allocator changes
  // nothing when it throws).
  const hungry = [...keysOf].map(([id, ks]) => ({ id, n: ks.reduce((a, k) => a + (want.get(k)!.ready.length + want.get(k)!.terminating.length), 0), old: s.svcFes.has(id) }))
    .sort((a, b) => Number(a.old) - Number(b.old) || b.n - a.n || a.id - b.id);
  for (let tries = 0, next = 0; ; tries++) {
    try {
      round = s.alloc.update(changes);
      break;
    } catch (e) {
      if (!(e instanceof SlotsFull) || next >= hungry.length) throw e;
      // One at a time first; then in growing batches, so that exhaustion by many stays cheap.
      const batch = tries < 16 ? 1 : 1 << Math.min(tries - 15, 16);
      for (const x of hungry.slice(next, next + batch)) keep(x.id, `does not fit: ${e.message}`);
      next += batch;
    }
  }
  s.left.gen = round.generation;

  // 5. Backends before any slot names them; flags of kept ones (terminating, local) in place.
  const put = (id: number, v: Buffer): void => {
    const cur = s.be.get(id);
    if (cur && cur.equals(v)) return;
    writing();
    beW.add(u32(id), v);
    s.be.set(id, v);
    rep('lb_be').put++;
  };
  for (const { id, backend } of round.newBackends) put(id, beValues.get(backendKey(backend))!);
  for (const [k, w] of want) {
    const ids = s.alloc.idsOf(k)!;
    const refs = [...w.ready, ...w.terminating];
    for (let i = 0; i < refs.length; i++) put(ids[i]!, beValues.get(backendKey(refs[i]!))!);
  }
  beW.flush();
  // 6. Fresh ranges, before a frontend points at them.
  for (const { base, ids } of round.writes) {
    writing();
    for (let i = 0; i < ids.length; i++) {
      slotW.add(u32(base + i), u32(ids[i]!));
      if (!s.slotLive[base + i]) s.slotsLive++;
      s.slotLive[base + i] = 1;
    }
    rep('lb_slots').put += ids.length;
  }
  slotW.flush();
  // 7. Frontends: one write each switches it whole.
  let moved = 0;
  const switched = new Set(round.switched.map((x) => x.key));
  for (const [k, { f, ready: count, term }] of wantFe) {
    const p = s.alloc.placement(k)!;
    if (switched.has(k) && p.cap > 0) moved++;
    const empty = count + term === 0;
    const flags = (f.affinitySeconds > 0 ? LB_F_AFFINITY : 0) | (empty ? (f.whenEmpty === 'drop' ? LB_F_DROP : LB_F_REJECT) : 0) | sourceRangeFlag(f);
    const value = feValue({ svcId: f.serviceId, base: p.base, count, term, flags, cap: p.cap, affinityTimeout: f.affinitySeconds });
    const cur = s.fe.get(k);
    if (cur?.svc !== f.serviceId) {
      if (cur) s.svcFes.get(cur.svc)?.delete(k);
      let set = s.svcFes.get(f.serviceId);
      if (!set) s.svcFes.set(f.serviceId, (set = new Set()));
      set.add(k);
    }
    if (cur && cur.value.equals(value)) continue;
    writing();
    feW.add(Buffer.from(k, 'hex'), value);
    s.fe.set(k, { value, svc: f.serviceId });
    rep('lb_fe').put++;
  }
  feW.flush();
  // 8. Frontends no longer wanted.
  for (const k of round.goneFrontends) {
    const cur = s.fe.get(k);
    writing();
    if (feIO.delete(Buffer.from(k, 'hex'))) rep('lb_fe').removed++;
    if (cur) {
      const set = s.svcFes.get(cur.svc);
      set?.delete(k);
      if (set?.size === 0) s.svcFes.delete(cur.svc);
    }
    s.fe.delete(k);
  }
  // A frontend the allocator did not know (a broken one found at adoption and now unwanted) goes too.
  for (const [k, w] of changes) {
    if (w || !s.fe.has(k)) continue;
    writing();
    if (feIO.delete(Buffer.from(k, 'hex'))) rep('lb_fe').removed++;
    const svc = s.fe.get(k)!.svc;
    s.svcFes.get(svc)?.delete(k);
    s.fe.delete(k);
  }
  // 9. Ranges left by a switch or a removal: readable until the next round.
  for (const [k, o] of old) {
    if (!o) continue;
    const p = s.alloc.placement(k);
    if (p && p.base === o.base && p.ids.length) continue;
    for (let i = o.base; i < o.base + o.n; i++) {
      if (s.slotLive[i]) s.slotsLive--;
      s.slotLive[i] = 0;
      s.left.slots.push(i);
    }
  }
  // 10. Backends no frontend names: retired now (still valid for a reader of an old range, never chosen by affinity), freed next round.
  let retired = 0;
  for (const id of round.goneBackends) {
    const cur = s.be.get(id);
    s.left.bes.push(id);
    if (!cur) continue;
    if (live(cur)) retired++;
    const pb = parseBeValue(cur);
    if (pb.flags & LB_BE_RETIRED) continue;
    const v = beValue({ ...pb, flags: pb.flags | LB_BE_RETIRED });
    writing();
    beW.add(u32(id), v);
    s.be.set(id, v);
    rep('lb_be').put++;
  }
  beW.flush();
  if (forgot || s.token === 0) {
    s.token = 1 + Math.floor(Math.random() * 0x7ffffffe);
    record.write(new Map([[TOKEN_MAP, { id: s.token, keySize: 0, valueSize: 0, entries: new Map() }]]));
  }
  rep('lb_fe').entries = s.fe.size;
  rep('lb_slots').entries = s.slotsLive;
  rep('lb_be').entries = s.be.size;
  return { maps: reports, moved, retired, refused: [...refused].map(([serviceId, reason]) => ({ serviceId, reason })).sort((a, b) => a.serviceId - b.serviceId) };
}
