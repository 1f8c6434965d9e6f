// One kind's parsed objects by key, with change events. A listener may look before a change
// (willChange: the store still holds `before`) and after it (changed).

export type Change<T> =
  /** A fresh list replaced everything. */
  | { type: 'relist' }
  /** One object appeared, changed or went (after undefined). */
  | { type: 'update'; key: string; before: T | undefined; after: T | undefined };

export interface StoreListener<T> {
  willChange?(c: Change<T>): void;
  changed(c: Change<T>): void;
}

export class Store<T> {
  readonly items = new Map<string, T>();
  /** Listed (or fed) at least once: until then the store says nothing about the cluster. */
  synced = false;
  private readonly listeners: StoreListener<T>[] = [];

  subscribe(l: StoreListener<T>): void {
    this.listeners.push(l);
  }

  replace(entries: Iterable<[string, T]>): void {
    const c: Change<T> = { type: 'relist' };
    for (const l of this.listeners) l.willChange?.(c);
    this.items.clear();
    for (const [k, v] of entries) this.items.set(k, v);
    this.synced = true;
    for (const l of this.listeners) l.changed(c);
  }

  /** value undefined: the object is gone (or no longer kept). */
  set(key: string, value: T | undefined): void {
    const before = this.items.get(key);
    if (before === undefined && value === undefined) return;
    const c: Change<T> = { type: 'update', key, before, after: value };
    for (const l of this.listeners) l.willChange?.(c);
    if (value === undefined) this.items.delete(key);
    else this.items.set(key, value);
    for (const l of this.listeners) l.changed(c);
  }
}
