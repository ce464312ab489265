// Fair shares per client (the signed-in user, else the address): a token bucket on requests,
// and a cap on the upstream fetches one client may have running, so one CI job fanning out
// `go mod download` cannot starve everyone else. Both keep bounded state: a bucket idle long
// enough to be full again is the same as no bucket and is dropped, and a concurrency entry
// exists only while its client has fetches running or waiting.
import { isIP } from 'node:net';
import { ProxyError } from '../errors.js';
import type { Principal } from './types.js';

export interface RateDecision {
  allowed: boolean;
  /** When refused: whole seconds until one request is allowed again (for Retry-After); 0 when allowed. */
  retryAfterSeconds: number;
}

const ALLOWED: RateDecision = Object.freeze({ allowed: true, retryAfterSeconds: 0 });

/**
 * The key a client's limits are counted under: `user:<name>` when signed in (so a user's CI
 * runners on many addresses share one budget), else `addr:<address>`. IPv6 addresses count per
 * /64, the block one host or customer usually holds, so rotating addresses within it gains nothing.
 */
export function clientKey(principal: Principal, remoteAddress: string | undefined): string {
  if (principal.method !== 'anonymous') return `user:${principal.name}`;
  return `addr:${addressBlock(remoteAddress ?? 'unknown')}`;
}

export function addressBlock(address: string): string {
  if (address.startsWith('::ffff:') && isIP(address.slice(7)) === 4) return address.slice(7);
  if (isIP(address) !== 6) return address;
  const groups = expandIPv6(address);
  return groups ? `${groups.slice(0, 4).join(':')}::/64` : address;
}

function expandIPv6(address: string): string[] | null {
  const zoneless = address.split('%')[0] as string;
  const [head, tail] = zoneless.split('::') as [string, string | undefined];
  const h = head === '' ? [] : head.split(':');
  const t = tail === undefined || tail === '' ? [] : tail.split(':');
  if (t.some((g) => g.includes('.')) || h.some((g) => g.includes('.'))) return null; // embedded IPv4: keep whole
  const missing = 8 - h.length - t.length;
  if (tail === undefined && missing !== 0) return null;
  const all = [...h, ...Array<string>(Math.max(0, missing)).fill('0'), ...t];
  return all.map((g) => parseInt(g, 16).toString(16));
}

export interface RateLimiterOptions {
  /** Sustained rate; 0 turns the limiter off. */
  requestsPerSecond: number;
  /** Bucket size: requests allowed at once after idling; default 2 s worth, at least 1. */
  burst?: number;
  /** Most clients tracked; the least recently seen are dropped past it (they get a fresh bucket). Default 100 000. */
  maxClients?: number;
  now?: () => number;
}

interface Bucket {
  tokens: number;
  at: number;
}

export class RateLimiter {
  readonly rate: number;
  readonly burst: number;
  private readonly buckets = new Map<string, Bucket>();
  private readonly maxClients: number;
  private readonly now: () => number;
  /** A bucket untouched this long has refilled completely. */
  private readonly refillMs: number;
  private lastSweep = 0;

  constructor(o: RateLimiterOptions) {
    this.rate = o.requestsPerSecond;
    this.burst = Math.max(1, o.burst ?? Math.ceil(o.requestsPerSecond * 2));
    this.maxClients = o.maxClients ?? 100_000;
    this.now = o.now ?? Date.now;
    this.refillMs = this.rate > 0 ? (this.burst / this.rate) * 1000 : 0;
  }

  get enabled(): boolean {
    return this.rate > 0;
  }

  /** Clients currently tracked. */
  get size(): number {
    return this.buckets.size;
  }

  /** Takes one request (or `cost`) from the client's bucket. */
  take(client: string, cost = 1): RateDecision {
    if (this.rate <= 0) return ALLOWED;
    const now = this.now();
    let b = this.buckets.get(client);
    if (b) {
      b.tokens = Math.min(this.burst, b.tokens + ((now - b.at) / 1000) * this.rate);
      b.at = now;
      // Re-insert: Map order is then least-recently-seen first, which sweeping and eviction rely on.
      this.buckets.delete(client);
    } else {
      b = { tokens: this.burst, at: now };
    }
    this.buckets.set(client, b);
    if (this.buckets.size > this.maxClients || now - this.lastSweep > this.refillMs) this.sweep(now);
    if (b.tokens >= cost) {
      b.tokens -= cost;
      return ALLOWED;
    }
    return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil((cost - b.tokens) / this.rate)) };
  }

  /** Drops buckets that have refilled (idle clients), then the least recently seen past the bound. */
  private sweep(now: number): void {
    this.lastSweep = now;
    for (const [k, b] of this.buckets) {
      if (now - b.at < this.refillMs) break;
      this.buckets.delete(k);
    }
    while (this.buckets.size > this.maxClients) {
      const oldest = this.buckets.keys().next().value as string;
      this.buckets.delete(oldest);
    }
  }
}

/**
 * 429 for a client over its share; Retry-After says when to come back. A ProxyError, so wherever
 * it surfaces (a fetch slot refused deep inside a miss) the client gets the 429 and its line,
 * not a 500.
 */
export class TooManyRequestsError extends ProxyError {
  constructor(
    message: string,
    readonly retryAfterSeconds: number,
  ) {
    super('rate-limited', message, { headers: { 'Retry-After': String(retryAfterSeconds) } });
    this.name = 'TooManyRequestsError';
  }
}

/** Gives a slot back; calling it more than once does nothing. */
export type Release = () => void;

const NOOP: Release = () => undefined;

interface Waiter {
  resolve: (r: Release) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout | undefined;
  onAbort: (() => void) | undefined;
  signal: AbortSignal | undefined;
}

interface Slots {
  active: number;
  waiting: Waiter[];
}

export interface ConcurrencyLimiterOptions {
  /** Fetches one client may run at once; 0: no cap. */
  perClient: number;
  /** Default longest wait for a slot (ms); 0 refuses at once when the client is at its cap. Default 30 s. */
  maxWaitMs?: number;
  /** Most waiters one client may queue; more are refused at once. Default 1000. */
  maxWaitingPerClient?: number;
}

export class ConcurrencyLimiter {
  readonly perClient: number;
  private readonly maxWaitMs: number;
  private readonly maxWaiting: number;
  private readonly slots = new Map<string, Slots>();

  constructor(o: ConcurrencyLimiterOptions) {
    this.perClient = o.perClient;
    this.maxWaitMs = o.maxWaitMs ?? 30_000;
    this.maxWaiting = o.maxWaitingPerClient ?? 1000;
  }

  get enabled(): boolean {
    return this.perClient > 0;
  }

  /** Fetches the client is running now. */
  active(client: string): number {
    return this.slots.get(client)?.active ?? 0;
  }

  /** Waiting for a slot now. */
  waiting(client: string): number {
    return this.slots.get(client)?.waiting.length ?? 0;
  }

  /** Clients with fetches running or waiting (the limiter's whole state). */
  get clients(): number {
    return this.slots.size;
  }

  /** A slot now, or null when the client is at its cap. */
  tryAcquire(client: string): Release | null {
    if (this.perClient <= 0) return NOOP;
    let s = this.slots.get(client);
    if (!s) {
      s = { active: 0, waiting: [] };
      this.slots.set(client, s);
    }
    if (s.active >= this.perClient) return null;
    s.active++;
    return this.releaser(client, s);
  }

  /**
   * A slot, waiting up to `waitMs` (default: the limiter's) in arrival order. Rejects with
   * TooManyRequestsError when the wait runs out or the queue is full, or with the signal's reason.
   */
  acquire(client: string, opts: { waitMs?: number; signal?: AbortSignal } = {}): Promise<Release> {
    const now = this.tryAcquire(client);
    if (now) return Promise.resolve(now);
    const s = this.slots.get(client) as Slots;
    const waitMs = opts.waitMs ?? this.maxWaitMs;
    const refuse = (): TooManyRequestsError =>
      new TooManyRequestsError(
        `too many upstream fetches from this client at once (limit ${this.perClient}); retry in a moment`,
        Math.max(1, Math.ceil(Math.min(waitMs, 5_000) / 1000)),
      );
    if (waitMs <= 0 || s.waiting.length >= this.maxWaiting) return Promise.reject(refuse());
    if (opts.signal?.aborted) return Promise.reject(opts.signal.reason as Error);
    return new Promise<Release>((resolve, reject) => {
      const w: Waiter = { resolve, reject, timer: undefined, onAbort: undefined, signal: opts.signal };
      const leave = (err: Error): void => {
        const i = s.waiting.indexOf(w);
        if (i >= 0) s.waiting.splice(i, 1);
        this.cleanup(w);
        this.dropIfIdle(client, s);
        reject(err);
      };
      w.timer = setTimeout(() => leave(refuse()), waitMs);
      if (opts.signal) {
        w.onAbort = () => leave(opts.signal?.reason as Error);
        opts.signal.addEventListener('abort', w.onAbort, { once: true });
      }
      s.waiting.push(w);
    });
  }

  private releaser(client: string, s: Slots): Release {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const next = s.waiting.shift();
      if (next) {
        // The slot passes straight to the next waiter: no newcomer can jump the queue.
        this.cleanup(next);
        next.resolve(this.releaser(client, s));
        return;
      }
      s.active--;
      this.dropIfIdle(client, s);
    };
  }

  private cleanup(w: Waiter): void {
    if (w.timer) clearTimeout(w.timer);
    if (w.onAbort) w.signal?.removeEventListener('abort', w.onAbort);
  }

  private dropIfIdle(client: string, s: Slots): void {
    if (s.active === 0 && s.waiting.length === 0 && this.slots.get(client) === s) this.slots.delete(client);
  }
}
