// Immutable artifacts (.info, .mod, .zip of a canonical version): served from the cache, or
// fetched once per key across the processes sharing the store (Coordination), checked,
// committed atomically, and never replaced afterwards. This file is the hit path and the door
// to the misses: small.ts fetches .info and .mod, zip.ts fetches zips while clients read them.
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { artifactKey, zipHashKey } from '../cache/keys.js';
import { localVersions, writeLocalList } from '../cache/locallist.js';
import type { BlobReader, BlobStat, BlobStore } from '../cache/blobstore.js';
import type { MemoryCache } from '../cache/memory.js';
import type { ArtifactEntry, ArtifactRequest, StoreListener } from './artifact.js';
import { originBytes, originKey } from '../catalog/index.js';
import type { Coordination } from '../cluster/coordination.js';
import { escapeVersion } from '../module/index.js';
import { MAX_GOMOD_BYTES, MAX_INFO_BYTES, type FetchContext, type ModuleRef } from '../sources/index.js';
import type { Metrics } from './metrics.js';
import { Misses } from './misses.js';
import { offlineMiss } from './offline.js';
import { notPublished } from './publish.js';
import type { ArtifactKind } from './protocol.js';
import { SmallFetches } from './small.js';
import type { StorageSpace } from './space.js';
import type { SumdbService } from './sumdb.js';
import { CACHE_HEADER, contentTypes, etagMatches, httpDate, sendBody, sendError, type Exchange } from './respond.js';
import { sendFromSource } from './send.js';
import { ZipFetches } from './zip.js';

export type { ArtifactEntry, ArtifactRequest } from './artifact.js';

export interface ArtifactsDeps {
  store: BlobStore;
  coordination: Coordination;
  memory: MemoryCache<ArtifactEntry>;
  metrics: Metrics;
  log: Logger;
  space: StorageSpace;
  immutableMaxAgeMs: number;
  /** How long an upstream's not-found answer is remembered (0: never). */
  notFoundTtlMs: number;
  /** How long an upstream answer we refused is remembered (0: never). */
  refusedTtlMs: number;
  /** How long a zip miss waits for another instance's fetch of it before fetching it itself. */
  followTimeoutMs: number;
  /** Answer stored zips with a redirect to a URL of the store valid this long (s); null: send the bytes. */
  presignZipSeconds: number | null;
  /** Checks public modules' hashes against the checksum database before they are stored. */
  sumdb?: SumdbService | null;
  /** Serve the store only: a miss is a not-found that says how to add the version. */
  offline?: boolean;
  /** Told of every commit and removal (the module index, the other processes). */
  onStore?: StoreListener;
  /** Told of every hit from the store, for garbage collection's "last served" (one Set.add). */
  served?: { record(key: string): void };
}

export class Artifacts {
  readonly misses: Misses;
  private readonly small: SmallFetches;
  private readonly zips: ZipFetches;
  private readonly listRewrites = new Map<string, Promise<void>>();
  private readonly background = new Set<Promise<void>>();
  private readonly cacheControl: string;

  constructor(private readonly d: ArtifactsDeps) {
    this.cacheControl = `public, max-age=${Math.floor(d.immutableMaxAgeMs / 1000)}, immutable`;
    this.misses = new Misses(d);
    this.small = new SmallFetches({
      ...d,
      misses: this.misses,
      entry: (kind, data, stat, cache) => this.entry(kind, data, stat, cache),
      track: (p) => this.track(p),
      stored: (mod, version, kind, size, source) => {
        if (kind === 'mod') this.rewriteLocalList(mod);
        this.stored(mod, version, kind, size, source);
      },
    });
    this.zips = new ZipFetches({ ...d, misses: this.misses, cacheControl: this.cacheControl });
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

  /** After a memory miss: the store, else what a miss learnt before, else the upstreams. */
  async serve(ex: Exchange, r: ArtifactRequest, ctx: FetchContext): Promise<void> {
    const key = artifactKey(r.mod.escaped, r.version.escaped, r.kind);
    if (r.kind === 'zip') {
      if (await this.serveStoredZip(ex, key)) {
        this.d.served?.record(key);
        return;
      }
      if (this.d.offline) throw offlineMiss(`${r.mod.path}@${r.version.version}`, `${r.mod.path}@${r.version.version}`);
      if (r.route.publish) throw notPublished(`${r.mod.path}@${r.version.version}`);
      ex.cache = 'miss';
      this.misses.checkRemembered(ex, key);
      await this.zips.serve(ex, r, key, ctx);
      return;
    }
    const got = await this.d.store.getBuffer(key, r.kind === 'info' ? MAX_INFO_BYTES : MAX_GOMOD_BYTES);
    if (got) {
      ex.cache = 'hit';
      this.d.served?.record(key);
      const entry = this.entry(r.kind, got.data, got.stat);
      this.d.memory.set(key, entry);
      this.sendEntry(ex, entry);
      return;
    }
    if (this.d.offline) throw offlineMiss(`${r.mod.path}@${r.version.version}`, `${r.mod.path}@${r.version.version}`);
    // Nothing to fetch, and nothing to remember: the version may be published a moment from now.
    if (r.route.publish) throw notPublished(`${r.mod.path}@${r.version.version}`);
    ex.cache = 'miss';
    this.misses.checkRemembered(ex, key);
    const { entry, source } = await this.small.fetch(r, key, ctx);
    ex.source = source;
    this.sendEntry(ex, entry);
  }

  /** A stored zip: small ones go to memory for the next hit, large ones stream from the store (or are redirected to it). */
  private async serveStoredZip(ex: Exchange, key: string): Promise<boolean> {
    if (this.d.presignZipSeconds !== null && this.d.store.presign) {
      const st = await this.d.store.head(key);
      if (!st) return false;
      if (st.size > this.d.memory.maxItemBytes) {
        // The go command follows redirects: the bytes go from the store to the client, not through us.
        ex.cache = 'hit';
        const url = await this.d.store.presign(key, this.d.presignZipSeconds);
        ex.res.writeHead(302, ['Location', url, 'Cache-Control', 'no-store', 'Content-Length', '0', CACHE_HEADER, 'redirect']);
        ex.res.end();
        ex.finish(302, 0);
        return true;
      }
    }
    const blob = await this.d.store.get(key);
    if (!blob) return false;
    ex.cache = 'hit';
    if (blob.size <= this.d.memory.maxItemBytes) {
      const entry = this.entry('zip', await readWhole(blob), blob);
      this.d.memory.set(key, entry);
      this.sendEntry(ex, entry);
      return true;
    }
    const headers = [
      'Content-Type',
      contentTypes.zip,
      'Content-Length',
      String(blob.size),
      'ETag',
      blob.etag,
      'Last-Modified',
      httpDate(blob.mtimeMs),
      'Cache-Control',
      this.cacheControl,
      CACHE_HEADER,
      'hit',
    ];
    const notModified = etagMatches(ex.req.headers['if-none-match'], blob.etag);
    if (notModified || ex.isHead) {
      await blob.close();
      ex.res.writeHead(notModified ? 304 : 200, notModified ? headers.slice(4, 10) : headers);
      ex.res.end();
      ex.finish(notModified ? 304 : 200, 0);
      return true;
    }
    ex.res.writeHead(200, headers);
    await sendBlob(ex, blob, this.d.log);
    return true;
  }

  /**
   * Keeps the .info a query resolved to as that version's own (as the go command's cache does),
   * unless the version already has one: never replaced, and skipped while another fetch holds it.
   */
  adoptInfo(mod: ModuleRef, version: string, data: Buffer, source: string): void {
    const key = artifactKey(mod.escaped, escapeVersion(version), 'info');
    this.track(
      (async () => {
        const lock = await this.d.coordination.tryLock(key);
        if (!lock) return;
        try {
          if (!(await this.d.store.head(key))) {
            await this.d.store.put(key, data);
            this.stored(mod, version, 'info', data.length, source);
          }
        } finally {
          await lock.release();
        }
      })().catch((err: unknown) => this.d.log.warn({ key, err: (err as Error).message }, 'could not keep the .info of a resolved version')),
    );
  }

  /**
   * An .info or .mod was committed: where the version came from is kept beside it (with its
   * .info, which every version has), and the listener hears of it.
   */
  private stored(mod: ModuleRef, version: string, kind: 'info' | 'mod', size: number, source: string): void {
    if (kind === 'info') {
      const key = originKey(mod.escaped, escapeVersion(version));
      const origin = originBytes({ source, at: new Date().toISOString() });
      this.track(
        this.d.store.put(key, origin).then(
          () => undefined,
          (err: unknown) => this.d.log.warn({ key, err: (err as Error).message }, 'could not record where a version came from'),
        ),
      );
    }
    this.d.onStore?.(mod, version, kind, size, source);
  }

  /** Background work that graceful shutdown waits for. */
  private track(p: Promise<void>): void {
    this.background.add(p);
    void p.finally(() => this.background.delete(p));
  }

  /**
   * Keeps <module>/@v/list as the go command's download cache does (the versions that have a
   * .mod), so the data folder stays a valid file:// GOPROXY. Serialized per module and across
   * processes, off the request path.
   */
  rewriteLocalList(mod: ModuleRef): void {
    const prev = this.listRewrites.get(mod.escaped) ?? Promise.resolve();
    const next = prev
      .then(() => writeLocalList(this.d.store, this.d.coordination, mod))
      .catch((err: unknown) => this.d.log.warn({ err, module: mod.path }, 'could not rewrite the local version list'))
      .finally(() => {
        if (this.listRewrites.get(mod.escaped) === next) this.listRewrites.delete(mod.escaped);
      });
    this.listRewrites.set(mod.escaped, next);
  }

  /**
   * Removes a version from the store (.info, .mod, .zip and its hash), and rewrites its module's
   * list; the caller drops it from every memory (an invalidation with the version). Resolves with
   * the keys that were there. Public versions that come back are verified again, so they can only
   * come back with the same hashes.
   */
  async purge(mod: ModuleRef, version: string): Promise<string[]> {
    const ev = escapeVersion(version);
    const kinds = ['info', 'zip', 'mod'] as const;
    const gone: string[] = [];
    for (const kind of kinds) {
      const key = artifactKey(mod.escaped, ev, kind);
      this.d.memory.delete(key);
      if (await this.d.store.delete(key)) {
        gone.push(key);
        this.d.onStore?.(mod, version, kind, null);
      }
      if (kind === 'zip' && (await this.d.store.delete(zipHashKey(mod.escaped, ev)))) gone.push(zipHashKey(mod.escaped, ev));
    }
    if (await this.d.store.delete(originKey(mod.escaped, ev))) gone.push(originKey(mod.escaped, ev));
    if (gone.length > 0) this.rewriteLocalList(mod);
    return gone;
  }

  /** Versions with a cached .mod, sorted as Go sorts them. */
  localVersions(mod: ModuleRef): Promise<string[]> {
    return localVersions(this.d.store, mod);
  }

  /** Settles when every fetch in flight has (for graceful shutdown). */
  async drain(): Promise<void> {
    await this.zips.drain();
    await this.small.drain();
    await Promise.allSettled([...this.background]);
    await Promise.allSettled([...this.listRewrites.values()]);
  }
}

/** A blob's bytes in one buffer (small zips, kept in memory). */
async function readWhole(blob: BlobReader): Promise<Buffer> {
  if (!blob.read) {
    const chunks: Buffer[] = [];
    for await (const c of blob.stream) chunks.push(c as Buffer);
    return Buffer.concat(chunks, blob.size);
  }
  try {
    const data = Buffer.allocUnsafe(blob.size);
    let pos = 0;
    while (pos < blob.size) {
      const n = await blob.read(data.subarray(pos), pos);
      if (n === 0) break;
      pos += n;
    }
    return pos === blob.size ? data : data.subarray(0, pos);
  } finally {
    await blob.close();
  }
}

/** Resolves when the response can take more bytes, or is gone. */
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
async function sendBlob(ex: Exchange, blob: BlobReader, log: Logger): Promise<void> {
  let closed = false;
  ex.res.once('close', () => {
    closed = true;
  });
  const progress = { sent: 0 };
  let sent = 0;
  try {
    if (blob.read) {
      const read = blob.read;
      sent = await sendFromSource(ex.res, { read: (buf, pos) => read(buf, pos) }, () => closed || ex.res.destroyed, progress);
    } else {
      for await (const chunk of blob.stream) {
        if (closed) break;
        sent += (chunk as Buffer).length;
        if (!ex.res.write(chunk)) await drained(ex);
      }
    }
  } catch (err) {
    sendError(ex, err, log, Math.max(sent, progress.sent));
    return;
  } finally {
    await blob.close();
  }
  if (closed || ex.res.destroyed) {
    ex.finish(499, sent);
    return;
  }
  ex.res.end();
  ex.finish(200, sent);
}
