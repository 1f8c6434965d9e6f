// Crash points for the crash-safety tests: with TWILL_CRASH_AT=<step> the process kills
// itself with SIGKILL at that step, so a test can prove every intermediate state recovers.
// Reading one environment variable per step is the whole cost.

export function crashPoint(step: string): void {
  if (process.env.TWILL_CRASH_AT === step) process.kill(process.pid, 'SIGKILL');
}

export const ADD_STEPS = ['add:locked', 'add:reserved', 'add:indexed', 'add:veth', 'add:pod', 'add:host', 'add:attached', 'add:published', 'add:done'] as const;
export const DEL_STEPS = ['del:released', 'del:datapath', 'del:down', 'del:renamed'] as const;
