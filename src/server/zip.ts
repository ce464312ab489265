// Misses of .zip: one fetch per key (a flight in this process; the key's lock across processes)
// streams into a staging file that every client reads as it grows, while the zip is checked and
// hashed; the checksum database is asked while the upstream answers; only then is it committed.
// Everything that can refuse a zip before its first byte is sent (not found, the database, room
// on the disk, a zip small enough to be held back whole) does so with one line instead of a 200.
import type { Logger } from 'pino';
import { storageError, storageFailureOf, type BlobStat, type BlobStore, type BlobWrite } from '../cache/blobstore.js';
import { zipHashKey } from '../cache/keys.js';
import { ForeignView, LocalView, StagedReader, type OpenCommitted, type StagingView } from '../cache/staging.js';
import type { Coordination, FetchLock } from '../cluster/coordination.js';
import { ProxyError, errorMessage } from '../errors.js';
import { StreamingZipCheck, ZipError } from '../modzip/index.js';
import { MAX_ZIP_BYTES, type FetchContext, discard } from '../sources/index.js';
import type { ArtifactRequest, StoreListener } from './artifact.js';
import type { Metrics } from './metrics.js';
import type { Misses } from './misses.js';
import type { Claim, StorageSpace } from './space.js';
import { CACHE_HEADER, contentTypes, sendError, type Exchange } from './respond.js';
import { sendFromSource } from './send.js';

export interface ZipFetchDeps {
  store: BlobStore;
  coordination: Coordination;
  metrics: Metrics;
  log: Logger;
  space: StorageSpace;
  misses: Misses;
  cacheControl: string;
  /** How long a miss waits for another instance's fetch of the same zip before fetching it itself. */
  followTimeoutMs: number;
  /** Told of the commit. */
  onStore?: StoreListener | undefined;
}

interface ZipFlight {
  /** Resolves when readers can start (long before the fetch ends), or rejects if it fails first. */
  view: Promise<StagingView>;
  source: string | undefined;
  /** Settles when the fetch has ended: committed or given up, staging file removed, lock released. */
  done: Promise<void>;
  /**
   * The fetch has failed and is only cleaning up: a client arriving now waits for it to end and
   * starts a fetch of its own, rather than being handed a failure it did not witness.
   */
  failed: boolean;
}

const OTHER_PROCESS = 'another gomodproxy process';

/** Bytes of a zip read from the upstream but not yet in the staging file, at most. */
const WRITE_BEHIND_BYTES = 1 << 20;

/** A lock for a fetch made without one: another instance's fetch outlasted followTimeout. */
const NO_LOCK: FetchLock = { token: 0, update: () => Promise.resolve(), stillHeld: () => Promise.resolve(true), release: () => Promise.resolve() };

export class ZipFetches {
  private readonly flights = new Map<string, ZipFlight>();

  constructor(private readonly d: ZipFetchDeps) {}

  /** Joins (or starts) the fetch of key and streams it to this client. */
  async serve(ex: Exchange, r: ArtifactRequest, key: string, ctx: FetchContext): Promise<void> {
    let flight = this.flights.get(key);
    if (flight?.failed) {
      await flight.done;
      flight = this.flights.get(key);
    }
    flight ??= this.start(r, key, ctx);
    const view = await flight.view;
    ex.source = flight.source;
    // Headers wait for the first sendable byte: a zip refused before then (small zips are held
    // back whole) still gets its one-line error instead of a cut connection.
    while (view.state() === 'streaming' && view.available() === 0) await view.changed();
    if (view.state() === 'failed') throw view.error() ?? new ProxyError('upstream', `fetching ${r.mod.path}@${r.version.version}.zip failed`);
    const size = view.size();
    const headers = ['Content-Type', contentTypes.zip, 'Cache-Control', this.d.cacheControl, CACHE_HEADER, 'miss'];
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
    const progress = { sent: 0 };
    const stop = (): boolean => closed || ex.res.destroyed;
    const reader = new StagedReader(view, stop);
    try {
      const sent = await sendFromSource(ex.res, reader, stop, progress);
      if (stop()) {
        ex.finish(499, sent);
        return;
      }
      ex.res.end();
      ex.finish(200, sent);
    } catch (err) {
      sendError(ex, err, this.d.log, progress.sent);
    } finally {
      await reader.close();
    }
  }

  /** Settles when every fetch in flight has ended (not merely started streaming to its readers). */
  async drain(): Promise<void> {
    await Promise.allSettled([...this.flights.values()].map((f) => f.done));
  }

  private start(r: ArtifactRequest, key: string, ctx: FetchContext): ZipFlight {
    let resolve!: (v: StagingView) => void;
    let reject!: (e: unknown) => void;
    const view = new Promise<StagingView>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    view.catch(() => undefined);
    const flight: ZipFlight = { view, source: undefined, done: Promise.resolve(), failed: false };
    this.flights.set(key, flight);
    this.d.metrics.inflightFetches.inc();
    flight.done = this.fetch(r, key, ctx, flight, resolve)
      .catch((err: unknown) => {
        flight.failed = true;
        reject(err);
      })
      .finally(() => {
        this.flights.delete(key);
        this.d.metrics.inflightFetches.dec();
      });
    return flight;
  }

  /**
   * Leads the fetch (we got the lock) or follows the process that has it. `ready` is called
   * as soon as readers can start; the fetch then goes on whatever they do.
   */
  private async fetch(r: ArtifactRequest, key: string, ctx: FetchContext, flight: ZipFlight, ready: (v: StagingView) => void): Promise<void> {
    const what = `${r.mod.path}@${r.version.version}.zip`;
    for (let attempt = 0; attempt < 3; attempt++) {
      if (attempt > 0) {
        await new Promise((res) => setTimeout(res, 25 * attempt));
        // The process we followed may have given up with an answer worth repeating.
        const remembered = this.d.misses.rememberedError(key);
        if (remembered) throw remembered;
      }
      let lock: FetchLock | null;
      try {
        lock = await this.d.coordination.tryLock(key);
      } catch (err) {
        // Not even a lock file fits: the zip could not be stored either.
        throw this.storageFailure(err, key, 'cannot take the fetch lock');
      }
      if (!lock) {
        const followed = await this.follow(key, what, flight, ready);
        if (followed === 'done') return;
        if (followed === 'gave-up') continue;
        // The other instance is still at it after followTimeout: fetch it here too (the same bytes).
        this.d.log.warn({ key, waitedMs: this.d.followTimeoutMs }, 'another instance is still fetching a zip; fetching it here too');
        lock = NO_LOCK;
      }
      try {
        await this.lead(r, key, ctx, lock, flight, ready);
      } finally {
        await lock.release();
      }
      return;
    }
    throw new ProxyError('unavailable', `${OTHER_PROCESS} kept failing to fetch ${what}; retry`);
  }

  private opener(key: string): OpenCommitted {
    return (start) => this.d.store.get(key, start > 0 ? { start } : undefined);
  }

  /**
   * Reads the fetch another process leads: on this host through its staging file as it grows;
   * on another host, once it is committed. 'gave-up' if the leader let go without committing,
   * 'waiting' if it is still at it after followTimeout.
   */
  private async follow(key: string, what: string, flight: ZipFlight, ready: (v: StagingView) => void): Promise<'done' | 'gave-up' | 'waiting'> {
    const store = this.d.store;
    const committed = async (): Promise<boolean> => {
      const st = await store.head(key);
      if (!st) return false;
      flight.source = 'cache';
      const view = new LocalView(undefined, this.opener(key), what);
      view.commit(st.size);
      ready(view);
      return true;
    };
    for (;;) {
      if (await committed()) return 'done';
      const held = await this.d.coordination.holder(key);
      if (!held) return (await committed()) ? 'done' : 'gave-up';
      if (held.host !== undefined && held.host !== this.d.coordination.host) {
        await this.d.coordination.released(key, this.d.followTimeoutMs);
        if (await committed()) return 'done';
        return (await this.d.coordination.holder(key)) ? 'waiting' : 'gave-up';
      }
      if (held.staging !== undefined) return this.followStaging(key, held.staging, what, flight, ready);
      // The holder has not begun writing yet (it is asking its upstream).
      await new Promise((res) => setTimeout(res, 20));
    }
  }

  /** Follows a staging file of this host as it grows. */
  private async followStaging(key: string, staging: string, what: string, flight: ZipFlight, ready: (v: StagingView) => void): Promise<'done' | 'gave-up'> {
    const store = this.d.store;
    const view = new ForeignView(
      staging,
      this.opener(key),
      async () => {
        const st = await store.head(key);
        if (st) return { committedSize: st.size, lockHeld: false };
        const held = await this.d.coordination.holder(key);
        return { committedSize: null, lockHeld: held !== null, expectedSize: held?.size };
      },
      what,
    );
    await view.refresh();
    // Wait until the other process has a byte its readers may send, commits or fails: if it fails
    // before that (even with its staging file still there), no reader of ours has had anything, so take over.
    while (view.state() === 'streaming' && view.available() === 0) await view.changed();
    if (view.state() === 'failed') return 'gave-up';
    flight.source = OTHER_PROCESS;
    ready(view);
    while (view.state() === 'streaming') await view.changed();
    return 'done';
  }

  private async lead(r: ArtifactRequest, key: string, ctx: FetchContext, lock: FetchLock, flight: ZipFlight, ready: (v: StagingView) => void): Promise<void> {
    const store = this.d.store;
    const what = `${r.mod.path}@${r.version.version}.zip`;
    const local = new LocalView(undefined, this.opener(key), what);
    let write: BlobWrite | undefined;
    let started = false;
    let releaseSlot: (() => void) | undefined;
    let checker: StreamingZipCheck | undefined;
    let claim: Claim | undefined;
    /** The staging file's writes in flight (never rejects: a failure is kept in appendError). */
    let appending: Promise<void> = Promise.resolve();
    let appendError: ProxyError | undefined;
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
      const recorded = this.d.misses.checksumLookup(r);
      // The requesting client's fetch slot is held until the zip is in, not while clients read it.
      releaseSlot = ctx.fetchSlot ? await ctx.fetchSlot() : undefined;
      let res;
      try {
        res = await r.route.chain.run('zip', (s) => s.zip(r.mod, r.version, ctx));
      } catch (err) {
        throw this.d.misses.learn(key, err);
      }
      flight.source = res.source.id;
      const body = res.value;
      // Nothing reads the body until the checks below are done and the staging file is open; a
      // stream error meanwhile must not be an unheard 'error' event (an uncaught exception). The
      // read loop still sees it: iterating an errored stream throws its error.
      body.stream.on('error', () => undefined);
      const lookupError = await recorded;
      if (lookupError) {
        discard(body.stream);
        throw lookupError;
      }
      // Room for the whole zip (its Content-Length, else the largest the go command accepts) is
      // claimed before any client has headers: a disk too full is a clean 507, not a cut 200.
      try {
        claim = await this.d.space.claim(body.size ?? MAX_ZIP_BYTES, what);
      } catch (err) {
        discard(body.stream);
        throw err;
      }
      local.setSize(body.size);
      try {
        write = await store.beginWrite(key);
      } catch (err) {
        discard(body.stream);
        throw this.storageFailure(err, key, 'cannot begin storing the zip');
      }
      local.setStaging(write.stagingFile);
      // For followers on this host, which poll the lock; nothing here waits for it (release does).
      void lock.update({ size: body.size, staging: write.stagingFile });
      started = true;
      ready(local);
      let written = 0;
      // The zip is checked (and hashed) as it arrives, so little is left to do after its last byte.
      checker = new StreamingZipCheck(r.mod.path, r.version.version);
      const out = write;
      // Writes to the staging file go on behind the reading and checking, one at a time and in
      // order: waiting for each before taking the next chunk cost a thread-pool round trip per
      // 64 KiB. Readers are told of bytes once they are in the file; a failed write ends the fetch.
      let durable = 0;
      const queue = (buf: Buffer, end: number): void => {
        appending = appending.then(async () => {
          if (appendError !== undefined) return;
          try {
            await out.append(buf);
          } catch (err) {
            appendError = this.storageFailure(err, key, 'writing the zip failed');
            return;
          }
          durable = end;
          local.progress(end);
        });
      };
      try {
        for await (const chunk of body.stream) {
          const buf = chunk as Buffer;
          written += buf.length;
          if (written > MAX_ZIP_BYTES) {
            discard(body.stream);
            throw this.d.misses.refuse(
              key,
              'zip',
              new ProxyError(
                'upstream',
                `upstream ${res.source.id} sent more than 500 MiB for ${what}, over the go command's limit; gomodproxy did not cache it`,
              ),
              'too-large',
            );
          }
          queue(buf, written);
          await checker.push(buf);
          if (written - durable > WRITE_BEHIND_BYTES) await appending;
          if (appendError !== undefined) throw appendError;
        }
        await appending;
        if (appendError !== undefined) throw appendError;
      } catch (err) {
        discard(body.stream);
        if (err instanceof ZipError) throw this.invalidZip(key, res.source.id, r, err);
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
      let h1: string;
      try {
        h1 = (await checker.finish(write.stagingFile)).h1;
      } catch (err) {
        if (!(err instanceof ZipError)) throw err;
        throw this.invalidZip(key, res.source.id, r, err);
      }
      await this.d.misses.verifyChecksum(key, r, 'zip', h1, res.source.id);
      // Whatever happened meanwhile (our lock expired while we stalled, and a newer holder was
      // quicker), a commit already in place stands: immutable means never replaced.
      const already = await store.head(key);
      if (already) {
        this.d.log.warn({ key, token: lock.token, stillHeld: await lock.stillHeld() }, 'the zip was committed by another holder meanwhile; keeping that one');
        local.commit(already.size);
        return;
      }
      if (!(await lock.stillHeld())) this.d.log.warn({ key, token: lock.token }, 'our fetch lock expired before the commit; committing, as nobody else has');
      // The .ziphash and the zip are stored side by side (each write ends in an fsync, and clients
      // wait for the commit): a zip whose .ziphash is missing is hashed again where it is needed.
      const hashKey = zipHashKey(r.mod.escaped, r.version.escaped);
      const [hashed, committed] = await Promise.allSettled([store.put(hashKey, Buffer.from(h1)), write.commit()]);
      if (committed.status === 'rejected') {
        // Good bytes that could not be stored (a full disk): the clients reading them still get them whole;
        // the tail is held back until the commit so that a client that has all of it finds it stored.
        local.release(written);
        if (hashed.status === 'fulfilled') await store.delete(hashKey).catch(() => undefined);
        throw this.storageFailure(committed.reason, key, 'storing the zip failed');
      }
      if (hashed.status === 'rejected') this.storageFailure(hashed.reason, hashKey, 'storing the hash of a stored zip failed');
      const stat: BlobStat = committed.value;
      local.commit(stat.size);
      this.d.onStore?.(r.mod, r.version.version, 'zip', stat.size, res.source.id);
    } catch (err) {
      const pe = err instanceof ProxyError ? err : new ProxyError('internal', `fetching ${what} failed: ${errorMessage(err)}`, { cause: err });
      if (!(err instanceof ProxyError)) this.d.log.error({ err, key }, 'zip fetch failed');
      flight.failed = true;
      if (started) local.fail(pe);
      else throw pe;
    } finally {
      releaseSlot?.();
      claim?.release();
      if (local.state() !== 'committed') checker?.abort();
      // A write still in flight must end before its file is closed and removed.
      await appending;
      if (local.state() !== 'committed') await write?.abort();
    }
  }

  private invalidZip(key: string, sourceId: string, r: ArtifactRequest, err: ZipError): ProxyError {
    return this.d.misses.refuse(
      key,
      'zip',
      new ProxyError(
        'upstream',
        `upstream ${sourceId} sent an invalid zip for ${r.mod.path}@${r.version.version}: ${err.message}; gomodproxy did not cache it`,
      ),
      'invalid-zip',
    );
  }

  /** A write of ours failed: logged and counted against storage, never against the upstream. */
  private storageFailure(err: unknown, key: string, what: string): ProxyError {
    const pe = storageError(err, 'write');
    this.d.metrics.storageErrors.labels('write', storageFailureOf(err)).inc();
    this.d.log.error({ key, err: errorMessage(err) }, `${what}: ${pe.message}`);
    return pe;
  }
}

function streamError(err: unknown, sourceId: string, what: string, written: number, size: number | undefined): ProxyError {
  const code = (err as { code?: string }).code;
  const of = size !== undefined ? ` of ${size}` : '';
  if (code === 'UND_ERR_BODY_TIMEOUT') {
    return new ProxyError(
      'timeout',
      `upstream ${sourceId} stalled: silent for longer than timeouts.idle after ${written}${of} bytes of ${what}; gomodproxy did not cache it; retry later, or raise timeouts.idle if the upstream is just slow`,
      { cause: err },
    );
  }
  return new ProxyError('upstream', `upstream ${sourceId} broke off after ${written}${of} bytes of ${what}; gomodproxy did not cache it; retry later`, {
    cause: err,
  });
}
