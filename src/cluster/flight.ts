// In-process single flight: concurrent callers for one key share one promise.

export class SingleFlight<T> {
  private readonly inflight = new Map<string, Promise<T>>();

  /** Runs fn for key unless a run is already in flight, in which case its promise is shared. */
  do(key: string, fn: () => Promise<T>): Promise<T> {
    const running = this.inflight.get(key);
    if (running) return running;
    const p = fn().finally(() => {
      if (this.inflight.get(key) === p) this.inflight.delete(key);
    });
    this.inflight.set(key, p);
    return p;
  }

  has(key: string): boolean {
    return this.inflight.has(key);
  }

  get size(): number {
    return this.inflight.size;
  }

  /** Settles when every run in flight now has settled (for graceful shutdown). */
  async drain(): Promise<void> {
    await Promise.allSettled([...this.inflight.values()]);
  }
}
