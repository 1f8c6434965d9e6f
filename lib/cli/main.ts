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
