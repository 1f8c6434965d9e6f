// The operator CLI (no CNI_COMMAND): yargs is loaded only here, never on the CNI path.
import yargs from 'yargs';
import { SUPPORTED_VERSIONS } from '../cni/versions.js';

export async function runCli(argv: string[], version: string): Promise<number> {
  let code = 0;
  await yargs(argv)
    .scriptName('twill')
    .usage('$0 <command>\n\ntwill is a CNI plugin: container runtimes run it with CNI_COMMAND set.\nWithout it, these commands are for operators.')
    .command('version', 'print the version and the CNI spec versions supported', {}, () => {
      process.stdout.write(`twill ${version}\nCNI spec versions: ${SUPPORTED_VERSIONS.join(', ')}\n`);
    })
    .command(
      'endpoints',
      'list the eBPF endpoint maps: address, pod interface, container, fast-path counters',
      (y) => y
        .option('bpffs-root', { type: 'string', default: '/sys/fs/bpf', describe: 'bpffs root the networks pin under' })
        .option('network', { type: 'string', describe: 'only this network' })
        .option('json', { type: 'boolean', default: false, describe: 'machine-readable output' }),
      async (a) => {
        const { runEndpoints } = await import('./endpoints.js');
        code = runEndpoints({ bpffsRoot: a['bpffs-root'], json: a.json, network: a.network });
      },
    )
    .command(
      'status',
      'per network: data path and why, backend, pool usage, endpoints, BPF ids and pins, recent errors; exit 1 when a network cannot serve ADDs',
      (y) => y
        .option('conf-dir', { type: 'string', default: '/etc/cni/net.d', describe: 'CNI configuration directory' })
        .option('json', { type: 'boolean', default: false, describe: 'machine-readable output' }),
      async (a) => {
        const { runStatus } = await import('./status.js');
        code = runStatus({ confDir: a['conf-dir'], json: a.json });
      },
    )
    .command(
      'install',
      'put this executable into the CNI bin dir and a conflist into the CNI config dir (atomically; an existing conflist is kept unless --force)',
      (y) => y
        .option('bin-dir', { type: 'string', default: '/opt/cni/bin' })
        .option('conf-dir', { type: 'string', default: '/etc/cni/net.d' })
        .option('conflist', { type: 'string', describe: 'conflist to install (default: twill + portmap + bandwidth on 10.85.0.0/16)' })
        .option('name', { type: 'string', default: '10-twill.conflist', describe: 'file name in the config dir' })
        .option('force', { type: 'boolean', default: false, describe: 'replace an existing conflist of that name' }),
      async (a) => {
        const { runInstall } = await import('./install.js');
        code = runInstall({ binDir: a['bin-dir'], confDir: a['conf-dir'], conflist: a.conflist, name: a.name, force: a.force, source: process.execPath });
      },
    )
    .command(
      'sync',
      'reconcile every twill network with its node table (Kubernetes Node objects, a nodes file, or the config): VXLAN device, FDB, neighbours, peer routes, masquerade',
      (y) => y
        .option('conf-dir', { type: 'string', default: '/etc/cni/net.d' })
        .option('network', { type: 'string', describe: 'only this network' })
        .option('kubeconfig', { type: 'string', describe: 'read Node objects with this kubeconfig' })
        .option('in-cluster', { type: 'boolean', default: false, describe: 'read Node objects with the pod\'s service account' })
        .option('nodes-file', { type: 'string', describe: 'read the node table from this JSON file ({"nodes": [...]})' })
        .option('cleanup', { type: 'boolean', default: false, describe: 'remove every peer route, FDB and neighbour entry and the masquerade rules' })
        .option('watch', { type: 'number', describe: 'repeat every N seconds' })
        .option('json', { type: 'boolean', default: false }),
      async (a) => {
        const { runSync } = await import('./sync.js');
        code = await runSync({ confDir: a['conf-dir'], network: a.network, kubeconfig: a.kubeconfig, inCluster: a['in-cluster'], nodesFile: a['nodes-file'], cleanup: a.cleanup, watch: a.watch, json: a.json });
      },
    )
    .demandCommand(1, 'name a command (see --help)')
    .strict()
    .version(version)
    .help()
    .fail((msg, err) => {
      process.stderr.write(`${msg ?? err?.message}\n\nRun "twill --help" for usage.\n`);
      code = 2;
    })
    .parseAsync();
  return code;
}
