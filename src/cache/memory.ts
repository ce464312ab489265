// A bounded in-memory cache in front of the store, for small blobs on the hot path: a hit
// costs one Map lookup and no I/O. Each process has its own; it is only ever a copy.
import { LRUCache } from 'lru-cache';

export interface MemoryEntry {
  data: Buffer;
  etag: string;
  mtimeMs: number;
}

export class MemoryCache<E extends MemoryEntry = MemoryEntry> {
  private readonly lru: LRUCache<string, E> | null;
  readonly maxItemBytes: number;

  constructor(maxBytes: number, maxItemBytes: number) {
    this.maxItemBytes = Math.min(maxItemBytes, maxBytes);
    // Per-entry overhead (key, headers, object) is charged so that many tiny blobs cannot exceed the bound.
    this.lru = maxBytes > 0 ? new LRUCache<string, E>({ maxSize: maxBytes, sizeCalculation: (e, k) => e.data.length + k.length + 512 }) : null;
  }

  get(key: string): E | undefined {
    return this.lru?.get(key);
  }

  set(key: string, entry: E): void {
    if (this.lru && entry.data.length <= this.maxItemBytes) this.lru.set(key, entry);
  }

  delete(key: string): void {
    this.lru?.delete(key);
  }

  /** Every key held (for invalidation: a walk over at most the cache's bound, off the hot path). */
  keys(): IterableIterator<string> {
    return this.lru ? this.lru.keys() : [].values();
  }

  get size(): number {
    return this.lru?.calculatedSize ?? 0;
  }
}
