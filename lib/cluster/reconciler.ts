// What every reconciler shares: changes gathered for a debounce, then one run; a full run at
// least every resync period whether or not anything changed (a missed event, a map changed
// behind our back, are repaired within the period); a run that failed is retried on a timer
// with backoff, not left until the next event. Which kinds a reconciler reads, and what a
// change of one means to it, are its own (it subscribes to the cache itself).
import { Backoff, type Clock } from './clock.js';

export interface ReconcilerOptions {
  clock: Clock;
  /** Changes arriving within this are applied together. */
  debounceMs: number;
  /** A full run at least this often. */
  resyncMs: number;
  retryBaseMs: number;
  retryMaxMs: number;
}

export interface ReconcileRun {
  /** Everything again (a relist, a change that is not incremental, the periodic resync, a retry). */
  full: boolean;
}

export class Reconciler {
  private timer: (() => void) | undefined;
  /** The pending timer is a retry's: a change does not wait for it. */
  private retrying = false;
  private resync: (() => void) | undefined;
  private full = true;
  private readonly retry: Backoff;
  private stopped = false;
  runs = 0;

  constructor(
    private readonly o: ReconcilerOptions,
    /** False: not ready to run (a store not listed yet); true: done; throws: failed, retried. */
    private readonly run: (r: ReconcileRun) => boolean,
    private readonly onRetry: (error: Error, retryInMs: number) => void = () => undefined,
  ) {
    this.retry = new Backoff(o.clock, o.retryBaseMs, o.retryMaxMs);
  }

  /** Something changed: a run after the debounce (a full one when full). */
  changed(full: boolean): void {
    if (full) this.full = true;
    if (this.stopped || (this.timer && !this.retrying)) return;
    // A change after a failure (a policy removed to make room) is tried at once, not after the backoff.
    this.timer?.();
    this.retrying = false;
    this.timer = this.o.clock.after(this.o.debounceMs, () => this.fire());
  }

  stop(): void {
    this.stopped = true;
    this.timer?.();
    this.resync?.();
    this.timer = this.resync = undefined;
  }

  private fire(): void {
    this.timer = undefined;
    this.retrying = false;
    const full = this.full;
    this.full = false;
    let ok: boolean;
    try {
      ok = this.run({ full });
    } catch (e) {
      this.full = true;
      const wait = this.retry.next();
      this.onRetry(e as Error, wait);
      this.armResync();
      if (!this.stopped) {
        this.retrying = true;
        this.timer = this.o.clock.after(wait, () => this.fire());
      }
      return;
    }
    if (!ok) {
      // Not ready: the change is kept for the run that the store's list will bring.
      this.full ||= full;
      return;
    }
    this.runs++;
    this.retry.reset();
    if (full) this.armResync();
  }

  /** The next full run, a resync period after the last one (or the last failure). */
  private armResync(): void {
    this.resync?.();
    if (this.stopped) return;
    this.resync = this.o.clock.after(this.o.resyncMs, () => {
      this.resync = undefined;
      this.changed(true);
    });
  }
}
