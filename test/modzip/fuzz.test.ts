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
import { goCheck, goCreate, goHashZip, listTree, makeTmp, mutate, rawZip, rng } from './helpers.js';

const MOD = 'example.com/fuzz';
const VER = 'v0.1.0';
const P = `${MOD}@${VER}/`;
// Override to run a longer campaign: MODZIP_FUZZ_SAMPLES=5000 MODZIP_FUZZ_SEED=7 npx vitest run test/modzip/fuzz.test.ts
const SAMPLES = Number(process.env.MODZIP_FUZZ_SAMPLES ?? 600);
const SEED = Number(process.env.MODZIP_FUZZ_SEED ?? 0x5eed);
// A hang guard, not a speed limit: it names the sample that never finishes (instead of a bare test
// timeout); each check normally takes milliseconds, so load on the machine cannot trip it.
const HANG_MS = 60_000;

let tmp: { dir: string; cleanup: () => Promise<void> };
const seeds: Buffer[] = [];

beforeAll(async () => {
  tmp = await makeTmp('fuzz');
  const tree = path.join(tmp.dir, 'tree');
  const files: Record<string, string | Buffer> = {
    'go.mod': `module ${MOD}\n\ngo 1.22\n`,
    'a.go': 'package fuzz\n\nfunc A() int { return 1 }\n',
    'é/b.go': 'package é\n',
    LICENSE: 'Copyright\n',
    'data.bin': randomBytes(20_000),
    // Large enough to be streamed rather than decompressed in one call.
    'big.txt': randomBytes(300_000).toString('base64'),
    'text.txt': 'lorem ipsum '.repeat(500),
    empty: '',
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

function withTimeout<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not finish within ${HANG_MS} ms`)), HANG_MS);
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

  it(`${SAMPLES} mutations (seed ${SEED}): only ZipErrors, every check finishes, never more permissive than Go`, async () => {
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
