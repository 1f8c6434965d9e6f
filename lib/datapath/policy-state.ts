// What `twill sync` leaves for the verbs of a network that enforces policy: per local pod
// the allowances and identity it starts with (so ADD needs no API server), the identity
// table, and a record of the last sync; and per endpoint, who it is (ADD writes it from
// CNI_ARGS: K8S_POD_NAMESPACE / K8S_POD_NAME).
import { readdirSync, readFileSync, rmSync } from '../sys/fs.js';
import type { NetConf } from '../config/types.js';
import { mkdirs, writeAtomic } from '../fsx.js';
import { parseCidr, type Cidr } from '../net/ip.js';
import { ALLOW_RECORD, IPC_KEY_SIZE, IPC_VALUE_SIZE, POL_KEY_SIZE, POL_VALUE_SIZE } from '../bpf/layout.js';
import { allowKeys, type Written } from './policy.js';
import { fileName } from '../naming.js';
import type { IdTable, PodPolicy } from '../policy/compile.js';

export const policyDir = (conf: NetConf): string => `${conf.stateDir}/policy/${fileName(conf.name)}`;
const podFile = (conf: NetConf, pod: string): string => `${policyDir(conf)}/pods/${fileName(pod.replace('/', '_'))}.json`;
/** The pod's policy trie entries, ready to write: ALLOW_RECORD bytes each (key with ifindex 0, then value). */
const allowFile = (conf: NetConf, pod: string): string => `${policyDir(conf)}/pods/${fileName(pod.replace('/', '_'))}.allow`;

/** What ADD needs of a pod the last sync knew: which directions a policy selects, its identity per address, and its entries. */
export interface PodStart {
  /** The pod's slot in the policy trie (struct pol_key.slot). */
  slot: number;
  /** Computed by ADD from the API server (the sync did not know the pod): ADD writes its entries. */
  learned?: boolean;
  ingress: boolean;
  egress: boolean;
  chunks: PodPolicy['chunks'];
  selectedBy: PodPolicy['selectedBy'];
  /** The class of the pod's namespace (its addresses' ipcache entries carry it); absent: none. */
  ns?: number;
  /** Trie entries, ALLOW_RECORD bytes each: what ADD writes when the sync could not (the maps were not there yet). Read only then. */
  allow(): Buffer;
}

export interface Slots {
  next: number;
  /** Pod ("namespace/name") → slot. */
  slots: Record<string, number>;
  /** Group (PodPolicy.group) → slot: the pods selected by the same policies share one slot's entries. */
  groups?: Record<string, number>;
}

/**
 * A slot per group of this node's pods, kept while the group is. A number is never given
 * again (next only grows): an endpoint still naming an old slot never meets another group's
 * entries in it.
 */
export function assignSlots(prev: Slots, pods: ReadonlyMap<string, Pick<PodPolicy, 'group'>>): Slots {
  const out: Slots = { next: prev.next, slots: {}, groups: {} };
  for (const [key, pp] of pods) {
    const slot = out.groups![pp.group] ?? prev.groups?.[pp.group] ?? out.next++;
    out.groups![pp.group] = slot;
    out.slots[key] = slot;
  }
  return out;
}

export const readSlots = (conf: NetConf): Slots => readJson<Slots>(`${policyDir(conf)}/slots.json`) ?? { next: 1, slots: {} };
/** The id of the policy map the last sync wrote its entries into (a map made since holds none of them). */
export const readAppliedMap = (conf: NetConf): number | undefined => readJson<{ policyMapId: number }>(`${policyDir(conf)}/applied.json`)?.policyMapId;

const pack = (m: ReadonlyMap<string, Buffer>, keySize: number, valueSize: number): Buffer => {
  const b = Buffer.alloc(m.size * (keySize + valueSize));
  let o = 0;
  for (const [k, v] of m) {
    b.write(k, o, 'hex');
    v.copy(b, o + keySize);
    o += keySize + valueSize;
  }
  return b;
};
const unpack = (b: Buffer, keySize: number, valueSize: number): Map<string, Buffer> => {
  const m = new Map<string, Buffer>();
  for (let o = 0; o + keySize + valueSize <= b.length; o += keySize + valueSize) m.set(b.toString('hex', o, o + keySize), b.subarray(o + keySize, o + keySize + valueSize));
  return m;
};

/** Records what a sync wrote into the maps of these ids (see applyPolicy). */
export function writeApplied(conf: NetConf, ids: { policy: number; ipcache: number } | undefined, w: Written | undefined): void {
  mkdirs(policyDir(conf), 0o700);
  const dir = policyDir(conf);
  // The record goes first and its ids last: a sync that dies in between leaves ids that match nothing.
  writeAtomic(`${dir}/applied.json`, `${JSON.stringify({ policyMapId: 0, ipcacheMapId: 0 })}\n`);
  if (!ids || !w) return;
  writeAtomic(`${dir}/applied-policy.bin`, pack(w.policy, POL_KEY_SIZE, POL_VALUE_SIZE));
  writeAtomic(`${dir}/applied-ipcache.bin`, pack(w.ipcache, IPC_KEY_SIZE, IPC_VALUE_SIZE));
  writeAtomic(`${dir}/applied.json`, `${JSON.stringify({ policyMapId: ids.policy, ipcacheMapId: ids.ipcache })}\n`);
}

/** What the last sync wrote, if it wrote it into exactly these maps. */
export function readApplied(conf: NetConf, ids: { policy: number; ipcache: number }): Written | undefined {
  const dir = policyDir(conf);
  const rec = readJson<{ policyMapId: number; ipcacheMapId: number }>(`${dir}/applied.json`);
  if (!rec || rec.policyMapId !== ids.policy || rec.ipcacheMapId !== ids.ipcache) return undefined;
  try {
    return { policy: unpack(readFileSync(`${dir}/applied-policy.bin`), POL_KEY_SIZE, POL_VALUE_SIZE), ipcache: unpack(readFileSync(`${dir}/applied-ipcache.bin`), IPC_KEY_SIZE, IPC_VALUE_SIZE) };
  } catch {
    return undefined;
  }
}
const endpointFile = (conf: NetConf, hostName: string): string => `${policyDir(conf)}/endpoints/${hostName}.json`;

export interface SyncRecord {
  time: string;
  source: string;
  policies: string[];
  blocks: { cidr: string; except: string[] }[];
  identities: number;
  pods: number;
  ipcacheEntries: number;
  policyEntries: number;
}

export interface EndpointRecord {
  namespace: string;
  name: string;
  containerId: string;
  ifName: string;
  ifindex: number;
  addrs: string[];
}

function readJson<T>(path: string): T | undefined {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch {
    return undefined;
  }
}

export function readPodStart(conf: NetConf, pod: string): PodStart | undefined {
  const head = readJson<Omit<PodStart, 'allow'>>(podFile(conf, pod));
  if (!head) return undefined;
  return {
    ...head,
    // Written before the head by the same sync: a missing or torn one leaves the pod isolated in its slot, never open.
    allow: () => {
      try {
        const b = readFileSync(allowFile(conf, pod));
        return b.length % ALLOW_RECORD === 0 ? b : Buffer.alloc(0);
      } catch {
        return Buffer.alloc(0);
      }
    },
  };
}
export const readSyncRecord = (conf: NetConf): SyncRecord | undefined => readJson<SyncRecord>(`${policyDir(conf)}/sync.json`);
export const readIdTable = (conf: NetConf): IdTable | undefined => readJson<IdTable>(`${policyDir(conf)}/identities.json`);
/** Pod addresses of the cluster → "namespace/name", as the last sync read them. */
export const readPodNames = (conf: NetConf): Record<string, string> => readJson<Record<string, string>>(`${policyDir(conf)}/names.json`) ?? {};

/** Writes a file only when its content changed: a sync that changes nothing writes nothing but its record. */
function put(path: string, body: string | Buffer): void {
  try {
    if (readFileSync(path).equals(typeof body === 'string' ? Buffer.from(body) : body)) return;
  } catch {
    // new
  }
  writeAtomic(path, body);
}

export function writeSyncState(conf: NetConf, pods: ReadonlyMap<string, PodPolicy>, slots: Slots, table: IdTable, names: Record<string, string>, rec: SyncRecord): void {
  const dir = policyDir(conf);
  mkdirs(`${dir}/pods`, 0o700);
  const keep = new Set<string>();
  for (const [pod, p] of pods) {
    for (const f of writePodStart(conf, pod, p, slots.slots[pod]!)) keep.add(f);
  }
  for (const f of readdirSync(`${dir}/pods`)) if (!keep.has(f)) rmSync(`${dir}/pods/${f}`, { force: true });
  put(`${dir}/identities.json`, `${JSON.stringify(table)}\n`);
  put(`${dir}/slots.json`, `${JSON.stringify(slots)}\n`);
  put(`${dir}/names.json`, `${JSON.stringify(names)}\n`);
  writeAtomic(`${dir}/sync.json`, `${JSON.stringify(rec, null, 2)}\n`);
}

/** A pod's start (head and entries, entries first); returns the two file names. */
export function writePodStart(conf: NetConf, pod: string, p: PodPolicy, slot: number, learned = false): string[] {
  const f = podFile(conf, pod), a = allowFile(conf, pod);
  mkdirs(`${policyDir(conf)}/pods`, 0o700);
  const entries = [...allowKeys(slot, p)];
  const bin = Buffer.alloc(entries.length * ALLOW_RECORD);
  entries.forEach(([k, v], i) => {
    Buffer.from(k, 'hex').copy(bin, i * ALLOW_RECORD);
    v.copy(bin, i * ALLOW_RECORD + POL_KEY_SIZE);
  });
  put(a, bin);
  const head: Omit<PodStart, 'allow'> = { slot, ingress: p.ingress !== undefined, egress: p.egress !== undefined, chunks: p.chunks, selectedBy: p.selectedBy, ...(p.ns ? { ns: p.ns } : {}), ...(learned ? { learned } : {}) };
  put(f, `${JSON.stringify(head)}\n`);
  return [f.slice(f.lastIndexOf('/') + 1), a.slice(a.lastIndexOf('/') + 1)];
}

export function writeSlots(conf: NetConf, slots: Slots): void {
  mkdirs(policyDir(conf), 0o700);
  writeAtomic(`${policyDir(conf)}/slots.json`, `${JSON.stringify(slots)}\n`);
}

/** The pod address ranges of this node's IPAM (where a new local pod's address comes from). */
export function nodeRanges(conf: NetConf): Cidr[] {
  return (conf.ipam?.ranges ?? []).flat().map((r) => parseCidr(r.subnet)).filter((c): c is Cidr => c !== undefined);
}

export function writeEndpoint(conf: NetConf, hostName: string, rec: EndpointRecord): void {
  mkdirs(`${policyDir(conf)}/endpoints`, 0o700);
  writeAtomic(endpointFile(conf, hostName), `${JSON.stringify(rec)}\n`);
}

export function removeEndpoint(conf: NetConf, hostName: string): void {
  rmSync(endpointFile(conf, hostName), { force: true });
}

export function readEndpoints(conf: NetConf): Map<string, EndpointRecord> {
  const out = new Map<string, EndpointRecord>();
  let names: string[] = [];
  try {
    names = readdirSync(`${policyDir(conf)}/endpoints`);
  } catch {
    return out;
  }
  for (const f of names) {
    const r = readJson<EndpointRecord>(`${policyDir(conf)}/endpoints/${f}`);
    if (r) out.set(f.replace(/\.json$/, ''), r);
  }
  return out;
}
