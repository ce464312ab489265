// The GOPROXY protocol at the HTTP level: endpoints, GET and HEAD, queries, `!` escaping,
// validation (400 with one line, nothing sent upstream), 404/405, validators and caching
// headers, and mounting under a path prefix.
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createGoEnv } from '../helpers/goenv.js';
import { startProxy, type ProxyProcess } from '../helpers/gomodproxy.js';
import { get, head, http, type HttpResponse } from '../helpers/http.js';
import { cleanupAll } from '../helpers/tmp.js';
import { startTestUpstream, type TestUpstream } from '../helpers/upstream.js';
import { buildModuleWorld, type ExpectedInfo, type World, type WorldSpec } from '../helpers/world.js';
import { expectOneLineError, rawRequest } from './util.js';

const P = 'github.com/gmp-test/proto';
const P2 = 'github.com/gmp-test/proto/v2';
const C = 'github.com/gmp-test/CamelCase';
const Cesc = 'github.com/gmp-test/!camel!case';

const spec: WorldSpec = {
  modules: [
    { path: P2, versions: [{ version: 'v2.0.0' }] },
    { path: P, versions: [{ version: 'v1.0.0' }, { version: 'v1.1.0' }, {}], queries: ['main'] },
    { path: C, versions: [{ version: 'v1.0.0-Beta' }] },
  ],
};

let world: World;
let upstream: TestUpstream;
let proxy: ProxyProcess;
let hash12: string;
let hashInfo: ExpectedInfo;

beforeAll(async () => {
  world = await buildModuleWorld(spec);
  hash12 = (await world.repos.get(P)!.head('v1.0.0')).slice(0, 12);
  // what direct mode says a commit prefix resolves to (the tagged v1.0.0)
  const direct = await createGoEnv();
  await world.configureGit(direct);
  const [r] = await direct.modDownloadJson([`${P}@${hash12}`], world.directEnv);
  hashInfo = JSON.parse(await readFile(r!.Info!, 'utf8')) as ExpectedInfo;

  upstream = await startTestUpstream({ root: world.downloadDir });
  // a real proxy's answers where the go cache has no file: complete lists, @latest and queries
  const json = 'application/json';
  upstream.on(`/${P}/@v/list`, { replaceBody: 'v1.0.0\nv1.1.0\n', contentType: 'text/plain; charset=utf-8' });
  upstream.on(`/${P}/@latest`, { replaceBody: world.get(`${P}@v1.1.0`).infoText, contentType: json });
  upstream.on(`/${P}/@v/main.info`, { replaceBody: world.queries.get(`${P}@main`)!.infoText, contentType: json });
  upstream.on(`/${P}/@v/${hash12}.info`, { replaceBody: JSON.stringify(hashInfo), contentType: json });
  proxy = await startProxy({ upstream: upstream.url });
});
afterAll(cleanupAll);

const url = (p: string): string => `${proxy.url}${p}`;
const lines = (r: HttpResponse): string[] => r.text().split('\n').filter(Boolean).sort();

describe('endpoints', () => {
  test('GET list, .info, .mod, .zip and @latest', async () => {
    const e = world.get(`${P}@v1.0.0`);
    const info = await get(url(`/${P}/@v/v1.0.0.info`));
    expect(info.status).toBe(200);
    expect(info.headers['content-type']).toMatch(/^application\/json/);
    expect(info.json<ExpectedInfo>()).toMatchObject({ Version: 'v1.0.0', Time: e.Info.Time });

    const mod = await get(url(`/${P}/@v/v1.0.0.mod`));
    expect(mod.status).toBe(200);
    expect(mod.headers['content-type']).toMatch(/^text\/plain/);
    expect(mod.text()).toBe(e.modText);

    const zip = await get(url(`/${P}/@v/v1.0.0.zip`));
    expect(zip.status).toBe(200);
    expect(zip.headers['content-type']).toBe('application/zip');
    expect(zip.body.equals(await readFile(e.files.zip))).toBe(true);

    const list = await get(url(`/${P}/@v/list`));
    expect(list.status).toBe(200);
    expect(list.headers['content-type']).toMatch(/^text\/plain/);
    expect(lines(list)).toEqual(['v1.0.0', 'v1.1.0']);

    const latest = await get(url(`/${P}/@latest`));
    expect(latest.status).toBe(200);
    expect(latest.headers['content-type']).toMatch(/^application\/json/);
    expect(latest.json<ExpectedInfo>()).toMatchObject({ Version: 'v1.1.0', Time: world.get(`${P}@v1.1.0`).Info.Time });

    for (const r of [info, mod, zip, list, latest]) expect(Number(r.headers['content-length'])).toBe(r.body.length);
  });

  test('HEAD answers like GET without a body, cold and warm', async () => {
    const paths = [`/${P}/@v/v1.1.0.info`, `/${P}/@v/v1.1.0.mod`, `/${P}/@v/v1.1.0.zip`, `/${P}/@v/list`, `/${P}/@latest`];
    // cold: HEAD is the first request for these artifacts
    const cold = await Promise.all(paths.map((p) => head(url(p))));
    for (const [i, r] of cold.entries()) {
      expect({ path: paths[i], status: r.status, bodyBytes: r.body.length }).toEqual({ path: paths[i], status: 200, bodyBytes: 0 });
    }
    await Promise.all(paths.map((p) => get(url(p))));
    // now every artifact is committed: a GET and a HEAD of the cached answers
    const got = await Promise.all(paths.map((p) => get(url(p))));
    const warm = await Promise.all(paths.map((p) => head(url(p))));
    for (const [i, g] of got.entries()) {
      const w = warm[i]!;
      expect(g.status).toBe(200);
      expect({ path: paths[i], status: w.status, bodyBytes: w.body.length }).toEqual({ path: paths[i], status: 200, bodyBytes: 0 });
      expect(w.headers['content-type']).toBe(g.headers['content-type']);
      expect(w.headers['content-length']).toBe(String(g.body.length));
      if (i < 3) {
        expect(w.headers.etag).toBe(g.headers.etag);
        expect(cold[i]!.headers['content-length']).toBe(String(g.body.length));
      }
    }
    expect(got[2]!.body.equals(await readFile(world.get(`${P}@v1.1.0`).files.zip))).toBe(true);
  });

  test('query .info: a branch and a commit prefix, resolved by the upstream, cached as mutable', async () => {
    const main = await get(url(`/${P}/@v/main.info`));
    expect(main.status).toBe(200);
    expect(main.json<ExpectedInfo>().Version).toBe(world.queries.get(`${P}@main`)!.Version);
    expect(main.headers['cache-control'] ?? '').not.toMatch(/immutable/);

    const byHash = await get(url(`/${P}/@v/${hash12}.info`));
    expect(byHash.status).toBe(200);
    expect(byHash.json<ExpectedInfo>()).toMatchObject({ Version: 'v1.0.0', Time: hashInfo.Time });
    expect(byHash.headers['cache-control'] ?? '').not.toMatch(/immutable/);

    // the go command resolves both through the proxy to the same versions as direct mode
    const env = await createGoEnv({ goproxy: proxy.url });
    const rs = await env.modDownloadJson([`${P}@main`, `${P}@${hash12}`]);
    expect(rs.map((r) => [r.Version, r.Sum])).toEqual([
      [world.queries.get(`${P}@main`)!.Version, world.queries.get(`${P}@main`)!.Sum],
      ['v1.0.0', world.get(`${P}@v1.0.0`).Sum],
    ]);
  });

  test('`!` escaping in path and version, raw or as %21; upstream asked with %21', async () => {
    const e = world.get(`${C}@v1.0.0-Beta`);
    const zipBytes = await readFile(e.files.zip);
    for (const [p, v] of [
      [Cesc, 'v1.0.0-!beta'],
      [Cesc.replaceAll('!', '%21'), 'v1.0.0-%21beta'],
    ] as const) {
      const info = await get(url(`/${p}/@v/${v}.info`));
      expect(info.status).toBe(200);
      expect(info.json<ExpectedInfo>().Version).toBe('v1.0.0-Beta');
      const mod = await get(url(`/${p}/@v/${v}.mod`));
      expect(mod.text()).toBe(e.modText);
      const zip = await get(url(`/${p}/@v/${v}.zip`));
      expect(zip.status).toBe(200);
      expect(zip.body.equals(zipBytes)).toBe(true);
      const list = await get(url(`/${p}/@v/list`));
      expect(list.status).toBe(200);
      expect(lines(list)).toEqual(['v1.0.0-Beta']);
    }
    const upstreamPaths = upstream.requests.filter((r) => r.path.includes('!camel')).map((r) => r.rawPath);
    expect(upstreamPaths.length).toBeGreaterThan(0);
    for (const p of upstreamPaths) expect(p).toContain('/github.com/gmp-test/%21camel%21case/@v/');
    // the go command agrees on the sums
    const env = await createGoEnv({ goproxy: proxy.url });
    const [r] = await env.modDownloadJson([`${C}@v1.0.0-Beta`]);
    expect([r!.Sum, r!.GoModSum]).toEqual([e.Sum, e.GoModSum]);
  });
});

describe('errors', () => {
  test('malformed requests: 400, one text/plain line, nothing sent upstream', async () => {
    const bad: [string, string][] = [
      ['upper case not escaped', `/${C}/@v/list`],
      ['upper case version not escaped', `/${Cesc}/@v/v1.0.0-Beta.info`],
      ['first element without a dot', '/notahost/x/@v/list'],
      ['empty path element', '/github.com//gmp-test/@v/list'],
      ['/v1 major suffix', `/${P}/v1/@v/list`],
      ['! before a non-letter', '/github.com/gmp-test/!1x/@v/list'],
      ['double !', '/github.com/gmp-test/!!x/@v/list'],
      ['trailing !', '/github.com/gmp-test/x!/@v/list'],
      ['bad percent-encoding', `/${P}/@v/%ZZ.info`],
      ['non-canonical .mod', `/${P}/@v/v1.0.mod`],
      ['non-canonical .zip (build metadata)', `/${P}/@v/v1.0.0+meta.zip`],
      ['branch name as .zip', `/${P}/@v/main.zip`],
      ['/v2 path with v1.0.0 .mod', `/${P2}/@v/v1.0.0.mod`],
      ['/v2 path with v1.0.0 .zip', `/${P2}/@v/v1.0.0.zip`],
      ['v2 on a path without /v2, no +incompatible', `/${P}/@v/v2.0.0.zip`],
      ['.. element in the module path', '/github.com/gmp-test/../x/@v/list'],
      ['%2e%2e element in the module path', '/github.com/gmp-test/%2e%2e/x/@v/list'],
      ['encoded / in a .zip version', `/${P}/@v/..%2F..%2Fsecret.zip`],
      ['encoded / in a .info query', `/${P}/@v/..%2F..%2Fsecret.info`],
    ];
    const before = upstream.count();
    const failures: string[] = [];
    const origin = new URL(proxy.url).origin;
    for (const [why, p] of bad) {
      // sent as-is: an HTTP client library would resolve `..` before sending
      const r = await rawRequest(origin, p);
      if (r.status !== 400) {
        failures.push(`${why}: GET ${p} -> ${r.status} ${JSON.stringify(r.text())}`);
        continue;
      }
      expectOneLineError(r, 400);
      const h = await rawRequest(origin, p, 'HEAD');
      if (h.status !== 400) failures.push(`${why}: HEAD ${p} -> ${h.status}`);
    }
    expect(failures).toEqual([]);
    expect(upstream.requests.slice(before).map((r) => r.path)).toEqual([]);
  });

  test('unknown modules and versions: 404 with one line', async () => {
    const paths = [
      '/github.com/gmp-test/nope/@v/list',
      '/github.com/gmp-test/nope/@latest',
      '/github.com/gmp-test/nope/@v/v1.0.0.info',
      '/github.com/gmp-test/nope/@v/v1.0.0.mod',
      '/github.com/gmp-test/nope/@v/v1.0.0.zip',
      `/${P}/@v/v1.9.9.info`,
      `/${P}/@v/v1.9.9.zip`,
    ];
    for (const p of paths) {
      const r = await get(url(p));
      const line = expectOneLineError(r, 404);
      expect(line.length).toBeGreaterThan(10);
      const h = await head(url(p));
      expect({ p, status: h.status, bytes: h.body.length }).toEqual({ p, status: 404, bytes: 0 });
    }
  });

  test('POST, PUT and DELETE: 405 with Allow and one line', async () => {
    for (const method of ['POST', 'PUT', 'DELETE'] as const) {
      const r = await http(url(`/${P}/@v/v1.0.0.info`), { method, body: method === 'DELETE' ? undefined : 'x' });
      expectOneLineError(r, 405);
      expect(r.headers.allow).toMatch(/GET/);
      expect(r.headers.allow).toMatch(/HEAD/);
    }
  });
});

describe('validators and caching headers', () => {
  test('immutable artifacts: strong ETag, long immutable Cache-Control, Content-Length, Last-Modified', async () => {
    const check = (r: HttpResponse, what: string): void => {
      expect(r.status, what).toBe(200);
      const m = /^public, max-age=(\d+), immutable$/.exec(r.headers['cache-control'] ?? '');
      expect(m, `${what} cache-control ${r.headers['cache-control']}`).not.toBeNull();
      expect(Number(m![1])).toBeGreaterThanOrEqual(30 * 86_400);
      expect(r.headers['content-length'], what).toBe(String(r.body.length));
      expect(r.headers.etag, what).toMatch(/^"[^"]+"$/);
      const lm = Date.parse(r.headers['last-modified'] ?? '');
      expect(Number.isNaN(lm), `${what} last-modified ${r.headers['last-modified']}`).toBe(false);
      expect(lm).toBeLessThanOrEqual(Date.now());
    };
    // .info and .mod on their first (miss) answer and on a hit
    for (const ext of ['info', 'mod']) {
      const first = await get(url(`/${P2}/@v/v2.0.0.${ext}`));
      expect(first.headers['x-gomodproxy-cache']).toBe('miss');
      check(first, `miss ${ext}`);
      const again = await get(url(`/${P2}/@v/v2.0.0.${ext}`));
      expect(again.headers['x-gomodproxy-cache']).toBe('hit');
      check(again, `hit ${ext}`);
      expect(again.headers.etag).toBe(first.headers.etag);
    }
    const zipMiss = await get(url(`/${P2}/@v/v2.0.0.zip`));
    expect(zipMiss.status).toBe(200);
    expect(zipMiss.headers['x-gomodproxy-cache']).toBe('miss');
    expect(zipMiss.headers['cache-control']).toMatch(/^public, max-age=\d+, immutable$/);
    expect(zipMiss.headers['content-length']).toBe(String(zipMiss.body.length));
    const zipHit = await get(url(`/${P2}/@v/v2.0.0.zip`));
    expect(zipHit.headers['x-gomodproxy-cache']).toBe('hit');
    check(zipHit, 'hit zip');
    expect(zipHit.body.equals(zipMiss.body)).toBe(true);
  });

  test('If-None-Match with the ETag gives 304 (also from a second process on the same data folder)', async () => {
    const paths = [`/${P}/@v/v1.0.0.info`, `/${P}/@v/v1.0.0.mod`, `/${P}/@v/v1.0.0.zip`];
    const etags: string[] = [];
    for (const p of paths) {
      const r = await get(url(p));
      expect(r.status).toBe(200);
      const etag = r.headers.etag!;
      etags.push(etag);
      const nm = await get(url(p), { 'If-None-Match': etag });
      expect({ p, status: nm.status, bytes: nm.body.length }).toEqual({ p, status: 304, bytes: 0 });
      expect(nm.headers.etag).toBe(etag);
      const list = await get(url(p), { 'If-None-Match': `"nope", ${etag}` });
      expect(list.status).toBe(304);
      const other = await get(url(p), { 'If-None-Match': '"something-else"' });
      expect(other.status).toBe(200);
      expect(other.body.equals(r.body)).toBe(true);
    }
    const twin = await startProxy({ upstream: upstream.url, dataDir: proxy.dataDir });
    for (const [i, p] of paths.entries()) {
      const r = await get(`${twin.url}${p}`, { 'If-None-Match': etags[i]! });
      expect({ p, status: r.status }).toEqual({ p, status: 304 });
    }
    await twin.stop();
  });
});

describe('path prefix', () => {
  test('--path-prefix /go: served under /go only, and the go command works with GOPROXY=http://host/go', async () => {
    const prefixed = await startProxy({ upstream: upstream.url, args: ['--path-prefix', '/go'] });
    expect(prefixed.url).toMatch(/\/go$/);
    const origin = new URL(prefixed.url).origin;
    const ok = await get(`${origin}/go/${P}/@v/list`);
    expect(ok.status).toBe(200);
    expect(lines(ok)).toEqual(['v1.0.0', 'v1.1.0']);
    const info = await get(`${origin}/go/${Cesc}/@v/v1.0.0-%21beta.info`);
    expect(info.json<ExpectedInfo>().Version).toBe('v1.0.0-Beta');
    expectOneLineError(await get(`${origin}/${P}/@v/list`), 404);
    expectOneLineError(await get(`${origin}/gox/${P}/@v/list`), 404);

    const env = await createGoEnv({ goproxy: `${origin}/go` });
    const rs = await env.modDownloadJson([`${P}@v1.0.0`, `${P2}@v2.0.0`, `${C}@v1.0.0-Beta`, `${P}@latest`]);
    expect(rs.map((r) => [r.Path, r.Version, r.Sum, r.GoModSum])).toEqual(
      [`${P}@v1.0.0`, `${P2}@v2.0.0`, `${C}@v1.0.0-Beta`, `${P}@v1.1.0`].map((k) => {
        const e = world.get(k);
        return [e.Path, e.Version, e.Sum, e.GoModSum];
      }),
    );
  });
});
