// Network namespaces: open, verify and enter one on the calling (main) thread.
// Netns membership is per thread; only synchronous work happens while inside.
import { closeSync, fstatSync, openSync, statSync } from 'node:fs';
import { Code, CniError } from '../cni/errors.js';
import { check, libc } from './libc.js';

const CLONE_NEWNET = 0x40000000;

export class NetnsGone extends Error {}

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
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new NetnsGone(`netns ${path} does not exist`);
    throw new CniError(Code.InvalidEnv, `CNI_NETNS ${path}: ${(e as Error).message}`);
  }
  try {
    const st = fstatSync(fd);
    const own = statSync(ownPath);
    if (!st.isFile()) throw new CniError(Code.InvalidEnv, `CNI_NETNS ${path} is not a network namespace`);
    if (st.ino === own.ino && st.dev === own.dev) {
      throw new CniError(Code.InvalidEnv, `CNI_NETNS ${path} is the plugin's own (host) network namespace; refusing to touch it`);
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
    throw new CniError(Code.InvalidEnv, `CNI_NETNS ${path} is not a network namespace`);
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
