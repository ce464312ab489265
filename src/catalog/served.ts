// When each artifact was last served, for garbage collection, kept off the hot path: a hit
// costs one Set.add of the key it already built. Every servedFlush a timer stamps that batch
// with the time and rewrites this process's own record in the store (state/served/<instance>-
// <host>-<pid>.json), so every process and instance, and the gc command, read the same times.
//
// The records would grow without end, so a garbage collection folds them: it merges every
// record into one (state/served.json, by the latest time per key), then leaves a marker beside
// each record it read saying up to when it folded it. The process that owns the record drops what
// the marker covers at its next flush and rewrites the rest, so a process keeps in memory only
// what it served since the last collection, and no stamp is lost to a race with the collector.
// Records of processes that died are folded like any other and then removed.
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import type { BlobStore } from '../cache/blobstore.js';
import { processAlive } from '../cluster/filelock.js';

export const SERVED_PREFIX = 'state/served/';
/** Every record folded by garbage collections so far. */
export const SERVED_FOLDED_KEY = 'state/served.json';
/** A record or the folded record is never this large unless something is wrong; refused, not read. */
export const MAX_SERVED_BYTES = 512 << 20;
const RECORD_SUFFIX = '.json';
const MARKER_SUFFIX = '.folded';

/** Whose record it is. */
export interface ServedOwner {
  instance: string;
  host: string;
  pid: number;
}

/** A record as stored. */
export interface ServedRecordFile {
  format: 1;
  owner: ServedOwner;
  /** The latest stamp in it (ms): what a fold of this very version of the record covers. */
  writtenMs: number;
  /** Store key -> when it was last served (ms since the epoch). */
  served: Record<string, number>;
}

/** What a collection left beside a record: everything stamped up to foldedMs is in the folded record. */
interface FoldMarker {
  format: 1;
  foldedMs: number;
}

export class ServedRecorder {
  /** The name of this process's record. */
  readonly key: string;
  private readonly markerKey: string;
  private pending = new Set<string>();
  private readonly stamps = new Map<string, number>();
  private lastStampMs = 0;
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly store: BlobStore,
    private readonly owner: ServedOwner,
    private readonly log?: Logger,
  ) {
    const name = `${owner.instance}-${owner.host}-${owner.pid}`.replace(/[^A-Za-z0-9._-]/g, '_');
    this.key = `${SERVED_PREFIX}${name}${RECORD_SUFFIX}`;
    this.markerKey = `${SERVED_PREFIX}${name}${MARKER_SUFFIX}`;
  }

  /** For this process: its instance id, host and pid. */
  static forProcess(store: BlobStore, instance: string, log?: Logger): ServedRecorder {
    return new ServedRecorder(store, { instance, host: hostname(), pid: process.pid }, log);
  }

  /** The hot path's whole cost of tracking: the key joins the batch the next flush stamps. */
  record(key: string): void {
    this.pending.add(key);
  }

  /** Whether key was served here since the last flush (what a collection has not read yet). */
  servedSinceFlush(key: string): boolean {
    return this.pending.has(key);
  }

  /** Flushes every `everyMs`, off any request's path; the timer never keeps the process alive. */
  start(everyMs: number): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      this.flush().catch((err: unknown) => this.log?.warn({ err: (err as Error).message }, 'could not write down which artifacts were served'));
    }, everyMs);
    this.timer.unref();
  }

  /** Stops the timer and writes down what is pending (graceful shutdown); a recorder never started writes nothing. */
  async stop(): Promise<void> {
    if (!this.timer) return;
    clearInterval(this.timer);
    this.timer = undefined;
    await this.flush();
  }

  /** Stamps the batch with the time and rewrites this process's record; one flush at a time. */
  flush(): Promise<void> {
    const next = this.flushing.then(() => this.flushOnce());
    // A failed flush must not wedge the next ones: its batch is already merged into the stamps.
    this.flushing = next.catch(() => undefined);
    return next;
  }

  private async flushOnce(): Promise<void> {
    const batch = this.pending;
    this.pending = new Set();
    if (batch.size > 0) {
      // Strictly increasing per process, so a fold "up to T" never covers a stamp made after it.
      const now = Math.max(Date.now(), this.lastStampMs + 1);
      for (const k of batch) this.stamps.set(k, now);
      this.lastStampMs = now;
    }
    let dropped = false;
    const marker = await this.store.getBuffer(this.markerKey, 4096);
    if (marker) {
      const foldedMs = parseMarker(marker.data);
      if (foldedMs !== null) {
        for (const [k, t] of this.stamps) {
          if (t <= foldedMs) {
            this.stamps.delete(k);
            dropped = true;
          }
        }
      }
      await this.store.delete(this.markerKey);
    }
    // A record removed by a collection in the instant it was rewritten comes back from memory.
    if (batch.size === 0 && !dropped && (this.stamps.size === 0 || (await this.store.head(this.key)) !== null)) return;
    if (this.stamps.size === 0) {
      await this.store.delete(this.key);
      return;
    }
    const file: ServedRecordFile = { format: 1, owner: this.owner, writtenMs: this.lastStampMs, served: Object.fromEntries(this.stamps) };
    await this.store.put(this.key, Buffer.from(JSON.stringify(file)));
  }
}

/** One record as a collection read it: to fold it, and to leave its marker. */
export interface ReadRecord {
  key: string;
  owner?: ServedOwner;
  writtenMs: number;
  /** The store's validator when read: a record rewritten since is not removed. */
  etag: string;
  mtimeMs: number;
}

/** Every record merged: the latest time each key was served, as far as any process wrote down. */
export interface ServedTimes {
  times: Map<string, number>;
  /** The per-process records read (the folded record aside). */
  records: ReadRecord[];
  /** Markers whose record is gone (their process consumed them, or died). */
  orphanMarkers: { key: string; mtimeMs: number }[];
  /** Records that could not be read or parsed, by key: skipped, never removed. */
  unreadable: string[];
}

/** Reads and merges every record and the folded one. */
export async function readServedTimes(store: BlobStore): Promise<ServedTimes> {
  const out: ServedTimes = { times: new Map(), records: [], orphanMarkers: [], unreadable: [] };
  const merge = (served: unknown): void => {
    if (!served || typeof served !== 'object') return;
    for (const [k, t] of Object.entries(served as Record<string, unknown>)) {
      if (typeof t !== 'number' || !Number.isFinite(t)) continue;
      if (t > (out.times.get(k) ?? -Infinity)) out.times.set(k, t);
    }
  };
  const folded = await readJson(store, SERVED_FOLDED_KEY).catch(() => null);
  if (folded) merge((folded.value as { served?: unknown }).served);
  const markers = new Map<string, number>();
  const recordKeys = new Set<string>();
  for await (const b of store.listStats(SERVED_PREFIX)) {
    if (b.key.endsWith(MARKER_SUFFIX)) markers.set(b.key, b.mtimeMs);
    else if (b.key.endsWith(RECORD_SUFFIX)) recordKeys.add(b.key);
  }
  for (const key of recordKeys) {
    const got = await readJson(store, key).catch(() => null);
    const v = got?.value as Partial<ServedRecordFile> | undefined;
    if (!got || !v || typeof v.writtenMs !== 'number') {
      out.unreadable.push(key);
      continue;
    }
    merge(v.served);
    const r: ReadRecord = { key, writtenMs: v.writtenMs, etag: got.etag, mtimeMs: got.mtimeMs };
    if (v.owner && typeof v.owner.host === 'string' && typeof v.owner.pid === 'number') r.owner = v.owner;
    out.records.push(r);
  }
  for (const [key, mtimeMs] of markers) {
    if (!recordKeys.has(`${key.slice(0, -MARKER_SUFFIX.length)}${RECORD_SUFFIX}`)) out.orphanMarkers.push({ key, mtimeMs });
  }
  return out;
}

export interface FoldOptions {
  /** Keys still in the store: the folded record keeps only those (what was evicted is forgotten). */
  keep: (key: string) => boolean;
  /** Markers nobody consumed for this long belong to processes that are gone. */
  markerTtlMs: number;
  now: number;
}

/**
 * Folds what readServedTimes read: the merged times (minus keys no longer stored) become the
 * folded record, written before anything is removed, then each record read gets its marker and
 * is removed unless it was rewritten since (its owner keeps what the marker does not cover).
 * Resolves with how many records it removed.
 */
export async function foldServedTimes(store: BlobStore, read: ServedTimes, o: FoldOptions): Promise<number> {
  const served: Record<string, number> = {};
  for (const [k, t] of read.times) if (o.keep(k)) served[k] = t;
  await store.put(SERVED_FOLDED_KEY, Buffer.from(JSON.stringify({ format: 1, foldedMs: o.now, served })));
  let removed = 0;
  for (const r of read.records) {
    // A process of this host that is gone will never read its marker.
    if (!(r.owner && r.owner.host === hostname() && !processAlive(r.owner.pid))) {
      const marker: FoldMarker = { format: 1, foldedMs: r.writtenMs };
      await store.put(`${r.key.slice(0, -RECORD_SUFFIX.length)}${MARKER_SUFFIX}`, Buffer.from(JSON.stringify(marker)));
    }
    const now = await store.head(r.key);
    if (now && now.etag === r.etag && (await store.delete(r.key))) removed++;
  }
  for (const m of read.orphanMarkers) if (o.now - m.mtimeMs > o.markerTtlMs) await store.delete(m.key);
  return removed;
}

async function readJson(store: BlobStore, key: string): Promise<{ value: unknown; etag: string; mtimeMs: number } | null> {
  const got = await store.getBuffer(key, MAX_SERVED_BYTES);
  if (!got) return null;
  return { value: JSON.parse(got.data.toString('utf8')) as unknown, etag: got.stat.etag, mtimeMs: got.stat.mtimeMs };
}

function parseMarker(data: Buffer): number | null {
  try {
    const v = JSON.parse(data.toString('utf8')) as Partial<FoldMarker>;
    return typeof v.foldedMs === 'number' ? v.foldedMs : null;
  } catch {
    return null;
  }
}
