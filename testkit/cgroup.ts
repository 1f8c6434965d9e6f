// A cgroup v2 directory of a test's (or a bench's) own under the host's cgroup2 mount: Services'
// socket hooks run only for processes inside the network's cgroupRoot, so clients are started in it.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmdirSync } from 'node:fs';
import { cgroup2Mount } from '../lib/bpf/attach/cgroup.js';

/** The host's cgroup v2 mount (undefined: none, the caller skips). */
export const cgroupMount = (): string | undefined => cgroup2Mount();

/** Creates <mount>/<name>; throws when cgroup v2 is not mounted. */
export function makeCgroup(name: string): string {
  const mount = cgroup2Mount();
  if (!mount) throw new Error('no cgroup v2 mount');
  const cg = `${mount}/${name}`;
  mkdirSync(cg, { recursive: true });
  return cg;
}

/** Removes a test's cgroup once the processes it held are gone (rmdir fails while any remains: retried for 5 s). */
export function removeCgroup(cg: string): void {
  for (let i = 0; i < 50 && existsSync(cg); i++) {
    try {
      rmdirSync(cg);
    } catch {
      spawnSync('sleep', ['0.1']);
    }
  }
}

/** A sh -c script that moves itself into cg, then runs the rest in a netns: `sh -c <script> <ns> <cmd…>`. */
export const inCgroupScript = (cg: string): string => `echo $$ > ${cg}/cgroup.procs && exec ip netns exec "$0" "$@"`;
