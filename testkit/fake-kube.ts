// An API server for the watch path: Namespaces, Pods, NetworkPolicies, Services and
// EndpointSlices (and an empty NodeList), in-process or beside a test, list with resourceVersion, watch as newline-delimited JSON events with
// bookmarks, "410 Gone" once a resourceVersion falls out of its window, bearer tokens that
// can be rotated, and failures on demand (an HTTP status, watches that end at once).
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { ServerResponse } from 'node:http';
import { makeCerts } from './fake-apiserver.js';

const PATHS: Record<string, string> = {
  '/api/v1/namespaces': 'Namespace',
  '/api/v1/pods': 'Pod',
  '/apis/networking.k8s.io/v1/networkpolicies': 'NetworkPolicy',
  '/api/v1/nodes': 'Node',
  '/api/v1/services': 'Service',
  '/apis/discovery.k8s.io/v1/endpointslices': 'EndpointSlice',
};

type Obj = { metadata: { name: string; namespace?: string; resourceVersion?: string; labels?: Record<string, string> } } & Record<string, unknown>;
interface Ev { rv: number; kind: string; type: string; object: Obj }

export class FakeKube {
  rv = 1000;
  private minRv = 0;
  readonly tokens = new Set<string>();
  readonly requests: { url: string; token: string }[] = [];
  private readonly store = new Map<string, Map<string, Obj>>();
  private readonly history: Ev[] = [];
  private readonly watchers = new Set<{ kind: string; res: ServerResponse }>();
  /** Answer every request with this HTTP status while set. */
  failWith: number | undefined;
  /** End every watch right after what it replays (as a server shedding load does). */
  closeWatches = false;
  server!: Server;
  port = 0;

  constructor(token: string) {
    this.tokens.add(token);
  }

  private key = (o: Obj): string => `${o.metadata.namespace ?? ''}/${o.metadata.name}`;
  private col = (kind: string): Map<string, Obj> => {
    if (!this.store.has(kind)) this.store.set(kind, new Map());
    return this.store.get(kind)!;
  };

  private emit(kind: string, type: string, object: Obj): void {
    const ev = { rv: this.rv, kind, type, object };
    this.history.push(ev);
    for (const w of this.watchers) if (w.kind === kind) w.res.write(`${JSON.stringify({ type, object })}\n`);
  }

  put(kind: string, o: Obj): void {
    const had = this.col(kind).has(this.key(o));
    const copy = structuredClone({ ...o, kind, metadata: { ...o.metadata, resourceVersion: String(++this.rv) } }) as Obj;
    this.col(kind).set(this.key(copy), copy);
    this.emit(kind, had ? 'MODIFIED' : 'ADDED', copy);
  }

  delete(kind: string, namespace: string | undefined, name: string): void {
    const k = `${namespace ?? ''}/${name}`;
    const o = this.col(kind).get(k);
    if (!o) return;
    this.col(kind).delete(k);
    this.rv++;
    this.emit(kind, 'DELETED', { ...o, metadata: { ...o.metadata, resourceVersion: String(this.rv) } });
  }

  /** A bookmark on every open watch (of one kind when given). */
  bookmark(kind?: string): void {
    this.rv++;
    for (const w of this.watchers) if (!kind || w.kind === kind) w.res.write(`${JSON.stringify({ type: 'BOOKMARK', object: { kind: w.kind, metadata: { resourceVersion: String(this.rv) } } })}\n`);
  }

  /** Compacts history: every resourceVersion so far is gone; open watches get a 410 ERROR event and end. */
  expire(): void {
    this.minRv = this.rv;
    this.history.length = 0;
    for (const w of [...this.watchers]) {
      w.res.end(`${JSON.stringify({ type: 'ERROR', object: { kind: 'Status', apiVersion: 'v1', status: 'Failure', message: 'too old resource version', reason: 'Expired', code: 410 } })}\n`);
      this.watchers.delete(w);
    }
  }

  /** Ends every open watch (as a rotated token or a restarted API server does). */
  dropWatches(): void {
    for (const w of [...this.watchers]) w.res.end();
    this.watchers.clear();
  }

  watchCount = (): number => this.watchers.size;

  start(dir: string): Promise<void> {
    const certs = makeCerts(dir);
    this.server = createServer({ cert: readFileSync(certs.cert), key: readFileSync(certs.key) }, (req, res) => {
      const token = (req.headers.authorization ?? '').replace(/^Bearer /, '');
      this.requests.push({ url: req.url ?? '', token });
      const json = (status: number, body: object): void => {
        res.writeHead(status, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify(body));
      };
      if (!this.tokens.has(token)) return json(401, { kind: 'Status', status: 'Failure', reason: 'Unauthorized', code: 401 });
      if (this.failWith) return json(this.failWith, { kind: 'Status', status: 'Failure', code: this.failWith });
      const url = new URL(req.url ?? '/', 'https://x');
      // Single objects and namespaced lists (what ADD reads of one pod).
      const one = /^\/api\/v1\/namespaces\/([^/]+)(?:\/pods\/([^/]+))?$/.exec(url.pathname);
      if (one) {
        const o = one[2] ? this.col('Pod').get(`${one[1]}/${one[2]}`) : this.col('Namespace').get(`/${one[1]}`);
        return o ? json(200, o) : json(404, { kind: 'Status', code: 404 });
      }
      const nsList = /^\/apis\/networking\.k8s\.io\/v1\/namespaces\/([^/]+)\/networkpolicies$/.exec(url.pathname);
      if (nsList) return json(200, { kind: 'NetworkPolicyList', metadata: { resourceVersion: String(this.rv) }, items: [...this.col('NetworkPolicy').values()].filter((o) => o.metadata.namespace === nsList[1]) });
      const kind = PATHS[url.pathname];
      if (!kind) return json(404, { kind: 'Status', code: 404 });
      if (url.searchParams.get('watch') === '1') {
        const from = Number(url.searchParams.get('resourceVersion') ?? '0');
        if (from < this.minRv) return json(410, { kind: 'Status', status: 'Failure', reason: 'Expired', code: 410 });
        res.writeHead(200, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' });
        for (const ev of this.history) if (ev.kind === kind && ev.rv > from) res.write(`${JSON.stringify({ type: ev.type, object: ev.object })}\n`);
        if (this.closeWatches) return void res.end();
        const w = { kind, res };
        this.watchers.add(w);
        req.on('close', () => this.watchers.delete(w));
        return;
      }
      json(200, { kind: `${kind}List`, apiVersion: 'v1', metadata: { resourceVersion: String(this.rv) }, items: [...this.col(kind).values()] });
    });
    return new Promise((res) => this.server.listen(0, '127.0.0.1', () => {
      this.port = (this.server.address() as { port: number }).port;
      res();
    }));
  }

  /** A kubeconfig for this server (started in dir, whose ca.crt it trusts); user: `token: T` or `tokenFile: PATH`. */
  writeKubeconfig(dir: string, user: string): string {
    const path = `${dir}/kubeconfig`;
    writeFileSync(path, [
      'apiVersion: v1', 'kind: Config', 'current-context: t',
      'clusters:', '- name: c', '  cluster:', `    server: https://127.0.0.1:${this.port}`, `    certificate-authority-data: ${readFileSync(`${dir}/ca.crt`).toString('base64')}`,
      'users:', '- name: u', '  user:', `    ${user}`,
      'contexts:', '- name: t', '  context:', '    cluster: c', '    user: u', '',
    ].join('\n'));
    return path;
  }

  stop(): void {
    this.dropWatches();
    this.server.close();
  }
}
