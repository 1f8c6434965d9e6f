// Validation of every name that becomes a path or an interface name.
// Rules follow the reference library (pkg/utils/utils.go) so runtimes see the same verdicts.

const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

export function invalidNetworkName(name: string): string | undefined {
  if (name === '') return 'is empty';
  if (name.length > 253) return 'is longer than 253 characters';
  if (!NAME.test(name)) return 'must match ^[a-zA-Z0-9][a-zA-Z0-9_.\\-]*$';
  return undefined;
}

export const invalidContainerId = invalidNetworkName;

export function invalidIfName(name: string): string | undefined {
  if (name === '') return 'is empty';
  if (Buffer.byteLength(name) > 15) return 'is longer than 15 bytes';
  if (name === '.' || name === '..') return 'may not be "." or ".."';
  // eslint-disable-next-line no-control-regex
  if (/[/:\s\x00-\x1f\x7f]/.test(name)) return 'may not contain "/", ":", whitespace or control characters';
  return undefined;
}
