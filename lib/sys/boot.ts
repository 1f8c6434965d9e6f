// This boot's identity: state tied to a boot (reservations, kernel facts) is judged by it.
import { readFileSync } from './fs.js';

/** The kernel's random boot ID, or undefined where /proc does not offer it. */
export function bootId(): string | undefined {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return undefined;
  }
}
