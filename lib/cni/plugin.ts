// The CNI side of the executable: environment and stdin in, exactly one JSON document out.
import { readEnv, type CniEnv, type Verb } from './env.js';
import { CniError, Code, toErrorJson } from './errors.js';
import { formatResult, type Result } from './result.js';
import { readStdin, type ReadIn } from './stdin.js';
import { hasCheck, hasStatusAndGc, isSupported, LATEST, SUPPORTED_VERSIONS } from './versions.js';
import { loadNetConf, MAX_CONFIG_BYTES, parseJson } from '../config/load.js';
import type { NetConf } from '../config/types.js';

export interface Invocation {
  env: CniEnv;
  conf: NetConf;
  stdin: string;
  rawEnv: NodeJS.ProcessEnv;
}

export type Handler = (inv: Invocation) => Result | void | Promise<Result | void>;
export type Handlers = Record<Exclude<Verb, 'VERSION'>, () => Promise<Handler>>;

export interface Io {
  readIn: ReadIn;
  stdout(s: string): void;
  configureLog(conf: NetConf, env: CniEnv): void;
  logError(msg: string, err: unknown): void;
}

function versionReply(stdin: string): Record<string, unknown> {
  let asked = LATEST as string;
  try {
    const v = (parseJson(stdin) as { cniVersion?: unknown }).cniVersion;
    if (typeof v === 'string' && v.length <= 16) asked = v;
  } catch {
    // VERSION answers even without a readable config
  }
  return { cniVersion: asked, supportedVersions: [...SUPPORTED_VERSIONS] };
}

function gate(verb: Verb, v: string): void {
  if (verb === 'CHECK' && !hasCheck(v)) throw new CniError(Code.IncompatibleVersion, `config version ${v} does not allow CHECK (needs 0.4.0 or later)`);
  if ((verb === 'STATUS' || verb === 'GC') && !hasStatusAndGc(v)) {
    throw new CniError(Code.IncompatibleVersion, `config version ${v} does not allow ${verb} (needs 1.1.0 or later)`);
  }
}

/** Runs one CNI invocation; returns the exit code. */
export async function runCni(rawEnv: NodeJS.ProcessEnv, handlers: Handlers, io: Io): Promise<number> {
  let version = LATEST as string;
  let env: CniEnv | undefined;
  try {
    env = readEnv(rawEnv);
    const stdin = readStdin(MAX_CONFIG_BYTES, io.readIn);
    if (env.verb === 'VERSION') {
      io.stdout(JSON.stringify(versionReply(stdin)));
      return 0;
    }
    const conf = loadNetConf(stdin);
    version = conf.cniVersion;
    io.configureLog(conf, env);
    gate(env.verb, conf.cniVersion);
    const handler = await handlers[env.verb]();
    const result = await handler({ env, conf, stdin, rawEnv });
    if (env.verb === 'ADD') {
      if (!result) throw new CniError(Code.Internal, 'ADD produced no result');
      io.stdout(JSON.stringify(formatResult(result, conf.cniVersion)));
    }
    return 0;
  } catch (e) {
    if (!(e instanceof CniError)) io.logError(`${env?.verb ?? 'CNI'} failed`, e);
    io.stdout(JSON.stringify(toErrorJson(e, isSupported(version) ? version : LATEST)));
    return 1;
  }
}
