// What the kernel layer reports, as plain typed errors: it knows nothing of CNI. The plugin
// maps them to CNI error codes in one place (lib/kernel-errors.ts).
import { errnoName } from './libc.js';

/** The namespace path does not exist (a DEL after the runtime removed it is not an error). */
export class NetnsGone extends Error {}

/** The path exists but cannot be used as the pod's network namespace. */
export class NetnsUnusable extends Error {
  constructor(
    readonly path: string,
    readonly reason: 'unopenable' | 'not-netns' | 'host' | 'denied',
    detail: string,
    readonly errno?: number,
  ) {
    super(`${path} ${detail}${errno !== undefined ? ` (${errnoName(errno)})` : ''}`);
  }
}

/** An interface of that name is already there, and it is not ours to replace. */
export class InterfaceExists extends Error {}

/** Something twill just made disappeared under it (a concurrent actor): worth a retry. */
export class Vanished extends Error {}

/** A netlink dump kept being interrupted by concurrent changes: worth a retry. */
export class DumpInterrupted extends Error {}
