// Moving connected sockets off backends that left their Service: after an apply that retired
// backends, the socket iterators of the Services object (bpf/lib/lb_term.h) run in the host's
// network namespace and in each pod's. A connected socket the hooks translated to a backend that
// is no longer live is destroyed: the application's next recv/send fails with ECONNABORTED, it
// reconnects, and connect() chooses a live backend. An iterator sees one namespace only (the one
// it was created in), hence one run per namespace. Unconnected UDP needs nothing: sendmsg
// translates each datagram afresh.
import { readdirSync, statSync } from '../sys/fs.js';
import type { NetConf } from '../config/types.js';
import { runIterator } from '../bpf/attach/iter.js';
import { nodeDir } from '../bpf/loader.js';
import { SOCK_OBJECT } from '../bpf/manifest.js';
import { openPin } from '../bpf/pins.js';
import { closeFd } from '../bpf/sys.js';
import { readEndpoints } from '../state/files.js';

/** The host's own network namespace in TermReport.byNetns. */
export const HOST_NETNS = 'host';

export interface TermOptions {
  /**
   * Also destroy established TCP connections to a backend that left (default off: kube-proxy
   * leaves TCP alone, and a backend deleted outright resets them anyway).
   */
  tcp?: boolean;
}

export interface TermReport {
  /** Sockets destroyed in all the namespaces. */
  destroyed: number;
  /** Sockets destroyed per namespace (HOST_NETNS, or the path given). */
  byNetns: Map<string, number>;
  /** Their cookies (SO_COOKIE), per namespace. */
  cookies: Map<string, bigint[]>;
  /** Namespaces that could not be iterated (a pod deleted meanwhile): skipped. */
  errors: { netns: string; error: string }[];
  /** The pinned Services object has no socket iterators (Services never loaded, or an older build). */
  unavailable?: true;
}

/** The pinned program of an iterator of the Services object, whatever build pinned it. */
function pinnedIterator(bpffsRoot: string, name: string): number | undefined {
  const spec = SOCK_OBJECT.programs.find((p) => p.name === name);
  if (!spec) return undefined;
  const pin = new RegExp(`^${spec.pin.replace('{hash}', '[0-9a-f]{16}')}$`);
  let files: string[];
  try {
    files = readdirSync(nodeDir(bpffsRoot));
  } catch {
    return undefined;
  }
  for (const f of files) {
    if (!pin.test(f)) continue;
    const fd = openPin(`${nodeDir(bpffsRoot)}/${f}`);
    if (fd !== undefined) return fd;
  }
  return undefined;
}

const cookiesOf = (b: Buffer): bigint[] => Array.from({ length: Math.floor(b.length / 8) }, (_, i) => b.readBigUInt64LE(i * 8));

/** A namespace's identity (paths that name one namespace run once). */
function nsId(path: string): string | undefined {
  try {
    const st = statSync(path);
    return `${st.dev}:${st.ino}`;
  } catch {
    return undefined;
  }
}

/**
 * Runs the socket iterators in the caller's network namespace (the host's) and in each of
 * netnsPaths: connected UDP sockets (and, with opts.tcp, established TCP connections) that the
 * hooks translated to a backend no longer live are destroyed.
 *
 * Called by the sync's Services reconciler (lib/cli/sync-services.ts), from the host's network
 * namespace, with podNetnsPaths() of every network that serves Services:
 * - after an applyServices whose report says retired > 0, before the next apply (which prunes
 *   the retired backends; a socket judged after that is still destroyed, as its backend id is
 *   gone, but a socket seen by no run stays on its backend);
 * - once after the first apply of a sync that starts: a sync that stopped between an apply and
 *   this call left sockets on backends it retired.
 * A run with nothing stale destroys nothing, so an extra run is harmless (one pass over the
 * sockets of each namespace).
 */
export function terminateStale(t: { bpffsRoot: string }, netnsPaths: readonly string[], opts: TermOptions = {}): TermReport {
  const report: TermReport = { destroyed: 0, byNetns: new Map(), cookies: new Map(), errors: [] };
  const names = ['twill_term_udp', ...(opts.tcp ? ['twill_term_tcp'] : [])];
  const progs: number[] = [];
  try {
    for (const n of names) {
      const fd = pinnedIterator(t.bpffsRoot, n);
      if (fd === undefined) return { ...report, unavailable: true };
      progs.push(fd);
    }
    const seen = new Set<string>([nsId('/proc/thread-self/ns/net') ?? '']);
    const targets: (string | undefined)[] = [undefined];
    for (const p of netnsPaths) {
      const id = nsId(p);
      if (id === undefined) {
        report.errors.push({ netns: p, error: 'does not exist' });
        continue;
      }
      if (seen.has(id)) continue;
      seen.add(id);
      targets.push(p);
    }
    for (const ns of targets) {
      const key = ns ?? HOST_NETNS;
      try {
        const got = progs.flatMap((fd) => cookiesOf(runIterator(fd, ns)));
        report.byNetns.set(key, got.length);
        report.cookies.set(key, got);
        report.destroyed += got.length;
      } catch (e) {
        report.errors.push({ netns: key, error: (e as Error).message });
      }
    }
    return report;
  } finally {
    for (const fd of progs) closeFd(fd);
  }
}

/**
 * The network namespaces of the network's pods on this node, as ADD recorded them (CNI_NETNS):
 * where terminateStale looks beside the host's. Pods added before the records kept it are not
 * named.
 */
export function podNetnsPaths(conf: Pick<NetConf, 'stateDir' | 'name'>): string[] {
  const out = new Set<string>();
  for (const r of readEndpoints(conf).values()) if (typeof r.netns === 'string' && r.netns.startsWith('/')) out.add(r.netns);
  return [...out].sort();
}
