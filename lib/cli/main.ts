// The operator CLI (no CNI_COMMAND): yargs is loaded only here, never on the CNI path.
//
// The command line is parsed and validated whole before anything runs: a handler only
// records what to run, so an unknown option, a missing value or a bad type (a typo in a
// systemd unit or a DaemonSet's args) runs nothing and exits 2.
import yargs, { type Argv } from 'yargs';

export const EXIT = { ok: 0, problems: 1, usage: 2 } as const;

const EXIT_HELP = 'Exit codes: 0 ok, 1 not ready or problems found, 2 usage error (nothing was run).';

type Run = () => Promise<number> | number;

/** -o json | table, with --json kept as an alias of -o json. */
function output<T>(y: Argv<T>) {
  return y
    .option('output', { alias: 'o', choices: ['table', 'json'] as const, default: 'table' as const, describe: 'output format', requiresArg: true })
    .option('json', { type: 'boolean', default: false, describe: 'same as -o json' });
}
const isJson = (a: { output: string; json: boolean }): boolean => a.json || a.output === 'json';

/** Flags that take no value; yargs would read `--force=maybe` as true. */
const BOOLEAN_FLAGS = new Set(['force', 'in-cluster', 'cleanup', 'json', 'help', 'version', 'follow']);

function badBoolean(argv: string[]): string | undefined {
  for (const a of argv) {
    const m = /^--([a-z-]+)=(.*)$/s.exec(a);
    if (m && BOOLEAN_FLAGS.has(m[1]!) && m[2] !== 'true' && m[2] !== 'false') return `--${m[1]} takes no value (or true/false), not "${m[2]!.slice(0, 40)}"`;
  }
  return undefined;
}

export async function runCli(argv: string[], version: string): Promise<number> {
  let run: Run | undefined;
  let usage: string | undefined = badBoolean(argv);
  const parser = yargs(argv)
    .scriptName('twill')
    .usage('$0 <command>\n\ntwill is a CNI plugin: container runtimes run it with CNI_COMMAND set.\nWithout it, these commands are for operators.')
    .command(
      'version',
      'print the version, the CNI spec versions supported, and what this host offers (runtime, kernel, tcx, ringbuf, conntrack kfuncs)',
      (y) => output(y).epilog(EXIT_HELP).example('$0 version -o json', 'machine-readable, with the host\'s features'),
      (a) => {
        run = async () => (await import('./version.js')).runVersion({ version, json: isJson(a) });
      },
    )
    .command(
      'endpoints',
      'list the eBPF endpoint maps: address, pod interface, container, fast-path and spoofed-packet counters',
      (y) => output(y)
        .option('bpffs-root', { type: 'string', default: '/sys/fs/bpf', describe: 'bpffs root the networks pin under', requiresArg: true })
        .option('network', { type: 'string', describe: 'only this network', requiresArg: true })
        .epilog(EXIT_HELP)
        .example('$0 endpoints --network pods -o json', 'one network\'s endpoints as JSON'),
      (a) => {
        run = async () => (await import('./endpoints.js')).runEndpoints({ bpffsRoot: a['bpffs-root'], json: isJson(a), network: a.network });
      },
    )
    .command(
      'status',
      'per network: data path and why, backend, pool usage, endpoints, BPF ids and pins, recent errors; exit 1 when a network cannot serve ADDs',
      (y) => output(y)
        .option('conf-dir', { type: 'string', default: '/etc/cni/net.d', describe: 'CNI configuration directory', requiresArg: true })
        .epilog(EXIT_HELP)
        .example('$0 status --conf-dir /etc/cni/net.d', 'is every twill network ready?'),
      (a) => {
        run = async () => (await import('./status.js')).runStatus({ confDir: a['conf-dir'], json: isJson(a) });
      },
    )
    .command(
      'services',
      'the Service frontends this node translates and the backends each balances over (active, terminating), from the pinned maps, as cilium service list prints them',
      (y) => output(y)
        .option('conf-dir', { type: 'string', default: '/etc/cni/net.d', describe: 'CNI configuration directory', requiresArg: true })
        .epilog(EXIT_HELP)
        .example('$0 services -o json', 'frontends and backends as JSON'),
      (a) => {
        run = async () => (await import('./services.js')).runServices({ confDir: a['conf-dir'], json: isJson(a) });
      },
    )
    .command(
      'install',
      'put this executable into the CNI bin dir and a conflist into the CNI config dir (atomically; an existing conflist is kept unless --force)',
      (y) => y
        .option('bin-dir', { type: 'string', default: '/opt/cni/bin', requiresArg: true })
        .option('conf-dir', { type: 'string', default: '/etc/cni/net.d', requiresArg: true })
        .option('conflist', { type: 'string', describe: 'conflist to install (default: twill + portmap + bandwidth on 10.85.0.0/16)', requiresArg: true })
        .option('name', { type: 'string', default: '10-twill.conflist', describe: 'file name in the config dir', requiresArg: true })
        .option('force', { type: 'boolean', default: false, describe: 'replace an existing conflist of that name' })
        .epilog(EXIT_HELP)
        .example('$0 install --bin-dir /host/opt/cni/bin --conf-dir /host/etc/cni/net.d', 'from an init container'),
      (a) => {
        run = async () => (await import('./install.js')).runInstall({ binDir: a['bin-dir'], confDir: a['conf-dir'], conflist: a.conflist, name: a.name, force: a.force, source: process.execPath });
      },
    )
    .command(
      'sync',
      'reconcile every twill network with its node table (Kubernetes Node objects, a nodes file, or the config): VXLAN device, FDB, neighbours, peer routes, masquerade; NetworkPolicy and Services where a network asks for them',
      (y) => output(y)
        .option('conf-dir', { type: 'string', default: '/etc/cni/net.d', requiresArg: true })
        .option('network', { type: 'string', describe: 'only this network', requiresArg: true })
        .option('kubeconfig', { type: 'string', describe: 'read Node objects with this kubeconfig', requiresArg: true })
        .option('in-cluster', { type: 'boolean', default: false, describe: 'read Node objects with the pod\'s service account' })
        .option('nodes-file', { type: 'string', describe: 'read the node table from this JSON file ({"nodes": [...]})', requiresArg: true })
        .option('from-file', { type: 'string', describe: 'read Namespaces, Pods, NetworkPolicies, Services and EndpointSlices from this file (a List as kubectl get -o json prints it, or multi-document YAML)', requiresArg: true })
        .option('cleanup', { type: 'boolean', default: false, describe: 'remove every peer route, FDB and neighbour entry, the masquerade rules, eBPF state no veth uses, and the Services hooks and maps' })
        .option('watch', { type: 'number', describe: 'repeat every N seconds (1 to 86400); errors are retried with backoff', requiresArg: true })
        .check((a) => {
          const sources = [a.kubeconfig !== undefined, a['in-cluster'], a['nodes-file'] !== undefined].filter(Boolean).length;
          if (sources > 1) throw new Error('--kubeconfig, --in-cluster and --nodes-file are alternatives: name one');
          if (a['from-file'] !== undefined && (a.kubeconfig !== undefined || a['in-cluster'])) throw new Error('--from-file and --kubeconfig/--in-cluster are alternatives: name one');
          if (a.watch !== undefined && (!Number.isInteger(a.watch) || a.watch < 1 || a.watch > 86400)) throw new Error(`--watch must be a whole number of seconds from 1 to 86400, not ${String(argvValue(argv, 'watch') ?? a.watch)}`);
          return true;
        })
        .epilog(EXIT_HELP)
        .example('$0 sync --kubeconfig /etc/kubernetes/kubelet.conf', 'peers from the cluster\'s Node objects')
        .example('$0 sync --in-cluster --watch 30', 'as a DaemonSet loop')
        .example('$0 sync --from-file cluster.json', 'NetworkPolicy without Kubernetes (kubectl get ns,pods,netpol -A -o json)'),
      (a) => {
        run = async () => (await import('./sync.js')).runSync({ confDir: a['conf-dir'], network: a.network, kubeconfig: a.kubeconfig, inCluster: a['in-cluster'], nodesFile: a['nodes-file'], fromFile: a['from-file'], cleanup: a.cleanup, watch: a.watch, json: isJson(a) });
      },
    )
    .command(
      'observe',
      'the flows and drops the kernel recorded on this node, with their verdicts: from its flow history (no reader needs to have run) or live (--follow), as hubble observe prints them',
      (y) => output(y)
        .option('conf-dir', { type: 'string', default: '/etc/cni/net.d', requiresArg: true })
        .option('network', { type: 'string', describe: 'only this network', requiresArg: true })
        .option('follow', { alias: 'f', type: 'boolean', default: false, describe: 'stream new flows, drops and TCP ends as they happen (until interrupted)' })
        .option('last', { type: 'number', describe: 'the last N flows of the history (default 20 unless --since or --follow)', requiresArg: true })
        .option('since', { type: 'string', describe: 'flows seen since a duration ago (30s, 10m, 2h) or a time (RFC 3339)', requiresArg: true })
        .option('pod', { type: 'string', describe: 'flows from or to [namespace/]pod (a name prefix)', requiresArg: true })
        .option('from-pod', { type: 'string', describe: 'flows from [namespace/]pod', requiresArg: true })
        .option('to-pod', { type: 'string', describe: 'flows to [namespace/]pod', requiresArg: true })
        .option('namespace', { type: 'string', describe: 'flows from or to a pod of this namespace', requiresArg: true })
        .option('verdict', { type: 'string', choices: ['FORWARDED', 'DROPPED'] as const, coerce: (v: string) => v.toUpperCase() as 'FORWARDED' | 'DROPPED', describe: 'FORWARDED or DROPPED', requiresArg: true })
        .option('protocol', { type: 'string', choices: ['tcp', 'udp', 'sctp', 'icmp', 'icmpv4', 'icmpv6'] as const, coerce: (v: string) => v.toLowerCase(), describe: 'L4 protocol', requiresArg: true })
        .option('port', { type: 'number', describe: 'source or destination port', requiresArg: true })
        .option('ip', { type: 'string', describe: 'source or destination address or CIDR', requiresArg: true })
        .check((a) => {
          if (a.last !== undefined && (!Number.isInteger(a.last) || a.last < 0)) throw new Error(`--last must be a whole number, not ${String(argvValue(argv, 'last') ?? a.last)}`);
          if (a.port !== undefined && (!Number.isInteger(a.port) || a.port < 0 || a.port > 65535)) throw new Error(`--port must be 0 to 65535, not ${String(argvValue(argv, 'port') ?? a.port)}`);
          return true;
        })
        .epilog(EXIT_HELP)
        .example('$0 observe --verdict DROPPED --since 10m', 'what was dropped in the last ten minutes, and by which policy')
        .example('$0 observe --pod x/a -f', 'follow x/a\'s flows live')
        .example('$0 observe -o json --last 100 | jq .flow.drop_reason_desc', 'Hubble\'s JSON'),
      (a) => {
        run = async () => (await import('./observe.js')).runObserve({
          confDir: a['conf-dir'], network: a.network, follow: a.follow, last: a.last, since: a.since, json: isJson(a),
          filter: {
            ...(a.pod !== undefined ? { pod: a.pod } : {}), ...(a['from-pod'] !== undefined ? { fromPod: a['from-pod'] } : {}), ...(a['to-pod'] !== undefined ? { toPod: a['to-pod'] } : {}),
            ...(a.namespace !== undefined ? { namespace: a.namespace } : {}), ...(a.verdict !== undefined ? { verdict: a.verdict } : {}), ...(a.protocol !== undefined ? { protocol: a.protocol } : {}),
            ...(a.port !== undefined ? { port: a.port } : {}), ...(a.ip !== undefined ? { ip: a.ip } : {}),
          },
        });
      },
    )
    .command(
      'metrics',
      'this node\'s counters in Prometheus text format: forwarded and dropped packets and bytes per pod (fast path vs stack, drop reason), endpoints, pool usage, lost events, last policy sync',
      (y) => y
        .option('conf-dir', { type: 'string', default: '/etc/cni/net.d', requiresArg: true })
        .option('textfile', { type: 'string', describe: 'write DIR/twill.prom atomically for node_exporter\'s textfile collector instead of printing', requiresArg: true })
        .option('every', { type: 'number', describe: 'repeat every N seconds (1 to 86400) until SIGTERM', requiresArg: true })
        .check((a) => {
          if (a.every !== undefined && (!Number.isInteger(a.every) || a.every < 1 || a.every > 86400)) throw new Error(`--every must be a whole number of seconds from 1 to 86400, not ${String(argvValue(argv, 'every') ?? a.every)}`);
          return true;
        })
        .epilog(EXIT_HELP)
        .example('$0 metrics --textfile /var/lib/node_exporter/textfile_collector', 'from a systemd timer')
        .example('$0 metrics --textfile /var/lib/node_exporter/textfile_collector --every 15', 'as a DaemonSet container'),
      (a) => {
        run = async () => (await import('./metrics.js')).runMetrics({ confDir: a['conf-dir'], textfile: a.textfile, every: a.every });
      },
    )
    .command(
      'policy <command>',
      'NetworkPolicy as the kernel enforces it: what a pod may reach and be reached from, and why a connection is allowed or denied',
      (y) => y
        .command(
          'show <pod>',
          'a local pod\'s identity and its allowances per direction, with the policy each comes from',
          (s) => output(s.positional('pod', { type: 'string', describe: 'namespace/name or address', demandOption: true }))
            .option('conf-dir', { type: 'string', default: '/etc/cni/net.d', requiresArg: true })
            .option('network', { type: 'string', describe: 'the network (default: the one that enforces policy)', requiresArg: true })
            .epilog(EXIT_HELP)
            .example('$0 policy show x/a', 'what may reach x/a, and what it may reach'),
          (a) => {
            run = async () => (await import('./policy.js')).runPolicyShow({ confDir: a['conf-dir'], network: a.network, json: isJson(a), pod: a.pod });
          },
        )
        .command(
          'why <from> <to> <port>',
          'the verdict the data path gives a connection from FROM to TO on PORT/PROTOCOL, and the policy (or default) that decides it',
          (s) => output(s
            .positional('from', { type: 'string', describe: 'namespace/name or address', demandOption: true })
            .positional('to', { type: 'string', describe: 'namespace/name or address', demandOption: true })
            .positional('port', { type: 'string', describe: 'PORT/PROTOCOL: 80/tcp, 53/udp (protocol defaults to tcp)', demandOption: true }))
            .option('conf-dir', { type: 'string', default: '/etc/cni/net.d', requiresArg: true })
            .option('network', { type: 'string', describe: 'the network (default: the one that enforces policy)', requiresArg: true })
            .epilog('Exit codes: 0 allowed, 1 denied, 2 usage error or nothing to ask.')
            .example('$0 policy why x/b x/a 80/tcp', 'can x/b open a connection to x/a on port 80?'),
          (a) => {
            run = async () => (await import('./policy.js')).runPolicyWhy({ confDir: a['conf-dir'], network: a.network, json: isJson(a), from: a.from, to: a.to, port: a.port });
          },
        )
        .demandCommand(1, 'name a policy command: show or why'),
    )
    .completion('completion', 'print a shell completion script (bash, zsh): twill completion >> ~/.bashrc')
    .demandCommand(1, 'name a command (see --help)')
    .recommendCommands()
    .strict()
    .strictOptions()
    .epilog(EXIT_HELP)
    .version(version)
    .help()
    .wrap(Math.min(110, process.stdout.columns ?? 100))
    .exitProcess(false)
    .fail((msg, err) => {
      usage = msg ?? err?.message ?? 'usage error';
    });
  if (usage === undefined) {
    try {
      await parser.parseAsync();
    } catch (e) {
      usage ??= (e as Error).message;
    }
  }
  if (usage !== undefined) {
    process.stderr.write(`twill: ${usage}\n\nRun "twill --help" for usage.\n`);
    return EXIT.usage;
  }
  return run ? run() : EXIT.ok; // --help, --version and completion print and end here
}

/** The raw text given for --name (to quote it back in an error). */
function argvValue(argv: string[], name: string): string | undefined {
  const i = argv.findIndex((x) => x === `--${name}` || x.startsWith(`--${name}=`));
  if (i < 0) return undefined;
  return argv[i]!.includes('=') ? argv[i]!.split('=').slice(1).join('=') : argv[i + 1];
}
