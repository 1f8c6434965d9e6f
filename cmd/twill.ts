// Entry point: a CNI plugin when CNI_COMMAND is set, otherwise the operator CLI.
import { runAsPlugin } from '../lib/cni/env.js';
import { runCni, type Handlers } from '../lib/cni/plugin.js';
import { log } from '../lib/log.js';
import { readIn, writeErr, writeOut } from '../lib/stdio.js';

declare const TWILL_VERSION: string | undefined;
export const version = typeof TWILL_VERSION === 'undefined' ? 'dev' : TWILL_VERSION;

const verbs = () => import('../lib/verbs.js');
const handlers: Handlers = {
  ADD: async () => (await verbs()).ADD,
  DEL: async () => (await verbs()).DEL,
  CHECK: async () => (await verbs()).CHECK,
  GC: async () => (await verbs()).GC,
  STATUS: async () => (await verbs()).STATUS,
};

// A runtime's environment (CNI_ variables, no arguments) gets a CNI answer — an error JSON
// naming CNI_COMMAND when that one is missing — never the CLI's usage text.
const cniMode = runAsPlugin(process.env, process.argv.slice(2));

async function main(): Promise<number> {
  if (cniMode) {
    return runCni(process.env, handlers, {
      readIn,
      stdout: (s) => writeOut(`${s}\n`),
      configureLog: (conf, env) => log.configure(conf, { verb: env.verb, network: conf.name, containerId: env.containerId, ifName: env.ifName }),
      logError: (msg, err) => log.error(msg, { error: err instanceof Error ? err.message : String(err), stack: err instanceof Error ? err.stack : undefined }),
    });
  }
  // The executable starts with the JIT held back for run-once CNI calls (tools/build/build-bun.sh).
  (globalThis as { Bun?: { unsafe?: { setJITPolicy?: (scale: number) => void } } }).Bun?.unsafe?.setJITPolicy?.(1);
  const { runCli } = await import('../lib/cli/main.js');
  return runCli(process.argv.slice(2), version);
}

// Exposed for the build's warm-up run (tools/build/warm-cache.cjs), which awaits each invocation.
(globalThis as { __twillRun?: Promise<void> }).__twillRun = main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    const msg = err instanceof Error ? err.message : String(err);
    // Last resort: in CNI mode still one JSON document on stdout, never a stack trace.
    if (cniMode) writeOut(`${JSON.stringify({ cniVersion: '1.1.0', code: 999, msg })}\n`);
    else writeErr(`twill: ${msg}\n`);
    process.exitCode = 1;
  },
);
