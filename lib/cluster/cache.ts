// The cluster cache: one typed store per registered kind (kinds.ts), filled from the API
// server's list-then-watch (watch.ts) or from a file, with change events that reconcilers
// subscribe to. Only kinds some reconciler subscribed to are watched.
import type { ClusterObjects } from '../policy/objects.js';
import type { Clock } from './clock.js';
import type { KubeAccess } from './k8s.js';
import { isKind, KINDS, rawKey, type KindName, type Kinds } from './kinds.js';
import { Store, type StoreListener } from './store.js';
import { Informer, type InformerOptions, type WatchLog } from './watch.js';

type Obj = Record<string, unknown>;
const obj = (x: unknown): Obj => (typeof x === 'object' && x !== null && !Array.isArray(x) ? (x as Obj) : {});

export class ClusterCache {
  private readonly stores = new Map<KindName, Store<unknown>>();
  private readonly wanted = new Set<KindName>();
  /** The last failure of a kind's list or watch while it has never been listed. */
  private readonly errors = new Map<KindName, string>();
  private readonly waiters = new Set<() => void>();

  store<K extends KindName>(kind: K): Store<Kinds[K]> {
    let s = this.stores.get(kind);
    if (!s) this.stores.set(kind, (s = new Store<unknown>()));
    return s as Store<Kinds[K]>;
  }

  /** Changes of the kind reach the listener; the kind is watched from now on. */
  subscribe<K extends KindName>(kind: K, l: StoreListener<Kinds[K]>): void {
    this.wanted.add(kind);
    this.store(kind).subscribe(l);
  }

  /** The kinds subscribed to, in registry order. */
  kinds(): KindName[] {
    return (Object.keys(KINDS) as KindName[]).filter((k) => this.wanted.has(k));
  }

  /** Every listed kind has been listed once. */
  synced(kinds: readonly KindName[]): boolean {
    return kinds.every((k) => this.store(k).synced);
  }

  /**
   * Resolves when the kind has been listed, or has failed to be (lastError), or after ms:
   * what a reconciler that needs the kind waits for before its first run.
   */
  settled(kind: KindName, ms: number): Promise<void> {
    if (this.store(kind).synced || this.errors.has(kind)) return Promise.resolve();
    return new Promise((res) => {
      const done = (): void => {
        if (!this.store(kind).synced && !this.errors.has(kind)) return;
        clearTimeout(t);
        this.waiters.delete(done);
        res();
      };
      const t = setTimeout(() => {
        this.waiters.delete(done);
        res();
      }, ms);
      this.waiters.add(done);
    });
  }

  lastError(kind: KindName): string | undefined {
    return this.errors.get(kind);
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }

  /** A fresh list of the kind: parsed, and the raw items let go. */
  relist(kind: KindName, items: readonly unknown[]): void {
    const spec = KINDS[kind];
    const entries: [string, never][] = [];
    for (const i of items) {
      const v = spec.parse(i);
      if (v !== undefined) entries.push([rawKey(kind, i), v as never]);
    }
    this.store(kind).replace(entries);
    this.errors.delete(kind);
    this.wake();
  }

  /** One watch event's object (deleted: gone). */
  event(kind: KindName, raw: unknown, deleted: boolean): void {
    this.store(kind).set(rawKey(kind, raw), deleted ? undefined : (KINDS[kind].parse(raw) as never));
  }

  /**
   * Objects from a file (a List, a plain array or documents): each by its kind, added to what
   * the stores hold; every store of a registered kind counts as listed. Returns what was
   * skipped and why.
   */
  feed(items: readonly unknown[]): string[] {
    const skipped: string[] = [];
    const walk = (list: readonly unknown[]): void => {
      for (const it of list) {
        const kind = typeof obj(it).kind === 'string' ? (obj(it).kind as string) : '';
        if (kind === 'List' || kind.endsWith('List')) {
          walk((Array.isArray(obj(it).items) ? (obj(it).items as unknown[]) : []).map((i) => (typeof obj(i).kind === 'string' && obj(i).kind ? i : { ...obj(i), kind: kind.slice(0, -4) })));
          continue;
        }
        const name = `${kind} ${typeof obj(obj(it).metadata).name === 'string' && obj(obj(it).metadata).name ? String(obj(obj(it).metadata).name) : '(unnamed)'}`;
        if (!isKind(kind)) {
          skipped.push(`${name}: kind not used`);
          continue;
        }
        const v = KINDS[kind].parse(it);
        if (v === undefined) skipped.push(`${name}: ${KINDS[kind].unparsed}`);
        else this.store(kind).set(rawKey(kind, it), v as never);
      }
    };
    walk(items);
    for (const k of Object.keys(KINDS) as KindName[]) this.store(k).synced = true;
    return skipped;
  }

  /** List-then-watch of every subscribed kind until stop aborts. */
  async watch(access: KubeAccess, stop: AbortSignal, log: WatchLog, opts: Partial<InformerOptions> & { clock?: Clock } = {}): Promise<void> {
    const informers = this.kinds().map((kind) => new Informer(access, kind, KINDS[kind].path, {
      relist: (items) => this.relist(kind, items),
      event: (raw, deleted) => this.event(kind, raw, deleted),
      failed: (e) => {
        if (this.store(kind).synced) return;
        this.errors.set(kind, e.message);
        this.wake();
      },
    }, log, opts));
    await Promise.all(informers.map((i) => i.run(stop)));
  }
}

/** Policy's view of the cache: the very maps of the Namespace, Pod and NetworkPolicy stores. */
export function policyObjects(cache: ClusterCache): ClusterObjects {
  return { namespaces: cache.store('Namespace').items, pods: cache.store('Pod').items, policies: cache.store('NetworkPolicy').items };
}
