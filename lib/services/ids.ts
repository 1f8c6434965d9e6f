// Stable ids of Service ports, and the compile's frontends as apply's input. An id keys the
// kernel's affinity and reverse translation and names the Service in `twill services`: it must
// survive restarts of the sync (the table is kept in a state file) and must not be handed to
// another Service port while anything may still carry the old one. Pure: the caller reads and
// writes the table.
import type { Frontend, LbFrontend, ServicesModel } from './model.js';

/** The table as stored: (Service, port name) → id, and where the next new id is searched from. */
export interface ServiceIdTable {
  /** The next id to try; ids are handed out upwards and wrap at 2^32 - 1 (never 0). */
  next: number;
  /** "namespace/name|portName" → id. */
  ids: Record<string, number>;
}

export const MAX_SERVICE_ID = 0xffffffff;

export const emptyIdTable = (): ServiceIdTable => ({ next: 1, ids: {} });

/** A Service port's key in the table. */
export const servicePortKey = (service: string, portName: string): string => `${service}|${portName}`;

/** The Service ("namespace/name") and port name of a key. */
export function splitServicePortKey(key: string): { service: string; portName: string } {
  const i = key.lastIndexOf('|');
  return i < 0 ? { service: key, portName: '' } : { service: key.slice(0, i), portName: key.slice(i + 1) };
}

const validId = (n: unknown): n is number => typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= MAX_SERVICE_ID;

/** A table read from a file, checked: anything malformed is dropped (a torn or hand-edited file). */
export function sanitizeIdTable(x: unknown): ServiceIdTable {
  const o = typeof x === 'object' && x !== null ? (x as Record<string, unknown>) : {};
  const ids: Record<string, number> = {};
  const seen = new Set<number>();
  const raw = typeof o.ids === 'object' && o.ids !== null ? (o.ids as Record<string, unknown>) : {};
  for (const [k, v] of Object.entries(raw)) {
    // Two keys claiming one id: the first keeps it, the other gets a fresh one.
    if (!validId(v) || seen.has(v)) continue;
    seen.add(v);
    ids[k] = v;
  }
  return { next: validId(o.next) ? o.next : 1, ids };
}

/**
 * The table for the Service ports wanted now: a port already in the table keeps its id; a new
 * one gets the next id not in the table (upwards from `next`, wrapping past 2^32 - 1 to 1); a
 * port no longer wanted leaves the table. As `next` only moves on, a freed id comes back only
 * after the whole id space went round.
 */
export function allocateServiceIds(prev: ServiceIdTable, wanted: Iterable<string>): ServiceIdTable {
  const want = [...new Set(wanted)].sort();
  const ids: Record<string, number> = {};
  const used = new Set<number>();
  for (const k of want) {
    const id = prev.ids[k];
    if (validId(id) && !used.has(id)) {
      ids[k] = id;
      used.add(id);
    }
  }
  // Ids of ports that left are not reused in this round either (their frontends go in this very apply).
  for (const v of Object.values(prev.ids)) if (validId(v)) used.add(v);
  const fresh = want.filter((k) => ids[k] === undefined).length;
  if (used.size + fresh > MAX_SERVICE_ID) throw new Error(`Service port ids exhausted: ${fresh} more wanted`);
  let next = validId(prev.next) ? prev.next : 1;
  for (const k of want) {
    if (ids[k] !== undefined) continue;
    while (used.has(next)) next = next >= MAX_SERVICE_ID ? 1 : next + 1;
    ids[k] = next;
    used.add(next);
    next = next >= MAX_SERVICE_ID ? 1 : next + 1;
  }
  return { next, ids };
}

/** The Service port keys of a model's frontends. */
export const modelServicePorts = (m: Pick<ServicesModel, 'frontends'>): string[] => m.frontends.map((f) => servicePortKey(f.service, f.portName));

/** One frontend as apply writes it: the id of its Service port; its verdict with no backend. */
export function toLbFrontend(f: Frontend, table: ServiceIdTable): LbFrontend {
  const serviceId = table.ids[servicePortKey(f.service, f.portName)];
  if (!validId(serviceId)) throw new Error(`Service ${f.service} port ${JSON.stringify(f.portName)}: no id`);
  const be = (l: Frontend['backends']['ready']): LbFrontend['backends'] => l.map((b) => ({ address: b.address, port: b.port, ...(b.local ? { local: true } : {}) }));
  // forward with backends; reject/drop only matter with none: "forward" cannot be empty, but a
  // frontend whose verdict is not drop is refused like kube-proxy's REJECT.
  return {
    family: f.family, address: f.address, port: f.port, protocol: f.protocol, scope: f.scope, serviceId,
    backends: be(f.backends.ready), terminating: be(f.backends.terminating),
    whenEmpty: f.verdict === 'drop' ? 'drop' : 'reject', affinitySeconds: f.affinitySeconds,
    ...(f.sourceRanges.length ? { sourceRanges: [...f.sourceRanges] } : {}),
  };
}

/** Every frontend of the model for apply, with the ids of the table (allocateServiceIds of modelServicePorts). */
export const toLbFrontends = (m: Pick<ServicesModel, 'frontends'>, table: ServiceIdTable): LbFrontend[] => m.frontends.map((f) => toLbFrontend(f, table));
