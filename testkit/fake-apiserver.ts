// An HTTPS server answering GET /api/v1/nodes like the Kubernetes API server: a NodeList,
// bearer-token auth, TLS with a throw-away CA, and paging through limit/continue.
// Run as a script (node fake-apiserver.js DIR TOKEN NODES.json) it serves until killed and
// prints its port.
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';

export interface FakeNode {
  name: string;
  podCIDRs?: string[];
  internal: string[];
}

/** A CA and a server certificate for 127.0.0.1 and ::1 (openssl, EC keys: fast). */
export function makeCerts(dir: string): { ca: string; cert: string; key: string } {
  const o = (args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  o(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-subj', '/CN=twill-test-ca', '-days', '1']);
  o(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'srv.key', '-out', 'srv.csr', '-subj', '/CN=kube-apiserver']);
  writeFileSync(`${dir}/san.ext`, 'subjectAltName=IP:127.0.0.1,IP:::1\n');
  o(['x509', '-req', '-in', 'srv.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'srv.crt', '-days', '1', '-extfile', 'san.ext']);
  return { ca: `${dir}/ca.crt`, cert: `${dir}/srv.crt`, key: `${dir}/srv.key` };
}

function item(n: FakeNode): object {
  return {
    metadata: { name: n.name, uid: `uid-${n.name}`, resourceVersion: '100', labels: { 'kubernetes.io/hostname': n.name } },
    spec: n.podCIDRs ? { podCIDR: n.podCIDRs[0], podCIDRs: n.podCIDRs } : {},
    status: { addresses: [...n.internal.map((a) => ({ type: 'InternalIP', address: a })), { type: 'Hostname', address: n.name }] },
  };
}

export function serve(dir: string, token: string, nodes: FakeNode[], requests: string[] = []): Promise<{ server: Server; port: number }> {
  const certs = makeCerts(dir);
  const server = createServer({ cert: readFileSync(certs.cert), key: readFileSync(certs.key) }, (req, res) => {
    requests.push(req.url ?? '');
    if (req.headers.authorization !== `Bearer ${token}`) {
      res.writeHead(401, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'Unauthorized', code: 401 }));
      return;
    }
    const url = new URL(req.url ?? '/', 'https://x');
    if (url.pathname !== '/api/v1/nodes') {
      res.writeHead(404);
      res.end();
      return;
    }
    const limit = Number(url.searchParams.get('limit') ?? nodes.length) || nodes.length;
    const start = Number(url.searchParams.get('continue') ? Buffer.from(url.searchParams.get('continue')!, 'base64').toString() : 0);
    const page = nodes.slice(start, start + limit);
    const next = start + limit < nodes.length ? Buffer.from(String(start + limit)).toString('base64') : undefined;
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ kind: 'NodeList', apiVersion: 'v1', metadata: { resourceVersion: '12345', ...(next ? { continue: next, remainingItemCount: nodes.length - start - limit } : {}) }, items: page.map(item) }));
  });
  return new Promise((res) => server.listen(0, '127.0.0.1', () => res({ server, port: (server.address() as { port: number }).port })));
}

export function kubeconfig(path: string, port: number, ca: string, token: string): void {
  const caData = readFileSync(ca).toString('base64');
  writeFileSync(path, [
    'apiVersion: v1', 'kind: Config', 'current-context: test',
    'clusters:', '- name: test-cluster', '  cluster:', `    server: https://127.0.0.1:${port}`, `    certificate-authority-data: ${caData}`,
    'users:', '- name: twill', '  user:', `    token: ${token}`,
    'contexts:', '- name: test', '  context:', '    cluster: test-cluster', '    user: twill', '',
  ].join('\n'));
}

if (process.argv[1]?.endsWith('fake-apiserver.js')) {
  const [dir, token, nodesFile] = process.argv.slice(2);
  const { port } = await serve(dir!, token!, JSON.parse(readFileSync(nodesFile!, 'utf8')) as FakeNode[]);
  kubeconfig(`${dir}/kubeconfig`, port, `${dir}/ca.crt`, token!);
  process.stdout.write(`${port}\n`);
}
