// Network namespaces: open, verify and enter one on the calling (main) thread.
// Netns membership is per thread; only synchronous work happens while inside.
import { closeSync, fstatSync, openSync, statSync } from './fs.js';
import { check, EPERM, errno, libc } from './libc.js';
import { NetnsGone, NetnsUnusable } from './errors.js';


const CLONE_NEWNET = 0x40000000;

export interface Netns {
  readonly fd: number;
  readonly path: string;
  close(): void;
}

const ownPath = '/proc/thread-self/ns/net';

/** Opens CNI_NETNS; refuses anything that is not a network namespace, and the host's own. */
export function openNetns(path: string): Netns {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new NetnsGone(`${path} does not exist`);
    throw new NetnsUnusable(path, 'unopenable', `cannot be opened: ${(e as Error).message}`);
  }
  try {
    const st = fstatSync(fd);
    const own = statSync(ownPath);
    if (!st.isFile()) throw new NetnsUnusable(path, 'not-netns', 'is not a network namespace');
    if (st.ino === own.ino && st.dev === own.dev) {
      throw new NetnsUnusable(path, 'host', 'is the plugin\'s own (host) network namespace; refusing to touch it');
    }
    // setns into it and straight back proves it is a *network* namespace, before anything acts on it.
    enterFd(fd, path);
    leave();
  } catch (e) {
    closeSync(fd);
    throw e;
  }
  return { fd, path, close: () => closeSync(fd) };
}

let hostFd: number | undefined;

function enterFd(fd: number, path: string): void {
  hostFd ??= openSync(ownPath, 'r');
  if (Number(libc().setns(fd, CLONE_NEWNET)) !== 0) {
    const err = errno();
    // EINVAL: a file that is not a network namespace; EPERM: no right to enter it.
    throw err === EPERM ? new NetnsUnusable(path, 'denied', 'cannot be entered', err) : new NetnsUnusable(path, 'not-netns', 'is not a network namespace', err);
  }
}

function leave(): void {
  if (hostFd !== undefined) check('setns(host)', libc().setns(hostFd, CLONE_NEWNET));
}

/** Runs fn with the thread inside ns; fn must be synchronous. */
export function inNetns<T>(ns: Netns, fn: () => T): T {
  enterFd(ns.fd, ns.path);
  try {
    return fn();
  } finally {
    leave();
  }
}
