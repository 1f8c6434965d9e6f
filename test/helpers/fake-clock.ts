// A clock a test moves by hand (lib/cluster/clock.ts): timers fire in order as time is
// advanced, none by itself; random() is fixed so a jittered backoff is a known number.
import type { Clock } from '../../lib/cluster/clock.js';

export class FakeClock implements Clock {
  private t = 1_000_000;
  private seq = 0;
  private readonly timers = new Map<number, { at: number; fn: () => void }>();
  constructor(public rand = 0.5) {}

  now = (): number => this.t;
  random = (): number => this.rand;

  after = (ms: number, fn: () => void): (() => void) => {
    const id = this.seq++;
    this.timers.set(id, { at: this.t + Math.max(0, ms), fn });
    return () => void this.timers.delete(id);
  };

  /** Delays of the timers pending now, from now. */
  pending(): number[] {
    return [...this.timers.values()].map((x) => x.at - this.t).sort((a, b) => a - b);
  }

  /** Moves time on by ms, firing every timer due meanwhile (those they set too) in order. */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      let next: [number, { at: number; fn: () => void }] | undefined;
      for (const e of this.timers) if (e[1].at <= end && (!next || e[1].at < next[1].at || (e[1].at === next[1].at && e[0] < next[0]))) next = e;
      if (!next) break;
      this.timers.delete(next[0]);
      this.t = Math.max(this.t, next[1].at);
      next[1].fn();
    }
    this.t = end;
  }
}
