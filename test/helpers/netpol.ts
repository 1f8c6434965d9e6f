// The Kubernetes e2e NetworkPolicy model (test/e2e/network/netpol): namespaces x, y, z with
// pods a, b, c serving TCP and UDP on 80 and 81, attached by twill for real; policies are
// synced from a file of Kubernetes objects and every probe of the reachability matrix is
// real traffic between the pods' network namespaces.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { testNet, type Stack } from './netconf.js';
import { tempBpffs } from './traffic.js';
import { CNI_BIN_DIR, deleteNetns, makeNetns, netnsPath, removeDir, ROOT, runPluginAsync, tempDir, twill, TWILL, type Run } from './twill.js';

export const AGENT = join(ROOT, 'test/helpers/netpol-agent.py');
export type Proto = 'TCP' | 'UDP';
export const NODE = 'node-1';
/** cnitool, built from Debian's source of libcni (tools/build/build-cnitool.sh); its cache is libcni's default. */
export const CNITOOL = `${ROOT}/.cache/cnitool`;
const LIBCNI_CACHE = '/var/lib/cni';

export interface Pod {
  ns: string;
  name: string;
  netns: string;
  ips: string[];
  labels: Record<string, string>;
  server?: ChildProcess | undefined;
  containerId: string;
}

export type Matrix = Map<string, boolean>;
const cell = (from: string, to: string, port: number, proto: Proto): string => `${from} -> ${to} ${port}/${proto}`;

export interface Model {
  namespaces: string[];
  pods: string[];
  ports: number[];
  protocols: Proto[];
}

export const DEFAULT_MODEL: Model = { namespaces: ['x', 'y', 'z'], pods: ['a', 'b', 'c'], ports: [80, 81], protocols: ['TCP', 'UDP'] };

/**
 * How twill's entry sits in the conflist. everyday: the one people copy (Calico's shape) —
 * twill + portmap + bandwidth, capabilities on portmap and bandwidth only, so each pod starts
 * pending and is settled once its chain's result is cached (written here as libcni writes it).
 * declared: twill's entry declares the bandwidth capability (the runtime hands it the limits).
 */
export type ConfShape = 'everyday' | 'declared';

export class NetpolCluster {
  readonly pods = new Map<string, Pod>();
  readonly nsLabels = new Map<string, Record<string, string>>();
  readonly confDir = tempDir('netpol-conf');
  readonly objectsFile: string;
  readonly net;
  readonly bpffs = tempBpffs();
  readonly conf: Record<string, any>;
  /** libcni's cache (cniCacheDir): a pod's chain result lands in results/ once its ADD is done. */
  readonly cniCache = tempDir('netpol-cnicache');
  private seq = 0;

  readonly shape: ConfShape;
  /** direct: twill run as a runtime runs it; cnitool: libcni runs the conflist's chain (and keeps its cache in /var/lib/cni). */
  readonly runtime: 'direct' | 'cnitool';
  private readonly bin: string | undefined;

  constructor(readonly model: Model = DEFAULT_MODEL, stack: Stack = 'v4', extra: Record<string, unknown> = {}, opts: { shape?: ConfShape; runtime?: 'direct' | 'cnitool' } = {}) {
    this.shape = opts.shape ?? 'everyday';
    this.runtime = opts.runtime ?? 'direct';
    const shape = this.shape;
    // Debian's libcni knows results up to 1.0.0.
    this.net = testNet({ stack, prefix: 'twp', ...(this.runtime === 'cnitool' ? { cniVersion: '1.0.0' } : {}) });
    this.conf = this.net.conf({ datapath: 'ebpf', bpffsRoot: this.bpffs.root, policy: { type: 'k8s' }, nodeName: NODE, ...(this.runtime === 'direct' ? { cniCacheDir: this.cniCache } : {}), ...extra });
    if (shape === 'everyday') delete this.conf.capabilities;
    if (this.runtime === 'cnitool') {
      this.bin = tempDir('netpol-cnibin');
      symlinkSync(TWILL, `${this.bin}/twill`);
      for (const p of ['portmap', 'bandwidth']) symlinkSync(`${CNI_BIN_DIR}/${p}`, `${this.bin}/${p}`);
    }
    this.objectsFile = join(this.confDir, 'objects.json');
    mkdirSync(this.confDir, { recursive: true });
    mkdirSync(join(this.cniCache, 'results'), { recursive: true });
    const chain = shape === 'everyday' || this.runtime === 'cnitool' ? [{ type: 'portmap', capabilities: { portMappings: true } }, { type: 'bandwidth', capabilities: { bandwidth: true } }] : [];
    writeFileSync(join(this.confDir, '10-netpol.conflist'), JSON.stringify({ cniVersion: this.conf.cniVersion, name: this.conf.name, plugins: [this.conf, ...chain] }));
    for (const ns of model.namespaces) this.nsLabels.set(ns, { ns });
  }

  key = (ns: string, name: string): string => `${ns}/${name}`;

  env(verb: string, p: Pod) {
    return { CNI_COMMAND: verb, CNI_CONTAINERID: p.containerId, CNI_NETNS: netnsPath(p.netns), CNI_IFNAME: 'eth0', CNI_ARGS: `K8S_POD_NAMESPACE=${p.ns};K8S_POD_NAME=${p.name}` };
  }

  /**
   * Attaches a pod (ADD) and starts its servers; sync first when its policy must apply from its
   * first packet. conf: what this pod's call adds to the network's (runtimeConfig); done: false
   * leaves its chain unfinished (no cached result), so an everyday pod stays pending.
   */
  addPod(ns: string, name: string, labels: Record<string, string> = { pod: name }, opts: { conf?: Record<string, unknown>; done?: boolean; bandwidth?: object } = {}): Pod {
    const p: Pod = { ns, name, netns: makeNetns(), ips: [], labels, containerId: `np${process.pid}${this.seq++}` };
    const r = this.runtime === 'cnitool'
      ? this.cnitool('ADD', p, opts.bandwidth ? { bandwidth: opts.bandwidth } : undefined)
      : twill(this.env('ADD', p), { ...this.conf, ...(opts.conf ?? {}), ...(opts.bandwidth ? { runtimeConfig: { bandwidth: opts.bandwidth } } : {}) });
    if (r.code !== 0) throw new Error(`ADD ${ns}/${name}: ${r.stdout}${r.stderr}`);
    p.ips = (r.json.ips as { address: string }[]).map((i) => i.address.split('/')[0]!);
    if (opts.done !== false && this.runtime === 'direct') this.chainDone(p, r.json);
    this.pods.set(this.key(ns, name), p);
    this.serve(p);
    return p;
  }

  /** addPod with the plugin run asynchronously: for an ADD that talks to a server in this process. */
  async addPodAsync(ns: string, name: string, labels: Record<string, string> = { pod: name }): Promise<Pod> {
    const p: Pod = { ns, name, netns: makeNetns(), ips: [], labels, containerId: `np${process.pid}${this.seq++}` };
    const r = await runPluginAsync(TWILL, this.env('ADD', p), this.conf);
    if (r.code !== 0) throw new Error(`ADD ${ns}/${name}: ${r.stdout}${r.stderr}`);
    p.ips = (r.json.ips as { address: string }[]).map((i) => i.address.split('/')[0]!);
    this.chainDone(p, r.json);
    this.pods.set(this.key(ns, name), p);
    this.serve(p);
    return p;
  }

  /** The chain run by libcni (cnitool: the conflist of confDir, the plugins of bin, the pod's CNI_ARGS). */
  cnitool(verb: 'ADD' | 'DEL', p: Pod, caps?: object): Run {
    const e = this.env(verb, p);
    const r = spawnSync(CNITOOL, [verb.toLowerCase(), this.conf.name, e.CNI_NETNS], {
      encoding: 'utf8', timeout: 60_000,
      env: { PATH: process.env.PATH, NETCONFPATH: this.confDir, CNI_PATH: this.bin, CNI_IFNAME: 'eth0', CNI_ARGS: e.CNI_ARGS, ...(caps ? { CAP_ARGS: JSON.stringify(caps) } : {}) },
    });
    let json: Record<string, any> = {};
    try {
      json = r.stdout.trim() ? JSON.parse(r.stdout) : {};
    } catch {
      json = {};
    }
    return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr, json };
  }

  /** What libcni does once every plugin of a pod's chain succeeded: caches the result (the next twill call settles a pending pod). */
  chainDone(p: Pod, result: object): void {
    writeFileSync(this.cachedResult(p), JSON.stringify({ kind: 'cniCacheV1', containerId: p.containerId, ifName: 'eth0', networkName: this.conf.name, result }));
  }

  cachedResult = (p: Pod): string => join(this.runtime === 'cnitool' ? LIBCNI_CACHE : this.cniCache, 'results', `${this.conf.name}-${p.containerId}-eth0`);

  serve(p: Pod): void {
    p.server = spawn('ip', ['netns', 'exec', p.netns, 'python3', AGENT, 'serve', ...this.model.ports.map(String)], { stdio: ['ignore', 'pipe', 'inherit'] });
    // Ready once every port listens (polled: a test's next line probes).
    const until = Date.now() + 5000;
    while (Date.now() < until) {
      const r = spawnSync('ip', ['netns', 'exec', p.netns, 'ss', '-ltnH'], { encoding: 'utf8' });
      if (this.model.ports.every((port) => r.stdout.includes(`:${port} `))) return;
      spawnSync('sleep', ['0.02']);
    }
    throw new Error(`servers of ${p.ns}/${p.name} did not start`);
  }

  delPod(ns: string, name: string): Run {
    const p = this.pods.get(this.key(ns, name))!;
    p.server?.kill();
    const r = this.runtime === 'cnitool' ? this.cnitool('DEL', p) : twill(this.env('DEL', p), this.conf);
    rmSync(this.cachedResult(p), { force: true });
    deleteNetns(p.netns);
    this.pods.delete(this.key(ns, name));
    return r;
  }

  setup(): this {
    for (const ns of this.model.namespaces) for (const name of this.model.pods) this.addPod(ns, name);
    return this;
  }

  /** The cluster as Kubernetes objects: namespaces, pods (with container ports named as the e2e suite names them) and the policies. */
  objects(policies: object[], extraPods: object[] = []): object {
    const ports = this.model.ports.flatMap((port) => this.model.protocols.map((protocol) => ({ name: `serve-${port}-${protocol.toLowerCase()}`, containerPort: port, protocol })));
    return {
      kind: 'List', apiVersion: 'v1',
      items: [
        ...[...this.nsLabels].map(([name, labels]) => ({ kind: 'Namespace', apiVersion: 'v1', metadata: { name, labels } })),
        ...[...this.pods.values()].map((p) => ({
          kind: 'Pod', apiVersion: 'v1', metadata: { namespace: p.ns, name: p.name, labels: p.labels },
          spec: { nodeName: NODE, containers: [{ name: 'c', ports }] },
          status: { phase: 'Running', podIP: p.ips[0], podIPs: p.ips.map((ip) => ({ ip })) },
        })),
        ...extraPods,
        ...policies.map((p) => ({ kind: 'NetworkPolicy', apiVersion: 'networking.k8s.io/v1', ...p })),
      ],
    };
  }

  sync(policies: object[], extraPods: object[] = []): Run {
    writeFileSync(this.objectsFile, JSON.stringify(this.objects(policies, extraPods)));
    const r = spawnSync(TWILL, ['sync', '--conf-dir', this.confDir, '--from-file', this.objectsFile], { encoding: 'utf8', timeout: 60_000 });
    const run = { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr, json: {} };
    if (run.code !== 0) throw new Error(`sync failed: ${r.stdout}${r.stderr}`);
    return run;
  }

  /** Every pod to every pod, each port and protocol, at once per source pod. */
  async probe(opts: { family?: 4 | 6; timeout?: number } = {}): Promise<Matrix> {
    const fam = opts.family ?? 4;
    const pods = [...this.pods.values()];
    const out: Matrix = new Map();
    const targets = pods.flatMap((to) => this.model.ports.flatMap((port) => this.model.protocols.map((proto) => ({ to, port, proto }))));
    const jobs = pods.map((from) => {
      const list = targets.map((t) => [t.to.ips.find((ip) => ip.includes(':') === (fam === 6)), t.port, t.proto]);
      return { from, r: spawn('ip', ['netns', 'exec', from.netns, 'python3', AGENT, 'probe', String(opts.timeout ?? 0.4)], { stdio: ['pipe', 'pipe', 'inherit'] }), list };
    });
    for (const j of jobs) j.r.stdin!.end(JSON.stringify(j.list));
    const results = jobs.map((j) => new Promise<boolean[]>((res) => {
      let s = '';
      j.r.stdout!.on('data', (d) => (s += d));
      j.r.on('close', () => res(JSON.parse(s || '[]') as boolean[]));
    }));
    const rs = await Promise.all(results);
    rs.forEach((r, i) => targets.forEach((t, k) => out.set(cell(this.key(jobs[i]!.from.ns, jobs[i]!.from.name), this.key(t.to.ns, t.to.name), t.port, t.proto), r[k] ?? false)));
    return out;
  }

  /** The expected matrix from a truth function; the diff of the two, empty when they agree. */
  expect(got: Matrix, allowed: (from: Pod, to: Pod, port: number, proto: Proto) => boolean): string[] {
    const diff: string[] = [];
    for (const from of this.pods.values()) {
      for (const to of this.pods.values()) {
        for (const port of this.model.ports) {
          for (const proto of this.model.protocols) {
            const k = cell(this.key(from.ns, from.name), this.key(to.ns, to.name), port, proto);
            const want = allowed(from, to, port, proto);
            if (got.get(k) !== want) diff.push(`${k}: expected ${want ? 'allowed' : 'denied'}, got ${got.get(k) ? 'allowed' : 'denied'}`);
          }
        }
      }
    }
    return diff;
  }

  teardown(): void {
    for (const p of [...this.pods.values()]) this.delPod(p.ns, p.name);
    this.bpffs.release();
    removeDir(this.confDir);
    removeDir(this.cniCache);
    if (this.bin) removeDir(this.bin);
    removeDir(this.net.dataDir);
    removeDir(this.net.stateDir);
  }
}

/** Runs the agent in a pod's namespace; resolves to its last line of output. */
export function agent(netns: string, args: string[], onReady?: () => void): Promise<string> {
  return new Promise((res) => {
    const p = spawn('ip', ['netns', 'exec', netns, 'python3', AGENT, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (onReady && out.includes('ready')) {
        const f = onReady;
        onReady = undefined;
        f();
      }
    });
    p.on('close', () => res(out.trim().split('\n').pop() ?? ''));
  });
}

export interface StreamResult {
  sent: number;
  echoed: number;
  maxGapMs: number;
  cut: boolean;
  cutAfterMs: number | null;
}
