// verifyCache over a store that is not the disk store (an in-memory BlobStore, keys listed in no
// particular order): zips are copied out to be checked, each version is judged on its own files,
// --purge deletes through the interface and rewrites the list; no checksum database (local checks).
import { appendFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { BlobReader, BlobStat, BlobStore, BlobWrite, ListedBlob } from '../../src/cache/blobstore.js';
import { verifyCache, type VersionReport } from '../../src/cli/verify.js';
import { hashGoMod, hashZipFile } from '../../src/modzip/index.js';
import { moduleZip } from '../e2e-sumdb/util.js';

class MemStore implements BlobStore {
  readonly description = 'memory';
  readonly blobs = new Map<string, Buffer>();
  private stat(data: Buffer): BlobStat {
    return { size: data.length, etag: `"${data.length}"`, mtimeMs: 0 };
  }
  async head(key: string): Promise<BlobStat | null> {
    const d = this.blobs.get(key);
    return d ? this.stat(d) : null;
  }
  async get(key: string): Promise<BlobReader | null> {
    const d = this.blobs.get(key);
    return d ? { ...this.stat(d), stream: Readable.from([d]), close: async () => undefined } : null;
  }
  async getBuffer(key: string, maxBytes: number): Promise<{ stat: BlobStat; data: Buffer } | null> {
    const d = this.blobs.get(key);
    if (!d) return null;
    if (d.length > maxBytes) throw new Error(`${key} is too large`);
    return { stat: this.stat(d), data: d };
  }
  async put(key: string, data: Uint8Array): Promise<BlobStat> {
    const b = Buffer.from(data);
    this.blobs.set(key, b);
    return this.stat(b);
  }
  async beginWrite(key: string): Promise<BlobWrite> {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'memstore-'));
    const stagingFile = path.join(dir, 'blob');
    await writeFile(stagingFile, '');
    return {
      stagingFile,
      append: (chunk) => appendFile(stagingFile, chunk),
      commit: async () => this.put(key, await readFile(stagingFile)),
      abort: () => rm(dir, { recursive: true, force: true }),
    };
  }
  async delete(key: string): Promise<boolean> {
    return this.blobs.delete(key);
  }
  async *list(prefix: string): AsyncIterable<string> {
    // Reverse insertion order: nothing may depend on a store listing a module's files together or sorted.
    for (const k of [...this.blobs.keys()].reverse()) if (k.startsWith(prefix)) yield k;
  }
  async *listStats(prefix: string): AsyncIterable<ListedBlob> {
    for await (const key of this.list(prefix)) yield { key, size: this.blobs.get(key)?.length ?? 0, mtimeMs: 0 };
  }
  async checkWritable(): Promise<void> {}
}

const M = 'example.com/verify/m';
let tmp: string;
let store: MemStore;

async function addVersion(version: string, opts: { zipFiles?: Record<string, string>; ziphash?: string | null; info?: string } = {}): Promise<string> {
  const zip = await moduleZip(M, version, opts.zipFiles ?? { 'go.mod': `module ${M}\n`, 'm.go': `package m // ${version}\n` });
  const file = path.join(tmp, `${version}.zip`);
  await writeFile(file, zip);
  const h1 = await hashZipFile(file);
  const mod = Buffer.from(`module ${M}\n`);
  store.blobs.set(`${M}/@v/${version}.info`, Buffer.from(opts.info ?? JSON.stringify({ Version: version, Time: '2024-01-01T00:00:00Z' })));
  store.blobs.set(`${M}/@v/${version}.mod`, mod);
  if (opts.ziphash !== null) store.blobs.set(`${M}/@v/${version}.ziphash`, Buffer.from(opts.ziphash ?? h1));
  store.blobs.set(`${M}/@v/${version}.zip`, zip);
  expect(hashGoMod(mod)).toMatch(/^h1:/);
  return h1;
}

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'gmp-verify-store-'));
  store = new MemStore();
  await addVersion('v1.0.0');
  await addVersion('v1.1.0', { ziphash: `h1:${Buffer.alloc(32).toString('base64')}` });
  await addVersion('v1.2.0', { ziphash: null });
  await addVersion('v1.3.0', { info: '{"Version":"v9.9.9"}' });
  // Not module data: our own state and the sumdb cache are never taken for modules.
  store.blobs.set('state/instance-id', Buffer.from('x\n'));
  store.blobs.set('sumdb/sum.golang.org/lookup/example.com/x@v1.0.0', Buffer.from('junk'));
  store.blobs.set(`${M}/@v/list`, Buffer.from('v1.0.0\nv1.1.0\nv1.2.0\nv1.3.0\n'));
});
afterAll(() => rm(tmp, { recursive: true, force: true }));

describe('verifyCache on any BlobStore', () => {
  test('reports each bad version, purges it, rewrites the list', async () => {
    const reports: VersionReport[] = [];
    const progress: [number, number][] = [];
    const summary = await verifyCache({
      store,
      sumdb: null,
      offline: true,
      purge: true,
      concurrency: 3,
      onReport: (r) => reports.push(r),
      onProgress: (done, total) => progress.push([done, total]),
    });
    expect(summary).toMatchObject({ modules: 1, versions: 4, ok: 1, bad: 3, purged: 3, unverified: 0 });
    const bad = Object.fromEntries(reports.filter((r) => r.status === 'bad').map((r) => [r.version, r.problems.join('; ')]));
    expect(Object.keys(bad).sort()).toEqual(['v1.1.0', 'v1.2.0', 'v1.3.0']);
    expect(bad['v1.1.0']).toContain('but its .ziphash says h1:AAAA');
    expect(bad['v1.2.0']).toContain('no .ziphash');
    expect(bad['v1.3.0']).toContain('v9.9.9');
    expect(progress.at(-1)).toEqual([4, 4]);
    expect([...store.blobs.keys()].filter((k) => k.startsWith(`${M}/@v/v1.`)).sort()).toEqual(
      ['info', 'mod', 'zip', 'ziphash'].map((e) => `${M}/@v/v1.0.0.${e}`).sort(),
    );
    expect(store.blobs.get(`${M}/@v/list`)?.toString()).toBe('v1.0.0\n');
  });
});
