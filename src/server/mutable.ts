// Mutable answers (@v/list, @latest, .info of a query): cached with a TTL. Fresh: served.
// Older than the TTL but within the revalidation window: served at once while one background
// fetch refreshes it. Older still: fetched first. When every upstream fails, the last answer
// is served (marked stale) rather than an error.
import type { Logger } from 'pino';
import { MUTABLE_PREFIX, mutableLatestKey, mutableListKey, mutableQueryKey } from '../cache/keys.js';
import { MemoryCache, type MemoryEntry } from '../cache/memory.js';
import type { AnswerStore, StoredAnswer } from '../cluster/coordination.js';
import { SingleFlight } from '../cluster/flight.js';
import { ProxyError } from '../errors.js';
import { MAX_INFO_BYTES, MAX_LIST_BYTES, type FetchContext, type ModuleRef, type VersionRef, withFetchSlot } from '../sources/index.js';
import type { Artifacts } from './artifacts.js';
import type { Route, RouteTable } from './routes.js';
import { checkInfo, checkList, isListableVersion } from './check.js';
import type { Metrics } from './metrics.js';
import { CACHE_HEADER, STALE_HEADER, TEXT, sendBody, type Exchange } from './respond.js';
import type { StorageSpace } from './space.js';

export type MutableRequest =
  | { kind: 'list'; mod: ModuleRef; route: Route }
  | { kind: 'latest'; mod: ModuleRef; route: Route }
  | { kind: 'query'; mod: ModuleRef; version: VersionRef; route: Route };

interface Answer extends MemoryEntry {
  source: string;
}

export interface MutableDeps {
  /** Where answers are kept for the other processes and instances (the store, or Redis). */
  answers: AnswerStore;
  artifacts: Artifacts;
  /** Room for the answer where it is kept (a disk): without it the answer is served, not kept. Null: no disk involved. */
  space: StorageSpace | null;
  /** Operator policy: denied versions are dropped from lists and refused as @latest or query answers. */
  policy: RouteTable;
  metrics: Metrics;
  log: Logger;
  staleWhileRevalidateMs: number;
  maxStaleMs: number;
}

export class MutableAnswers {
  readonly memory = new MemoryCache<Answer>(32 << 20, 1 << 20);
  private readonly flights = new SingleFlight<Answer>();
  /** The last failed refresh per key, until one succeeds (bounded: cleared when it grows large). */
  private readonly failures = new Map<string, { at: number; message: string }>();

  constructor(private readonly d: MutableDeps) {}

  /** Settles when every refresh in flight now (background revalidations included) has settled. */
  drain(): Promise<void> {
    return this.flights.drain();
  }

  async serve(ex: Exchange, r: MutableRequest, ctx: FetchContext): Promise<void> {
    const key = keyOf(r);
    let cached = this.memory.get(key);
    if (!cached || Date.now() - cached.mtimeMs >= r.route.ttlMs) {
      // Another process (or instance) may have refreshed it already.
      const stored = await this.shared(key, r.kind === 'list' ? MAX_LIST_BYTES : MAX_INFO_BYTES);
      if (stored && (!cached || stored.mtimeMs > cached.mtimeMs)) {
        cached = { data: stored.data, etag: '', mtimeMs: stored.mtimeMs, source: 'cache' };
        this.memory.set(key, cached);
      }
      // A refresh in this process may have finished while we looked: take it rather than start another.
      const latest = this.memory.get(key);
      if (latest && (!cached || latest.mtimeMs > cached.mtimeMs)) cached = latest;
    }
    const now = Date.now();
    if (cached) {
      const age = now - cached.mtimeMs;
      if (age < r.route.ttlMs) {
        ex.cache = 'hit';
        this.send(ex, r, cached, Math.ceil((r.route.ttlMs - age) / 1000));
        return;
      }
      if (age < r.route.ttlMs + this.d.staleWhileRevalidateMs) {
        const failed = this.failures.get(key);
        this.refresh(key, r, ctx).catch((err: unknown) => this.d.log.warn({ key, err: (err as Error).message }, 'background revalidation failed'));
        if (failed && failed.at > cached.mtimeMs) {
          // The last refresh failed: say this answer is stale, not merely being revalidated.
          ex.cache = 'stale';
          this.send(ex, r, cached, 0, `${Math.round(age / 1000)}s old; upstreams failed: ${failed.message}`);
        } else {
          ex.cache = 'revalidating';
          this.send(ex, r, cached, 0);
        }
        return;
      }
    }
    ex.cache = 'miss';
    // Nothing to fall back on: a not-found learnt a moment ago is the answer.
    if (!cached) this.d.artifacts.misses.checkRemembered(ex, key);
    let fresh: Answer;
    try {
      fresh = await this.refresh(key, r, ctx);
    } catch (err) {
      const age = cached ? now - cached.mtimeMs : Infinity;
      if (cached && err instanceof ProxyError && !err.isNotFound && age < this.d.maxStaleMs) {
        ex.cache = 'stale';
        this.d.log.warn({ key, ageSeconds: Math.round(age / 1000), err: err.message }, 'serving a stale answer: every upstream failed');
        this.send(ex, r, cached, 0, `${Math.round(age / 1000)}s old; upstreams failed: ${err.message}`);
        return;
      }
      throw err;
    }
    ex.source = fresh.source;
    this.send(ex, r, fresh, Math.ceil(r.route.ttlMs / 1000));
  }

  /** Refreshes an answer now, whatever its age (sync jobs); resolves with what a client would be sent. */
  async revalidate(r: MutableRequest, ctx: FetchContext): Promise<Buffer> {
    return this.applyPolicy(r, await this.refresh(keyOf(r), r, ctx)).data;
  }

  /** Applies version deny rules to an answer about to be sent: lists lose denied versions, @latest/query answers naming one are refused. */
  private applyPolicy(r: MutableRequest, a: Answer): Answer {
    const policy = this.d.policy;
    if (!policy.hasVersionRules(r.mod.path)) return a;
    if (r.kind === 'list') {
      const kept = a.data
        .toString('utf8')
        .split('\n')
        .filter((line) => line !== '' && !policy.isDeniedVersion(r.mod.path, line.split(' ')[0] as string));
      return { ...a, data: Buffer.from(kept.map((l) => `${l}\n`).join('')) };
    }
    const version = (JSON.parse(a.data.toString('utf8')) as { Version: string }).Version;
    policy.checkPolicy(r.mod.path, version);
    return a;
  }

  private send(ex: Exchange, r: MutableRequest, answer: Answer, maxAge: number, stale?: string): void {
    const a = this.applyPolicy(r, answer);
    const headers = [
      'Content-Type',
      r.kind === 'list' ? TEXT : 'application/json',
      'Content-Length',
      String(a.data.length),
      'Cache-Control',
      maxAge > 0 ? `public, max-age=${maxAge}` : 'no-cache',
      CACHE_HEADER,
      ex.cache,
    ];
    if (stale) headers.push(STALE_HEADER, stale.replace(/[^\x20-\x7e]/g, '?').slice(0, 300));
    sendBody(ex, 200, headers, a.data);
  }

  /** One fetch per key in this process; the answer is stored for other processes and restarts. */
  private refresh(key: string, r: MutableRequest, ctx: FetchContext): Promise<Answer> {
    return this.flights.do(key, async () => {
      let data: Buffer;
      let source: string;
      try {
        const res = await withFetchSlot(ctx, () =>
          r.route.chain.run(r.kind, (s) =>
            r.kind === 'list' ? s.list(r.mod, ctx) : r.kind === 'latest' ? s.latest(r.mod, ctx) : s.info(r.mod, r.version, ctx),
          ),
        );
        source = res.source.id;
        if (r.kind === 'list') {
          // A list from version control is the repository's truth; a proxy's may lack versions we hold from elsewhere.
          if (source === 'direct') {
            checkList(res.value, r.mod, source);
            data = res.value;
          } else {
            data = await this.mergeList(res.value, r.mod, source);
          }
        } else {
          const checked = checkInfo(res.value, r.mod, source);
          data = checked.bytes;
          // The version this resolved to is now known: keep its .info as the go command's cache does,
          // so the version stays complete here even after the branch or tag moves on.
          this.d.artifacts.adoptInfo(r.mod, checked.info.Version, data, source);
        }
      } catch (err) {
        if (r.kind === 'list' && err instanceof ProxyError && err.isNotFound) {
          // Upstreams no longer know it, but we hold versions of it: those are still servable.
          const local = (await this.d.artifacts.localVersions(r.mod)).filter(isListableVersion);
          if (local.length > 0) return { data: Buffer.from(local.map((v) => `${v}\n`).join('')), etag: '', mtimeMs: Date.now(), source: 'cache' };
        }
        if (err instanceof ProxyError && err.isNotFound) {
          this.memory.delete(key);
          await this.d.answers.delete(key).catch(() => undefined);
          throw this.d.artifacts.misses.learn(key, err);
        } else {
          if (this.failures.size > 10_000) this.failures.clear();
          this.failures.set(key, { at: Date.now(), message: err instanceof Error ? err.message : String(err) });
        }
        throw err;
      }
      this.failures.delete(key);
      const answer: Answer = { data, etag: '', mtimeMs: Date.now(), source };
      this.memory.set(key, answer);
      await this.keep(key, data);
      return answer;
    });
  }

  /** The answer other processes keep; none when it cannot be read (Redis lost: this process then answers alone). */
  private async shared(key: string, maxBytes: number): Promise<StoredAnswer | null> {
    try {
      return await this.d.answers.get(key, maxBytes);
    } catch (err) {
      this.d.log.warn({ key, err: (err as Error).message }, 'could not read the shared answer; asking the upstream');
      return null;
    }
  }

  /** Stores a fresh answer for other processes and restarts; one that cannot be stored is still served (from memory). */
  private async keep(key: string, data: Buffer): Promise<void> {
    let claim;
    try {
      claim = await this.d.space?.claim(data.length, `the answer ${key.slice(MUTABLE_PREFIX.length)}`);
    } catch {
      return;
    }
    try {
      await this.d.answers.put(key, data);
    } catch (err) {
      this.d.log.error({ key, err: (err as Error).message }, 'could not store a fresh answer; serving it from memory');
    } finally {
      claim?.release();
    }
  }

  /** The upstream's list plus any release we hold that it omits (it may come from another upstream). */
  private async mergeList(body: Buffer, mod: ModuleRef, source: string): Promise<Buffer> {
    const lines = checkList(body, mod, source);
    for (const v of await this.d.artifacts.localVersions(mod)) {
      if (!lines.has(v) && isListableVersion(v)) lines.set(v, v);
    }
    let out = '';
    for (const line of lines.values()) out += `${line}\n`;
    return Buffer.from(out);
  }
}

function keyOf(r: MutableRequest): string {
  switch (r.kind) {
    case 'list':
      return mutableListKey(r.mod.escaped);
    case 'latest':
      return mutableLatestKey(r.mod.escaped);
    case 'query':
      return mutableQueryKey(r.mod.escaped, r.version.escaped);
  }
}
