// The behaviour every BlobStore must have. A new store (S3, ...) calls blobStoreCompliance with
// a factory and must pass all of it.
import { randomBytes } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import type { BlobStore } from '../../src/cache/blobstore.js';

async function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

async function collectKeys(store: BlobStore, prefix: string): Promise<string[]> {
  const out: string[] = [];
  for await (const k of store.list(prefix)) out.push(k);
  return out.sort();
}

export function blobStoreCompliance(name: string, makeStore: () => Promise<BlobStore>): void {
  describe(`BlobStore compliance: ${name}`, () => {
    it('reports missing blobs as null', async () => {
      const s = await makeStore();
      expect(await s.head('example.com/m/@v/v1.0.0.zip')).toBeNull();
      expect(await s.get('example.com/m/@v/v1.0.0.zip')).toBeNull();
      expect(await s.getBuffer('example.com/m/@v/v1.0.0.zip', 100)).toBeNull();
      expect(await s.delete('example.com/m/@v/v1.0.0.zip')).toBe(false);
    });

    it('round-trips bytes with size, a quoted ETag and a store time', async () => {
      const s = await makeStore();
      const data = randomBytes(300_000);
      const before = Date.now() - 2000;
      const put = await s.put('example.com/m/@v/v1.0.0.zip', data);
      expect(put.size).toBe(data.length);
      expect(put.etag).toMatch(/^"[^"]+"$/);
      expect(put.mtimeMs).toBeGreaterThanOrEqual(before);
      const head = await s.head('example.com/m/@v/v1.0.0.zip');
      expect(head).toEqual(put);
      const got = await s.get('example.com/m/@v/v1.0.0.zip');
      expect(got?.size).toBe(data.length);
      expect(got?.etag).toBe(put.etag);
      expect((await readAll(got!.stream)).equals(data)).toBe(true);
      const buf = await s.getBuffer('example.com/m/@v/v1.0.0.zip', data.length);
      expect(buf?.data.equals(data)).toBe(true);
      expect(buf?.stat.etag).toBe(put.etag);
    });

    it('refuses to buffer a blob larger than asked', async () => {
      const s = await makeStore();
      await s.put('example.com/m/@v/v1.0.0.mod', Buffer.alloc(1000));
      await expect(s.getBuffer('example.com/m/@v/v1.0.0.mod', 999)).rejects.toThrow(/1000 bytes/);
    });

    it('changes the ETag when the bytes are replaced, and readers never see a part', async () => {
      const s = await makeStore();
      const a = Buffer.alloc(2 << 20, 'a');
      const b = Buffer.alloc(2 << 20, 'b');
      const first = await s.put('k.example/m/@v/list', a);
      let done = false;
      const reads: Promise<void>[] = [];
      const reader = async (): Promise<void> => {
        while (!done) {
          const got = await s.getBuffer('k.example/m/@v/list', 4 << 20);
          if (!got) throw new Error('blob vanished during replacement');
          const whole = got.data.equals(a) || got.data.equals(b);
          expect(whole).toBe(true);
        }
      };
      for (let i = 0; i < 3; i++) reads.push(reader());
      let last = first;
      for (let i = 0; i < 6; i++) last = await s.put('k.example/m/@v/list', i % 2 ? a : b);
      done = true;
      await Promise.all(reads);
      expect(last.etag).not.toBe(first.etag);
    });

    it('streams a write into a local staging file, invisible until commit', async () => {
      const s = await makeStore();
      const key = 'example.com/staged/@v/v1.2.3.zip';
      const w = await s.beginWrite(key);
      const data = randomBytes(100_000);
      await w.append(data.subarray(0, 60_000));
      expect((await readFile(w.stagingFile)).equals(data.subarray(0, 60_000))).toBe(true);
      expect(await s.head(key)).toBeNull();
      expect(await collectKeys(s, 'example.com/staged/')).toEqual([]);
      await w.append(data.subarray(60_000));
      const st = await w.commit();
      expect(st.size).toBe(data.length);
      expect((await s.getBuffer(key, 1 << 20))?.data.equals(data)).toBe(true);
      await w.abort();
      expect((await s.head(key))?.size).toBe(data.length);
    });

    it('leaves nothing of an aborted write', async () => {
      const s = await makeStore();
      const key = 'example.com/aborted/@v/v1.0.0.zip';
      const w = await s.beginWrite(key);
      await w.append(randomBytes(10_000));
      await w.abort();
      await w.abort();
      expect(await s.head(key)).toBeNull();
      await expect(stat(w.stagingFile)).rejects.toThrow();
      expect(await collectKeys(s, 'example.com/aborted/')).toEqual([]);
    });

    it('reads from an offset', async () => {
      const s = await makeStore();
      const key = 'example.com/ranged/@v/v1.0.0.zip';
      const data = randomBytes(200_000);
      await s.put(key, data);
      const got = await s.get(key, { start: 123_456 });
      expect(got?.size).toBe(data.length);
      expect((await readAll(got!.stream)).equals(data.subarray(123_456))).toBe(true);
    });

    it('lists keys under a prefix, recursively, without its own temporary files', async () => {
      const s = await makeStore();
      await s.put('example.com/a/@v/v1.0.0.info', Buffer.from('{}'));
      await s.put('example.com/a/@v/v1.0.0.mod', Buffer.from('module example.com/a\n'));
      await s.put('example.com/a/b/@v/v0.1.0.mod', Buffer.from('module example.com/a/b\n'));
      await s.put('example.com/ab/@v/v0.1.0.mod', Buffer.from('module example.com/ab\n'));
      const pending = await s.beginWrite('example.com/a/@v/v1.0.0.zip');
      await pending.append(Buffer.from('partial'));
      expect(await collectKeys(s, 'example.com/a/')).toEqual(['example.com/a/@v/v1.0.0.info', 'example.com/a/@v/v1.0.0.mod', 'example.com/a/b/@v/v0.1.0.mod']);
      expect(await collectKeys(s, 'example.com/a/@v/')).toEqual(['example.com/a/@v/v1.0.0.info', 'example.com/a/@v/v1.0.0.mod']);
      expect(await collectKeys(s, 'nothing.example/')).toEqual([]);
      expect((await collectKeys(s, '')).filter((k) => k.startsWith('example.com/'))).toHaveLength(4);
      await pending.abort();
    });

    it('deletes', async () => {
      const s = await makeStore();
      await s.put('example.com/d/@v/v1.0.0.info', Buffer.from('{}'));
      expect(await s.delete('example.com/d/@v/v1.0.0.info')).toBe(true);
      expect(await s.head('example.com/d/@v/v1.0.0.info')).toBeNull();
    });

    it('refuses keys that could escape its root', async () => {
      const s = await makeStore();
      for (const key of ['', '/etc/passwd', '../x', 'a/../../x', 'a//b', 'a/./b', 'a\\b', 'a\0b']) {
        await expect(s.put(key, Buffer.from('x'))).rejects.toThrow();
        await expect(s.head(key)).rejects.toThrow();
      }
    });

    it('says whether it is writable', async () => {
      const s = await makeStore();
      await expect(s.checkWritable()).resolves.toBeUndefined();
    });
  });
}
