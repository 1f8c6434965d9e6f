// A simulated cluster: node namespaces joined by an underlay bridge (in a switch namespace),
// each node with its own state, IPAM store, bpffs root and CNI config directory, twill run
// inside each node's namespace exactly as kubelet's runtime would run it there.
import { spawnSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { forgetNetwork } from './netconf.js';
import { deleteNetns, inNs, makeNetns, netnsPath, removeDir, sh, tempDir, TWILL } from './twill.js';

export interface SimNode {
  name: string;
  ns: string;
  ip: string;
  ip6: string;
  cidr4: string;
  cidr6: string;
  dir: string;
  confDir: string;
  conf: Record<string, any>;
}

export interface Cluster {
  nodes: SimNode[];
  /** The namespace of the underlay's bridge (br0): a test may plug a host that is no node into it. */
  switchNs: string;
  /** Runs twill inside node's namespace; parsed stdout and exit code. */
  twill(node: SimNode, env: Record<string, string>, stdin: object): { code: number; json: Record<string, any>; stdout: string };
  cli(node: SimNode, args: string[]): { code: number; stdout: string; stderr: string };
  destroy(): void;
}

let clusters = 0;

/**
 * How twill's entry sits in each node's conflist (see ConfShape in netpol.ts): everyday
 * declares no capability on twill (portmap and bandwidth after it), so a pod starts pending and
 * is settled by the next call once its result is cached, as libcni caches it after the chain.
 */
export type ClusterShape = 'everyday' | 'declared';

export function makeCluster(opts: { backend: 'vxlan' | 'hostgw'; datapath: 'ebpf' | 'routed'; count?: number; underlay6?: boolean; shape?: ClusterShape; extra?: (n: SimNode) => Record<string, unknown> }): Cluster {
  const shape = opts.shape ?? 'declared';
  const id = clusters++;
  const sw = makeNetns();
  inNs(sw, ['ip', 'link', 'add', 'br0', 'type', 'bridge']);
  inNs(sw, ['ip', 'link', 'set', 'br0', 'up']);
  const net = `cluster${process.pid % 1000}x${id}`;
  const nodes: SimNode[] = Array.from({ length: opts.count ?? 3 }, (_, i) => {
    const k = i + 1;
    const ns = makeNetns();
    sh('ip', ['link', 'add', `twu${id}n${k}`, 'netns', ns, 'type', 'veth', 'peer', 'name', `sw${k}`, 'netns', sw]);
    inNs(sw, ['ip', 'link', 'set', `sw${k}`, 'master', 'br0', 'up']);
    inNs(ns, ['ip', 'link', 'set', `twu${id}n${k}`, 'name', 'eth0']);
    inNs(ns, ['ip', 'addr', 'add', `10.250.${id}.${k}/24`, 'dev', 'eth0']);
    inNs(ns, ['ip', 'addr', 'add', `fd00:250:${id + 1}::${k}/64`, 'dev', 'eth0', 'nodad']);
    inNs(ns, ['ip', 'link', 'set', 'eth0', 'up']);
    inNs(ns, ['ip', 'link', 'set', 'lo', 'up']);
    const dir = tempDir(`node${k}`);
    // A bpffs mounted here, in the host's mount namespace, is what every `ip netns exec` of
    // this node sees: one mounted by twill inside such an exec would vanish with it.
    sh('mkdir', ['-p', `${dir}/bpffs`]);
    sh('mount', ['-t', 'bpf', 'bpf', `${dir}/bpffs`]);
    return { name: `node-${k}`, ns, ip: `10.250.${id}.${k}`, ip6: `fd00:250:${id + 1}::${k}`, cidr4: `10.244.${id * 10 + k}.0/24`, cidr6: `fd00:244:${id * 10 + k}::/64`, dir, confDir: `${dir}/net.d`, conf: {} };
  });
  // underlay6: the nodes know each other by IPv6 address only (VXLAN over an IPv6 underlay).
  const table = nodes.map((n) => (opts.underlay6 ? { name: n.name, ip: n.ip6, podCIDRs: [n.cidr4, n.cidr6] } : { name: n.name, ip: n.ip, ip6: n.ip6, podCIDRs: [n.cidr4, n.cidr6] }));
  for (const n of nodes) {
    n.conf = {
      cniVersion: '1.1.0', name: net, type: 'twill', ...(shape === 'declared' ? { capabilities: { bandwidth: true } } : {}), cniCacheDir: `${n.dir}/cni-cache`, backend: opts.backend, datapath: opts.datapath, vxlan: { vni: 100 + id },
      nodeName: n.name, nodesFile: `${n.dir}/nodes.json`, stateDir: `${n.dir}/state`, bpffsRoot: `${n.dir}/bpffs`, logFile: `${n.dir}/twill.log`,
      ipam: { type: 'host-local', dataDir: `${n.dir}/ipam`, ranges: [[{ subnet: n.cidr4 }], [{ subnet: n.cidr6 }]], routes: [{ dst: '0.0.0.0/0' }, { dst: '::/0' }] },
      ...(opts.extra?.(n) ?? {}),
    };
    writeFileSync(`${n.dir}/nodes.json`, JSON.stringify({ nodes: table }));
    sh('mkdir', ['-p', n.confDir]);
    const entry = { ...n.conf };
    delete entry.cniVersion;
    delete entry.name;
    sh('mkdir', ['-p', `${n.dir}/cni-cache/results`]);
    const chain = shape === 'everyday' ? [{ type: 'portmap', capabilities: { portMappings: true } }, { type: 'bandwidth', capabilities: { bandwidth: true } }] : [];
    writeFileSync(`${n.confDir}/10-twill.conflist`, JSON.stringify({ cniVersion: '1.1.0', name: net, plugins: [entry, ...chain] }));
  }
  const run = (node: SimNode, args: string[], env: Record<string, string>, input = '') =>
    spawnSync('ip', ['netns', 'exec', node.ns, TWILL, ...args], { input, encoding: 'utf8', env: { PATH: process.env.PATH, ...env }, timeout: 60_000 });
  return {
    nodes,
    switchNs: sw,
    twill: (node, env, stdin) => {
      const r = run(node, [], env, JSON.stringify(stdin));
      let json: Record<string, any> = {};
      try {
        json = r.stdout.trim() ? JSON.parse(r.stdout) : {};
      } catch {
        json = { unparsable: r.stdout };
      }
      // libcni caches a chain's result once every plugin succeeded, and drops it on DEL.
      const cached = `${node.dir}/cni-cache/results/${net}-${env.CNI_CONTAINERID}-${env.CNI_IFNAME}`;
      if (env.CNI_COMMAND === 'ADD' && r.status === 0) writeFileSync(cached, r.stdout);
      if (env.CNI_COMMAND === 'DEL') rmSync(cached, { force: true });
      return { code: r.status ?? -1, json, stdout: r.stdout };
    },
    cli: (node, args) => {
      const r = run(node, args, {});
      return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
    },
    destroy: () => {
      for (const n of nodes) {
        forgetNetwork(net, `${n.dir}/state`);
        sh('umount', [`${n.dir}/bpffs`], { allowFail: true });
        deleteNetns(n.ns);
        removeDir(n.dir);
      }
      deleteNetns(sw);
    },
  };
}

/**
 * Syncs every node from one objects file: a namespace per placement entry (labelled ns=<name>),
 * its pod on node i (labelled pod=<name>, Running with ips[i], else Pending), and the policies.
 */
export function syncPolicies(c: Cluster, placement: readonly (readonly [string, string])[], ips: readonly (readonly string[] | undefined)[], policies: object[], containerPorts: object[] = []): void {
  const objects = {
    kind: 'List',
    items: [
      ...placement.map(([ns]) => ({ kind: 'Namespace', metadata: { name: ns, labels: { ns } } })),
      ...placement.map(([ns, name], i) => ({
        kind: 'Pod', metadata: { namespace: ns, name, labels: { pod: name } }, spec: { nodeName: c.nodes[i]!.name, containers: [{ name: 'c', ...(containerPorts.length ? { ports: containerPorts } : {}) }] },
        status: ips[i] ? { phase: 'Running', podIPs: ips[i]!.map((ip) => ({ ip })) } : { phase: 'Pending' },
      })),
      ...policies,
    ],
  };
  for (const n of c.nodes) {
    writeFileSync(`${n.dir}/objects.json`, JSON.stringify(objects));
    const r = c.cli(n, ['sync', '--conf-dir', n.confDir, '--from-file', `${n.dir}/objects.json`]);
    if (r.code !== 0) throw new Error(`sync on ${n.name} exited ${r.code}: ${r.stdout}${r.stderr}`);
  }
}

export const podEnv = (id: string, pod: string): Record<string, string> => ({ CNI_COMMAND: 'ADD', CNI_CONTAINERID: id, CNI_NETNS: netnsPath(pod), CNI_IFNAME: 'eth0' });
