// Traffic between test namespaces: iperf3 throughput and TCP reachability, always bounded.
import { spawnSync } from 'node:child_process';
import { inNs, sh, tempDir } from './twill.js';

let port = 5300;

/** Starts a one-shot iperf3 server in ns (on fixed, or the next free test port); returns its port. */
export function iperfServer(ns: string, fixed?: number): number {
  const p = fixed ?? port++;
  inNs(ns, ['iperf3', '-s', '-1', '-D', '-p', String(p)]);
  spawnSync('sleep', ['0.2']);
  return p;
}

/** Bits per second received, or 0 when the transfer failed. */
/** omit: seconds not counted at the start (a token bucket's initial burst, TCP slow start). */
export function iperf(ns: string | undefined, addr: string, p: number, seconds = 1, reverse = false, omit = 0): number {
  const args = ['iperf3', '-c', addr, '-p', String(p), '-t', String(seconds), '-J', '--connect-timeout', '2000', ...(reverse ? ['-R'] : []), ...(omit ? ['-O', String(omit)] : [])];
  const r = ns ? spawnSync('ip', ['netns', 'exec', ns, ...args], { encoding: 'utf8', timeout: 20_000 }) : spawnSync(args[0]!, args.slice(1), { encoding: 'utf8', timeout: 20_000 });
  try {
    return JSON.parse(r.stdout).end.sum_received.bits_per_second as number;
  } catch {
    return 0;
  }
}

/** A throw-away bpffs mount point; release() unmounts it. */
export function tempBpffs(): { root: string; release(): void } {
  const root = tempDir('bpffs');
  return {
    root,
    release: () => {
      sh('umount', [root], { allowFail: true });
      sh('rm', ['-rf', root], { allowFail: true });
    },
  };
}

export function endpointsJson(root: string): { network: string; addr: string; hostIfName: string; containerId: string; fastPath: boolean; counters?: { redirectPackets: number; passPackets: number } }[] {
  return JSON.parse(sh(process.env.TWILL_BIN ?? 'dist/twill', ['endpoints', '--json', '--bpffs-root', root]));
}

/** A short TCP transfer from client to addr (a server started in server); true when it went through. */
export function tcpTransfer(client: string, server: string, addr: string, bytes = '2M'): boolean {
  const p = iperfServer(server);
  const r = spawnSync('ip', ['netns', 'exec', client, 'iperf3', '-c', addr, '-p', String(p), '-n', bytes, '-J', '--connect-timeout', '2000'], { encoding: 'utf8', timeout: 20_000 });
  try {
    return JSON.parse(r.stdout).end.sum_received.bytes > 0;
  } catch {
    return false;
  }
}
