// loadBalancerSourceRanges for traffic from outside the node: the node's lb_src trie
// (bpf/twill_nodeport.c, struct lb_src_key) kept equal to the ranges of the external-scope
// frontends, and the frontend flag that makes the per-packet program consult it. A round adds
// the wanted ranges before applyServices flags a frontend and removes the stale ones after it,
// so a flagged frontend never meets an empty set in between (while ranges change, the union of
// the old and the new ones is served for that moment).
import { LAYOUTS, LB_AF_INET, LB_AF_INET6, LB_F_SRCRANGE } from '../bpf/abi-sock.generated.js';
import { nodeDir } from '../bpf/loader.js';
import { bpfMapIO, type MapIO } from '../bpf/map-io.js';
import { openPin } from '../bpf/pins.js';
import { closeFd } from '../bpf/sys.js';
import { addrBytes, addrFromBytes, bits, formatCidr, network, parseCidr, type Cidr } from '../net/ip.js';
import { SysError } from '../sys/libc.js';
import type { LbFrontend } from '../services/model.js';

const K = LAYOUTS.lb_src_key;
/** svc_id and family: always matched whole, ahead of the address. */
const FIXED_BITS = 64;
const ENOSPC = 28;

/** The pin name of the trie under the node's directory (NODEPORT_OBJECT's map). */
export const SRC_MAP = 'lb_src';

/** A frontend's flag bit: set on an external-scope frontend with source ranges (the socket hooks never look). */
export const sourceRangeFlag = (f: Pick<LbFrontend, 'scope' | 'sourceRanges'>): number => (f.scope === 'external' && (f.sourceRanges?.length ?? 0) > 0 ? LB_F_SRCRANGE : 0);

export interface SrcKey {
  svcId: number;
  /** The range, in network form. */
  cidr: Cidr;
}

export function srcKey(k: SrcKey): Buffer {
  const b = Buffer.alloc(K.size);
  const c = network(k.cidr);
  b.writeUInt32LE(FIXED_BITS + c.prefix, K.offsets.prefixlen);
  b.writeUInt32LE(k.svcId, K.offsets.svc_id);
  b.writeUInt32LE(c.addr.family === 4 ? LB_AF_INET : LB_AF_INET6, K.offsets.family);
  addrBytes(c.addr).copy(b, K.offsets.addr);
  return b;
}

export function parseSrcKey(b: Buffer): SrcKey {
  const family = b.readUInt32LE(K.offsets.family) === LB_AF_INET ? 4 : 6;
  const a = b.subarray(K.offsets.addr, K.offsets.addr + (family === 4 ? 4 : 16));
  return { svcId: b.readUInt32LE(K.offsets.svc_id), cidr: { addr: addrFromBytes(Buffer.from(a)), prefix: b.readUInt32LE(K.offsets.prefixlen) - FIXED_BITS } };
}

/** The trie's entries the frontends want, by key (hex). Throws on a range that is no CIDR of the frontend's family, before anything changes. */
export function wantedSourceRanges(frontends: readonly LbFrontend[]): Map<string, SrcKey> {
  const want = new Map<string, SrcKey>();
  for (const f of frontends) {
    if (!sourceRangeFlag(f)) continue;
    for (const r of f.sourceRanges!) {
      const c = parseCidr(r);
      if (!c || c.addr.family !== f.family || c.prefix > bits(f.family)) throw new Error(`frontend ${f.address}:${f.port}: source range ${JSON.stringify(r)} is no IPv${f.family} CIDR`);
      const k: SrcKey = { svcId: f.serviceId, cidr: network(c) };
      want.set(srcKey(k).toString('hex'), k);
    }
  }
  return want;
}

export interface SourceRangesReport {
  put: number;
  removed: number;
  entries: number;
  /** Service port ids some of whose ranges did not fit: their load-balancer frontends serve only the ranges written (closed, never open). */
  full: number[];
}

export interface SourceRangesRound {
  report: SourceRangesReport;
  /** Removes the entries no frontend wants (of the Service ports `only` names, if given): after applyServices. */
  prune(): SourceRangesReport;
}

/**
 * Writes the ranges the frontends want that the trie lacks; the round's prune removes the rest.
 * With only, the frontends given are every frontend of these Service ports and the others'
 * entries stay (as applyServices' option).
 */
export function putSourceRanges(io: MapIO, frontends: readonly LbFrontend[], only?: ReadonlySet<number>): SourceRangesRound {
  const want = wantedSourceRanges(frontends);
  const have = new Set([...io.keys()].map((k) => k.toString('hex')));
  const report: SourceRangesReport = { put: 0, removed: 0, entries: have.size, full: [] };
  const one = Buffer.from([1]);
  const full = new Set<number>();
  // Service ports with fewer ranges first: one with a huge list cannot keep the others out.
  const per = new Map<number, number>();
  for (const k of want.values()) per.set(k.svcId, (per.get(k.svcId) ?? 0) + 1);
  const order = [...want].sort(([, a], [, b]) => per.get(a.svcId)! - per.get(b.svcId)! || a.svcId - b.svcId);
  for (const [hex, k] of order) {
    if (have.has(hex)) continue;
    try {
      io.update(Buffer.from(hex, 'hex'), one);
    } catch (e) {
      if (!(e instanceof SysError && e.errno === ENOSPC)) throw e;
      full.add(k.svcId);
      continue;
    }
    have.add(hex);
    report.put++;
  }
  report.full = [...full].sort((a, b) => a - b);
  report.entries = have.size;
  return {
    report,
    prune() {
      for (const hex of [...have]) {
        if (want.has(hex)) continue;
        if (only && !only.has(parseSrcKey(Buffer.from(hex, 'hex')).svcId)) continue;
        if (io.delete(Buffer.from(hex, 'hex'))) report.removed++;
        have.delete(hex);
      }
      report.entries = have.size;
      return report;
    },
  };
}

/** The node's lb_src trie, open (undefined while the per-packet program was never loaded: nothing reads ranges then). */
export function openSourceRanges(bpffsRoot: string): { io: MapIO; close(): void } | undefined {
  const fd = openPin(`${nodeDir(bpffsRoot)}/${SRC_MAP}`);
  if (fd === undefined) return undefined;
  return { io: bpfMapIO(fd, SRC_MAP), close: () => closeFd(fd) };
}

/** The ranges a trie holds, per Service port id (for status and tests). */
export function readSourceRanges(io: MapIO): Map<number, string[]> {
  const out = new Map<number, string[]>();
  for (const k of io.keys()) {
    const s = parseSrcKey(k);
    const l = out.get(s.svcId) ?? [];
    l.push(formatCidr(s.cidr));
    out.set(s.svcId, l.sort());
  }
  return out;
}
