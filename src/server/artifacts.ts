// Immutable artifacts (.info, .mod, .zip of a canonical version): served from the cache, or
// fetched once per key (in this process: a shared flight; across processes on one data
// folder: a lock file), checked, committed atomically, and never replaced afterwards.
import { createHash } from 'node:crypto';
import { open, rm, type FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { artifactKey, zipHashKey } from '../cache/keys.js';
import { localVersions, writeLocalList } from '../cache/locallist.js';
import type { FsBlobStore } from '../cache/fs.js';
import type { BlobStat } from '../cache/blobstore.js';
import type { MemoryCache, MemoryEntry } from '../cache/memory.js';
import { ForeignView, LocalView, readStaged, type StagingView } from '../cache/staging.js';
import { FileLocks } from '../cluster/filelock.js';
import { SingleFlight } from '../cluster/flight.js';
import { ProxyError, errorMessage } from '../errors.js';
import { escapeVersion } from '../module/index.js';
import { StreamingZipCheck, ZipError, hashGoMod } from '../modzip/index.js';
import { MAX_GOMOD_BYTES, MAX_INFO_BYTES, MAX_ZIP_BYTES, type FetchContext, type ModuleRef, type VersionRef, discard, withFetchSlot } from '../sources/index.js';
import { checkInfo, checkMod } from './check.js';
import type { Metrics } from './metrics.js';
import type { ArtifactKind } from './protocol.js';
import type { Route } from './routes.js';
import { ChecksumMismatch, type SumdbService } from './sumdb.js';
import { CACHE_HEADER, contentTypes, etagMatches, httpDate, sendBody, sendError, type Exchange } from './respond.js';

export interface ArtifactRequest {
  kind: ArtifactKind;
  mod: ModuleRef;
  version: VersionRef;
  route: Route;
}

/** A blob held in memory with its response headers built once. */
export interface ArtifactEntry extends MemoryEntry {
  headers: string[];
  notModified: string[];
}

interface ZipFlight {
  view: Promise<StagingView>;
  source: string | undefined;
}

export interface ArtifactsDeps {
  store: FsBlobStore;
  memory: MemoryCache<ArtifactEntry>;
  metrics: Metrics;
  log: Logger;
  immutableMaxAgeMs: number;
  locks?: FileLocks;
  /** Checks public modules' hashes against the checksum database before they are stored. */
  sumdb?: SumdbService | null;
}

/** How long a refused upstream answer is remembered, so a retry gets the reason at once. */
const REJECTED_TTL_MS = 60_000;

export class Artifacts {
  private readonly small = new SingleFlight<{ entry: ArtifactEntry; source: string }>();
  private readonly zips = new Map<string, ZipFlight>();
  private readonly rejected = new Map<string, { err: ProxyError; until: number }>();
  private readonly listRewrites = new Map<string, Promise<void>>();
  private readonly background = new Set<Promise<void>>();
  private readonly locks: FileLocks;
  private readonly cacheControl: string;

  constructor(private readonly d: ArtifactsDeps) {
    this.locks = d.locks ?? new FileLocks();
    this.cacheControl = `public, max-age=${Math.floor(d.immutableMaxAgeMs / 1000)}, immutable`;
  }

  /** The hot path's only step after a memory hit: headers were built when the entry was. */
  sendEntry(ex: Exchange, entry: ArtifactEntry): void {
    if (etagMatches(ex.req.headers['if-none-match'], entry.etag)) {
      ex.res.writeHead(304, entry.notModified);
      ex.res.end();
      ex.finish(304, 0);
      return;
    }
    sendBody(ex, 200, entry.headers, entry.data);
  }

  /**
   * A blob with its response headers built once. The ETag of an .info or .mod is derived from
   * its bytes, so it is the same whether the blob came from the upstream a moment ago or from
   * the store later; a zip's is the store's.
   */
  entry(kind: ArtifactKind, data: Buffer, stat: Pick<BlobStat, 'mtimeMs'> & { etag?: string }, cache: 'hit' | 'miss' = 'hit'): ArtifactEntry {
    const etag = kind === 'zip' && stat.etag ? stat.etag : `"${createHash('sha256').update(data).digest('base64url').slice(0, 27)}"`;
    const common = ['ETag', etag, 'Last-Modified', httpDate(stat.mtimeMs), 'Cache-Control', this.cacheControl];
    return {
      data,
      etag,
      mtimeMs: stat.mtimeMs,
      headers: ['Content-Type', contentTypes[kind], 'Content-Length', String(data.length), ...common, CACHE_HEADER, cache],
      notModified: common,
    };
  }

  private async store(kind: 'info' | 'mod', key: string, mod: ModuleRef, data: Buffer): Promise<void> {
    try {
      await this.d.store.put(key, data);
      if (kind === 'mod') this.rewriteLocalList(mod);
    } catch (err) {
      // The client has its answer; the next process to ask fetches it again.
      this.d.memory.delete(key);
      this.d.log.error({ key, err: (err as Error).message }, 'could not store a checked artifact');
    }
  }

  /**
   * Keeps the .info a query resolved to as that version's own (as the go command's cache does),
   * unless the version already has one: never replaced, and skipped while another fetch holds it.
   */
  adoptInfo(mod: ModuleRef, version: string, data: Buffer): void {
    const key = artifactKey(mod.escaped, escapeVersion(version), 'info');
    this.track(
      (async () => {
        const lock = await this.locks.tryAcquire(this.lockFile(key));
        if (!lock) return;
        try {
          if (!(await this.d.store.head(key))) await this.d.store.put(key, data);
        } finally {
          await lock.release();
        }
      })().catch((err: unknown) => this.d.log.warn({ key, err: (err as Error).message }, 'could not keep the .info of a resolved version')),
    );
  }

  /** Background work that graceful shutdown waits for. */
  private track(p: Promise<void>): void {
    this.background.add(p);
    void p.finally(() => this.background.delete(p));
  }

  /** After a memory miss: the store, else the upstreams. */
  async serve(ex: Exchange, r: ArtifactRequest, ctx: FetchContext): Promise<void> {
    const key = artifactKey(r.mod.escaped, r.version.escaped, r.kind);
    const store = this.d.store;
    if (r.kind === 'zip') {
      const blob = await store.get(key);
      if (blob) {
        ex.cache = 'hit';
        if (blob.size <= this.d.memory.maxItemBytes) {
          const data = await collect(blob.stream, blob.size);
          const entry = this.entry('zip', data, blob);
          this.d.memory.set(key, entry);
          this.sendEntry(ex, entry);
          return;
        }
        const headers = ['Content-Type', contentTypes.zip, 'Content-Length', String(blob.size), 'ETag', blob.etag, 'Last-Modified', httpDate(blob.mtimeMs), 'Cache-Control', this.cacheControl, CACHE_HEADER, 'hit'];
        const notModified = etagMatches(ex.req.headers['if-none-match'], blob.etag);
        if (notModified || ex.isHead) {
          discard(blob.stream);
          ex.res.writeHead(notModified ? 304 : 200, notModified ? headers.slice(4, 10) : headers);
          ex.res.end();
          ex.finish(notModified ? 304 : 200, 0);
          return;
        }
        ex.res.writeHead(200, headers);
        await pipeToClient(ex, blob.stream, this.d.log);
        return;
      }
      ex.cache = 'miss';
      this.checkRejected(key);
      await this.serveZipMiss(ex, r, key, ctx);
      return;
    }
    const got = await store.getBuffer(key, r.kind === 'info' ? MAX_INFO_BYTES : MAX_GOMOD_BYTES);
    if (got) {
      ex.cache = 'hit';
      const entry = this.entry(r.kind, got.data, got.stat);
      this.d.memory.set(key, entry);
      this.sendEntry(ex, entry);
      return;
    }
    ex.cache = 'miss';
    this.checkRejected(key);
    const { entry, source } = await this.small.do(key, () => this.fetchSmall(r, key, ctx));
    ex.source = source;
    this.sendEntry(ex, entry);
  }

  private checkRejected(key: string): void {
    const r = this.rejected.get(key);
    if (!r) return;
    if (Date.now() < r.until) throw r.err;
    this.rejected.delete(key);
  }

  private reject(key: string, kind: ArtifactKind, err: ProxyError, reason: string): ProxyError {
    this.rejected.set(key, { err, until: Date.now() + REJECTED_TTL_MS });
    this.d.metrics.invalidArtifacts.labels(kind, reason).inc();
    this.d.log.warn({ key, reason: err.message }, 'refused an invalid upstream answer');
    return err;
  }

  private lockFile(key: string): string {
    return `${this.d.store.localPath(key)}.lock`;
  }

  /** .info and .mod: small, fetched whole, checked, stored, then answered. */
  private async fetchSmall(r: ArtifactRequest, key: string, ctx: FetchContext): Promise<{ entry: ArtifactEntry; source: string }> {
    const kind = r.kind as 'info' | 'mod';
    const lockFile = this.lockFile(key);
    for (let attempt = 0; attempt < 3; attempt++) {
      const lock = await this.locks.tryAcquire(lockFile);
      if (!lock) {
        const got = await this.waitForOther(key, lockFile, kind);
        if (got) return got;
        continue;
      }
      let stored = false;
      try {
        const existing = await this.d.store.getBuffer(key, MAX_GOMOD_BYTES);
        if (existing) return { entry: this.entry(kind, existing.data, existing.stat), source: 'cache' };
        const res = await withFetchSlot(ctx, () => r.route.chain.run(kind, (s) => (kind === 'info' ? s.info(r.mod, r.version, ctx) : s.mod(r.mod, r.version, ctx))));
        let data = res.value;
        try {
          if (kind === 'info') data = checkInfo(data, r.mod, res.source.id, r.version.version).bytes;
          else checkMod(data, r.mod, r.version.version, res.source.id);
        } catch (err) {
          throw err instanceof ProxyError ? this.reject(key, kind, err, 'malformed') : err;
        }
        if (kind === 'mod') await this.verifyChecksum(key, r, 'mod', hashGoMod(data), res.source.id);
        // Checked and verified: answer now, and serve it from memory to this process's next
        // requests; the store write (fsync, rename) and the unlock go on behind the response.
        // Other processes wait on the lock until the file is in place.
        stored = true;
        this.d.memory.set(key, this.entry(kind, data, { mtimeMs: Date.now() }));
        this.track(this.store(kind, key, r.mod, data).finally(() => lock.release()));
        return { entry: this.entry(kind, data, { mtimeMs: Date.now() }, 'miss'), source: res.source.id };
      } finally {
        if (!stored) await lock.release();
      }
    }
    throw new ProxyError('unavailable', `another gomodproxy process kept failing to fetch ${r.mod.path}@${r.version.version}; retry`);
  }

  /** Another process holds the lock: wait for its result, or for it to give up. */
  private async waitForOther(key: string, lockFile: string, kind: 'info' | 'mod'): Promise<{ entry: ArtifactEntry; source: string } | null> {
    for (;;) {
      const got = await this.d.store.getBuffer(key, MAX_GOMOD_BYTES);
      if (got) return { entry: this.entry(kind, got.data, got.stat, 'miss'), source: 'another gomodproxy process' };
      if (!(await this.locks.isHeld(lockFile))) {
        const again = await this.d.store.getBuffer(key, MAX_GOMOD_BYTES);
        return again ? { entry: this.entry(kind, again.data, again.stat, 'miss'), source: 'another gomodproxy process' } : null;
      }
      await new Promise((res) => setTimeout(res, 20));
    }
  }

  private async serveZipMiss(ex: Exchange, r: ArtifactRequest, key: string, ctx: FetchContext): Promise<void> {
    let flight = this.zips.get(key);
    if (!flight) flight = this.startZip(r, key, ctx);
    const view = await flight.view;
    ex.source = flight.source;
    // Headers wait for the first sendable byte: a zip refused before then (small zips are held
    // back whole) still gets its one-line error instead of a cut connection.
    while (view.state() === 'streaming' && view.available() === 0) await view.changed();
    if (view.state() === 'failed') throw view.error() ?? new ProxyError('upstream', `fetching ${r.mod.path}@${r.version.version}.zip failed`);
    const size = view.size();
    const headers = ['Content-Type', contentTypes.zip, 'Cache-Control', this.cacheControl, CACHE_HEADER, 'miss'];
    if (size !== undefined) headers.push('Content-Length', String(size));
    ex.res.writeHead(200, headers);
    if (ex.isHead) {
      ex.res.end();
      ex.finish(200, 0);
      return;
    }
    let closed = false;
    ex.res.once('close', () => {
      closed = true;
    });
    let sent = 0;
    try {
      for await (const chunk of readStaged(view, () => closed || ex.res.destroyed)) {
        sent += chunk.length;
        if (!ex.res.write(chunk)) await drained(ex);
      }
      if (closed || ex.res.destroyed) {
        ex.finish(499, sent);
        return;
      }
      ex.res.end();
      ex.finish(200, sent);
    } catch (err) {
      sendError(ex, err, this.d.log, sent);
    }
  }

  private startZip(r: ArtifactRequest, key: string, ctx: FetchContext): ZipFlight {
    let resolve!: (v: StagingView) => void;
    let reject!: (e: unknown) => void;
    const view = new Promise<StagingView>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    view.catch(() => undefined);
    const flight: ZipFlight = { view, source: undefined };
    this.zips.set(key, flight);
    this.d.metrics.inflightFetches.inc();
    this.fetchZip(r, key, ctx, flight, resolve)
      .catch((err: unknown) => reject(err))
      .finally(() => {
        this.zips.delete(key);
        this.d.metrics.inflightFetches.dec();
      });
    return flight;
  }

  /**
   * Leads the fetch (we got the lock) or follows the process that has it. `ready` is called
   * as soon as readers can start; the fetch then goes on whatever they do.
   */
  private async fetchZip(r: ArtifactRequest, key: string, ctx: FetchContext, flight: ZipFlight, ready: (v: StagingView) => void): Promise<void> {
    const store = this.d.store;
    const finalPath = store.localPath(key);
    const staging = store.stagingPath(key);
    const lockFile = this.lockFile(key);
    const what = `${r.mod.path}@${r.version.version}.zip`;
    for (let attempt = 0; attempt < 3; attempt++) {
      const lock = await this.locks.tryAcquire(lockFile);
      if (attempt > 0) await new Promise((res) => setTimeout(res, 25 * attempt));
      if (!lock) {
        const view = new ForeignView(staging, finalPath, async () => {
          const st = await store.head(key);
          if (st) return { committedSize: st.size, lockHeld: false };
          const held = await this.locks.holder(lockFile);
          return { committedSize: null, lockHeld: held !== null, expectedSize: held?.info?.size };
        }, what);
        await view.refresh();
        // Wait until the other process streams, commits or fails; if it fails before sending anything, take over.
        while (view.state() === 'streaming' && !(await exists(staging))) await view.changed();
        if (view.state() === 'failed') continue;
        flight.source = 'another gomodproxy process';
        ready(view);
        while (view.state() === 'streaming') await view.changed();
        return;
      }
      const local = new LocalView(staging, finalPath);
      let fh: FileHandle | undefined;
      let started = false;
      let releaseSlot: (() => void) | undefined;
      let checker: StreamingZipCheck | undefined;
      try {
        const existing = await store.head(key);
        if (existing) {
          flight.source = 'cache';
          local.commit(existing.size);
          ready(local);
          return;
        }
        // Ask the checksum database while the upstream answers: if it cannot vouch for this
        // version, the client gets that reason as a clean error before a single byte is sent.
        const recorded = this.checksumLookup(r);
        // The requesting client's fetch slot is held until the zip is in, not while clients read it.
        releaseSlot = ctx.fetchSlot ? await ctx.fetchSlot() : undefined;
        const res = await r.route.chain.run('zip', (s) => s.zip(r.mod, r.version, ctx));
        flight.source = res.source.id;
        const body = res.value;
        const lookupError = await recorded;
        if (lookupError) {
          discard(body.stream);
          throw lookupError;
        }
        local.setSize(body.size);
        if (body.size !== undefined) await lock.update({ size: body.size });
        fh = await open(staging, 'w', 0o644);
        started = true;
        ready(local);
        let written = 0;
        // The zip is checked (and hashed) as it arrives, so little is left to do after its last byte.
        checker = new StreamingZipCheck(r.mod.path, r.version.version);
        try {
          for await (const chunk of body.stream) {
            const buf = chunk as Buffer;
            written += buf.length;
            if (written > MAX_ZIP_BYTES) {
              discard(body.stream);
              throw this.reject(key, 'zip', new ProxyError('upstream', `upstream ${res.source.id} sent more than 500 MiB for ${what}, over the go command's limit; gomodproxy did not cache it`), 'too-large');
            }
            await Promise.all([fh.write(buf), checker.push(buf)]);
            local.progress(written);
          }
        } catch (err) {
          if (err instanceof ZipError) {
            discard(body.stream);
            throw this.reject(key, 'zip', new ProxyError('upstream', `upstream ${res.source.id} sent an invalid zip for ${r.mod.path}@${r.version.version}: ${err.message}; gomodproxy did not cache it`), 'invalid-zip');
          }
          if (err instanceof ProxyError) throw err;
          const pe = streamError(err, res.source.id, what, written, body.size);
          res.reportFailure(pe);
          throw pe;
        }
        if (body.size !== undefined && written !== body.size) {
          const pe = streamError(new Error('short body'), res.source.id, what, written, body.size);
          res.reportFailure(pe);
          throw pe;
        }
        await fh.close();
        fh = undefined;
        let h1: string;
        try {
          h1 = (await checker.finish(staging)).h1;
        } catch (err) {
          if (!(err instanceof ZipError)) throw err;
          throw this.reject(key, 'zip', new ProxyError('upstream', `upstream ${res.source.id} sent an invalid zip for ${r.mod.path}@${r.version.version}: ${err.message}; gomodproxy did not cache it`), 'invalid-zip');
        }
        await this.verifyChecksum(key, r, 'zip', h1, res.source.id);
        let stat: BlobStat;
        try {
          await store.put(zipHashKey(r.mod.escaped, r.version.escaped), Buffer.from(h1));
          stat = await store.putFile(key, staging);
        } catch (err) {
          // Good bytes that could not be stored (a full disk): the clients reading them still get them whole.
          local.release(written);
          throw err;
        }
        local.commit(stat.size);
      } catch (err) {
        const pe = err instanceof ProxyError ? err : new ProxyError('internal', `fetching ${what} failed: ${errorMessage(err)}`, { cause: err });
        if (!(err instanceof ProxyError)) this.d.log.error({ err, key }, 'zip fetch failed');
        if (started) local.fail(pe);
        else throw pe;
      } finally {
        releaseSlot?.();
        if (local.state() !== 'committed') checker?.abort();
        await fh?.close().catch(() => undefined);
        if (local.state() !== 'committed') await rm(staging, { force: true }).catch(() => undefined);
        await lock.release();
      }
      return;
    }
    throw new ProxyError('unavailable', `another gomodproxy process kept failing to fetch ${what}; retry`);
  }

  /** Starts the checksum database lookup for a public module; settles with its failure, if any, never rejecting. */
  private checksumLookup(r: ArtifactRequest): Promise<ProxyError | null> {
    const sumdb = this.d.sumdb;
    if (!r.route.sumdb || !sumdb?.checks(r.mod.path)) return Promise.resolve(null);
    return sumdb.recorded(r.mod, r.version.version).then(
      () => null,
      (err: unknown) => (err instanceof ProxyError ? err : new ProxyError('upstream', String(err))),
    );
  }

  /** Public modules only: the h1 must equal the checksum database's record, or nothing is stored. */
  private async verifyChecksum(key: string, r: ArtifactRequest, kind: 'mod' | 'zip', h1: string, sourceId: string): Promise<void> {
    const sumdb = this.d.sumdb;
    if (!r.route.sumdb || !sumdb?.checks(r.mod.path)) return;
    try {
      await sumdb.verify(r.mod, r.version.version, kind, h1, sourceId);
    } catch (err) {
      if (err instanceof ChecksumMismatch) throw this.reject(key, kind, err, 'checksum-mismatch');
      throw err;
    }
  }

  /**
   * Keeps <module>/@v/list as the go command's download cache does (the versions that have a
   * .mod), so the data folder stays a valid file:// GOPROXY. Serialized per module and across
   * processes, off the request path.
   */
  rewriteLocalList(mod: ModuleRef): void {
    const prev = this.listRewrites.get(mod.escaped) ?? Promise.resolve();
    const next = prev
      .then(() => writeLocalList(this.d.store, this.locks, mod))
      .catch((err: unknown) => this.d.log.warn({ err, module: mod.path }, 'could not rewrite the local version list'))
      .finally(() => {
        if (this.listRewrites.get(mod.escaped) === next) this.listRewrites.delete(mod.escaped);
      });
    this.listRewrites.set(mod.escaped, next);
  }

  /** Versions with a cached .mod, sorted as Go sorts them. */
  localVersions(mod: ModuleRef): Promise<string[]> {
    return localVersions(this.d.store, mod);
  }

  /** Settles when every fetch in flight has (for graceful shutdown). */
  async drain(): Promise<void> {
    await Promise.allSettled([...this.zips.values()].map((f) => f.view));
    await this.small.drain();
    await Promise.allSettled([...this.background]);
    await Promise.allSettled([...this.listRewrites.values()]);
  }
}

function streamError(err: unknown, sourceId: string, what: string, written: number, size: number | undefined): ProxyError {
  const code = (err as { code?: string }).code;
  const of = size !== undefined ? ` of ${size}` : '';
  if (code === 'UND_ERR_BODY_TIMEOUT') {
    return new ProxyError('timeout', `upstream ${sourceId} stalled after ${written}${of} bytes of ${what}; gomodproxy did not cache it; retry later`, { cause: err });
  }
  return new ProxyError('upstream', `upstream ${sourceId} broke off after ${written}${of} bytes of ${what}; gomodproxy did not cache it; retry later`, { cause: err });
}

async function exists(file: string): Promise<boolean> {
  try {
    const fh = await open(file, 'r');
    await fh.close();
    return true;
  } catch {
    return false;
  }
}

async function collect(stream: NodeJS.ReadableStream, size: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks, size);
}

function drained(ex: Exchange): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      ex.res.off('drain', done);
      ex.res.off('close', done);
      resolve();
    };
    ex.res.on('drain', done);
    ex.res.on('close', done);
  });
}

/** Streams a stored blob to the client; stops reading when the client goes away. */
async function pipeToClient(ex: Exchange, stream: Readable, log: Logger): Promise<void> {
  let sent = 0;
  let closed = false;
  ex.res.once('close', () => {
    closed = true;
  });
  try {
    for await (const chunk of stream) {
      if (closed) break;
      sent += (chunk as Buffer).length;
      if (!ex.res.write(chunk)) await drained(ex);
    }
  } catch (err) {
    sendError(ex, err, log, sent);
    return;
  } finally {
    discard(stream);
  }
  if (closed || ex.res.destroyed) {
    ex.finish(499, sent);
    return;
  }
  ex.res.end();
  ex.finish(200, sent);
}

