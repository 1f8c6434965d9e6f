// A private containerd (Debian's 1.6) with its CRI plugin — the path kubelet drives — on a
// socket, root and state of its own, its CNI bin and conf dirs pointed at the test's, and a
// pause image built offline. stop() takes everything down again, also after a failure.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { Cri } from './cri.js';
import { ociImage } from '../../tools/build/oci-image.js';
import { removeDir, ROOT, sh, tempDir } from './twill.js';

export const PAUSE_IMAGE = 'twill.test/pause:e2e';

export interface Containerd {
  dir: string;
  socket: string;
  cri: Cri;
  stop(): void;
}

function pauseImage(work: string): string {
  const rootfs = `${work}/rootfs`;
  mkdirSync(rootfs, { recursive: true });
  sh('gcc', ['-static', '-O2', '-o', `${rootfs}/pause`, `${ROOT}/test/e2e/fixtures/pause.c`]);
  const out = `${work}/pause.tar`;
  ociImage(rootfs, work, PAUSE_IMAGE, ['/pause'], out);
  return out;
}

async function waitFor(cond: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

export async function startContainerd(binDir: string, confDir: string): Promise<Containerd> {
  const dir = tempDir('ctrd');
  const socket = `${dir}/c.sock`;
  writeFileSync(`${dir}/config.toml`, `version = 2
root = "${dir}/root"
state = "${dir}/state"
[grpc]
  address = "${socket}"
[ttrpc]
  address = "${socket}.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${PAUSE_IMAGE}"
  # The sandbox's pause process gets oom_score_adj -998, which needs CAP_SYS_RESOURCE; where
  # the host withholds it (this kind of machine does), keep it at ours.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "${binDir}"
    conf_dir = "${confDir}"
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
`);
  let proc: ChildProcess | undefined = spawn('containerd', ['--config', `${dir}/config.toml`], { stdio: ['ignore', 'ignore', 'pipe'], detached: false });
  let log = '';
  proc.stderr?.on('data', (d: Buffer) => {
    log = (log + d.toString()).slice(-20_000);
    if (process.env.TWILL_E2E_LOG) process.stderr.write(d);
  });
  const cri = new Cri(socket);
  const stop = (): void => {
    cri.close();
    if (proc && proc.exitCode === null) {
      proc.kill('SIGTERM');
      spawnSync('sh', ['-c', `for i in $(seq 50); do kill -0 ${proc.pid} 2>/dev/null || exit 0; sleep 0.1; done; kill -9 ${proc.pid}`]);
    }
    proc = undefined;
    // Shims of this instance outlive the daemon: they are found by the state path they were given.
    spawnSync('pkill', ['-9', '-f', `containerd-shim-runc-v2.*${dir}`]);
    for (const m of readFileSync('/proc/mounts', 'utf8').split('\n').map((l) => l.split(' ')[1] ?? '').filter((p) => p.startsWith(dir)).reverse()) {
      spawnSync('umount', ['-l', m]);
    }
    removeDir(dir);
  };
  try {
    await waitFor(() => existsSync(socket), 20_000, `containerd's socket (${log.slice(-2000)})`);
    await waitFor(async () => {
      try {
        await cri.version();
        return true;
      } catch {
        return false;
      }
    }, 20_000, `the CRI plugin (${log.slice(-2000)})`);
    const work = `${dir}/image`;
    mkdirSync(work);
    sh('ctr', ['--address', socket, '-n', 'k8s.io', 'images', 'import', pauseImage(work)]);
  } catch (e) {
    stop();
    throw e;
  }
  return { dir, socket, cri, stop };
}
