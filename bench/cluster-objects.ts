// Synthetic clusters for the policy benchmarks: N pods over 100 namespaces, policies that
// select and admit by labels, and the rules of one server pod at a chosen count.

export interface LocalPod {
  ns: string;
  name: string;
  ip: string;
  labels: Record<string, string>;
}

const ip = (i: number): string => `10.128.${(i >> 8) & 255}.${i & 255}`;

function pods(n: number, local: LocalPod[], node: string): object[] {
  const out: object[] = [];
  for (let i = 0; i < n; i++) {
    out.push({
      kind: 'Pod', metadata: { namespace: `ns-${i % 100}`, name: `p-${i}`, labels: { app: `a${i % 500}`, id: String(i) } },
      spec: { nodeName: `node-${i % 100}`, containers: [{ name: 'c', ports: [{ name: 'http', containerPort: 8080 }] }] },
      status: { phase: 'Running', podIPs: [{ ip: ip(i) }] },
    });
  }
  for (const p of local) {
    out.push({ kind: 'Pod', metadata: { namespace: p.ns, name: p.name, labels: p.labels }, spec: { nodeName: node, containers: [{ name: 'c' }] }, status: { phase: 'Running', ...(p.ip ? { podIPs: [{ ip: p.ip }] } : {}) } });
  }
  return out;
}

function namespaces(extra: string[]): object[] {
  return [...Array.from({ length: 100 }, (_, i) => `ns-${i}`), ...extra].map((name, i) => ({ kind: 'Namespace', metadata: { name, labels: { team: `t${i % 10}` } } }));
}

/** `rules` ingress rules on app=server in namespace bench (each admitting one remote pod), plus one admitting app=client. */
export function serverRules(n: number, local: LocalPod[], rules: number, node: string): object {
  const policies: object[] = [];
  for (let k = 0; k < rules; k += 10) {
    policies.push({
      kind: 'NetworkPolicy', metadata: { namespace: 'bench', name: `rules-${k}` },
      spec: {
        podSelector: { matchLabels: { app: 'server' } },
        ingress: Array.from({ length: Math.min(10, rules - k) }, (_, j) => ({
          from: [{ namespaceSelector: { matchLabels: { team: `t${(k + j) % 10}` } }, podSelector: { matchLabels: { id: String((k + j) % n) } } }],
          ports: [{ port: 6000 + ((k + j) % 50), protocol: 'TCP' }],
        })),
      },
    });
  }
  if (rules > 0) policies.push({ kind: 'NetworkPolicy', metadata: { namespace: 'bench', name: 'allow-client' }, spec: { podSelector: { matchLabels: { app: 'server' } }, ingress: [{ from: [{ podSelector: { matchLabels: { app: 'client' } } }] }] } });
  return { kind: 'List', items: [...namespaces(['bench']), ...pods(n, local, node), ...policies] };
}

/** A cluster of n pods and `count` policies spread over the namespaces, some with egress rules. */
export function spreadPolicies(n: number, local: LocalPod[], count: number, node: string): object {
  const policies = Array.from({ length: count }, (_, j) => ({
    kind: 'NetworkPolicy', metadata: { namespace: j % 4 === 0 ? 'bench' : `ns-${j % 100}`, name: `pol-${j}` },
    spec: {
      podSelector: j % 4 === 0 ? { matchLabels: { group: `g${j % 8}` } } : { matchLabels: { app: `a${j % 500}` } },
      ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: `t${j % 10}` } }, podSelector: { matchLabels: { app: `a${(j * 7) % 500}` } } }], ports: [{ port: 80 + (j % 3), protocol: 'TCP' }, { port: 'http' }] }],
      ...(j % 3 === 0 ? { egress: [{ to: [{ podSelector: { matchLabels: { app: `a${(j * 13) % 500}` } }, namespaceSelector: {} }] }, { ports: [{ port: 53, protocol: 'UDP' }] }] } : {}),
    },
  }));
  return { kind: 'List', items: [...namespaces(['bench']), ...pods(n, local, node), ...policies] };
}
