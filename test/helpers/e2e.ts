// Shared by the runtime e2e tests.
import { sh } from './twill.js';

/** The host's own address as a client on the host reaches it: the first global IPv4 address of the default route's device (else of any device). */
export function hostAddress(): string {
  const dev = /\bdev (\S+)/.exec(sh('ip', ['-4', 'route', 'show', 'default'], { allowFail: true }))?.[1];
  const addrs = (d?: string): string[] => [...sh('ip', ['-4', '-o', 'addr', 'show', ...(d ? ['dev', d] : []), 'scope', 'global']).matchAll(/inet (\S+)\//g)].map((m) => m[1]!);
  const found = (dev ? addrs(dev) : [])[0] ?? addrs()[0];
  if (!found) throw new Error('no global IPv4 address on the host');
  return found;
}
