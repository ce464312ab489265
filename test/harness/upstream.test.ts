// Each fault the test upstream can inject does what it says, seen from the go command where that
// is what a proxy test will rely on, and from a plain HTTP client otherwise.
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { createGoEnv, type GoEnv } from '../helpers/goenv.js';
import { get, head } from '../helpers/http.js';
import { cleanupAll } from '../helpers/tmp.js';
import { startTestUpstream, type TestUpstream } from '../helpers/upstream.js';
import { buildModuleWorld, type World } from '../helpers/world.js';

const M = 'github.com/gmp-test/faults';
const zipPath = `/${M}/@v/v1.0.0.zip`;
const listPath = `/${M}/@v/list`;

let world: World;
let up: TestUpstream;
let second: TestUpstream;
let env: GoEnv;
let zipBytes: Buffer;

beforeAll(async () => {
  world = await buildModuleWorld({
    modules: [
      {
        path: M,
        versions: [
          // a zip big enough to be cut in the middle (incompressible data: deflate would shrink repeats to nothing)
          { version: 'v1.0.0', files: { 'faults.go': 'package faults\n', 'data.txt': noise(48 * 1024) } },
          { version: 'v1.1.0' },
        ],
      },
    ],
  });
  up = await startTestUpstream({ root: world.downloadDir });
  second = await startTestUpstream({ root: world.downloadDir });
  env = await createGoEnv();
  zipBytes = await readFile(world.get(`${M}@v1.0.0`).files.zip);
  expect(zipBytes.length).toBeGreaterThan(30_000);
});

function noise(n: number): string {
  let out = '';
  for (let i = 0; out.length < n; i++) out += createHash('sha256').update(String(i)).digest('base64');
  return out.slice(0, n);
}
afterAll(cleanupAll);
beforeEach(async () => {
  up.reset();
  second.reset();
  await env.cleanModCache();
});

async function download(goproxy: string, version = 'v1.0.0') {
  const [r] = await env.modDownloadJson([`${M}@${version}`], { GOPROXY: goproxy }, { allowErrors: true });
  return r!;
}

describe('fallback between GOPROXY entries', () => {
  test.each([404, 410])('%i falls through to the next entry after ","', async (status) => {
    up.on(new RegExp(`^/${M}/`), { status });
    const r = await download(`${up.url},${second.url}`);
    expect(r.Error).toBeUndefined();
    expect(r.Sum).toBe(world.get(`${M}@v1.0.0`).Sum);
    expect(up.count(`/${M}/@v/v1.0.0.info`)).toBe(1);
    expect(second.count(zipPath)).toBe(1);
  });

  test('500 stops a "," list and shows the body line; "|" falls through', async () => {
    up.on(`/${M}/@v/v1.0.0.info`, { status: 500, body: 'upstream on fire' });
    const r = await download(`${up.url},${second.url}`);
    expect(r.Error).toContain('500 Internal Server Error');
    expect(r.Error).toContain('server response: upstream on fire');
    expect(second.count()).toBe(0);

    const ok = await download(`${up.url}|${second.url}`);
    expect(ok.Error).toBeUndefined();
    // each file walks the list on its own: only the failing .info came from the second upstream
    expect(second.count(`/${M}/@v/v1.0.0.info`)).toBe(1);
    expect(second.count(zipPath)).toBe(0);
    expect(up.count(zipPath)).toBe(1);
  });

  test('403 and 502 are errors, not "not found"', async () => {
    for (const status of [403, 502]) {
      up.reset();
      up.on(`/${M}/@v/v1.0.0.info`, { status });
      const r = await download(`${up.url},${second.url}`);
      expect(r.Error).toContain(`${status}`);
      expect(r.Error).toContain(`server response: gmp test upstream: injected ${status}`);
      expect(second.count()).toBe(0);
      await env.cleanModCache();
    }
  });
});

describe('broken bodies', () => {
  test('dieAfterBytes: the go command sees a truncated zip and fails', async () => {
    const rule = up.on(zipPath, { dieAfterBytes: 1000 });
    const r = await download(up.url);
    expect(r.Error).toMatch(/v1\.0\.0\.zip": unexpected EOF$/);
    expect(rule.hits).toBeGreaterThanOrEqual(1);
    // and a plain client sees the promised length but gets fewer bytes
    await expect(get(up.url + zipPath)).rejects.toThrow();
    rule.remove();
    await env.cleanModCache();
    expect((await download(up.url)).Error).toBeUndefined();
  });

  test('replaceBody: a tampered zip is caught by go.sum', async () => {
    const e = world.get(`${M}@v1.0.0`);
    const dir = await env.newModule(path.join(env.root, 'consumer'), 'example.com/consumer', `require ${M} v1.0.0\n`);
    await writeFile(path.join(dir, 'go.sum'), `${M} v1.0.0 ${e.Sum}\n${M} v1.0.0/go.mod ${e.GoModSum}\n`);
    // a valid zip whose file name changed: CRCs still match, only the h1: hash differs
    const tampered = Buffer.from(zipBytes.toString('latin1').replaceAll('@v1.0.0/faults.go', '@v1.0.0/faulty.go'), 'latin1');
    expect(tampered.equals(zipBytes)).toBe(false);
    up.on(zipPath, { replaceBody: tampered });
    const r = await env.go(['mod', 'download', M], { cwd: dir, env: { GOPROXY: up.url }, allowFail: true });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('checksum mismatch');
    expect(up.count(zipPath)).toBe(1);
  });

  test('replaceBody: an HTML page with status 200 instead of .info', async () => {
    up.on(`/${M}/@v/v1.0.0.info`, { replaceBody: '<html><body>login</body></html>', contentType: 'text/html' });
    const r = await download(up.url);
    expect(r.Error).toMatch(/invalid response from proxy "http:\/\/127\.0\.0\.1:\d+": invalid character '<'/);
    const raw = await get(`${up.url}/${M}/@v/v1.0.0.info`);
    expect(raw.status).toBe(200);
    expect(raw.headers['content-type']).toBe('text/html');
  });

  test('gzip: compressed bodies are decoded by the go command', async () => {
    up.on(/./, { gzip: true });
    const r = await download(up.url);
    expect(r.Error).toBeUndefined();
    expect(r.Sum).toBe(world.get(`${M}@v1.0.0`).Sum);
    const raw = await get(up.url + zipPath);
    expect(raw.headers['content-encoding']).toBe('gzip');
    expect(raw.body.length).toBeLessThan(zipBytes.length);
  });
});

describe('timing faults', () => {
  test('delayMs holds the headers back', async () => {
    up.on(listPath, { delayMs: 300 });
    const t0 = Date.now();
    const r = await get(up.url + listPath);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(290);
    expect(r.text()).toBe('v1.0.0\nv1.1.0\n');
  });

  test('slowBody trickles the same bytes', async () => {
    up.on(zipPath, { slowBody: { chunk: Math.ceil(zipBytes.length / 5), intervalMs: 60 } });
    const t0 = Date.now();
    const r = await get(up.url + zipPath);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(4 * 60 - 10);
    expect(r.body.equals(zipBytes)).toBe(true);
    expect(r.headers['content-length']).toBe(String(zipBytes.length));
  });

  test('hold answers only once the promise settles', async () => {
    let release!: () => void;
    up.on(listPath, { hold: new Promise<void>((r) => (release = r)) });
    const pending = get(up.url + listPath);
    const seen = await up.waitForRequest(listPath);
    // Nothing sent yet, however long that took: the status is set when the answer starts.
    expect(seen.status).toBeUndefined();
    release();
    const r = await pending;
    expect(r.text()).toBe('v1.0.0\nv1.1.0\n');
    expect(seen.status).toBe(200);
  });

  test('stall never answers until close() destroys the socket', async () => {
    const killable = await startTestUpstream({ root: world.downloadDir });
    killable.on(listPath, { stall: true });
    const pending = get(killable.url + listPath).then(
      () => 'answered',
      (err: Error) => `failed: ${err.message}`,
    );
    await killable.waitForRequest(listPath);
    const raced = await Promise.race([pending, new Promise((r) => setTimeout(() => r('still waiting'), 300))]);
    expect(raced).toBe('still waiting');
    await killable.close();
    expect(await pending).toMatch(/^failed: /);
    expect(killable.requests[0]?.status).toBeUndefined();
  });
});

describe('rules and counters', () => {
  test('once applies to one request; newest rule wins; hits and count count', async () => {
    up.on(listPath, { status: 500 });
    const one = up.once(listPath, { status: 503, body: 'try later' });
    const first = await get(up.url + listPath);
    expect(first.status).toBe(503);
    expect(first.text()).toBe('try later\n');
    expect(first.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect((await get(up.url + listPath)).status).toBe(500);
    expect(one.hits).toBe(1);
    up.reset();
    expect((await get(up.url + listPath)).status).toBe(200);
    expect(up.count()).toBe(1);
    expect(up.count(/\/@v\/list$/)).toBe(1);
    expect(up.count((r) => r.method === 'HEAD')).toBe(0);
    expect(up.requests[0]).toMatchObject({ method: 'GET', path: listPath, status: 200 });
  });

  test('times, function matchers and HEAD', async () => {
    up.on((r) => r.path.endsWith('.mod'), { status: 404, times: 2 });
    expect((await get(`${up.url}/${M}/@v/v1.0.0.mod`)).status).toBe(404);
    expect((await get(`${up.url}/${M}/@v/v1.0.0.mod`)).status).toBe(404);
    expect((await get(`${up.url}/${M}/@v/v1.0.0.mod`)).status).toBe(200);
    const h = await head(up.url + zipPath);
    expect(h.status).toBe(200);
    expect(h.headers['content-length']).toBe(String(zipBytes.length));
    expect(h.body.length).toBe(0);
    expect(up.count((r) => r.method === 'HEAD')).toBe(1);
  });

  test('kill refuses connections, restart serves again on the same port', async () => {
    const k = await startTestUpstream({ root: world.downloadDir });
    expect((await get(k.url + listPath)).status).toBe(200);
    await k.kill();
    await expect(get(k.url + listPath)).rejects.toThrow(/ECONNREFUSED|fetch failed|connect/);
    const r = await download(k.url);
    expect(r.Error).toMatch(/connect: connection refused$/);
    await k.restart();
    expect((await get(k.url + listPath)).status).toBe(200);
    expect(k.count(listPath)).toBe(2);
    await k.close();
  });

  test('waitForRequest sees the go command arrive', async () => {
    const seen = up.waitForRequest(zipPath);
    const r = await download(up.url);
    expect(r.Error).toBeUndefined();
    const req = await seen;
    expect(req.headers['user-agent']).toMatch(/^Go-http-client\//);
    await expect(up.waitForRequest('/never', { timeoutMs: 50 })).rejects.toThrow(/no 1 request/);
  });
});
