// `twill observe`: the flows the kernel recorded on this node, from its flow history (no
// reader needs to have run) or live from the programs' ring buffer (--follow), one line per
// flow as hubble observe prints them, or Hubble's JSON (-o json).
import { hostname } from 'node:os';
import type { NetConf } from '../config/types.js';
import { openNetwork } from '../bpf/loader.js';
import { flowsOff, lostEvents, parseEvent, readFlows, setReaderDeadline } from '../bpf/flows.js';
import { RingReader } from '../bpf/ringbuf.js';
import { monotonicNs } from '../sys/libc.js';
import { tryLockFile } from '../sys/flock.js';
import { localAddresses } from '../sys/podlink.js';
import { mkdirs } from '../fsx.js';
import { fileName } from '../naming.js';
import { Namer, type NameSources } from '../observe/names.js';
import { readEndpoints, readPodNames, readPodStart, readSlots, readSyncRecord } from '../state/files.js';
import { describe, type Clock, type FlowLine } from '../observe/flow.js';
import { flowFilter, type FlowFilter } from '../observe/filter.js';
import { renderLine, renderTable, type Style } from '../observe/render.js';
import { twillNetworks } from './netconfs.js';

export interface ObserveOpts {
  confDir: string;
  network?: string | undefined;
  follow: boolean;
  last?: number | undefined;
  since?: string | undefined;
  json: boolean;
  filter: FlowFilter;
}

class Problem extends Error {}

interface Source {
  conf: NetConf;
  maps: ReadonlyMap<string, number>;
  names: Namer;
  node: string;
  close(): void;
}

/** A duration back from now (30s, 10m, 2h, 1d) or a time (RFC 3339). */
export function parseSince(s: string, now = Date.now()): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(s);
  if (m) return now - Number(m[1]) * { ms: 1, s: 1e3, m: 6e4, h: 3.6e6, d: 8.64e7 }[m[2] as 'ms' | 's' | 'm' | 'h' | 'd'];
  const t = Date.parse(s);
  if (Number.isNaN(t) || !/^\d{4}-\d\d-\d\d/.test(s)) throw new Problem(`--since: "${s.slice(0, 40)}" is neither a duration (30s, 10m, 2h, 1d) nor a time (2026-12-01T10:00:00Z)`);
  return t;
}

/** bpf_ktime_get_ns() → wall clock, by one reading of both clocks. */
function wallClock(): Clock {
  const offset = BigInt(Date.now()) * 1_000_000n - monotonicNs();
  return (ns) => new Date(Number((ns + offset) / 1_000_000n));
}

/** What the network's state files say about its pods and policies, for naming flow ends. */
function nameSources(conf: NetConf): NameSources {
  return {
    endpoints: readEndpoints(conf).values(),
    podNames: readPodNames(conf),
    policies: readSyncRecord(conf)?.policies ?? [],
    slots: readSlots(conf).slots,
    selectedBy: (pod) => readPodStart(conf, pod)?.selectedBy,
  };
}

function openSources(o: ObserveOpts): Source[] {
  const confs = twillNetworks(o.confDir).flatMap((n) => (n.conf && n.conf.datapath !== 'routed' ? [n.conf] : []));
  const pick = o.network ? confs.filter((c) => c.name === o.network) : confs;
  if (pick.length === 0) throw new Problem(o.network ? `network ${o.network} is not a twill eBPF network configured in ${o.confDir}` : `no twill eBPF network is configured in ${o.confDir}`);
  const host = localAddresses();
  const out: Source[] = [];
  for (const conf of pick) {
    const net = openNetwork(conf.bpffsRoot, conf.name);
    if (!net) continue;
    const lacking = net.missing.filter((m) => m === 'flows' || m === 'observer' || m === 'events');
    if (lacking.length > 0) {
      // An upgrade added them and no ADD has made them yet: said, not skipped silently.
      process.stderr.write(`twill observe: network ${conf.name} has no ${lacking.join(', ')} map pinned yet (the next pod's ADD creates it)\n`);
      net.close();
      continue;
    }
    out.push({ conf, maps: net.maps, names: new Namer(nameSources(conf), host), node: conf.nodeName ?? hostname(), close: net.close });
  }
  if (out.length === 0) throw new Problem(`no pod of ${pick.map((c) => c.name).join(', ')} is attached on this host: the kernel holds no flows for it`);
  return out;
}

function style(json: boolean): Style {
  const tty = !json && process.stdout.isTTY === true && !process.env.NO_COLOR;
  return { color: tty, width: tty ? process.stdout.columns ?? 0 : 0 };
}

function history(srcs: Source[], o: ObserveOpts, clock: Clock, pass: (l: FlowLine) => boolean): FlowLine[] {
  const since = o.since !== undefined ? parseSince(o.since) : undefined;
  let lines: FlowLine[] = [];
  for (const s of srcs) {
    for (const e of readFlows(s.maps.get('flows')!)) {
      const l = describe(e, s.names, clock, { network: s.conf.name, node: s.node });
      if (pass(l) && (since === undefined || l.time.getTime() >= since)) lines.push(l);
    }
  }
  lines.sort((a, b) => a.time.getTime() - b.time.getTime());
  const last = o.last ?? (o.since !== undefined ? undefined : 20);
  if (last !== undefined) lines = last === 0 ? [] : lines.slice(-last);
  return lines;
}

const jsonLine = (l: FlowLine): string => `${JSON.stringify({ flow: l.flow, node_name: l.flow.node_name, time: l.flow.time })}\n`;

export async function runObserve(o: ObserveOpts): Promise<number> {
  let srcs: Source[];
  let pass: (l: FlowLine) => boolean;
  try {
    const f = flowFilter(o.filter);
    pass = (l) => f(l.flow);
    srcs = openSources(o);
  } catch (e) {
    process.stderr.write(`twill observe: ${(e as Error).message}\n`);
    return 1;
  }
  const st = style(o.json);
  const clock = wallClock();
  try {
    for (const s of srcs) if (flowsOff(s.maps.get('observer')!)) process.stderr.write(`twill observe: network ${s.conf.name} keeps no flows ("flowEntries": 0)\n`);
    if (!o.follow || o.last !== undefined || o.since !== undefined) {
      const lines = history(srcs, o, clock, pass);
      process.stdout.write(o.json ? lines.map(jsonLine).join('') : renderTable(lines, st));
    }
    return o.follow ? await follow(srcs, pass, clock, o.json, st) : 0;
  } catch (e) {
    process.stderr.write(`twill observe: ${(e as Error).message}\n`);
    return 1;
  } finally {
    for (const s of srcs) s.close();
  }
}

const READ_EVERY_MS = 100;
/** The deadline a follower keeps ahead of now: a reader killed outright stops the events within it. */
const LEASE_NS = 3_000_000_000n;

/** Streams events until SIGINT/SIGTERM or a closed stdout; one reader per network at a time (the ring buffer has one consumer position). */
async function follow(srcs: Source[], pass: (l: FlowLine) => boolean, clock: Clock, json: boolean, st: Style): Promise<number> {
  const held: { s: Source; ring: RingReader; release: () => void; lost: bigint }[] = [];
  const stop = (): void => {
    for (const h of held) {
      try {
        setReaderDeadline(h.s.maps.get('observer')!, 0n);
      } finally {
        h.ring.close();
        h.release();
      }
    }
    held.length = 0;
  };
  try {
    for (const s of srcs) {
      mkdirs(`${s.conf.stateDir}/observe`, 0o700);
      const release = tryLockFile(`${s.conf.stateDir}/observe/${fileName(s.conf.name)}.lock`);
      if (!release) throw new Problem(`another twill observe --follow is reading network ${s.conf.name} (its events have one reader at a time; the history needs none: drop --follow)`);
      let ring: RingReader;
      try {
        ring = new RingReader(s.maps.get('events')!);
      } catch (e) {
        release();
        throw e;
      }
      held.push({ s, ring, release, lost: lostEvents(s.maps.get('observer')!) });
      ring.drain(() => undefined); // what an earlier reader left: not this reader's
    }
    if (!json) process.stdout.write(renderLine(undefined, st));
    return await new Promise<number>((resolve) => {
      let done = false;
      const finish = (code: number): void => {
        if (done) return;
        done = true;
        clearInterval(lease);
        clearInterval(poll);
        stop();
        resolve(code);
      };
      const renew = (): void => {
        const until = monotonicNs() + LEASE_NS;
        for (const h of held) setReaderDeadline(h.s.maps.get('observer')!, until);
      };
      renew();
      const lease = setInterval(renew, 1000);
      const poll = setInterval(() => {
        let out = '';
        for (const h of held) {
          h.ring.drain((b) => {
            const ev = parseEvent(b);
            if (!ev) return;
            const l = describe(ev, h.s.names, clock, { network: h.s.conf.name, node: h.s.node, timeNs: ev.timeNs, kind: ev.kind });
            if (pass(l)) out += json ? jsonLine(l) : renderLine(l, st);
          });
          const lost = lostEvents(h.s.maps.get('observer')!);
          if (lost > h.lost) {
            const n = lost - h.lost;
            h.lost = lost;
            if (json) out += `${JSON.stringify({ lost_events: { source: 'PERF_EVENT_RING_BUFFER', num_events_lost: Number(n) }, node_name: h.s.node, time: new Date().toISOString() })}\n`;
            else process.stderr.write(`EVENTS LOST: ${n} (network ${h.s.conf.name}: the ring buffer was full)\n`);
          }
        }
        if (out) process.stdout.write(out);
      }, READ_EVERY_MS);
      process.once('SIGINT', () => finish(0));
      process.once('SIGTERM', () => finish(0));
      process.stdout.on('error', () => finish(0)); // | head: the reader went away
    });
  } finally {
    stop();
  }
}
