// The reference host-local's on-disk store (backend/disk): one file per reserved address,
// named by the address, holding "containerID\r\nifname"; last_reserved_ip.N per range set;
// flock on <dir>/lock. twill and host-local share a pool through it.
import { lstatSync, readdirSync, readFileSync, unlinkSync } from '../sys/fs.js';
import { lockFile } from '../sys/flock.js';
import { mkdirs, TMP_PREFIX, writeAtomic } from '../fsx.js';

export const LINE_BREAK = '\r\n';
const LAST_PREFIX = 'last_reserved_ip.';

export interface Reservation {
  ip: string;
  id: string;
  ifname: string;
}

const ownerKey = (id: string, ifname: string): string => `${id.trim()}${LINE_BREAK}${ifname}`;

export class Store {
  readonly dir: string;

  constructor(dataDir: string, network: string) {
    this.dir = `${dataDir}/${network}`;
  }

  ensureDir(): void {
    mkdirs(this.dir, 0o700);
  }

  /** Takes the store's flock, creating the store on first use only. */
  lock(): () => void {
    try {
      return lockFile(`${this.dir}/lock`);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      this.ensureDir();
      return lockFile(`${this.dir}/lock`);
    }
  }

  /**
   * Reserves ip for the owner; false when another reservation holds it. A taken address costs
   * one lstat (the lock is held: nothing appears between the look and the link), not a temp
   * file written and synced; a reservation whose hint cannot be written is taken back.
   */
  reserve(ip: string, id: string, ifname: string, rangeSet: number): boolean {
    const path = `${this.dir}/${ip}`;
    if (lstatSync(path, { throwIfNoEntry: false })) return false;
    if (!writeAtomic(path, ownerKey(id, ifname), true)) return false;
    try {
      // A round-robin hint (host-local writes it without even an atomic rename): no fsync.
      writeAtomic(`${this.dir}/${LAST_PREFIX}${rangeSet}`, ip);
    } catch (e) {
      this.release(ip);
      throw e;
    }
    return true;
  }

  /** Reservations whose file was written before `ms` (epoch milliseconds). */
  writtenBefore(ms: number): Reservation[] {
    return this.list().filter((r) => {
      const st = lstatSync(`${this.dir}/${r.ip}`, { throwIfNoEntry: false });
      return st !== undefined && st.mtimeMs < ms;
    });
  }

  lastReserved(rangeSet: number): string | undefined {
    try {
      return readFileSync(`${this.dir}/${LAST_PREFIX}${rangeSet}`, 'utf8').trim();
    } catch {
      return undefined;
    }
  }

  /** The owner of one address file, or undefined if it is not reserved. */
  owner(ip: string): { id: string; ifname: string } | undefined {
    let text: string;
    try {
      text = readFileSync(`${this.dir}/${ip}`, 'utf8');
    } catch {
      return undefined;
    }
    const [id = '', ifname = ''] = text.trim().split(LINE_BREAK);
    return { id: id.trim(), ifname };
  }

  /** True when ip is held by this owner (or by a legacy ID-only file of this container). */
  ownedBy(ip: string, id: string, ifname: string): boolean {
    const o = this.owner(ip);
    return o !== undefined && o.id === id.trim() && (o.ifname === ifname || o.ifname === '');
  }

  release(ip: string): boolean {
    try {
      unlinkSync(`${this.dir}/${ip}`);
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw e;
    }
  }

  /** Removes temporary files of writers that died mid-write (call with the lock held). */
  sweepTemp(): void {
    let names: string[] = [];
    try {
      names = readdirSync(this.dir);
    } catch {
      return;
    }
    for (const n of names) if (n.startsWith(TMP_PREFIX)) unlinkSync(`${this.dir}/${n}`);
  }

  /** Every reservation in the store (a full scan: GC, STATUS and index misses only). */
  list(): Reservation[] {
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
    const out: Reservation[] = [];
    for (const ip of names) {
      if (ip === 'lock' || ip.startsWith(LAST_PREFIX) || ip.startsWith(TMP_PREFIX)) continue;
      const o = this.owner(ip);
      if (o) out.push({ ip, ...o });
    }
    return out;
  }

  /** How many addresses are reserved: one readdir, no file read (DEL asks on every call). */
  count(): number {
    try {
      return readdirSync(this.dir).filter((n) => n !== 'lock' && !n.startsWith(LAST_PREFIX) && !n.startsWith(TMP_PREFIX)).length;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 0;
      throw e;
    }
  }

  findByOwner(id: string, ifname: string): string[] {
    const exact = this.list().filter((r) => r.id === id.trim() && r.ifname === ifname);
    // Legacy files hold only the container ID (host-local keeps honouring them).
    return exact.length > 0 ? exact.map((r) => r.ip) : this.list().filter((r) => r.id === id.trim() && r.ifname === '').map((r) => r.ip);
  }
}
