// The spec versions we speak, and what each allows.

export const SUPPORTED_VERSIONS = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;
export type SpecVersion = (typeof SUPPORTED_VERSIONS)[number];
export const LATEST: SpecVersion = '1.1.0';

export function isSupported(v: string): v is SpecVersion {
  return (SUPPORTED_VERSIONS as readonly string[]).includes(v);
}

/** Semver compare of "a.b.c" strings; missing parts count as 0. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map((x) => Number(x) || 0);
  const pb = b.split('.').map((x) => Number(x) || 0);
  for (let i = 0; i < 3; i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

export const hasCheck = (v: string): boolean => compareVersions(v, '0.4.0') >= 0;
export const hasStatusAndGc = (v: string): boolean => compareVersions(v, '1.1.0') >= 0;
export const hasIpVersionField = (v: string): boolean => compareVersions(v, '1.0.0') < 0;
