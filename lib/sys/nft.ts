// Running nft(8) and iptables(8): where they are, and their exit status and output.
import { accessSync, constants } from './fs.js';

export const NFT = ['/usr/sbin/nft', '/sbin/nft', '/usr/bin/nft'];
export const IPT = { 4: ['/usr/sbin/iptables', '/sbin/iptables'], 6: ['/usr/sbin/ip6tables', '/sbin/ip6tables'] } as const;

export function find(paths: readonly string[]): string | undefined {
  return paths.find((p) => {
    try {
      accessSync(p, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

export function run(cmd: string, args: string[], input?: string): { ok: boolean; out: string } {
  const { spawnSync } = process.getBuiltinModule('node:child_process');
  const r = spawnSync(cmd, args, { input: input ?? '', encoding: 'utf8', timeout: 10_000 });
  return { ok: r.status === 0, out: `${r.stdout}${r.stderr}`.trim() };
}
