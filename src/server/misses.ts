// What a miss learns, and how the next request for the same key is answered because of it:
// an upstream's "not found" is remembered for cache.notFoundTtl and an answer we refused for
// cache.refusedTtl, in every process (Coordination.answers), so that asking again costs no
// upstream request and every process gives the same line; and public modules' hashes are held
// to the checksum database before anything is stored.
import type { Logger } from 'pino';
import type { Coordination } from '../cluster/coordination.js';
import type { RememberedAnswer } from '../cluster/remembered.js';
import { ProxyError } from '../errors.js';
import type { ModuleRef } from '../sources/index.js';
import type { Metrics } from './metrics.js';
import type { ArtifactKind } from './protocol.js';
import type { Route } from './routes.js';
import { ChecksumMismatch, type SumdbService } from './sumdb.js';
import type { Exchange } from './respond.js';

export interface MissesDeps {
  coordination: Coordination;
  metrics: Metrics;
  log: Logger;
  notFoundTtlMs: number;
  refusedTtlMs: number;
  sumdb?: SumdbService | null;
}

/** What a checksum check needs to know of a request. */
export interface VersionRequest {
  mod: ModuleRef;
  version: { version: string };
  route: Route;
}

export type RefusalReason = 'malformed' | 'invalid-zip' | 'too-large' | 'checksum-mismatch';

export class Misses {
  constructor(private readonly d: MissesDeps) {}

  /**
   * Throws the remembered answer for key, if one holds: the same line as the first time, with
   * headers that say it was remembered and for how much longer.
   */
  checkRemembered(ex: Exchange, key: string): void {
    const err = this.rememberedError(key);
    if (!err) return;
    ex.cache = err.kind === 'upstream' ? 'refused' : 'negative';
    throw err;
  }

  /** The error a remembered answer for key is given as, or undefined when none holds. */
  rememberedError(key: string): ProxyError | undefined {
    const a = this.d.coordination.answers.get(key);
    if (!a) return undefined;
    const now = Date.now();
    const left = Math.max(1, Math.ceil((a.until - now) / 1000));
    if (a.kind === 'refused') {
      return new ProxyError('upstream', `${a.message}; it asks the upstream again in ${left}s`, {
        headers: { 'Retry-After': String(left), 'X-Gomodproxy-Cache': 'refused' },
      });
    }
    return new ProxyError(a.kind, a.message, {
      headers: { 'Cache-Control': `public, max-age=${left}`, 'X-Gomodproxy-Cache': 'negative', Age: String(Math.floor((now - a.at) / 1000)) },
    });
  }

  /** Remembers a not-found answer from the upstreams (other errors pass through untouched); returns what to throw. */
  learn(key: string, err: unknown): unknown {
    if (!(err instanceof ProxyError) || !err.isNotFound || this.d.notFoundTtlMs <= 0) return err;
    const now = Date.now();
    this.d.coordination.answers.set(key, {
      kind: err.kind === 'gone' ? 'gone' : 'not-found',
      message: err.message,
      at: now,
      until: now + this.d.notFoundTtlMs,
    });
    const ttl = Math.ceil(this.d.notFoundTtlMs / 1000);
    return new ProxyError(err.kind, err.message, {
      upstreamStatus: err.upstreamStatus,
      headers: { ...err.headers, 'Cache-Control': `public, max-age=${ttl}` },
      cause: err,
    });
  }

  /** Remembers that an upstream answer was refused by our checks, counts and logs it; returns the error to answer with. */
  refuse(key: string, kind: ArtifactKind, err: ProxyError, reason: RefusalReason): ProxyError {
    const ttlMs = this.d.refusedTtlMs;
    const now = Date.now();
    const answer: RememberedAnswer = { kind: 'refused', message: err.message, at: now, until: now + ttlMs };
    this.d.coordination.answers.set(key, answer);
    this.d.metrics.invalidArtifacts.labels(kind, reason).inc();
    this.d.log.warn({ key, reason: err.message }, 'refused an invalid upstream answer');
    if (ttlMs <= 0) return err;
    const left = Math.ceil(ttlMs / 1000);
    return new ProxyError(err.kind, `${err.message}; it asks the upstream again in ${left}s`, {
      upstreamStatus: err.upstreamStatus,
      headers: { ...err.headers, 'Retry-After': String(left) },
      cause: err,
    });
  }

  /** Starts the checksum database lookup for a public module; settles with its failure, if any, never rejecting. */
  checksumLookup(r: VersionRequest): Promise<ProxyError | null> {
    const sumdb = this.d.sumdb;
    if (!r.route.sumdb || !sumdb?.checks(r.mod.path)) return Promise.resolve(null);
    return sumdb.recorded(r.mod, r.version.version).then(
      () => null,
      (err: unknown) => (err instanceof ProxyError ? err : new ProxyError('upstream', String(err))),
    );
  }

  /** Public modules only: the h1 must equal the checksum database's record, or nothing is stored. */
  async verifyChecksum(key: string, r: VersionRequest, kind: 'mod' | 'zip', h1: string, sourceId: string): Promise<void> {
    const sumdb = this.d.sumdb;
    if (!r.route.sumdb || !sumdb?.checks(r.mod.path)) return;
    try {
      await sumdb.verify(r.mod, r.version.version, kind, h1, sourceId);
    } catch (err) {
      if (err instanceof ChecksumMismatch) throw this.refuse(key, kind, err, 'checksum-mismatch');
      throw err;
    }
  }
}
