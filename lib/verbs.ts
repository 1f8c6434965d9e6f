// CNI verbs → attachment operations.
import type { Handler, Invocation } from './cni/plugin.js';
import { add, check, del, gc, status, type Call } from './attachment.js';

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

export const ADD: Handler = (inv) => add(call(inv));
export const DEL: Handler = (inv) => del(call(inv));
export const CHECK: Handler = (inv) => check(call(inv));
export const GC: Handler = (inv) => gc(call(inv));
export const STATUS: Handler = (inv) => status(call(inv));
