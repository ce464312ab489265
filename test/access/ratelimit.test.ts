// Rate limit (token bucket per client, bounded memory) and the per-client cap on upstream fetches.
import { describe, expect, it } from 'vitest';
import { ANONYMOUS, ConcurrencyLimiter, RateLimiter, TooManyRequestsError, addressBlock, clientKey } from '../../src/access/index.js';

describe('RateLimiter', () => {
  it('allows a burst, then the sustained rate, and says when to retry', () => {
    let now = 0;
    const rl = new RateLimiter({ requestsPerSecond: 2, burst: 3, now: () => now });
    expect([1, 2, 3].map(() => rl.take('a').allowed)).toEqual([true, true, true]);
    expect(rl.take('a')).toEqual({ allowed: false, retryAfterSeconds: 1 });
    expect(rl.take('b').allowed).toBe(true); // clients are separate
    now += 500; // one token back
    expect(rl.take('a').allowed).toBe(true);
    expect(rl.take('a').allowed).toBe(false);
    now += 10_000; // refills to the burst, not beyond
    expect([1, 2, 3, 4].map(() => rl.take('a').allowed)).toEqual([true, true, true, false]);
  });

  it('computes Retry-After for slow rates', () => {
    let now = 0;
    const rl = new RateLimiter({ requestsPerSecond: 0.1, burst: 1, now: () => now });
    expect(rl.take('a').allowed).toBe(true);
    expect(rl.take('a')).toEqual({ allowed: false, retryAfterSeconds: 10 });
    now += 4000;
    expect(rl.take('a').retryAfterSeconds).toBe(6);
  });

  it('is off at 0 requests per second', () => {
    const rl = new RateLimiter({ requestsPerSecond: 0 });
    expect(rl.enabled).toBe(false);
    for (let i = 0; i < 1000; i++) expect(rl.take('a').allowed).toBe(true);
    expect(rl.size).toBe(0);
  });

  it('keeps bounded memory: idle (refilled) clients are dropped, and the least recently seen past the bound', () => {
    let now = 0;
    const rl = new RateLimiter({ requestsPerSecond: 10, burst: 10, maxClients: 100, now: () => now });
    for (let i = 0; i < 1000; i++) rl.take(`c${i}`);
    expect(rl.size).toBeLessThanOrEqual(100);
    now += 2000; // everyone idle for longer than a refill
    rl.take('fresh');
    expect(rl.size).toBe(1);
  });

  it('dropping a refilled bucket changes nothing for its client', () => {
    let now = 0;
    const rl = new RateLimiter({ requestsPerSecond: 1, burst: 2, now: () => now });
    rl.take('a');
    rl.take('a');
    now += 5000;
    rl.take('other'); // sweeps 'a'
    expect([1, 2, 3].map(() => rl.take('a').allowed)).toEqual([true, true, false]);
  });
});

describe('client keys', () => {
  it('counts a signed-in user across addresses, else the address; IPv6 per /64', () => {
    expect(clientKey({ name: 'ci', groups: [], scopes: [], method: 'token' }, '10.0.0.1')).toBe('user:ci');
    expect(clientKey(ANONYMOUS, '10.0.0.1')).toBe('addr:10.0.0.1');
    expect(clientKey(ANONYMOUS, '::ffff:10.0.0.1')).toBe('addr:10.0.0.1');
    expect(addressBlock('2001:db8:1:2:aaaa::1')).toBe('2001:db8:1:2::/64');
    expect(addressBlock('2001:db8:1:2:bbbb:cccc:dddd:eeee')).toBe('2001:db8:1:2::/64');
    expect(addressBlock('::1')).toBe('0:0:0:0::/64');
    expect(clientKey(ANONYMOUS, undefined)).toBe('addr:unknown');
  });
});

describe('ConcurrencyLimiter', () => {
  it('caps running fetches per client; a release hands the slot to the next waiter in order', async () => {
    const cl = new ConcurrencyLimiter({ perClient: 2, maxWaitMs: 1000 });
    const r1 = await cl.acquire('ci');
    const r2 = await cl.acquire('ci');
    expect(cl.tryAcquire('ci')).toBeNull();
    const other = cl.tryAcquire('dev'); // another client is not affected
    expect(other).not.toBeNull();
    const order: number[] = [];
    const w3 = cl.acquire('ci').then((r) => (order.push(3), r));
    const w4 = cl.acquire('ci').then((r) => (order.push(4), r));
    expect(cl.waiting('ci')).toBe(2);
    r1();
    r1(); // twice does nothing
    const r3 = await w3;
    expect(cl.active('ci')).toBe(2);
    r2();
    const r4 = await w4;
    expect(order).toEqual([3, 4]);
    r3();
    r4();
    other?.();
    expect(cl.clients).toBe(0); // no state left behind
  });

  it('refuses at once with maxWaitMs 0, and after the bounded wait otherwise, with a Retry-After', async () => {
    const now = new ConcurrencyLimiter({ perClient: 1, maxWaitMs: 0 });
    const held = await now.acquire('ci');
    await expect(now.acquire('ci')).rejects.toBeInstanceOf(TooManyRequestsError);
    held();
    const waiting = new ConcurrencyLimiter({ perClient: 1, maxWaitMs: 30_000 });
    const h = await waiting.acquire('ci');
    const t = Date.now();
    const err = (await waiting.acquire('ci', { waitMs: 50 }).catch((e: unknown) => e)) as TooManyRequestsError;
    expect(err).toBeInstanceOf(TooManyRequestsError);
    expect(err.status).toBe(429);
    expect(err.retryAfterSeconds).toBeGreaterThanOrEqual(1);
    expect(err.message).toBe('too many upstream fetches from this client at once (limit 1); retry in a moment');
    // It waited (a lower bound, with room for a timer that fires early by the event loop's cached
    // time, which load makes stale).
    expect(Date.now() - t).toBeGreaterThanOrEqual(25);
    expect(waiting.waiting('ci')).toBe(0);
    h();
    expect(waiting.clients).toBe(0);
  });

  it('bounds the queue and honours an abort signal (a client that went away)', async () => {
    const cl = new ConcurrencyLimiter({ perClient: 1, maxWaitingPerClient: 1 });
    const held = await cl.acquire('ci');
    const ac = new AbortController();
    const queued = cl.acquire('ci', { signal: ac.signal });
    await expect(cl.acquire('ci')).rejects.toBeInstanceOf(TooManyRequestsError); // queue full
    ac.abort(new Error('client closed'));
    await expect(queued).rejects.toThrow('client closed');
    expect(cl.waiting('ci')).toBe(0);
    held();
    expect(cl.clients).toBe(0);
  });

  it('is unlimited at 0', async () => {
    const cl = new ConcurrencyLimiter({ perClient: 0 });
    const all = await Promise.all(Array.from({ length: 100 }, () => cl.acquire('ci')));
    for (const r of all) r();
    expect(cl.enabled).toBe(false);
    expect(cl.clients).toBe(0);
  });
});
