// Not-found and refused answers: remembered for their own TTLs by every worker of a server, so
// asking again costs no upstream request and every worker gives the same line; the headers say
// so; and a request that ends not-found or refused leaves nothing on disk, so anonymous clients
// cannot grow the data folder.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startProxy, type ProxyProcess } from '../helpers/gomodproxy.js';
import { get } from '../helpers/http.js';
import { cleanupAll } from '../helpers/tmp.js';
import { startTestUpstream, type TestUpstream } from '../helpers/upstream.js';
import { buildModuleWorld, type World } from '../helpers/world.js';
import { expectOneLineError, listFiles, waitFor } from './util.js';

const M = 'github.com/gmp-test/negative';
const NOPE = 'github.com/gmp-test/no-such-module';

let world: World;
let up: TestUpstream;
let proxy: ProxyProcess;

beforeAll(async () => {
  world = await buildModuleWorld({ modules: [{ path: M, versions: [{ version: 'v1.0.0' }, { version: 'v1.1.0' }] }] });
  up = await startTestUpstream({ root: world.downloadDir });
  proxy = await startProxy({ upstream: up.url, workers: 2, env: { GOMODPROXY_CACHE_NOT_FOUND_TTL: '1h', GOMODPROXY_CACHE_REFUSED_TTL: '1h' } });
});
afterAll(cleanupAll);

/** n requests at once, each on its own connection: both workers answer some of them. */
function burst(url: string, n = 8) {
  return Promise.all(Array.from({ length: n }, () => get(url, { connection: 'close' })));
}

/** Answers remembered, summed over the workers (each keeps a copy). */
async function remembered(p: ProxyProcess = proxy): Promise<number> {
  const m = /^gomodproxy_remembered_answers (\d+)/m.exec((await get(`${p.url}/metrics`)).text());
  return Number(m?.[1] ?? NaN);
}

/** Asks once, then waits until both workers remember the answer (the first relays it through the primary). */
async function askAndWaitForRelay(p: string): Promise<ReturnType<typeof get>> {
  const before = await remembered();
  const first = get(`${proxy.url}${p}`);
  await first;
  await waitFor(async () => (await remembered()) >= before + 2, `both workers to remember ${p}`);
  return first;
}

/** The pids that answered requests for paths ending in suffix (workers log their own pid). */
async function answeredBy(suffix: string, n: number): Promise<Set<unknown>> {
  const lines = await waitFor(() => {
    const l = proxy.logs().filter((x) => x.log === 'access' && String(x.path).endsWith(suffix));
    return l.length >= n ? l : undefined;
  }, `${n} access lines for ${suffix}`);
  return new Set(lines.map((l) => l.pid));
}

describe('not found is remembered', () => {
  test('a missing version asked again and again, on both workers: one upstream request, the same line, marked negative', async () => {
    const p = `/${M}/@v/v9.9.9.info`;
    const first = await askAndWaitForRelay(p);
    const line = expectOneLineError(first, 404);
    expect(first.headers['cache-control']).toBe('public, max-age=3600');
    const again = await burst(`${proxy.url}${p}`, 12);
    for (const r of again) {
      expect(expectOneLineError(r, 404)).toBe(line);
      expect(r.headers['x-gomodproxy-cache']).toBe('negative');
      expect(Number(/max-age=(\d+)/.exec(r.headers['cache-control'] ?? '')?.[1])).toBeLessThanOrEqual(3600);
    }
    expect((await answeredBy(p, 13)).size).toBe(2);
    expect(up.count(p)).toBe(1);
  });

  test('lists, @latest and queries of a module that does not exist are remembered too', async () => {
    for (const p of [`/${NOPE}/@v/list`, `/${NOPE}/@latest`, `/${NOPE}/@v/main.info`]) {
      expectOneLineError(await askAndWaitForRelay(p), 404);
      for (const r of await burst(`${proxy.url}${p}`, 6)) expect({ p, cache: r.headers['x-gomodproxy-cache'] }).toEqual({ p, cache: 'negative' });
      expect({ p, upstream: up.count(p) }).toEqual({ p, upstream: 1 });
    }
  });

  test('a not-found expires after its TTL and the upstream is asked again', async () => {
    const short = await startProxy({ upstream: up.url, env: { GOMODPROXY_CACHE_NOT_FOUND_TTL: '1s' } });
    const p = `/${M}/@v/v1.7.7.mod`;
    const before = up.count(p);
    expectOneLineError(await get(`${short.url}${p}`), 404);
    expect((await get(`${short.url}${p}`)).headers['x-gomodproxy-cache']).toBe('negative');
    expect(up.count(p) - before).toBe(1);
    await waitFor(async () => (await get(`${short.url}${p}`)).headers['x-gomodproxy-cache'] === undefined, 'the not-found to expire');
    expect(up.count(p) - before).toBe(2);
  });
});

describe('refused answers are remembered, with when the upstream is asked again', () => {
  test('an HTML page for an .info: the same line from every worker, one upstream request, Retry-After', async () => {
    const p = `/${M}/@v/v1.1.0.info`;
    up.on(p, { replaceBody: '<html><body>proxy login</body></html>', contentType: 'text/html' });
    const first = await askAndWaitForRelay(p);
    const line = expectOneLineError(first, 502);
    expect(line).toContain('did not cache it');
    expect(line).toMatch(/asks the upstream again in 3600s$/);
    for (const r of await burst(`${proxy.url}${p}`, 12)) {
      expect(r.headers['x-gomodproxy-cache']).toBe('refused');
      expect(expectOneLineError(r, 502)).toMatch(/^upstream .* sent an invalid \.info .*did not cache it; it asks the upstream again in \d+s$/);
      expect(Number(r.headers['retry-after'])).toBeGreaterThan(0);
    }
    expect(up.count(p)).toBe(1);
  });
});

describe('nothing is created on disk for a request that ends not-found or refused', () => {
  test('a fresh server asked for missing modules, versions and refused answers has only its own state in its data folder', async () => {
    const p = await startProxy({ upstream: up.url, env: { GOMODPROXY_CACHE_NOT_FOUND_TTL: '0', GOMODPROXY_CACHE_REFUSED_TTL: '0' } });
    const before = await listFiles(p.dataDir);
    up.on(`/${M}/@v/v1.0.0.zip`, { replaceBody: 'PK\u0003\u0004 not a zip at all' });
    const asks = [
      `/${NOPE}/@v/v1.0.0.info`,
      `/${NOPE}/@v/v1.0.0.mod`,
      `/${NOPE}/@v/v1.0.0.zip`,
      `/${NOPE}/@v/list`,
      `/${NOPE}/@latest`,
      `/${NOPE}/@v/main.info`,
      `/${M}/@v/v8.0.0.info`,
      `/${M}/@v/v8.0.0.zip`,
      `/${M}/@v/v1.0.0.zip`,
      `/example.com/${'a/'.repeat(20)}b/@v/v1.0.0.info`,
    ];
    for (let i = 0; i < 3; i++) for (const a of asks) expect((await get(`${p.url}${a}`)).status).toBeGreaterThanOrEqual(400);
    const after = await listFiles(p.dataDir);
    const made = after.filter((f) => !before.includes(f));
    expect(made.filter((f) => !f.startsWith('state/'))).toEqual([]);
    // The lock files of those fetches are gone too.
    expect(made.filter((f) => f.endsWith('.lock'))).toEqual([]);
  });
});
