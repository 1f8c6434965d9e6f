// Build step: runs the wrapped bundle through real verbs and saves V8's code cache for it.
// As root with iproute2 it attaches and detaches a pod in a scratch namespace (and removes
// everything it made); otherwise it warms what needs no privileges.
//   node warm-cache.cjs <wrapped-bundle.js> <out.cache>
const { spawnSync } = require('node:child_process');
const { mkdtempSync, readFileSync, rmSync, writeFileSync } = require('node:fs');
const { tmpdir } = require('node:os');
const vm = require('node:vm');

const [src, out] = process.argv.slice(2);
const script = new vm.Script(readFileSync(src, 'utf8'), { filename: 'twill.js' });
const program = script.runInThisContext();

async function invoke(env, stdin) {
  const fs = require('node:fs');
  const saved = { ...process.env };
  Object.assign(process.env, env);
  // The program reads fd 0 and writes fd 1: hand it files instead (lib/stdio.ts).
  const dir = mkdtempSync(`${tmpdir()}/twill-warm-io-`);
  writeFileSync(`${dir}/in`, stdin);
  const io = { stdin: fs.openSync(`${dir}/in`, 'r'), stdout: fs.openSync(`${dir}/out`, 'w') };
  try {
    globalThis.__twillIo = io;
    const module = { exports: {} };
    program(require, module, module.exports, src, __dirname);
    await globalThis.__twillRun;
    return readFileSync(`${dir}/out`, 'utf8');
  } finally {
    for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
    Object.assign(process.env, saved);
    fs.closeSync(io.stdin);
    fs.closeSync(io.stdout);
    rmSync(dir, { recursive: true, force: true });
    delete globalThis.__twillIo;
  }
}

async function main() {
  const work = mkdtempSync(`${tmpdir()}/twill-warm-`);
  const ns = `twill-warm-${process.pid}`;
  const root = process.getuid?.() === 0 && spawnSync('ip', ['netns', 'add', ns]).status === 0;
  const conf = {
    cniVersion: '1.1.0', name: 'twill-warm', type: 'twill', stateDir: `${work}/state`, bpffsRoot: `${work}/bpffs`,
    ipam: { type: 'host-local', dataDir: `${work}/ipam`, ranges: [[{ subnet: '10.254.254.0/24' }], [{ subnet: 'fd00:254:254::/64' }]], routes: [{ dst: '0.0.0.0/0' }] },
  };
  const env = { CNI_CONTAINERID: 'twill-warm', CNI_NETNS: `/run/netns/${ns}`, CNI_IFNAME: 'eth0', CNI_PATH: '/nonexistent' };
  try {
    await invoke({ CNI_COMMAND: 'VERSION' }, '{"cniVersion":"1.1.0"}');
    await invoke({ CNI_COMMAND: 'STATUS' }, JSON.stringify(conf));
    await invoke({ CNI_COMMAND: 'ADD', ...env }, '{"cniVersion":'); // an error path
    if (root) {
      const res = await invoke({ CNI_COMMAND: 'ADD', ...env }, JSON.stringify(conf));
      await invoke({ CNI_COMMAND: 'CHECK', ...env }, JSON.stringify({ ...conf, prevResult: JSON.parse(res) }));
      await invoke({ CNI_COMMAND: 'DEL', ...env }, JSON.stringify({ ...conf, prevResult: JSON.parse(res) }));
      await invoke({ CNI_COMMAND: 'GC' }, JSON.stringify({ ...conf, 'cni.dev/valid-attachments': [] }));
    }
  } finally {
    if (root) spawnSync('ip', ['netns', 'del', ns]);
    spawnSync('umount', [`${work}/bpffs`]);
    rmSync(work, { recursive: true, force: true });
    process.exitCode = 0;
  }
  writeFileSync(out, script.createCachedData());
  process.stdout.write(`code cache warmed ${root ? 'with ADD/CHECK/DEL/GC' : 'without root (VERSION/STATUS only)'}\n`);
}

main();
