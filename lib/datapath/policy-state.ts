// What `twill sync` leaves for the verbs of a network that enforces policy: per local pod
// the allowances and identity it starts with (so ADD needs no API server), the identity
// table, and a record of the last sync; and per endpoint, who it is (ADD writes it from
// CNI_ARGS: K8S_POD_NAMESPACE / K8S_POD_NAME). The paths and readers are lib/state/files.ts.
import { readdirSync, readFileSync, rmSync } from '../sys/fs.js';
import type { NetConf } from '../config/types.js';
import { mkdirs, writeAtomic } from '../fsx.js';
import { parseCidr, type Cidr } from '../net/ip.js';
import { ALLOW_RECORD, POL_KEY_SIZE } from '../bpf/layout.js';
import { allowKeys } from './policy.js';
import type { IdTable, PodPolicy } from '../policy/compile.js';
import { fileRecord, type MirrorRecord } from '../mirror/record.js';
import {
  endpointPath, endpointsDir, idTablePath, podAllowPath, podNamesPath, podStartPath, policyDir, policyRecordDir, slotsPath, syncRecordPath,
  type EndpointRecord, type PodStart, type Slots, type SyncRecord,
} from '../state/files.js';

export type { PodStart } from '../state/files.js';

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

/** What the last policy sync wrote into the network's policy and ipcache maps, by map id. */
export const policyRecord = (conf: NetConf): MirrorRecord => fileRecord(policyRecordDir(conf));

/** The id of the policy map the last sync wrote its entries into (a map made since holds none of them). */
export const readAppliedMap = (conf: NetConf): number | undefined => policyRecord(conf).mapId('policy');

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
  put(idTablePath(conf), `${JSON.stringify(table)}\n`);
  put(slotsPath(conf), `${JSON.stringify(slots)}\n`);
  put(podNamesPath(conf), `${JSON.stringify(names)}\n`);
  writeAtomic(syncRecordPath(conf), `${JSON.stringify(rec, null, 2)}\n`);
}

/** A pod's start (head and entries, entries first); returns the two file names. */
export function writePodStart(conf: NetConf, pod: string, p: PodPolicy, slot: number, learned = false): string[] {
  const f = podStartPath(conf, pod), a = podAllowPath(conf, pod);
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
  writeAtomic(slotsPath(conf), `${JSON.stringify(slots)}\n`);
}

/** The pod address ranges of this node's IPAM (where a new local pod's address comes from). */
export function nodeRanges(conf: NetConf): Cidr[] {
  return (conf.ipam?.ranges ?? []).flat().map((r) => parseCidr(r.subnet)).filter((c): c is Cidr => c !== undefined);
}

export function writeEndpoint(conf: NetConf, hostName: string, rec: EndpointRecord): void {
  mkdirs(endpointsDir(conf), 0o700);
  writeAtomic(endpointPath(conf, hostName), `${JSON.stringify(rec)}\n`);
}

export function removeEndpoint(conf: NetConf, hostName: string): void {
  rmSync(endpointPath(conf, hostName), { force: true });
}
