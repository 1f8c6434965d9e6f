// One BPF map as the code above the kernel doors sees it: fixed-size keys and values, a
// capacity, an id that changes when the map is made again. The bpf(2) implementation is here;
// an in-memory one with the kernel's capacity rules is in lib/mirror/memory-map.ts, so the
// order in which maps are written can be tested without root.
import { BPF_ANY, mapDelete, mapKeys, mapLookup, mapLookupBatch, mapUpdate, mapUpdateBatch, objInfo } from './sys.js';
import { SysError } from '../sys/libc.js';

export interface MapIO {
  /** For errors: "map <name> update: ENOSPC". */
  readonly name: string;
  /** bpf_map_info.id: a map made again (recreated, migrated) has another. */
  readonly id: number;
  readonly keySize: number;
  readonly valueSize: number;
  readonly maxEntries: number;
  /** A copy of the value, or undefined when the key is absent. */
  lookup(key: Buffer): Buffer | undefined;
  /** flags: BPF_ANY, BPF_NOEXIST (EEXIST when present) or BPF_EXIST (ENOENT when absent). A full map refuses a new key. */
  update(key: Buffer, value: Buffer, flags?: number): void;
  /** True when the key was there. */
  delete(key: Buffer): boolean;
  /** The keys as they are now; a key written during the walk may or may not be seen. */
  keys(): Iterable<Buffer>;
  /** Every entry at once, packed (count keys, count values), in a few syscalls: absent where the map cannot (use keys and lookup). */
  dump?(): MapDump;
  /** Writes entries packed as a MapDump's, in their order, in a few syscalls (absent: one update each). */
  updateMany?(entries: MapDump): void;
}

/** A map's entries packed: key i at keys[i*keySize], its value at values[i*valueSize]. */
export interface MapDump {
  count: number;
  keys: Buffer;
  values: Buffer;
}

/** Writes packed entries in order: in batches where the MapIO can, else one update each. */
export function writeMany(io: MapIO, e: MapDump): void {
  if (e.count === 0) return;
  if (io.updateMany && batchUpdates) {
    try {
      io.updateMany(e);
      return;
    } catch (err) {
      // EINVAL / ENOTSUPP: a kernel without batch updates; rewriting the first ones again is harmless.
      if (!(err instanceof SysError && (err.errno === 22 || err.errno === 524))) throw err;
      batchUpdates = false;
    }
  }
  for (let i = 0; i < e.count; i++) io.update(e.keys.subarray(i * io.keySize, (i + 1) * io.keySize), e.values.subarray(i * io.valueSize, (i + 1) * io.valueSize));
}
let batchUpdates = true;

/** All entries of a map: in batches where the MapIO can, else one lookup per key. */
export function dumpMap(io: MapIO): MapDump {
  if (io.dump) {
    try {
      return io.dump();
    } catch (e) {
      // EINVAL / ENOTSUPP: a kernel or map type without batch lookups.
      if (!(e instanceof SysError && (e.errno === 22 || e.errno === 524))) throw e;
    }
  }
  const ks = [...io.keys()];
  const keys = Buffer.alloc(ks.length * io.keySize), values = Buffer.alloc(ks.length * io.valueSize);
  let n = 0;
  for (const k of ks) {
    const v = io.lookup(k);
    if (!v) continue;
    k.copy(keys, n * io.keySize);
    v.copy(values, n * io.valueSize);
    n++;
  }
  return { count: n, keys, values };
}

export const BPF_EXIST = 2;

/** The error a map operation throws, naming the map: the kernel's errno is kept for callers that test it. */
export const mapError = (name: string, op: string, errno: number): SysError => new SysError(`map ${name} ${op}`, errno);

function named<T>(name: string, op: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof SysError) throw mapError(name, op, e.errno);
    throw e;
  }
}

/** A MapIO over an open map fd (not closed here: its owner closes it). */
export function bpfMapIO(fd: number, name: string): MapIO {
  // struct bpf_map_info: type, id, key_size, value_size, max_entries (u32 each, from offset 0).
  const info = objInfo(fd);
  const keySize = info.readUInt32LE(8), valueSize = info.readUInt32LE(12);
  return {
    name,
    id: info.readUInt32LE(4),
    keySize,
    valueSize,
    maxEntries: info.readUInt32LE(16),
    lookup(key) {
      const v = Buffer.alloc(valueSize);
      return named(name, 'lookup', () => mapLookup(fd, key, v)) ? v : undefined;
    },
    update(key, value, flags = BPF_ANY) {
      named(name, 'update', () => mapUpdate(fd, key, value, flags));
    },
    delete: (key) => named(name, 'delete', () => mapDelete(fd, key)),
    // Collected first: deleting while the kernel walks restarts the walk from the first key.
    keys: () => named(name, 'keys', () => [...mapKeys(fd, keySize)]),
    updateMany(e: MapDump) {
      // The kernel copies the whole batch in first: chunks keep that allocation small.
      const chunk = 8192;
      for (let at = 0; at < e.count; at += chunk) {
        const n = Math.min(chunk, e.count - at);
        named(name, 'update batch', () => mapUpdateBatch(fd, e.keys.subarray(at * keySize), e.values.subarray(at * valueSize), n));
      }
    },
    dump(): MapDump {
      const max = info.readUInt32LE(16);
      const keys = Buffer.alloc(max * keySize), values = Buffer.alloc(max * valueSize);
      // The batch token is the kernel's (a u32 index or bucket for arrays and hashes).
      let token: Buffer | undefined, n = 0;
      const chunk = Math.min(max, 8192);
      for (;;) {
        const out = Buffer.alloc(8);
        const room = Math.min(chunk, max - n);
        if (room === 0) break;
        const r = named(name, 'lookup batch', () => mapLookupBatch(fd, token, out, keys.subarray(n * keySize), values.subarray(n * valueSize), room));
        n += r.count;
        if (r.done) break;
        token = out;
      }
      return { count: n, keys: keys.subarray(0, n * keySize), values: values.subarray(0, n * valueSize) };
    },
  };
}

/** MapIOs of some of a network's maps, by name, over its open fds. */
export function bpfMapIOs<N extends string>(fds: ReadonlyMap<string, number>, names: readonly N[]): Map<N, MapIO> {
  const out = new Map<N, MapIO>();
  for (const n of names) {
    const fd = fds.get(n);
    if (fd === undefined) throw new Error(`map ${n}: not open`);
    out.set(n, bpfMapIO(fd, n));
  }
  return out;
}
