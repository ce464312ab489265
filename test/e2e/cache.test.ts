// The cache: mutable answers (stale-if-error, background revalidation), immutable artifacts
// (never replaced), one upstream fetch per key (in one process, across processes, across
// workers), streaming while fetching, clients that walk away, upstreams that die mid-zip or
// send hostile bytes, and a graceful shutdown that finishes what is in flight.
import { existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { Agent } from 'undici';
import yazl from 'yazl';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createGoEnv } from '../helpers/goenv.js';
import { startProxy, type ProxyProcess } from '../helpers/gomodproxy.js';
import { concurrent, get, head } from '../helpers/http.js';
import { cleanupAll, makeTempDir, registerCleanup } from '../helpers/tmp.js';
import { startTestUpstream, type TestUpstream } from '../helpers/upstream.js';
import { buildModuleWorld, type World, type WorldSpec } from '../helpers/world.js';
import { accessLines, expectOneLineError, incompressible, listFiles, rawRequest, sleep, streamGet, waitFor, waitForAccess } from './util.js';

const M = 'github.com/gmp-test/cache';
const Z = 'github.com/gmp-test/bigzip';
const ZIP_DATA = 1 << 20; // 1 MiB of incompressible data per version: the zip is as large
const ZV = Array.from({ length: 8 }, (_v, i) => `v1.${i}.0`);
/** A zip above the in-memory cache's 2 MiB item limit: hits stream from disk. */
const BIG = 'v2.0.0+incompatible';

const spec: WorldSpec = {
  modules: [
    {
      path: M,
      versions: [{ version: 'v1.0.0' }, { version: 'v1.1.0' }, { version: 'v1.2.0' }, { version: 'v1.3.0' }, {}],
      queries: ['main'],
    },
    {
      path: Z,
      versions: ZV.map((version, i) => ({
        version,
        files: { 'bigzip.go': 'package bigzip\n', 'data.bin': incompressible(ZIP_DATA, i + 1) },
      })),
    },
    {
      path: 'github.com/gmp-test/hugezip',
      versions: [{ version: BIG, goMod: null, files: { 'hugezip.go': 'package hugezip\n', 'data.bin': incompressible(3 * ZIP_DATA, 99) } }],
    },
  ],
};

const JSON_TYPE = 'application/json';
let world: World;
let up: TestUpstream;
let proxy: ProxyProcess;
const zipBytes = new Map<string, Buffer>();

beforeAll(async () => {
  world = await buildModuleWorld(spec);
  for (const v of ZV) zipBytes.set(v, await readFile(world.get(`${Z}@${v}`).files.zip));
  up = await startTestUpstream({ root: world.downloadDir });
  // health tracking is not under test here: a few injected failures must not rest the upstream
  proxy = await startProxy({ upstream: up.url, env: { GOMODPROXY_HEALTH_FAILURES: '1000' } });
});
afterAll(cleanupAll);

const zipPath = (v: string): string => `/${Z}/@v/${v}.zip`;

/** Files in the data folder that belong to `<module>/@v/<version>.zip` (final, hash, staging, lock, temp). */
async function zipFiles(dataDir: string, mod: string, v: string): Promise<string[]> {
  const dir = path.join(dataDir, mod, '@v');
  return (await listFiles(dir)).filter((f) => f.startsWith(`${v}.zip`));
}

/** The zip is committed (with the go command's .ziphash beside it) and nothing transient is left. */
async function expectCommitted(dataDir: string, mod: string, v: string): Promise<void> {
  expect(await zipFiles(dataDir, mod, v)).toEqual([`${v}.zip`, `${v}.ziphash`]);
}

/** A second upstream (own counts, can be killed) answering lists, @latest and `main` like a real proxy. */
async function mutableUpstream(): Promise<TestUpstream> {
  const u = await startTestUpstream({ root: world.downloadDir });
  u.on(`/${M}/@v/list`, { replaceBody: 'v1.0.0\nv1.1.0\nv1.2.0\nv1.3.0\n', contentType: 'text/plain; charset=utf-8' });
  u.on(`/${M}/@latest`, { replaceBody: world.get(`${M}@v1.3.0`).infoText, contentType: JSON_TYPE });
  u.on(`/${M}/@v/main.info`, { replaceBody: world.queries.get(`${M}@main`)!.infoText, contentType: JSON_TYPE });
  return u;
}

describe('mutable answers', () => {
  test('stale-if-error: with the upstream gone, list, @latest and a branch query are served stale and say so', async () => {
    const u = await mutableUpstream();
    // (the failures while it is down must not rest the upstream for a cool-down: not under test here)
    const p = await startProxy({
      upstream: u.url,
      env: { GOMODPROXY_CACHE_TTL: '1s', GOMODPROXY_CACHE_STALE_WHILE_REVALIDATE: '0s', GOMODPROXY_HEALTH_FAILURES: '1000' },
    });
    const paths = [`/${M}/@v/list`, `/${M}/@latest`, `/${M}/@v/main.info`];
    const fresh = await Promise.all(paths.map((x) => get(`${p.url}${x}`)));
    for (const r of fresh) expect([r.status, r.headers['x-gomodproxy-cache']]).toEqual([200, 'miss']);
    // the go command's view, warmed while the upstream is up
    const warm = await createGoEnv({ goproxy: p.url });
    const versionsBefore = (await warm.go(['list', '-m', '-versions', M])).stdout;
    const latestBefore = (await warm.go(['list', '-m', '-json', `${M}@latest`])).stdout;

    await u.kill();
    await sleep(1_200);
    for (const [i, x] of paths.entries()) {
      const r = await get(`${p.url}${x}`);
      expect({ x, status: r.status, cache: r.headers['x-gomodproxy-cache'] }).toEqual({ x, status: 200, cache: 'stale' });
      expect(r.headers['x-gomodproxy-stale'], x).toBeTruthy();
      expect(r.body.equals(fresh[i]!.body), x).toBe(true);
    }
    const cold = await createGoEnv({ goproxy: p.url });
    expect((await cold.go(['list', '-m', '-versions', M])).stdout).toBe(versionsBefore);
    expect((await cold.go(['list', '-m', '-json', `${M}@latest`])).stdout.replace(cold.root, '')).toBe(latestBefore.replace(warm.root, ''));
    await p.waitForLog((l) => typeof l.msg === 'string' && l.msg.includes('stale') && l.level === 'warn');
    await waitForAccess(p, `/${M}/@v/list`, 3);
    expect(accessLines(p).some((l) => l.cache === 'stale' && l.kind === 'list')).toBe(true);

    // the upstream is back: the next answer after the TTL is fresh again
    await u.restart();
    await sleep(1_100);
    const again = await get(`${p.url}/${M}/@v/list`);
    expect(again.status).toBe(200);
    expect(again.headers['x-gomodproxy-cache']).toBe('miss');
    expect(again.headers['x-gomodproxy-stale']).toBeUndefined();
  });

  test('background revalidation: an expired answer is served at once (revalidating), one refresh, then the fresh answer', async () => {
    const u = await mutableUpstream();
    const p = await startProxy({ upstream: u.url, env: { GOMODPROXY_CACHE_TTL: '1s', GOMODPROXY_CACHE_STALE_WHILE_REVALIDATE: '60s' } });
    const listUrl = `${p.url}/${M}/@v/list`;
    const first = await get(listUrl);
    expect(first.headers['x-gomodproxy-cache']).toBe('miss');
    expect(first.text()).not.toContain('v1.4.0');
    // The refresh is held at the upstream until the five have their answers: "during" the
    // revalidation is then a fact, not a bet that five requests take less than some delay.
    let releaseRefresh!: () => void;
    const refreshHeld = new Promise<void>((r) => (releaseRefresh = r));
    u.on(`/${M}/@v/list`, { replaceBody: 'v1.0.0\nv1.1.0\nv1.2.0\nv1.3.0\nv1.4.0\n', contentType: 'text/plain; charset=utf-8', hold: refreshHeld });
    await sleep(1_100); // past the 1 s TTL (a lower bound: a slow machine only waits longer)
    const before = u.count(`/${M}/@v/list`);
    const during = await concurrent(5, () => get(listUrl));
    releaseRefresh();
    for (const r of during) {
      expect(r.status).toBe(200);
      expect(r.headers['x-gomodproxy-cache']).toBe('revalidating');
      expect(r.body.equals(first.body)).toBe(true);
    }
    const after = await waitFor(async () => {
      const r = await get(listUrl);
      return r.text().includes('v1.4.0') ? r : undefined;
    }, 'the revalidated list');
    expect(after.headers['x-gomodproxy-cache']).toBe('hit');
    const diag = JSON.stringify({
      upstream: u.requests.map((r) => [r.path, r.time, r.status]),
      access: accessLines(p).map((l) => [l.time, l.cache, l.status, l.ms]),
      other: p.logs().filter((l) => l.log !== 'access' && l.msg !== 'listening'),
    });
    expect(u.count(`/${M}/@v/list`) - before, diag).toBe(1);
  });
});

describe('immutable artifacts', () => {
  test('never replaced: the upstream changes the bytes of a cached version, we keep serving the first ones', async () => {
    const e = world.get(`${M}@v1.0.0`);
    const first = await Promise.all(['info', 'mod', 'zip'].map((ext) => get(`${proxy.url}/${M}/@v/v1.0.0.${ext}`)));
    for (const r of first) expect(r.status).toBe(200);
    up.on(`/${M}/@v/v1.0.0.info`, { replaceBody: JSON.stringify({ Version: 'v1.0.0', Time: '2030-01-01T00:00:00Z' }), contentType: JSON_TYPE });
    up.on(`/${M}/@v/v1.0.0.mod`, { replaceBody: `module ${M}\n\ngo 1.22\n` });
    up.on(`/${M}/@v/v1.0.0.zip`, { replaceBody: await readFile(world.get(`${M}@v1.1.0`).files.zip) });
    const twin = await startProxy({ upstream: up.url, dataDir: proxy.dataDir });
    for (const base of [proxy.url, twin.url]) {
      for (const [i, ext] of ['info', 'mod', 'zip'].entries()) {
        const r = await get(`${base}/${M}/@v/v1.0.0.${ext}`);
        expect({ ext, status: r.status, cache: r.headers['x-gomodproxy-cache'] }).toEqual({ ext, status: 200, cache: 'hit' });
        expect(r.body.equals(first[i]!.body), ext).toBe(true);
      }
    }
    for (const ext of ['info', 'mod', 'zip']) expect(up.count(`/${M}/@v/v1.0.0.${ext}`)).toBe(1);
    const env = await createGoEnv({ goproxy: twin.url });
    const [r] = await env.modDownloadJson([`${M}@v1.0.0`]);
    expect([r!.Sum, r!.GoModSum]).toEqual([e.Sum, e.GoModSum]);
    await twin.stop();
  });
});

describe('one fetch per key', () => {
  test('50 concurrent clients on one missing zip: one upstream request, identical bytes for all', async () => {
    const v = ZV[0]!;
    up.on(zipPath(v), { delayMs: 300 });
    const rs = await concurrent(50, () => get(`${proxy.url}${zipPath(v)}`));
    for (const r of rs) {
      expect(r.status).toBe(200);
      expect(r.body.equals(zipBytes.get(v)!)).toBe(true);
    }
    expect(up.count(zipPath(v))).toBe(1);
  });

  test('50 concurrent clients on one missing .info, .mod or list: one upstream request each', async () => {
    const v = ZV[0]!;
    for (const p of [`/${Z}/@v/${v}.info`, `/${Z}/@v/${v}.mod`, `/${Z}/@v/list`]) {
      up.on(p, { delayMs: 200 });
      const rs = await concurrent(50, () => get(`${proxy.url}${p}`));
      for (const r of rs) {
        expect(r.status).toBe(200);
        expect(r.body.equals(rs[0]!.body)).toBe(true);
      }
      expect({ p, upstreamRequests: up.count(p) }).toEqual({ p, upstreamRequests: 1 });
    }
  });

  test('two proxy processes on one data folder, 25 clients each: one upstream request', async () => {
    const v = ZV[1]!;
    up.on(zipPath(v), { delayMs: 300, slowBody: { chunk: 128 * 1024, intervalMs: 30 } });
    up.on(`/${Z}/@v/${v}.mod`, { delayMs: 300 });
    const dataDir = await makeTempDir('shared-data');
    const [a, b] = await Promise.all([startProxy({ upstream: up.url, dataDir }), startProxy({ upstream: up.url, dataDir })]);
    const rs = await concurrent(50, (i) => get(`${(i % 2 ? a : b).url}${zipPath(v)}`));
    const bad = rs.map((r, i) => ({ i, status: r.status, body: r.status === 200 ? '' : r.text() })).filter((r) => r.status !== 200);
    expect(bad).toEqual([]);
    for (const r of rs) expect(r.body.equals(zipBytes.get(v)!)).toBe(true);
    expect(up.count(zipPath(v))).toBe(1);
    const mods = await concurrent(50, (i) => get(`${(i % 2 ? a : b).url}/${Z}/@v/${v}.mod`));
    for (const r of mods) expect([r.status, r.text()]).toEqual([200, world.get(`${Z}@${v}`).modText]);
    expect(up.count(`/${Z}/@v/${v}.mod`)).toBe(1);
    await expectCommitted(dataDir, Z, v);
  });

  test('--workers 2, 50 clients: one upstream request, both workers answer', async () => {
    const v = ZV[2]!;
    up.on(zipPath(v), { delayMs: 300, slowBody: { chunk: 128 * 1024, intervalMs: 30 } });
    const p = await startProxy({ upstream: up.url, workers: 2 });
    // startProxy returns at the first worker's listening line: wait for the second one too
    await waitFor(
      () =>
        new Set(
          p
            .logs()
            .filter((l) => l.msg === 'listening')
            .map((l) => l.pid),
        ).size === 2,
      'both workers listening',
    );
    const rs = await concurrent(50, () => get(`${p.url}${zipPath(v)}`));
    for (const r of rs) {
      expect(r.status).toBe(200);
      expect(r.body.equals(zipBytes.get(v)!)).toBe(true);
    }
    expect(up.count(zipPath(v))).toBe(1);
    const lines = await waitForAccess(p, zipPath(v), 50);
    expect(new Set(lines.map((l) => l.pid)).size).toBe(2);
    // /metrics adds up every worker's counts, whichever worker answers it
    for (let i = 0; i < 4; i++) {
      const text = (await get(`${p.url}/metrics`)).text();
      expect(text).toMatch(/^gomodproxy_requests_total\{kind="zip",status="200"\} 50$/m);
    }
  });
});

describe('large zips', () => {
  test('a zip above the memory item limit: streamed on a miss, from disk on hits, with validators, HEAD and 304', async () => {
    const H = 'github.com/gmp-test/hugezip';
    const e = world.get(`${H}@${BIG}`);
    const bytes = await readFile(e.files.zip);
    expect(bytes.length).toBeGreaterThan(2 * 1024 * 1024);
    const p = `${proxy.url}/${H}/@v/${BIG}.zip`;
    const miss = await get(p);
    expect([miss.status, miss.headers['x-gomodproxy-cache']]).toEqual([200, 'miss']);
    expect(miss.body.equals(bytes)).toBe(true);
    const hit = await get(p);
    expect([hit.status, hit.headers['x-gomodproxy-cache']]).toEqual([200, 'hit']);
    expect(hit.body.equals(bytes)).toBe(true);
    expect(hit.headers['content-length']).toBe(String(bytes.length));
    expect(hit.headers.etag).toMatch(/^"[^"]+"$/);
    expect(hit.headers['last-modified']).toBeTruthy();
    expect(hit.headers['cache-control']).toMatch(/^public, max-age=\d+, immutable$/);
    const h = await head(p);
    expect([h.status, h.body.length, h.headers['content-length'], h.headers.etag]).toEqual([200, 0, String(bytes.length), hit.headers.etag]);
    const nm = await get(p, { 'If-None-Match': hit.headers.etag! });
    expect([nm.status, nm.body.length, nm.headers.etag]).toEqual([304, 0, hit.headers.etag]);
    const [r] = await (await createGoEnv({ goproxy: proxy.url })).modDownloadJson([`${H}@${BIG}`]);
    expect(r!.Sum).toBe(e.Sum);
    expect(up.count(`/${H}/@v/${BIG}.zip`)).toBe(1);
    // a conditional HEAD is answered like a conditional GET (RFC 9110 §13.1.2)
    const hnm = await head(p, { 'If-None-Match': hit.headers.etag! });
    expect(hnm.status).toBe(304);
  });
});

describe('streaming', () => {
  test('the first bytes reach the client while the upstream is still sending', async () => {
    const v = ZV[3]!;
    const total = zipBytes.get(v)!.length;
    up.on(zipPath(v), { slowBody: { chunk: 64 * 1024, intervalMs: 80 } });
    const staged = path.join(proxy.dataDir, Z, '@v', `${v}.zip.partial`);
    let atFirstByte: { partialBytes: number; committed: boolean; received: number } | undefined;
    const r = await streamGet(`${proxy.url}${zipPath(v)}`, async (_c, received) => {
      if (atFirstByte) return;
      const st = await stat(staged).catch(() => null);
      atFirstByte = { partialBytes: st?.size ?? -1, committed: existsSync(staged.slice(0, -'.partial'.length)), received };
    });
    expect(r.error).toBeUndefined();
    expect(r.body.equals(zipBytes.get(v)!)).toBe(true);
    // when the client had its first bytes, the proxy had received only part of the zip from upstream
    expect(atFirstByte!.committed).toBe(false);
    expect(atFirstByte!.partialBytes).toBeGreaterThan(0);
    expect(atFirstByte!.partialBytes).toBeLessThan(total);
    expect(atFirstByte!.received).toBeLessThan(total);
  });

  test('a client that disconnects does not cancel the fetch another client waits on, nor a fetch nobody waits on', async () => {
    const v = ZV[4]!;
    up.on(zipPath(v), { slowBody: { chunk: 64 * 1024, intervalMs: 40 } });
    const [quitter, stayer] = await Promise.all([streamGet(`${proxy.url}${zipPath(v)}`, () => 'abort'), streamGet(`${proxy.url}${zipPath(v)}`)]);
    expect(quitter.error?.message).toBe('aborted by the test');
    expect(stayer.error).toBeUndefined();
    expect(stayer.body.equals(zipBytes.get(v)!)).toBe(true);
    await expectCommitted(proxy.dataDir, Z, v);

    const alone = ZV[5]!;
    up.on(zipPath(alone), { slowBody: { chunk: 64 * 1024, intervalMs: 40 } });
    const r = await streamGet(`${proxy.url}${zipPath(alone)}`, () => 'abort');
    expect(r.error?.message).toBe('aborted by the test');
    await waitFor(async () => (await zipFiles(proxy.dataDir, Z, alone)).join() === `${alone}.zip,${alone}.ziphash`, `${alone}.zip committed`);
    const hit = await get(`${proxy.url}${zipPath(alone)}`);
    expect(hit.headers['x-gomodproxy-cache']).toBe('hit');
    expect(hit.body.equals(zipBytes.get(alone)!)).toBe(true);
    expect(up.count(zipPath(v))).toBe(1);
    expect(up.count(zipPath(alone))).toBe(1);
  });

  test('an upstream killed mid-zip leaves nothing cached and the client sees a failure; the next request succeeds', async () => {
    const v = ZV[6]!;
    const total = zipBytes.get(v)!.length;
    up.once(zipPath(v), { dieAfterBytes: Math.floor(total / 2) });
    const r = await streamGet(`${proxy.url}${zipPath(v)}`);
    expect(r.status !== 200 || r.error !== undefined, `client got ${r.status} and ${r.body.length} of ${total} bytes without an error`).toBe(true);
    expect(r.body.equals(zipBytes.get(v)!)).toBe(false);
    await waitFor(async () => (await zipFiles(proxy.dataDir, Z, v)).length === 0, `no ${v}.zip, .partial or .lock left`);

    // the go command sees a failure too, and caches nothing
    up.once(zipPath(v), { dieAfterBytes: Math.floor(total / 3) });
    const env = await createGoEnv({ goproxy: proxy.url });
    const [failed] = await env.modDownloadJson([`${Z}@${v}`], undefined, { allowErrors: true });
    expect(failed!.Error).toBeTruthy();
    await waitFor(async () => (await zipFiles(proxy.dataDir, Z, v)).length === 0, `no ${v}.zip, .partial or .lock left`);

    // the upstream is healthy again: the next request fetches and caches the whole zip
    const ok = await get(`${proxy.url}${zipPath(v)}`);
    expect(ok.status).toBe(200);
    expect(ok.body.equals(zipBytes.get(v)!)).toBe(true);
    await expectCommitted(proxy.dataDir, Z, v);
    const [good] = await (await createGoEnv({ goproxy: proxy.url })).modDownloadJson([`${Z}@${v}`]);
    expect(good!.Sum).toBe(world.get(`${Z}@${v}`).Sum);
    expect(up.count(zipPath(v))).toBe(3);

    // its access-log line records the failure and the bytes that did go out
    const [logged] = await waitForAccess(proxy, zipPath(v));
    expect(logged!.error, JSON.stringify(logged)).toMatch(/broke off|did not cache/);
    expect(Number(logged!.bytes), `access log says ${String(logged!.bytes)} bytes; the client received ${r.body.length}`).toBeGreaterThanOrEqual(r.body.length);
  });
});

describe('hostile upstream answers', () => {
  test('a zip with an entry outside module@version/ is refused: the go command prints one clear line, nothing is cached', async () => {
    const evil = await evilZip('v1.2.0');
    up.on(`/${M}/@v/v1.2.0.zip`, { replaceBody: evil });
    const env = await createGoEnv({ goproxy: proxy.url });
    const [r] = await env.modDownloadJson([`${M}@v1.2.0`], undefined, { allowErrors: true });
    expect(r!.Error).toMatch(/502 Bad Gateway\n\tserver response: upstream .* sent an invalid zip .*evil\/outside\.go/);
    await waitFor(async () => (await zipFiles(proxy.dataDir, M, 'v1.2.0')).length === 0, 'no v1.2.0.zip, .partial or .lock left');
    // asked again: still refused with the reason, still nothing cached
    const line = expectOneLineError(await get(`${proxy.url}/${M}/@v/v1.2.0.zip`), 502);
    expect(line).toContain(up.url);
    expect(await zipFiles(proxy.dataDir, M, 'v1.2.0')).toEqual([]);
  });

  test('a hostile zip: the very first HTTP client already gets 502 and the line, not a 200 cut short', async () => {
    up.on(`/${M}/@v/v1.1.0.zip`, { replaceBody: await evilZip('v1.1.0') });
    const first = await rawRequest(new URL(proxy.url).origin, `/${M}/@v/v1.1.0.zip`).catch((err: Error) => err);
    expect(first instanceof Error ? `status 200 then the connection was cut (${first.message})` : first.status).toBe(502);
    expect(expectOneLineError(first as Exclude<typeof first, Error>, 502)).toMatch(/invalid zip/);
    await waitFor(async () => (await zipFiles(proxy.dataDir, M, 'v1.1.0')).length === 0, 'no v1.1.0.zip, .partial or .lock left');
  });

  test('an HTML page with 200 for a version list is refused with one clear line and not cached', async () => {
    const L = 'github.com/gmp-test/htmllist';
    up.on(`/${L}/@v/list`, { replaceBody: '<html><body>Sign in</body></html>\n', contentType: 'text/html' });
    const line = expectOneLineError(await get(`${proxy.url}/${L}/@v/list`), 502);
    expect(line).toMatch(/HTML/);
    expect((await listFiles(proxy.dataDir)).filter((f) => f.includes('htmllist'))).toEqual([]);
  });

  test('an HTML page with 200 for .info or .mod is refused with one clear line and not cached', async () => {
    const html = '<!DOCTYPE html>\n<html><head><title>Login</title></head><body>Please sign in</body></html>\n';
    up.on(`/${M}/@v/v1.3.0.info`, { replaceBody: html, contentType: 'text/html' });
    up.on(`/${M}/@v/v1.3.0.mod`, { replaceBody: html, contentType: 'text/html' });
    for (const ext of ['info', 'mod']) {
      const line = expectOneLineError(await get(`${proxy.url}/${M}/@v/v1.3.0.${ext}`), 502);
      expect(line).toMatch(/HTML/);
      expect(existsSync(path.join(proxy.dataDir, M, '@v', `v1.3.0.${ext}`))).toBe(false);
    }
    const env = await createGoEnv({ goproxy: proxy.url });
    const [r] = await env.modDownloadJson([`${M}@v1.3.0`], undefined, { allowErrors: true });
    expect(r!.Error).toMatch(/502 Bad Gateway\n\tserver response: .*HTML/);
  });
});

describe('shutdown', () => {
  test('SIGTERM finishes an in-flight slow download, then exits 0 without waiting out idle keep-alive connections', async () => {
    const v = ZV[7]!;
    up.on(zipPath(v), { slowBody: { chunk: 64 * 1024, intervalMs: 60 } });
    // A shutdown timeout far past the test's: if the process exits, nothing was cut off by it.
    const p = await startProxy({ upstream: up.url, env: { GOMODPROXY_SHUTDOWN_TIMEOUT: '10m' } });
    // like the go command's transport: idle connections are kept for 90 s
    const client = new Agent({ keepAliveTimeout: 90_000, keepAliveMaxTimeout: 90_000 });
    registerCleanup(() => client.destroy());
    // The client's connection, idle once the zip is whole, is closed by the server only when it
    // sits idle for the server's keep-alive timeout (65 s), or by a shutdown that closes idle
    // connections at once. So a shutdown that waited for it would exit after 65 s; the SIGKILL
    // 45 s after SIGTERM turns that into exit code null. (45 s is hundreds of times what the
    // exit takes once the download has ended: load does not reach it.)
    let stopping: Promise<number | null> | undefined;
    const r = await streamGet(
      `${p.url}${zipPath(v)}`,
      () => {
        stopping ??= p.stop('SIGTERM', 45_000);
      },
      60_000,
      client,
    );
    expect(stopping).toBeDefined();
    expect(r.error).toBeUndefined();
    expect(r.body.equals(zipBytes.get(v)!)).toBe(true);
    // in-flight work is done; the process exits by itself, cleanly, with the zip committed
    expect(await stopping!).toBe(0);
    await expectCommitted(p.dataDir, Z, v);
  });
});

/** A zip for M@v that also holds a file outside the `module@version/` prefix. */
function evilZip(v: string): Promise<Buffer> {
  return makeZip({ [`${M}@${v}/go.mod`]: `module ${M}\n`, [`${M}@${v}/ok.go`]: 'package cache\n', 'evil/outside.go': 'package evil\n' });
}

function makeZip(files: Record<string, string>): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const z = new yazl.ZipFile();
    for (const [name, content] of Object.entries(files)) z.addBuffer(Buffer.from(content), name);
    z.end();
    const chunks: Buffer[] = [];
    z.outputStream.on('data', (c: Buffer) => chunks.push(c));
    z.outputStream.on('end', () => resolve(Buffer.concat(chunks)));
    z.outputStream.on('error', reject);
  });
}
