// Directory creation that cannot loop: Node's recursive mkdirSync spins forever when a
// parent exists but mkdir(2) answers ENOENT beneath it (procfs does), and these paths
// come from configuration.
import { mkdirSync } from 'node:fs';

export function mkdirs(path: string, mode = 0o700): void {
  let at = '';
  for (const part of path.split('/')) {
    if (part === '') continue;
    at += `/${part}`;
    try {
      mkdirSync(at, { mode });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
  }
}
