// `twill install`: the executable into the CNI bin dir and a conflist into the CNI config
// dir, each written under a temporary name and renamed into place, so a runtime never
// execs or parses half a file. An existing conflist is kept unless --force.
import { chmodSync, copyFileSync, existsSync, readFileSync, renameSync, rmSync, writeFileSync } from '../sys/fs.js';
import { mkdirs } from '../fsx.js';

export const DEFAULT_CONFLIST = {
  cniVersion: '1.1.0',
  name: 'twill',
  plugins: [
    {
      type: 'twill',
      datapath: 'auto',
      capabilities: { bandwidth: true },
      logFile: '/var/log/twill.log',
      ipam: { type: 'host-local', ranges: [[{ subnet: '10.85.0.0/16' }]], routes: [{ dst: '0.0.0.0/0' }] },
    },
    { type: 'portmap', capabilities: { portMappings: true } },
    { type: 'bandwidth', capabilities: { bandwidth: true } },
  ],
};

function placeAtomically(target: string, write: (tmp: string) => void): void {
  const tmp = `${target.slice(0, target.lastIndexOf('/'))}/.${target.slice(target.lastIndexOf('/') + 1)}.tmp-${process.pid}`;
  try {
    write(tmp);
    renameSync(tmp, target);
  } finally {
    rmSync(tmp, { force: true });
  }
}

export interface InstallOpts {
  binDir: string;
  confDir: string;
  conflist?: string | undefined;
  name: string;
  force: boolean;
  source: string;
}

export function runInstall(o: InstallOpts): number {
  if (!/^[\w.-]+\.conflist$/.test(o.name)) {
    process.stderr.write(`--name must be a plain file name ending in .conflist\n`);
    return 2;
  }
  mkdirs(o.binDir, 0o755);
  mkdirs(o.confDir, 0o755);
  const bin = `${o.binDir}/twill`;
  placeAtomically(bin, (tmp) => {
    copyFileSync(o.source, tmp);
    chmodSync(tmp, 0o755);
  });
  process.stdout.write(`installed ${bin}\n`);
  const conf = `${o.confDir}/${o.name}`;
  if (existsSync(conf) && !o.force) {
    process.stdout.write(`kept existing ${conf} (use --force to replace it)\n`);
    return 0;
  }
  const body = o.conflist ? readFileSync(o.conflist, 'utf8') : `${JSON.stringify(DEFAULT_CONFLIST, null, 2)}\n`;
  JSON.parse(body); // never install an unparsable conflist
  placeAtomically(conf, (tmp) => writeFileSync(tmp, body, { mode: 0o644 }));
  process.stdout.write(`wrote ${conf}\n`);
  return 0;
}
