// Room in the store for what a miss is about to write. A miss that cannot be stored must be
// known before a client has its headers: a zip is then refused with one line (507), never sent
// as a 200 that is cut when the disk fills; a small answer already in memory is served without
// being kept. Free space is asked of the file system on every claim, less what this process's
// writes in flight have claimed and a reserve that keeps the disk usable for everything else.
import type { Logger } from 'pino';
import { ProxyError } from '../errors.js';
import type { Metrics } from './metrics.js';

/** The one capability a store needs for this: how many bytes it can still take. */
export interface SpaceSource {
  freeBytes?(): Promise<number>;
}

export interface Claim {
  /** Gives the room back (the bytes are written, or the write gave up). */
  release(): void;
}

const NOTHING: Claim = { release: () => undefined };

export class StorageSpace {
  private claimed = 0;

  constructor(
    private readonly store: SpaceSource,
    /** Free bytes kept in reserve: below it, misses are not stored and /readyz reports the disk low. */
    readonly minFree: number,
    private readonly metrics: Metrics,
    private readonly log: Logger,
  ) {}

  /** Free bytes now (less in-flight claims); undefined when the store cannot tell. */
  async available(): Promise<number | undefined> {
    if (!this.store.freeBytes) return undefined;
    const free = await this.store.freeBytes();
    this.metrics.storageFree.set(free);
    return free - this.claimed;
  }

  /**
   * Claims room for `bytes` about to be written for `what`, or throws the 507 the go user sees
   * (logged as a storage error, counted against the store, never against an upstream).
   */
  async claim(bytes: number, what: string): Promise<Claim> {
    const free = await this.available();
    if (free === undefined) return NOTHING;
    if (free - bytes < this.minFree) {
      this.metrics.storageErrors.labels('write', 'no-space').inc();
      const err = new ProxyError(
        'insufficient-storage',
        `gomodproxy cannot store ${what} (${formatBytes(bytes)}): its disk has ${formatBytes(Math.max(0, free))} free and keeps ${formatBytes(this.minFree)} in reserve (cache.minFree); nothing was cached; its operator must free space in the data folder, then retry`,
      );
      this.log.error({ what, bytes, free: Math.max(0, free), minFree: this.minFree }, 'disk too full to store a miss');
      throw err;
    }
    this.claimed += bytes;
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        this.claimed -= bytes;
      },
    };
  }

  /** For /readyz: why the store is too full to take misses, or null. */
  async low(): Promise<string | null> {
    const free = await this.available();
    if (free === undefined || free >= this.minFree) return null;
    return `disk low: ${formatBytes(Math.max(0, free))} free, under the ${formatBytes(this.minFree)} reserve (cache.minFree); misses are not stored`;
  }
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v >= 100 ? Math.round(v) : v.toFixed(1)} ${units[u]}`;
}
