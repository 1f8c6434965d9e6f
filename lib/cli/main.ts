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
