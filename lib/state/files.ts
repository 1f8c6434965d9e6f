// Where twill keeps a network's state under stateDir, and the readers of what the verbs and
// `twill sync` leave there for each other and for status, metrics, observe and policy. One
// home, so a reader never disagrees with a writer about a path, and a missing or torn file
// reads as "nothing known" everywhere the same way. Writers stay with the code that owns the
// state (datapath/policy-state.ts, policy-budget.ts, select.ts, backend.ts, promote.ts).
import { readdirSync, readFileSync } from '../sys/fs.js';
import type { NetConf } from '../config/types.js';
import { fileName } from '../naming.js';
import { ALLOW_RECORD } from '../bpf/layout.js';
import type { IdTable, PodPolicy } from '../policy/compile.js';
import { sanitizeIdTable, type ServiceIdTable } from '../services/ids.js';

type Conf = Pick<NetConf, 'stateDir' | 'name'>;

/** A JSON state file, or undefined when it is missing or unreadable (never half a value). */
export function readJson<T>(path: string): T | undefined {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch {
    return undefined;
  }
}

// Paths.
export const policyDir = (conf: Conf): string => `${conf.stateDir}/policy/${fileName(conf.name)}`;
const podBase = (conf: Conf, pod: string): string => `${policyDir(conf)}/pods/${fileName(pod.replace('/', '_'))}`;
/** A pod's start head (PodStart without its entries). */
export const podStartPath = (conf: Conf, pod: string): string => `${podBase(conf, pod)}.json`;
/** The pod's policy trie entries, ready to write: ALLOW_RECORD bytes each (key, then value). */
export const podAllowPath = (conf: Conf, pod: string): string => `${podBase(conf, pod)}.allow`;
export const endpointsDir = (conf: Conf): string => `${policyDir(conf)}/endpoints`;
export const endpointPath = (conf: Conf, hostName: string): string => `${endpointsDir(conf)}/${hostName}.json`;
export const slotsPath = (conf: Conf): string => `${policyDir(conf)}/slots.json`;
export const syncRecordPath = (conf: Conf): string => `${policyDir(conf)}/sync.json`;
export const idTablePath = (conf: Conf): string => `${policyDir(conf)}/identities.json`;
export const podNamesPath = (conf: Conf): string => `${policyDir(conf)}/names.json`;
export const budgetPath = (conf: Conf): string => `${policyDir(conf)}/budget.json`;
/** Identities ADD made for pods the last sync did not know: the next free number. */
export const learnedNextPath = (conf: Conf): string => `${policyDir(conf)}/learned-next`;
/** The record of what the last policy sync wrote into the maps (lib/mirror/record.ts). */
export const policyRecordDir = (conf: Conf): string => policyDir(conf);
export const syncedNodesPath = (conf: Conf): string => `${conf.stateDir}/nodes/${fileName(conf.name)}.json`;
export const datapathDir = (conf: Pick<Conf, 'stateDir'>): string => `${conf.stateDir}/datapath`;
export const datapathStatePath = (conf: Conf): string => `${datapathDir(conf)}/${fileName(conf.name)}.json`;
export const backendDir = (conf: Pick<Conf, 'stateDir'>): string => `${conf.stateDir}/backend`;
export const backendStatePath = (conf: Conf): string => `${backendDir(conf)}/${fileName(conf.name)}.json`;
/** The last node table that could be read (used when the current one cannot). */
export const lastGoodNodesPath = (conf: Conf): string => `${backendDir(conf)}/${fileName(conf.name)}.nodes.json`;
export const pendingDir = (conf: Conf): string => `${conf.stateDir}/pending/${fileName(conf.name)}`;

// What the files hold.

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
  /** The pod's network namespace (CNI_NETNS at ADD): where Services' socket iterators run. */
  netns?: string;
}

/** The maps a policy state fills, as MapName (bpf/layout.ts) spells them. */
export type BudgetMap = 'policy' | 'ipcache';

export interface MapUse {
  /** Entries of the state applied (or, refused, of the one still applied). */
  used: number;
  /** max_entries of the pinned map (the configured size before the first pod made it). */
  available: number;
  /** Entries the refused state needed at its peak. */
  needed?: number;
}

export interface Refusal {
  time: string;
  map: BudgetMap;
  needed: number;
  available: number;
  /** "namespace/name" of the policy asking most of that map, when a policy is the cause. */
  policy?: string;
  policyEntries?: number;
  message: string;
}

/** What the last sync of the network found of its maps: status and metrics read it. */
export interface BudgetRecord {
  time: string;
  maps: Partial<Record<BudgetMap, MapUse>>;
  refused?: Refusal;
}

// Readers.

export function readPodStart(conf: Conf, pod: string): PodStart | undefined {
  const head = readJson<Omit<PodStart, 'allow'>>(podStartPath(conf, pod));
  if (!head) return undefined;
  return {
    ...head,
    // Written before the head by the same sync: a missing or torn one leaves the pod isolated in its slot, never open.
    allow: () => {
      try {
        const b = readFileSync(podAllowPath(conf, pod));
        return b.length % ALLOW_RECORD === 0 ? b : Buffer.alloc(0);
      } catch {
        return Buffer.alloc(0);
      }
    },
  };
}

export const readSlots = (conf: Conf): Slots => readJson<Slots>(slotsPath(conf)) ?? { next: 1, slots: {} };
export const readSyncRecord = (conf: Conf): SyncRecord | undefined => readJson<SyncRecord>(syncRecordPath(conf));
export const readIdTable = (conf: Conf): IdTable | undefined => readJson<IdTable>(idTablePath(conf));
/** Pod addresses of the cluster → "namespace/name", as the last sync read them. */
export const readPodNames = (conf: Conf): Record<string, string> => readJson<Record<string, string>>(podNamesPath(conf)) ?? {};
export const readBudget = (conf: Conf): BudgetRecord | undefined => readJson<BudgetRecord>(budgetPath(conf));

/** The endpoints ADD recorded, by host interface name. */
export function readEndpoints(conf: Conf): Map<string, EndpointRecord> {
  const out = new Map<string, EndpointRecord>();
  let names: string[] = [];
  try {
    names = readdirSync(endpointsDir(conf));
  } catch {
    return out;
  }
  for (const f of names) {
    const r = readJson<EndpointRecord>(`${endpointsDir(conf)}/${f}`);
    if (r) out.set(f.replace(/\.json$/, ''), r);
  }
  return out;
}

// Services: node-wide state, under the stateDir of the networks that serve them.

export const servicesDir = (conf: Pick<Conf, 'stateDir'>): string => `${conf.stateDir}/services`;
/** (Service, port name) → stable id (services/ids.ts ServiceIdTable). */
export const serviceIdsPath = (conf: Pick<Conf, 'stateDir'>): string => `${servicesDir(conf)}/ids.json`;
/** What the last Services sync did (ServicesSyncRecord). */
export const servicesSyncPath = (conf: Pick<Conf, 'stateDir'>): string => `${servicesDir(conf)}/sync.json`;
/** The record of what the last Services apply wrote into the maps (lib/mirror/record.ts). */
export const servicesRecordDir = (conf: Pick<Conf, 'stateDir'>): string => `${servicesDir(conf)}/applied`;

export interface ServicesSyncRecord {
  time: string;
  source: string;
  bpffsRoot: string;
  cgroupRoot: string;
  services: number;
  frontends: number;
  /** Backends over every frontend (ready and terminating). */
  backends: number;
  skipped: { service: string; reason: string }[];
  problems: string[];
}

export const readServiceIds = (conf: Pick<Conf, 'stateDir'>): ServiceIdTable => sanitizeIdTable(readJson<unknown>(serviceIdsPath(conf)));
export const readServicesSync = (conf: Pick<Conf, 'stateDir'>): ServicesSyncRecord | undefined => readJson<ServicesSyncRecord>(servicesSyncPath(conf));
