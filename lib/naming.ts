// Names derived deterministically from an attachment, so DEL and GC find what ADD made
// with no state at all.
//
// The hash is 64-bit FNV-1a, not a cryptographic one: node:crypto pulls ~35 internal modules
// into every start (~3 ms), and these names need spread, not secrecy. Changing the function
// renames every host veth: it is fixed.

const FNV_OFFSET = 0xcbf29ce484222325n;
const FNV_PRIME = 0x100000001b3n;
const MASK64 = (1n << 64n) - 1n;

export function fnv1a64(s: string): bigint {
  let h = FNV_OFFSET;
  for (const byte of Buffer.from(s, 'utf8')) h = ((h ^ BigInt(byte)) * FNV_PRIME) & MASK64;
  return h;
}

const hex = (s: string, n: number): string => fnv1a64(s).toString(16).padStart(16, '0').slice(0, n);

export function hostVethName(prefix: string, containerId: string, ifName: string): string {
  return prefix + hex(`${containerId}:${ifName}`, 15 - prefix.length);
}

/** The alias on a host veth: marks it as twill's and names its network for GC. */
export function aliasPrefix(network: string): string {
  return `twill:${hex(network, 12)}:`;
}

export function hostVethAlias(network: string, containerId: string, ifName: string): string {
  // IFALIASZ is 256 with the terminating NUL; long container IDs are cut (the veth name is the key).
  return Buffer.from(`${aliasPrefix(network)}${ifName}:${containerId}`).subarray(0, 250).toString('latin1');
}

/** A random locally administered unicast MAC (uniqueness on one node is all it needs). */
export function randomMac(): string {
  const b = Array.from({ length: 6 }, () => Math.floor(Math.random() * 256));
  b[0] = (b[0]! & 0xfe) | 0x02;
  return b.map((x) => x.toString(16).padStart(2, '0')).join(':');
}

/**
 * Per-boot markers of a network (cleared by a reboot, as the kernel state they stand for):
 * under /run, keyed by the state directory too, so namespaced test nodes sharing one /run
 * keep theirs apart.
 */
export function runMarker(stateDir: string, what: string, network: string): string {
  return `${runMarkerPrefix(stateDir)}${what}-${fileName(network)}`;
}

/** Every marker of one state directory starts with this. */
export const runMarkerPrefix = (stateDir: string): string => `/run/twill/${hex(stateDir, 8)}-`;

/**
 * A name (network, container ID: up to 253 bytes) as one path component that leaves room
 * for a prefix and suffix under the 255-byte limit: long ones keep a readable head and a
 * hash of the whole.
 */
export function fileName(name: string, max = 200): string {
  if (Buffer.byteLength(name) <= max) return name;
  return `${Buffer.from(name).subarray(0, max - 17).toString('latin1').replace(/[^\x20-\x7e]/g, '_')}~${hex(name, 16)}`;
}
