// The CNI_* environment, validated per verb before anything touches the host.
import { parseCniArgs, type CniArgs } from './args.js';
import { Code, CniError } from './errors.js';
import { invalidContainerId, invalidIfName } from './names.js';

export const VERBS = ['ADD', 'DEL', 'CHECK', 'VERSION', 'STATUS', 'GC'] as const;
export type Verb = (typeof VERBS)[number];

export interface CniEnv {
  verb: Verb;
  containerId: string;
  netns: string;
  ifName: string;
  args: CniArgs;
  path: string[];
}

const need: Record<Verb, readonly ('CNI_CONTAINERID' | 'CNI_NETNS' | 'CNI_IFNAME')[]> = {
  ADD: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME'],
  CHECK: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME'],
  DEL: ['CNI_CONTAINERID', 'CNI_IFNAME'],
  VERSION: [],
  STATUS: [],
  GC: [],
};

export function isVerb(v: string | undefined): v is Verb {
  return (VERBS as readonly string[]).includes(v ?? '');
}

export function readEnv(env: NodeJS.ProcessEnv): CniEnv {
  const verb = env.CNI_COMMAND;
  if (verb === undefined) throw new CniError(Code.InvalidEnv, 'required environment variable missing: CNI_COMMAND', 'a runtime\'s CNI_* variables are set but CNI_COMMAND is not');
  if (!isVerb(verb)) throw new CniError(Code.InvalidEnv, `CNI_COMMAND: unknown command "${String(verb).slice(0, 32)}"`);
  const path = (env.CNI_PATH ?? '').split(':').filter((p) => p !== '');
  // Only what the verb uses is read: libcni validates a config by running VERSION with
  // CNI_NETNS=dummy (and STATUS/GC carry no attachment), which must not be refused.
  if (verb === 'VERSION' || verb === 'STATUS' || verb === 'GC') return { verb, containerId: '', netns: '', ifName: '', args: new Map(), path };
  const missing = need[verb].filter((k) => !env[k]);
  if (missing.length > 0) throw new CniError(Code.InvalidEnv, `required environment variables missing: ${missing.join(', ')}`);
  const containerId = env.CNI_CONTAINERID ?? '';
  const ifName = env.CNI_IFNAME ?? '';
  const netns = env.CNI_NETNS ?? '';
  const badId = invalidContainerId(containerId);
  if (badId) throw new CniError(Code.InvalidEnv, `CNI_CONTAINERID ${badId}`);
  const badIf = invalidIfName(ifName);
  if (badIf) throw new CniError(Code.InvalidEnv, `CNI_IFNAME ${badIf}`);
  if (netns && (!netns.startsWith('/') || netns.includes('\0') || netns.length > 4096)) {
    throw new CniError(Code.InvalidEnv, 'CNI_NETNS must be an absolute path');
  }
  return { verb, containerId, netns, ifName, args: parseCniArgs(env.CNI_ARGS), path };
}

/** The variables a runtime sets. */
const RUNTIME_VARS = ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_PATH', 'CNI_ARGS'] as const;

/**
 * Run as a plugin: CNI_COMMAND is set, or a runtime's variables are and no command line was
 * given (runtimes exec plugins without arguments). A person typing `twill status` with
 * CNI_PATH exported in their shell still gets the CLI.
 */
export const runAsPlugin = (env: NodeJS.ProcessEnv, args: readonly string[]): boolean =>
  env.CNI_COMMAND !== undefined || (args.length === 0 && RUNTIME_VARS.some((k) => env[k] !== undefined));
