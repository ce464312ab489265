// One gomodproxy over the S3 store (a real versitygw): the go command gets the same sums and
// bytes as from the upstream; the bucket is itself a GOPROXY tree (the go command reads it as
// file://); with presignZips a large zip is a 302 to the store that the go command follows;
// with the store gone a miss is one 503 line naming it while hits in memory are still served.
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { request } from 'undici';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createGoEnv } from '../helpers/goenv.js';
import { startProxy, type ProxyProcess } from '../helpers/gomodproxy.js';
import { startS3, type TestS3 } from '../helpers/s3.js';
import { cleanupAll, makeTempDir } from '../helpers/tmp.js';
import { startTestUpstream, type TestUpstream } from '../helpers/upstream.js';
import { buildModuleWorld, type World } from '../helpers/world.js';

const A = 'github.com/gmp-s3/alpha';
const B = 'github.com/gmp-s3/big';

let world: World;
let upstream: TestUpstream;
let s3: TestS3;

/** Deterministic incompressible text, so the zip is large. */
function noise(n: number): string {
  let s = '';
  let x = 12345;
  while (s.length < n) {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    s += x.toString(36);
  }
  return s.slice(0, n);
}

beforeAll(async () => {
  world = await buildModuleWorld({
    modules: [
      { path: A, versions: [{ version: 'v1.0.0' }, { version: 'v1.1.0', files: { 'alpha.go': 'package alpha\n\nconst V = 11\n' } }] },
      { path: B, versions: [{ version: 'v1.0.0', files: { 'data.go': `package big\n\nconst Data = "${noise(8 << 20)}"\n` } }] },
    ],
  });
  upstream = await startTestUpstream({ root: world.downloadDir });
  s3 = await startS3();
});
afterAll(cleanupAll);

async function s3Proxy(bucket: string, store: Record<string, unknown> = {}): Promise<ProxyProcess> {
  const dir = await makeTempDir('s3-config');
  const file = path.join(dir, 'gomodproxy.yaml');
  await writeFile(
    file,
    stringify({ store: { type: 's3', bucket, prefix: 'cache', endpoint: s3.endpoint, region: s3.region, forcePathStyle: true, ...store } }),
  );
  return startProxy({
    upstream: upstream.url,
    args: ['--config', file],
    env: { AWS_ACCESS_KEY_ID: s3.accessKey, AWS_SECRET_ACCESS_KEY: s3.secretKey, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
  });
}

const mods = [`${A}@v1.0.0`, `${A}@v1.1.0`, `${B}@v1.0.0`];

function expected(): { Path: string; Version: string; Sum: string; GoModSum: string }[] {
  return mods.map((k) => {
    const e = world.get(k);
    return { Path: e.Path, Version: e.Version, Sum: e.Sum, GoModSum: e.GoModSum };
  });
}

describe('the S3 store', () => {
  test('the go command through it gets the sums and bytes of direct; the bucket is a GOPROXY tree', async () => {
    const bucket = await s3.bucket();
    const proxy = await s3Proxy(bucket);
    expect(proxy.logs().find((l) => l.msg === 'listening')?.store).toBe(`s3://${bucket}/cache`);
    const got = await (await createGoEnv({ goproxy: proxy.url })).modDownloadJson(mods);
    expect(got.map((r) => ({ Path: r.Path, Version: r.Version, Sum: r.Sum, GoModSum: r.GoModSum }))).toEqual(expected());
    for (const r of got) expect((await readFile(r.Zip!)).equals(await readFile(world.get(`${r.Path}@${r.Version}`).files.zip))).toBe(true);
    // versitygw keeps <bucket>/<key> as files: the go command reads the bucket's tree as it is.
    await proxy.stop();
    const tree = await createGoEnv({ goproxy: `file://${path.join(s3.dir, bucket, 'cache')}` });
    const fromBucket = await tree.modDownloadJson(mods);
    expect(fromBucket.map((r) => ({ Path: r.Path, Version: r.Version, Sum: r.Sum, GoModSum: r.GoModSum }))).toEqual(expected());
  });

  test('presignZips: a large stored zip is a 302 to the store, which the go command follows; small ones are sent', async () => {
    const bucket = await s3.bucket();
    const proxy = await s3Proxy(bucket, { presignZips: true, presignSeconds: 120 });
    const env = await createGoEnv({ goproxy: proxy.url });
    await env.modDownloadJson(mods);
    const big = await request(`${proxy.url}/${B}/@v/v1.0.0.zip`, { maxRedirections: 0 } as Parameters<typeof request>[1]);
    await big.body.dump();
    expect(big.statusCode).toBe(302);
    const location = String(big.headers.location);
    expect(location.startsWith(`${s3.endpoint}/${bucket}/cache/${B}/%40v/v1.0.0.zip?`)).toBe(true);
    expect(location).toMatch(/X-Amz-Signature=/);
    expect(location).not.toContain(s3.secretKey);
    const small = await request(`${proxy.url}/${A}/@v/v1.0.0.zip`);
    expect(small.statusCode).toBe(200);
    expect(Buffer.from(await small.body.arrayBuffer()).equals(await readFile(world.get(`${A}@v1.0.0`).files.zip))).toBe(true);
    // A fresh module cache: the go command downloads through the redirect and checks the sum.
    const again = await (await createGoEnv({ goproxy: proxy.url })).modDownloadJson([`${B}@v1.0.0`]);
    expect(again[0]?.Sum).toBe(world.get(`${B}@v1.0.0`).Sum);
  });

  test('the store gone: a miss is one 503 line naming it; a hit in memory is still answered', async () => {
    const own = await startS3();
    const bucket = await own.bucket();
    const dir = await makeTempDir('s3-config');
    const file = path.join(dir, 'gomodproxy.yaml');
    await writeFile(file, stringify({ store: { type: 's3', bucket, endpoint: own.endpoint, region: own.region, forcePathStyle: true } }));
    const proxy = await startProxy({
      upstream: upstream.url,
      args: ['--config', file],
      env: { AWS_ACCESS_KEY_ID: own.accessKey, AWS_SECRET_ACCESS_KEY: own.secretKey, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
    });
    const info = await request(`${proxy.url}/${A}/@v/v1.0.0.info`);
    expect(info.statusCode).toBe(200);
    const infoBody = await info.body.text();
    await own.kill();
    const hit = await request(`${proxy.url}/${A}/@v/v1.0.0.info`);
    expect(hit.statusCode).toBe(200);
    expect(await hit.body.text()).toBe(infoBody);
    const miss = await request(`${proxy.url}/${A}/@v/v1.1.0.zip`);
    const line = await miss.body.text();
    expect(miss.statusCode).toBe(503);
    expect(line.trimEnd().split('\n')).toHaveLength(1);
    expect(line).toContain(`s3://${bucket}`);
    expect(line).not.toContain(own.secretKey);
    const ready = await request(`${proxy.url}/readyz`);
    expect(ready.statusCode).toBe(503);
    expect(await ready.body.text()).toContain(`s3://${bucket}`);
  });
});
