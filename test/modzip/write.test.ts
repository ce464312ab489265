// writeModuleZip's own zip writer: what the comparisons with zip.Create in create.test.ts do not
// reach (more than 65535 entries, large files streamed with a data descriptor, empty files),
// the exact layout of what it writes, backpressure, and failures of sources and of the output.
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { PassThrough, Readable, Writable } from 'node:stream';
import zlib from 'node:zlib';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { checkModuleZip, hash1, writeModuleZip, ZipError, type ZipSourceFile } from '../../src/modzip/index.js';
import { SegmentDeflater, storedBlocks } from '../../src/modzip/zipwriter.js';
import { goCheck, goCreate, goHashZip, listTree, makeTmp, rng } from './helpers.js';

const MOD = 'example.com/m';
const VER = 'v1.2.3';
const PREFIX = `${MOD}@${VER}/`;
const opts = { modulePath: MOD, version: VER };

let tmp: { dir: string; cleanup: () => Promise<void> };
let counter = 0;
beforeAll(async () => {
  tmp = await makeTmp('write');
});
afterAll(async () => {
  await tmp.cleanup();
});

// Any unhandled rejection during a test fails it (the writer must mark every promise it drops).
let unhandled: unknown[] = [];
const onUnhandled = (reason: unknown): void => {
  unhandled.push(reason);
};
beforeEach(() => {
  unhandled = [];
  process.on('unhandledRejection', onUnhandled);
});
afterEach(async () => {
  await new Promise((r) => setTimeout(r, 20));
  process.off('unhandledRejection', onUnhandled);
  expect(unhandled).toEqual([]);
});

/** Text that deflates well, deterministic. */
function text(n: number, seed = 1): Buffer {
  const rand = rng(seed);
  const words = ['func', 'return', 'if', 'err', 'nil', 'package', 'import', 'struct', 'string', '{', '}', ':=', '\n', '\t'];
  const parts: string[] = [];
  let len = 0;
  while (len < n) {
    const w = (words[Math.floor(rand() * words.length)] as string) + ' ';
    parts.push(w);
    len += w.length;
  }
  return Buffer.from(parts.join('').slice(0, n));
}

/** A source over bytes in memory, in chunks of `chunk` bytes (copied, as a pipe would give them). */
function mem(name: string, data: Buffer, chunk = 64 << 10): ZipSourceFile {
  return {
    name,
    mode: 'file',
    size: data.length,
    open: () => {
      let at = 0;
      return new Readable({
        read() {
          if (at >= data.length) {
            this.push(null);
            return;
          }
          this.push(Buffer.from(data.subarray(at, at + chunk)));
          at += chunk;
        },
      });
    },
  };
}

const sha = (b: Buffer): Buffer => createHash('sha256').update(b).digest();
const expectedH1 = (files: { name: string; data: Buffer }[]): string => hash1(files.map((f) => ({ name: PREFIX + f.name, sha256: sha(f.data) })));

async function writeToFile(files: ZipSourceFile[]): Promise<{ zip: string; h1: string; size: number }> {
  const zip = path.join(tmp.dir, `w${counter++}.zip`);
  const r = await writeModuleZip(files, opts, createWriteStream(zip));
  return { zip, ...r };
}

interface CentralEntry {
  name: string;
  versionNeeded: number;
  flags: number;
  method: number;
  time: number;
  date: number;
  crc: number;
  csize: number;
  usize: number;
  offset: number;
  extraLen: number;
}

const u64 = (b: Buffer, at: number): number => b.readUInt32LE(at) + b.readUInt32LE(at + 4) * 0x100000000;

/** Reads a zip's end records and central directory byte by byte, independently of the code under test. */
function parseZip(z: Buffer): {
  entries: CentralEntry[];
  eocd: { count: number; cdSize: number; cdOffset: number };
  zip64?: { count: number; cdSize: number; cdOffset: number };
} {
  const e = z.length - 22;
  expect(z.readUInt32LE(e)).toBe(0x06054b50);
  expect(z.readUInt16LE(e + 20)).toBe(0); // no comment
  const eocd = { count: z.readUInt16LE(e + 10), cdSize: z.readUInt32LE(e + 12), cdOffset: z.readUInt32LE(e + 16) };
  expect(z.readUInt16LE(e + 8)).toBe(eocd.count);
  let zip64: { count: number; cdSize: number; cdOffset: number } | undefined;
  let cdOffset = eocd.cdOffset;
  let cdSize = eocd.cdSize;
  let count = eocd.count;
  if (e >= 20 && z.readUInt32LE(e - 20) === 0x07064b50) {
    const rec = u64(z, e - 20 + 8);
    expect(rec).toBe(e - 20 - 56);
    expect(z.readUInt32LE(rec)).toBe(0x06064b50);
    expect(u64(z, rec + 4)).toBe(44);
    zip64 = { count: u64(z, rec + 32), cdSize: u64(z, rec + 40), cdOffset: u64(z, rec + 48) };
    expect(u64(z, rec + 24)).toBe(zip64.count);
    ({ count, cdSize, cdOffset } = zip64);
    expect(cdOffset + cdSize).toBe(rec);
  } else {
    expect(cdOffset + cdSize).toBe(e);
  }
  const entries: CentralEntry[] = [];
  let p = cdOffset;
  for (let i = 0; i < count; i++) {
    // A plain check: expect() per record is far too slow for 70000 of them.
    if (z.readUInt32LE(p) !== 0x02014b50) throw new Error(`no central directory record at ${p}`);
    const nameLen = z.readUInt16LE(p + 28);
    const extraLen = z.readUInt16LE(p + 30);
    const commentLen = z.readUInt16LE(p + 32);
    entries.push({
      name: z.subarray(p + 46, p + 46 + nameLen).toString('utf8'),
      versionNeeded: z.readUInt16LE(p + 6),
      flags: z.readUInt16LE(p + 8),
      method: z.readUInt16LE(p + 10),
      time: z.readUInt16LE(p + 12),
      date: z.readUInt16LE(p + 14),
      crc: z.readUInt32LE(p + 16),
      csize: z.readUInt32LE(p + 20),
      usize: z.readUInt32LE(p + 24),
      offset: z.readUInt32LE(p + 42),
      extraLen,
    });
    p += 46 + nameLen + extraLen + commentLen;
  }
  expect(p).toBe(cdOffset + cdSize);
  return { entries, eocd, ...(zip64 ? { zip64 } : {}) };
}

/** What every entry we write has in common: UTF-8 names, fixed time, the prefix, no directories. */
function expectCommonLayout(entries: CentralEntry[]): void {
  const odd = entries.filter(
    (e) =>
      (e.flags & 0x800) === 0 ||
      e.time !== 0 ||
      e.date !== 0x21 ||
      !e.name.startsWith(PREFIX) ||
      e.name.endsWith('/') ||
      (e.method !== 0 && e.method !== 8) ||
      e.versionNeeded !== 20,
  );
  expect(odd).toEqual([]);
}

describe('more than 65535 entries (zip64 end records)', () => {
  // 65535 is the first count that needs them: 0xffff in the 16-bit field means "see zip64".
  for (const n of [65534, 65535, 70000]) {
    it(`${n} tiny files`, async () => {
      const files: { name: string; data: Buffer }[] = [];
      for (let i = 0; i < n; i++) {
        files.push({ name: `d${i % 97}/f${i}.txt`, data: i % 5 === 0 ? Buffer.alloc(0) : Buffer.from(`file ${i}\n`.repeat(1 + (i % 9))) });
      }
      const ours = await writeToFile(files.map((f) => mem(f.name, f.data)));
      const want = expectedH1(files);
      expect(ours.h1).toBe(want);

      const z = await readFile(ours.zip);
      expect(ours.size).toBe(z.length);
      const parsed = parseZip(z);
      expect(parsed.entries.length).toBe(n);
      expectCommonLayout(parsed.entries);
      if (n >= 0xffff) {
        // As Go writes it: every field of the old end record saturated, the zip64 record true.
        expect(parsed.zip64?.count).toBe(n);
        expect(parsed.eocd).toEqual({ count: 0xffff, cdSize: 0xffffffff, cdOffset: 0xffffffff });
      } else {
        expect(parsed.zip64).toBeUndefined();
        expect(parsed.eocd.count).toBe(n);
      }

      // Go reads it (HashZip reads every entry through archive/zip, checking sizes and CRCs).
      const go = await goHashZip(ours.zip);
      expect(go.err).toBeNull();
      expect(go.h1).toBe(want);
      if (n < 70000) return;
      // Our own checker (zip.CheckZip's rules) reads it the same way. (Go's whole check, with
      // Unzip, passes too but takes 10 s to write 70000 files.)
      const checked = await checkModuleZip(ours.zip, MOD, VER);
      expect(checked.h1).toBe(want);
      expect(checked.files).toBe(n);
    });
  }
});

describe('large files, streamed with a data descriptor', () => {
  it('incompressible, compressible, mixed, and segment-sized files read as Go writes them', async () => {
    const random = randomBytes(5 << 20);
    const tree: Record<string, Buffer> = {
      'go.mod': Buffer.from(`module ${MOD}\n\ngo 1.22\n`),
      'random.bin': random,
      'text.txt': text(6 << 20, 2),
      // Text then random then text: segments of both kinds in one deflate stream.
      'mixed.dat': Buffer.concat([text(1_500_000, 3), random.subarray(0, 1_200_000), text(900_000, 4)]),
      // Exactly two segments: the stream ends with a block of its own.
      'two-segments.txt': text(2 << 20, 5),
      'just-streamed.txt': text((256 << 10) + 1, 6),
      'largest-small.txt': text(256 << 10, 7),
      'zeros.bin': Buffer.alloc(3 << 20),
      'small.go': Buffer.from('package m\n'),
    };
    const root = path.join(tmp.dir, `tree${counter++}`);
    for (const [name, data] of Object.entries(tree)) {
      await mkdir(path.dirname(path.join(root, name)), { recursive: true });
      await writeFile(path.join(root, name), data);
    }
    const goZip = path.join(tmp.dir, `go${counter++}.zip`);
    const goMade = await goCreate('files', root, MOD, VER, goZip);
    expect(goMade.err).toBeNull();

    const ours = await writeToFile(await listTree(root));
    expect(ours.h1).toBe(goMade.h1);
    const go = await goCheck(ours.zip, MOD, VER);
    expect(go.err).toBeNull();
    expect(go.h1).toBe(goMade.h1);
    expect((await checkModuleZip(ours.zip, MOD, VER)).h1).toBe(goMade.h1);

    const z = await readFile(ours.zip);
    const { entries } = parseZip(z);
    expectCommonLayout(entries);
    const byName = new Map(entries.map((e) => [e.name.slice(PREFIX.length), e]));
    for (const [name, data] of Object.entries(tree)) {
      const e = byName.get(name) as CentralEntry;
      expect(e.usize, name).toBe(data.length);
      expect(e.crc, name).toBe(zlib.crc32(data));
      const streamed = data.length > 256 << 10;
      expect(e.flags & 0x8, name).toBe(streamed ? 0x8 : 0);
      expect(e.extraLen).toBe(0);
      if (streamed) {
        expect(e.method).toBe(8);
        // Local header: no sizes, no CRC; the descriptor after the data has them, with its signature.
        expect(z.readUInt32LE(e.offset)).toBe(0x04034b50);
        expect(z.readUInt16LE(e.offset + 6)).toBe(0x808);
        expect(z.readUInt32LE(e.offset + 14)).toBe(0);
        expect(z.readUInt32LE(e.offset + 18)).toBe(0);
        expect(z.readUInt32LE(e.offset + 22)).toBe(0);
        const dataStart = e.offset + 30 + z.readUInt16LE(e.offset + 26) + z.readUInt16LE(e.offset + 28);
        const d = dataStart + e.csize;
        expect([z.readUInt32LE(d), z.readUInt32LE(d + 4), z.readUInt32LE(d + 8), z.readUInt32LE(d + 12)]).toEqual([0x08074b50, e.crc, e.csize, e.usize]);
        expect(zlib.inflateRawSync(z.subarray(dataStart, d)).equals(data)).toBe(true);
      }
    }
    // Compression happened where it pays, and random data costs next to nothing extra.
    expect((byName.get('text.txt') as CentralEntry).csize).toBeLessThan((6 << 20) / 2);
    expect((byName.get('zeros.bin') as CentralEntry).csize).toBeLessThan(64 << 10);
    expect((byName.get('random.bin') as CentralEntry).csize).toBeLessThan((5 << 20) * 1.001 + 64);
  });

  it('segments laid end to end are one deflate stream, whatever the sizes', async () => {
    const rand = rng(99);
    for (const size of [0, 1, 65535, 65536, 1 << 20, (1 << 20) + 1, 3 << 20, (2 << 20) + 12345]) {
      for (const kind of ['text', 'random', 'alternating'] as const) {
        const data =
          kind === 'text'
            ? text(size, size)
            : kind === 'random'
              ? randomBytes(size)
              : Buffer.concat(Array.from({ length: Math.ceil(size / (1 << 20)) }, (_, i) => (i % 2 ? randomBytes(1 << 20) : text(1 << 20, i)))).subarray(
                  0,
                  size,
                );
        const out: Buffer[] = [];
        const d = new SegmentDeflater(async (b) => {
          out.push(b);
        });
        // Uneven chunks, as a pipe gives them.
        for (let at = 0; at < size;) {
          const n = 1 + Math.floor(rand() * 300_000);
          await d.write(data.subarray(at, at + n));
          at += n;
        }
        await d.end();
        expect(zlib.inflateRawSync(Buffer.concat(out)).equals(data), `${kind} ${size}`).toBe(true);
      }
    }
    expect(zlib.inflateRawSync(Buffer.concat(storedBlocks(Buffer.alloc(0), true))).length).toBe(0);
    const big = randomBytes(200_000);
    expect(zlib.inflateRawSync(Buffer.concat(storedBlocks(big, true))).equals(big)).toBe(true);
  });
});

describe('empty files', () => {
  it('are stored with no data, and Go agrees on everything', async () => {
    const tree: Record<string, Buffer> = {
      'go.mod': Buffer.from(`module ${MOD}\n`),
      'empty.go': Buffer.alloc(0),
      'sub/empty': Buffer.alloc(0),
      'sub/deeper/.keep': Buffer.alloc(0),
    };
    const root = path.join(tmp.dir, `tree${counter++}`);
    for (const [name, data] of Object.entries(tree)) {
      await mkdir(path.dirname(path.join(root, name)), { recursive: true });
      await writeFile(path.join(root, name), data);
    }
    const goMade = await goCreate('files', root, MOD, VER, path.join(tmp.dir, `go${counter++}.zip`));
    const ours = await writeToFile(await listTree(root));
    expect(ours.h1).toBe(goMade.h1);
    const go = await goCheck(ours.zip, MOD, VER);
    expect(go.err).toBeNull();
    expect(go.files).toEqual(goMade.files);
    const { entries } = parseZip(await readFile(ours.zip));
    expectCommonLayout(entries);
    for (const e of entries.filter((x) => !x.name.endsWith('go.mod'))) {
      expect(e).toMatchObject({ method: 0, csize: 0, usize: 0, crc: 0 });
    }
  });

  it('a module of empty files only', async () => {
    const files = [
      { name: 'a', data: Buffer.alloc(0) },
      { name: 'b/c', data: Buffer.alloc(0) },
    ];
    const ours = await writeToFile(files.map((f) => mem(f.name, f.data)));
    expect(ours.h1).toBe(expectedH1(files));
    expect((await goHashZip(ours.zip)).h1).toBe(ours.h1);
  });

  it('no files at all', async () => {
    const ours = await writeToFile([]);
    expect(ours.size).toBe(22);
    expect((await goHashZip(ours.zip)).h1).toBe(ours.h1);
  });
});

describe('backpressure', () => {
  /** A sink that takes nothing until released, then takes chunks at its own pace. */
  function stalledSink(): { out: Writable; release: () => void; received: () => number } {
    let held: (() => void) | undefined;
    let released = false;
    let received = 0;
    const out = new Writable({
      highWaterMark: 16 << 10,
      write(chunk: Buffer, _e, cb) {
        received += chunk.length;
        if (released) setImmediate(cb);
        else held = cb;
      },
    });
    return {
      out,
      release: () => {
        released = true;
        held?.();
      },
      received: () => received,
    };
  }

  /** A file of fresh random bytes made as they are read, counting what was read. */
  function generated(name: string, size: number, counter: { read: number }): ZipSourceFile {
    return {
      name,
      mode: 'file',
      size,
      open: () => {
        let left = size;
        return new Readable({
          read() {
            if (left === 0) {
              this.push(null);
              return;
            }
            const n = Math.min(left, 64 << 10);
            left -= n;
            counter.read += n;
            this.push(randomBytes(n));
          },
        });
      },
    };
  }

  it('a stalled reader stops the sources: large files', async () => {
    const count = { read: 0 };
    const files = Array.from({ length: 16 }, (_, i) => generated(`big${i}.bin`, 8 << 20, count));
    const sink = stalledSink();
    const before = process.memoryUsage();
    const p = writeModuleZip(files, opts, sink.out);
    await new Promise((r) => setTimeout(r, 400));
    const during = process.memoryUsage();
    // 128 MiB offered; a few segments read ahead at most.
    expect(count.read).toBeLessThan(8 << 20);
    expect(during.arrayBuffers - before.arrayBuffers).toBeLessThan(32 << 20);
    sink.release();
    const r = await p;
    expect(count.read).toBe(128 << 20);
    expect(r.size).toBe(sink.received());
  });

  it('a stalled reader stops the sources: small files', async () => {
    const count = { read: 0 };
    let opened = 0;
    const files = Array.from({ length: 2000 }, (_, i) => {
      const f = generated(`f${i}.bin`, 16 << 10, count);
      return { ...f, open: () => (opened++, f.open()) };
    });
    const sink = stalledSink();
    const p = writeModuleZip(files, opts, sink.out);
    await new Promise((r) => setTimeout(r, 300));
    expect(opened).toBeLessThan(20);
    sink.release();
    const r = await p;
    expect(opened).toBe(2000);
    expect(r.size).toBe(sink.received());
  });

  it('a slow reader: memory stays bounded while 176 MB go through', async () => {
    const count = { read: 0 };
    const files: ZipSourceFile[] = [];
    for (let i = 0; i < 20; i++) files.push(generated(`r${i}.bin`, 8 << 20, count));
    for (let i = 0; i < 2; i++) files.push(mem(`t${i}.txt`, text(8 << 20, i)));
    let received = 0;
    const out = new Writable({
      highWaterMark: 64 << 10,
      write(chunk: Buffer, _e, cb) {
        received += chunk.length;
        // Slower than the writer: a pause every megabyte.
        if (received % (1 << 20) < chunk.length) setTimeout(cb, 2);
        else setImmediate(cb);
      },
    });
    const base = process.memoryUsage();
    let peakAb = 0;
    let peakRss = 0;
    const timer = setInterval(() => {
      const m = process.memoryUsage();
      peakAb = Math.max(peakAb, m.arrayBuffers - base.arrayBuffers);
      peakRss = Math.max(peakRss, m.rss - base.rss);
    }, 5);
    try {
      const r = await writeModuleZip(files, opts, out);
      expect(r.size).toBe(received);
    } finally {
      clearInterval(timer);
    }
    // Loose bounds (garbage waits for the collector), far below what went through.
    expect(peakAb).toBeLessThan(100 << 20);
    expect(peakRss).toBeLessThan(150 << 20);
  });
});

describe('failures', () => {
  const file = (name: string, size: number, open: ZipSourceFile['open']): ZipSourceFile => ({ name, mode: 'file', size, open });

  /** A source yielding `good` bytes in 64 KiB chunks, then failing with err. */
  function failing(good: number, err: Error): { stream: Readable; destroyed: () => boolean } {
    let sent = 0;
    const s = new Readable({
      read() {
        if (sent >= good) {
          this.destroy(err);
          return;
        }
        const n = Math.min(64 << 10, good - sent);
        sent += n;
        this.push(text(n, sent));
      },
    });
    return { stream: s, destroyed: () => s.destroyed };
  }

  for (const [what, size, good] of [
    ['a small file', 100_000, 70_000],
    ['a large file, with segments in flight', 6 << 20, (3 << 20) + 5000],
  ] as const) {
    it(`a source error mid-way through ${what} is passed on, and the output destroyed`, async () => {
      const boom = new Error('disk on fire');
      const src = failing(good, boom);
      const files = [mem('a.txt', text(300_000)), file('b.bin', size, () => src.stream), mem('c.txt', text(10))];
      const out = new PassThrough();
      out.resume();
      await expect(writeModuleZip(files, opts, out)).rejects.toBe(boom);
      expect(out.destroyed).toBe(true);
      expect(src.destroyed()).toBe(true);
    });
  }

  for (const [declared, actual] of [
    [400_000, 300_000],
    [300_000, 400_000],
    [3 << 20, (3 << 20) - 1],
    [3 << 20, (3 << 20) + 1],
    [0, 1],
    [1, 0],
  ] as const) {
    it(`a source yielding ${actual} bytes for a declared ${declared} is a ZipError`, async () => {
      let stream: Readable | undefined;
      const src = mem('x.bin', text(actual), 100_000);
      const files = [mem('go.mod', Buffer.from(`module ${MOD}\n`)), { ...src, size: declared, open: () => (stream = src.open() as Readable) }];
      const out = new PassThrough();
      out.resume();
      const p = writeModuleZip(files, opts, out);
      await expect(p).rejects.toBeInstanceOf(ZipError);
      await expect(p).rejects.toThrow(/x\.bin/);
      expect(out.destroyed).toBe(true);
      expect(stream?.destroyed).toBe(true);
    });
  }

  it('an output that goes away mid-way fails the zip and releases the source', async () => {
    let src: Readable | undefined;
    const b = mem('b.bin', randomBytes(20 << 20));
    const files = [mem('a.bin', randomBytes(1 << 20)), { ...b, open: () => (src = b.open() as Readable) }];
    let received = 0;
    const out = new PassThrough();
    out.on('data', (c: Buffer) => {
      received += c.length;
      if (received > 4 << 20) out.destroy();
    });
    await expect(writeModuleZip(files, opts, out)).rejects.toThrow(/Premature close/);
    expect(src?.destroyed).toBe(true);
  });

  it('an output error while a large file is being compressed fails the zip, once', async () => {
    const files = [mem('t.txt', text(12 << 20))];
    let written = 0;
    const out = new Writable({
      write(chunk: Buffer, _e, cb) {
        written += chunk.length;
        cb(written > 200_000 ? new Error('disk full') : null);
      },
    });
    await expect(writeModuleZip(files, opts, out)).rejects.toThrow('disk full');
    expect(out.destroyed).toBe(true);
  });

  it('an invalid file list destroys the output too', async () => {
    // No 'error' listener here: destroying it must not make an unhandled 'error' event.
    const out = new PassThrough();
    await expect(writeModuleZip([mem('a:b', Buffer.from('x'))], opts, out)).rejects.toBeInstanceOf(ZipError);
    expect(out.destroyed).toBe(true);
  });
});
