// An artifact that is streaming into the store. Whoever fetches it writes a staging file;
// every client (the one that caused the fetch included) reads that file as it grows, so the
// first bytes go out at once, a slow or vanished client never slows or cancels the fetch, and
// memory stays flat. Readers see everything except a held-back tail until the artifact has
// been checked and committed: a zip is unusable without its tail (the central directory), so
// a client can never end up holding a complete copy of something we refused.
import { open, stat, type FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { ProxyError } from '../errors.js';
import type { BlobReader } from './blobstore.js';

export const HOLDBACK_BYTES = 64 * 1024;
const CHUNK = 256 * 1024;

export type StagingState = 'streaming' | 'committed' | 'failed';

/** Opens the committed blob from a position (the store's get): for readers that start after the commit. */
export type OpenCommitted = (start: number) => Promise<BlobReader | null>;

export interface StagingView {
  /** The local file the bytes stream into; none when the writer is on another host (then only committed bytes are read). */
  readonly stagingPath: string | undefined;
  readonly openCommitted: OpenCommitted;
  /** What is staged, for messages ("example.com/m@v1.0.0.zip"). */
  readonly what: string;
  /** Total size when known (Content-Length, or the committed size). */
  size(): number | undefined;
  state(): StagingState;
  /** Bytes a reader may send now. */
  available(): number;
  error(): ProxyError | undefined;
  /** Settles at the next change (more bytes, commit, failure). */
  changed(): Promise<void>;
  /** The size once the bytes have passed every check (before they are committed); else undefined. */
  verifiedSize(): number | undefined;
}

/** What every view knows: bytes written so far, the total once known, and how it ended. */
abstract class ViewState {
  protected written = 0;
  protected total: number | undefined;
  protected st: StagingState = 'streaming';
  protected err: ProxyError | undefined;
  protected verified: number | undefined;

  constructor(
    protected staging: string | undefined,
    readonly openCommitted: OpenCommitted,
    readonly what: string,
  ) {}

  get stagingPath(): string | undefined {
    return this.staging;
  }

  verifiedSize(): number | undefined {
    return this.verified;
  }

  size(): number | undefined {
    return this.total;
  }
  state(): StagingState {
    return this.st;
  }
  available(): number {
    if (this.st === 'committed') return this.total ?? this.written;
    if (this.verified !== undefined) return this.verified;
    return Math.max(0, this.written - HOLDBACK_BYTES);
  }
  error(): ProxyError | undefined {
    return this.err;
  }

  protected committed(size: number): void {
    this.total = size;
    this.written = size;
    this.st = 'committed';
  }
  protected failed(err: ProxyError): void {
    this.err = err;
    this.st = 'failed';
  }
}

/** The view of a fetch this process is doing: updated directly by the writer, no polling. */
export class LocalView extends ViewState implements StagingView {
  private waiters: (() => void)[] = [];

  /** The file is known once the write has begun. */
  setStaging(file: string): void {
    this.staging = file;
  }

  changed(): Promise<void> {
    if (this.st !== 'streaming') return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  setSize(size: number | undefined): void {
    this.total = size;
  }
  progress(written: number): void {
    this.written = written;
    this.wake();
  }
  /** The bytes passed every check: readers may have the tail now, while they are being stored. */
  release(size: number): void {
    this.verified = size;
    this.wake();
  }
  commit(size: number): void {
    this.committed(size);
    this.wake();
  }
  fail(err: ProxyError): void {
    if (this.st !== 'streaming') return;
    this.failed(err);
    this.wake();
  }
  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}

/**
 * The view of a fetch another process is doing over the same data folder. It learns by
 * polling: the staging file's size, the committed file, the holder's lock.
 */
export class ForeignView extends ViewState implements StagingView {
  /** One poll loop per view however many readers wait on it. */
  private nextTick: Promise<void> | undefined;

  constructor(
    stagingPath: string,
    openCommitted: OpenCommitted,
    private readonly probe: () => Promise<{ committedSize: number | null; lockHeld: boolean; expectedSize?: number }>,
    what: string,
    private readonly pollMs = 20,
  ) {
    super(stagingPath, openCommitted, what);
  }

  changed(): Promise<void> {
    if (this.st !== 'streaming') return Promise.resolve();
    this.nextTick ??= new Promise<void>((r) => setTimeout(r, this.pollMs))
      .then(() => this.refresh())
      .finally(() => {
        this.nextTick = undefined;
      });
    return this.nextTick;
  }

  /** Reads the current state from disk. */
  async refresh(): Promise<void> {
    if (this.st !== 'streaming') return;
    const p = await this.probe();
    if (p.committedSize !== null) {
      this.committed(p.committedSize);
      return;
    }
    if (p.expectedSize !== undefined) this.total = p.expectedSize;
    const st = this.stagingPath === undefined ? null : await stat(this.stagingPath).catch(() => null);
    if (st) this.written = st.size;
    if (!p.lockHeld) {
      // The holder let go without committing: re-check the final file (it may have committed between our two looks).
      const again = await this.probe();
      if (again.committedSize !== null) this.committed(again.committedSize);
      else this.failed(new ProxyError('upstream', `the gomodproxy process fetching ${this.what} gave up; retry`));
    }
  }
}

/**
 * Reads a staged artifact by position as it becomes available: waits for bytes still to come,
 * keeps reading the staging file it opened (renamed or unlinked at the commit, it is the same
 * bytes), or reads the committed blob from the store when it starts after the commit; throws
 * the fetch's error if it fails. The caller owns the buffers (so it decides what is held for a
 * slow client); close() when done.
 */
export class StagedReader {
  private fh: FileHandle | undefined;
  private committed: BlobCursor | undefined;
  private opened = false;

  constructor(
    private readonly view: StagingView,
    private readonly stop: () => boolean,
  ) {}

  /** Up to buf.length bytes at `position` into buf; 0 at the end (or once stop() says so). */
  async read(buf: Buffer, position: number): Promise<number> {
    if (!this.opened) {
      this.opened = true;
      const got = await openStaged(this.view, this.stop, position);
      if (got instanceof BlobCursor) this.committed = got;
      else this.fh = got;
    }
    if (this.committed) return this.committed.read(buf, position);
    const fh = this.fh;
    if (!fh) return 0;
    const view = this.view;
    for (;;) {
      if (this.stop()) return 0;
      const avail = view.available();
      if (position < avail) {
        const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, avail - position), position);
        if (bytesRead === 0) {
          // The file is shorter than the view says: another process truncated or replaced it.
          throw new ProxyError('unavailable', `staged file for ${view.what} shrank while being read; retry`);
        }
        return bytesRead;
      }
      const st = view.state();
      if (st === 'committed' && position >= (view.size() ?? position)) return 0;
      // Checked bytes that could not be stored (a full disk) were still whole and good for this reader.
      const verified = view.verifiedSize();
      if (st === 'failed' && verified !== undefined && position >= verified) return 0;
      if (st === 'failed') throw view.error() ?? new ProxyError('upstream', 'fetch failed');
      await view.changed();
    }
  }

  async close(): Promise<void> {
    await this.fh?.close().catch(() => undefined);
    this.fh = undefined;
    await this.committed?.close();
    this.committed = undefined;
  }
}

/** A committed blob read by position: positionally where the store can, else from its stream in order. */
export class BlobCursor {
  private pending: Buffer | undefined;
  private iter: AsyncIterator<unknown> | undefined;

  constructor(
    private readonly blob: BlobReader,
    /** Where the blob's stream starts (the get's start). */
    private pos: number,
  ) {}

  async read(buf: Buffer, position: number): Promise<number> {
    if (this.blob.read) return this.blob.read(buf, position);
    if (position !== this.pos) throw new Error(`BlobCursor reads in order: asked for ${position} at ${this.pos}`);
    if (!this.pending || this.pending.length === 0) {
      this.iter ??= (this.blob.stream as Readable)[Symbol.asyncIterator]();
      const next = await this.iter.next();
      if (next.done) return 0;
      this.pending = next.value as Buffer;
    }
    const n = this.pending.copy(buf, 0, 0, Math.min(buf.length, this.pending.length));
    this.pending = this.pending.subarray(n);
    this.pos += n;
    return n;
  }

  close(): Promise<void> {
    return this.blob.close();
  }
}

/** The bytes of a staged artifact as they become available (for callers that want a stream of chunks). */
export async function* readStaged(view: StagingView, stop: () => boolean): AsyncGenerator<Buffer> {
  const reader = new StagedReader(view, stop);
  try {
    let pos = 0;
    for (;;) {
      const buf = Buffer.allocUnsafe(CHUNK);
      const n = await reader.read(buf, pos);
      if (n === 0) return;
      pos += n;
      yield n === buf.length ? buf : buf.subarray(0, n);
    }
  } finally {
    await reader.close();
  }
}

async function openStaged(view: StagingView, stop: () => boolean, position: number): Promise<FileHandle | BlobCursor | undefined> {
  for (;;) {
    if (stop()) return undefined;
    const st = view.state();
    if (st === 'failed') throw view.error() ?? new ProxyError('upstream', 'fetch failed');
    if (st === 'committed') {
      const blob = await view.openCommitted(position);
      if (blob) return new BlobCursor(blob, position);
      throw new ProxyError('unavailable', `${view.what} vanished from the store just after it was stored; retry`);
    }
    if (view.stagingPath !== undefined) {
      try {
        return await open(view.stagingPath, 'r');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
    // Not created yet, or moved into the store between our look at the state and the open.
    await view.changed();
  }
}
