// Checking a module zip while it downloads. checkModuleZip reads the finished file again from the
// start, inflating and hashing every entry, so its whole cost lands after the last byte has
// arrived. StreamingZipCheck does that work on the bytes as they arrive: it parses the local file
// entries in order (inflating, hashing, CRC), then the central directory records that follow them
// (applying the module rules to each), so that finish() only has to read the end records from the
// file and match. If every central entry names a local entry that was streamed and verified, with
// the same name, flags, method, sizes and CRC, the answer is the one checkModuleZip would give;
// anything else (local entries that cannot be followed, prefix data, mismatches) falls back to
// checkModuleZip.
//
// Equivalence rests on two things. What the streaming pass records for the local entry at an
// offset is a function of the bytes from that offset on only (how the parser got there does not
// matter), and it is the work checkModuleZip's reader does for a central entry pointing there once
// that entry's sizes, method and flags are known to agree. And the central directory is read as
// OpenZip reads it (the same end-record checks, the same record parsing as yauzl's, the same name
// rules from check.ts); where this file is not sure of that, finish() uses OpenZip itself.
import { createHash, type Hash } from 'node:crypto';
import zlib from 'node:zlib';
import { open, type FileHandle } from 'node:fs/promises';
import {
  acceptPlan,
  asZipError,
  checkedZip,
  checkModuleZip,
  checkZipTarget,
  EMPTY_SHA256,
  entriesByOffset,
  invalidFor,
  NameRules,
  openZip,
  planZip,
  type CheckedZip,
  type EntryPlan,
  type NamePlan,
} from './check.js';
import type { HashedName } from './dirhash.js';
import { ZipError } from './errors.js';
import { resolveLimits, type ResolvedLimits, type ZipLimits } from './limits.js';
import { entryName, locateDirectory, type RawEntry } from './zipreader.js';

const LOCAL_SIG = 0x04034b50;
const CENTRAL_SIG = 0x02014b50;
const DESCRIPTOR_SIG = 0x08074b50;
const EOCD_SIG = 0x06054b50;
const EOCD64_SIG = 0x06064b50;
const LOCAL_LEN = 30;
const CENTRAL_LEN = 46;
const FLAG_DESCRIPTOR = 0x8;
const U32_MAX = 0xffffffff;
const ZIP64_EXTRA_ID = 0x0001;
/** Signatures that may follow a data descriptor: the next entry, the central directory or the end records. */
const NEXT_SIGS = new Set([LOCAL_SIG, CENTRAL_SIG, EOCD64_SIG, EOCD_SIG]);

/**
 * An entry's compressed data is inflated in one synchronous call when it is at most this long
 * (and, when its length is unknown, this much is tried first): most module files are small, and a
 * zlib stream per file would cost a stream and a thread-pool round trip each.
 */
const SYNC_INPUT = 64 << 10;
/** Largest output of one synchronous inflate; beyond it the entry goes to a zlib stream. */
const SYNC_OUTPUT = 1 << 20;
/** Bytes of synchronous work (input and output) between two yields to the event loop (about 2 ms). */
const SYNC_BUDGET = 1 << 20;
/** Largest piece handed to a zlib stream per write. */
const ASYNC_FEED = 256 << 10;
/** Smallest (unless the data ends first): a thread-pool round trip per tiny chunk would dominate. */
const MIN_FEED = 16 << 10;
/**
 * Data of unknown length whose output passes BOMB_OUTPUT and BOMB_RATIO times its input is left
 * to the fallback, which stops at the size the central directory declares; streaming on could
 * cost up to the zip's whole content limit (500 MiB) for a small bomb. Deflate cannot exceed
 * about 1032:1; real files past 256:1 and 64 MiB are rare (and still checked, only later).
 */
const BOMB_OUTPUT = 64 << 20;
const BOMB_RATIO = 256;
/**
 * Entries (local or central) the stream keeps track of, at most: a zip of millions of tiny
 * entries is left to the fallback rather than held twice over (local and central) here.
 */
const MAX_ENTRIES = 1 << 20;
/** Pushed chunks smaller than this are copied together, so tiny chunks do not pile up as a list. */
const COALESCE = 16 << 10;
const COALESCE_BUF = 64 << 10;

/** What the stream showed about the local entry at one offset. */
interface LocalEntry {
  offset: number;
  nameBytes: Buffer;
  flags: number;
  method: number;
  /** Compressed data length: the header's, or where the deflate stream ended (data descriptor). */
  csize: number;
  /** Bytes the data inflated (or copied) to. */
  usize: number;
  crc: number;
  sha256: Buffer | undefined;
  /** The CRC-32 of the data descriptor, read as archive/zip reads it (optional signature). */
  descriptorCrc: number | undefined;
  /** The data was read completely and cleanly (and the descriptor, if flagged). */
  ok: boolean;
  goMod: Buffer | undefined;
}

/**
 * Bytes pushed but not yet parsed, in order. Small chunks are copied together into buffers of our
 * own, so that a stream of tiny chunks neither piles up as a long list nor costs a copy per peek.
 */
class ByteQueue {
  private bufs: Buffer[] = [];
  private first = 0;
  private head = 0;
  /** The buffer behind the last view in `bufs`, while small chunks are still being appended to it. */
  private own: Buffer | undefined;
  private ownUsed = 0;
  length = 0;

  push(b: Buffer): void {
    if (b.length === 0) return;
    this.length += b.length;
    if (b.length < COALESCE) {
      const own = this.own;
      if (own !== undefined && this.ownUsed + b.length <= own.length) {
        b.copy(own, this.ownUsed);
        this.ownUsed += b.length;
        const last = this.bufs.length - 1;
        const view = this.bufs[last] as Buffer;
        this.bufs[last] = own.subarray(view.byteOffset - own.byteOffset, this.ownUsed);
        return;
      }
      const fresh = Buffer.allocUnsafe(COALESCE_BUF);
      b.copy(fresh, 0);
      this.own = fresh;
      this.ownUsed = b.length;
      this.append(fresh.subarray(0, b.length));
      return;
    }
    this.own = undefined;
    this.append(b);
  }

  private append(view: Buffer): void {
    // A last buffer read to its end stays in place (the buffer being filled may grow); drop it now.
    if (this.first === this.bufs.length - 1 && this.head === (this.bufs[this.first] as Buffer).length) {
      this.bufs.length = this.first;
      this.head = 0;
    }
    this.bufs.push(view);
  }

  /** `n` bytes from the front (n ≤ length), not consumed: a view when they are contiguous. */
  peek(n: number): Buffer {
    const b = this.bufs[this.first];
    if (b !== undefined && b.length - this.head >= n) return b.subarray(this.head, this.head + n);
    const out = Buffer.allocUnsafe(n);
    let o = 0;
    let h = this.head;
    for (let i = this.first; o < n; i++) {
      const c = this.bufs[i] as Buffer;
      const k = Math.min(c.length - h, n - o);
      c.copy(out, o, h, h + k);
      o += k;
      h = 0;
    }
    return out;
  }

  /** The first contiguous piece, at most `n` bytes (call only when length > 0). */
  front(n: number): Buffer {
    const b = this.bufs[this.first] as Buffer;
    return b.subarray(this.head, Math.min(b.length, this.head + n));
  }

  skip(n: number): void {
    this.length -= n;
    while (n > 0) {
      const b = this.bufs[this.first] as Buffer;
      const k = b.length - this.head;
      if (n < k || (n === k && this.first === this.bufs.length - 1)) {
        this.head += n;
        break;
      }
      n -= k;
      this.first++;
      this.head = 0;
    }
    if (this.first > 64) {
      this.bufs = this.bufs.slice(this.first);
      this.first = 0;
    }
  }

  clear(): void {
    this.bufs = [];
    this.first = 0;
    this.head = 0;
    this.own = undefined;
    this.length = 0;
  }
}

/** Where one entry's data goes: SHA-256, CRC-32, length, and a copy of go.mod. */
class Sink {
  private readonly sha: Hash = createHash('sha256');
  crc = 0;
  n = 0;
  over = false;
  private parts: Buffer[] | undefined;

  constructor(
    /** The most output this entry may have. */
    readonly limit: number,
    /** Keep the output up to this many bytes (go.mod), or not at all. */
    private readonly capture: number | undefined,
  ) {
    if (capture !== undefined) this.parts = [];
  }

  room(): number {
    return this.limit - this.n;
  }

  /** Takes the next output; false (and nothing taken) once the limit is passed. */
  take(b: Buffer, copy: boolean): boolean {
    if (this.over) return false;
    if (b.length > this.limit - this.n) {
      this.over = true;
      return false;
    }
    this.n += b.length;
    this.sha.update(b);
    this.crc = zlib.crc32(b, this.crc);
    if (this.parts !== undefined) {
      if (this.n > (this.capture as number)) this.parts = undefined;
      else this.parts.push(copy ? Buffer.from(b) : b);
    }
    return true;
  }

  done(e: LocalEntry): void {
    e.usize = this.n;
    e.crc = this.crc >>> 0;
    e.sha256 = this.sha.digest();
    if (this.parts !== undefined) e.goMod = Buffer.concat(this.parts);
  }
}

/**
 * A zlib stream for one entry's data, fed piece by piece (each write awaited, so the caller's
 * push waits for the thread pool: that is the backpressure). It reports how much of each piece
 * the deflate stream took, which is how the end of data of unknown length is found.
 */
class StreamInflater {
  private readonly z: zlib.InflateRaw;
  failed: Error | undefined;
  private ended = false;
  private closed = false;
  private waiters: (() => void)[] = [];

  /** Output looked like a deflate bomb (see BOMB_RATIO). */
  bomb = false;

  constructor(
    private readonly sink: Sink,
    private readonly guardRatio: boolean,
  ) {
    this.z = zlib.createInflateRaw({ chunkSize: 64 << 10 });
    this.z.on('data', (c: Buffer) => {
      // Past the limit: stop the thread pool at once (a destroyed stream inflates no further).
      if (!this.sink.take(c, false)) {
        this.z.destroy();
      } else if (this.guardRatio && this.sink.n > BOMB_OUTPUT && this.sink.n > BOMB_RATIO * this.z.bytesWritten) {
        this.bomb = true;
        this.z.destroy();
      }
    });
    this.z.on('error', (err: Error) => {
      this.failed ??= err;
      this.wake();
    });
    this.z.on('end', () => {
      this.ended = true;
      this.wake();
    });
    this.z.on('close', () => {
      this.closed = true;
      this.wake();
    });
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  get dead(): boolean {
    return this.closed || this.failed !== undefined || this.sink.over || this.bomb;
  }

  /** Feeds `b`; resolves with how many of its bytes the deflate stream consumed. */
  write(b: Buffer): Promise<number> {
    const before = this.z.bytesWritten;
    return new Promise<number>((resolve) => {
      let settled = false;
      const done = (): void => {
        if (settled) return;
        settled = true;
        this.waiters = this.waiters.filter((w) => w !== done);
        resolve(this.z.bytesWritten - before);
      };
      // A destroyed stream may never call back: 'close' (or 'error') settles the write too.
      this.waiters.push(done);
      this.z.write(b, () => done());
    });
  }

  /** Ends the input (a truncated deflate stream then fails) and waits for the last output. */
  async end(): Promise<void> {
    if (!this.dead && !this.ended) this.z.end();
    await this.settled();
  }

  /** Waits until all output has been delivered, or the stream failed or was destroyed. */
  settled(): Promise<void> {
    if (this.ended || this.dead) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /**
   * The deflate stream ended cleanly and every byte of output was delivered. (Not `dead`: once
   * both sides have ended, the stream closes itself, possibly before the caller looks.)
   */
  get complete(): boolean {
    return this.ended && this.failed === undefined && !this.sink.over && !this.bomb;
  }

  destroy(): void {
    if (!this.closed) this.z.destroy();
  }
}

type Phase =
  | { kind: 'header' }
  /** Known length, stored: hashed as it arrives. */
  | { kind: 'stored'; entry: LocalEntry; sink: Sink; remaining: number }
  /** Known length, deflated: inflated in one call once it is all here, or through a zlib stream. */
  | { kind: 'deflate'; entry: LocalEntry; sink: Sink; remaining: number; inflater: StreamInflater | undefined }
  /** Deflated, followed by a data descriptor: the deflate stream itself says where it ends. */
  | { kind: 'deflate-open'; entry: LocalEntry; sink: Sink; inflater: StreamInflater | undefined }
  /** Known length we do not check (a method we cannot read, or data that already failed). */
  | { kind: 'skip'; entry: LocalEntry; remaining: number }
  | { kind: 'descriptor'; entry: LocalEntry }
  /** Central directory records, read as they arrive (as yauzl reads them from the file). */
  | { kind: 'central' }
  /** The parse ended (central directory reached, or local entries that cannot be followed). */
  | { kind: 'stopped' };

interface SyncInflateResult {
  buffer: Buffer;
  engine: { bytesWritten: number };
}

/**
 * Checks a module zip fed in order as it downloads. Call `push` for each chunk (awaiting each),
 * then `finish` with the file the same bytes were written to. `finish` answers exactly as
 * checkModuleZip(zipPath, modulePath, version, limits) would; when the stream could be verified
 * it reads only the end records from the file (or, failing that, the central directory), and
 * otherwise it runs checkModuleZip. `abort` frees the work under way of a download given up.
 *
 * Pushed chunks are read, not copied when large: do not modify a chunk after pushing it.
 */
export class StreamingZipCheck {
  private readonly lim: ResolvedLimits;
  private readonly invalid: (cause: string, err?: unknown) => ZipError;
  private readonly goModName: Buffer;
  private readonly licenseName: Buffer;
  /** Set when the arguments or the byte count already prove the zip bad: every push rejects with it. */
  private failure: ZipError | undefined;
  private readonly queue = new ByteQueue();
  /** Offset of the queue's first byte in the zip. */
  private pos = 0;
  private total = 0;
  private phase: Phase = { kind: 'header' };
  private readonly entries = new Map<number, LocalEntry>();
  /**
   * The central directory as streamed: where it started, its records (as OpenZip would list
   * them) and the module rules applied to them so far. `central` is undefined unless the
   * records followed the local entries and could all be read as yauzl reads them.
   */
  private central: { start: number; end: number; entries: RawEntry[]; rules: NameRules } | undefined;
  private centralDone = false;
  /** Output the stream may still inflate, all entries together (the zip's limit on its contents). */
  private budget: number;
  private syncWork = 0;
  private tail: Promise<void> = Promise.resolve();
  private finishing = false;
  private aborted = false;
  private stopReason: string | undefined;
  private fallbackWhy: string | undefined;
  private fellBack = false;
  private dirFromStream = false;

  constructor(
    private readonly modulePath: string,
    private readonly version: string,
    private readonly limits?: ZipLimits,
  ) {
    this.lim = resolveLimits(limits);
    this.invalid = invalidFor(modulePath, version);
    this.goModName = Buffer.from(`${modulePath}@${version}/go.mod`, 'utf8');
    this.licenseName = Buffer.from(`${modulePath}@${version}/LICENSE`, 'utf8');
    this.budget = this.lim.maxTotalSize;
    try {
      checkZipTarget(modulePath, version);
    } catch (err) {
      // finish() checks again and throws what checkModuleZip throws; pushes refuse at once.
      this.failure = err instanceof ZipError ? err : this.invalid(String(err));
      this.stop('bad module path or version');
    }
  }

  /** finish() had to run checkModuleZip over the whole file (for tests and metrics). */
  get usedFallback(): boolean {
    return this.fellBack;
  }

  /**
   * finish() took the central directory (and the module rules' verdict on it) from the stream,
   * reading only the end records from the file.
   */
  get usedStreamedDirectory(): boolean {
    return this.dirFromStream;
  }

  /** Why finish() fell back, when it did. */
  get fallbackReason(): string | undefined {
    return this.fallbackWhy;
  }

  /**
   * Feeds the next bytes of the zip. Work on them (parsing, inflating, hashing) is done before the
   * promise resolves, a bounded amount per byte. Rejects with a ZipError only when the bytes
   * already prove that checkModuleZip will refuse the file: the module path or version is bad, or
   * the zip has grown past the size limit. (Nothing in the entries proves more before the central
   * directory is known: it decides which local entries count.)
   */
  push(chunk: Buffer): Promise<void> {
    if (this.finishing) return Promise.reject(new Error('StreamingZipCheck: push after finish'));
    const run = this.tail.then(() => this.take(chunk));
    this.tail = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  /**
   * All bytes have been pushed and written to `zipPath`: resolves or rejects as
   * checkModuleZip(zipPath, modulePath, version, limits) would.
   */
  async finish(zipPath: string): Promise<CheckedZip> {
    if (this.finishing) throw new Error(this.aborted ? 'StreamingZipCheck: aborted' : 'StreamingZipCheck: finish called twice');
    this.finishing = true;
    await this.tail;
    if (this.failure === undefined) {
      try {
        await this.parse(true);
      } catch (err) {
        this.stop(`internal error while streaming: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    this.release();

    // As checkModuleZip: the module path and version first, then the directory, its rules, the data.
    checkZipTarget(this.modulePath, this.version);
    let why = await this.directoryFromStream(zipPath);
    if (typeof why !== 'string') {
      const [entries, plan] = why;
      this.dirFromStream = true;
      acceptPlan(plan, this.modulePath, this.version);
      const done = this.verify(entries, plan.entries);
      if (typeof done !== 'string') return checkedZip(done.hashes, plan, done.goMod);
      why = done;
    } else {
      // The directory could not be taken from the stream: read it from the file as checkModuleZip does.
      const zip = await openZip(zipPath, this.lim, this.invalid);
      try {
        const plan = planZip(zip.entries, this.modulePath, this.version, this.lim);
        if (zip.size !== this.total) {
          why = `the file has ${zip.size} bytes, ${this.total} were pushed`;
        } else {
          const done = this.verify(zip.entries, plan.entries);
          if (typeof done !== 'string') return checkedZip(done.hashes, plan, done.goMod);
          why = done;
        }
      } catch (err) {
        throw asZipError(err, this.invalid);
      } finally {
        await zip.close();
      }
    }
    this.fellBack = true;
    this.fallbackWhy = this.stopReason === undefined ? why : `${why} (streaming stopped: ${this.stopReason})`;
    return checkModuleZip(zipPath, this.modulePath, this.version, this.limits);
  }

  /**
   * The central directory read while streaming, if the file's end records (found as OpenZip finds
   * them) place it exactly there: then OpenZip would list the same entries without error, and its
   * rules have already been applied. Otherwise why not (a string).
   */
  private async directoryFromStream(zipPath: string): Promise<[RawEntry[], NamePlan] | string> {
    const cd = this.central;
    if (cd === undefined || !this.centralDone) return 'the central directory was not streamed';
    let fh: FileHandle;
    try {
      fh = await open(zipPath, 'r');
    } catch {
      return 'cannot open the file';
    }
    try {
      const st = await fh.stat();
      if (!st.isFile() || st.size > this.lim.maxZipSize) return 'not a file, or too large';
      if (st.size !== this.total) return `the file has ${st.size} bytes, ${this.total} were pushed`;
      const dir = await locateDirectory(fh, st.size);
      if (dir.cdOffset !== cd.start || dir.cdSize !== cd.end - cd.start || dir.entryCount !== cd.entries.length) {
        return 'the end records do not describe the streamed central directory';
      }
      return [cd.entries, cd.rules.plan];
    } catch {
      // OpenZip will say what is wrong.
      return 'the end records were refused';
    } finally {
      await fh.close();
    }
  }

  /** Stops work for a zip that will not be finished (frees the inflater; later calls fail). */
  abort(): void {
    this.finishing = true;
    this.aborted = true;
    this.stop('aborted');
  }

  /**
   * Matches every central entry with the local entry streamed at its offset. Returns the hashes
   * (in file order, as checkModuleZip collects them) and go.mod, or why they cannot be trusted.
   */
  private verify(entries: RawEntry[], plans: Map<RawEntry, EntryPlan>): { hashes: HashedName[]; goMod: Buffer | undefined } | string {
    const hashes: HashedName[] = [];
    let goMod: Buffer | undefined;
    for (const e of entriesByOffset(entries)) {
      const s = this.entries.get(e.localHeaderOffset);
      const what = `entry ${e.index} at offset ${e.localHeaderOffset}`;
      if (s === undefined) return `${what} was not streamed`;
      if (!s.ok) return `${what} could not be verified while streaming`;
      if (!s.nameBytes.equals(e.nameBytes)) return `${what} has another name in its local header`;
      if (s.flags !== e.flags || s.method !== e.method) return `${what} has other flags or method in its local header`;
      if (s.csize !== e.compressedSize || s.usize !== e.uncompressedSize) return `${what} has other sizes than streamed`;
      // archive/zip: a flagged entry's descriptor CRC must be the central one, and the data's too;
      // checkModuleZip also refuses a CRC of 0 that Go would skip (strictCrc).
      if (s.crc !== e.crc32) return `${what} has another CRC-32 than streamed`;
      if ((e.flags & FLAG_DESCRIPTOR) !== 0 && s.descriptorCrc !== e.crc32) return `${what} has another descriptor CRC-32`;
      const info = plans.get(e) as EntryPlan;
      if (info.isDir) {
        hashes.push({ name: e.nameBytes, sha256: EMPTY_SHA256 });
        continue;
      }
      if (info.isGoMod) {
        if (s.goMod === undefined) return `${what} (go.mod) was not kept`;
        goMod = s.goMod;
      }
      hashes.push({ name: e.nameBytes, sha256: s.sha256 as Buffer });
    }
    return { hashes, goMod };
  }

  private async take(chunk: Buffer): Promise<void> {
    if (this.aborted) throw new Error('StreamingZipCheck: aborted');
    this.total += chunk.length;
    if (this.failure === undefined && this.total > this.lim.maxZipSize) {
      this.failure = this.invalid(`module zip file is too large (more than ${this.lim.maxZipSize} bytes)`);
      this.stop('size limit');
    }
    if (this.failure !== undefined) throw this.failure;
    if (this.phase.kind === 'stopped') return;
    this.queue.push(chunk);
    try {
      await this.parse(false);
    } catch (err) {
      // A bug here must not break the download: finish() falls back to the full check.
      this.stop(`internal error while streaming: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  private stop(reason: string): void {
    if (this.phase.kind !== 'stopped') this.stopReason ??= reason;
    this.release();
    this.phase = { kind: 'stopped' };
    this.queue.clear();
  }

  private release(): void {
    const p = this.phase;
    if ((p.kind === 'deflate' || p.kind === 'deflate-open') && p.inflater !== undefined) p.inflater.destroy();
  }

  private consume(n: number): void {
    this.queue.skip(n);
    this.pos += n;
  }

  /** Counts synchronous work, yielding to the event loop now and then. */
  private async worked(n: number): Promise<void> {
    this.syncWork += n;
    if (this.syncWork > SYNC_BUDGET) {
      this.syncWork = 0;
      await new Promise((r) => setImmediate(r));
    }
  }

  /** Runs the parser over what has been pushed; `eof`: nothing more will come. */
  private async parse(eof: boolean): Promise<void> {
    for (;;) {
      const p = this.phase;
      switch (p.kind) {
        case 'stopped':
          return;
        case 'header':
          if (!this.header(eof)) return;
          break;
        case 'stored':
          if (!(await this.stored(p, eof))) return;
          break;
        case 'deflate':
          if (!(await this.deflate(p, eof))) return;
          break;
        case 'deflate-open':
          if (!(await this.deflateOpen(p, eof))) return;
          break;
        case 'skip': {
          const k = Math.min(p.remaining, this.queue.length);
          this.consume(k);
          p.remaining -= k;
          if (p.remaining > 0) {
            if (eof) this.stop('truncated entry');
            return;
          }
          this.afterData(p.entry);
          break;
        }
        case 'descriptor':
          if (!this.descriptor(p.entry, eof)) return;
          break;
        case 'central':
          if (!(await this.centralRecord(eof))) return;
          break;
      }
    }
  }

  /** Parses a local file header; false when more bytes are needed. */
  private header(eof: boolean): boolean {
    const q = this.queue;
    if (q.length < LOCAL_LEN) {
      if (!eof) return false;
      // A zip without entries is just its end record (22 bytes and a comment).
      if (q.length >= 4 && q.peek(4).readUInt32LE(0) === EOCD_SIG) {
        this.central = { start: this.pos, end: this.pos, entries: [], rules: new NameRules(`${this.modulePath}@${this.version}/`, this.lim) };
        this.centralDone = true;
        this.stop('end of central directory');
      } else {
        this.stop('truncated local header');
      }
      return false;
    }
    const h = q.peek(LOCAL_LEN);
    const sig = h.readUInt32LE(0);
    if (sig !== LOCAL_SIG) {
      if (sig === CENTRAL_SIG || sig === EOCD_SIG || sig === EOCD64_SIG) {
        // The central directory (perhaps empty): read it too, so finish() need not.
        this.central = { start: this.pos, end: this.pos, entries: [], rules: new NameRules(`${this.modulePath}@${this.version}/`, this.lim) };
        this.phase = { kind: 'central' };
      } else {
        this.stop(`no local header at offset ${this.pos}`);
      }
      return true;
    }
    if (this.entries.size >= MAX_ENTRIES) {
      this.stop('too many entries');
      return true;
    }
    const nameLen = h.readUInt16LE(26);
    const extraLen = h.readUInt16LE(28);
    const len = LOCAL_LEN + nameLen + extraLen;
    if (q.length < len) {
      if (eof) this.stop('truncated local header');
      return false;
    }
    const all = q.peek(len);
    const flags = h.readUInt16LE(6);
    const method = h.readUInt16LE(8);
    let csize = h.readUInt32LE(18);
    let usize = h.readUInt32LE(22);
    if (csize === U32_MAX || usize === U32_MAX) {
      const z = zip64Sizes(all.subarray(LOCAL_LEN + nameLen), usize === U32_MAX, csize === U32_MAX);
      if (z !== undefined) [usize, csize] = [z.usize ?? usize, z.csize ?? csize];
    }
    const entry: LocalEntry = {
      offset: this.pos,
      nameBytes: Buffer.from(all.subarray(LOCAL_LEN, LOCAL_LEN + nameLen)),
      flags,
      method,
      csize: 0,
      usize: 0,
      crc: 0,
      sha256: undefined,
      descriptorCrc: undefined,
      ok: false,
      goMod: undefined,
    };
    this.entries.set(this.pos, entry);
    this.consume(len);

    const descriptor = (flags & FLAG_DESCRIPTOR) !== 0;
    if (descriptor && method === 8) {
      // No size is declared before the data: the limits that the central directory's size must
      // meet bound it (more output, and that size would be refused before any data is read).
      let limit = this.budget;
      if (entry.nameBytes.equals(this.goModName)) limit = Math.min(limit, this.lim.maxGoModSize);
      else if (entry.nameBytes.equals(this.licenseName)) limit = Math.min(limit, this.lim.maxLicenseSize);
      this.phase = { kind: 'deflate-open', entry, sink: this.sink(entry, limit), inflater: undefined };
      return true;
    }
    // Otherwise the header gives the length (with a descriptor, only tentatively: the central
    // directory's size must agree, or the entry is not used).
    if (csize === U32_MAX) {
      this.stop(`entry at offset ${entry.offset} has no usable size`);
      return true;
    }
    entry.csize = csize;
    const limit = Math.min(usize, this.budget);
    if (method === 0) this.phase = { kind: 'stored', entry, sink: this.sink(entry, limit), remaining: csize };
    else if (method === 8) this.phase = { kind: 'deflate', entry, sink: this.sink(entry, limit), remaining: csize, inflater: undefined };
    else this.phase = { kind: 'skip', entry, remaining: csize };
    return true;
  }

  private sink(entry: LocalEntry, limit: number): Sink {
    return new Sink(limit, entry.nameBytes.equals(this.goModName) ? this.lim.maxGoModSize : undefined);
  }

  /** The entry's data has been read: to its descriptor, or to the next header. */
  private afterData(entry: LocalEntry): void {
    if ((entry.flags & FLAG_DESCRIPTOR) !== 0) this.phase = { kind: 'descriptor', entry };
    else this.phase = { kind: 'header' };
  }

  /** The data has been read with `sink` as its output; `clean` if nothing went wrong. */
  private dataDone(entry: LocalEntry, sink: Sink, clean: boolean): void {
    sink.done(entry);
    this.budget -= sink.n;
    entry.ok = clean && !sink.over;
    // A stored entry's "uncompressed" length is its data's.
    if (entry.method === 0 && entry.ok && entry.usize !== entry.csize) entry.ok = false;
  }

  private async stored(p: Extract<Phase, { kind: 'stored' }>, eof: boolean): Promise<boolean> {
    while (p.remaining > 0) {
      if (this.queue.length === 0) {
        if (eof) this.stop('truncated entry');
        return false;
      }
      const b = this.queue.front(p.remaining);
      if (!p.sink.take(b, true)) {
        // More than the header declares: not usable (the central directory decides whether it matters).
        this.dataDone(p.entry, p.sink, false);
        this.phase = { kind: 'skip', entry: p.entry, remaining: p.remaining };
        return true;
      }
      this.consume(b.length);
      p.remaining -= b.length;
      await this.worked(b.length);
    }
    this.dataDone(p.entry, p.sink, true);
    this.afterData(p.entry);
    return true;
  }

  private async deflate(p: Extract<Phase, { kind: 'deflate' }>, eof: boolean): Promise<boolean> {
    const csize = p.entry.csize;
    if (p.inflater === undefined && csize <= SYNC_INPUT && p.sink.limit <= SYNC_OUTPUT) {
      if (this.queue.length < csize) {
        if (eof) this.stop('truncated entry');
        return false;
      }
      const r = inflateSync(this.queue.peek(csize), p.sink);
      // The deflate stream must end exactly where the data does.
      const clean = r.ok && r.consumed === csize;
      this.dataDone(p.entry, p.sink, clean);
      this.consume(csize);
      await this.worked(csize + p.sink.n);
      this.afterData(p.entry);
      return true;
    }
    p.inflater ??= new StreamInflater(p.sink, false);
    const inf = p.inflater;
    while (p.remaining > 0) {
      if (this.queue.length < Math.min(p.remaining, MIN_FEED)) {
        if (eof) this.stop('truncated entry');
        return false;
      }
      const b = this.queue.front(Math.min(p.remaining, ASYNC_FEED));
      const took = await inf.write(b);
      this.consume(b.length);
      p.remaining -= b.length;
      if (inf.dead || took < b.length) {
        // Corrupt, too large, or the deflate stream ended before the data did.
        inf.destroy();
        this.dataDone(p.entry, p.sink, false);
        this.phase = { kind: 'skip', entry: p.entry, remaining: p.remaining };
        return true;
      }
    }
    await inf.end();
    const clean = inf.complete;
    inf.destroy();
    this.dataDone(p.entry, p.sink, clean);
    this.afterData(p.entry);
    return true;
  }

  private async deflateOpen(p: Extract<Phase, { kind: 'deflate-open' }>, eof: boolean): Promise<boolean> {
    const entry = p.entry;
    if (p.inflater === undefined) {
      // First try one synchronous call over what is here (most entries end within it).
      if (this.queue.length < SYNC_INPUT && !eof) return false;
      const avail = Math.min(this.queue.length, SYNC_INPUT);
      // What is contiguous first (no copy); most entries end within it. Only if the deflate
      // stream runs past it are the pieces joined.
      const first = this.queue.front(avail);
      let r = inflateSync(first, p.sink, SYNC_OUTPUT);
      if (!r.ok && r.failure === 'truncated' && first.length < avail) r = inflateSync(this.queue.peek(avail), p.sink, SYNC_OUTPUT);
      await this.worked(avail + p.sink.n);
      if (r.ok) {
        entry.csize = r.consumed;
        this.dataDone(entry, p.sink, true);
        this.consume(r.consumed);
        this.phase = { kind: 'descriptor', entry };
        return true;
      }
      if (r.failure === 'corrupt' || (r.failure === 'truncated' && eof) || (r.failure === 'large' && !r.syncCapped)) {
        this.dataDone(entry, p.sink, false);
        this.stop(`entry at offset ${entry.offset}: deflate data ${r.failure}`);
        return true;
      }
      // Longer (or larger) than one call takes: start over from the data's start with a stream
      // (the failed call took nothing into the sink).
      p.inflater = new StreamInflater(p.sink, true);
    }
    const inf = p.inflater;
    for (;;) {
      if (this.queue.length === 0 || (this.queue.length < MIN_FEED && !eof)) {
        if (eof) this.stop('truncated entry');
        return false;
      }
      const b = this.queue.front(ASYNC_FEED);
      const took = await inf.write(b);
      entry.csize += took;
      this.consume(took);
      if (inf.dead) {
        inf.destroy();
        this.dataDone(entry, p.sink, false);
        this.stop(`entry at offset ${entry.offset}: deflate data ${inf.bomb ? 'inflates too far for its size' : 'corrupt or too large'}`);
        return true;
      }
      if (took < b.length) break;
    }
    // The deflate stream ended inside the last piece: what follows is the descriptor.
    await inf.settled();
    const clean = inf.complete;
    inf.destroy();
    this.dataDone(entry, p.sink, clean);
    if (!clean) {
      this.stop(`entry at offset ${entry.offset}: deflate data corrupt or too large`);
      return true;
    }
    this.phase = { kind: 'descriptor', entry };
    return true;
  }

  /**
   * One central directory record, parsed exactly as yauzl parses it for OpenZip (same fields, same
   * zip64 rule), and put through the module rules. Anything yauzl would refuse (or that we are not
   * sure it reads alike) ends the streamed directory: finish() then reads it from the file.
   */
  private async centralRecord(eof: boolean): Promise<boolean> {
    const cd = this.central as NonNullable<StreamingZipCheck['central']>;
    const q = this.queue;
    if (q.length < 4) {
      if (eof) this.stop('truncated central directory');
      return false;
    }
    if (q.peek(4).readUInt32LE(0) !== CENTRAL_SIG) {
      // The end records follow; finish() checks they agree with what was read here.
      this.centralDone = true;
      this.stop('end of central directory');
      return true;
    }
    if (q.length < CENTRAL_LEN) {
      if (eof) this.stop('truncated central directory');
      return false;
    }
    const h = q.peek(CENTRAL_LEN);
    const len = CENTRAL_LEN + h.readUInt16LE(28) + h.readUInt16LE(30) + h.readUInt16LE(32);
    if (q.length < len) {
      if (eof) this.stop('truncated central directory');
      return false;
    }
    const r = q.peek(len);
    const e = cd.entries.length < MAX_ENTRIES ? centralEntry(r, cd.entries.length) : undefined;
    if (e === undefined) {
      this.central = undefined;
      this.stop(`central directory record at offset ${this.pos} left to the file reader`);
      return true;
    }
    cd.entries.push(e);
    cd.rules.add(e);
    this.consume(len);
    cd.end = this.pos;
    await this.worked(len * 8);
    return true;
  }

  /**
   * A data descriptor, read as archive/zip reads it (optional signature, then the CRC-32; the
   * sizes are not used). Its length (32- or 64-bit sizes) is only known by what follows it.
   */
  private descriptor(entry: LocalEntry, eof: boolean): boolean {
    const want = 4 + 20 + 4;
    if (this.queue.length < want && !eof) return false;
    const d = this.queue.peek(Math.min(want, this.queue.length));
    const off = d.length >= 4 && d.readUInt32LE(0) === DESCRIPTOR_SIG ? 4 : 0;
    if (d.length < off + 12) {
      entry.ok = false;
      this.stop('truncated data descriptor');
      return true;
    }
    entry.descriptorCrc = d.readUInt32LE(off);
    const fits32 = d.readUInt32LE(off + 4) === entry.csize && d.readUInt32LE(off + 8) === entry.usize;
    const fits64 = d.length >= off + 20 && Number(d.readBigUInt64LE(off + 4)) === entry.csize && Number(d.readBigUInt64LE(off + 12)) === entry.usize;
    const candidates = fits64 && !fits32 ? [off + 20, off + 12] : [off + 12, off + 20];
    for (const len of candidates) {
      if (d.length >= len + 4 && NEXT_SIGS.has(d.readUInt32LE(len))) {
        this.consume(len);
        this.phase = { kind: 'header' };
        return true;
      }
    }
    this.stop(`cannot tell where the data descriptor at offset ${this.pos} ends`);
    return true;
  }
}

interface SyncOutcome {
  ok: boolean;
  consumed: number;
  failure?: 'corrupt' | 'truncated' | 'large';
  /** The output cap was the synchronous one, not the entry's own limit. */
  syncCapped?: boolean;
}

/**
 * Inflates `raw` in one call into `sink`. Reports how many input bytes the deflate stream used
 * (it may end before `raw` does). `cap` bounds the output of this call below the sink's limit.
 */
function inflateSync(raw: Buffer, sink: Sink, cap = Infinity): SyncOutcome {
  const limit = sink.room();
  const max = Math.min(limit, cap);
  let r: SyncInflateResult;
  try {
    // `info: true` (documented for the convenience methods) also returns the engine, whose
    // bytesWritten is the input the deflate stream consumed; maxOutputLength keeps a bomb from
    // costing more than the limit.
    r = zlib.inflateRawSync(raw, { info: true, maxOutputLength: Math.max(1, max + 1) }) as unknown as SyncInflateResult;
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (code === 'ERR_BUFFER_TOO_LARGE') {
      if (max >= limit) sink.over = true;
      return { ok: false, consumed: 0, failure: 'large', syncCapped: max < limit };
    }
    if (code === 'Z_BUF_ERROR') return { ok: false, consumed: 0, failure: 'truncated' };
    return { ok: false, consumed: 0, failure: 'corrupt' };
  }
  if (r.buffer.length > max) {
    if (max >= limit) sink.over = true;
    return { ok: false, consumed: 0, failure: 'large', syncCapped: max < limit };
  }
  sink.take(r.buffer, false);
  return { ok: true, consumed: r.engine.bytesWritten };
}

/**
 * A central directory record as yauzl reads it (zipreader.ts readEntries), or undefined where
 * yauzl would fail or where the values are beyond what we mirror (above 2^53).
 */
function centralEntry(r: Buffer, index: number): RawEntry | undefined {
  const flags = r.readUInt16LE(8);
  // yauzl: "strong encryption is not supported".
  if ((flags & 0x40) !== 0) return undefined;
  const nameLen = r.readUInt16LE(28);
  const extraLen = r.readUInt16LE(30);
  const method = r.readUInt16LE(10);
  let csize = r.readUInt32LE(20);
  let usize = r.readUInt32LE(24);
  let offset = r.readUInt32LE(42);
  // yauzl's parseExtraFields, then its zip64 rule: the first field with id 1 holds, in order, the
  // values whose 32-bit fields are saturated.
  const extra = r.subarray(CENTRAL_LEN + nameLen, CENTRAL_LEN + nameLen + extraLen);
  let zip64: Buffer | undefined;
  for (let i = 0; i < extra.length - 3;) {
    const id = extra.readUInt16LE(i);
    const end = i + 4 + extra.readUInt16LE(i + 2);
    if (end > extra.length) return undefined;
    if (id === ZIP64_EXTRA_ID && zip64 === undefined) zip64 = extra.subarray(i + 4, end);
    i = end;
  }
  if (zip64 !== undefined) {
    let o = 0;
    const next = (): number | undefined => {
      if (o + 8 > (zip64 as Buffer).length) return undefined;
      const v = (zip64 as Buffer).readBigUInt64LE(o);
      o += 8;
      return v > BigInt(Number.MAX_SAFE_INTEGER) ? undefined : Number(v);
    };
    if (usize === U32_MAX) {
      const v = next();
      if (v === undefined) return undefined;
      usize = v;
    }
    if (csize === U32_MAX) {
      const v = next();
      if (v === undefined) return undefined;
      csize = v;
    }
    if (offset === U32_MAX) {
      const v = next();
      if (v === undefined) return undefined;
      offset = v;
    }
  }
  // yauzl validateEntrySizes: a stored entry's sizes must agree (12 more for the encryption header).
  if (method === 0 && csize !== usize + ((flags & 0x1) !== 0 ? 12 : 0)) return undefined;
  const nameBytes = Buffer.from(r.subarray(CENTRAL_LEN, CENTRAL_LEN + nameLen));
  return {
    index,
    nameBytes,
    name: entryName(nameBytes),
    flags,
    method,
    crc32: r.readUInt32LE(16),
    compressedSize: csize,
    uncompressedSize: usize,
    localHeaderOffset: offset,
    versionMadeBy: r.readUInt16LE(4),
    externalAttributes: r.readUInt32LE(38),
  };
}

/** Sizes from a zip64 extended-information extra field (only those the header saturates, in order). */
function zip64Sizes(extra: Buffer, needU: boolean, needC: boolean): { usize?: number; csize?: number } | undefined {
  let i = 0;
  while (i + 4 <= extra.length) {
    const id = extra.readUInt16LE(i);
    const size = extra.readUInt16LE(i + 2);
    const body = extra.subarray(i + 4, i + 4 + size);
    if (body.length !== size) return undefined;
    if (id === ZIP64_EXTRA_ID) {
      const out: { usize?: number; csize?: number } = {};
      let o = 0;
      const next = (): number | undefined => {
        if (o + 8 > body.length) return undefined;
        const v = body.readBigUInt64LE(o);
        o += 8;
        return v > BigInt(Number.MAX_SAFE_INTEGER) ? undefined : Number(v);
      };
      if (needU) {
        const v = next();
        if (v === undefined) return undefined;
        out.usize = v;
      }
      if (needC) {
        const v = next();
        if (v === undefined) return undefined;
        out.csize = v;
      }
      return out;
    }
    i += 4 + size;
  }
  return undefined;
}
