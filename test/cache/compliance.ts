// The behaviour every BlobStore must have. A new store (S3, ...) calls blobStoreCompliance with
// a factory and must pass all of it.
import { randomBytes } from 'node:crypto';
import { open, readFile, stat } from 'node:fs/promises';
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
      // Ends on b: a store may give the same bytes the same ETag again (S3's is their MD5).
      for (let i = 0; i < 5; i++) last = await s.put('k.example/m/@v/list', i % 2 ? a : b);
      done = true;
      await Promise.all(reads);
      expect(last.etag).not.toBe(first.etag);
    });

    it('gives one ETag per stored version: put, head, get and getBuffer agree, and a replacement has another', async () => {
      const s = await makeStore();
      const key = 'example.com/etag/@v/list';
      const first = await s.put(key, Buffer.from('v1.0.0\n'));
      const second = await s.put(key, Buffer.from('v1.0.0\nv1.1.0\n'));
      expect(second.etag).not.toBe(first.etag);
      const head = await s.head(key);
      const got = await s.get(key);
      await got?.close();
      const buf = await s.getBuffer(key, 1000);
      // What a conditional request compares: the validator a client holds against the one stored now.
      expect([head?.etag, got?.etag, buf?.stat.etag]).toEqual([second.etag, second.etag, second.etag]);
      expect(head?.mtimeMs).toBe(second.mtimeMs);
      expect(buf?.data.toString()).toBe('v1.0.0\nv1.1.0\n');
    });

    it('lets readers follow the staging file while a write streams in', async () => {
      const s = await makeStore();
      const key = 'example.com/followed/@v/v1.0.0.zip';
      const w = await s.beginWrite(key);
      const data = randomBytes(1 << 20);
      const fh = await open(w.stagingFile, 'r');
      const seen = Buffer.alloc(data.length);
      let pos = 0;
      // Reads what is in the file now, until it has `until` bytes (the writer has appended them).
      const catchUp = async (until: number): Promise<void> => {
        while (pos < until) {
          const { bytesRead } = await fh.read(seen, pos, until - pos, pos);
          if (bytesRead === 0) await new Promise((r) => setTimeout(r, 5));
          pos += bytesRead;
        }
      };
      try {
        for (let off = 0; off < data.length; off += 128 << 10) {
          const end = Math.min(off + (128 << 10), data.length);
          await w.append(data.subarray(off, end));
          await catchUp(end);
          expect(await s.head(key)).toBeNull();
        }
        await w.commit();
        // The reader's open file still has every byte after the commit moved or removed the name.
        const { bytesRead } = await fh.read(Buffer.alloc(1), 0, 1, data.length);
        expect(bytesRead).toBe(0);
      } finally {
        await fh.close();
      }
      expect(seen.equals(data)).toBe(true);
      expect((await s.getBuffer(key, data.length))?.data.equals(data)).toBe(true);
    });

    it('commits a streamed write of no bytes as an empty blob', async () => {
      const s = await makeStore();
      const key = 'example.com/empty/@v/list';
      const w = await s.beginWrite(key);
      const st = await w.commit();
      expect(st.size).toBe(0);
      expect(await s.head(key)).toEqual(st);
      expect((await s.getBuffer(key, 0))?.data.length).toBe(0);
    });

    it('takes the bytes of a chunk when append resolves: the caller may reuse its buffer', async () => {
      const s = await makeStore();
      const key = 'example.com/reused/@v/v1.0.0.zip';
      const w = await s.beginWrite(key);
      const chunk = Buffer.alloc(64 << 10);
      const expected: Buffer[] = [];
      for (let i = 0; i < 8; i++) {
        chunk.fill(i + 1);
        expected.push(Buffer.from(chunk));
        await w.append(chunk);
      }
      await w.commit();
      expect((await s.getBuffer(key, 1 << 20))?.data.equals(Buffer.concat(expected))).toBe(true);
    });

    it('streams a 20 MiB write (several upload parts), absent until commit', async () => {
      const s = await makeStore();
      const key = 'example.com/big/@v/v1.0.0.zip';
      const data = randomBytes(20 << 20);
      const w = await s.beginWrite(key);
      for (let off = 0; off < data.length; off += 1 << 20) await w.append(data.subarray(off, off + (1 << 20)));
      expect(await s.head(key)).toBeNull();
      expect(await s.get(key)).toBeNull();
      expect(await collectKeys(s, 'example.com/big/')).toEqual([]);
      const st = await w.commit();
      expect(st.size).toBe(data.length);
      expect(await s.head(key)).toEqual(st);
      expect((await s.getBuffer(key, data.length))?.data.equals(data)).toBe(true);
      const tail = await s.get(key, { start: data.length - 1000 });
      expect(tail?.size).toBe(data.length);
      expect((await readAll(tail!.stream)).equals(data.subarray(data.length - 1000))).toBe(true);
    });

    it('lists more than a thousand keys under a prefix (every page of the listing)', async () => {
      const s = await makeStore();
      const want: string[] = [];
      for (let i = 0; i < 1005; i++) want.push(`example.com/many/@v/v0.0.${i}.info`);
      const queue = [...want, 'example.com/other/@v/v1.0.0.info'];
      const worker = async (): Promise<void> => {
        for (let k = queue.pop(); k !== undefined; k = queue.pop()) await s.put(k, Buffer.from('{}'));
      };
      await Promise.all(Array.from({ length: 64 }, worker));
      expect(await collectKeys(s, 'example.com/many/')).toEqual(want.sort());
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
      // A follower that has sent every byte already asks from the end.
      const end = await s.get(key, { start: data.length });
      expect(end?.size).toBe(data.length);
      expect((await readAll(end!.stream)).length).toBe(0);
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
      // With sizes and store times, the same keys.
      const before = Date.now() - 60_000;
      const stats = [];
      for await (const b of s.listStats('example.com/a/')) stats.push(b);
      stats.sort((x, y) => x.key.localeCompare(y.key));
      expect(stats.map((b) => [b.key, b.size])).toEqual([
        ['example.com/a/@v/v1.0.0.info', 2],
        ['example.com/a/@v/v1.0.0.mod', 21],
        ['example.com/a/b/@v/v0.1.0.mod', 23],
      ]);
      for (const b of stats) expect(b.mtimeMs).toBeGreaterThan(before);
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
