// CNI verbs → attachment operations.
import type { Handler, Invocation } from './cni/plugin.js';
import { add, check, del, gc, status, type Call } from './attachment.js';
import { toCni } from './kernel-errors.js';
import { Code, CniError } from './cni/errors.js';
import { log } from './log.js';
import { readPodStart } from './state/files.js';

// DNS-1123 label (namespace) and subdomain (pod): both become parts of file names.
const LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

function podOf(args: ReadonlyMap<string, string>): Call['pod'] {
  const namespace = args.get('K8S_POD_NAMESPACE');
  const name = args.get('K8S_POD_NAME');
  if (namespace === undefined || name === undefined) return undefined;
  if (!LABEL.test(namespace)) throw new CniError(Code.InvalidEnv, `CNI_ARGS: K8S_POD_NAMESPACE "${namespace.slice(0, 64)}" is not a namespace name`);
  if (!SUBDOMAIN.test(name)) throw new CniError(Code.InvalidEnv, `CNI_ARGS: K8S_POD_NAME "${name.slice(0, 64)}" is not a pod name`);
  return { namespace, name };
}

function call(inv: Invocation): Call {
  return {
    conf: inv.conf,
    containerId: inv.env.containerId,
    ifName: inv.env.ifName,
    netnsPath: inv.env.netns,
    cniArgsIp: inv.env.args.get('IP'),
    pod: podOf(inv.env.args),
    stdin: inv.stdin,
    env: inv.rawEnv,
    path: inv.env.path,
  };
}

const BAD_INPUT = new Set<number>([Code.IncompatibleVersion, Code.UnsupportedField, Code.InvalidEnv, Code.DecodeFailure, Code.InvalidConfig]);

/** Runs a verb; what the kernel layer threw leaves as a CNI error (lib/kernel-errors.ts). */
const verb = (fn: (c: Call) => ReturnType<Handler>): Handler => async (inv) => {
  try {
    return await fn(call(inv));
  } catch (e) {
    const err = toCni(e);
    // Every failed verb is in the log with its reason (other errors are logged, with their
    // stack, where the plugin answers them) — but for input rejected for what it says: a
    // config found invalid is not trusted to name a log file, and bad input changes nothing
    // on the host. The runtime has the error document.
    if (err instanceof CniError && !BAD_INPUT.has(err.code)) log.error(`${inv.env.verb} failed`, { error: err.message, code: err.code });
    throw err;
  }
};

/**
 * A pod the last policy sync did not know is read from the API server first when the network
 * names a kubeconfig (cluster/pod-policy.ts, datapath/policy-learn.ts); failing that, it starts isolated.
 */
async function addLearning(c: Call): Promise<ReturnType<typeof add>> {
  if (c.conf.services) await ensureServices(c);
  if (c.conf.policy?.kubeconfig && c.pod && !readPodStart(c.conf, `${c.pod.namespace}/${c.pod.name}`)) {
    try {
      const [{ fetchPodPolicyObjects }, { learnPod }] = await Promise.all([import('./cluster/pod-policy.js'), import('./datapath/policy-learn.js')]);
      const objects = await fetchPodPolicyObjects(c.conf.policy.kubeconfig, c.pod);
      if (learnPod(c.conf, c.pod, objects)) log.info('pod unknown to the last sync: policy read from the API server', { pod: `${c.pod.namespace}/${c.pod.name}` });
    } catch (e) {
      log.warn('could not read the pod from the API server: it starts isolated', { pod: `${c.pod.namespace}/${c.pod.name}`, error: (e as Error).message });
    }
  }
  return add(c);
}

/**
 * A network that serves Services has the node's socket hooks before its first pod starts
 * (loaded once per node; later calls find them pinned). A bad cgroupRoot fails the ADD with
 * nothing changed.
 */
async function ensureServices(c: Call): Promise<void> {
  const { ensureServiceHooks, serviceHookTarget } = await import('./datapath/services.js');
  ensureServiceHooks(serviceHookTarget(c.conf));
}

export const ADD = verb(addLearning);
export const DEL = verb(del);
export const CHECK = verb(check);
export const GC = verb(gc);
export const STATUS = verb(status);
