import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import yazl from 'yazl';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkModuleZip, hashZipFile, ZipError } from '../../src/modzip/index.js';
import { GOMOD, HOSTILE_ZIPS, MOD, P, VER, countInflated, e, goCheck, makeTmp, rawZip } from './helpers.js';

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

describe('hostile zips are rejected with one-line ZipErrors', () => {
  it.each(HOSTILE_ZIPS)('%s', async (_title, make, cause, goRejects) => {
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
    const { inflated, capped, result: err } = await countInflated(() => ourError(file));
    expect(err.message).toMatch(/bomb\.bin.*larger than its declared size/);
    // 1 GiB inside; what was expanded is one zlib chunk past the declared 1000 bytes.
    expect(inflated + capped).toBeLessThan(1 << 20);
    expect((await goCheck(file, MOD, VER)).err).not.toBeNull();
  });

  it('a small deflate bomb (decompressed in one call) with a lying size, without inflating it', async () => {
    const payload = zlib.deflateRawSync(Buffer.alloc(40 << 20), { level: 9 });
    expect(payload.length).toBeLessThan(1 << 16);
    const file = await save(rawZip([e('small-bomb.bin', Buffer.alloc(0), { payload, usize: 1000 })]));
    const { inflated, capped, result: err } = await countInflated(() => ourError(file));
    expect(err.message).toMatch(/small-bomb\.bin.*larger than its declared size/);
    // 40 MiB inside; the one call stops just past the declared 1000 bytes.
    expect(inflated + capped).toBeLessThanOrEqual(1001);
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
