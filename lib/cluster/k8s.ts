// Kubernetes as the source of the node table: Node objects (spec.podCIDRs, InternalIP) read
// from the API server with Node's own https client. Only `twill sync` uses this.
import { readFileSync } from '../sys/fs.js';
import { request } from 'node:https';
import { dirname, resolve } from 'node:path';
import type { NodeEntry } from '../config/types.js';
import { parseAddr } from '../net/ip.js';
import { KINDS } from './kinds.js';
import { parseNode, type NodeObj } from './objects.js';

export interface KubeAccess {
  server: string;
  token?: string;
  /** Read again before every request: kubelet rotates bound service-account tokens (they expire within hours). */
  tokenFile?: string;
  ca?: Buffer;
  /** Read again when it changes (a rotated cluster CA). */
  caFile?: string;
  cert?: Buffer;
  key?: Buffer;
}

/** The token and CA as they are now on disk. */
export function current(a: KubeAccess): KubeAccess {
  const out = { ...a };
  if (a.tokenFile) {
    try {
      out.token = readFileSync(a.tokenFile, 'utf8').trim();
    } catch {
      // keep the last one read: the file is replaced atomically, a miss is a race
    }
  }
  if (a.caFile) {
    try {
      out.ca = readFileSync(a.caFile);
    } catch {
      // as above
    }
  }
  return out;
}

type Obj = Record<string, unknown>;
const obj = (x: unknown): Obj => (typeof x === 'object' && x !== null ? (x as Obj) : {});

function material(base: string, data: unknown, file: unknown): Buffer | undefined {
  if (typeof data === 'string') return Buffer.from(data, 'base64');
  if (typeof file === 'string') return readFileSync(resolve(base, file));
  return undefined;
}

/** Reads a kubeconfig (YAML or JSON): the current context's cluster and user. */
export async function kubeconfigAccess(path: string): Promise<KubeAccess> {
  const { parse } = await import('yaml');
  const doc = obj(parse(readFileSync(path, 'utf8')));
  const named = (list: unknown, name: unknown, what: string): Obj => {
    const hit = (Array.isArray(list) ? list : []).map(obj).find((e) => e.name === name);
    if (!hit) throw new Error(`kubeconfig ${path}: ${what} "${String(name)}" not found`);
    return obj(hit[what]);
  };
  const ctx = named(doc.contexts, doc['current-context'], 'context');
  const cluster = named(doc.clusters, ctx.cluster, 'cluster');
  const user = named(doc.users, ctx.user, 'user');
  const base = dirname(path);
  if (typeof cluster.server !== 'string') throw new Error(`kubeconfig ${path}: the cluster has no server`);
  const tokenFile = typeof user.token !== 'string' && typeof user.tokenFile === 'string' ? resolve(base, user.tokenFile) : undefined;
  const token = typeof user.token === 'string' ? user.token : tokenFile ? readFileSync(tokenFile, 'utf8').trim() : undefined;
  const ca = material(base, cluster['certificate-authority-data'], cluster['certificate-authority']);
  const cert = material(base, user['client-certificate-data'], user['client-certificate']);
  const key = material(base, user['client-key-data'], user['client-key']);
  return { server: cluster.server, ...(token ? { token } : {}), ...(tokenFile ? { tokenFile } : {}), ...(ca ? { ca } : {}), ...(cert ? { cert } : {}), ...(key ? { key } : {}) };
}

/** The in-cluster service account (a DaemonSet running `twill sync --watch`). */
export function inClusterAccess(root = '/var/run/secrets/kubernetes.io/serviceaccount'): KubeAccess {
  const host = process.env.KUBERNETES_SERVICE_HOST;
  const port = process.env.KUBERNETES_SERVICE_PORT ?? '443';
  if (!host) throw new Error('not running in a cluster (KUBERNETES_SERVICE_HOST is unset)');
  return { server: `https://${host.includes(':') ? `[${host}]` : host}:${port}`, token: readFileSync(`${root}/token`, 'utf8').trim(), tokenFile: `${root}/token`, ca: readFileSync(`${root}/ca.crt`), caFile: `${root}/ca.crt` };
}

const MAX_BODY = 64 << 20;

/** Request options of an API call: the current token, CA and client certificate. */
export function requestOptions(access: KubeAccess): { headers: Record<string, string>; ca?: Buffer; cert?: Buffer; key?: Buffer } {
  const a = current(access);
  return {
    headers: { Accept: 'application/json', ...(a.token ? { Authorization: `Bearer ${a.token}` } : {}) },
    ...(a.ca ? { ca: a.ca } : {}),
    ...(a.cert ? { cert: a.cert } : {}),
    ...(a.key ? { key: a.key } : {}),
  };
}

export class HttpError extends Error {
  constructor(message: string, readonly status: number) {
    super(message);
  }
}

/** One object (or list page) by path. */
export const getObject = (a: KubeAccess, path: string, timeoutMs = 15_000): Promise<Obj> => get(a, path, timeoutMs);

function get(a: KubeAccess, path: string, timeoutMs = 15_000): Promise<Obj> {
  const url = new URL(path, a.server);
  return new Promise((resolve, reject) => {
    // A deadline for the whole answer, not only for an idle socket: a server that accepts and
    // then says nothing (or drips) must not hold an ADD.
    const timer = setTimeout(() => req.destroy(new Error(`GET ${url.pathname}: timed out`)), timeoutMs);
    const res = (v: Obj): void => {
      clearTimeout(timer);
      resolve(v);
    };
    const rej = (e: Error): void => {
      clearTimeout(timer);
      reject(e);
    };
    const req = request(url, { method: 'GET', ...requestOptions(a), timeout: timeoutMs }, (r) => {
      let body = '';
      r.setEncoding('utf8');
      r.on('data', (d: string) => {
        body += d;
        // A page of 500 Nodes is a few MB: anything far larger is not an answer to trust.
        if (body.length > MAX_BODY) req.destroy(new Error(`GET ${url.pathname}: response larger than ${MAX_BODY >> 20} MiB`));
      });
      r.on('end', () => {
        if (r.statusCode !== 200) return rej(new HttpError(`GET ${url.pathname}: HTTP ${r.statusCode} ${body.slice(0, 200)}`, r.statusCode ?? 0));
        try {
          res(obj(JSON.parse(body)));
        } catch (e) {
          rej(new Error(`GET ${url.pathname}: ${(e as Error).message}`));
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url.pathname}: timed out`)));
    req.on('error', rej);
    req.end();
  });
}

/** Every item of a collection, page by page; the resourceVersion of the list (where a watch starts). */
export async function listAll(a: KubeAccess, path: string, pageSize = 500): Promise<{ items: unknown[]; resourceVersion: string }> {
  const items: unknown[] = [];
  let cont = '';
  let rv = '';
  do {
    const page = await get(a, `${path}?limit=${pageSize}${cont ? `&continue=${encodeURIComponent(cont)}` : ''}`);
    items.push(...(Array.isArray(page.items) ? page.items : []));
    const meta = obj(page.metadata);
    cont = typeof meta.continue === 'string' ? meta.continue : '';
    if (typeof meta.resourceVersion === 'string') rv = meta.resourceVersion;
  } while (cont);
  return { items, resourceVersion: rv };
}

export interface NodeList {
  nodes: NodeEntry[];
  /** Nodes without a pod CIDR yet (the controller manager has not allocated one). */
  pending: string[];
}

/** A Node as a node-table entry; undefined while it has no pod CIDR or no usable InternalIP. */
export function nodeEntry(n: NodeObj): NodeEntry | undefined {
  // An InternalIP that is not an address makes the node unusable, not the table.
  const valid = n.internalIPs.filter((x) => parseAddr(x) !== undefined);
  const v4 = valid.find((x) => !x.includes(':'));
  const v6 = valid.find((x) => x.includes(':'));
  if (n.podCIDRs.length === 0 || !(v4 ?? v6)) return undefined;
  return { name: n.name, ip: (v4 ?? v6)!, ...(v4 && v6 ? { ip6: v6 } : {}), podCIDRs: n.podCIDRs };
}

/** The node table of a set of Nodes, sorted by name. */
export function nodeTable(all: Iterable<NodeObj>): NodeList {
  const nodes: NodeEntry[] = [];
  const pending: string[] = [];
  for (const n of all) {
    const e = nodeEntry(n);
    if (e) nodes.push(e);
    else pending.push(n.name);
  }
  nodes.sort((x, y) => x.name.localeCompare(y.name));
  return { nodes, pending };
}

export async function listNodes(a: KubeAccess, pageSize = 500): Promise<NodeList> {
  const got = await listAll(a, KINDS.Node.path, pageSize);
  return nodeTable(got.items.flatMap((i) => {
    const n = parseNode(i);
    return n ? [n] : [];
  }));
}
