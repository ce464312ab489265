// Randomly damaged zips: our checker must only ever fail with a one-line ZipError, must finish,
// and must never accept a zip that the go command (x/mod CheckZip + HashZip + Unzip) rejects or
// hashes differently.
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import yazl from 'yazl';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkModuleZip, hashZipFile, writeModuleZip, ZipError } from '../../src/modzip/index.js';
import { goCheck, goCreate, goHashZip, listTree, makeTmp, rawZip, rng } from './helpers.js';

const MOD = 'example.com/fuzz';
const VER = 'v0.1.0';
const P = `${MOD}@${VER}/`;
// Override to run a longer campaign: MODZIP_FUZZ_SAMPLES=5000 MODZIP_FUZZ_SEED=7 npx vitest run test/modzip/fuzz.test.ts
const SAMPLES = Number(process.env.MODZIP_FUZZ_SAMPLES ?? 600);
const SEED = Number(process.env.MODZIP_FUZZ_SEED ?? 0x5eed);
const TIME_LIMIT_MS = 10_000;

let tmp: { dir: string; cleanup: () => Promise<void> };
const seeds: Buffer[] = [];

beforeAll(async () => {
  tmp = await makeTmp('fuzz');
  const tree = path.join(tmp.dir, 'tree');
  const files: Record<string, string | Buffer> = {
    'go.mod': `module ${MOD}\n\ngo 1.22\n`,
    'a.go': 'package fuzz\n\nfunc A() int { return 1 }\n',
    'é/b.go': 'package é\n',
    'LICENSE': 'Copyright\n',
    'data.bin': randomBytes(20_000),
    // Large enough to be streamed rather than decompressed in one call.
    'big.txt': randomBytes(300_000).toString('base64'),
    'text.txt': 'lorem ipsum '.repeat(500),
    'empty': '',
  };
  for (const [name, data] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(tree, name)), { recursive: true });
    await writeFile(path.join(tree, name), data);
  }
  const ours = path.join(tmp.dir, 'seed-ours.zip');
  await writeModuleZip(await listTree(tree), { modulePath: MOD, version: VER, goVersion: '1.22' }, createWriteStream(ours));
  seeds.push(await readFile(ours));
  const goZip = path.join(tmp.dir, 'seed-go.zip');
  expect((await goCreate('dir', tree, MOD, VER, goZip)).err).toBeNull();
  seeds.push(await readFile(goZip));
  seeds.push(
    rawZip(
      [
        { name: P, data: Buffer.alloc(0), method: 0 },
        { name: `${P}go.mod`, data: Buffer.from(`module ${MOD}\n`), method: 0 },
        { name: `${P}d/`, data: Buffer.alloc(0), method: 0 },
        { name: `${P}d/x.go`, data: Buffer.from('package d\n'.repeat(50)), descriptor: 'sig' },
        { name: `${P}d/y.go`, data: Buffer.from('package d\n'), descriptor: 'nosig', method: 0 },
      ],
      { comment: Buffer.from('seed') },
    ),
  );
  const z = new yazl.ZipFile();
  z.addBuffer(Buffer.from(`module ${MOD}\n`), `${P}go.mod`, { forceZip64Format: true });
  z.addBuffer(randomBytes(3000), `${P}r.bin`, { forceZip64Format: true, compress: false });
  z.end({ forceZip64Format: true, comment: '' });
  const y = path.join(tmp.dir, 'seed-yazl.zip');
  await pipeline(z.outputStream, createWriteStream(y));
  seeds.push(await readFile(y));
});
afterAll(async () => {
  await tmp.cleanup();
});

function mutate(seed: Buffer, rand: () => number): Buffer {
  const b = Buffer.from(seed);
  if (b.length < 8) return Buffer.concat([b, randomBytesFrom(rand, 1 + Math.floor(rand() * 30))]);
  const pos = (): number => {
    // Half of the damage goes to the last quarter, where the central directory and end records live.
    if (rand() < 0.5) return Math.floor(b.length * 0.75 + rand() * b.length * 0.25);
    return Math.floor(rand() * b.length);
  };
  if (rand() < 0.4) {
    // Aim at a header field: find the records by signature and change one fixed-size field.
    const records: [number, number][] = [];
    for (let i = 0; i + 4 <= b.length; i++) {
      if (b[i] !== 0x50 || b[i + 1] !== 0x4b) continue;
      const sig = b.readUInt32LE(i);
      const len = { 0x02014b50: 46, 0x04034b50: 30, 0x06054b50: 22, 0x06064b50: 56, 0x07064b50: 20, 0x08074b50: 16 }[sig];
      if (len !== undefined) records.push([i, len]);
    }
    if (records.length > 0) {
      const [at, len] = records[Math.floor(rand() * records.length)] as [number, number];
      const off = at + 4 + 2 * Math.floor(rand() * ((len - 4) / 2));
      if (off + 2 <= b.length) {
        const edge = [0, 1, 2, 8, 0x800, 0x808, 0xffff, 0x0314, 0x1314, 0xa1ff, 0x8000, (b.readUInt16LE(off) + 1) & 0xffff];
        b.writeUInt16LE(edge[Math.floor(rand() * edge.length)] as number, off);
      }
      return b;
    }
  }
  switch (Math.floor(rand() * 6)) {
    case 0: {
      const k = 1 + Math.floor(rand() * 3);
      for (let i = 0; i < k; i++) b[Math.min(pos(), b.length - 1)] = Math.floor(rand() * 256);
      return b;
    }
    case 1: {
      const p = Math.min(pos(), b.length - 1);
      b[p] = (b[p] as number) ^ (1 << Math.floor(rand() * 8));
      return b;
    }
    case 2:
      return b.subarray(0, Math.floor(rand() * b.length));
    case 3: {
      const p = Math.min(pos(), b.length - 4);
      const edge = [0, 1, 0xff, 0xffff, 0xffffffff, 0x7fffffff, 0x10000, (b.readUInt32LE(p) + 1) >>> 0];
      b.writeUInt32LE(edge[Math.floor(rand() * edge.length)] as number, p);
      return b;
    }
    case 4: {
      const p = pos();
      const len = 1 + Math.floor(rand() * 8);
      return rand() < 0.5
        ? Buffer.concat([b.subarray(0, p), randomBytesFrom(rand, len), b.subarray(p)])
        : Buffer.concat([b.subarray(0, p), b.subarray(p + len)]);
    }
    default: {
      const p = Math.min(pos(), b.length - 2);
      const edge = [0, 1, 0xffff, 8, 0x0800, 0x0808, 0x0809];
      b.writeUInt16LE(edge[Math.floor(rand() * edge.length)] as number, p);
      return b;
    }
  }
}

function randomBytesFrom(rand: () => number, n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(rand() * 256);
  return b;
}

function withTimeout<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} took longer than ${TIME_LIMIT_MS} ms`)), TIME_LIMIT_MS);
    }),
  ]);
}

describe('mutated zips', () => {
  it('seeds are valid for both', async () => {
    for (const [i, s] of seeds.entries()) {
      const f = path.join(tmp.dir, `seed${i}.zip`);
      await writeFile(f, s);
      const go = await goCheck(f, MOD, VER);
      expect(go.err).toBeNull();
      expect((await checkModuleZip(f, MOD, VER)).h1).toBe(go.h1);
    }
  });

  it(`${SAMPLES} mutations (seed ${SEED}): only ZipErrors, bounded time, never more permissive than Go`, async () => {
    const rand = rng(SEED);
    let accepted = 0;
    let rejected = 0;
    let stricter = 0;
    const unhandled: unknown[] = [];
    const onUnhandled = (r: unknown): void => {
      unhandled.push(r);
    };
    process.on('unhandledRejection', onUnhandled);
    try {
      for (let i = 0; i < SAMPLES; i++) {
        const seed = seeds[i % seeds.length] as Buffer;
        let data = mutate(seed, rand);
        if (rand() < 0.3) data = mutate(data, rand);
        const f = path.join(tmp.dir, `m${i}.zip`);
        await writeFile(f, data);
        const label = `sample ${i} (seed ${i % seeds.length}, ${f})`;

        let ours: { h1: string } | undefined;
        try {
          ours = await withTimeout(checkModuleZip(f, MOD, VER), label);
        } catch (err) {
          expect(err, label).toBeInstanceOf(ZipError);
          expect((err as Error).message, label).not.toMatch(/[\r\n]/);
        }
        let hashed: string | undefined;
        try {
          hashed = await withTimeout(hashZipFile(f), label);
        } catch (err) {
          expect(err, label).toBeInstanceOf(ZipError);
        }

        if (ours) {
          accepted++;
          const go = await goCheck(f, MOD, VER);
          expect(go.err, `${label}: we accepted a zip Go rejects`).toBeNull();
          expect(ours.h1, label).toBe(go.h1);
          expect(hashed, label).toBe(go.h1);
        } else {
          rejected++;
          if (i % 10 === 0 && (await goCheck(f, MOD, VER)).err === null) stricter++;
        }
        if (hashed !== undefined && !ours) {
          const go = await goHashZip(f);
          expect(go.err, `${label}: hashZipFile succeeded where HashZip fails`).toBeNull();
          expect(hashed, label).toBe(go.h1);
        }
      }
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
    expect(unhandled).toEqual([]);
    console.log(`fuzz: ${accepted} accepted, ${rejected} rejected (of a tenth of those, ${stricter} Go would accept)`);
    expect(accepted).toBeGreaterThan(40);
    expect(rejected).toBeGreaterThan(100);
  });
});
