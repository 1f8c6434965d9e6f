// Names derived deterministically from an attachment, so DEL and GC find what ADD made
// with no state at all.
import { createHash, randomBytes } from 'node:crypto';

export function hostVethName(prefix: string, containerId: string, ifName: string): string {
  const h = createHash('sha256').update(`${containerId}:${ifName}`).digest('hex');
  return prefix + h.slice(0, 15 - prefix.length);
}

/** The alias on a host veth: marks it as twill's and names its network for GC. */
export function aliasPrefix(network: string): string {
  return `twill:${createHash('sha256').update(network).digest('hex').slice(0, 12)}:`;
}

export function hostVethAlias(network: string, containerId: string, ifName: string): string {
  return `${aliasPrefix(network)}${ifName}:${containerId}`.slice(0, 255);
}

/** A random locally administered unicast MAC. */
export function randomMac(): string {
  const b = randomBytes(6);
  b[0] = (b[0]! & 0xfe) | 0x02;
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}
