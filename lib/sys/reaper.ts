// Deleting a veth blocks the deleting syscall for ~25 ms of RCU grace periods in the kernel.
// DEL need not wait for that: the link is made inert (down) at once and the deletion is
// handed to a detached `ip link del` (its own session, stdio on /dev/null so the runtime's
// pipes close when we exit), which outlives us. Without iproute2, we wait.
import { accessSync, constants } from './fs.js';
import { libc } from './libc.js';

const IP_PATHS = ['/usr/sbin/ip', '/sbin/ip', '/usr/bin/ip', '/bin/ip'];
const POSIX_SPAWN_SETSID = 0x80;
const O_RDONLY = 0;
const O_WRONLY = 1;

function findIp(): string | undefined {
  for (const p of IP_PATHS) {
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // next
    }
  }
  return undefined;
}

/** Starts argv detached; false when it could not be started. */
export function spawnDetached(argv: string[]): boolean {
  const c = libc();
  const actions = Buffer.alloc(256); // posix_spawn_file_actions_t is 80 bytes on glibc
  const attr = Buffer.alloc(512); // posix_spawnattr_t is 336
  if (Number(c.faInit(actions)) !== 0 || Number(c.attrInit(attr)) !== 0) return false;
  c.faOpen(actions, 0, '/dev/null', O_RDONLY, 0);
  c.faOpen(actions, 1, '/dev/null', O_WRONLY, 0);
  c.faDup2(actions, 1, 2);
  c.attrSetFlags(attr, POSIX_SPAWN_SETSID);
  const pid = Buffer.alloc(4);
  return Number(c.spawn(pid, argv[0], actions, attr, [...argv, null], [null])) === 0;
}

/**
 * Starts the deletion in the background, then removes thenRemove (bpffs pins that are cheap
 * to drop once the device is gone); false when it could not be handed off.
 */
export function deleteLinkDetached(name: string, thenRemove: string[] = []): boolean {
  const ip = findIp();
  if (!ip) return false;
  try {
    return thenRemove.length === 0
      ? spawnDetached([ip, 'link', 'del', 'dev', name])
      : spawnDetached(['/bin/sh', '-c', '"$0" link del dev "$1"; shift; rm -f -- "$@"', ip, name, ...thenRemove]);
  } catch {
    return false;
  }
}
