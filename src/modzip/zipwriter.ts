// A zip writer for module zips, writing entries one after another to a stream: only what
// writeModuleZip needs (regular files, UTF-8 names, fixed timestamps, store or deflate, zip64
// where counts, sizes or offsets need it), laid out as Go's archive/zip writes and reads it.
// Hand-written rather than a library because the library's cost was its stream plumbing (one
// zlib stream and several stream hops per entry): here a small file is one synchronous
// deflate and a few bytes of header, and output is batched into large writes.
import zlib from 'node:zlib';
import type { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';

const LOCAL_SIG = 0x04034b50;
const CENTRAL_SIG = 0x02014b50;
const DESCRIPTOR_SIG = 0x08074b50;
const EOCD_SIG = 0x06054b50;
const EOCD64_SIG = 0x06064b50;
const LOCATOR_SIG = 0x07064b50;
const LOCAL_LEN = 30;
const CENTRAL_LEN = 46;
const EOCD_LEN = 22;
const EOCD64_LEN = 56;
const LOCATOR_LEN = 20;
const ZIP64_EXTRA_ID = 0x0001;

const FLAG_DESCRIPTOR = 0x0008;
const FLAG_UTF8 = 0x0800;
const U16_MAX = 0xffff;
const U32_MAX = 0xffffffff;
const VERSION_20 = 20;
const VERSION_45 = 45;
// Unix as the creator, so that the external attributes' high half is a file mode (0644 here):
// unzip tools then make ordinary files; Go ignores both.
const MADE_BY = (3 << 8) | VERSION_20;
const EXTERNAL_ATTRS = (0o100644 << 16) >>> 0;
// 1980-01-01 00:00, the earliest MS-DOS date: fixed so that zips are reproducible (Go ignores it).
const DOS_TIME = 0;
const DOS_DATE = (1 << 5) | 1;

export const METHOD_STORE = 0;
export const METHOD_DEFLATE = 8;

/** Output is handed to the stream in pieces of about this size (fewer, larger writes downstream). */
const FLUSH_AT = 64 << 10;
/** The central directory is built in memory (it is written last) in buffers of this size. */
const CD_CHUNK = 64 << 10;

/**
 * Writes a zip to `out`, respecting its backpressure: every method that writes waits for 'drain'
 * when the stream asks for it, so a slow reader never makes the zip pile up in memory. Only the
 * central directory (one record per entry) is held until the end. Calls must not overlap.
 */
export class ZipWriter {
  /** Bytes of zip produced so far (written, or waiting in `pending`). */
  private offset = 0;
  private pending: Buffer[] = [];
  private pendingLen = 0;
  private entries = 0;
  private cdChunks: Buffer[] = [];
  private cdCur: Buffer = Buffer.alloc(0);
  private cdUsed = 0;
  private cdSize = 0;
  /** The streamed entry being written, if any. */
  private open: { name: Buffer; offset: number; dataStart: number } | undefined;
  private failure: Error | undefined;
  private outFinished = false;
  private wake: ((err?: Error) => void) | undefined;
  private readonly listeners: [string, (...args: unknown[]) => void][];

  constructor(private readonly out: NodeJS.WritableStream) {
    this.listeners = [
      ['drain', () => this.wake?.()],
      [
        'finish',
        () => {
          this.outFinished = true;
        },
      ],
      ['error', (err) => this.failed(err instanceof Error ? err : new Error(String(err)))],
      [
        'close',
        () => {
          if (!this.outFinished) this.failed(prematureClose());
        },
      ],
    ];
    for (const [ev, fn] of this.listeners) out.on(ev, fn);
  }

  private failed(err: Error): void {
    this.failure ??= err;
    this.wake?.(this.failure);
  }

  /** Throws the output's failure, if it has failed: callers check before starting more work. */
  check(): void {
    if (this.failure) throw this.failure;
    if ((this.out as Partial<Writable>).destroyed === true && !this.outFinished) throw (this.failure = prematureClose());
  }

  /**
   * Adds a whole entry whose (possibly compressed) data is at hand, its sizes in the local
   * header (so under 4 GiB: bigger data is streamed).
   */
  addEntry(name: Buffer, method: number, crc: number, data: Buffer, size: number): Promise<void> {
    if (data.length >= U32_MAX || size >= U32_MAX) throw new RangeError('zip writer: entry too large to add whole');
    const offset = this.offset;
    this.put(localHeader(name, FLAG_UTF8, method, crc, data.length, size));
    if (data.length > 0) this.put(data);
    this.central(name, FLAG_UTF8, method, crc, data.length, size, offset);
    return this.settle();
  }

  /**
   * Starts a deflated entry whose sizes are not known yet: they follow its data in a data
   * descriptor (flag bit 3), as Go's writer always does. Its data goes through `data`, and
   * `endStreamed` closes it.
   */
  startStreamed(name: Buffer): Promise<void> {
    if (this.open) throw new Error('zip writer: an entry is already open');
    const offset = this.offset;
    this.put(localHeader(name, FLAG_UTF8 | FLAG_DESCRIPTOR, METHOD_DEFLATE, 0, 0, 0));
    this.open = { name, offset, dataStart: this.offset };
    return this.settle();
  }

  /** Compressed data of the open streamed entry. */
  data(buf: Buffer): Promise<void> {
    if (!this.open) throw new Error('zip writer: no entry is open');
    if (buf.length > 0) this.put(buf);
    return this.settle();
  }

  endStreamed(crc: number, size: number): Promise<void> {
    const e = this.open;
    if (!e) throw new Error('zip writer: no entry is open');
    this.open = undefined;
    const csize = this.offset - e.dataStart;
    // As Go's writer: 8-byte sizes in the descriptor only when they need it (the local header
    // said nothing about sizes, and Go's reader takes them from the central directory anyway).
    const wide = csize >= U32_MAX || size >= U32_MAX;
    const d = Buffer.allocUnsafe(wide ? 24 : 16);
    d.writeUInt32LE(DESCRIPTOR_SIG, 0);
    d.writeUInt32LE(crc >>> 0, 4);
    if (wide) {
      writeU64(d, 8, csize);
      writeU64(d, 16, size);
    } else {
      d.writeUInt32LE(csize, 8);
      d.writeUInt32LE(size, 12);
    }
    this.put(d);
    this.central(e.name, FLAG_UTF8 | FLAG_DESCRIPTOR, METHOD_DEFLATE, crc, csize, size, e.offset);
    return this.settle();
  }

  /**
   * Writes the central directory and end records, ends `out` and waits for it to finish.
   * Returns the zip's size in bytes.
   */
  async finish(): Promise<number> {
    if (this.open) throw new Error('zip writer: an entry is still open');
    const cdOffset = this.offset;
    if (this.cdUsed > 0) this.cdChunks.push(this.cdCur.subarray(0, this.cdUsed));
    this.cdCur = Buffer.alloc(0);
    this.cdUsed = 0;
    for (const c of this.cdChunks.splice(0)) {
      this.put(c);
      await this.settle();
    }
    const count = this.entries;
    const cdSize = this.cdSize;
    // Go's rule: zip64 end records once a 16-bit count or a 32-bit size or offset is saturated
    // (0xffff entries already needs them: that value means "see the zip64 record").
    const zip64 = count >= U16_MAX || cdSize >= U32_MAX || cdOffset >= U32_MAX;
    if (zip64) {
      const endOffset = this.offset;
      const b = Buffer.alloc(EOCD64_LEN + LOCATOR_LEN);
      b.writeUInt32LE(EOCD64_SIG, 0);
      writeU64(b, 4, EOCD64_LEN - 12);
      b.writeUInt16LE(VERSION_45, 12);
      b.writeUInt16LE(VERSION_45, 14);
      // disk numbers (16, 20) stay 0
      writeU64(b, 24, count);
      writeU64(b, 32, count);
      writeU64(b, 40, cdSize);
      writeU64(b, 48, cdOffset);
      b.writeUInt32LE(LOCATOR_SIG, EOCD64_LEN);
      // disk of the zip64 end record (EOCD64_LEN + 4) stays 0
      writeU64(b, EOCD64_LEN + 8, endOffset);
      b.writeUInt32LE(1, EOCD64_LEN + 16);
      this.put(b);
    }
    const end = Buffer.alloc(EOCD_LEN);
    end.writeUInt32LE(EOCD_SIG, 0);
    // As Go: every field saturated when the zip64 record holds the numbers.
    end.writeUInt16LE(zip64 ? U16_MAX : count, 8);
    end.writeUInt16LE(zip64 ? U16_MAX : count, 10);
    end.writeUInt32LE(zip64 ? U32_MAX : cdSize, 12);
    end.writeUInt32LE(zip64 ? U32_MAX : cdOffset, 16);
    this.put(end);
    await this.flush();
    this.check();
    this.out.end();
    // As pipeline() waits for its last stream: 'finish', or 'close' for a stream that emits it
    // after finishing (a file stream: its descriptor is closed by then).
    await finished(this.out, { readable: false, cleanup: true });
    for (const [ev, fn] of this.listeners) this.out.removeListener(ev, fn);
    return this.offset;
  }

  /**
   * Destroys `out` with err (once), unless it has finished. Our 'error' listener stays, so the
   * error this emits reaches whoever else listens without ever being unhandled.
   */
  abort(err: unknown): void {
    this.failure ??= err instanceof Error ? err : new Error(String(err));
    this.pending = [];
    this.pendingLen = 0;
    if (this.outFinished) return;
    const s = this.out as Partial<Writable>;
    if (typeof s.destroy === 'function' && s.destroyed !== true) s.destroy(this.failure);
  }

  private put(buf: Buffer): void {
    this.offset += buf.length;
    this.pending.push(buf);
    this.pendingLen += buf.length;
  }

  private settle(): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    return this.pendingLen >= FLUSH_AT ? this.flush() : Promise.resolve();
  }

  /** Hands what is pending to the stream: small pieces joined, large ones as they are. */
  private async flush(): Promise<void> {
    const parts = this.pending;
    this.pending = [];
    this.pendingLen = 0;
    let run: Buffer[] = [];
    let runLen = 0;
    for (const p of parts) {
      if (p.length >= FLUSH_AT) {
        if (run.length > 0) await this.write(join(run, runLen));
        run = [];
        runLen = 0;
        await this.write(p);
      } else {
        run.push(p);
        runLen += p.length;
        if (runLen >= FLUSH_AT) {
          await this.write(join(run, runLen));
          run = [];
          runLen = 0;
        }
      }
    }
    if (run.length > 0) await this.write(join(run, runLen));
  }

  private async write(buf: Buffer): Promise<void> {
    this.check();
    if (!this.out.write(buf)) await this.next();
    this.check();
  }

  /** Waits for the next event of `out` that matters ('drain' or a failure). */
  private next(): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.wake = (err) => {
        this.wake = undefined;
        if (err) reject(err);
        else resolve();
      };
    });
  }

  private central(name: Buffer, flags: number, method: number, crc: number, csize: number, size: number, offset: number): void {
    // zip64 extra field: only the values whose 32-bit fields are saturated, in the order the
    // format fixes (uncompressed size, compressed size, offset).
    const bigSize = size >= U32_MAX;
    const bigCsize = csize >= U32_MAX;
    const bigOffset = offset >= U32_MAX;
    const extraLen = bigSize || bigCsize || bigOffset ? 4 + 8 * (+bigSize + +bigCsize + +bigOffset) : 0;
    const len = CENTRAL_LEN + name.length + extraLen;
    if (this.cdUsed + len > this.cdCur.length) {
      if (this.cdUsed > 0) this.cdChunks.push(this.cdCur.subarray(0, this.cdUsed));
      this.cdCur = Buffer.allocUnsafe(Math.max(CD_CHUNK, len));
      this.cdUsed = 0;
    }
    const b = this.cdCur;
    const o = this.cdUsed;
    this.cdUsed += len;
    this.cdSize += len;
    this.entries++;
    b.writeUInt32LE(CENTRAL_SIG, o);
    b.writeUInt16LE(MADE_BY, o + 4);
    b.writeUInt16LE(extraLen > 0 ? VERSION_45 : VERSION_20, o + 6);
    b.writeUInt16LE(flags, o + 8);
    b.writeUInt16LE(method, o + 10);
    b.writeUInt16LE(DOS_TIME, o + 12);
    b.writeUInt16LE(DOS_DATE, o + 14);
    b.writeUInt32LE(crc >>> 0, o + 16);
    b.writeUInt32LE(bigCsize ? U32_MAX : csize, o + 20);
    b.writeUInt32LE(bigSize ? U32_MAX : size, o + 24);
    b.writeUInt16LE(name.length, o + 28);
    b.writeUInt16LE(extraLen, o + 30);
    b.writeUInt16LE(0, o + 32); // comment length
    b.writeUInt16LE(0, o + 34); // disk number
    b.writeUInt16LE(0, o + 36); // internal attributes
    b.writeUInt32LE(EXTERNAL_ATTRS, o + 38);
    b.writeUInt32LE(bigOffset ? U32_MAX : offset, o + 42);
    name.copy(b, o + CENTRAL_LEN);
    if (extraLen > 0) {
      let x = o + CENTRAL_LEN + name.length;
      b.writeUInt16LE(ZIP64_EXTRA_ID, x);
      b.writeUInt16LE(extraLen - 4, x + 2);
      x += 4;
      if (bigSize) x = writeU64(b, x, size);
      if (bigCsize) x = writeU64(b, x, csize);
      if (bigOffset) writeU64(b, x, offset);
    }
  }
}

function localHeader(name: Buffer, flags: number, method: number, crc: number, csize: number, size: number): Buffer {
  const h = Buffer.allocUnsafe(LOCAL_LEN + name.length);
  h.writeUInt32LE(LOCAL_SIG, 0);
  h.writeUInt16LE(VERSION_20, 4);
  h.writeUInt16LE(flags, 6);
  h.writeUInt16LE(method, 8);
  h.writeUInt16LE(DOS_TIME, 10);
  h.writeUInt16LE(DOS_DATE, 12);
  h.writeUInt32LE(crc >>> 0, 14);
  h.writeUInt32LE(csize, 18);
  h.writeUInt32LE(size, 22);
  h.writeUInt16LE(name.length, 26);
  h.writeUInt16LE(0, 28); // no extra field
  name.copy(h, LOCAL_LEN);
  return h;
}

function writeU64(b: Buffer, at: number, v: number): number {
  b.writeUInt32LE(v % 0x100000000, at);
  b.writeUInt32LE(Math.floor(v / 0x100000000), at + 4);
  return at + 8;
}

function join(parts: Buffer[], len: number): Buffer {
  return parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts, len);
}

function prematureClose(): Error {
  return Object.assign(new Error('Premature close'), { code: 'ERR_STREAM_PREMATURE_CLOSE' });
}

// --- Compression ---

/** Data this big is first probed (looksIncompressible) before it is deflated. */
const PROBE_FROM = 64 << 10;
const PROBE_LEN = 8 << 10;
/**
 * Data this small is stored without trying: deflate seldom saves a byte on it, and each
 * deflateRawSync sets up (and leaves to the garbage collector) a quarter of a megabyte of zlib
 * state, which for a module of many tiny files costs more than all the rest.
 */
const DEFLATE_FROM = 64;

/**
 * Whether data looks not worth deflating (random or already compressed bytes), judged from two
 * samples compressed at the fastest level: zlib spends more time on such data than on text and
 * gains nothing. Data whose redundancy only shows over distances longer than a sample is
 * misjudged and stored; the zip is still right, only bigger.
 */
export function looksIncompressible(data: Buffer): boolean {
  let inLen = 0;
  let outLen = 0;
  for (const at of [data.length >> 2, Math.floor((data.length * 3) / 4)]) {
    const s = data.subarray(at, at + PROBE_LEN);
    inLen += s.length;
    outLen += zlib.deflateRawSync(s, { level: 1 }).length;
  }
  return outLen > inLen * 0.97;
}

/**
 * The raw deflate of a small file (synchronous: for small inputs a thread-pool round trip costs
 * more than the work), or undefined when storing it is no bigger.
 */
export function deflateSmall(data: Buffer): Buffer | undefined {
  if (data.length < DEFLATE_FROM) return undefined;
  if (data.length >= PROBE_FROM && looksIncompressible(data)) return undefined;
  const d = zlib.deflateRawSync(data);
  return d.length < data.length ? d : undefined;
}

/** Input is compressed in independent segments of this size (see SegmentDeflater). */
const SEGMENT = 1 << 20;
/** Segments being compressed at once, on libuv's thread pool. */
const IN_FLIGHT = 2;
/** A final, empty deflate block (fixed Huffman codes, end-of-block only), as zlib ends a stream. */
const FINAL_EMPTY_BLOCK = Buffer.from([0x03, 0x00]);

/**
 * Deflates a file of any size in bounded memory: the input is cut into segments, each compressed
 * on its own (off the main thread, a few at a time). Every segment but the last ends with a sync
 * flush: on a byte boundary, with no final block, so the compressed segments laid end to end
 * are one valid deflate stream, which the last segment (compressed to the end) closes. Each
 * segment starts with an empty window, which costs a few bytes per megabyte; in exchange
 * segments compress in parallel and there is no stream plumbing. A segment that looks
 * incompressible becomes stored blocks, with no zlib work at all. Output is handed, in order,
 * to `emit`.
 */
export class SegmentDeflater {
  private parts: Buffer[] = [];
  private partsLen = 0;
  private readonly queue: Promise<Buffer[]>[] = [];

  constructor(private readonly emit: (buf: Buffer) => Promise<void>) {}

  /** Takes input; waits when enough is being compressed (the source waits with us). */
  async write(chunk: Buffer): Promise<void> {
    while (chunk.length > 0) {
      const take = Math.min(chunk.length, SEGMENT - this.partsLen);
      this.parts.push(take === chunk.length ? chunk : chunk.subarray(0, take));
      this.partsLen += take;
      chunk = chunk.subarray(take);
      if (this.partsLen === SEGMENT) {
        this.submit(false);
        while (this.queue.length >= IN_FLIGHT) await this.drainOne();
      }
    }
  }

  /** Compresses what is left, as the last segment, and emits everything. */
  async end(): Promise<void> {
    this.submit(true);
    while (this.queue.length > 0) await this.drainOne();
  }

  private submit(final: boolean): void {
    const seg = join(this.parts, this.partsLen);
    this.parts = [];
    this.partsLen = 0;
    let p: Promise<Buffer[]>;
    if (seg.length === 0) {
      p = Promise.resolve(final ? [FINAL_EMPTY_BLOCK] : []);
    } else if (looksIncompressible(seg)) {
      p = Promise.resolve(storedBlocks(seg, final));
    } else {
      p = deflateRawAsync(seg, final).then((b) => [b]);
    }
    // Awaited in order by drainOne; marked handled now in case a failure elsewhere means it
    // never is.
    p.catch(() => undefined);
    this.queue.push(p);
  }

  private async drainOne(): Promise<void> {
    const bufs = await (this.queue.shift() as Promise<Buffer[]>);
    for (const b of bufs) await this.emit(b);
  }
}

/** Deflate stored blocks (at most 65535 bytes each) holding data; the last is final if asked. */
export function storedBlocks(data: Buffer, final: boolean): Buffer[] {
  const out: Buffer[] = [];
  let at = 0;
  do {
    const piece = data.subarray(at, at + U16_MAX);
    at += piece.length;
    const h = Buffer.allocUnsafe(5);
    // BFINAL in bit 0, BTYPE 00 (stored); the other bits pad to the byte boundary we are on.
    h[0] = final && at >= data.length ? 1 : 0;
    h.writeUInt16LE(piece.length, 1);
    h.writeUInt16LE(~piece.length & 0xffff, 3);
    out.push(h);
    if (piece.length > 0) out.push(piece);
  } while (at < data.length);
  return out;
}

function deflateRawAsync(data: Buffer, final: boolean): Promise<Buffer> {
  const opts: zlib.ZlibOptions = { chunkSize: 64 << 10 };
  if (!final) opts.finishFlush = zlib.constants.Z_SYNC_FLUSH;
  return new Promise((resolve, reject) => {
    zlib.deflateRaw(data, opts, (err, out) => (err ? reject(err) : resolve(out)));
  });
}
