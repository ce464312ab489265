// Small async coordination primitives: a mutex (one fetch per repository at a time in this
// process) and a counting semaphore (a bound on concurrent network git processes).

export class Mutex {
  private tail: Promise<void> = Promise.resolve();

  /** Runs fn once every earlier holder has finished. */
  async run<T>(fn: () => Promise<T>): Promise<T> {
    let release!: () => void;
    const mine = new Promise<void>((res) => {
      release = res;
    });
    const prev = this.tail;
    this.tail = prev.then(() => mine);
    await prev;
    try {
      return await fn();
    } finally {
      release();
    }
  }
}

export class Semaphore {
  private free: number;
  private readonly waiters: (() => void)[] = [];

  constructor(size: number) {
    this.free = Math.max(1, size);
  }

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.free > 0) this.free--;
    else await new Promise<void>((res) => this.waiters.push(res));
    try {
      return await fn();
    } finally {
      const next = this.waiters.shift();
      if (next) next();
      else this.free++;
    }
  }
}

/** A bounded map that forgets its oldest entries (insertion order, refreshed on get). */
export class Lru<K, V> {
  private readonly map = new Map<K, V>();
  private weight = 0;

  constructor(
    private readonly maxWeight: number,
    private readonly weigh: (v: V) => number = () => 1,
  ) {}

  get(k: K): V | undefined {
    const v = this.map.get(k);
    if (v === undefined) return undefined;
    this.map.delete(k);
    this.map.set(k, v);
    return v;
  }

  has(k: K): boolean {
    return this.map.has(k);
  }

  set(k: K, v: V): void {
    const w = this.weigh(v);
    if (w > this.maxWeight) return;
    const old = this.map.get(k);
    if (old !== undefined) {
      this.weight -= this.weigh(old);
      this.map.delete(k);
    }
    this.map.set(k, v);
    this.weight += w;
    while (this.weight > this.maxWeight) {
      const first = this.map.keys().next();
      if (first.done) break;
      const fv = this.map.get(first.value) as V;
      this.weight -= this.weigh(fv);
      this.map.delete(first.value);
    }
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((res) => setTimeout(res, ms));
