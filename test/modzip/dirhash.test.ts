import { createHash, randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hash1, hashGoMod, hashZipFile, ZipError } from '../../src/modzip/index.js';
import { runGoTool } from '../helpers/gotools.js';
import { goHashZip, makeTmp, rawZip } from './helpers.js';

const sha = (s: string | Buffer): Buffer => createHash('sha256').update(s).digest();

let tmp: { dir: string; cleanup: () => Promise<void> };
beforeAll(async () => {
  tmp = await makeTmp('dirhash');
});
afterAll(async () => {
  await tmp.cleanup();
});

describe('hash1', () => {
  it('matches dirhash TestHash1', () => {
    // GO-MODULES.md §7: files xyz and abc holding "data for xyz" and "data for abc".
    const h = hash1([
      { name: 'xyz', sha256: sha('data for xyz') },
      { name: 'abc', sha256: sha('data for abc') },
    ]);
    expect(h).toBe('h1:EP6WfDoQTSk9klnxcjriWJOGztueJUywHNmWeq+efB8=');
  });

  it('hashes the empty go.mod as cmd/go emptyGoModHash', () => {
    expect(hashGoMod(Buffer.alloc(0))).toBe('h1:G7mAYYxgmS0lVkHyy2hEOLQCFB0DlQFTMLWggykrydY=');
  });

  it('refuses names with newlines, in one line', () => {
    expect(() => hash1([{ name: 'a\nb', sha256: sha('') }])).toThrow(ZipError);
    try {
      hash1([{ name: 'a\nb', sha256: sha('') }]);
    } catch (err) {
      expect((err as Error).message).not.toMatch(/\n/);
    }
  });

  it('refuses strings that are not well-formed Unicode', () => {
    expect(() => hash1([{ name: 'a\ud800', sha256: sha('') }])).toThrow(ZipError);
  });

  it('sorts by UTF-8 bytes, not UTF-16 code units, as Go does (differential with HashDir)', async () => {
    // U+FF5A (fullwidth z, EF BD 9A) sorts before U+20000 (F0 A0 80 80) in UTF-8 but after it
    // (D840 DC00) in UTF-16; likewise U+E000 area versus astral letters.
    const names = ['ｚ.go', '𠀀.go', 'a.go', 'é/x.go', 'Z.go', '𐐀', '\uF900', 'b c', 'ä', 'a/b/c'];
    expect(['ｚ.go', '𠀀.go'].sort()[0]).toBe('𠀀.go'); // JS order differs from Go's here
    const dir = path.join(tmp.dir, 'order');
    const files: { name: string; sha256: Buffer }[] = [];
    for (const [i, n] of names.entries()) {
      const content = `content ${i}\n`;
      await mkdir(path.dirname(path.join(dir, n)), { recursive: true });
      await writeFile(path.join(dir, n), content);
      files.push({ name: `prefix@v1/${n}`, sha256: sha(content) });
    }
    const go = JSON.parse(await runGoTool('modzip', ['hash', dir, 'prefix@v1'])) as { h1: string };
    expect(hash1(files)).toBe(go.h1);
  });

  it('hashGoMod equals the go.sum /go.mod hash for assorted contents', async () => {
    const samples = [Buffer.from('module example.com/m\n\ngo 1.22\n'), Buffer.from('module example.com/ünï\r\n'), randomBytes(5000)];
    for (const [i, s] of samples.entries()) {
      const f = path.join(tmp.dir, `gomod${i}`);
      await writeFile(f, s);
      const go = JSON.parse(await runGoTool('modzip', ['gomodhash', f])) as { h1: string };
      expect(hashGoMod(s)).toBe(go.h1);
    }
  });
});

describe('hashZipFile', () => {
  it('equals dirhash.HashZip, counting directory entries and duplicates as Go does', async () => {
    const zips: Buffer[] = [
      rawZip([
        { name: 'm@v1.0.0/', data: Buffer.alloc(0) },
        { name: 'm@v1.0.0/dir/', data: Buffer.alloc(0), method: 0 },
        { name: 'm@v1.0.0/dir/a', data: Buffer.from('aaa') },
        { name: 'm@v1.0.0/b', data: Buffer.from('bbb'), method: 0 },
      ]),
      // Duplicates: HashZip hashes every occurrence with the last one's contents.
      rawZip([
        { name: 'x', data: Buffer.from('first') },
        { name: 'y', data: Buffer.from('y') },
        { name: 'x', data: Buffer.from('second') },
      ]),
      // Names outside any module prefix are hashed as they are.
      rawZip([
        { name: 'ünïcödé/𠀀', data: randomBytes(3000) },
        { name: 'ｚ', data: Buffer.from('z') },
      ]),
      rawZip([]),
    ];
    for (const [i, z] of zips.entries()) {
      const f = path.join(tmp.dir, `hz${i}.zip`);
      await writeFile(f, z);
      const go = await goHashZip(f);
      expect(go.err).toBeNull();
      expect(await hashZipFile(f)).toBe(go.h1);
    }
  });

  it('fails where HashZip fails', async () => {
    const bad = [
      rawZip([{ name: 'a', data: Buffer.from('abc'), crc: 1234 }]),
      rawZip([{ name: 'd/', data: Buffer.from('x'), method: 0 }]),
      rawZip([{ name: 'a', data: Buffer.from('abc'), method: 12, payload: Buffer.from('abc') }]),
    ];
    for (const [i, z] of bad.entries()) {
      const f = path.join(tmp.dir, `hzbad${i}.zip`);
      await writeFile(f, z);
      expect((await goHashZip(f)).err).not.toBeNull();
      await expect(hashZipFile(f)).rejects.toBeInstanceOf(ZipError);
    }
  });
});
