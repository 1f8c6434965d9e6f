// `twill version`: what this build is and what the host offers it.
import { readFileSync } from '../sys/fs.js';
import { SUPPORTED_VERSIONS } from '../cni/versions.js';
import { kernelBtf } from '../bpf/btf.js';

export interface HostFeatures {
  kernel: string;
  btf: boolean;
  tcx: boolean;
  ringbuf: boolean;
  conntrackKfuncs: boolean;
}

/** Read from the kernel's BTF: a function or type the kernel has is a feature it offers. */
export function hostFeatures(): HostFeatures {
  let kernel = 'unknown';
  try {
    kernel = readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim();
  } catch {
    // not Linux, or /proc not mounted
  }
  try {
    const btf = kernelBtf();
    return {
      kernel, btf: true,
      tcx: btf.funcId('tcx_link_attach') !== undefined,
      ringbuf: btf.funcId('bpf_ringbuf_output') !== undefined || btf.memberOffset('bpf_ringbuf', 'mask') !== undefined,
      conntrackKfuncs: btf.funcId('bpf_skb_ct_lookup') !== undefined && btf.funcId('bpf_ct_release') !== undefined,
    };
  } catch {
    return { kernel, btf: false, tcx: false, ringbuf: false, conntrackKfuncs: false };
  }
}

/** The JavaScript runtime this executable was built with (Bun reports a Node version too). */
function runtime(): string {
  const bun = (globalThis as { Bun?: { version: string } }).Bun;
  return bun ? `bun ${bun.version}` : `node ${process.version}`;
}

export function runVersion(o: { version: string; json: boolean }): number {
  const out = { version: o.version, cniVersions: [...SUPPORTED_VERSIONS], runtime: runtime(), host: hostFeatures() };
  if (o.json) {
    process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
    return 0;
  }
  const yes = (b: boolean): string => (b ? 'yes' : 'no');
  const h = out.host;
  process.stdout.write([
    `twill ${out.version}`,
    `CNI spec versions: ${out.cniVersions.join(', ')}`,
    `runtime:           ${out.runtime}`,
    `kernel:            ${h.kernel}`,
    `BTF:               ${yes(h.btf)}`,
    `tcx:               ${yes(h.tcx)}`,
    `ringbuf:           ${yes(h.ringbuf)}`,
    `conntrack kfuncs:  ${yes(h.conntrackKfuncs)} (the eBPF fast path needs them)`,
  ].join('\n') + '\n');
  return 0;
}
