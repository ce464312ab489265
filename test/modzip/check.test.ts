import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import yazl from 'yazl';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { checkModuleZip, hashZipFile, ZipError } from '../../src/modzip/index.js';
import { goCheck, makeTmp, rawZip, type RawEntry } from './helpers.js';

const MOD = 'example.com/m';
const VER = 'v1.0.0';
const P = `${MOD}@${VER}/`;
const GOMOD = Buffer.from(`module ${MOD}\n\ngo 1.21\n`);

let tmp: { dir: string; cleanup: () => Promise<void> };
let n = 0;
let bomb: Buffer;
beforeAll(async () => {
  tmp = await makeTmp('check');
  // 1 GiB of zeros deflated to about 1 MB.
  const d = zlib.createDeflateRaw({ level: 9 });
  const chunks: Buffer[] = [];
  d.on('data', (c: Buffer) => chunks.push(c));
  const zeros = Buffer.alloc(1 << 20);
  for (let i = 0; i < 1024; i++) if (!d.write(zeros)) await new Promise((r) => d.once('drain', r));
  d.end();
  await new Promise((r) => d.on('end', r));
  bomb = Buffer.concat(chunks);
});
afterAll(async () => {
  await tmp.cleanup();
});

async function save(data: Buffer): Promise<string> {
  const f = path.join(tmp.dir, `z${n++}.zip`);
  await writeFile(f, data);
  return f;
}

async function ourError(file: string, mod = MOD, ver = VER): Promise<ZipError> {
  let err: unknown;
  try {
    await checkModuleZip(file, mod, ver);
  } catch (e) {
    err = e;
  }
  expect(err, 'checkModuleZip should have failed').toBeInstanceOf(ZipError);
  const msg = (err as Error).message;
  expect(msg).not.toMatch(/[\r\n\u2028\u2029]/);
  expect(msg).toContain(`module zip for ${mod}@${ver} is invalid: `);
  return err as ZipError;
}

const e = (name: string | Buffer, data: string | Buffer = 'x', more: Partial<RawEntry> = {}): RawEntry => ({
  name: typeof name === 'string' ? P + name : Buffer.concat([Buffer.from(P), name]),
  data: typeof data === 'string' ? Buffer.from(data) : data,
  ...more,
});

// Each case: the zip, what our message must mention, and whether x/mod (CheckZip, HashZip, Unzip)
// rejects it too. Where Go accepts, we are deliberately stricter.
const hostile: [string, () => Buffer, RegExp, boolean][] = [
  ['entry outside the prefix', () => rawZip([e('go.mod', GOMOD), { name: 'other/x.go', data: Buffer.from('x') }]), /does not have prefix/, true],
  ['entry for another version', () => rawZip([{ name: `${MOD}@v1.0.1/a.go`, data: Buffer.from('x') }]), /prefix/, true],
  ['../ path', () => rawZip([e('../x.go')]), /malformed file path|not clean/, true],
  ['not clean path', () => rawZip([e('a/../b.go')]), /not clean/, true],
  ['double slash', () => rawZip([e('a//b.go')]), /not clean/, true],
  ['absolute path', () => rawZip([{ name: `/${P}a.go`, data: Buffer.from('x') }]), /prefix/, true],
  ['leading slash after the prefix', () => rawZip([e('/a.go')]), /malformed file path "\/a\.go"/, true],
  ['backslash', () => rawZip([e('a\\b.go')]), /malformed file path/, true],
  ['duplicate names', () => rawZip([e('a.go', '1'), e('a.go', '2')]), /multiple entries for file "a.go"/, true],
  ['case-colliding names', () => rawZip([e('a.go'), e('A.go')]), /case-insensitive file name collision/, true],
  ['case-colliding directories', () => rawZip([e('x/a.go'), e('X/b.go')]), /case-insensitive file name collision/, true],
  ['file/dir clash', () => rawZip([e('a'), e('a/b.go')]), /both a file and a directory/, true],
  ['file/dir-entry clash', () => rawZip([e('a/', ''), e('a')]), /both a file and a directory/, true],
  ['GO.MOD', () => rawZip([e('GO.MOD', GOMOD)]), /go\.mod files must have lowercase names/, true],
  ['go.mod in a subdirectory', () => rawZip([e('go.mod', GOMOD), e('sub/go.mod', GOMOD)]), /not in module root/, true],
  ['go.mod over 16 MiB (declared)', () => rawZip([e('go.mod', GOMOD, { usize: (16 << 20) + 1 })]), /go\.mod file too large/, true],
  ['LICENSE over 16 MiB (declared)', () => rawZip([e('LICENSE', 'MIT', { usize: (16 << 20) + 1 })]), /LICENSE file too large/, true],
  [
    'total over 500 MiB (declared)',
    () => rawZip([e('a.bin', 'a', { usize: 300 << 20 }), e('b.bin', 'b', { usize: 300 << 20 })]),
    /total uncompressed size of module contents too large/,
    true,
  ],
  ['bad CRC', () => rawZip([e('a.go', 'package a\n', { crc: 0xdeadbeef })]), /bad CRC-32/, true],
  ['bad CRC, stored', () => rawZip([e('a.go', 'package a\n', { crc: 1, method: 0 })]), /bad CRC-32/, true],
  ['bad CRC in the data descriptor', () => rawZip([e('a.go', 'abc', { descriptor: 'sig', descriptorCrc: 7 })]), /data descriptor/, true],
  ['unsupported method', () => rawZip([e('a.go', 'abc', { method: 12, payload: Buffer.from('abc') })]), /unsupported compression method 12/, true],
  ['declared size larger than the data', () => rawZip([e('a.go', 'abc', { usize: 10 })]), /shorter than its declared size/, true],
  ['declared size smaller than the data', () => rawZip([e('a.go', 'abcdef', { usize: 3 })]), /larger than its declared size/, true],
  ['stored sizes disagree', () => rawZip([e('a.go', 'abcdef', { method: 0, usize: 3 })]), /./, true],
  ['truncated deflate stream', () => rawZip([e('a.go', randomBytes(5000), { payload: zlib.deflateRawSync(randomBytes(5000)).subarray(0, 100) })]), /corrupt compressed data|declared/, true],
  ['garbage deflate stream', () => rawZip([e('a.go', 'abc', { payload: Buffer.from([0xff, 0xff, 0xff, 0xff]) })]), /corrupt compressed data/, true],
  ['directory entry with contents', () => rawZip([e('d/', 'data', { method: 0 })]), /directory with contents/, true],
  ['non-UTF-8 name', () => rawZip([e(Buffer.from([0x61, 0xff, 0x2e, 0x67, 0x6f]))]), /UTF-8/, true],
  ['name starting with a byte order mark', () => rawZip([{ name: `\ufeff${P}a.go`, data: Buffer.from('x') }]), /prefix/, true],
  ['name with a newline', () => rawZip([e('a\nb.go')]), /malformed file path/, true],
  ['name with a line separator', () => rawZip([e('a\u2028b.go')]), /malformed file path/, true],
  ['encrypted flag', () => rawZip([e('a.go', 'abc', { flags: 0x801 })]), /encrypted/, false],
  ['symlink entry', () => rawZip([e('a.go', '/etc/passwd', { externalAttrs: (0o120777 << 16) >>> 0 })]), /symbolic link/, false],
  ['fifo entry', () => rawZip([e('a.go', '', { externalAttrs: (0o010644 << 16) >>> 0 })]), /not a regular file/, false],
  ['HTML instead of a zip', () => Buffer.from('<!DOCTYPE html>\n<html><body>404 page not found</body></html>\n'), /not a zip file/, true],
  ['empty file', () => Buffer.alloc(0), /not a zip file/, true],
  ['garbage', () => randomBytes(4096), /not a zip file/, true],
];

describe('hostile zips are rejected with one-line ZipErrors', () => {
  it.each(hostile)('%s', async (_title, make, cause, goRejects) => {
    const file = await save(make());
    const err = await ourError(file);
    expect(err.message).toMatch(cause);
    const go = await goCheck(file, MOD, VER);
    if (goRejects) expect(go.err, 'x/mod should reject this too').not.toBeNull();
    else expect(go.err, 'x/mod accepts this; we are stricter on purpose').toBeNull();
  });

  it('a truncated zip, cut anywhere', async () => {
    const good = rawZip([e('go.mod', GOMOD), e('a.go', randomBytes(3000)), e('b/c.go', 'package c\n')]);
    for (const cut of [1, 10, 30, 100, good.length / 2, good.length - 40, good.length - 22, good.length - 1]) {
      const file = await save(good.subarray(0, Math.floor(cut)));
      await ourError(file);
      expect((await goCheck(file, MOD, VER)).err).not.toBeNull();
    }
  });

  it('a deflate bomb with a lying size, without inflating it', async () => {
    const file = await save(rawZip([e('go.mod', GOMOD), e('bomb.bin', Buffer.alloc(1000), { payload: bomb, usize: 1000 })]));
    let inflated = 0;
    const real = zlib.createInflateRaw;
    const spy = vi.spyOn(zlib, 'createInflateRaw').mockImplementation((o) => {
      const s = real(o);
      const push = s.push.bind(s);
      s.push = (chunk: unknown, enc?: BufferEncoding) => {
        if (Buffer.isBuffer(chunk)) inflated += chunk.length;
        return push(chunk, enc);
      };
      return s;
    });
    const t0 = Date.now();
    try {
      const err = await ourError(file);
      expect(err.message).toMatch(/bomb\.bin.*larger than its declared size/);
    } finally {
      spy.mockRestore();
    }
    expect(inflated).toBeLessThan(1 << 20);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect((await goCheck(file, MOD, VER)).err).not.toBeNull();
  });

  it('a small deflate bomb (decompressed in one call) with a lying size', async () => {
    const payload = zlib.deflateRawSync(Buffer.alloc(40 << 20), { level: 9 });
    expect(payload.length).toBeLessThan(1 << 16);
    const file = await save(rawZip([e('small-bomb.bin', Buffer.alloc(0), { payload, usize: 1000 })]));
    const t0 = Date.now();
    expect((await ourError(file)).message).toMatch(/small-bomb\.bin.*larger than its declared size/);
    expect(Date.now() - t0).toBeLessThan(2000);
    expect((await goCheck(file, MOD, VER)).err).not.toBeNull();
  });

  it('trailing data after the end record (Go tolerates it; we do not)', async () => {
    const file = await save(rawZip([e('a.go')], { trailing: Buffer.from('extra') }));
    await ourError(file);
  });

  it('data prepended to the zip (Go guesses a base offset; we refuse)', async () => {
    const file = await save(Buffer.concat([Buffer.from('#!/bin/sh\n'), rawZip([e('a.go')])]));
    await ourError(file);
  });

  it('a bad module path or version, before reading anything', async () => {
    const file = await save(rawZip([e('a.go')]));
    expect((await ourError(file, MOD, 'v1.0')).message).toMatch(/not canonical/);
    await ourError(file, MOD, 'v2.0.0');
    await ourError(file, 'Example.com/m', VER);
  });

  it('a zip larger than the limit, before parsing it', async () => {
    const file = await save(rawZip([e('a.go', randomBytes(2000), { method: 0 })]));
    await expect(checkModuleZip(file, MOD, VER, { maxZipSize: 1000 })).rejects.toThrow(/module zip file is too large/);
  });

  it('passes through errors that are not about the zip', async () => {
    await expect(checkModuleZip(path.join(tmp.dir, 'missing.zip'), MOD, VER)).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe('valid zips of every shape give Go HashZip value', () => {
  const cases: [string, () => Promise<Buffer>][] = [
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
    ],
    ['stored entries', async () => rawZip([e('go.mod', GOMOD, { method: 0 }), e('b.bin', randomBytes(100_000), { method: 0 })])],
    [
      'data descriptors with and without signature',
      async () => rawZip([e('a.go', randomBytes(70_000), { descriptor: 'sig' }), e('b.go', 'bbb', { descriptor: 'nosig', method: 0 })]),
    ],
    ['empty files with CRC 0', async () => rawZip([e('empty', ''), e('empty2', '', { method: 0 })])],
    ['an archive comment', async () => rawZip([e('a.go')], { comment: Buffer.from('made by hand') })],
    ['unicode names', async () => rawZip([e('ｚ.go'), e('𠀀.go'), e('é/日本.txt', 'x')])],
    ['no entries at all', async () => rawZip([])],
    ['DOS creator with attributes', async () => rawZip([e('a.go', 'abc', { versionMadeBy: 20, externalAttrs: 0x20 })])],
    [
      'zip64 records (yazl)',
      async () => {
        const z = new yazl.ZipFile();
        z.addBuffer(GOMOD, `${P}go.mod`, { forceZip64Format: true });
        z.addBuffer(randomBytes(10_000), `${P}data.bin`, { forceZip64Format: true, compress: false });
        z.end({ forceZip64Format: true, comment: '' });
        const f = path.join(tmp.dir, `yazl${n++}.zip`);
        await pipeline(z.outputStream, createWriteStream(f));
        return readFile(f);
      },
    ],
  ];
  it.each(cases)('%s', async (_title, make) => {
    const file = await save(await make());
    const go = await goCheck(file, MOD, VER);
    expect(go.err).toBeNull();
    const ours = await checkModuleZip(file, MOD, VER);
    expect(ours.h1).toBe(go.h1);
    expect(await hashZipFile(file)).toBe(go.h1);
  });

  it('returns go.mod and the counts', async () => {
    const file = await save(rawZip([e('go.mod', GOMOD), e('a/', ''), e('a/b.go', 'package b\n')]));
    const r = await checkModuleZip(file, MOD, VER);
    expect(r.goMod).toEqual(GOMOD);
    expect(r.hasGoMod).toBe(true);
    expect(r.files).toBe(2);
    expect(r.uncompressedSize).toBe(GOMOD.length + 10);
    const noMod = await checkModuleZip(await save(rawZip([e('a.go')])), MOD, VER);
    expect(noMod.hasGoMod).toBe(false);
    expect(noMod.goMod).toBeUndefined();
  });
});
