// RedisCoordination against real Redis: the machine's server on 127.0.0.1:6379 (each test under
// its own key prefix, removed afterwards), and for outages a redis-server of our own that the
// test kills and starts again. Waits are bounded polls for a state, never timed assertions.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import pino, { type Logger } from 'pino';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { RedisConfig } from '../../src/config/index.js';
import { HOST, HostCoordination, type FetchLock, type Invalidation, type StoreChange } from '../../src/cluster/coordination.js';
import { run, scrubbedEnv } from '../helpers/proc.js';
import { RedisCoordination, RedisUnreachableError, createRedisCoordination, describeRedis, type RedisCoordinationOptions } from '../../src/cluster/redis.js';
import { dropRedisKeys } from '../helpers/redis-server.js';

const SHARED_URL = 'redis://127.0.0.1:6379';

const open: RedisCoordination[] = [];
const dirs: string[] = [];
const prefixes: { url: string; prefix: string }[] = [];

afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.close()));
  for (const { url, prefix } of prefixes.splice(0)) await dropRedisKeys(url, prefix);
});

afterAll(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const d = await mkdtemp(path.join(tmpdir(), 'gmp-redis-'));
  dirs.push(d);
  return d;
}

function captureLog(): { log: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString('utf8').split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { log: pino({ level: 'debug' }, sink), lines };
}

interface Made {
  c: RedisCoordination;
  fallback: HostCoordination;
  lines: Record<string, unknown>[];
}

async function make(
  over: {
    url?: string;
    /** Sentinel or Cluster instead of url. */
    connection?: Pick<RedisConfig, 'sentinels' | 'name' | 'cluster'>;
    prefix?: string;
    lockTtl?: number;
    fallbackDir?: string;
  } & Partial<Omit<RedisCoordinationOptions, 'fallback' | 'log'>> = {},
): Promise<Made> {
  const { url = SHARED_URL, connection, prefix, lockTtl = 5000, fallbackDir, ...opts } = over;
  const keyPrefix = prefix ?? newPrefix(url);
  const config: RedisConfig = { ...(connection ?? { url }), keyPrefix, lockTtl };
  const fallback = new HostCoordination(fallbackDir ?? (await tempDir()));
  const { log, lines } = captureLog();
  const c = new RedisCoordination(config, { fallback, log, answerTtlMs: 60_000, ...opts });
  open.push(c);
  return { c, fallback, lines };
}

function newPrefix(url: string): string {
  const prefix = `gmp-test-${randomBytes(6).toString('hex')}:`;
  prefixes.push({ url, prefix });
  return prefix;
}

/** Two instances over one Redis: separate connections, one key prefix. */
async function pair(over: Parameters<typeof make>[0] = {}): Promise<[Made, Made]> {
  const prefix = over.prefix ?? newPrefix(over.url ?? SHARED_URL);
  const a = await make({ ...over, prefix });
  const b = await make({ ...over, prefix });
  expect(await a.c.ready()).toBe(true);
  expect(await b.c.ready()).toBe(true);
  return [a, b];
}

/** Polls until cond holds; fails after a generous bound (a state that never comes, not a slow one). */
async function until(cond: () => boolean | Promise<boolean>, what: string, boundMs = 30_000): Promise<void> {
  const end = Date.now() + boundMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`never happened: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function raw(url = SHARED_URL): Redis {
  const r = new Redis(url, { maxRetriesPerRequest: 0 });
  r.on('error', () => undefined);
  return r;
}

describe('RedisCoordination: fetch locks across instances', () => {
  it('grants a key to one instance at a time, with a larger token on every grant', async () => {
    const [a, b] = await pair();
    const first = await a.c.tryLock('example.com/m/@v/v1.0.0.zip');
    expect(first).not.toBeNull();
    expect(await b.c.tryLock('example.com/m/@v/v1.0.0.zip')).toBeNull();
    expect(await a.c.tryLock('example.com/m/@v/v1.0.0.zip')).toBeNull();
    // Another key is another lock.
    const other = await b.c.tryLock('example.com/m/@v/v1.0.0.mod');
    expect(other).not.toBeNull();
    await first?.release();
    const second = await b.c.tryLock('example.com/m/@v/v1.0.0.zip');
    expect(second).not.toBeNull();
    expect(second?.token).toBeGreaterThan(first?.token ?? Infinity);
    await second?.release();
    const third = await a.c.tryLock('example.com/m/@v/v1.0.0.zip');
    expect(third?.token).toBeGreaterThan(second?.token ?? Infinity);
    await third?.release();
    await other?.release();
  });

  it('shows followers the holder: its host, its staging file, and the size once it is known', async () => {
    const [a, b] = await pair();
    const key = 'example.com/m/@v/v1.2.3.zip';
    expect(await b.c.holder(key)).toBeNull();
    const lock = await a.c.tryLock(key, { staging: '/data/staging/x.zip.partial' });
    expect(await b.c.holder(key)).toEqual({ host: HOST, staging: '/data/staging/x.zip.partial' });
    await lock?.update({ size: 123_456 });
    expect(await b.c.holder(key)).toEqual({ host: HOST, staging: '/data/staging/x.zip.partial', size: 123_456 });
    expect(await lock?.stillHeld()).toBe(true);
    await lock?.release();
    expect(await b.c.holder(key)).toBeNull();
    expect(await lock?.stillHeld()).toBe(false);
  });

  it('keeps the lock of a live holder: the heartbeat renews its expiry', async () => {
    const prefix = newPrefix(SHARED_URL);
    const { c } = await make({ prefix, lockTtl: 1500 });
    const lock = await c.tryLock('example.com/m/@v/v1.0.0.zip');
    const r = raw();
    try {
      let last = await r.pttl(`${prefix}lock:example.com/m/@v/v1.0.0.zip`);
      expect(last).toBeGreaterThan(0);
      // The remaining time only falls between renewals; a rise is a renewal.
      await until(async () => {
        const now = await r.pttl(`${prefix}lock:example.com/m/@v/v1.0.0.zip`);
        const rose = now > last;
        last = now;
        return rose;
      }, 'the lock expiry renewed');
      expect(await lock?.stillHeld()).toBe(true);
    } finally {
      r.disconnect();
      await lock?.release();
    }
  });

  it('lets another take the lock of a holder that stopped renewing it; the late one can no longer commit or unlock it', async () => {
    const prefix = newPrefix(SHARED_URL);
    const frozen = await make({ prefix, lockTtl: 500, heartbeat: false });
    const live = await make({ prefix, lockTtl: 500 });
    const key = 'example.com/m/@v/v2.0.0.zip';
    const old = (await frozen.c.tryLock(key)) as FetchLock;
    expect(old).not.toBeNull();
    expect(await live.c.tryLock(key)).toBeNull();
    await until(async () => (await live.c.holder(key)) === null, 'the frozen holder’s lock expired');
    const fresh = (await live.c.tryLock(key)) as FetchLock;
    expect(fresh).not.toBeNull();
    expect(fresh.token).toBeGreaterThan(old.token);
    expect(await old.stillHeld()).toBe(false);
    await old.update({ size: 1 });
    await old.release();
    expect(await fresh.stillHeld()).toBe(true);
    expect(await frozen.c.holder(key)).toEqual({ host: HOST });
    await fresh.release();
    expect(await frozen.c.holder(key)).toBeNull();
  });

  it('wakes a waiting follower when the holder releases, with a release message on the channel', async () => {
    // Looking at the lock only once a minute: what wakes the follower is the message (or its first look).
    const prefix = newPrefix(SHARED_URL);
    const [a, b] = await pair({ prefix, releasePollMs: 60_000 });
    const key = 'example.com/m/@v/v3.0.0.zip';
    const listener = raw();
    const heard: string[] = [];
    listener.on('message', (_ch: string, msg: string) => heard.push(msg));
    await listener.subscribe(`${prefix}released`);
    try {
      const lock = await a.c.tryLock(key);
      const events: string[] = [];
      const waiting = b.c.released(key, 60_000).then(() => events.push('follower woke'));
      await new Promise((r) => setTimeout(r, 100));
      events.push('released');
      await lock?.release();
      await waiting;
      expect(events).toEqual(['released', 'follower woke']);
      await until(() => heard.includes(key), 'the release message');
    } finally {
      listener.disconnect();
    }
  });

  it('returns from released() at the timeout when nobody releases, the lock still held', async () => {
    const [a, b] = await pair({ releasePollMs: 60_000 });
    const key = 'example.com/m/@v/v3.1.0.zip';
    const lock = await a.c.tryLock(key);
    const events: string[] = [];
    await b.c.released(key, 200).then(() => events.push('timed out'));
    expect(await b.c.holder(key)).not.toBeNull();
    events.push('still held');
    await lock?.release();
    expect(events).toEqual(['timed out', 'still held']);
    // Nobody holds it: released() returns without waiting for a message.
    await b.c.released(key, 60_000);
  });
});

describe('RedisCoordination: what every instance learns', () => {
  it('relays remembered answers to the other instances with the same until', async () => {
    const [a, b] = await pair();
    const now = Date.now();
    const answer = { kind: 'not-found' as const, message: 'not found: example.com/nope@v1.0.0', at: now, until: now + 60_000 };
    a.c.answers.set('example.com/nope/@v/v1.0.0.info', answer);
    expect(a.c.answers.get('example.com/nope/@v/v1.0.0.info')).toEqual(answer);
    await until(() => b.c.answers.get('example.com/nope/@v/v1.0.0.info') !== undefined, 'the answer reached the other instance');
    expect(b.c.answers.get('example.com/nope/@v/v1.0.0.info')).toEqual(answer);
  });

  it('delivers an invalidation to every instance, the sender’s own listeners exactly once', async () => {
    const [a, b] = await pair();
    const atA: Invalidation[] = [];
    const atB: Invalidation[] = [];
    a.c.onInvalidate((w) => atA.push(w));
    b.c.onInvalidate((w) => atB.push(w));
    await a.c.invalidate({ pattern: 'example.com/*', version: 'v1.0.0' });
    expect(atA).toEqual([{ pattern: 'example.com/*', version: 'v1.0.0' }]);
    await until(() => atB.length === 1, 'the invalidation reached the other instance');
    expect(atB).toEqual([{ pattern: 'example.com/*', version: 'v1.0.0' }]);
    // Messages reach a subscriber in publish order: had a's echo been taken, it would come before this one.
    await b.c.invalidate({ pattern: 'corp.example/*' });
    await until(() => atA.length >= 2, 'the second invalidation reached the first instance');
    expect(atA).toEqual([{ pattern: 'example.com/*', version: 'v1.0.0' }, { pattern: 'corp.example/*' }]);
    expect(atB).toEqual([{ pattern: 'example.com/*', version: 'v1.0.0' }, { pattern: 'corp.example/*' }]);
  });
});

describe('RedisCoordination: store changes', () => {
  it('tells the other instances what the store gained or lost, never the sender itself', async () => {
    const [a, b] = await pair();
    const atA: StoreChange[][] = [];
    const atB: StoreChange[][] = [];
    a.c.onStoreChange((c) => atA.push([...c]));
    b.c.onStoreChange((c) => atB.push([...c]));
    const stored: StoreChange = { module: 'example.com/M', version: 'v1.0.0', kind: 'info', size: 40, mtimeMs: 1, source: 'https://up.example' };
    const removed: StoreChange = { module: 'example.com/M', version: 'v1.0.0', kind: 'zip', size: null, mtimeMs: 2 };
    a.c.announce([stored, removed]);
    await until(() => atB.length === 1, 'the changes reached the other instance');
    expect(atB).toEqual([[stored, removed]]);
    b.c.announce([removed]);
    await until(() => atA.length === 1, 'the change reached the first instance');
    expect(atA).toEqual([[removed]]);
    expect(atB).toHaveLength(1);
  });
});

describe('RedisCoordination: mutable answers', () => {
  it('round-trips any bytes with their fetch time, for every instance', async () => {
    const [a, b] = await pair();
    const data = Buffer.concat([Buffer.from(Array.from({ length: 256 }, (_, i) => i)), randomBytes(70_000), Buffer.from('\r\n\0')]);
    const before = Date.now();
    await a.c.mutable.put('mutable/example.com/m/@v/list', data);
    const after = Date.now();
    const got = await b.c.mutable.get('mutable/example.com/m/@v/list', 1 << 20);
    expect(got?.data.equals(data)).toBe(true);
    expect(got?.mtimeMs).toBeGreaterThanOrEqual(before);
    expect(got?.mtimeMs).toBeLessThanOrEqual(after);
    const empty = Buffer.alloc(0);
    await a.c.mutable.put('mutable/example.com/m/@latest', empty);
    expect((await b.c.mutable.get('mutable/example.com/m/@latest', 10))?.data.length).toBe(0);
    expect(await b.c.mutable.get('mutable/example.com/absent/@v/list', 10)).toBeNull();
    await b.c.mutable.delete('mutable/example.com/m/@v/list');
    expect(await a.c.mutable.get('mutable/example.com/m/@v/list', 1 << 20)).toBeNull();
  });

  it('refuses an answer larger than the caller takes, and takes one exactly as large', async () => {
    const { c } = await make();
    const data = randomBytes(1000);
    await c.mutable.put('mutable/example.com/big/@v/list', data);
    await expect(c.mutable.get('mutable/example.com/big/@v/list', 999)).rejects.toThrow(/1000 bytes, more than the 999/);
    expect((await c.mutable.get('mutable/example.com/big/@v/list', 1000))?.data.equals(data)).toBe(true);
  });

  it('lists keys under a prefix, taking glob characters in it literally', async () => {
    const { c } = await make();
    const keys = [
      'mutable/example.com/a/@v/list',
      'mutable/example.com/a/@latest',
      'mutable/example.com/ab/@v/list',
      'mutable/example.com/b/@v/list',
      'mutable/ex*mple/[x]/@v/list',
      'mutable/exXmple/x/@v/list',
    ];
    for (const k of keys) await c.mutable.put(k, Buffer.from(k));
    const list = async (prefix: string): Promise<string[]> => {
      const out: string[] = [];
      for await (const k of c.mutable.keys(prefix)) out.push(k);
      return out.sort();
    };
    expect(await list('mutable/example.com/a/')).toEqual(['mutable/example.com/a/@latest', 'mutable/example.com/a/@v/list']);
    expect(await list('mutable/ex*mple/[x]/')).toEqual(['mutable/ex*mple/[x]/@v/list']);
    expect(await list('mutable/ex?mple')).toEqual([]);
    expect(await list('')).toEqual([...keys].sort());
  });

  it('lets answers expire after answerTtlMs', async () => {
    const prefix = newPrefix(SHARED_URL);
    const { c } = await make({ prefix, answerTtlMs: 300 });
    await c.mutable.put('mutable/example.com/m/@v/list', Buffer.from('v1.0.0\n'));
    const r = raw();
    try {
      const ttl = await r.pttl(`${prefix}answer:mutable/example.com/m/@v/list`);
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(300);
    } finally {
      r.disconnect();
    }
    await until(async () => (await c.mutable.get('mutable/example.com/m/@v/list', 100)) === null, 'the answer expired');
  });
});

describe('RedisCoordination: configuration', () => {
  it('describes where Redis is without its password', () => {
    const base = { keyPrefix: 'gomodproxy:', lockTtl: 15_000 };
    expect(describeRedis({ ...base, url: 'rediss://:s3cret@redis.corp:6380/2' })).toBe('rediss://redis.corp:6380/2');
    expect(describeRedis({ ...base, url: 'redis://bob:s3cret@redis.corp' })).toBe('redis://redis.corp');
    expect(describeRedis({ ...base, sentinels: ['s1:26379', 's2:26379'], name: 'mymaster' })).toBe('redis+sentinel://s1:26379,s2:26379/mymaster');
    expect(describeRedis({ ...base, cluster: ['redis://:s3cret@n1:7000', 'redis://n2:7001'] })).toBe('redis+cluster://n1:7000,n2:7001');
  });

  it('makes none without the redis setting', async () => {
    const fallback = new HostCoordination(await tempDir());
    expect(createRedisCoordination(undefined, { fallback, log: pino({ level: 'silent' }), answerTtlMs: 1000 })).toBeNull();
  });
});

// ---- outages: a redis-server of our own, killed and started again ----

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/** A redis-server (or sentinel) of the test's own, on a free port, that it may kill and start again. */
class OwnRedis {
  private proc: ChildProcess | undefined;
  private constructor(
    readonly port: number,
    private readonly args: string[],
    readonly password: string | undefined,
    private readonly cwd: string,
  ) {}

  static async plain(password?: string, extra: string[] = []): Promise<OwnRedis> {
    const port = await freePort();
    const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no', ...extra];
    if (password) args.push('--requirepass', password, '--masterauth', password);
    return new OwnRedis(port, args, password, await tempDir());
  }

  static async sentinel(master: OwnRedis, name: string): Promise<OwnRedis> {
    const port = await freePort();
    const cwd = await tempDir();
    // A sentinel rewrites its configuration file, so it gets one of its own.
    const conf = path.join(cwd, 'sentinel.conf');
    await writeFile(conf, `port ${port}\nbind 127.0.0.1\nsentinel monitor ${name} 127.0.0.1 ${master.port} 1\n`);
    return new OwnRedis(port, [conf, '--sentinel'], undefined, cwd);
  }

  get url(): string {
    return `redis://${this.password ? `:${this.password}@` : ''}127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    const proc = spawn('/usr/bin/redis-server', this.args, { cwd: this.cwd, stdio: 'ignore' });
    this.proc = proc;
    await until(async () => {
      if (proc.exitCode !== null) throw new Error(`redis-server on port ${this.port} exited with ${proc.exitCode}`);
      const r = new Redis(this.url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      r.on('error', () => undefined);
      try {
        await r.connect();
        return (await r.ping()) === 'PONG';
      } catch {
        return false;
      } finally {
        r.disconnect();
      }
    }, `redis-server listening on ${this.port}`);
  }

  async kill(): Promise<void> {
    const proc = this.proc;
    this.proc = undefined;
    if (!proc || proc.exitCode !== null) return;
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGKILL');
    await exited;
  }
}

const servers: OwnRedis[] = [];
afterAll(async () => {
  for (const s of servers.splice(0)) await s.kill();
});

async function own(s: Promise<OwnRedis>): Promise<OwnRedis> {
  const server = await s;
  servers.push(server);
  await server.start();
  return server;
}

/** What two instances must see of each other whatever the topology: locks, holders, releases, answers, invalidations. */
async function exercise(a: RedisCoordination, b: RedisCoordination): Promise<void> {
  expect(await a.ready()).toBe(true);
  expect(await b.ready()).toBe(true);
  // Keys enough to land on every node of a cluster.
  const keys = Array.from({ length: 30 }, (_, i) => `example.com/m${i}/@v/v1.0.0.zip`);
  const locks = await Promise.all(keys.map((k) => a.tryLock(k)));
  expect(locks.every((l) => l !== null)).toBe(true);
  expect((await Promise.all(keys.map((k) => b.tryLock(k)))).filter((l) => l !== null)).toEqual([]);
  await locks[1]?.update({ size: 42 });
  expect(await b.holder(keys[1] as string)).toEqual({ host: HOST, size: 42 });
  const woke = b.released(keys[0] as string, 60_000);
  await locks[0]?.release();
  await woke;
  const again = await b.tryLock(keys[0] as string);
  expect(again?.token).toBeGreaterThan(locks[0]?.token ?? Infinity);
  await again?.release();
  for (const l of locks) await l?.release();
  expect(await b.holder(keys[1] as string)).toBeNull();

  for (const k of keys) await a.mutable.put(`mutable/${k}`, Buffer.from(k));
  const listed: string[] = [];
  for await (const k of b.mutable.keys('mutable/example.com/')) listed.push(k);
  expect(listed.sort()).toEqual(keys.map((k) => `mutable/${k}`).sort());
  expect((await b.mutable.get(`mutable/${keys[7]}`, 100))?.data.toString()).toBe(keys[7]);

  const heard: Invalidation[] = [];
  b.onInvalidate((w) => heard.push(w));
  await a.invalidate({ pattern: 'example.com/*' });
  const now = Date.now();
  a.answers.set('example.com/gone/@v/list', { kind: 'gone', message: 'gone', at: now, until: now + 60_000 });
  await until(() => heard.length === 1 && b.answers.get('example.com/gone/@v/list') !== undefined, 'the invalidation and the answer reached b');
}

describe('RedisCoordination: through Sentinel and Cluster', () => {
  it('works through Sentinel, the master found by its name', async () => {
    const master = await own(OwnRedis.plain());
    const sentinel = await own(OwnRedis.sentinel(master, 'gmp'));
    const connection = { sentinels: [`127.0.0.1:${sentinel.port}`], name: 'gmp' };
    const prefix = 'gmp-test-sentinel:';
    const a = await make({ connection, prefix });
    const b = await make({ connection, prefix });
    expect(a.c.description).toBe(`redis+sentinel://127.0.0.1:${sentinel.port}/gmp`);
    await exercise(a.c, b.c);
  });

  it('works through a Cluster, with the password in the node URLs', async () => {
    const password = `pw-${randomBytes(6).toString('hex')}`;
    const nodes = [];
    for (let i = 0; i < 3; i++) nodes.push(await own(OwnRedis.plain(password, ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf'])));
    const created = await run(
      '/usr/bin/redis-cli',
      ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', '0', '--cluster-yes', '-a', password],
      {
        env: scrubbedEnv(),
      },
    );
    expect(created.code, created.stdout + created.stderr).toBe(0);
    for (const n of nodes) {
      const r = raw(n.url);
      try {
        await until(async () => String(await r.call('CLUSTER', 'INFO')).includes('cluster_state:ok'), `node ${n.port} sees the cluster up`);
      } finally {
        r.disconnect();
      }
    }
    const connection = { cluster: nodes.map((n) => n.url) };
    const prefix = 'gmp-test-cluster:';
    const a = await make({ connection, prefix });
    const b = await make({ connection, prefix });
    expect(a.c.description).toBe(`redis+cluster://${nodes.map((n) => `127.0.0.1:${n.port}`).join(',')}`);
    expect(a.c.description).not.toContain(password);
    await exercise(a.c, b.c);
  });
});

describe('RedisCoordination: while Redis is unreachable', () => {
  it('falls back to the host’s locks, refuses answers at once, says so once, and goes back to Redis when it returns', async () => {
    const server = await own(OwnRedis.plain(`pw-${randomBytes(6).toString('hex')}`));
    const prefix = `gmp-test-${randomBytes(6).toString('hex')}:`;
    const fallbackDir = await tempDir();
    const a = await make({ url: server.url, prefix, fallbackDir, maxReconnectDelayMs: 100 });
    const b = await make({ url: server.url, prefix, fallbackDir, maxReconnectDelayMs: 100 });
    expect(await a.c.ready()).toBe(true);
    expect(await b.c.ready()).toBe(true);
    expect(a.c.degraded()).toBeNull();
    expect(a.c.description).toBe(`redis://127.0.0.1:${server.port}`);

    const viaRedis = await a.c.tryLock('example.com/m/@v/v1.0.0.zip');
    expect(await a.fallback.holder('example.com/m/@v/v1.0.0.zip')).toBeNull();
    await viaRedis?.release();
    // A holder whose Redis goes away keeps its lease only as long as it could have renewed it.
    const shortLease = await make({ url: server.url, prefix, fallbackDir, lockTtl: 1000, maxReconnectDelayMs: 100 });
    const stranded = (await shortLease.c.tryLock('example.com/m/@v/v0.9.0.zip')) as FetchLock;
    expect(await stranded.stillHeld()).toBe(true);

    await server.kill();
    await until(() => a.c.degraded() !== null && b.c.degraded() !== null, 'both instances see Redis gone');
    await until(async () => !(await stranded.stillHeld()), 'the stranded holder’s lease ran out');
    await stranded.release();
    const line = a.c.degraded() as string;
    expect(line).toMatch(new RegExp(`^redis at redis://127\\.0\\.0\\.1:${server.port} unreachable: .+; misses fall back to per-instance single flight$`));
    expect(line).not.toContain(server.password as string);

    // The host's locks take over: one holder on this host, seen by the other instance.
    const held = (await a.c.tryLock('example.com/m/@v/v2.0.0.zip', { staging: '/tmp/x.partial' })) as FetchLock;
    expect(held).not.toBeNull();
    expect(await b.c.tryLock('example.com/m/@v/v2.0.0.zip')).toBeNull();
    expect(await b.c.holder('example.com/m/@v/v2.0.0.zip')).toMatchObject({ host: HOST, staging: '/tmp/x.partial' });
    expect(await a.fallback.holder('example.com/m/@v/v2.0.0.zip')).not.toBeNull();
    await b.c.released('example.com/m/@v/v2.0.0.zip', 50);

    await expect(a.c.mutable.get('mutable/example.com/m/@v/list', 100)).rejects.toBeInstanceOf(RedisUnreachableError);
    await expect(a.c.mutable.put('mutable/example.com/m/@v/list', Buffer.from('x'))).rejects.toBeInstanceOf(RedisUnreachableError);
    await expect(a.c.mutable.delete('mutable/example.com/m/@v/list')).rejects.toBeInstanceOf(RedisUnreachableError);
    await expect(
      (async () => {
        for await (const _k of a.c.mutable.keys('')) return;
      })(),
    ).rejects.toBeInstanceOf(RedisUnreachableError);
    await expect(a.c.invalidate({ pattern: 'example.com/*' })).rejects.toBeInstanceOf(RedisUnreachableError);

    const warnings = a.lines.filter((l) => l.level === 40 && String(l.msg).startsWith('redis unreachable'));
    expect(warnings).toHaveLength(1);
    expect(JSON.stringify(a.lines)).not.toContain(server.password as string);

    await server.start();
    await until(() => a.c.degraded() === null && b.c.degraded() === null, 'both instances see Redis back');
    const back = await a.c.tryLock('example.com/m/@v/v3.0.0.zip');
    expect(back).not.toBeNull();
    expect(await b.c.tryLock('example.com/m/@v/v3.0.0.zip')).toBeNull();
    expect(await a.fallback.holder('example.com/m/@v/v3.0.0.zip')).toBeNull();
    const r = raw(server.url);
    try {
      expect(await r.exists(`${prefix}lock:example.com/m/@v/v3.0.0.zip`)).toBe(1);
    } finally {
      r.disconnect();
    }
    await back?.release();

    // A lock the fallback granted is released through the fallback, Redis back or not.
    await held.release();
    expect(await a.fallback.holder('example.com/m/@v/v2.0.0.zip')).toBeNull();

    await a.c.mutable.put('mutable/example.com/m/@v/list', Buffer.from('v1.0.0\n'));
    expect((await b.c.mutable.get('mutable/example.com/m/@v/list', 100))?.data.toString()).toBe('v1.0.0\n');
    expect(a.lines.filter((l) => l.level === 30 && String(l.msg).startsWith('redis reachable again'))).toHaveLength(1);
  });

  it('starts with Redis down, on the fallback, and takes Redis up when it comes', async () => {
    const server = await OwnRedis.plain(`pw-${randomBytes(6).toString('hex')}`);
    servers.push(server);
    const a = await make({ url: server.url, maxReconnectDelayMs: 100 });
    expect(await a.c.ready()).toBe(false);
    expect(a.c.degraded()).toMatch(/unreachable/);
    const lock = await a.c.tryLock('example.com/m/@v/v1.0.0.zip');
    expect(await a.fallback.holder('example.com/m/@v/v1.0.0.zip')).not.toBeNull();
    await lock?.release();
    await server.start();
    await until(() => a.c.degraded() === null, 'Redis seen up');
    const viaRedis = await a.c.tryLock('example.com/m/@v/v1.0.0.zip');
    expect(await a.fallback.holder('example.com/m/@v/v1.0.0.zip')).toBeNull();
    expect(await a.c.holder('example.com/m/@v/v1.0.0.zip')).toEqual({ host: HOST });
    await viaRedis?.release();
  });
});
