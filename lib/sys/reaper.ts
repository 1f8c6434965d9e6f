// Deleting a veth blocks the deleting syscall for ~25 ms of RCU grace periods in the kernel.
// DEL need not wait for that: the link is made inert (down) at once and the deletion is
// handed to a detached `ip link del`, which outlives us. Without iproute2, we wait.
import { accessSync, constants } from 'node:fs';

const IP_PATHS = ['/usr/sbin/ip', '/sbin/ip', '/usr/bin/ip', '/bin/ip'];

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

/**
 * Starts the deletion in the background, then removes thenRemove (bpffs pins that are cheap
 * to drop once the device is gone); false when it could not be handed off.
 */
export function deleteLinkDetached(name: string, thenRemove: string[] = []): boolean {
  const ip = findIp();
  if (!ip) return false;
  try {
    const { spawn } = process.getBuiltinModule('node:child_process');
    const [cmd, args] = thenRemove.length === 0
      ? [ip, ['link', 'del', 'dev', name]]
      : ['/bin/sh', ['-c', '"$0" link del dev "$1"; shift; rm -f -- "$@"', ip, name, ...thenRemove]];
    const child = spawn(cmd, args as string[], { detached: true, stdio: 'ignore', env: {} });
    child.on('error', () => undefined);
    child.unref();
    return child.pid !== undefined;
  } catch {
    return false;
  }
}
