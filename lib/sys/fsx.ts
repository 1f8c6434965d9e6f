// File-system helpers shared by every layer: directory creation that cannot loop (Node's
// recursive mkdirSync spins forever when a parent exists but mkdir(2) answers ENOENT beneath
// it, as procfs does, and these paths come from configuration), and atomic writes.
// Written over the calls they are given, not imported: lib/fsx.ts binds them to lib/sys/fs.ts,
// and the FFI (native.ts), on which lib/sys/fs.ts itself rests under Bun, binds them to node:fs.

/** The calls the helpers make, as lib/sys/fs.ts and node:fs both provide them. */
export interface FsCalls {
  mkdirSync(path: string, opts: { mode: number }): unknown;
  openSync(path: string, flags: string, mode: number): number;
  writeSync(fd: number, b: Buffer, offset: number, length: number): number;
  fsyncSync(fd: number): void;
  closeSync(fd: number): void;
  linkSync(existing: string, path: string): void;
  renameSync(from: string, to: string): void;
  unlinkSync(path: string): void;
}

/** Prefix of the temporary names writeAtomic uses (swept after a crash mid-write). */
export const TMP_PREFIX = '.twill-tmp-';

export function fsHelpers(fs: FsCalls): {
  mkdirs(path: string, mode?: number): void;
  writeAll(fd: number, b: Buffer): void;
  writeAtomic(path: string, data: string | Buffer, exclusive?: boolean, durable?: boolean, mode?: number): boolean;
} {
  const { closeSync, fsyncSync, linkSync, mkdirSync, openSync, renameSync, unlinkSync, writeSync } = fs;
  function mkdirs(path: string, mode = 0o700): void {
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

  /**
   * Writes every byte: write(2) may write fewer than asked (a disk that fills, a file-size limit)
   * and says so only by its count; the next call then reports why (ENOSPC, EFBIG).
   */
  function writeAll(fd: number, b: Buffer): void {
    for (let off = 0; off < b.length; ) {
      const n = writeSync(fd, b, off, b.length - off);
      // A zero count is not progress: a regular file answers it only when nothing more fits.
      if (n <= 0) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', syscall: 'write' });
      off += n;
    }
  }

  /**
   * Writes a file so that it appears whole or not at all (temp + rename, or temp + link when
   * exclusive). durable adds an fsync before it appears: reservations survive power loss.
   */
  function writeAtomic(path: string, data: string | Buffer, exclusive = false, durable = exclusive, mode = 0o600): boolean {
    const dir = path.slice(0, path.lastIndexOf('/'));
    const tmp = `${dir}/${TMP_PREFIX}${process.pid}-${Math.random().toString(36).slice(2)}`;
    const fd = openSync(tmp, 'wx', mode);
    let open = true;
    try {
      writeAll(fd, typeof data === 'string' ? Buffer.from(data) : data);
      if (durable) fsyncSync(fd);
      open = false; // Linux frees the descriptor even when close reports an error
      closeSync(fd);
    } catch (e) {
      // A full disk must leave no truncated temp behind (and never one under the real name).
      try {
        if (open) closeSync(fd);
      } catch {
        // the write's error is the one to report
      }
      unlinkSync(tmp);
      throw e;
    }
    let renamed = false;
    try {
      if (!exclusive) {
        renameSync(tmp, path);
        renamed = true;
        return true;
      }
      linkSync(tmp, path);
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw e;
    } finally {
      // The temp name goes in every case but a successful rename (a failed one must not leave it).
      if (!renamed) unlinkSync(tmp);
    }
  }


  return { mkdirs, writeAll, writeAtomic };
}
