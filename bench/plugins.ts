// The plugins under comparison, each with its own pool, run exactly as a runtime runs them.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { forgetNetwork } from '../testkit/netconf.js';

export const REF_DIR = process.env.CNI_BIN_DIR ?? '/usr/lib/cni';

export interface Timed {
  ms: number;
  code: number;
  stdout: string;
}

export function timedRun(bin: string, env: Record<string, string>, stdin: string): Timed {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(bin, [], { input: stdin, env: { PATH: process.env.PATH ?? '', ...env }, encoding: 'utf8' });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  return { ms, code: r.status ?? -1, stdout: r.stdout };
}

export interface Subject {
  name: string;
  bin: string;
  conf: Record<string, unknown>;
}

export type SubjectKind = 'twill' | 'twill-ebpf' | 'twill-alt' | 'twill-ebpf-alt' | 'twill-ebpf-noflows' | 'twill-ebpf-tcx' | 'twill-ebpf-policy' | 'ptp' | 'bridge';

export class Workspace {
  readonly dir = mkdtempSync(`${tmpdir()}/twill-bench-`);
  readonly binDir = `${this.dir}/bin`;

  /** names: how the tables call the executable under test and the other build (its runtime). */
  constructor(twill: string, readonly alt?: string, readonly names = { twill: 'twill', alt: 'twill (other build)' }) {
    mkdirSync(this.binDir);
    symlinkSync(twill, `${this.binDir}/twill`);
    if (alt) symlinkSync(alt, `${this.binDir}/twill-alt`);
    for (const p of ['ptp', 'bridge', 'host-local']) symlinkSync(`${REF_DIR}/${p}`, `${this.binDir}/${p}`);
  }

  subject(kind: SubjectKind, octet: number): Subject {
    const name = `bench-${kind}`;
    const ipam = { type: 'host-local', dataDir: `${this.dir}/ipam`, ranges: [[{ subnet: `10.${octet}.0.0/16` }]], routes: [{ dst: '0.0.0.0/0' }] };
    const base = { cniVersion: '1.0.0', name, ipam };
    if (kind === 'twill') return { name: `${this.names.twill} routed`, bin: `${this.binDir}/twill`, conf: { ...base, type: 'twill', datapath: 'routed', stateDir: `${this.dir}/state` } };
    if (kind === 'twill-alt') return { name: `${this.names.alt} routed`, bin: `${this.binDir}/twill-alt`, conf: { ...base, type: 'twill', datapath: 'routed', stateDir: `${this.dir}/state` } };
    if (kind === 'twill-ebpf-alt') return { name: `${this.names.alt} ebpf`, bin: `${this.binDir}/twill-alt`, conf: { ...base, type: 'twill', datapath: 'ebpf', capabilities: { bandwidth: true }, stateDir: `${this.dir}/state`, bpffsRoot: `${this.dir}/bpffs` } };
    // Declaring the bandwidth capability lets twill attach at ADD (an entry that declares nothing starts pending: datapath/promote.ts).
    if (kind === 'twill-ebpf') return { name: `${this.names.twill} ebpf`, bin: `${this.binDir}/twill`, conf: { ...base, type: 'twill', datapath: 'ebpf', capabilities: { bandwidth: true }, stateDir: `${this.dir}/state`, bpffsRoot: `${this.dir}/bpffs` } };
    if (kind === 'twill-ebpf-noflows') return { name: 'twill ebpf, no flow record', bin: `${this.binDir}/twill`, conf: { ...base, type: 'twill', datapath: 'ebpf', capabilities: { bandwidth: true }, flowEntries: 0, stateDir: `${this.dir}/state`, bpffsRoot: `${this.dir}/bpffs` } };
    if (kind === 'twill-ebpf-tcx') return { name: 'twill ebpf (tcx attach)', bin: `${this.binDir}/twill`, conf: { ...base, type: 'twill', datapath: 'ebpf', ebpfAttach: 'tcx', capabilities: { bandwidth: true }, stateDir: `${this.dir}/state`, bpffsRoot: `${this.dir}/bpffs` } };
    if (kind === 'twill-ebpf-policy') return { name: 'twill ebpf + NetworkPolicy', bin: `${this.binDir}/twill`, conf: { ...base, type: 'twill', datapath: 'ebpf', capabilities: { bandwidth: true }, policy: { type: 'k8s' }, nodeName: 'bench-node', stateDir: `${this.dir}/state`, bpffsRoot: `${this.dir}/bpffs` } };
    if (kind === 'ptp') return { name: 'ptp + host-local', bin: `${this.binDir}/ptp`, conf: { ...base, type: 'ptp' } };
    return { name: 'bridge + host-local', bin: `${this.binDir}/bridge`, conf: { ...base, type: 'bridge', bridge: `twbench${octet}`, isGateway: true } };
  }

  cleanup(): void {
    for (const kind of ['twill', 'twill-ebpf', 'twill-alt', 'twill-ebpf-alt', 'twill-ebpf-noflows', 'twill-ebpf-tcx', 'twill-ebpf-policy']) forgetNetwork(`bench-${kind}`, `${this.dir}/state`);
    for (const l of JSON.parse(spawnSync('ip', ['-j', 'link', 'show'], { encoding: 'utf8' }).stdout) as { ifname: string }[]) {
      if (l.ifname.startsWith('twbench')) spawnSync('ip', ['link', 'del', l.ifname]);
    }
    spawnSync('umount', [`${this.dir}/bpffs`]);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

let nsCounter = 0;
export function newNetns(): string {
  const name = `twb${process.pid}-${nsCounter++}`;
  const r = spawnSync('ip', ['netns', 'add', name]);
  if (r.status !== 0) throw new Error(`ip netns add ${name} failed`);
  return name;
}
export const delNetns = (name: string): void => void spawnSync('ip', ['netns', 'del', name]);

export function envFor(verb: string, id: string, ns: string, cniPath: string): Record<string, string> {
  return { CNI_COMMAND: verb, CNI_CONTAINERID: id, CNI_NETNS: `/run/netns/${ns}`, CNI_IFNAME: 'eth0', CNI_PATH: cniPath };
}
