// flock(2) on a lock file: the same lock the reference host-local takes on its store.
import { closeSync, openSync } from './fs.js';
import { check, libc } from './libc.js';

const LOCK_EX = 2;
const LOCK_UN = 8;

/** Blocks until the exclusive lock on path is held; returns the release function. */
export function lockFile(path: string): () => void {
  const fd = openSync(path, 'a+', 0o600);
  try {
    check(`flock ${path}`, libc().flock(fd, LOCK_EX));
  } catch (e) {
    closeSync(fd);
    throw e;
  }
  return () => {
    libc().flock(fd, LOCK_UN);
    closeSync(fd);
  };
}

const LOCK_NB = 4;
/** The exclusive lock on path if nobody holds it (its release function), else undefined. */
export function tryLockFile(path: string): (() => void) | undefined {
  const fd = openSync(path, 'a+', 0o600);
  if (Number(libc().flock(fd, LOCK_EX | LOCK_NB)) !== 0) {
    closeSync(fd);
    return undefined;
  }
  return () => {
    libc().flock(fd, LOCK_UN);
    closeSync(fd);
  };
}
