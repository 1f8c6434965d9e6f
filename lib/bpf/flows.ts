// The flow record the tc programs keep (the flows LRU map) and the controls of their events
// (the observer array): who reads, how many events found no room.
import { FLOW_EVENT_SIZE, FLOW_KEY_SIZE, FLOW_VALUE_SIZE, OBS_CONF, OBS_CONF_OFF, OBS_LOST, OBS_READER, obsIndex, parseFlowKey, parseFlowValue, u64, type FlowKey, type FlowRecord } from './layout.js';
import { mapKeys, mapLookup, mapUpdate } from './sys.js';

export interface FlowEntry {
  key: FlowKey;
  rec: FlowRecord;
}

export interface FlowEvent extends FlowEntry {
  /** bpf_ktime_get_ns() of the packet. */
  timeNs: bigint;
  kind: number;
}

/** Every flow the map holds now (entries the programs evict meanwhile are skipped). */
export function readFlows(flowsFd: number): FlowEntry[] {
  const out: FlowEntry[] = [];
  const v = Buffer.alloc(FLOW_VALUE_SIZE);
  for (const k of mapKeys(flowsFd, FLOW_KEY_SIZE)) if (mapLookup(flowsFd, k, v)) out.push({ key: parseFlowKey(k), rec: parseFlowValue(v) });
  return out;
}

export function parseEvent(b: Buffer): FlowEvent | undefined {
  if (b.length < FLOW_EVENT_SIZE) return undefined;
  return { timeNs: b.readBigUInt64LE(0), kind: b.readUInt32LE(8), key: parseFlowKey(b, 12), rec: parseFlowValue(b, 12 + FLOW_KEY_SIZE) };
}

function slot(observerFd: number, i: number): bigint {
  const v = Buffer.alloc(8);
  return mapLookup(observerFd, obsIndex(i), v) ? v.readBigUInt64LE(0) : 0n;
}

/** Events are written while bpf_ktime_get_ns() < untilNs (0: stop now). */
export const setReaderDeadline = (observerFd: number, untilNs: bigint): void => mapUpdate(observerFd, obsIndex(OBS_READER), u64(untilNs));
export const readerDeadline = (observerFd: number): bigint => slot(observerFd, OBS_READER);
export const lostEvents = (observerFd: number): bigint => slot(observerFd, OBS_LOST);
export const flowsOff = (observerFd: number): boolean => (slot(observerFd, OBS_CONF) & BigInt(OBS_CONF_OFF)) !== 0n;
