// CNI verbs → attachment operations.
import type { Handler, Invocation } from './cni/plugin.js';
import { add, check, del, gc, status, type Call } from './attachment.js';
import { toCni } from './kernel-errors.js';
import { CniError } from './cni/errors.js';
import { log } from './log.js';

function call(inv: Invocation): Call {
  return {
    conf: inv.conf,
    containerId: inv.env.containerId,
    ifName: inv.env.ifName,
    netnsPath: inv.env.netns,
    cniArgsIp: inv.env.args.get('IP'),
    stdin: inv.stdin,
    env: inv.rawEnv,
    path: inv.env.path,
  };
}

/** Runs a verb; what the kernel layer threw leaves as a CNI error (lib/kernel-errors.ts). */
const verb = (fn: (c: Call) => ReturnType<Handler>): Handler => (inv) => {
  try {
    return fn(call(inv));
  } catch (e) {
    const err = toCni(e);
    // Every failed verb is in the log with its reason (other errors are logged, with their
    // stack, where the plugin answers them).
    if (err instanceof CniError) log.error(`${inv.env.verb} failed`, { error: err.message, code: err.code });
    throw err;
  }
};

export const ADD = verb(add);
export const DEL = verb(del);
export const CHECK = verb(check);
export const GC = verb(gc);
export const STATUS = verb(status);
