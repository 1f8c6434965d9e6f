// A map held in memory with the kernel's rules for what a write may do: a new key in a full
// map is refused (a hash map says E2BIG, an LPM trie ENOSPC), and before Linux 6.13 a full
// trie refuses even the rewrite of a key it holds. Lookups are by exact key: the mirror writes
// and reads keys, it never asks a trie for the longest prefix.
import { BPF_EXIST, mapError, type MapIO } from '../bpf/map-io.js';
import { BPF_NOEXIST } from '../bpf/sys.js';

const E2BIG = 7, ENOENT = 2, EEXIST = 17, ENOSPC = 28, EINVAL = 22;

export interface MemoryMapSpec {
  name: string;
  kind: 'hash' | 'lpm';
  keySize: number;
  valueSize: number;
  maxEntries: number;
  id?: number;
  /** An LPM trie of a kernel before 6.13: a rewrite in place also needs a free entry. */
  rewriteNeedsRoom?: boolean;
}

/** A write just made: a test may check what every map holds at that moment. */
export type MemoryMapWatch = (op: 'update' | 'delete', map: MemoryMap, key: Buffer, value?: Buffer) => void;

let nextId = 1;

export class MemoryMap implements MapIO {
  readonly name: string;
  readonly id: number;
  readonly keySize: number;
  readonly valueSize: number;
  readonly maxEntries: number;
  private readonly entries = new Map<string, Buffer>();

  constructor(readonly spec: MemoryMapSpec, private readonly watch?: MemoryMapWatch) {
    this.name = spec.name;
    this.id = spec.id ?? nextId++;
    this.keySize = spec.keySize;
    this.valueSize = spec.valueSize;
    this.maxEntries = spec.maxEntries;
  }

  get size(): number {
    return this.entries.size;
  }

  private check(op: string, key: Buffer, value?: Buffer): void {
    if (key.length !== this.keySize || (value && value.length !== this.valueSize)) throw mapError(this.name, op, EINVAL);
  }

  lookup(key: Buffer): Buffer | undefined {
    this.check('lookup', key);
    const v = this.entries.get(key.toString('hex'));
    return v ? Buffer.from(v) : undefined;
  }

  update(key: Buffer, value: Buffer, flags = 0): void {
    this.check('update', key, value);
    const k = key.toString('hex');
    const there = this.entries.has(k);
    if (flags === BPF_NOEXIST && there) throw mapError(this.name, 'update', EEXIST);
    if (flags === BPF_EXIST && !there) throw mapError(this.name, 'update', ENOENT);
    const full = this.entries.size >= this.maxEntries;
    if (full && (!there || (this.spec.kind === 'lpm' && this.spec.rewriteNeedsRoom))) throw mapError(this.name, 'update', this.spec.kind === 'lpm' ? ENOSPC : E2BIG);
    this.entries.set(k, Buffer.from(value));
    this.watch?.('update', this, key, value);
  }

  delete(key: Buffer): boolean {
    this.check('delete', key);
    const k = key.toString('hex');
    if (!this.entries.has(k)) return false;
    this.entries.delete(k);
    this.watch?.('delete', this, key);
    return true;
  }

  keys(): Buffer[] {
    return [...this.entries.keys()].map((k) => Buffer.from(k, 'hex'));
  }

  /** Hex key → value, for tests to compare. */
  contents(): Map<string, Buffer> {
    return new Map([...this.entries].map(([k, v]) => [k, Buffer.from(v)]));
  }
}
