// Where artifacts live. Keys are slash-separated relative paths in the layout of the go
// command's download cache (<escaped module>/@v/<escaped version>.zip), so a disk store's
// folder is itself a valid file:// GOPROXY. Every store must pass test/cache/compliance.ts.
import type { Readable } from 'node:stream';
import { ProxyError } from '../errors.js';

export interface BlobStat {
  size: number;
  /** Strong validator: changes whenever the stored bytes could differ. Quoted, ready for the ETag header. */
  etag: string;
  /** When the blob was stored (ms since epoch); mutable answers use it as their fetch time. */
  mtimeMs: number;
}

export interface ListedBlob {
  key: string;
  size: number;
  mtimeMs: number;
}

export interface BlobReader extends BlobStat {
  /** The blob's bytes. The caller must consume or destroy it (or not touch it and call close()). */
  readonly stream: Readable;
  /**
   * Reads up to buf.length bytes at `position` into buf, resolving with how many (0 at the end),
   * where the store can read by position (a file): the caller then decides how much is read
   * ahead and which buffers are reused. A caller that reads this way calls close() when done.
   */
  read?(buf: Buffer, position: number): Promise<number>;
  /** Lets go of the blob when its stream was not (fully) consumed. Safe to call more than once. */
  close(): Promise<void>;
}

export interface BlobStore {
  /** For logs and metrics: "fs:/var/lib/gomodproxy", "s3://bucket/prefix". */
  readonly description: string;
  head(key: string): Promise<BlobStat | null>;
  /** The blob's bytes, from `start` when given (a follower that has sent the first bytes already). */
  get(key: string, opts?: { start?: number }): Promise<BlobReader | null>;
  /** Reads a whole blob, refusing ones larger than maxBytes (null as if absent is wrong: it throws). */
  getBuffer(key: string, maxBytes: number): Promise<{ stat: BlobStat; data: Buffer } | null>;
  /** Atomic: readers see the old blob, no blob, or all of the new one; never a part. */
  put(key: string, data: Uint8Array): Promise<BlobStat>;
  /**
   * Starts a blob whose bytes arrive over time (a zip streaming in from an upstream). They are
   * staged in a local file that readers on this host follow as it grows, and (object stores)
   * uploaded as they come; nothing of the blob is visible to anyone before commit(), and
   * nothing ever after abort().
   */
  beginWrite(key: string): Promise<BlobWrite>;
  delete(key: string): Promise<boolean>;
  /** Keys under a prefix ("" for all), in no particular order. */
  list(prefix: string): AsyncIterable<string>;
  /** The same, with each blob's size and store time (for the module index and garbage collection). */
  listStats(prefix: string): AsyncIterable<ListedBlob>;
  /**
   * The names of the folders directly under a prefix ("" for the top), for stores that have
   * folders (a disk): a walk over module data can then pass by what is not (the git cache).
   */
  listFolders?(prefix: string): AsyncIterable<string>;
  /**
   * Removes the empty folders under a prefix, deepest first, the prefix's own included but never
   * the store's root; resolves with how many. A writer that finds its folder gone makes it again.
   */
  removeEmptyFolders?(prefix: string): Promise<number>;
  /** Can the store accept writes now? For /readyz. */
  checkWritable(): Promise<void>;
  /** Bytes it can still take (stores that can tell: a disk). */
  freeBytes?(): Promise<number>;
  /** A URL that serves the blob directly for a while (object stores), for redirecting downloads. */
  presign?(key: string, expiresInSeconds: number): Promise<string>;
  /**
   * Removes what writers that died mid-write left in the store itself (incomplete multipart
   * uploads): those older than olderThanMs, and those whose key `isLive` says nobody writes now
   * (every live write holds its key's fetch lock). Resolves with how many.
   */
  removeAbandonedWrites?(olderThanMs: number, isLive?: (key: string) => Promise<boolean>): Promise<number>;
  /** Lets go of connection pools. */
  close?(): Promise<void>;
  /** Told of every failed read or write (the server counts them against storage, not an upstream). */
  onError?: ((op: 'read' | 'write', reason: StorageFailure) => void) | undefined;
}

/** A blob being written: see BlobStore.beginWrite. */
export interface BlobWrite {
  /** The local file holding the bytes appended so far. */
  readonly stagingFile: string;
  append(chunk: Buffer): Promise<void>;
  /** The bytes are whole and checked: they become the blob, atomically. */
  commit(): Promise<BlobStat>;
  /** Drops what was written; safe after a failed append or commit, and more than once. */
  abort(): Promise<void>;
}

/** Rejects keys that could escape the store's root: they are built from checked module paths, so this is a bug guard. */
export function assertSafeKey(key: string): void {
  if (
    key === '' ||
    key.startsWith('/') ||
    key.includes('\0') ||
    key.includes('\\') ||
    key.split('/').some((seg) => seg === '' || seg === '.' || seg === '..')
  ) {
    throw new Error(`unsafe blob key ${JSON.stringify(key)}`);
  }
}

/** Why a store operation failed, for the storage-error metric. */
export type StorageFailure = 'no-space' | 'permission' | 'io';

export function storageFailureOf(err: unknown): StorageFailure {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC' || code === 'EDQUOT') return 'no-space';
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') return 'permission';
  return 'io';
}

/** Storage trouble is ours, not the client's or the upstream's: 507 for a full disk, else 503, with the cause and the fix. */
export function storageError(err: unknown, op: 'read' | 'write'): ProxyError {
  if (err instanceof ProxyError) return err;
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new ProxyError(
      'insufficient-storage',
      'gomodproxy cannot store module data: its disk is full; nothing was cached; its operator must free space in the data folder, then retry',
      { cause: err },
    );
  }
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') {
    return new ProxyError('unavailable', `gomodproxy cannot ${op} its data folder (${code}); its operator must fix the folder's permissions`, { cause: err });
  }
  return new ProxyError('unavailable', `gomodproxy storage ${op} failed (${code ?? (err as Error).message}); retry, and tell its operator if it persists`, {
    cause: err,
  });
}
