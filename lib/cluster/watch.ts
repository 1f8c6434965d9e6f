// List-then-watch of one Kubernetes collection, as client-go's reflector does it: a list
// gives the objects and a resourceVersion, a watch from there streams changes (bookmarks
// move the resourceVersion on while nothing changes), a watch that ends is resumed from the
// last resourceVersion, "410 Gone" (the version fell out of the server's window) means a
// fresh list, and any other failure is retried with backoff. Every request reads the token
// anew (current()): a rotated service-account token is picked up without a restart.
import { request } from 'node:https';
import { HttpError, listAll, requestOptions, type KubeAccess } from './k8s.js';

export interface WatchLog {
  (level: 'info' | 'warn', msg: string, fields: Record<string, unknown>): void;
}

type Obj = Record<string, unknown>;
const obj = (x: unknown): Obj => (typeof x === 'object' && x !== null ? (x as Obj) : {});
const keyOf = (o: unknown): string => {
  const m = obj(obj(o).metadata);
  return `${String(m.namespace ?? '')}/${String(m.name ?? '')}`;
};

const MAX_LINE = 16 << 20;

class Gone extends Error {}

export class Informer {
  readonly items = new Map<string, unknown>();
  resourceVersion = '';
  lists = 0;
  private backoff = 1;

  constructor(
    private readonly access: KubeAccess,
    readonly kind: string,
    private readonly path: string,
    /** A list replaced everything (key undefined), or one object changed (deleted: object undefined). */
    private readonly changed: (key?: string, object?: unknown) => void,
    private readonly log: WatchLog,
    private readonly timeoutSeconds = 290,
  ) {}

  /** Runs until the signal aborts. */
  async run(stop: AbortSignal): Promise<void> {
    while (!stop.aborted) {
      try {
        if (!this.resourceVersion) await this.list();
        await this.watch(stop);
        this.backoff = 1;
      } catch (e) {
        if (stop.aborted) return;
        if (e instanceof Gone || (e instanceof HttpError && e.status === 410)) {
          this.log('info', 'watch expired: listing again', { kind: this.kind, resourceVersion: this.resourceVersion });
          this.resourceVersion = '';
          continue;
        }
        const wait = this.backoff;
        this.backoff = Math.min(this.backoff * 2, 30);
        this.log('warn', 'watch failed: retrying', { kind: this.kind, error: (e as Error).message, retryIn: wait });
        await new Promise((r) => setTimeout(r, wait * 1000));
      }
    }
  }

  private async list(): Promise<void> {
    const got = await listAll(this.access, this.path);
    this.items.clear();
    for (const i of got.items) this.items.set(keyOf(i), { kind: this.kind, ...obj(i) });
    this.resourceVersion = got.resourceVersion;
    this.lists++;
    this.changed();
  }

  private watch(stop: AbortSignal): Promise<void> {
    const url = new URL(`${this.path}?watch=1&allowWatchBookmarks=true&timeoutSeconds=${this.timeoutSeconds}&resourceVersion=${encodeURIComponent(this.resourceVersion)}`, this.access.server);
    return new Promise((res, rej) => {
      let settled = false;
      const done = (e?: Error): void => {
        if (settled) return;
        settled = true;
        if (e && !stop.aborted) rej(e);
        else res();
      };
      const req = request(url, { method: 'GET', ...requestOptions(this.access), signal: stop }, (r) => {
        if (r.statusCode !== 200) {
          r.resume();
          done(new HttpError(`watch ${this.kind}: HTTP ${r.statusCode}`, r.statusCode ?? 0));
          return;
        }
        let buf = '';
        // Stops reading on a bad stream (an ERROR event, 410, an oversized or broken line).
        const fail = (e: Error): void => {
          done(e);
          r.destroy();
          req.destroy();
        };
        r.setEncoding('utf8');
        r.on('data', (d: string) => {
          if (settled) return;
          buf += d;
          if (buf.length > MAX_LINE) return fail(new Error(`watch ${this.kind}: an event larger than ${MAX_LINE >> 20} MiB`));
          let nl: number;
          while ((nl = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, nl).trim();
            buf = buf.slice(nl + 1);
            if (!line) continue;
            try {
              this.event(JSON.parse(line) as Obj);
            } catch (e) {
              return fail(e as Error);
            }
          }
        });
        r.on('end', () => done());
        r.on('error', (e) => done(e));
        r.on('close', () => done());
      });
      req.on('error', (e) => done(e));
      req.end();
    });
  }

  private event(ev: Obj): void {
    const type = String(ev.type);
    const o = obj(ev.object);
    if (type === 'ERROR') {
      if (Number(o.code) === 410) throw new Gone(String(o.message ?? 'Gone'));
      throw new Error(`watch ${this.kind}: ${String(o.message ?? 'error event')}`);
    }
    const rv = obj(o.metadata).resourceVersion;
    if (typeof rv === 'string' && rv) this.resourceVersion = rv;
    if (type === 'BOOKMARK') return;
    const key = keyOf(o);
    if (type === 'DELETED') {
      this.items.delete(key);
      this.changed(key);
    } else if (type === 'ADDED' || type === 'MODIFIED') {
      const item = { kind: this.kind, ...o };
      this.items.set(key, item);
      this.changed(key, item);
    }
  }
}
