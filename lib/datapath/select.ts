// Which data path a network runs on this host, and why: eBPF when asked for or possible,
// the routed path otherwise. The decision is recorded for CHECK and `twill status`.
import { Code, CniError } from '../cni/errors.js';
import type { NetConf } from '../config/types.js';
import type { Addr } from '../net/ip.js';
import { mkdirs, writeAtomic } from '../fsx.js';
import { log } from '../log.js';
import { ebpfAdd, ebpfDel, type EbpfNet, type EndpointSpec } from './ebpf.js';
import { listHostLinkNames } from '../sys/podlink.js';
import { datapathDir, datapathStatePath as statePath, readJson } from '../state/files.js';
import { kernelFacts } from '../bpf/btf.js';

export interface DatapathState {
  mode: 'ebpf' | 'routed';
  attach?: 'tcx' | 'legacy' | 'none';
  reason?: string;
}

export const ebpfNet = (conf: NetConf): EbpfNet => ({
  root: conf.bpffsRoot, network: conf.name, attach: conf.ebpfAttach, maxEndpoints: conf.maxEndpoints, flowEntries: conf.flowEntries,
  ...(conf.policy ? { policy: { ipcache: conf.policy.ipcacheEntries, policy: conf.policy.policyEntries } } : {}),
});

/**
 * Why a network that enforces policy cannot run here, or undefined. Policy lives in the eBPF
 * programs: a network that would fall back to the routed path would run unenforced. ADD asks
 * about the configuration only (it then tries for real); STATUS also about the host.
 */
export function policyBlocker(conf: NetConf, host = false): string | undefined {
  if (!conf.policy) return undefined;
  if (conf.datapath === 'routed') return 'NetworkPolicy enforcement needs the eBPF data path, and the network is configured "datapath": "routed"';
  if (!host) return undefined;
  const st = readDatapathState(conf);
  if (st?.mode === 'routed') return `NetworkPolicy enforcement needs the eBPF data path, which this host could not use: ${st.reason ?? 'unknown reason'}`;
  try {
    kernelFacts(['bpf_skb_ct_lookup', 'bpf_ct_release'], [['nf_conn', 'status']]);
  } catch (e) {
    return `NetworkPolicy enforcement needs the eBPF data path, which this host cannot run: ${(e as Error).message}`;
  }
  return undefined;
}
export const readDatapathState = (conf: NetConf): DatapathState | undefined => readJson<DatapathState>(statePath(conf));

function record(conf: NetConf, st: DatapathState): void {
  const prev = readDatapathState(conf);
  if (prev && prev.mode === st.mode && prev.attach === st.attach && prev.reason === st.reason) return;
  mkdirs(datapathDir(conf), 0o700);
  writeAtomic(statePath(conf), `${JSON.stringify(st)}\n`);
}

/** True when runtimeConfig.bandwidth asks the bandwidth plugin to shape this pod. */
export function isShaped(conf: NetConf): boolean {
  const bw = conf.runtimeConfig?.bandwidth;
  if (!bw) return false;
  return (bw.ingressRate ?? 0) > 0 || (bw.egressRate ?? 0) > 0;
}

/**
 * What twill knows of the pod's shaping: runtimeConfig.bandwidth when its entry declares the
 * bandwidth capability (or the runtime passed it anyway), else nothing (datapath/promote.ts).
 */
export function shaping(conf: NetConf): 'shaped' | 'unshaped' | 'unknown' {
  if (isShaped(conf)) return 'shaped';
  return conf.capabilities?.bandwidth === true || conf.runtimeConfig?.bandwidth !== undefined ? 'unshaped' : 'unknown';
}

export function setupDatapath(conf: NetConf, spec: EndpointSpec): DatapathState & { pending?: boolean } {
  if (conf.datapath === 'routed') return { mode: 'routed', reason: 'configured' };
  try {
    const attach = ebpfAdd(ebpfNet(conf), spec);
    if (attach === 'none') return { mode: 'ebpf', attach, reason: 'shaped by the bandwidth plugin: no fast path' };
    if (attach === 'pending') return { mode: 'ebpf', attach: 'none', pending: true, reason: 'shaping not known until the chain is done: fast path pending' };
    const st: DatapathState = { mode: 'ebpf', attach: conf.ebpfAttach === 'tcx' ? 'tcx' : attach };
    record(conf, st);
    return st;
  } catch (e) {
    const reason = (e as Error).message;
    if (conf.policy) {
      // Never a silent allow-all: record why, so STATUS reports it too.
      record(conf, { mode: 'routed', reason: `eBPF unavailable: ${reason}` });
      throw new CniError(Code.NotAvailable, `NetworkPolicy is enforced on this network, and the eBPF data path it needs is unavailable: ${reason}`);
    }
    if (conf.datapath === 'ebpf') throw new CniError(Code.NotAvailable, `eBPF data path unavailable: ${reason}`, 'set "datapath": "auto" to fall back to the routed path');
    log.warn('eBPF data path unavailable, using the routed path', { reason });
    const st: DatapathState = { mode: 'routed', reason: `eBPF unavailable: ${reason}` };
    record(conf, st);
    return st;
  }
}

/** Removes the endpoint from the data path; returns pins to remove once the veth is gone. */
export function teardownDatapath(conf: NetConf, hostName: string, hostIndex: number | undefined, addrs: Addr[]): string[] {
  if (conf.datapath === 'routed') return [];
  return ebpfDel(ebpfNet(conf), hostName, hostIndex, addrs, listHostLinkNames);
}

