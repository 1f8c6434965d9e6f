// twill's owner index: (containerID, ifname) → addresses, kept beside the host-local store so
// ADD and DEL need not read every reservation file (host-local rescans on every call).
// The store stays the truth: every index hit is verified against it, and a miss falls back
// to a scan, so reservations made by the reference host-local are still found.
import { readFileSync, unlinkSync } from 'node:fs';
import { writeAtomic } from './store.js';
import { mkdirs } from '../fsx.js';

export class OwnerIndex {
  readonly dir: string;

  constructor(stateDir: string, network: string) {
    this.dir = `${stateDir}/ipam/${network}`;
  }

  private path(id: string, ifname: string): string {
    return `${this.dir}/${id}:${ifname}`; // ":" appears in neither
  }

  get(id: string, ifname: string): string[] | undefined {
    try {
      return readFileSync(this.path(id, ifname), 'utf8').split('\n').filter((s) => s !== '');
    } catch {
      return undefined;
    }
  }

  set(id: string, ifname: string, ips: string[]): void {
    mkdirs(this.dir, 0o700);
    writeAtomic(this.path(id, ifname), `${ips.join('\n')}\n`);
  }

  remove(id: string, ifname: string): void {
    try {
      unlinkSync(this.path(id, ifname));
    } catch {
      // already gone
    }
  }
}
