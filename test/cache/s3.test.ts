// The S3 store against a real S3 server (versitygw over a temporary folder), no mock: the
// compliance suite every store passes, then what only an object store has to prove.
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { randomBytes } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { HeadObjectCommand, ListMultipartUploadsCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3BlobStore, type S3BlobStoreOptions } from '../../src/cache/s3.js';
import { HostCoordination } from '../../src/cluster/coordination.js';
import { sweepLeftovers } from '../../src/cluster/janitor.js';
import { ProxyError } from '../../src/errors.js';
import { startS3, type TestS3 } from '../helpers/s3.js';
import { cleanupAll, makeTempDir, registerCleanup } from '../helpers/tmp.js';
import { blobStoreCompliance } from './compliance.js';

const here = path.dirname(fileURLToPath(import.meta.url));

let s3: TestS3;
let shared: string;
let n = 0;

// Building versitygw on a machine that has none takes minutes (CI builds it before the tests).
beforeAll(async () => {
  s3 = await startS3();
  shared = await s3.bucket();
}, 900_000);
afterAll(cleanupAll);

async function newStore(opts: Partial<S3BlobStoreOptions> = {}): Promise<S3BlobStore> {
  const store = new S3BlobStore({
    endpoint: s3.endpoint,
    region: s3.region,
    forcePathStyle: true,
    credentials: { accessKeyId: s3.accessKey, secretAccessKey: s3.secretKey },
    bucket: shared,
    prefix: `cache/t${++n}`,
    stagingDir: await makeTempDir('s3-staging'),
    ...opts,
  });
  registerCleanup(() => store.close());
  return store;
}

async function uploadsOf(bucket: string, prefix: string): Promise<string[]> {
  const out = await s3.client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix }));
  return (out.Uploads ?? []).map((u) => u.Key ?? '');
}

/** Polls until a multipart upload of key is under way (the first part has been sent). */
async function untilUploading(bucket: string, objectKey: string): Promise<void> {
  while (!(await uploadsOf(bucket, objectKey)).includes(objectKey)) await new Promise((r) => setTimeout(r, 20));
}

blobStoreCompliance('s3', () => newStore());

describe('S3BlobStore', () => {
  it("keeps the go command's download-cache layout under its prefix, so the bucket is a GOPROXY tree", async () => {
    const s = await newStore({ prefix: 'gomod' });
    await s.put('example.com/m/@v/v1.0.0.mod', Buffer.from('module example.com/m\n'));
    const w = await s.beginWrite('example.com/m/@v/v1.0.0.zip');
    await w.append(Buffer.from('zip bytes'));
    await w.commit();
    const folder = path.join(s3.dir, shared, 'gomod/example.com/m/@v');
    expect(await readFile(path.join(folder, 'v1.0.0.mod'), 'utf8')).toBe('module example.com/m\n');
    expect(await readFile(path.join(folder, 'v1.0.0.zip'), 'utf8')).toBe('zip bytes');
    expect((await readdir(folder)).sort()).toEqual(['v1.0.0.mod', 'v1.0.0.zip']);
  });

  it("works at a bucket's root (prefix '')", async () => {
    const bucket = await s3.bucket();
    const s = await newStore({ bucket, prefix: '' });
    expect(s.description).toBe(`s3://${bucket}/`);
    await s.put('example.com/m/@v/v1.0.0.info', Buffer.from('{}'));
    expect(await readFile(path.join(s3.dir, bucket, 'example.com/m/@v/v1.0.0.info'), 'utf8')).toBe('{}');
    const keys: string[] = [];
    for await (const k of s.list('')) keys.push(k);
    expect(keys).toEqual(['example.com/m/@v/v1.0.0.info']);
  });

  it('keeps the write time in milliseconds in the object metadata (LastModified has whole seconds)', async () => {
    const s = await newStore();
    const st = await s.put('example.com/m/@v/list', Buffer.from('v1.0.0\n'));
    const head = await s3.client.send(new HeadObjectCommand({ Bucket: shared, Key: s.objectKey('example.com/m/@v/list') }));
    expect(head.Metadata?.mtime).toBe(String(st.mtimeMs));
    expect((await s.head('example.com/m/@v/list'))?.mtimeMs).toBe(st.mtimeMs);
  });

  it('uploads a write of more than a part as a multipart upload, completed only by commit', async () => {
    const s = await newStore({ partSize: 5 << 20 });
    const key = 'example.com/mpu/@v/v1.0.0.zip';
    const w = await s.beginWrite(key);
    const data = randomBytes(11 << 20);
    for (let off = 0; off < data.length; off += 1 << 20) await w.append(data.subarray(off, off + (1 << 20)));
    await untilUploading(shared, s.objectKey(key));
    expect(await s.head(key)).toBeNull();
    const st = await w.commit();
    // S3 names a multipart object's ETag by its part count.
    expect(st.etag).toMatch(/^"[0-9a-f]+-3"$/);
    expect(await uploadsOf(shared, s.objectKey(key))).toEqual([]);
    expect((await s.getBuffer(key, data.length))?.data.equals(data)).toBe(true);
  });

  it('aborts the multipart upload when a write is aborted: no parts are left behind', async () => {
    const s = await newStore({ partSize: 5 << 20 });
    const key = 'example.com/abort/@v/v1.0.0.zip';
    const w = await s.beginWrite(key);
    for (let i = 0; i < 11; i++) await w.append(randomBytes(1 << 20));
    await untilUploading(shared, s.objectKey(key));
    await w.abort();
    expect(await uploadsOf(shared, s.root)).toEqual([]);
    expect(await s.head(key)).toBeNull();
    await expect(readFile(w.stagingFile)).rejects.toThrow();
  });

  it('leaves no object when the writing process is killed mid-write; the janitor sweeps its staging file, removeAbandonedWrites its parts', async () => {
    const s = await newStore({ partSize: 5 << 20 });
    const key = 'example.com/killed/@v/v1.0.0.zip';
    const dataDir = await makeTempDir('s3-killed');
    const stagingDir = path.join(dataDir, 'staging');
    // vite-node (vitest's own) runs the TypeScript writer as it is.
    const viteNode = path.join(path.dirname(createRequire(import.meta.url).resolve('vite-node/package.json')), 'vite-node.mjs');
    const child = spawn(process.execPath, [viteNode, path.join(here, 'support/s3-writer.ts'), s3.endpoint, shared, s.root, stagingDir, key], {
      env: { ...process.env, AWS_ACCESS_KEY_ID: s3.accessKey, AWS_SECRET_ACCESS_KEY: s3.secretKey, AWS_REGION: s3.region },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    registerCleanup(() => child.kill('SIGKILL'));
    let err = '';
    child.stderr.on('data', (b: Buffer) => (err += b.toString('utf8')));
    const staging = await new Promise<string>((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (b: Buffer) => {
        out += b.toString('utf8');
        const m = /^appended (\S+)\n/m.exec(out);
        if (m?.[1]) resolve(m[1]);
      });
      child.once('exit', (code) => reject(new Error(`the writer exited (${code}) before appending:\n${err}`)));
    });
    await untilUploading(shared, s.objectKey(key));
    child.kill('SIGKILL');
    await exited;
    expect(await s.head(key)).toBeNull();
    // The dead writer's staging file is a leftover the janitor sweeps from the data folder.
    expect(path.dirname(staging)).toBe(stagingDir);
    const swept = await sweepLeftovers(dataDir, new HostCoordination(dataDir), { minAgeMs: 0 });
    expect(swept.removed).toEqual([`staging/${path.basename(staging)}`]);
    // A young upload may be a live writer's on another host: left alone.
    expect(await s.removeAbandonedWrites(3_600_000)).toBe(0);
    expect(await uploadsOf(shared, s.objectKey(key))).toEqual([s.objectKey(key)]);
    expect(await s.removeAbandonedWrites(0)).toBeGreaterThanOrEqual(1);
    expect(await uploadsOf(shared, s.objectKey(key))).toEqual([]);
    expect(await s.head(key)).toBeNull();
  });

  it('answers a presigned URL that a plain HTTP GET downloads byte for byte', async () => {
    const s = await newStore();
    const key = 'example.com/signed/@v/v1.0.0.zip';
    const data = randomBytes(300_000);
    await s.put(key, data);
    const url = await s.presign(key, 60);
    expect(url).not.toContain(s3.secretKey);
    const res = await fetch(url);
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer()).equals(data)).toBe(true);
  });

  it('names the bucket and prefix in its description, never a credential', async () => {
    const s = await newStore({ prefix: 'team/go/' });
    expect(s.description).toBe(`s3://${shared}/team/go`);
    expect(s.description).not.toContain(s3.secretKey);
    expect(s.description).not.toContain(s3.accessKey);
  });

  it('says a refused credential is the operator’s to fix, without the secret', async () => {
    const s = await newStore({ credentials: { accessKeyId: s3.accessKey, secretAccessKey: 'not-the-secret-at-all' } });
    const err = await s.put('example.com/m/@v/v1.0.0.info', Buffer.from('{}')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProxyError);
    expect((err as ProxyError).status).toBe(503);
    expect((err as ProxyError).message).toMatch(/may not write the object store at s3:\/\/.* check its AWS credentials/);
    expect((err as ProxyError).message).not.toContain('not-the-secret-at-all');
    await expect(s.head('example.com/m/@v/v1.0.0.info')).rejects.toBeInstanceOf(ProxyError);
  });

  it('says which bucket is missing', async () => {
    const s = await newStore({ bucket: 'gmp-no-such-bucket' });
    await expect(s.checkWritable()).rejects.toThrow(/bucket gmp-no-such-bucket does not exist.*create it or fix store.bucket/);
  });

  it('fails with a clear 503 line, not a hang, when the S3 server is down', async () => {
    const own = await startS3();
    const bucket = await own.bucket();
    const s = new S3BlobStore({
      endpoint: own.endpoint,
      region: own.region,
      forcePathStyle: true,
      credentials: { accessKeyId: own.accessKey, secretAccessKey: own.secretKey },
      bucket,
      prefix: 'down',
      partSize: 5 << 20,
      stagingDir: await makeTempDir('s3-down'),
    });
    registerCleanup(() => s.close());
    await s.put('example.com/m/@v/v1.0.0.info', Buffer.from('{}'));
    const w = await s.beginWrite('example.com/m/@v/v1.0.0.zip');
    await w.append(Buffer.from('partial'));
    // A write whose parts are being sent when the server goes.
    const streaming = await s.beginWrite('example.com/m/@v/v2.0.0.zip');
    for (let i = 0; i < 6; i++) await streaming.append(Buffer.alloc(1 << 20, i));
    await own.kill();
    // Its appends stop being taken and fail once the upload has: they never wait for a body nobody reads.
    const appending = (async (): Promise<unknown> => {
      for (let i = 0; i < 256; i++) await streaming.append(Buffer.alloc(1 << 20, i));
      return 'every append was taken';
    })().catch((e: unknown) => e);
    const failures = await Promise.all([
      appending,
      s.head('example.com/m/@v/v1.0.0.info').catch((e: unknown) => e),
      s.get('example.com/m/@v/v1.0.0.info').catch((e: unknown) => e),
      s.put('example.com/m/@v/v1.0.0.mod', Buffer.from('module example.com/m\n')).catch((e: unknown) => e),
      s.checkWritable().catch((e: unknown) => e),
      w.commit().catch((e: unknown) => e),
    ]);
    for (const err of failures) {
      expect(err).toBeInstanceOf(ProxyError);
      expect((err as ProxyError).status).toBe(503);
      expect((err as ProxyError).message).toContain(`the object store at s3://${bucket}/down is unreachable (ECONNREFUSED)`);
      expect((err as ProxyError).message).toContain(`store.endpoint (${own.endpoint})`);
    }
    await w.abort();
    await streaming.abort();
    await expect(readFile(w.stagingFile)).rejects.toThrow();
    await expect(readFile(streaming.stagingFile)).rejects.toThrow();
  });
});
