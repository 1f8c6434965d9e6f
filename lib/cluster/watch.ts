// List-then-watch of one Kubernetes collection, as client-go's reflector does it: a list
// gives the objects and a resourceVersion, a watch from there streams changes (bookmarks
// move the resourceVersion on while nothing changes), a watch that ends is resumed from the
// last resourceVersion, "410 Gone" (the version fell out of the server's window) means a
// fresh list. Liveness, by client-go's rules: a watch that hears nothing — no event, no
// bookmark — for twice the bookmark interval is dropped and resumed (a half-open connection
// never ends by itself); a failed list or watch, and a watch that ends within a second having
// delivered nothing, back off exponentially with jitter. Every request reads the token anew
// (current()): a rotated service-account token is picked up without a restart. Objects go
// to a sink as they arrive (the cache parses them); nothing raw is kept here.
import { request } from 'node:https';
import { Backoff, realClock, sleep, type Clock } from './clock.js';
import { HttpError, listAll, requestOptions, type KubeAccess } from './k8s.js';

export interface WatchLog {
  (level: 'info' | 'warn', msg: string, fields: Record<string, unknown>): void;
}

export interface InformerSink {
  relist(items: readonly unknown[]): void;
  event(raw: unknown, deleted: boolean): void;
  /** A list or watch failed (it is retried). */
  failed?(e: Error): void;
}

export interface InformerOptions {
  clock: Clock;
  /** The server ends a watch after this long (it is resumed). */
  timeoutSeconds: number;
  /** How often the API server sends a bookmark on a quiet watch (about a minute); twice this without a word is a stall. */
  bookmarkMs: number;
  /** A watch that ends sooner than this having delivered nothing counts as a failure. */
  shortWatchMs: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
}

const DEFAULTS: InformerOptions = { clock: realClock, timeoutSeconds: 290, bookmarkMs: 60_000, shortWatchMs: 1000, backoffBaseMs: 800, backoffMaxMs: 30_000 };

type Obj = Record<string, unknown>;
const obj = (x: unknown): Obj => (typeof x === 'object' && x !== null ? (x as Obj) : {});

const MAX_LINE = 16 << 20;

class Gone extends Error {}
class Stalled extends Error {}

export class Informer {
  resourceVersion = '';
  lists = 0;
  /** Watches dropped for silence. */
  stalls = 0;
  private readonly o: InformerOptions;
  private readonly backoff: Backoff;
  private delivered = 0;

  constructor(
    private readonly access: KubeAccess,
    readonly kind: string,
    private readonly path: string,
    private readonly sink: InformerSink,
    private readonly log: WatchLog,
    opts: Partial<InformerOptions> = {},
  ) {
    this.o = { ...DEFAULTS, ...opts };
    this.backoff = new Backoff(this.o.clock, this.o.backoffBaseMs, this.o.backoffMaxMs);
  }

  /** Runs until the signal aborts. */
  async run(stop: AbortSignal): Promise<void> {
    const clock = this.o.clock;
    while (!stop.aborted) {
      let started: number | undefined;
      this.delivered = 0;
      let failure: Error | undefined;
      try {
        if (!this.resourceVersion) await this.list();
        started = clock.now();
        await this.watch(stop);
      } catch (e) {
        if (stop.aborted) return;
        failure = e as Error;
      }
      if (stop.aborted) return;
      const quiet = started !== undefined && this.delivered === 0 && clock.now() - started < this.o.shortWatchMs;
      if (failure instanceof Stalled) {
        this.stalls++;
        this.log('warn', 'watch stalled: resuming', { kind: this.kind, resourceVersion: this.resourceVersion, silentMs: 2 * this.o.bookmarkMs });
        this.backoff.reset();
        continue;
      }
      if (failure instanceof Gone || (failure instanceof HttpError && failure.status === 410)) {
        this.log('info', 'watch expired: listing again', { kind: this.kind, resourceVersion: this.resourceVersion });
        this.resourceVersion = '';
        // A list whose watch at once expires again is a relist loop: it backs off like a failure.
        if (!quiet) continue;
      }
      if (!failure && !quiet) {
        // A watch that lived or delivered: resumed at once, and the backoff starts over.
        this.backoff.reset();
        continue;
      }
      const wait = this.backoff.next();
      if (failure) this.sink.failed?.(failure);
      const error = failure?.message ?? `watch ${this.kind}: ended after ${clock.now() - started!} ms with no event`;
      this.log('warn', 'watch failed: retrying', { kind: this.kind, error, retryIn: wait / 1000 });
      await sleep(clock, wait, stop);
    }
  }

  private async list(): Promise<void> {
    const got = await listAll(this.access, this.path);
    this.sink.relist(got.items);
    this.resourceVersion = got.resourceVersion;
    this.lists++;
  }

  private watch(stop: AbortSignal): Promise<void> {
    const url = new URL(`${this.path}?watch=1&allowWatchBookmarks=true&timeoutSeconds=${this.o.timeoutSeconds}&resourceVersion=${encodeURIComponent(this.resourceVersion)}`, this.access.server);
    return new Promise((res, rej) => {
      let settled = false;
      let cancelIdle = (): void => undefined;
      const done = (e?: Error): void => {
        if (settled) return;
        settled = true;
        cancelIdle();
        if (e && !stop.aborted) rej(e);
        else res();
      };
      let fail = (e: Error): void => {
        done(e);
        req.destroy();
      };
      // Heard nothing for twice the bookmark interval: the connection may be half-open.
      const idle = (): void => {
        cancelIdle();
        cancelIdle = this.o.clock.after(2 * this.o.bookmarkMs, () => fail(new Stalled(`watch ${this.kind}: silent`)));
      };
      const req = request(url, { method: 'GET', ...requestOptions(this.access), signal: stop }, (r) => {
        if (r.statusCode !== 200) {
          r.resume();
          done(new HttpError(`watch ${this.kind}: HTTP ${r.statusCode}`, r.statusCode ?? 0));
          return;
        }
        let buf = '';
        // Stops reading on a bad stream (an ERROR event, 410, an oversized or broken line, silence).
        fail = (e: Error): void => {
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
            idle();
          }
        });
        r.on('end', () => done());
        r.on('error', (e) => done(e));
        r.on('close', () => done());
      });
      idle();
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
    this.delivered++;
    if (type === 'BOOKMARK') return;
    if (type === 'DELETED') this.sink.event(o, true);
    else if (type === 'ADDED' || type === 'MODIFIED') this.sink.event(o, false);
  }
}
