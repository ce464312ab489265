// Reading untrusted zip files the way Go's archive/zip reads them, but stricter wherever Go is
// lenient about layout, so that any zip we accept is read by the go command exactly as we read it
// (same entries, same bytes, hence the same h1). yauzl parses the central directory; the checks
// around it close the gaps where Go and yauzl would interpret one file differently.
import { createHash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import yauzl from 'yauzl';

/** A zip-format problem; the caller turns it into a ZipError that names the module. */
export class ZipFormatError extends Error {
  override readonly name = 'ZipFormatError';
}

export interface RawEntry {
  /** Position in the central directory. */
  index: number;
  nameBytes: Buffer;
  /** The name when it is valid UTF-8, else undefined. */
  name: string | undefined;
  flags: number;
  method: number;
  crc32: number;
  compressedSize: number;
  uncompressedSize: number;
  localHeaderOffset: number;
  versionMadeBy: number;
  externalAttributes: number;
}

export interface EntryData {
  sha256: Buffer;
  size: number;
}

const EOCD_SIG = 0x06054b50;
const EOCD_LEN = 22;
const LOCATOR_SIG = 0x07064b50;
const LOCATOR_LEN = 20;
const EOCD64_SIG = 0x06064b50;
const EOCD64_LEN = 56;
const CENTRAL_LEN = 46;
const LOCAL_SIG = 0x04034b50;
const LOCAL_LEN = 30;
const DESCRIPTOR_SIG = 0x08074b50;

const FLAG_ENCRYPTED = 0x1;
const FLAG_DATA_DESCRIPTOR = 0x8;

// ignoreBOM keeps a leading U+FEFF in the name (by default the decoder drops it), so the string
// is exactly the bytes Go compares.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function u64(b: Buffer, off: number): number {
  // Values above 2^53 cannot be file offsets or sizes we accept; Infinity keeps every later
  // comparison against the file size failing instead of wrapping.
  const v = b.readBigUInt64LE(off);
  return v > BigInt(Number.MAX_SAFE_INTEGER) ? Infinity : Number(v);
}

async function readAt(fh: FileHandle, length: number, position: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(length);
  let got = 0;
  while (got < length) {
    const { bytesRead } = await fh.read(buf, got, length - got, position + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return buf.subarray(0, got);
}

const WINDOW = 1 << 20;
/** Entries up to these sizes are decompressed in one synchronous call. */
const SMALL_COMPRESSED = 1 << 16;
const SMALL_OUTPUT = 1 << 18;
/** Bytes of synchronous work between two yields to the event loop. */
const SYNC_BUDGET = 4 << 20;

/**
 * Positioned reads through a 1 MiB window of the file. Entries are read in file order, so one
 * window load serves the local headers, data and descriptors of many small files: a module zip
 * has thousands of entries, and a round trip to the file system per header would dominate.
 * All reads use the FileHandle's promise API, so closing the handle waits for them.
 */
class FileWindow {
  private window: Buffer = Buffer.alloc(0);
  private start = 0;

  constructor(
    private readonly fh: FileHandle,
    private readonly size: number,
  ) {}

  private async load(pos: number, len: number): Promise<void> {
    this.window = await readAt(this.fh, Math.min(Math.max(len, WINDOW), Math.max(0, this.size - pos)), pos);
    this.start = pos;
  }

  /** Up to `max` bytes at `pos` (fewer at a window or file end; none only at the end of the file). */
  async upTo(pos: number, max: number): Promise<Buffer> {
    if (!(pos >= this.start && pos < this.start + this.window.length)) await this.load(pos, max);
    const from = pos - this.start;
    return this.window.subarray(from, Math.min(from + max, this.window.length));
  }

  /** `len` bytes at `pos`, or fewer if the file ends first. */
  async bytes(pos: number, len: number): Promise<Buffer> {
    if (pos >= this.start && pos + len <= this.start + this.window.length) {
      return this.window.subarray(pos - this.start, pos - this.start + len);
    }
    if (len > WINDOW) return readAt(this.fh, len, pos);
    await this.load(pos, len);
    return this.window.subarray(0, Math.min(len, this.window.length));
  }
}

/**
 * A byte range of the file as a stream. (fs.createReadStream on a shared descriptor would close
 * it when destroyed, which pipeline does on any error, even with autoClose: false.)
 */
class RangeReader extends Readable {
  constructor(
    private readonly win: FileWindow,
    private pos: number,
    private readonly end: number,
  ) {
    super({ highWaterMark: 1 << 18 });
  }

  override _read(size: number): void {
    const n = Math.min(Math.max(size, 1 << 16), this.end - this.pos);
    if (n <= 0) {
      this.push(null);
      return;
    }
    this.win.upTo(this.pos, n).then(
      (buf) => {
        if (buf.length === 0) {
          this.destroy(new ZipFormatError('zip file changed while being read'));
          return;
        }
        this.pos += buf.length;
        this.push(buf);
      },
      (err: unknown) => this.destroy(err instanceof Error ? err : new Error(String(err))),
    );
  }
}

/** Serves yauzl's small central-directory reads from the window. */
class WindowReader extends yauzl.RandomAccessReader {
  constructor(private readonly win: FileWindow) {
    super();
  }

  override _readStreamForRange(start: number, end: number): Readable {
    return new RangeReader(this.win, start, end);
  }

  override read(buffer: Buffer, offset: number, length: number, position: number, callback: (err: Error | null) => void): void {
    const done = callback as (err: Error | null, bytesRead?: number) => void;
    // Always asynchronously (a promise), so a long run of cached reads cannot grow the stack.
    this.win.bytes(position, length).then(
      (buf) => {
        buf.copy(buffer, offset);
        done(null, buf.length);
      },
      (err: unknown) => done(err instanceof Error ? err : new Error(String(err))),
    );
  }

  override close(callback: (err: Error | null) => void): void {
    // The file handle belongs to OpenZip, which closes it.
    setImmediate(() => callback(null));
  }
}

export interface DirectoryEnd {
  entryCount: number;
  cdOffset: number;
  cdSize: number;
}

/**
 * Finds the central directory as both Go and yauzl would, and refuses the file unless they agree
 * and the layout leaves no room for interpretation: the end record closes the file exactly (no
 * trailing bytes), and the central directory ends exactly where the (zip64) end record begins.
 * Go tolerates prepended data and gaps by guessing a base offset; a module zip never needs that.
 */
export async function locateDirectory(fh: FileHandle, size: number): Promise<DirectoryEnd> {
  if (size < EOCD_LEN) throw new ZipFormatError(size === 0 ? 'not a zip file (empty)' : 'not a zip file (too short)');
  const tailLen = Math.min(size, LOCATOR_LEN + EOCD_LEN + 0xffff);
  const tailStart = size - tailLen;
  const tail = await readAt(fh, tailLen, tailStart);
  if (tail.length !== tailLen) throw new ZipFormatError('zip file changed while being read');
  let i = tail.length - EOCD_LEN;
  for (; i >= 0; i--) if (tail.readUInt32LE(i) === EOCD_SIG) break;
  if (i < 0) throw new ZipFormatError('not a zip file (no end of central directory record)');
  const commentLen = tail.readUInt16LE(i + 20);
  if (i + EOCD_LEN + commentLen !== tail.length) {
    throw new ZipFormatError('not a valid zip file (end of central directory record does not end the file)');
  }
  const disk = tail.readUInt16LE(i + 4);
  const cdDisk = tail.readUInt16LE(i + 6);
  let entryCount = tail.readUInt16LE(i + 10);
  let cdSize = tail.readUInt32LE(i + 12);
  let cdOffset = tail.readUInt32LE(i + 16);
  let cdEnd = tailStart + i;

  if (i >= LOCATOR_LEN && tail.readUInt32LE(i - LOCATOR_LEN) === LOCATOR_SIG) {
    const loc = i - LOCATOR_LEN;
    // Go ignores a locator that names another disk and then reads the 32-bit fields, while
    // yauzl follows it: such a file has two readings, so it is refused.
    if (tail.readUInt32LE(loc + 4) !== 0 || tail.readUInt32LE(loc + 16) !== 1) {
      throw new ZipFormatError('not a valid zip file (multi-disk zip64 locator)');
    }
    const recOffset = u64(tail, loc + 8);
    if (!(recOffset + EOCD64_LEN <= tailStart + loc)) {
      throw new ZipFormatError('not a valid zip file (bad zip64 end of central directory locator)');
    }
    const rec = await readAt(fh, EOCD64_LEN, recOffset);
    if (rec.length !== EOCD64_LEN || rec.readUInt32LE(0) !== EOCD64_SIG) {
      throw new ZipFormatError('not a valid zip file (bad zip64 end of central directory record)');
    }
    if (recOffset + 12 + u64(rec, 4) !== tailStart + loc) {
      throw new ZipFormatError('not a valid zip file (zip64 end of central directory record has the wrong size)');
    }
    if (rec.readUInt32LE(16) !== 0 || rec.readUInt32LE(20) !== 0) {
      throw new ZipFormatError('not a valid zip file (multi-disk zip files are not supported)');
    }
    const z64Count = u64(rec, 32);
    const z64Size = u64(rec, 40);
    const z64Offset = u64(rec, 48);
    // Go consults the zip64 record only when a 32-bit field is saturated (its test for the
    // directory size compares with 0xffff); yauzl always does. Where Go would not, both
    // readings must give the same numbers.
    const goUsesZip64 = entryCount === 0xffff || cdSize === 0xffff || cdOffset === 0xffffffff;
    if (!goUsesZip64 && (z64Count !== entryCount || z64Size !== cdSize || z64Offset !== cdOffset)) {
      throw new ZipFormatError('not a valid zip file (zip64 and end of central directory records disagree)');
    }
    entryCount = z64Count;
    cdSize = z64Size;
    cdOffset = z64Offset;
    cdEnd = recOffset;
  } else if (disk !== 0 || cdDisk !== 0) {
    throw new ZipFormatError('not a valid zip file (multi-disk zip files are not supported)');
  }
  if (cdOffset + cdSize !== cdEnd) {
    throw new ZipFormatError('not a valid zip file (central directory is not where the end record says)');
  }
  if (entryCount * CENTRAL_LEN > cdSize) {
    throw new ZipFormatError('not a valid zip file (more entries declared than the central directory can hold)');
  }
  return { entryCount, cdOffset, cdSize };
}

function readEntries(win: FileWindow, size: number, dir: DirectoryEnd): Promise<RawEntry[]> {
  return new Promise<RawEntry[]>((resolve, reject) => {
    const reader = new WindowReader(win);
    // Errors of the reader itself surface through the ZipFile or the callback below.
    reader.on('error', () => {});
    yauzl.fromRandomAccessReader(reader, size, { lazyEntries: true, decodeStrings: false, validateEntrySizes: true, autoClose: false }, (err, zf) => {
      if (err) return reject(asFormatError(err));
      if (zf.entryCount !== dir.entryCount) {
        zf.close();
        return reject(new ZipFormatError('not a valid zip file (inconsistent entry count)'));
      }
      const entries: RawEntry[] = [];
      let cdBytes = 0;
      zf.on('error', (e: Error) => {
        zf.close();
        reject(asFormatError(e));
      });
      zf.on('entry', (e: yauzl.Entry) => {
        cdBytes += CENTRAL_LEN + e.fileNameLength + e.extraFieldLength + e.fileCommentLength;
        const nameBytes = Buffer.from(e.fileNameRaw);
        entries.push({
          index: entries.length,
          nameBytes,
          name: entryName(nameBytes),
          flags: e.generalPurposeBitFlag,
          method: e.compressionMethod,
          crc32: e.crc32,
          compressedSize: e.compressedSize,
          uncompressedSize: e.uncompressedSize,
          localHeaderOffset: e.relativeOffsetOfLocalHeader,
          versionMadeBy: e.versionMadeBy,
          externalAttributes: e.externalFileAttributes,
        });
        zf.readEntry();
      });
      zf.on('end', () => {
        zf.close();
        // Go reads directory records until one fails to parse; only if ours fill the directory
        // exactly, ending at the end record, does it stop where yauzl stops.
        if (cdBytes !== dir.cdSize) {
          reject(new ZipFormatError('not a valid zip file (central directory size does not match its entries)'));
        } else {
          resolve(entries);
        }
      });
      zf.readEntry();
    });
  });
}

/** An entry's name as a string when it is valid UTF-8 that encodes back to the same bytes, else undefined. */
export function entryName(nameBytes: Buffer): string | undefined {
  try {
    const name = utf8.decode(nameBytes);
    // The name must be exactly its bytes again, or Go and we would compare different strings.
    if (Buffer.byteLength(name, 'utf8') !== nameBytes.length || !Buffer.from(name, 'utf8').equals(nameBytes)) return undefined;
    return name;
  } catch {
    return undefined;
  }
}

function asFormatError(err: unknown): Error {
  if (err instanceof ZipFormatError) return err;
  if (isSystemError(err)) return err as Error;
  const msg = err instanceof Error ? err.message : String(err);
  return new ZipFormatError(`not a valid zip file (${msg})`);
}

/** Errors from the operating system (EIO, EMFILE…) are not the zip's fault and keep their identity. */
export function isSystemError(err: unknown): boolean {
  return typeof err === 'object' && err !== null && typeof (err as { syscall?: unknown }).syscall === 'string';
}

/** A zip file whose central directory has been read and checked; entry data is read on demand. */
export class OpenZip {
  private readonly win: FileWindow;
  private syncWork = 0;

  private constructor(
    private readonly fh: FileHandle,
    readonly size: number,
    readonly entries: RawEntry[],
  ) {
    this.win = new FileWindow(fh, size);
  }

  static async open(path: string, maxSize = Infinity): Promise<OpenZip> {
    const fh = await open(path, 'r');
    try {
      const st = await fh.stat();
      if (!st.isFile()) throw new ZipFormatError('not a zip file (not a regular file)');
      if (st.size > maxSize) {
        throw new ZipFormatError(`module zip file is too large (${st.size} bytes; limit is ${maxSize} bytes)`);
      }
      const dir = await locateDirectory(fh, st.size);
      const entries = await readEntries(new FileWindow(fh, st.size), st.size, dir);
      return new OpenZip(fh, st.size, entries);
    } catch (err) {
      await fh.close();
      throw err;
    }
  }

  async close(): Promise<void> {
    await this.fh.close();
  }

  /** archive/zip findBodyOffset: the local header must be there; its lengths place the data. */
  private async dataStart(e: RawEntry, what: string): Promise<number> {
    const h = e.localHeaderOffset + LOCAL_LEN <= this.size ? await this.win.bytes(e.localHeaderOffset, LOCAL_LEN) : null;
    if (h === null || h.length !== LOCAL_LEN || h.readUInt32LE(0) !== LOCAL_SIG) {
      throw new ZipFormatError(`${what} has no valid local file header`);
    }
    const start = e.localHeaderOffset + LOCAL_LEN + h.readUInt16LE(26) + h.readUInt16LE(28);
    if (start + e.compressedSize > this.size) throw new ZipFormatError(`${what} has data beyond the end of the zip file`);
    return start;
  }

  /** Checks what Go checks when it opens a directory entry (it never reads one's data). */
  async checkDirectory(e: RawEntry, what: string): Promise<void> {
    await this.dataStart(e, what);
    if (e.uncompressedSize !== 0) throw new ZipFormatError(`${what} is a directory with contents`);
  }

  /**
   * Streams one file entry's data, decompressing it and checking it the way Go's reader does
   * (exactly the declared size, CRC-32, data descriptor), without ever producing more than the
   * declared size plus one inflate chunk. `strictCrc` also rejects a zero CRC that Go would
   * skip. Each chunk is handed to `onChunk` (for callers that keep a small file).
   */
  async readFile(e: RawEntry, what: string, opts: { strictCrc: boolean; onChunk?: (chunk: Buffer) => void }): Promise<EntryData> {
    if (e.method !== 0 && e.method !== 8) {
      throw new ZipFormatError(`${what} uses unsupported compression method ${e.method} (only store and deflate are allowed)`);
    }
    const start = await this.dataStart(e, what);
    const declared = e.uncompressedSize;
    const sha = createHash('sha256');
    let crc = 0;
    let n = 0;
    const larger = (): ZipFormatError => new ZipFormatError(`${what} is larger than its declared size (${declared} bytes)`);
    const corrupt = (err: unknown): ZipFormatError =>
      new ZipFormatError(`${what} has corrupt compressed data (${err instanceof Error ? err.message : String(err)})`);
    const take = (chunk: Buffer): void => {
      sha.update(chunk);
      crc = zlib.crc32(chunk, crc);
      opts.onChunk?.(chunk);
    };

    if (e.compressedSize <= SMALL_COMPRESSED && declared <= SMALL_OUTPUT) {
      // Most files of a module are small: decompressing them in one call skips a stream pipeline
      // and a thread-pool round trip each. maxOutputLength keeps a lying size from costing more
      // than it declares.
      const raw = await this.win.bytes(start, e.compressedSize);
      let out = raw;
      if (e.method === 8) {
        try {
          out = zlib.inflateRawSync(raw, { maxOutputLength: declared + 1 });
        } catch (err) {
          if ((err as { code?: unknown }).code === 'ERR_BUFFER_TOO_LARGE') throw larger();
          throw corrupt(err);
        }
      }
      n = out.length;
      if (n > declared) throw larger();
      take(out);
      // Yield to the event loop now and then, so a zip of many small files cannot hold it long.
      this.syncWork += e.compressedSize + n;
      if (this.syncWork > SYNC_BUDGET) {
        this.syncWork = 0;
        await new Promise((r) => setImmediate(r));
      }
    } else {
      const sink = new Writable({
        highWaterMark: 1 << 16,
        write(chunk: Buffer, _enc, cb) {
          n += chunk.length;
          if (n > declared) {
            cb(larger());
            return;
          }
          take(chunk);
          cb();
        },
      });
      const src = new RangeReader(this.win, start, start + e.compressedSize);
      try {
        if (e.method === 8) await pipeline(src, zlib.createInflateRaw({ chunkSize: 1 << 16 }), sink);
        else await pipeline(src, sink);
      } catch (err) {
        if (err instanceof ZipFormatError || isSystemError(err)) throw err;
        throw corrupt(err);
      }
    }
    if (n !== declared) throw new ZipFormatError(`${what} is shorter than its declared size (${declared} bytes)`);
    crc >>>= 0;
    if (e.flags & FLAG_DATA_DESCRIPTOR) {
      // archive/zip readDataDescriptor: optional signature, then a CRC that must match the
      // central directory's; the sizes after it are ignored.
      const d = await this.win.bytes(start + e.compressedSize, 16);
      const off = d.length >= 4 && d.readUInt32LE(0) === DESCRIPTOR_SIG ? 4 : 0;
      if (d.length < off + 12) throw new ZipFormatError(`${what} has a truncated data descriptor`);
      if (d.readUInt32LE(off) !== e.crc32) throw new ZipFormatError(`${what} has a data descriptor whose CRC-32 differs from the central directory's`);
      if (crc !== e.crc32) throw new ZipFormatError(`${what} has a bad CRC-32 checksum`);
    } else if (crc !== e.crc32 && (opts.strictCrc || e.crc32 !== 0)) {
      throw new ZipFormatError(`${what} has a bad CRC-32 checksum`);
    }
    return { sha256: sha.digest(), size: n };
  }
}

export function isEncrypted(e: RawEntry): boolean {
  return (e.flags & FLAG_ENCRYPTED) !== 0;
}

/** The Unix file type bits Go's FileHeader.Mode() would report, or 0 when the creator is not Unix-like. */
export function unixFileType(e: RawEntry): number {
  const creator = e.versionMadeBy >>> 8;
  if (creator !== 3 && creator !== 19) return 0;
  return (e.externalAttributes >>> 16) & 0o170000;
}
