// Time as the cluster side sees it: timers and "now" behind one interface, so the watch's
// backoff, stall detection and a reconciler's debounce and resync can be driven by a test
// without sleeping.

export interface Clock {
  now(): number;
  /** Runs fn once after ms; returns what cancels it. */
  after(ms: number, fn: () => void): () => void;
  /** In [0, 1): the jitter of backoffs. */
  random(): number;
}

export const realClock: Clock = {
  now: () => Date.now(),
  after: (ms, fn) => {
    const t = setTimeout(fn, ms);
    return () => clearTimeout(t);
  },
  random: () => Math.random(),
};

/** Resolves after ms on the clock, or at once when the signal aborts. */
export function sleep(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((res) => {
    if (signal?.aborted) return res();
    const done = (): void => {
      cancel();
      signal?.removeEventListener('abort', done);
      res();
    };
    const cancel = clock.after(ms, done);
    signal?.addEventListener('abort', done, { once: true });
  });
}

/**
 * client-go's backoff for list and watch: base·2ⁿ up to max, stretched by a jitter of up
 * to 100% (so many nodes that lost the API server together do not return together).
 */
export class Backoff {
  private failures = 0;
  constructor(private readonly clock: Clock, readonly baseMs = 800, readonly maxMs = 30_000) {}
  /** The wait after one more failure. */
  next(): number {
    const d = Math.min(this.baseMs * 2 ** this.failures, this.maxMs);
    this.failures++;
    return Math.round(d * (1 + this.clock.random()));
  }
  reset(): void {
    this.failures = 0;
  }
  get streak(): number {
    return this.failures;
  }
}
