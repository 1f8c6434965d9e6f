// twill's owner index: (containerID, ifname) → addresses, kept beside the host-local store so
// ADD and DEL need not read every reservation file (host-local rescans on every call).
// The store stays the truth: every index hit is verified against it, and a miss falls back
// to a scan, so reservations made by the reference host-local are still found.
import { readdirSync, readFileSync, unlinkSync } from '../sys/fs.js';
import { mkdirs, writeAtomic } from '../fsx.js';
import { fileName } from '../naming.js';

export const PENDING = Symbol('pending');

/** The index file of an owner: "<id>:<ifname>" (":" appears in neither), hashed when too long for one path component. */
export const indexName = (id: string, ifname: string): string => fileName(`${id}:${ifname}`, 240);
const PENDING_TEXT = 'pending\n';

export class OwnerIndex {
  readonly dir: string;

  constructor(stateDir: string, network: string) {
    this.dir = `${stateDir}/ipam/${network}`;
  }

  private path(id: string, ifname: string): string {
    return `${this.dir}/${indexName(id, ifname)}`;
  }

  /** The indexed addresses; PENDING while an ADD is allocating; undefined when not indexed. */
  get(id: string, ifname: string): string[] | typeof PENDING | undefined {
    let text: string;
    try {
      text = readFileSync(this.path(id, ifname), 'utf8');
    } catch {
      return undefined;
    }
    return text === PENDING_TEXT ? PENDING : text.split('\n').filter((s) => s !== '');
  }

  /** Written before allocating: a crash mid-allocation leaves this mark, not silence. */
  setPending(id: string, ifname: string): void {
    this.write(this.path(id, ifname), PENDING_TEXT);
  }

  set(id: string, ifname: string, ips: string[]): void {
    this.write(this.path(id, ifname), `${ips.join('\n')}\n`);
  }

  /** The directory is created on the first write that misses it, not checked on every ADD. */
  private write(path: string, text: string): void {
    try {
      writeAtomic(path, text);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      mkdirs(this.dir, 0o700);
      writeAtomic(path, text);
    }
  }

  bootId(): string | undefined {
    try {
      return readFileSync(`${this.dir}/boot_id`, 'utf8').trim();
    } catch {
      return undefined;
    }
  }

  setBootId(id: string): void {
    this.write(`${this.dir}/boot_id`, `${id}\n`);
  }

  /** Drops index entries not named in keep (see indexName), and temp files of dead writers. */
  sweep(keep: ReadonlySet<string>): void {
    let names: string[] = [];
    try {
      names = readdirSync(this.dir);
    } catch {
      return;
    }
    for (const n of names) {
      if (n === 'boot_id') continue;
      if (n.startsWith('.twill-tmp-') || !keep.has(n)) unlinkSync(`${this.dir}/${n}`);
    }
  }

  remove(id: string, ifname: string): void {
    try {
      unlinkSync(this.path(id, ifname));
    } catch {
      // already gone
    }
  }
}
