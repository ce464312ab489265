// Unit tests of the mutable answers (@v/list, @latest, .info of a query: MutableAnswers) over fake
// sources in a real SourceChain, a real disk store, real coordination, metrics and route table,
// driven over HTTP through the same Exchange the app uses. TTLs are 0 or hours, and an answer
// that must be old is made old by its file's time, so no test depends on how long anything takes;
// background refreshes are waited for with drain().
import { readFile, utimes } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { cleanupAll } from '../helpers/tmp.js';
import { FakeSource, MOD, broken, deferred, info, notFound, oneLine, startCore, type Core, type Reply } from './cachecore.js';

afterEach(cleanupAll);

const PSEUDO1 = 'v0.0.0-20240102030405-abcdefabcdef';
const PSEUDO2 = 'v0.0.0-20240203040506-123456789abc';
const GOMOD = Buffer.from('module example.com/m\n');

interface KindCase {
  kind: 'list' | 'latest' | 'query';
  path: string;
  /** Where the answer is kept in the store. */
  key: string;
  type: string;
  first: Buffer;
  second: Buffer;
  /** The version the answer resolves to, whose .info is kept as the version's own. */
  resolves?: string;
  /** Scripts the fake's answer to this request. */
  on(src: FakeSource, reply: Reply<'list' | 'latest' | 'info'>): void;
  /** Calls of the fake for this request. */
  calls(src: FakeSource): number;
}

const kinds: KindCase[] = [
  {
    kind: 'list',
    path: `/${MOD}/@v/list`,
    key: `mutable/${MOD}/@v/list`,
    type: 'text/plain; charset=utf-8',
    first: Buffer.from('v1.0.0\nv1.1.0\n'),
    second: Buffer.from('v1.0.0\nv1.1.0\nv1.2.0\n'),
    on: (src, reply) => src.on('list', undefined, reply as Reply<'list'>),
    calls: (src) => src.count('list'),
  },
  {
    kind: 'latest',
    path: `/${MOD}/@latest`,
    key: `mutable/${MOD}/@latest`,
    type: 'application/json',
    first: info('v1.1.0'),
    second: info('v1.2.0'),
    resolves: 'v1.1.0',
    on: (src, reply) => src.on('latest', undefined, reply as Reply<'latest'>),
    calls: (src) => src.count('latest'),
  },
  {
    kind: 'query',
    path: `/${MOD}/@v/main.info`,
    key: `mutable/${MOD}/@v/main.info`,
    type: 'application/json',
    first: info(PSEUDO1),
    second: info(PSEUDO2),
    resolves: PSEUDO1,
    on: (src, reply) => src.on('info', 'main', reply as Reply<'info'>),
    calls: (src) => src.count('info', 'main'),
  },
];

async function stored(core: Core, key: string): Promise<Buffer | null> {
  return readFile(path.join(core.config.data, key)).catch(() => null);
}

describe('MutableAnswers: freshness', () => {
  it.each(kinds)('$kind: fresh within the ttl, answered without asking the source, here and in another process', async (k) => {
    const core = await startCore({ flags: { 'cache.ttl': '1h' } });
    k.on(core.source, k.first);

    const miss = await core.get(k.path);
    expect([miss.status, miss.headers['x-gomodproxy-cache'], miss.headers['cache-control'], miss.headers['content-type']]).toEqual([
      200,
      'miss',
      'public, max-age=3600',
      k.type,
    ]);
    expect(miss.body.equals(k.first)).toBe(true);
    expect(k.calls(core.source)).toBe(1);

    const hit = await core.get(k.path);
    expect([hit.status, hit.headers['x-gomodproxy-cache']]).toEqual([200, 'hit']);
    const maxAge = Number(/^public, max-age=(\d+)$/.exec(hit.headers['cache-control'] ?? '')?.[1]);
    expect(maxAge).toBeGreaterThanOrEqual(1);
    expect(maxAge).toBeLessThanOrEqual(3600);
    expect(hit.body.equals(k.first)).toBe(true);
    expect(k.calls(core.source)).toBe(1);

    // Kept in the store for the other processes (and restarts) over the same data folder.
    await core.drain();
    expect((await stored(core, k.key))?.equals(k.first)).toBe(true);
    if (k.resolves) expect((await stored(core, `${MOD}/@v/${k.resolves}.info`))?.equals(k.first)).toBe(true);
    const other = new FakeSource();
    const elsewhere = await startCore({ data: core.config.data, sources: [other], flags: { 'cache.ttl': '1h' } });
    const there = await elsewhere.get(k.path);
    expect([there.status, there.headers['x-gomodproxy-cache']]).toEqual([200, 'hit']);
    expect(there.body.equals(k.first)).toBe(true);
    expect(other.count()).toBe(0);
  });

  it.each(kinds)('$kind: after the ttl, within staleWhileRevalidate: answered at once while one background refresh runs', async (k) => {
    const core = await startCore({ flags: { 'cache.ttl': 0, 'cache.staleWhileRevalidate': '1h' } });
    k.on(core.source, k.first);
    expect((await core.get(k.path)).body.equals(k.first)).toBe(true);
    expect(k.calls(core.source)).toBe(1);

    // The source now takes as long as the test wants: the answers below cannot have waited for it.
    const refreshed = deferred<Buffer>();
    k.on(core.source, () => refreshed.promise);
    for (const _ of [1, 2, 3]) {
      const r = await core.get(k.path);
      expect([r.status, r.headers['x-gomodproxy-cache'], r.headers['cache-control']]).toEqual([200, 'revalidating', 'no-cache']);
      expect(r.body.equals(k.first)).toBe(true);
      // One refresh, however many requests saw the old answer.
      expect(k.calls(core.source)).toBe(2);
    }
    refreshed.resolve(k.second);
    await core.mutable.drain();

    const after = await core.get(k.path);
    expect(after.status).toBe(200);
    expect(after.body.equals(k.second)).toBe(true);
    await core.drain();
    expect((await stored(core, k.key))?.equals(k.second)).toBe(true);
  });
});

describe('MutableAnswers: when the sources fail', () => {
  /** Two upstreams, a|b: the second is asked when the first fails. */
  async function twoSources(flags: Record<string, unknown>): Promise<{ core: Core; a: FakeSource; b: FakeSource }> {
    const a = new FakeSource('a');
    const b = new FakeSource('b');
    const core = await startCore({ sources: [a, b], flags });
    return { core, a, b };
  }

  it.each(kinds)('$kind: the last answer is served, marked stale, when every source fails', async (k) => {
    const { core, a, b } = await twoSources({ 'cache.ttl': 0, 'cache.staleWhileRevalidate': 0, 'cache.maxStale': '1h' });
    k.on(a, k.first);
    expect((await core.get(k.path)).body.equals(k.first)).toBe(true);

    k.on(a, broken('upstream a answered 502 Bad Gateway'));
    k.on(b, broken('upstream b answered 503 Service Unavailable'));
    const r = await core.get(k.path);
    expect([r.status, r.headers['x-gomodproxy-cache'], r.headers['cache-control']]).toEqual([200, 'stale', 'no-cache']);
    expect(r.body.equals(k.first)).toBe(true);
    expect(r.headers['x-gomodproxy-stale']).toMatch(/^\d+s old; upstreams failed: upstream b answered 503 Service Unavailable$/);
    expect([k.calls(a), k.calls(b)]).toEqual([2, 1]);
  });

  it.each(kinds)('$kind: after a failed background refresh, the answer served meanwhile says it is stale', async (k) => {
    const flags = { 'cache.ttl': 0, 'cache.staleWhileRevalidate': '2h' };
    const first = await startCore({ flags });
    k.on(first.source, k.first);
    expect((await first.get(k.path)).status).toBe(200);
    await first.drain();
    // The answer was fetched an hour ago (set on the file, not waited for), by another process.
    const hourAgo = new Date(Date.now() - 3_600_000);
    await utimes(path.join(first.config.data, k.key), hourAgo, hourAgo);
    const a = new FakeSource('a');
    const b = new FakeSource('b');
    k.on(a, broken('upstream a answered 502 Bad Gateway'));
    k.on(b, broken('upstream b answered 500 Internal Server Error'));
    const core = await startCore({ data: first.config.data, sources: [a, b], flags });

    const during = await core.get(k.path);
    expect([during.status, during.headers['x-gomodproxy-cache']]).toEqual([200, 'revalidating']);
    await core.mutable.drain();
    expect([k.calls(a), k.calls(b)]).toEqual([1, 1]);
    const r = await core.get(k.path);
    expect([r.status, r.headers['x-gomodproxy-cache']]).toEqual([200, 'stale']);
    expect(r.body.equals(k.first)).toBe(true);
    expect(r.headers['x-gomodproxy-stale']).toMatch(/^\d+s old; upstreams failed: upstream b answered 500 Internal Server Error$/);
  });

  it.each(kinds)('$kind: an answer older than maxStale is not served: the failure is', async (k) => {
    const { core, a, b } = await twoSources({ 'cache.ttl': 0, 'cache.staleWhileRevalidate': 0, 'cache.maxStale': 0 });
    k.on(a, k.first);
    expect((await core.get(k.path)).status).toBe(200);
    k.on(a, broken('upstream a answered 502 Bad Gateway'));
    k.on(b, broken('upstream b answered 502 Bad Gateway'));
    const r = await core.get(k.path);
    expect(r.status).toBe(502);
    expect(oneLine(r)).toBe('upstream b answered 502 Bad Gateway');
  });

  it.each(kinds)('$kind: an answer the sources now say is not found is not served stale: 404, and it is dropped from the store', async (k) => {
    const core = await startCore({ flags: { 'cache.ttl': 0, 'cache.staleWhileRevalidate': 0, 'cache.maxStale': '1h' } });
    k.on(core.source, k.first);
    expect((await core.get(k.path)).status).toBe(200);
    await core.drain();
    expect(await stored(core, k.key)).not.toBeNull();

    const gone = notFound(MOD);
    k.on(core.source, gone);
    const r = await core.get(k.path);
    expect(r.status).toBe(404);
    expect(oneLine(r)).toBe(gone.message);
    await core.drain();
    expect(await stored(core, k.key)).toBeNull();
  });
});

describe('MutableAnswers: lists and the versions held here', () => {
  /** Fetches the .mod of each version through the artifact cache, as the go command would. */
  async function hold(core: Core, versions: string[]): Promise<void> {
    for (const v of versions) {
      core.source.on('mod', v, GOMOD);
      expect((await core.get(`/${MOD}/@v/${v}.mod`)).status).toBe(200);
    }
    await core.drain();
  }

  it('a list the sources do not know falls back to the releases held here (pseudo-versions left out)', async () => {
    const core = await startCore({ flags: { 'cache.ttl': '1h' } });
    await hold(core, ['v1.1.0', 'v1.0.0', PSEUDO1]);
    const r = await core.get(`/${MOD}/@v/list`);
    expect([r.status, r.headers['content-type']]).toEqual([200, 'text/plain; charset=utf-8']);
    expect(r.text).toBe('v1.0.0\nv1.1.0\n');
    expect(core.source.count('list')).toBe(1);
  });

  it("a proxy's list gets the releases held here that it lacks", async () => {
    const core = await startCore({ flags: { 'cache.ttl': '1h' } });
    await hold(core, ['v1.1.0', PSEUDO1]);
    core.source.on('list', undefined, Buffer.from('v1.0.0 2024-01-01T00:00:00Z\nnot-a-version\nv1.2.0\n'));
    const r = await core.get(`/${MOD}/@v/list`);
    expect(r.status).toBe(200);
    expect(r.text).toBe('v1.0.0 2024-01-01T00:00:00Z\nv1.2.0\nv1.1.0\n');
  });

  it('a list refused as an HTML page is a 502 with one line, and nothing is kept', async () => {
    const core = await startCore();
    core.source.on('list', undefined, Buffer.from('<!doctype html><html>login</html>'));
    const r = await core.get(`/${MOD}/@v/list`);
    expect(r.status).toBe(502);
    expect(oneLine(r)).toBe('upstream fake sent an HTML page instead of the version list of example.com/m; check the upstream URL');
    await core.drain();
    expect(await stored(core, `mutable/${MOD}/@v/list`)).toBeNull();
  });
});

describe('MutableAnswers: not found', () => {
  it.each(kinds)('$kind: not found is remembered for cache.notFoundTtl, and nothing is kept in the data folder', async (k) => {
    const core = await startCore({ flags: { 'cache.notFoundTtl': '30s' } });
    const err = notFound(MOD);
    k.on(core.source, err);
    const before = await core.tree();

    const first = await core.get(k.path);
    expect(first.status).toBe(404);
    expect(oneLine(first)).toBe(err.message);
    expect(first.headers['cache-control']).toBe('public, max-age=30');
    const second = await core.get(k.path);
    expect([second.status, second.headers['x-gomodproxy-cache']]).toEqual([404, 'negative']);
    expect(oneLine(second)).toBe(err.message);
    expect(k.calls(core.source)).toBe(1);

    await core.drain();
    const after = await core.tree();
    expect(after.files).toEqual(before.files);
    expect(after.dirs.filter((d) => !before.dirs.includes(d) && d !== 'state/locks')).toEqual([]);
  });

  it.each(kinds)('$kind: with cache.notFoundTtl 0 the source is asked again', async (k) => {
    const core = await startCore({ flags: { 'cache.notFoundTtl': 0 } });
    k.on(core.source, notFound(MOD));
    for (const n of [1, 2]) {
      const r = await core.get(k.path);
      expect([r.status, r.headers['x-gomodproxy-cache']]).toEqual([404, undefined]);
      expect(k.calls(core.source)).toBe(n);
    }
  });
});

describe('MutableAnswers: policy', () => {
  const deny = [{ match: MOD, versions: '>=v1.1.0 <v1.2.0', reason: 'CVE-2026-0001: use v1.2.0' }];

  it('drops denied versions from lists, fresh or cached', async () => {
    const core = await startCore({ flags: { deny, 'cache.ttl': '1h' } });
    core.source.on('list', undefined, Buffer.from('v1.0.0\nv1.1.0\nv1.1.5 2024-01-01T00:00:00Z\nv1.2.0\n'));
    for (const cache of ['miss', 'hit']) {
      const r = await core.get(`/${MOD}/@v/list`);
      expect([r.status, r.headers['x-gomodproxy-cache']]).toEqual([200, cache]);
      expect(r.text).toBe('v1.0.0\nv1.2.0\n');
      expect(r.headers['content-length']).toBe(String(r.body.length));
    }
    expect(core.source.count('list')).toBe(1);
  });

  it.each([
    { kind: 'latest', path: `/${MOD}/@latest`, on: (s: FakeSource, b: Buffer) => s.on('latest', undefined, b) },
    { kind: 'query', path: `/${MOD}/@v/main.info`, on: (s: FakeSource, b: Buffer) => s.on('info', 'main', b) },
  ])('refuses a $kind answer that names a denied version (403 with the reason); allows others', async ({ path: p, on }) => {
    const core = await startCore({ flags: { deny } });
    on(core.source, info('v1.1.5'));
    const r = await core.get(p);
    expect(r.status).toBe(403);
    expect(oneLine(r)).toBe('example.com/m@v1.1.5 is blocked by this proxy: CVE-2026-0001: use v1.2.0');

    const other = await startCore({ flags: { deny } });
    on(other.source, info('v1.2.0'));
    const ok = await other.get(p);
    expect(ok.status).toBe(200);
    expect(ok.body.equals(info('v1.2.0'))).toBe(true);
  });
});

describe('MutableAnswers: what it keeps', () => {
  it("a query's answer never replaces the .info a version already has", async () => {
    const core = await startCore();
    core.source.on('info', 'v1.0.0', info('v1.0.0', '2024-01-01T00:00:00Z'));
    const original = await core.get(`/${MOD}/@v/v1.0.0.info`);
    expect(original.status).toBe(200);
    await core.drain();

    // The branch now resolves to the same version with another time (a re-tagged repository).
    core.source.on('info', 'main', info('v1.0.0', '2030-01-01T00:00:00Z'));
    const q = await core.get(`/${MOD}/@v/main.info`);
    expect(q.status).toBe(200);
    expect(q.body.equals(info('v1.0.0', '2030-01-01T00:00:00Z'))).toBe(true);
    await core.drain();
    expect((await stored(core, `${MOD}/@v/v1.0.0.info`))?.equals(original.body)).toBe(true);
    core.memory.delete(core.key('v1.0.0', 'info'));
    const again = await core.get(`/${MOD}/@v/v1.0.0.info`);
    expect(again.body.equals(original.body)).toBe(true);
    expect(core.source.count('info', 'v1.0.0')).toBe(1);
  });

  it('an answer is served but not kept when the disk has no room beyond its reserve', async () => {
    const core = await startCore({ flags: { 'cache.ttl': '1h', 'cache.minFree': '1MiB' } });
    core.store.free = 2 ** 20;
    core.source.on('list', undefined, Buffer.from('v1.0.0\n'));
    const r = await core.get(`/${MOD}/@v/list`);
    expect([r.status, r.text]).toEqual([200, 'v1.0.0\n']);
    await core.drain();
    expect(await stored(core, `mutable/${MOD}/@v/list`)).toBeNull();
    // This process still has it, fresh.
    const hit = await core.get(`/${MOD}/@v/list`);
    expect([hit.status, hit.headers['x-gomodproxy-cache'], hit.text]).toEqual([200, 'hit', 'v1.0.0\n']);
    expect(core.source.count('list')).toBe(1);
  });
});
