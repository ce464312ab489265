// Coordination of gomodproxy instances on several hosts that share one object store, through
// Redis: a fetch lock per store key (SET NX with an expiry that a heartbeat renews, so a dead
// holder blocks others for one lockTtl at most, and a fencing token from INCR), pub/sub for
// releases, remembered answers and invalidations, and the mutable answers themselves with an
// expiry. Redis is never on the path of a cached hit; while it is unreachable, locks go to the
// fallback (this host's lock files) and every instance fetches for itself, which costs upstream
// requests, never an outage.
import { randomBytes } from 'node:crypto';
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';
import type { RedisConfig } from '../config/schema.js';
import { ProxyError } from '../errors.js';
import {
  HOST,
  type AnswerStore,
  type Coordination,
  type FetchLock,
  type HolderInfo,
  type Invalidation,
  type StoreChange,
  type StoredAnswer,
  tellEach,
} from './coordination.js';
import { RememberedAnswers, type RememberedAnswer } from './remembered.js';

export interface RedisCoordinationOptions {
  /** Takes locks while Redis is unreachable: the server passes a HostCoordination over its data folder. */
  fallback: Coordination;
  log: Logger;
  /** How long any mutable answer may still be served stale: its copy in Redis expires after that. */
  answerTtlMs: number;
  /** Not-found and refused answers; default a fresh set. */
  answers?: RememberedAnswers;
  /** Renew held locks. Off only in tests, to play a holder whose process froze. */
  heartbeat?: boolean;
  /** Bound of one connection attempt (ms); default 3 s. */
  connectTimeoutMs?: number;
  /** Bound of one command (ms); default 1 s. A hung Redis delays a miss by this much before it falls back. */
  commandTimeoutMs?: number;
  /** Longest pause between reconnection attempts (ms); default 5 s. */
  maxReconnectDelayMs?: number;
  /** How often a waiting follower looks at the lock itself, for a release message lost in a reconnect; default lockTtl/5, at most 1 s. */
  releasePollMs?: number;
}

/** What the server needs to make one: the rest comes from the redis setting. */
export type RedisCoordinationDeps = Pick<RedisCoordinationOptions, 'fallback' | 'log' | 'answerTtlMs'>;

/** An AnswerStore call while Redis is unreachable: the caller keeps the answer elsewhere or fetches it. */
export class RedisUnreachableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RedisUnreachableError';
  }
}

/** A RedisCoordination for the redis setting, or null when there is none (one host coordinates alone). */
export function createRedisCoordination(config: RedisConfig, deps: RedisCoordinationDeps): RedisCoordination;
export function createRedisCoordination(config: RedisConfig | undefined, deps: RedisCoordinationDeps): RedisCoordination | null;
export function createRedisCoordination(config: RedisConfig | undefined, deps: RedisCoordinationDeps): RedisCoordination | null {
  return config ? new RedisCoordination(config, deps) : null;
}

type Client = Redis | Cluster;

// Every script touches one key, so each runs on the one node that owns it in a cluster. Ownership
// is the random id at the start of the value: update() rewrites the rest, so comparing the whole
// value would race a heartbeat against an update.
const OWNED = `local v = redis.call('GET', KEYS[1])
local owned = v and string.sub(v, 1, string.len(ARGV[1])) == ARGV[1]
`;
const RENEW = `${OWNED}if owned then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`;
const UPDATE = `${OWNED}if owned then redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL') return 1 end
return 0`;
const RELEASE = `${OWNED}if owned then redis.call('DEL', KEYS[1]) redis.call('PUBLISH', ARGV[2], ARGV[3]) return 1 end
return 0`;
const FENCE = `local t = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return t`;
// Refuses a too-large answer before its bytes cross the network.
const GET_ANSWER = `local n = redis.call('STRLEN', KEYS[1])
if n == 0 then return false end
if n - 8 > tonumber(ARGV[1]) then return n end
return redis.call('GET', KEYS[1])`;

// A key's fencing counter lives a day past its last grant, not forever: one counter per artifact
// ever fetched would grow without bound. Grants a day apart cannot overlap, since a holder that
// stopped renewing loses its lock after lockTtl.
const FENCE_TTL_MS = 86_400_000;
/** Mutable answers are stored after an 8-byte fetch time (ms, a big-endian double). */
const TIME_BYTES = 8;

interface LockBody {
  token: number;
  host: string;
  pid: number;
  size?: number;
  staging?: string;
}

interface Waiter {
  key: string;
  wake: () => void;
}

export class RedisCoordination implements Coordination {
  readonly description: string;
  readonly host: string;
  readonly answers: RememberedAnswers;
  readonly mutable: AnswerStore;

  private readonly cmd: Client;
  private readonly sub: Client;
  private readonly fallback: Coordination;
  private readonly log: Logger;
  private readonly prefix: string;
  private readonly lockTtl: number;
  private readonly answerTtlMs: number;
  private readonly heartbeat: boolean;
  private readonly releasePollMs: number;
  /** Tells this process's messages from the others' (pub/sub echoes them back to the sender). */
  private readonly self = randomBytes(12).toString('hex');
  private readonly channels: { released: string; remember: string; invalidate: string; stored: string };
  private readonly listeners: ((what: Invalidation) => void)[] = [];
  private readonly changeListeners: ((changes: readonly StoreChange[]) => void)[] = [];
  private readonly waiters = new Map<string, Set<Waiter>>();
  private readonly beats = new Set<NodeJS.Timeout>();
  /** Settles once the command connection has been up, or failed, for the first time. */
  private readonly started: Promise<void>;
  private readonly subStarted: Promise<void>;
  /** Why Redis is unusable now (null: it works); the warning is logged when this turns non-null. */
  private down: string | null = null;
  private lastError: string | null = null;
  private subDown: string | null = null;
  private closed = false;

  constructor(config: RedisConfig, opts: RedisCoordinationOptions) {
    this.fallback = opts.fallback;
    this.log = opts.log;
    this.prefix = config.keyPrefix;
    this.lockTtl = config.lockTtl;
    this.answerTtlMs = Math.max(1, Math.round(opts.answerTtlMs));
    this.heartbeat = opts.heartbeat ?? true;
    this.releasePollMs = opts.releasePollMs ?? Math.max(50, Math.min(1000, Math.floor(this.lockTtl / 5)));
    this.description = describeRedis(config);
    this.host = config.hostName ?? HOST;
    this.channels = {
      released: `${this.prefix}released`,
      remember: `${this.prefix}remember`,
      invalidate: `${this.prefix}invalidate`,
      stored: `${this.prefix}stored`,
    };
    this.answers = opts.answers ?? new RememberedAnswers();
    this.mutable = this.answerStore();

    const connectTimeout = opts.connectTimeoutMs ?? 3000;
    const maxDelay = opts.maxReconnectDelayMs ?? 5000;
    // Forever, with backoff: an instance outlives any Redis outage and comes back to it.
    const retry = (times: number): number => Math.min(maxDelay, 50 * 2 ** Math.min(times, 16)) + Math.floor(Math.random() * 50);
    const common: RedisOptions = {
      // A command while disconnected fails at once, and its caller falls back; nothing queues up.
      enableOfflineQueue: false,
      connectTimeout,
      commandTimeout: opts.commandTimeoutMs ?? 1000,
      // A command lost with its connection fails rather than being sent again after a reconnect:
      // a resent SET NX would find our own lock and report it as someone else's.
      maxRetriesPerRequest: 0,
      connectionName: `gomodproxy-${process.pid}`,
    };
    this.cmd = connect(config, common, retry);
    this.sub = connect(config, { ...common, autoResubscribe: false }, retry);

    this.cmd.on('ready', () => this.up());
    this.cmd.on('error', (err: Error) => {
      this.lastError = err.message;
      if (this.cmd.status !== 'ready') this.lose(err.message);
    });
    this.cmd.on('close', () => this.lose(this.lastError ?? 'connection closed'));
    this.cmd.on('end', () => this.lose(this.lastError ?? 'connection ended'));
    this.started = firstOutcome(this.cmd, connectTimeout);

    // Subscribed anew on every connection, so a subscription never waits in a queue.
    let subSettled!: () => void;
    this.subStarted = new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, connectTimeout + 100);
      timer.unref();
      subSettled = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    this.sub.on('ready', () => {
      this.sub.subscribe(this.channels.released, this.channels.remember, this.channels.invalidate, this.channels.stored).then(
        () => {
          this.subDown = null;
          subSettled();
        },
        (err: Error) => {
          this.subDown = err.message;
          subSettled();
        },
      );
    });
    this.sub.on('error', (err: Error) => {
      if (this.sub.status === 'ready') return;
      this.subDown = err.message;
      subSettled();
    });
    this.sub.on('close', () => {
      this.subDown ??= 'connection closed';
      subSettled();
    });
    this.sub.on('message', (channel: string, message: string) => this.heard(channel, message));

    this.answers.relayTo((key, answer) => {
      if (!this.usable()) return;
      this.cmd.publish(this.channels.remember, JSON.stringify({ from: this.self, key, answer })).catch((err: Error) => {
        this.log.debug({ key, err: err.message }, 'could not share a remembered answer through redis');
      });
    });
  }

  /** Settles once both connections have been up, or failed, for the first time: true if Redis works now. */
  async ready(): Promise<boolean> {
    await Promise.all([this.started, this.subStarted]);
    return this.degraded() === null;
  }

  async tryLock(key: string, info: { staging?: string } = {}): Promise<FetchLock | null> {
    return this.coordinated(
      async () => {
        const token = Number(await this.cmd.eval(FENCE, 1, this.key('fence', key), FENCE_TTL_MS));
        const id = randomBytes(16).toString('hex');
        const body: LockBody = { token, host: this.host, pid: process.pid };
        if (info.staging !== undefined) body.staging = info.staging;
        const grantedAt = Date.now();
        const ok = await this.cmd.set(this.key('lock', key), `${id}\n${JSON.stringify(body)}`, 'PX', this.lockTtl, 'NX');
        return ok === 'OK' ? this.held(key, id, body, grantedAt) : null;
      },
      // The fallback's own lock, released through it: a lock never moves between coordinations.
      () => this.fallback.tryLock(key, info),
    );
  }

  async holder(key: string): Promise<HolderInfo | null> {
    return this.coordinated(
      async () => {
        const v = await this.cmd.get(this.key('lock', key));
        return v === null ? null : parseHolder(v);
      },
      () => this.fallback.holder(key),
    );
  }

  async released(key: string, timeoutMs: number): Promise<void> {
    await this.started;
    if (this.closed) return;
    if (!this.usable()) return this.fallback.released(key, timeoutMs);
    const lock = this.key('lock', key);
    await new Promise<void>((resolve) => {
      let poll: NodeJS.Timeout | undefined;
      const waiter: Waiter = {
        key,
        wake: () => {
          clearTimeout(timer);
          clearTimeout(poll);
          this.forget(waiter);
          resolve();
        },
      };
      // Listening before looking: a release between the look and the listening cannot be missed.
      let set = this.waiters.get(key);
      if (!set) this.waiters.set(key, (set = new Set()));
      set.add(waiter);
      const timer = setTimeout(waiter.wake, timeoutMs);
      const look = async (): Promise<void> => {
        try {
          if ((await this.cmd.exists(lock)) === 0) return waiter.wake();
        } catch (err) {
          // Redis went away: the caller looks again, and finds the fallback.
          this.lose((err as Error).message);
          return waiter.wake();
        }
        if (set.has(waiter)) poll = setTimeout(() => void look(), this.releasePollMs);
      };
      void look();
    });
  }

  invalidate(what: Invalidation): Promise<void> {
    // Here at once and exactly once; the echo of our own message is skipped.
    this.deliver(what);
    if (!this.usable()) {
      return Promise.reject(new RedisUnreachableError(`invalidated in this process only: ${this.unreachable()}`));
    }
    return this.cmd.publish(this.channels.invalidate, JSON.stringify({ from: this.self, what })).then(() => undefined);
  }

  onInvalidate(listener: (what: Invalidation) => void): void {
    this.listeners.push(listener);
  }

  announce(changes: readonly StoreChange[]): void {
    // Unheard while Redis is away: the other instances' indexes catch up at their next rescan.
    if (changes.length === 0 || !this.usable()) return;
    this.cmd.publish(this.channels.stored, JSON.stringify({ from: this.self, changes })).catch((err: Error) => {
      this.log.debug({ err: err.message }, 'could not announce store changes through redis');
    });
  }

  onStoreChange(listener: (changes: readonly StoreChange[]) => void): void {
    this.changeListeners.push(listener);
  }

  degraded(): string | null {
    if (this.closed) return null;
    if (this.down !== null) return `${this.unreachable()}; misses fall back to per-instance single flight`;
    if (this.subDown !== null) {
      return `redis pub/sub at ${this.description} unreachable: ${this.subDown}; releases, invalidations and remembered answers of other instances go unheard`;
    }
    return null;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const b of this.beats) clearInterval(b);
    this.beats.clear();
    for (const set of [...this.waiters.values()]) for (const w of [...set]) w.wake();
    await Promise.all([quit(this.cmd), quit(this.sub)]);
  }

  private key(kind: 'lock' | 'fence' | 'answer', key: string): string {
    return `${this.prefix}${kind}:${key}`;
  }

  private usable(): boolean {
    return !this.closed && this.cmd.status === 'ready';
  }

  private unreachable(): string {
    return `redis at ${this.description} unreachable: ${this.down ?? this.lastError ?? 'not connected'}`;
  }

  /** Through Redis while it answers, else through the fallback. */
  private async coordinated<T>(viaRedis: () => Promise<T>, viaFallback: () => Promise<T>): Promise<T> {
    await this.started;
    if (!this.usable()) {
      this.lose(this.lastError ?? 'not connected');
      return viaFallback();
    }
    try {
      const v = await viaRedis();
      this.up();
      return v;
    } catch (err) {
      // A timeout after SET NX was sent may leave our lock in Redis: it expires after lockTtl.
      this.lose((err as Error).message);
      return viaFallback();
    }
  }

  private lose(reason: string): void {
    if (this.closed) return;
    const was = this.down;
    this.down = reason;
    if (was !== null) return;
    this.log.warn({ redis: this.description, reason }, 'redis unreachable: misses fall back to per-instance single flight');
    // Followers waiting on Redis locks look again now, and find the fallback.
    for (const set of [...this.waiters.values()]) for (const w of [...set]) w.wake();
  }

  private up(): void {
    // A reply can arrive just before its connection closes: only a ready connection counts.
    if (this.closed || this.cmd.status !== 'ready') return;
    if (this.down !== null) this.log.info({ redis: this.description }, 'redis reachable again: locks and answers are shared again');
    this.down = null;
    this.lastError = null;
  }

  private held(key: string, id: string, body: LockBody, grantedAt: number): FetchLock {
    const lock = this.key('lock', key);
    const tag = `${id}\n`;
    let renewedAt = grantedAt;
    let released = false;
    let beat: NodeJS.Timeout | undefined;
    const stop = (): void => {
      if (!beat) return;
      clearInterval(beat);
      this.beats.delete(beat);
      beat = undefined;
    };
    if (this.heartbeat) {
      beat = setInterval(
        () => {
          const at = Date.now();
          this.cmd.eval(RENEW, 1, lock, tag, this.lockTtl).then(
            (r) => {
              if (Number(r) === 1) renewedAt = at;
              else stop(); // expired and maybe taken: stillHeld() says so
            },
            () => undefined, // unreachable for now; the lease runs out unless a later beat gets through
          );
        },
        Math.max(1, Math.floor(this.lockTtl / 3)),
      );
      beat.unref();
      this.beats.add(beat);
    }
    return {
      token: body.token,
      update: async (info) => {
        if (info.size !== undefined) body.size = info.size;
        if (released) return;
        try {
          await this.cmd.eval(UPDATE, 1, lock, tag, `${tag}${JSON.stringify(body)}`);
        } catch (err) {
          // Followers go without the size for now; nothing the holder does depends on it.
          this.log.debug({ key, err: (err as Error).message }, 'could not update the fetch lock in redis');
        }
      },
      stillHeld: async () => {
        if (released) return false;
        try {
          const v = await this.cmd.get(lock);
          return v !== null && v.startsWith(tag);
        } catch {
          // Nobody can be granted it while Redis is unreachable; it is ours while our lease lasts.
          return Date.now() - renewedAt < this.lockTtl;
        }
      },
      release: async () => {
        if (released) return;
        released = true;
        stop();
        try {
          await this.cmd.eval(RELEASE, 1, lock, tag, this.channels.released, key);
        } catch (err) {
          this.log.debug({ key, err: (err as Error).message }, 'could not release the fetch lock in redis; it expires by itself');
        }
      },
    };
  }

  private forget(w: Waiter): void {
    const set = this.waiters.get(w.key);
    if (!set) return;
    set.delete(w);
    if (set.size === 0) this.waiters.delete(w.key);
  }

  private heard(channel: string, message: string): void {
    if (channel === this.channels.released) {
      for (const w of [...(this.waiters.get(message) ?? [])]) w.wake();
      return;
    }
    let m: unknown;
    try {
      m = JSON.parse(message);
    } catch {
      return;
    }
    if (!isRecord(m) || m.from === this.self) return;
    if (channel === this.channels.remember) {
      if (typeof m.key === 'string' && isRememberedAnswer(m.answer)) this.answers.remember(m.key, m.answer);
    } else if (channel === this.channels.invalidate) {
      if (isInvalidation(m.what)) this.deliver(m.what);
    } else if (channel === this.channels.stored) {
      if (Array.isArray(m.changes)) {
        const changes = m.changes.filter(isStoreChange);
        tellEach(this.changeListeners, changes, (err) => this.log.error({ err }, 'a store change listener failed'));
      }
    }
  }

  private deliver(what: Invalidation): void {
    for (const l of this.listeners) {
      try {
        l(what);
      } catch (err) {
        this.log.error({ err, what }, 'an invalidation listener failed');
      }
    }
  }

  /** The client, or a quick rejection while Redis is unreachable (the caller falls back). */
  private async live(): Promise<Client> {
    await this.started;
    if (!this.usable()) throw new RedisUnreachableError(this.unreachable());
    return this.cmd;
  }

  private answerStore(): AnswerStore {
    const answerKey = (key: string): string => this.key('answer', key);
    return {
      get: async (key: string, maxBytes: number): Promise<StoredAnswer | null> => {
        const r = await (await this.live()).callBuffer('EVAL', GET_ANSWER, 1, answerKey(key), String(maxBytes));
        if (r === null || r === undefined) return null;
        if (typeof r === 'number') {
          throw new ProxyError('internal', `stored answer ${key} is ${r - TIME_BYTES} bytes, more than the ${maxBytes} expected`);
        }
        if (!Buffer.isBuffer(r) || r.length < TIME_BYTES) throw new ProxyError('internal', `stored answer ${key} in redis is not one this proxy wrote`);
        return { mtimeMs: r.readDoubleBE(0), data: r.subarray(TIME_BYTES) };
      },
      put: async (key: string, data: Buffer): Promise<void> => {
        const value = Buffer.allocUnsafe(TIME_BYTES + data.length);
        value.writeDoubleBE(Date.now(), 0);
        data.copy(value, TIME_BYTES);
        await (await this.live()).set(answerKey(key), value, 'PX', this.answerTtlMs);
      },
      delete: async (key: string): Promise<void> => {
        await (await this.live()).del(answerKey(key));
      },
      keys: (prefix: string): AsyncIterable<string> => this.scan(answerKey(prefix)),
    };
  }

  /** Keys under a full Redis prefix, without this coordination's part of it; each node of a cluster is scanned. */
  private async *scan(full: string): AsyncGenerator<string> {
    const client = await this.live();
    const strip = this.key('answer', '').length;
    const match = `${escapeGlob(full)}*`;
    const seen = new Set<string>();
    const nodes: Redis[] = client instanceof Cluster ? client.nodes('master') : [client];
    for (const node of nodes) {
      let cursor = '0';
      do {
        const [next, batch] = await node.scan(cursor, 'MATCH', match, 'COUNT', 1000);
        cursor = next;
        // SCAN may return a key twice.
        for (const k of batch) {
          if (seen.has(k)) continue;
          seen.add(k);
          yield k.slice(strip);
        }
      } while (cursor !== '0');
    }
  }
}

function connect(config: RedisConfig, common: RedisOptions, retry: (times: number) => number): Client {
  if (config.cluster) {
    const urls = config.cluster.map((u) => new URL(u));
    // Credentials and TLS are the cluster's, not a node's: taken from the first URL that has them.
    const auth = urls.find((u) => u.username || u.password);
    const { enableOfflineQueue: _q, ...node } = common;
    const redisOptions: ClusterOptions['redisOptions'] = { ...node };
    if (auth?.username) redisOptions.username = decodeURIComponent(auth.username);
    if (auth?.password) redisOptions.password = decodeURIComponent(auth.password);
    if (urls.some((u) => u.protocol === 'rediss:')) redisOptions.tls = {};
    return new Cluster(
      urls.map((u) => ({ host: bareHost(u.hostname), port: Number(u.port || 6379) })),
      { enableOfflineQueue: false, clusterRetryStrategy: retry, redisOptions },
    );
  }
  if (config.sentinels) {
    return new Redis({ ...common, retryStrategy: retry, sentinels: config.sentinels.map(parseHostPort), name: config.name });
  }
  return new Redis(config.url as string, { ...common, retryStrategy: retry });
}

/** Settles on the connection's first success or failure, or after the connect timeout. */
function firstOutcome(c: Client, timeoutMs: number): Promise<void> {
  if (c.status === 'ready') return Promise.resolve();
  return new Promise((resolve) => {
    const events = ['ready', 'error', 'close', 'end'];
    const done = (): void => {
      clearTimeout(timer);
      for (const e of events) c.off(e, done);
      resolve();
    };
    const timer = setTimeout(done, timeoutMs + 100);
    timer.unref();
    for (const e of events) c.on(e, done);
  });
}

async function quit(c: Client): Promise<void> {
  if (c.status === 'ready') {
    try {
      await c.quit();
      return;
    } catch {
      // Went away while quitting: disconnect below.
    }
  }
  c.disconnect();
}

/** For logs and /readyz: where Redis is, never with a password. */
export function describeRedis(config: RedisConfig): string {
  if (config.cluster) return `redis+cluster://${config.cluster.map((u) => new URL(u).host).join(',')}`;
  if (config.sentinels) return `redis+sentinel://${config.sentinels.join(',')}/${config.name ?? ''}`;
  const u = new URL(config.url as string);
  u.username = '';
  u.password = '';
  return u.toString();
}

function parseHostPort(hp: string): { host: string; port: number } {
  const i = hp.lastIndexOf(':');
  return { host: bareHost(hp.slice(0, i)), port: Number(hp.slice(i + 1)) };
}

function bareHost(h: string): string {
  return h.replace(/^\[|\]$/g, '');
}

/** A prefix as a SCAN pattern that matches it literally. */
export function escapeGlob(s: string): string {
  return s.replace(/[*?[\]\\]/g, '\\$&');
}

function parseHolder(value: string): HolderInfo {
  const out: HolderInfo = {};
  let body: unknown;
  try {
    body = JSON.parse(value.slice(value.indexOf('\n') + 1));
  } catch {
    return out; // held, by a writer we do not understand: a holder all the same
  }
  if (!isRecord(body)) return out;
  if (typeof body.size === 'number') out.size = body.size;
  if (typeof body.host === 'string') out.host = body.host;
  if (typeof body.staging === 'string') out.staging = body.staging;
  return out;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isRememberedAnswer(v: unknown): v is RememberedAnswer {
  return (
    isRecord(v) &&
    (v.kind === 'not-found' || v.kind === 'gone' || v.kind === 'refused') &&
    typeof v.message === 'string' &&
    typeof v.at === 'number' &&
    typeof v.until === 'number'
  );
}

function isStoreChange(v: unknown): v is StoreChange {
  return (
    isRecord(v) &&
    typeof v.module === 'string' &&
    typeof v.version === 'string' &&
    (v.kind === 'info' || v.kind === 'mod' || v.kind === 'zip') &&
    (v.size === null || typeof v.size === 'number') &&
    typeof v.mtimeMs === 'number' &&
    (v.source === undefined || typeof v.source === 'string')
  );
}

function isInvalidation(v: unknown): v is Invalidation {
  return isRecord(v) && typeof v.pattern === 'string' && (v.version === undefined || typeof v.version === 'string');
}
