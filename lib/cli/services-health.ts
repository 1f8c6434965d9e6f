// kube-proxy's healthCheckNodePort servers (kubernetes/kubernetes:pkg/proxy/healthcheck/
// service_health.go): a load balancer sends traffic of an externalTrafficPolicy: Local Service
// only to nodes that answer 200 here, so the answer must follow this node's local endpoints.
// They need a listening process: `twill sync --watch` keeps them, one per healthCheckNodePort on
// each of the node's addresses (those its NodePorts use), opened, updated and closed as the
// Services model says. Not in the data path: a packet never waits for them.
import { createServer, type Server } from 'node:http';
import type { ServiceHealth } from '../services/model.js';

export interface HealthResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/**
 * kube-proxy's answer, whatever the path: 200 iff there are local endpoints and the proxy is
 * healthy, the count as the endpoint weight, and its JSON body (tab-indented, no newline).
 */
export function healthResponse(h: Pick<ServiceHealth, 'namespace' | 'name' | 'localEndpoints'>, healthy: boolean): HealthResponse {
  const n = h.localEndpoints;
  return {
    status: n !== 0 && healthy ? 200 : 503,
    headers: { 'Content-Type': 'application/json', 'X-Content-Type-Options': 'nosniff', 'X-Load-Balancing-Endpoint-Weight': String(n) },
    body: JSON.stringify({ service: { namespace: h.namespace, name: h.name }, localEndpoints: n, serviceProxyHealthy: healthy }, null, '\t'),
  };
}

interface Listener {
  service: string;
  addresses: string[];
  /** By address; an address whose listen failed is absent (tried again at the next update). */
  servers: Map<string, Server>;
}

const hostPort = (addr: string, port: number): string => (addr.includes(':') ? `[${addr}]:${port}` : `${addr}:${port}`);

/** The servers of one process. Off until enabled: a one-shot sync has nobody to answer. */
class HealthServers {
  enabled = false;
  /** serviceProxyHealthy: false while the last Services sync failed. */
  healthy = true;
  private entries = new Map<string, ServiceHealth>();
  private listeners = new Map<number, Listener>();
  /** Why a listen failed, by "address:port" (a port in use): a problem of the next records. */
  private failed = new Map<string, string>();

  /**
   * The model's entries (with `changed`, only those Services' entries are replaced: a partial
   * sync compiles only them), served on `addresses`. Returns the problems to record.
   */
  update(health: readonly ServiceHealth[], addresses: readonly string[], changed?: ReadonlySet<string>): string[] {
    if (!this.enabled) return [];
    if (changed) for (const k of changed) this.entries.delete(k);
    else this.entries.clear();
    for (const h of health) this.entries.set(h.service, h);
    const wanted = new Map<number, string>();
    const problems: string[] = [];
    for (const h of [...this.entries.values()].sort((a, b) => (a.service < b.service ? -1 : a.service > b.service ? 1 : 0))) {
      const other = wanted.get(h.nodePort);
      if (other !== undefined) problems.push(`healthCheckNodePort ${h.nodePort} of ${h.service} is ${other}'s: not served`);
      else wanted.set(h.nodePort, h.service);
    }
    const addrs = [...new Set(addresses)].sort();
    for (const [port, l] of this.listeners) {
      if (wanted.get(port) === l.service && JSON.stringify(l.addresses) === JSON.stringify(addrs)) continue;
      this.close(port, l);
    }
    for (const [port, service] of wanted) {
      let l = this.listeners.get(port);
      if (!l) this.listeners.set(port, (l = { service, addresses: addrs, servers: new Map() }));
      for (const a of addrs) {
        const why = this.failed.get(hostPort(a, port));
        if (why) problems.push(`healthCheckNodePort of ${service}: ${why}`);
        if (!l.servers.has(a)) this.listen(port, a, l);
      }
    }
    return problems;
  }

  private listen(port: number, addr: string, l: Listener): void {
    const key = hostPort(addr, port);
    const s = createServer((req, res) => {
      const h = this.entryOf(port);
      if (!h) return void res.destroy();
      const r = healthResponse(h, this.healthy);
      res.writeHead(r.status, r.headers);
      res.end(r.body);
    });
    s.on('error', (e: NodeJS.ErrnoException) => {
      this.failed.set(key, `listen on ${key}: ${e.code ?? e.message}`);
      if (l.servers.get(addr) === s) l.servers.delete(addr);
      s.close();
    });
    s.on('listening', () => this.failed.delete(key));
    l.servers.set(addr, s);
    s.listen({ port, host: addr, exclusive: true });
  }

  private entryOf(port: number): ServiceHealth | undefined {
    const l = this.listeners.get(port);
    return l ? this.entries.get(l.service) : undefined;
  }

  private close(port: number, l: Listener): void {
    for (const [a, s] of l.servers) {
      s.close();
      s.closeAllConnections();
      this.failed.delete(hostPort(a, port));
    }
    for (const a of l.addresses) this.failed.delete(hostPort(a, port));
    this.listeners.delete(port);
  }
}

export const healthServers = new HealthServers();

/** `twill sync --watch`: from now on, Services syncs keep the healthCheckNodePort servers. */
export function serveHealthChecks(): void {
  healthServers.enabled = true;
}
