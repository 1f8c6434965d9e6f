// What the last mirror wrote into its maps, by map id: the next one takes it for what the maps
// hold (reading a large map back costs a syscall per key, ~50,000 for 10,000 pods) and
// deletes exactly what is no longer wanted. A record of a map made since (another id) says
// nothing about it. The record is forgotten before the first write of a mirror and written
// after its last, so one that dies half-way leaves none, and the next mirror reads the maps.
import { readFileSync } from '../sys/fs.js';
import { mkdirs, writeAtomic } from '../fsx.js';
import type { MapIO } from '../bpf/map-io.js';

/** A map's entries by hex key. */
export type Entries = ReadonlyMap<string, Buffer>;

export interface RecordedMap {
  id: number;
  keySize: number;
  valueSize: number;
  entries: Entries;
}

export interface MirrorRecord {
  /** The entries the last mirror left in this map, if the record is of this very map (same name and id). */
  read(map: Pick<MapIO, 'name' | 'id' | 'keySize' | 'valueSize'>): Map<string, Buffer> | undefined;
  /** The map id the record holds for a name: 0 once forgotten, undefined when never written. */
  mapId(name: string): number | undefined;
  /** The maps are about to change outside the record. */
  forget(): void;
  /** What the maps hold now, replacing the whole record. */
  write(maps: ReadonlyMap<string, RecordedMap>): void;
}

export function pack(m: Entries, keySize: number, valueSize: number): Buffer {
  const b = Buffer.alloc(m.size * (keySize + valueSize));
  let o = 0;
  for (const [k, v] of m) {
    b.write(k, o, 'hex');
    v.copy(b, o + keySize);
    o += keySize + valueSize;
  }
  return b;
}

export function unpack(b: Buffer, keySize: number, valueSize: number): Map<string, Buffer> {
  const m = new Map<string, Buffer>();
  for (let o = 0; o + keySize + valueSize <= b.length; o += keySize + valueSize) m.set(b.toString('hex', o, o + keySize), b.subarray(o + keySize, o + keySize + valueSize));
  return m;
}

const idKey = (name: string): string => `${name}MapId`;

/**
 * A record in a directory: applied.json holds the map ids ({"<name>MapId": id}), and
 * applied-<name>.bin each map's entries packed (key, then value). The ids are written last and
 * zeroed first: a writer that dies in between leaves ids that match no map.
 */
export function fileRecord(dir: string): MirrorRecord {
  const ids = (): Record<string, number> | undefined => {
    try {
      return JSON.parse(readFileSync(`${dir}/applied.json`, 'utf8')) as Record<string, number>;
    } catch {
      return undefined;
    }
  };
  return {
    read(map) {
      if (!/^[a-z0-9_-]+$/i.test(map.name) || ids()?.[idKey(map.name)] !== map.id) return undefined;
      try {
        return unpack(readFileSync(`${dir}/applied-${map.name}.bin`), map.keySize, map.valueSize);
      } catch {
        return undefined;
      }
    },
    mapId: (name) => ids()?.[idKey(name)],
    forget() {
      mkdirs(dir, 0o700);
      const zero = Object.fromEntries(Object.keys(ids() ?? {}).map((k) => [k, 0]));
      writeAtomic(`${dir}/applied.json`, `${JSON.stringify(zero)}\n`);
    },
    write(maps) {
      const names = [...maps.keys()];
      mkdirs(dir, 0o700);
      writeAtomic(`${dir}/applied.json`, `${JSON.stringify(Object.fromEntries(names.map((n) => [idKey(n), 0])))}\n`);
      for (const [name, m] of maps) writeAtomic(`${dir}/applied-${name}.bin`, pack(m.entries, m.keySize, m.valueSize));
      writeAtomic(`${dir}/applied.json`, `${JSON.stringify(Object.fromEntries([...maps].map(([n, m]) => [idKey(n), m.id])))}\n`);
    },
  };
}

/** A record held in memory (tests, and a reconciler that keeps its own across rounds). */
export function memoryRecord(): MirrorRecord & { readonly maps: ReadonlyMap<string, RecordedMap> } {
  let maps = new Map<string, RecordedMap>();
  return {
    get maps() {
      return maps;
    },
    read(map) {
      const r = maps.get(map.name);
      return r && r.id === map.id ? new Map(r.entries) : undefined;
    },
    mapId: (name) => maps.get(name)?.id,
    forget() {
      maps = new Map([...maps].map(([n, m]) => [n, { ...m, id: 0 }]));
    },
    write(next) {
      maps = new Map([...next].map(([n, m]) => [n, { ...m, entries: new Map(m.entries) }]));
    },
  };
}
