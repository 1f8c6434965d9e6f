// cgroup attachment: a bpf_link of a cgroup program (sock_addr: connect4, sendmsg4, …; sock)
// on a cgroup v2 directory, pinned so it outlives the process; detached by its pin.
import { closeSync, constants, openSync, readFileSync, unlinkSync } from '../../sys/fs.js';
import { libc } from '../../sys/libc.js';
import { closeFd, linkCreateCgroup, linkDetach, linkUpdate, objGet, objPin } from '../sys.js';
import { CGROUP_HOOKS, type CgroupHook } from '../manifest.js';

/**
 * Where a cgroup link of a node-scoped program is pinned: <node dir>/links/<program>:<tag>
 * (the tag names the cgroup). The loader switches every link so named when it loads the
 * program anew; a colon is in no program name.
 */
export const cgroupLinkPin = (nodeLinksDir: string, program: string, tag: string): string => `${nodeLinksDir}/${program}:${tag}`;

/** The cgroup v2 mount point, from /proc/self/mountinfo (undefined: none mounted). */
export function cgroup2Mount(mountinfo = '/proc/self/mountinfo'): string | undefined {
  for (const line of readFileSync(mountinfo, 'utf8').split('\n')) {
    const [pre, post] = line.split(' - ');
    if (post?.split(' ')[0] === 'cgroup2') return pre!.split(' ')[4];
  }
  return undefined;
}

const CGROUP2_SUPER_MAGIC = 0x63677270n;

/** Whether path is on a cgroup v2 filesystem (statfs f_type). */
export function isCgroup2(path: string): boolean {
  const buf = Buffer.alloc(128);
  if (Number(libc().statfs(path, buf)) !== 0) return false;
  return buf.readBigUInt64LE(0) === CGROUP2_SUPER_MAGIC;
}

/** Attaches progFd to the cgroup directory for hook and pins the link at pin. */
export function attachCgroup(progFd: number, cgroupDir: string, hook: CgroupHook, pin: string): void {
  const cg = openSync(cgroupDir, constants.O_RDONLY | constants.O_DIRECTORY);
  let link: number | undefined;
  try {
    link = linkCreateCgroup(progFd, cg, CGROUP_HOOKS[hook]);
    objPin(link, pin);
  } finally {
    if (link !== undefined) closeFd(link);
    closeSync(cg);
  }
}

/** Switches the pinned cgroup link to another program (an upgrade). */
export function updateCgroup(pin: string, progFd: number): void {
  const fd = objGet(pin);
  if (fd === undefined) throw new Error(`no cgroup link pinned at ${pin}`);
  try {
    linkUpdate(fd, progFd);
  } finally {
    closeFd(fd);
  }
}

/** Detaches the pinned cgroup link and removes its pin; false when nothing was pinned there. */
export function detachCgroup(pin: string): boolean {
  const fd = objGet(pin);
  if (fd === undefined) return false;
  try {
    linkDetach(fd);
  } finally {
    closeFd(fd);
  }
  unlinkSync(pin);
  return true;
}
