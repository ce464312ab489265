// StreamingZipCheck against checkModuleZip: for every zip, fed in random chunks, finish() must
// resolve with the same result or reject with a one-line ZipError exactly when checkModuleZip
// does. Zips from our writer and from Go's zip.Create must take the fast path (no second read);
// hostile and odd ones may fall back, but must still agree.
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import yazl from 'yazl';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkModuleZip, StreamingZipCheck, writeModuleZip, ZipError, type CheckedZip, type ZipLimits, type ZipSourceFile } from '../../src/modzip/index.js';
import { GOMOD, HOSTILE_ZIPS, MOD, P, VER, countFileReads, countInflated, e, goCreate, listTree, makeTmp, mutate, rawZip, rng } from './helpers.js';

let tmp: { dir: string; cleanup: () => Promise<void> };
let n = 0;
beforeAll(async () => {
  tmp = await makeTmp('stream');
});
afterAll(async () => {
  await tmp.cleanup();
});

async function save(data: Buffer): Promise<string> {
  const f = path.join(tmp.dir, `z${n++}.zip`);
  await writeFile(f, data);
  return f;
}

type Outcome = { ok: true; result: CheckedZip } | { ok: false; err: unknown };

async function outcome(p: Promise<CheckedZip>): Promise<Outcome> {
  try {
    return { ok: true, result: await p };
  } catch (err) {
    return { ok: false, err };
  }
}

/** Chunk sizes from 1 byte to 1 MiB, log-uniform (so every scale is well represented). */
function chunker(rand: () => number, maxBits = 20): () => number {
  return () => Math.max(1, Math.floor(2 ** (rand() * maxBits)));
}

interface Streamed {
  out: Outcome;
  pushErr: unknown;
  fallback: boolean;
  reason: string | undefined;
  streamedDirectory: boolean;
}

async function stream(file: string, data: Buffer, next: () => number, opts: { mod?: string; ver?: string; limits?: ZipLimits } = {}): Promise<Streamed> {
  const s = new StreamingZipCheck(opts.mod ?? MOD, opts.ver ?? VER, opts.limits);
  let pushErr: unknown;
  for (let i = 0; i < data.length;) {
    const k = next();
    try {
      await s.push(data.subarray(i, i + k));
    } catch (err) {
      pushErr ??= err;
    }
    i += k;
  }
  const out = await outcome(s.finish(file));
  return { out, pushErr, fallback: s.usedFallback, reason: s.fallbackReason, streamedDirectory: s.usedStreamedDirectory };
}

/**
 * The differential check: finish() against checkModuleZip on the same file, for a few chunkings
 * (one of them byte by byte when the zip is small). Returns whether the fast path was taken every
 * time, and whether the zip was accepted.
 */
async function agree(
  data: Buffer,
  label: string,
  opts: { seed?: number; mod?: string; ver?: string; limits?: ZipLimits; file?: string; runs?: number } = {},
): Promise<{ fast: boolean; accepted: boolean; reasons: string[]; streamedDirectory: boolean }> {
  const file = opts.file ?? (await save(data));
  const full = await outcome(checkModuleZip(file, opts.mod ?? MOD, opts.ver ?? VER, opts.limits));
  const rand = rng(opts.seed ?? data.length);
  const chunkings: (() => number)[] = [];
  for (let i = 0; i < (opts.runs ?? 2); i++) chunkings.push(chunker(rand));
  chunkings.push(() => 1 << 16);
  if (data.length <= 64 << 10) chunkings.push(() => 1);
  let fast = true;
  let streamedDirectory = true;
  const reasons: string[] = [];
  for (const [i, next] of chunkings.entries()) {
    const what = `${label} (chunking ${i})`;
    const s = await stream(file, data, next, opts);
    if (s.fallback) {
      fast = false;
      reasons.push(s.reason ?? '?');
    }
    if (!s.streamedDirectory) streamedDirectory = false;
    if (s.pushErr !== undefined) {
      // push may only refuse what checkModuleZip refuses.
      expect(s.pushErr, what).toBeInstanceOf(ZipError);
      expect(full.ok, `${what}: push rejected a zip checkModuleZip accepts`).toBe(false);
    }
    if (full.ok) {
      if (!s.out.ok) throw new Error(`${what}: finish rejected what checkModuleZip accepts: ${String(s.out.err)}`);
      expect(s.out.result, what).toEqual(full.result);
    } else {
      expect(s.out.ok, `${what}: finish accepted what checkModuleZip rejects (${String(full.err)})`).toBe(false);
      const err = (s.out as { err: unknown }).err;
      if (full.err instanceof ZipError) {
        expect(err, what).toBeInstanceOf(ZipError);
        expect((err as Error).message, what).not.toMatch(/[\r\n\u2028\u2029]/);
        // finish() reports through checkModuleZip's own steps (or runs it), so even the wording
        // agrees: with a streamed directory, that shows its entries are the ones OpenZip lists.
        expect((err as Error).message, `${what}${s.streamedDirectory ? ' (streamed directory)' : ''}`).toBe(full.err.message);
      } else {
        expect((err as { code?: unknown }).code, what).toBe((full.err as { code?: unknown }).code);
      }
    }
  }
  return { fast, accepted: full.ok, reasons, streamedDirectory };
}

let bomb: Buffer;
beforeAll(async () => {
  // 1 GiB of zeros deflated to about 1 MB (as in check.test.ts).
  const d = zlib.createDeflateRaw({ level: 9 });
  const chunks: Buffer[] = [];
  d.on('data', (c: Buffer) => chunks.push(c));
  const zeros = Buffer.alloc(1 << 20);
  for (let i = 0; i < 1024; i++) if (!d.write(zeros)) await new Promise((r) => d.once('drain', r));
  d.end();
  await new Promise((r) => d.on('end', r));
  bomb = Buffer.concat(chunks);
});

// check.test.ts's hostile zips, plus a few aimed at the streaming parser.
const hostile: [string, () => Buffer][] = [
  ...HOSTILE_ZIPS.map(([title, make]): [string, () => Buffer] => [title, make]),
  ['total over 500 MiB (declared)', () => rawZip([e('a.bin', 'a', { usize: 300 << 20 }), e('b.bin', 'b', { usize: 300 << 20 })])],
  ['CRC 0 (Go skips it; checkModuleZip does not)', () => rawZip([e('a.go', 'package a\n', { crc: 0 })])],
  ['bad CRC in the central directory of a descriptor entry', () => rawZip([e('a.go', 'abc', { descriptor: 'sig', crc: 7, descriptorCrc: zlib.crc32('abc') })])],
  ['unsupported method with a descriptor', () => rawZip([e('a.go', 'abc', { method: 12, payload: Buffer.from('abc'), descriptor: 'sig' })])],
  ['declared size smaller than the data, descriptor', () => rawZip([e('a.go', 'abcdef', { usize: 3, descriptor: 'nosig' })])],
  [
    'truncated deflate stream, descriptor',
    () => rawZip([e('a.go', randomBytes(5000), { payload: zlib.deflateRawSync(randomBytes(5000)).subarray(0, 100), descriptor: 'sig' })]),
  ],
  ['garbage deflate stream, descriptor', () => rawZip([e('a.go', 'abc', { payload: Buffer.from([0xff, 0xff, 0xff, 0xff]), descriptor: 'sig' })])],
  ['trailing data after the end record', () => rawZip([e('a.go')], { trailing: Buffer.from('extra') })],
  ['data prepended, offsets not adjusted', () => Buffer.concat([Buffer.from('#!/bin/sh\n'), rawZip([e('a.go')])])],
  [
    'a small deflate bomb with a lying size',
    () => rawZip([e('small-bomb.bin', Buffer.alloc(0), { payload: zlib.deflateRawSync(Buffer.alloc(40 << 20), { level: 9 }), usize: 1000 })]),
  ],
  [
    'a small deflate bomb with a lying size, descriptor',
    () =>
      rawZip([e('small-bomb.bin', Buffer.alloc(0), { payload: zlib.deflateRawSync(Buffer.alloc(40 << 20), { level: 9 }), usize: 1000, descriptor: 'sig' })]),
  ],
];

describe('hostile zips: finish() rejects exactly when checkModuleZip does', () => {
  it.each(hostile)('%s', async (title, make) => {
    const r = await agree(make(), title);
    expect(r.accepted).toBe(false);
  });

  it('a truncated zip, cut anywhere', async () => {
    const good = rawZip([e('go.mod', GOMOD), e('a.go', randomBytes(3000)), e('b/c.go', 'package c\n', { descriptor: 'sig' })]);
    for (let cut = 0; cut < good.length; cut += 7) {
      const r = await agree(good.subarray(0, cut), `cut at ${cut}`, { runs: 1 });
      expect(r.accepted).toBe(false);
    }
  });

  it('a deflate bomb with a lying size: inflates little while streaming, then the fallback refuses it', async () => {
    const data = rawZip([e('go.mod', GOMOD), e('bomb.bin', Buffer.alloc(1000), { payload: bomb, usize: 1000 })]);
    const file = await save(data);
    const { inflated, capped, result } = await countInflated(() => stream(file, data, () => 1 << 16));
    expect(result.out.ok).toBe(false);
    expect((result.out as { err: unknown }).err).toBeInstanceOf(ZipError);
    expect(String((result.out as { err: unknown }).err)).toMatch(/bomb\.bin.*larger than its declared size/);
    expect(result.fallback).toBe(true);
    // Streaming stops after one zlib chunk past the declared 1000 bytes; the fallback likewise.
    expect(inflated + capped).toBeLessThan(1 << 20);
  });

  it('a deflate bomb in a data descriptor entry: streaming gives up early', async () => {
    const data = rawZip([e('go.mod', GOMOD), e('bomb.bin', Buffer.alloc(1000), { payload: bomb, usize: 1000, descriptor: 'sig' })]);
    const file = await save(data);
    const { inflated, capped, result } = await countInflated(() => stream(file, data, () => 1 << 16));
    expect(result.out.ok).toBe(false);
    expect(result.fallback).toBe(true);
    expect(result.reason).toMatch(/inflates too far/);
    // No size is declared before the data: streaming stops at 64 MiB (256:1), not at 500 MiB.
    expect(inflated).toBeLessThan(70 << 20);
    // With a smaller limit on the module's contents, it stops at that limit.
    const small = await countInflated(() => stream(file, data, () => 1 << 16, { limits: { maxTotalSize: 4 << 20 } }));
    expect(small.result.out.ok).toBe(false);
    expect(small.inflated).toBeLessThan(5 << 20);
    // Besides, each time, one try in a single call, given up at 1 MiB before a stream takes over.
    expect(capped).toBeLessThanOrEqual((1 << 20) + 1);
    expect(small.capped).toBeLessThanOrEqual((1 << 20) + 1);
  });
});

/** Output of every zlib inflate stream and synchronous raw inflate while `f` runs. */
// ---- Layouts built by editing a zip's central directory (no comment, no zip64) ----

interface Parsed {
  locals: Buffer;
  records: Buffer[];
  cdOffset: number;
}

function parseZip(buf: Buffer): Parsed {
  const end = buf.length - 22;
  expect(buf.readUInt32LE(end)).toBe(0x06054b50);
  const count = buf.readUInt16LE(end + 10);
  const cdOffset = buf.readUInt32LE(end + 16);
  const records: Buffer[] = [];
  let o = cdOffset;
  for (let i = 0; i < count; i++) {
    const len = 46 + buf.readUInt16LE(o + 28) + buf.readUInt16LE(o + 30) + buf.readUInt16LE(o + 32);
    records.push(Buffer.from(buf.subarray(o, o + len)));
    o += len;
  }
  return { locals: buf.subarray(0, cdOffset), records, cdOffset };
}

function buildZip(p: Parsed, prefix = Buffer.alloc(0)): Buffer {
  const records = p.records.map((r) => {
    const c = Buffer.from(r);
    c.writeUInt32LE(c.readUInt32LE(42) + prefix.length, 42);
    return c;
  });
  const cd = Buffer.concat(records);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(records.length, 8);
  end.writeUInt16LE(records.length, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(prefix.length + p.locals.length, 16);
  return Buffer.concat([prefix, p.locals, cd, end]);
}

/** An entry whose descriptor has 8-byte sizes (as Go writes for zip64 entries). */
function wideDescriptorZip(): Buffer {
  const name = Buffer.from(`${P}a.go`);
  const data = Buffer.from('package a\n'.repeat(300));
  const payload = zlib.deflateRawSync(data);
  const crc = zlib.crc32(data);
  const local = Buffer.alloc(30);
  local.writeUInt32LE(0x04034b50, 0);
  local.writeUInt16LE(45, 4);
  local.writeUInt16LE(0x808, 6);
  local.writeUInt16LE(8, 8);
  local.writeUInt16LE(name.length, 26);
  const d = Buffer.alloc(24);
  d.writeUInt32LE(0x08074b50, 0);
  d.writeUInt32LE(crc, 4);
  d.writeBigUInt64LE(BigInt(payload.length), 8);
  d.writeBigUInt64LE(BigInt(data.length), 16);
  const c = Buffer.alloc(46);
  c.writeUInt32LE(0x02014b50, 0);
  c.writeUInt16LE((3 << 8) | 45, 4);
  c.writeUInt16LE(45, 6);
  c.writeUInt16LE(0x808, 8);
  c.writeUInt16LE(8, 10);
  c.writeUInt32LE(crc, 16);
  c.writeUInt32LE(payload.length, 20);
  c.writeUInt32LE(data.length, 24);
  c.writeUInt16LE(name.length, 28);
  c.writeUInt32LE((0o100644 << 16) >>> 0, 38);
  const locals = Buffer.concat([local, name, payload, d]);
  return buildZip({ locals, records: [Buffer.concat([c, name])], cdOffset: locals.length });
}

async function yazlZip(entries: [string, Buffer, Partial<yazl.Options>?][], end: Partial<yazl.EndOptions>): Promise<Buffer> {
  const z = new yazl.ZipFile();
  for (const [name, data, o] of entries) z.addBuffer(data, name, (o ?? {}) as yazl.Options);
  z.end(end as yazl.EndOptions);
  const f = path.join(tmp.dir, `yazl${n++}.zip`);
  await pipeline(z.outputStream, createWriteStream(f));
  return readFile(f);
}

async function yazlStreamZip(entries: [string, Buffer, Partial<yazl.ReadStreamOptions>?][], end: Partial<yazl.EndOptions>): Promise<Buffer> {
  const z = new yazl.ZipFile();
  for (const [name, data, o] of entries) z.addReadStream(Readable.from([data]), name, (o ?? {}) as yazl.ReadStreamOptions);
  z.end(end as yazl.EndOptions);
  const f = path.join(tmp.dir, `yazl${n++}.zip`);
  await pipeline(z.outputStream, createWriteStream(f));
  return readFile(f);
}

// [title, zip, expected path: 'fast' | 'fallback' | undefined (either)]
const valid: [string, () => Promise<Buffer>, 'fast' | 'fallback' | undefined][] = [
  [
    'directory entries, including the module root and repeats',
    async () =>
      rawZip([
        { name: P, data: Buffer.alloc(0), method: 0 },
        e('dir/', '', { method: 0 }),
        e('dir/', '', { method: 0 }),
        e('dir/a.go', 'package dir\n'),
        e('go.mod', GOMOD),
      ]),
    'fast',
  ],
  ['stored entries', async () => rawZip([e('go.mod', GOMOD, { method: 0 }), e('b.bin', randomBytes(100_000), { method: 0 })]), 'fast'],
  [
    'deflate data descriptors with and without signature',
    async () =>
      rawZip([e('a.go', randomBytes(70_000), { descriptor: 'sig' }), e('b.go', 'bbb', { descriptor: 'nosig' }), e('go.mod', GOMOD, { descriptor: 'sig' })]),
    'fast',
  ],
  [
    'a large compressible descriptor entry (streamed inflate)',
    async () => rawZip([e('big.txt', Buffer.from('lorem ipsum dolor '.repeat(200_000)), { descriptor: 'sig' })]),
    'fast',
  ],
  ['a large incompressible descriptor entry', async () => rawZip([e('big.bin', randomBytes(3 << 20), { descriptor: 'nosig' })]), 'fast'],
  ['a large deflated entry with sizes in the header', async () => rawZip([e('big.bin', randomBytes(2 << 20)), e('z.go', 'package z\n')]), 'fast'],
  // The local header of a stored entry with a descriptor says nothing of its length: only the
  // central directory knows where its data ends.
  [
    'stored data descriptors',
    async () => rawZip([e('a.go', 'package a\n', { descriptor: 'sig', method: 0 }), e('b.go', 'bbb', { descriptor: 'nosig', method: 0 })]),
    'fallback',
  ],
  // Go's reader (and checkModuleZip) never look past the end of the deflate stream; streaming
  // requires the stream to fill the data exactly, so this is left to the full check.
  [
    'deflate stream shorter than its compressed size',
    async () => rawZip([e('a.go', 'abc', { payload: Buffer.concat([zlib.deflateRawSync(Buffer.from('abc')), Buffer.from('junk')]) })]),
    'fallback',
  ],
  ['an empty stored entry with a data descriptor', async () => rawZip([e('empty', '', { descriptor: 'sig', method: 0 }), e('a.go')]), 'fast'],
  ['empty files with CRC 0', async () => rawZip([e('empty', ''), e('empty2', '', { method: 0 })]), 'fast'],
  ['an archive comment', async () => rawZip([e('a.go')], { comment: Buffer.from('made by hand') }), 'fast'],
  ['an archive comment that looks like an end record', async () => rawZip([e('a.go')], { comment: Buffer.from('PK\x05\x06 not really') }), undefined],
  ['unicode names', async () => rawZip([e('ｚ.go'), e('𠀀.go'), e('é/日本.txt', 'x')]), 'fast'],
  ['no entries at all', async () => rawZip([]), 'fast'],
  ['DOS creator with attributes', async () => rawZip([e('a.go', 'abc', { versionMadeBy: 20, externalAttrs: 0x20 })]), 'fast'],
  ['a descriptor with 8-byte sizes', async () => wideDescriptorZip(), 'fast'],
  [
    'zip64 records (yazl, sizes in the headers)',
    async () =>
      yazlZip(
        [
          [`${P}go.mod`, GOMOD, { forceZip64Format: true }],
          [`${P}data.bin`, randomBytes(10_000), { forceZip64Format: true, compress: false }],
        ],
        { forceZip64Format: true },
      ),
    undefined,
  ],
  [
    'zip64 records (yazl, streamed entries with descriptors)',
    async () =>
      yazlStreamZip(
        [
          [`${P}go.mod`, GOMOD, { forceZip64Format: true }],
          [`${P}data.bin`, randomBytes(10_000), { forceZip64Format: true, compress: false }],
          [`${P}t.txt`, Buffer.from('t'.repeat(5000))],
        ],
        { forceZip64Format: true },
      ),
    undefined,
  ],
  [
    'yazl, plain',
    async () =>
      yazlZip(
        [
          [`${P}go.mod`, GOMOD],
          [`${P}a/b.go`, Buffer.from('package b\n')],
        ],
        {},
      ),
    'fast',
  ],
  [
    'central directory in reverse order',
    async () => {
      const p = parseZip(rawZip([e('go.mod', GOMOD), e('a.go', 'package a\n'), e('b/c.go', 'package c\n', { descriptor: 'sig' })]));
      p.records.reverse();
      return buildZip(p);
    },
    'fast',
  ],
  [
    'a local entry the central directory does not list',
    async () => {
      const p = parseZip(rawZip([e('go.mod', GOMOD), e('orphan.go', 'not listed'), e('a.go', 'package a\n')]));
      p.records.splice(1, 1);
      return buildZip(p);
    },
    'fast',
  ],
  [
    'a local entry with bad data the central directory does not list',
    async () => {
      const p = parseZip(rawZip([e('go.mod', GOMOD), e('orphan.go', 'abc', { crc: 5 }), e('a.go', 'package a\n')]));
      p.records.splice(1, 1);
      return buildZip(p);
    },
    'fast',
  ],
  [
    'two central entries for one directory entry',
    async () => {
      const p = parseZip(rawZip([e('d/', '', { method: 0 }), e('d/a.go', 'package d\n')]));
      p.records.push(p.records[0] as Buffer);
      return buildZip(p);
    },
    'fast',
  ],
  [
    'data prepended, offsets adjusted (Go and checkModuleZip read it)',
    async () => buildZip(parseZip(rawZip([e('go.mod', GOMOD), e('a.go', 'package a\n')])), Buffer.from('#!/bin/sh\nexit 0\n')),
    'fallback',
  ],
  [
    'a local name unlike the central one (Go reads the central one)',
    async () => {
      const z = rawZip([e('go.mod', GOMOD), e('a.go', 'package a\n')]);
      const at = z.indexOf(Buffer.from(`${P}a.go`));
      z.write('b', at + P.length);
      return z;
    },
    'fallback',
  ],
  [
    'a local header with other sizes than the central one',
    async () => {
      const z = rawZip([e('a.go', 'package a\n', { method: 0 }), e('b.go', 'b')]);
      // Shorten the first entry's local sizes by one: the stream then reads one byte less.
      z.writeUInt32LE(z.readUInt32LE(18) - 1, 18);
      z.writeUInt32LE(z.readUInt32LE(22) - 1, 22);
      return z;
    },
    'fallback',
  ],
];

describe('valid and odd zips: finish() gives checkModuleZip result', () => {
  it.each(valid)('%s', async (title, make, want) => {
    const r = await agree(await make(), title);
    expect(r.accepted, title).toBe(true);
    if (want === 'fast') expect(r.reasons, `${title}: should take the fast path`).toEqual([]);
    if (!r.streamedDirectory) console.log(`${title}: central directory read from the file`);
    if (want === 'fallback') expect(r.fast, `${title}: cannot be checked while streaming`).toBe(false);
    if (want === undefined) console.log(`${title}: ${r.fast ? 'fast path' : `fallback (${r.reasons[0]})`}`);
  });
});

// ---- Zips written by our writer and by Go's zip.Create: always the fast path ----

type Tree = Record<string, string | Buffer>;
const trees: Record<string, Tree> = {
  'basic, unicode and sizes': {
    'go.mod': `module ${MOD}\n\ngo 1.20\n`,
    'a.go': 'package a\n',
    'ｚ.go': 'package a\n',
    '𠀀.go': 'package a\n',
    'dir/é.go': 'package dir\n',
    'dir/ü/日本語.txt': 'こんにちは\n',
    LICENSE: 'MIT\n',
    'empty.txt': '',
    'sub/empty': '',
    'big.bin': randomBytes(3 << 20),
    'big.txt': 'func main() { return nil }\n'.repeat(60_000),
    'x/y/z/w/deep.go': 'package w\n',
    'with space/f i.txt': 'spaces\n',
    '.github/workflows/ci.yml': 'on: push\n',
  },
  'many small files': Object.fromEntries(Array.from({ length: 600 }, (_, i) => [`pkg${i % 13}/f${i}.go`, `package pkg\n\n// ${'x'.repeat(i * 7)}\n`])),
  'vendor at go 1.24': {
    'go.mod': `module ${MOD}\n\ngo 1.24\n`,
    'a.go': 'package a\n',
    'vendor/modules.txt': '# example.com/x v1.0.0\n',
    'vendor/example.com/x/x.go': 'package x\n',
    'pkg/vendor/vendor.go': 'package vendor\n',
  },
  'no go.mod': { 'a.go': 'package a\n', LICENSE: 'x' },
  'zeros (16 MiB LICENSE)': { 'go.mod': `module ${MOD}\n`, LICENSE: Buffer.alloc(16 << 20) },
};

async function buildTree(tree: Tree): Promise<string> {
  const root = path.join(tmp.dir, `tree${n++}`);
  for (const [name, data] of Object.entries(tree)) {
    await mkdir(path.dirname(path.join(root, name)), { recursive: true });
    await writeFile(path.join(root, name), data);
  }
  return root;
}

async function writeOurs(files: ZipSourceFile[], goVersion?: string): Promise<string> {
  const zip = path.join(tmp.dir, `ours${n++}.zip`);
  await writeModuleZip(files, { modulePath: MOD, version: VER, ...(goVersion ? { goVersion } : {}) }, createWriteStream(zip));
  return zip;
}

describe('zips from writeModuleZip and Go zip.Create take the fast path', () => {
  for (const [title, tree] of Object.entries(trees)) {
    it(title, async () => {
      const root = await buildTree(tree);
      const goVersion = /^go ([^\s]+)$/m.exec(String(tree['go.mod'] ?? ''))?.[1];
      const ours = await writeOurs(await listTree(root), goVersion);
      const goFiles = path.join(tmp.dir, `gofiles${n++}.zip`);
      const goDir = path.join(tmp.dir, `godir${n++}.zip`);
      expect((await goCreate('files', root, MOD, VER, goFiles)).err).toBeNull();
      expect((await goCreate('dir', root, MOD, VER, goDir)).err).toBeNull();
      for (const [who, zip] of [
        ['ours', ours],
        ['Go zip.Create', goFiles],
        ['Go zip.CreateFromDir', goDir],
      ] as const) {
        const r = await agree(await readFile(zip), `${title} (${who})`, { file: zip });
        expect(r.accepted).toBe(true);
        expect(r.reasons, `${title} (${who})`).toEqual([]);
        expect(r.streamedDirectory, `${title} (${who}): directory from the stream`).toBe(true);
      }
    });
  }

  it('65536 files (zip64 end records, our writer)', async () => {
    const files: ZipSourceFile[] = Array.from({ length: 65536 }, (_, i) => {
      const data = Buffer.from(`f${i}\n`);
      return { name: `d${i >> 10}/f${i}`, mode: 'file', size: data.length, open: () => Readable.from([data]) };
    });
    const zip = await writeOurs(files);
    const data = await readFile(zip);
    const r = await agree(data, '65536 files', { file: zip, runs: 1 });
    expect(r.accepted).toBe(true);
    expect(r.reasons).toEqual([]);
    expect(r.streamedDirectory).toBe(true);
    // What is left after the last byte, for many entries: no second read of the file.
    await expectLittleLeftAfterLastPush('65536 files', zip);
  });
});

// ---- push() and finish() around the edges ----

describe('push and finish', () => {
  it('push rejects at once for a bad module path or version, and finish rejects the same way', async () => {
    const data = rawZip([e('a.go')]);
    const file = await save(data);
    for (const [mod, ver] of [
      [MOD, 'v1.0'],
      [MOD, 'v2.0.0'],
      ['Example.com/m', VER],
    ] as const) {
      const s = new StreamingZipCheck(mod, ver);
      await expect(s.push(data)).rejects.toBeInstanceOf(ZipError);
      const full = await outcome(checkModuleZip(file, mod, ver));
      const ours = await outcome(s.finish(file));
      expect(full.ok).toBe(false);
      expect(ours.ok).toBe(false);
      expect((ours as { err: Error }).err.message).toBe((full as { err: Error }).err.message);
    }
  });

  it('push rejects once the zip grows past maxZipSize', async () => {
    const data = rawZip([e('a.bin', randomBytes(5000), { method: 0 })]);
    const file = await save(data);
    const s = new StreamingZipCheck(MOD, VER, { maxZipSize: 3000 });
    await expect(s.push(data.subarray(0, 2000))).resolves.toBeUndefined();
    await expect(s.push(data.subarray(2000, 4000))).rejects.toThrow(/too large/);
    await expect(s.push(data.subarray(4000))).rejects.toBeInstanceOf(ZipError);
    await expect(s.finish(file)).rejects.toThrow(/module zip file is too large/);
  });

  it('a missing file: the same system error as checkModuleZip', async () => {
    const s = new StreamingZipCheck(MOD, VER);
    await s.push(rawZip([e('a.go')]));
    await expect(s.finish(path.join(tmp.dir, 'missing.zip'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('a file other than the bytes pushed: falls back and answers for the file', async () => {
    const pushed = rawZip([e('a.go', 'package a\n')]);
    const other = rawZip([e('a.go', 'package a\n'), e('b.go', 'package b\n')]);
    const file = await save(other);
    const s = new StreamingZipCheck(MOD, VER);
    await s.push(pushed);
    expect(await s.finish(file)).toEqual(await checkModuleZip(file, MOD, VER));
    expect(s.usedFallback).toBe(true);
  });

  it('pushes that are not awaited are still taken in order', async () => {
    const data = rawZip([e('go.mod', GOMOD), e('a.go', randomBytes(100_000)), e('b.go', 'b', { descriptor: 'sig' })]);
    const file = await save(data);
    const s = new StreamingZipCheck(MOD, VER);
    const pushes: Promise<void>[] = [];
    for (let i = 0; i < data.length; i += 999) pushes.push(s.push(data.subarray(i, i + 999)));
    const got = await s.finish(file);
    await Promise.all(pushes);
    expect(got).toEqual(await checkModuleZip(file, MOD, VER));
    expect(s.usedFallback).toBe(false);
  });

  it('abort frees the work under way; later calls fail', async () => {
    const data = rawZip([e('big.bin', randomBytes(1 << 20), { descriptor: 'sig' })]);
    const s = new StreamingZipCheck(MOD, VER);
    await s.push(data.subarray(0, 300_000));
    s.abort();
    await expect(s.push(data.subarray(300_000))).rejects.toThrow(/after finish|aborted/);
    await expect(s.finish(await save(data))).rejects.toThrow(/aborted/);
  });
});

// ---- Fuzz: mutated zips in random chunks ----

// Override for a longer campaign: MODZIP_STREAM_FUZZ=3000 MODZIP_STREAM_SEED=7 npx vitest run test/modzip/stream.test.ts
const FUZZ = Number(process.env.MODZIP_STREAM_FUZZ ?? 400);
const FUZZ_SEED = Number(process.env.MODZIP_STREAM_SEED ?? 0x57ea);

describe('fuzz', () => {
  it(`${FUZZ} mutated zips in random chunks (seed ${FUZZ_SEED}): finish agrees with checkModuleZip every time`, async () => {
    const root = await buildTree({
      'go.mod': `module ${MOD}\n\ngo 1.22\n`,
      'a.go': 'package a\n\nfunc A() int { return 1 }\n',
      'é/b.go': 'package é\n',
      LICENSE: 'Copyright\n',
      'data.bin': randomBytes(20_000),
      'big.txt': randomBytes(100_000).toString('base64'),
      'text.txt': 'lorem ipsum '.repeat(500),
      empty: '',
    });
    const ours = await writeOurs(await listTree(root), '1.22');
    const goZip = path.join(tmp.dir, `fuzzgo${n++}.zip`);
    expect((await goCreate('files', root, MOD, VER, goZip)).err).toBeNull();
    const seeds = [
      await readFile(ours),
      await readFile(goZip),
      rawZip(
        [
          { name: P, data: Buffer.alloc(0), method: 0 },
          e('go.mod', `module ${MOD}\n`, { method: 0 }),
          e('d/', '', { method: 0 }),
          e('d/x.go', 'package d\n'.repeat(50), { descriptor: 'sig' }),
          e('d/y.go', 'package d\n', { descriptor: 'nosig' }),
          e('d/z.go', 'package d\n', { descriptor: 'sig', method: 0 }),
        ],
        { comment: Buffer.from('seed') },
      ),
      await yazlZip(
        [
          [`${P}go.mod`, Buffer.from(`module ${MOD}\n`), { forceZip64Format: true }],
          [`${P}r.bin`, randomBytes(3000), { forceZip64Format: true, compress: false }],
        ],
        { forceZip64Format: true },
      ),
      wideDescriptorZip(),
    ];
    const rand = rng(FUZZ_SEED);
    const unhandled: unknown[] = [];
    const onUnhandled = (r: unknown): void => {
      unhandled.push(r);
    };
    process.on('unhandledRejection', onUnhandled);
    let accepted = 0;
    let fast = 0;
    let fastRejected = 0;
    let fastAccepted = 0;
    let streamedDirectory = 0;
    try {
      for (let i = 0; i < FUZZ; i++) {
        let data = mutate(seeds[i % seeds.length] as Buffer, rand);
        if (rand() < 0.3) data = mutate(data, rand);
        const r = await agree(data, `sample ${i} (seed ${i % seeds.length})`, { seed: i, runs: 1 });
        if (r.accepted) accepted++;
        if (r.streamedDirectory) streamedDirectory++;
        if (r.fast) {
          fast++;
          if (r.accepted) fastAccepted++;
          else fastRejected++;
        }
      }
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
    expect(unhandled).toEqual([]);
    console.log(
      `stream fuzz: ${FUZZ} samples, ${accepted} accepted; fast path every time for ${fast} (${fastAccepted} accepted, ${fastRejected} rejected from the central directory alone); directory from the stream every time for ${streamedDirectory}`,
    );
    expect(accepted).toBeGreaterThan(FUZZ / 20);
    expect(fast).toBeGreaterThan(FUZZ / 10);
  });
});

// ---- What is left after the last byte ----
// The point of streaming the check: when the last byte arrives, the work is done. That used to be
// shown by timing finish() against checkModuleZip (bench/zipcheck.mjs still does); here it is
// shown as work: finish() reads the end records from the file and nothing else, and inflates
// nothing, where checkModuleZip reads every byte again.

/** The most locateDirectory reads: an end record with the longest comment, the zip64 locator and the zip64 end record. */
const END_RECORDS_MAX = 22 + 0xffff + 20 + 56;

async function expectLittleLeftAfterLastPush(label: string, zip: string): Promise<void> {
  const data = await readFile(zip);
  const want = await checkModuleZip(zip, MOD, VER);
  const s = new StreamingZipCheck(MOD, VER);
  // As from the network: 64 KiB chunks, each awaited.
  for (let i = 0; i < data.length; i += 64 << 10) await s.push(data.subarray(i, i + (64 << 10)));
  const tail = await countFileReads(() => countInflated(() => s.finish(zip)));
  expect(s.usedFallback, `${label}: ${s.fallbackReason}`).toBe(false);
  expect(s.usedStreamedDirectory, label).toBe(true);
  expect(tail.result.result, label).toEqual(want);
  expect(tail.result.inflated + tail.result.capped, `${label}: inflated after the last push`).toBe(0);
  expect(tail.bytesRead, `${label}: bytes of the file read after the last push`).toBeLessThanOrEqual(Math.min(END_RECORDS_MAX, data.length));
  // The comparison that makes the bound mean something: the full check reads the whole file.
  const full = await countFileReads(() => checkModuleZip(zip, MOD, VER));
  expect(full.bytesRead, label).toBeGreaterThanOrEqual(data.length);
}

/** Source-code-like text that deflate shrinks about as much as Go source (4 to 5 times). */
function sourceText(rand: () => number, size: number): Buffer {
  const words =
    'func return if else for range err nil := = { } ( ) ; , . package import type struct interface string int byte error ctx fmt.Errorf len append // the of to and a in is'.split(
      ' ',
    );
  const idents = Array.from({ length: 300 }, (_, i) => `${'abcdefghijklmnopqrstuvwxyz'[i % 26]}${Math.floor(rand() * 2 ** 30).toString(36)}`);
  const parts: string[] = [];
  let len = 0;
  while (len < size) {
    const line: string[] = [];
    for (let j = 2 + Math.floor(rand() * 10); j > 0; j--) {
      line.push(rand() < 0.6 ? (words[Math.floor(rand() * words.length)] as string) : (idents[Math.floor(rand() * idents.length)] as string));
    }
    const s = `${'\t'.repeat(Math.floor(rand() * 3))}${line.join(' ')}\n`;
    parts.push(s);
    len += s.length;
  }
  return Buffer.from(parts.join('').slice(0, size));
}

describe('after the last byte: finish() reads only the end records and inflates nothing', () => {
  const sizes: [string, () => ZipSourceFile[]][] = [
    [
      '3 MiB module',
      () => {
        const rand = rng(3);
        const files: ZipSourceFile[] = [];
        for (let i = 0; i < 450; i++) files.push(memFile(`pkg${i % 20}/file${i}.go`, sourceText(rand, 4000 + Math.floor(rand() * 12000))));
        for (let i = 0; i < 6; i++) files.push(memFile(`testdata/blob${i}.bin`, randomBytes(200_000)));
        files.push(memFile('go.mod', Buffer.from(`module ${MOD}\n\ngo 1.22\n`)));
        return files;
      },
    ],
    [
      '50 MB module',
      () => {
        const rand = rng(50);
        const files: ZipSourceFile[] = [];
        for (let i = 0; i < 20; i++) files.push(memFile(`data/r${i}.bin`, randomBytes(2_000_000)));
        for (let i = 0; i < 20; i++) files.push(memFile(`text/t${i}.txt`, sourceText(rand, 2_000_000)));
        for (let i = 0; i < 400; i++) files.push(memFile(`pkg${i % 20}/file${i}.go`, sourceText(rand, 4000 + Math.floor(rand() * 12000))));
        files.push(memFile('go.mod', Buffer.from(`module ${MOD}\n\ngo 1.22\n`)));
        return files;
      },
    ],
  ];
  for (const [label, make] of sizes) {
    it(label, async () => {
      const files = make();
      const ours = await writeOurs(files, '1.22');
      const root = path.join(tmp.dir, `tail${n++}`);
      for (const f of files) {
        await mkdir(path.dirname(path.join(root, f.name)), { recursive: true });
        await writeFile(path.join(root, f.name), (f as ZipSourceFile & { data: Buffer }).data);
      }
      const goZip = path.join(tmp.dir, `tailgo${n++}.zip`);
      expect((await goCreate('files', root, MOD, VER, goZip)).err).toBeNull();
      for (const [who, zip] of [
        ['writeModuleZip', ours],
        ['Go zip.Create', goZip],
      ] as const) {
        await expectLittleLeftAfterLastPush(`${label} (${who})`, zip);
      }
    });
  }
});

function memFile(name: string, data: Buffer): ZipSourceFile & { data: Buffer } {
  return { name, mode: 'file', size: data.length, data, open: () => Readable.from([data]) };
}
