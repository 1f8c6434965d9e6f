// sysctl writes through /proc/sys, synchronous so they resolve in the current thread's netns.
import { readFileSync, writeFileSync } from './fs.js';

/**
 * Writes only when the value differs: some sysctls (ip_forward) reset state when written.
 * The key is given as path segments, because interface names may contain dots.
 */
export function ensureSysctl(key: readonly string[], value: string): void {
  const path = `/proc/sys/${key.join('/')}`;
  try {
    if (readFileSync(path, 'utf8').trim() === value) return;
  } catch {
    // fall through to the write, which reports the real error
  }
  writeFileSync(path, value);
}
