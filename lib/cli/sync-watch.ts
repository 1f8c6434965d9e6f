// `twill sync --watch` against the API server: the policy reconciler subscribes to the
// cluster cache's Namespaces, Pods and NetworkPolicies (cluster/cache.ts, watched by
// cluster/watch.ts) and every change reaches the kernel within a debounce of milliseconds;
// the node table keeps its interval.
import type { NetConf } from '../config/types.js';
import type { KubeAccess } from '../cluster/k8s.js';
import { ClusterCache, policyObjects } from '../cluster/cache.js';
import { realClock, type Clock } from '../cluster/clock.js';
import { Reconciler, type ReconcilerOptions } from '../cluster/reconciler.js';
import type { InformerOptions } from '../cluster/watch.js';
import type { KindName } from '../cluster/kinds.js';
import type { PodObj } from '../policy/objects.js';
import { AddressClaims } from '../policy/owners.js';
import type { IdTable } from '../policy/compile.js';
import { applyRemotePod, syncNetworkPolicyView, type PolicySync, type PolicyView } from './sync-policy.js';

export type Log = (level: 'info' | 'warn' | 'error', msg: string, fields: Record<string, unknown>) => void;

export function logLine(level: string, msg: string, fields: Record<string, unknown>): void {
  process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields })}\n`);
}

/** What the reconciler does to a network's maps (sync-policy.ts; a test gives its own). */
export interface PolicyOps {
  full(conf: NetConf, objects: ReturnType<typeof policyObjects>, source: string, table: IdTable | undefined): { sync: PolicySync; view: PolicyView };
  remote(conf: NetConf, view: PolicyView, pod: PodObj | undefined, gone: string[]): number;
}

const realOps: PolicyOps = { full: syncNetworkPolicyView, remote: applyRemotePod };

export const POLICY_KINDS: readonly KindName[] = ['Namespace', 'Pod', 'NetworkPolicy'];

export const POLICY_TIMING: Omit<ReconcilerOptions, 'clock'> = {
  debounceMs: 20,
  /** The promised full compile at least every minute, events or not. */
  resyncMs: 60_000,
  retryBaseMs: 1000,
  retryMaxMs: 60_000,
};

/**
 * Subscribes policy to the cache. A change of one pod of another node is applied alone
 * (sync-policy.ts applyRemotePod: work that grows with this node's rules, not with the
 * cluster); anything else — a namespace, a policy, a pod of this node, a fresh list —
 * compiles everything again.
 */
export function policyReconciler(cache: ClusterCache, networks: () => NetConf[], source: string, opts: { clock?: Clock; ops?: PolicyOps; log?: Log; timing?: Partial<Omit<ReconcilerOptions, 'clock'>> } = {}): Reconciler {
  const ops = opts.ops ?? realOps;
  const log = opts.log ?? logLine;
  const clock = opts.clock ?? realClock;
  let first = true;
  /** Remote pods changed since the last apply (or whose share of an address did), with the addresses they owned then. */
  const changedPods = new Map<string, string[]>();
  const views = new Map<string, PolicyView>();
  const objects = policyObjects(cache);
  // Who owns each address as pods come and go: a late event of a pod that no longer owns an address never touches it.
  const claims = new AddressClaims(objects.pods);
  const isLocal = (key: string, p: PodObj | undefined): boolean => [...views.values()].some((v) => v.local.has(key) || p?.nodeName === v.node);

  const run = ({ full }: { full: boolean }): boolean => {
    // Until every kind has been listed once, a partial view would isolate or open pods wrongly.
    if (!cache.synced(POLICY_KINDS)) return false;
    const started = clock.now();
    const pods = [...changedPods];
    changedPods.clear();
    const failed: string[] = [];
    for (const conf of networks()) {
      try {
        const view = views.get(conf.name);
        if (!full && view) {
          let written = 0;
          for (const [key, oldIps] of pods) {
            const now = claims.owned(key);
            // An address another pod owns now is that pod's to write (it changed too): only one nobody owns goes.
            const gone = oldIps.filter((ip) => !now?.ips.includes(ip) && claims.owner(ip) === undefined);
            written += ops.remote(conf, view, now, gone);
          }
          log('info', 'policy updated', { network: conf.name, ms: clock.now() - started, pods: pods.map(([k]) => k), written, incremental: true });
          continue;
        }
        const { sync: r, view: v } = ops.full(conf, objects, source, view?.compiled.table);
        views.set(conf.name, v);
        const a = r.applied;
        log('info', first ? 'policy synced' : 'policy updated', {
          network: conf.name, ms: clock.now() - started, policies: r.policies, identities: r.identities,
          ...(a ? { added: a.policyAdded, removed: a.policyRemoved, ipcacheChanged: a.ipcacheChanged, endpointsSwitched: a.flagsChanged } : {}),
          ...(r.problems.length ? { problems: r.problems } : {}),
        });
      } catch (e) {
        views.delete(conf.name);
        failed.push(conf.name);
        log('error', 'policy sync failed', { network: conf.name, error: (e as Error).message });
      }
    }
    first = false;
    if (failed.length) throw new Error(`policy sync failed: ${failed.join(', ')}`);
    return true;
  };
  const rec = new Reconciler({ clock, ...POLICY_TIMING, ...opts.timing }, run, (e, ms) => log('warn', 'policy sync retrying', { error: e.message, retryIn: ms / 1000 }));

  const whole = { changed: (): void => rec.changed(true) };
  cache.subscribe('Namespace', whole);
  cache.subscribe('NetworkPolicy', whole);
  /** Per pod change: the pods whose addresses it touches, with what each owned before it. */
  let owned = new Map<string, string[]>();
  cache.subscribe('Pod', {
    willChange: (c) => {
      if (c.type !== 'update') return;
      // Every pod listing an address this change touches may gain or lose it: what each owned before.
      const touched = new Set([c.key, ...[...(c.before?.ips ?? []), ...(c.after?.ips ?? [])].flatMap((ip) => claims.claimants(ip))]);
      owned = new Map([...touched].map((k) => [k, claims.owned(k)?.ips ?? []]));
    },
    changed: (c) => {
      if (c.type === 'relist') {
        claims.reset();
        rec.changed(true);
        return;
      }
      claims.update(c.key, c.before, c.after);
      const moved = [...owned].filter(([k, ips]) => k === c.key || String(claims.owned(k)?.ips ?? []) !== String(ips));
      // A pod of this node: its addresses come from this node's endpoint records (the whole compile).
      const local = isLocal(c.key, c.before) || moved.some(([k]) => isLocal(k, objects.pods.get(k)));
      if (!local && views.size > 0) {
        for (const [k, ips] of moved) if (!changedPods.has(k)) changedPods.set(k, ips);
        rec.changed(false);
      } else {
        rec.changed(true);
      }
    },
  });
  return rec;
}

/** Starts the watches and the policy reconciler; resolves when stop aborts. */
export async function watchPolicy(access: KubeAccess, networks: () => NetConf[], stop: AbortSignal, opts: { clock?: Clock; ops?: PolicyOps; log?: Log; watch?: Partial<InformerOptions> } = {}): Promise<void> {
  const cache = new ClusterCache();
  const rec = policyReconciler(cache, networks, `watch of ${access.server}`, opts);
  try {
    await cache.watch(access, stop, opts.log ?? logLine, { ...(opts.clock ? { clock: opts.clock } : {}), ...opts.watch });
  } finally {
    rec.stop();
  }
}
