// The `store` setting: the data folder by default, or an S3 bucket, from the file or one
// GOMODPROXY_STORE_* variable per key, with errors that name the key and the fix.
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createBlobStore } from '../../src/cache/create.js';
import { FsBlobStore } from '../../src/cache/fs.js';
import { S3BlobStore } from '../../src/cache/s3.js';
import { loadConfig, schemaLeaves } from '../../src/config/index.js';
import { cleanupAll, makeTempDir } from '../helpers/tmp.js';
import { errorOf } from './support.js';

afterAll(cleanupAll);

function tmpDir(): Promise<string> {
  return makeTempDir('config-store');
}

describe('store setting', () => {
  it('is the data folder by default', async () => {
    const cwd = await tmpDir();
    const c = loadConfig({ cwd, env: {} });
    expect(c.store).toEqual({ type: 'fs' });
    const store = await createBlobStore(c);
    expect(store).toBeInstanceOf(FsBlobStore);
    expect(store.description).toBe(`fs:${path.join(cwd, 'data')}`);
  });

  it('names each key of either kind as its own environment variable', () => {
    const names = schemaLeaves().map((l) => l.env);
    for (const name of [
      'GOMODPROXY_STORE_TYPE',
      'GOMODPROXY_STORE_BUCKET',
      'GOMODPROXY_STORE_PREFIX',
      'GOMODPROXY_STORE_ENDPOINT',
      'GOMODPROXY_STORE_REGION',
      'GOMODPROXY_STORE_FORCE_PATH_STYLE',
      'GOMODPROXY_STORE_PRESIGN_ZIPS',
      'GOMODPROXY_STORE_PRESIGN_SECONDS',
    ]) {
      expect(names).toContain(name);
    }
    expect(names.filter((n) => n === 'GOMODPROXY_STORE_TYPE')).toHaveLength(1);
  });

  it('takes an S3 bucket from the environment, with its defaults', async () => {
    const cwd = await tmpDir();
    const c = loadConfig({ cwd, env: { GOMODPROXY_STORE_TYPE: 's3', GOMODPROXY_STORE_BUCKET: 'go-cache' } });
    expect(c.store).toEqual({
      type: 's3',
      bucket: 'go-cache',
      prefix: '',
      region: 'us-east-1',
      forcePathStyle: false,
      presignZips: false,
      presignSeconds: 300,
    });
  });

  it('parses every S3 key from the environment and takes the region from AWS_REGION when unset', async () => {
    const cwd = await tmpDir();
    const env = {
      GOMODPROXY_STORE_TYPE: 's3',
      GOMODPROXY_STORE_BUCKET: 'go-cache',
      GOMODPROXY_STORE_PREFIX: 'team/go/',
      GOMODPROXY_STORE_ENDPOINT: 'http://127.0.0.1:9000',
      GOMODPROXY_STORE_FORCE_PATH_STYLE: 'true',
      GOMODPROXY_STORE_PRESIGN_ZIPS: 'true',
      GOMODPROXY_STORE_PRESIGN_SECONDS: '60',
      AWS_REGION: 'eu-west-3',
    };
    const c = loadConfig({ cwd, env });
    expect(c.store).toEqual({
      type: 's3',
      bucket: 'go-cache',
      prefix: 'team/go',
      endpoint: 'http://127.0.0.1:9000',
      region: 'eu-west-3',
      forcePathStyle: true,
      presignZips: true,
      presignSeconds: 60,
    });
    const explicit = loadConfig({ cwd, env: { ...env, GOMODPROXY_STORE_REGION: 'ap-south-1' } });
    expect(explicit.store.type === 's3' && explicit.store.region).toBe('ap-south-1');
  });

  it('reads the file and lets the environment override one key', async () => {
    const cwd = await tmpDir();
    const file = path.join(cwd, 'gomodproxy.yaml');
    await writeFile(file, 'store:\n  type: s3\n  bucket: from-file\n  prefix: gomod\n');
    const c = loadConfig({ cwd, file, env: { GOMODPROXY_STORE_BUCKET: 'from-env' } });
    expect(c.store).toMatchObject({ type: 's3', bucket: 'from-env', prefix: 'gomod' });
  });

  it('makes an S3 store over the bucket, staging in <data>/staging, with no secret in its description', async () => {
    const cwd = await tmpDir();
    const c = loadConfig({ cwd, env: { GOMODPROXY_STORE_TYPE: 's3', GOMODPROXY_STORE_BUCKET: 'go-cache', GOMODPROXY_STORE_PREFIX: 'gomod' } });
    const store = await createBlobStore(c);
    try {
      expect(store).toBeInstanceOf(S3BlobStore);
      expect(store.description).toBe('s3://go-cache/gomod');
      expect((store as S3BlobStore).stagingDir).toBe(path.join(cwd, 'data', 'staging'));
    } finally {
      await store.close?.();
    }
  });

  it('says what is wrong and how to fix it', async () => {
    const cwd = await tmpDir();
    expect(errorOf(() => loadConfig({ cwd, env: { GOMODPROXY_STORE_TYPE: 'gcs' } })).message).toBe(
      'invalid setting store.type from environment variable GOMODPROXY_STORE_TYPE: expected type: fs (the data folder) or s3 (a bucket shared by several hosts)',
    );
    const noBucket = errorOf(() => loadConfig({ cwd, env: { GOMODPROXY_STORE_TYPE: 's3' } }));
    expect(noBucket.message).toContain('invalid setting store.bucket');
    expect(noBucket.message).toContain('required with type s3');
    expect(noBucket.message).toContain('GOMODPROXY_STORE_BUCKET');
    const withPath = errorOf(() => loadConfig({ cwd, env: { GOMODPROXY_STORE_TYPE: 's3', GOMODPROXY_STORE_BUCKET: 'b/go' } }));
    expect(withPath.message).toMatch(/store\.bucket .*a path inside the bucket goes in store\.prefix/);
    const slash = errorOf(() => loadConfig({ cwd, env: { GOMODPROXY_STORE_TYPE: 's3', GOMODPROXY_STORE_BUCKET: 'b', GOMODPROXY_STORE_PREFIX: '/go' } }));
    expect(slash.message).toMatch(/store\.prefix .*without a leading "\/"/);
    const creds = errorOf(() =>
      loadConfig({ cwd, env: { GOMODPROXY_STORE_TYPE: 's3', GOMODPROXY_STORE_BUCKET: 'b', GOMODPROXY_STORE_ENDPOINT: 'http://key:secret@127.0.0.1:9000' } }),
    );
    expect(creds.message).toMatch(/store\.endpoint .*no credentials in it/);
    expect(errorOf(() => loadConfig({ cwd, env: { GOMODPROXY_STORE_BUCKET: 'b' } })).message).toMatch(/^invalid setting store\.type: expected type: fs/);
    // A key of the other kind: named, with the keys the setting has.
    const file = path.join(cwd, 'fs-with-bucket.yaml');
    await writeFile(file, 'store:\n  type: fs\n  bucket: b\n');
    expect(errorOf(() => loadConfig({ cwd, file, env: {} })).message).toMatch(
      /unknown setting store\.bucket in config file .*known settings under store: type, bucket, prefix/,
    );
  });
});
