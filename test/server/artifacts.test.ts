// Unit tests of the immutable-artifact cache (Artifacts with SmallFetches, ZipFetches, Misses and
// StorageSpace) over a fake source in a real SourceChain, a real disk store in a temp folder, real
// host coordination and real metrics, driven over HTTP through the same Exchange the app uses.
// Every wait is on something the test controls (a promise it settles, bytes it releases), never
// on the clock; every assertion is about bytes, statuses, headers, source calls and files.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import yazl from 'yazl';
import { HOLDBACK_BYTES } from '../../src/cache/staging.js';
import { HostCoordination } from '../../src/cluster/coordination.js';
import { cleanupAll } from '../helpers/tmp.js';
import { Feed, FakeSource, MOD, broken, chunks, deferred, info, moduleZip, notFound, oneLine, startCore, turn, type Core } from './cachecore.js';

afterEach(cleanupAll);

const V = 'v1.0.0';
const GOMOD = Buffer.from('module example.com/m\n\ngo 1.21\n');
const at = (kind: 'info' | 'mod' | 'zip', version = V): string => `/${MOD}/@v/${version}.${kind}`;
const IMMUTABLE = 'public, max-age=31536000, immutable';

/** Deterministic incompressible bytes. */
function noise(n: number): Buffer {
  const out = Buffer.alloc(n);
  let h = Buffer.alloc(0);
  for (let off = 0; off < n; off += 32) {
    h = createHash('sha256').update(h).update(String(off)).digest();
    h.copy(out, off);
  }
  return out;
}

/** A zip of these entries exactly as named (no module rules applied). */
async function rawZip(entries: [string, Buffer | string][]): Promise<Buffer> {
  const z = new yazl.ZipFile();
  for (const [name, data] of entries) z.addBuffer(Buffer.from(data), name, { mtime: new Date(Date.UTC(2024, 0, 1)) });
  z.end();
  const parts: Buffer[] = [];
  for await (const c of z.outputStream) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

/** A zip larger than the held-back tail, so clients can read it while it arrives. */
const bigZip = moduleZip(V, { 'go.mod': GOMOD, 'data.bin': noise(320 * 1024), 'm.go': 'package m\n' });
/** A zip small enough to be held back whole until it is checked. */
const smallZip = moduleZip(V, { 'go.mod': GOMOD, 'm.go': 'package m\n' });

async function stored(core: Core, key: string): Promise<Buffer | null> {
  return readFile(path.join(core.config.data, key)).catch(() => null);
}

/** Files of the module in the data folder (artifacts, hashes, staging files, lists). */
async function moduleFiles(core: Core): Promise<string[]> {
  return (await core.tree()).files.filter((f) => f.startsWith(`${MOD}/`));
}

/** The value of a prom-client counter for these labels. */
async function counter(c: { get(): Promise<{ values: { labels: object; value: number }[] }> }, labels: Record<string, string>): Promise<number> {
  const { values } = await c.get();
  return values.filter((v) => Object.entries(labels).every(([k, x]) => (v.labels as Record<string, unknown>)[k] === x)).reduce((n, v) => n + v.value, 0);
}

describe('Artifacts: .info and .mod misses', () => {
  const cases = [
    {
      kind: 'info' as const,
      // Upstream junk is dropped: what is served and stored keeps only the fields the go command reads.
      upstream: Buffer.from('{"Version":"v1.0.0","Time":"2024-01-02T03:04:05Z","Junk":[1,2,3]}'),
      served: info(V),
      type: 'application/json',
    },
    { kind: 'mod' as const, upstream: GOMOD, served: GOMOD, type: 'text/plain; charset=utf-8' },
  ];

  it.each(cases)(
    '$kind: fetched once, checked, stored, then a hit from memory and from the store, with ETag and 304',
    async ({ kind, upstream, served, type }) => {
      const core = await startCore();
      core.source.on(kind, V, upstream);
      const key = core.key(V, kind);

      const miss = await core.get(at(kind));
      expect(miss.status).toBe(200);
      expect(miss.body.equals(served)).toBe(true);
      expect(miss.headers['x-gomodproxy-cache']).toBe('miss');
      expect(miss.headers['content-type']).toBe(type);
      expect(miss.headers['content-length']).toBe(String(served.length));
      expect(miss.headers['cache-control']).toBe(IMMUTABLE);
      const etag = miss.headers.etag as string;
      expect(etag).toMatch(/^"[A-Za-z0-9_-]+"$/);
      expect(core.source.count()).toBe(1);
      // Answered from memory to this process's next requests...
      expect(core.memory.get(key)?.data.equals(served)).toBe(true);
      // ...and stored behind the response.
      await core.drain();
      expect((await stored(core, key))?.equals(served)).toBe(true);
      if (kind === 'mod') expect((await stored(core, `${MOD}/@v/list`))?.toString()).toBe('v1.0.0\n');

      const fromMemory = await core.get(at(kind));
      expect([fromMemory.status, fromMemory.headers['x-gomodproxy-cache'], fromMemory.headers.etag]).toEqual([200, 'hit', etag]);
      expect(fromMemory.body.equals(served)).toBe(true);
      const notModified = await core.get(at(kind), { 'if-none-match': etag });
      expect([notModified.status, notModified.body.length, notModified.headers.etag]).toEqual([304, 0, etag]);

      // Without the memory entry (another process, a restart): from the store, with the same ETag.
      core.memory.delete(key);
      const fromStore = await core.get(at(kind));
      expect([fromStore.status, fromStore.headers['x-gomodproxy-cache'], fromStore.headers.etag]).toEqual([200, 'hit', etag]);
      expect(fromStore.body.equals(served)).toBe(true);
      expect(core.memory.get(key)?.data.equals(served)).toBe(true);
      core.memory.delete(key);
      const notModifiedFromStore = await core.get(at(kind), { 'if-none-match': `"other", ${etag}` });
      expect([notModifiedFromStore.status, notModifiedFromStore.body.length]).toEqual([304, 0]);
      expect(core.source.count()).toBe(1);
    },
  );

  it.each(cases)('$kind: concurrent requests for one missing key make one source call', async ({ kind, upstream, served }) => {
    const core = await startCore();
    const answer = deferred<Buffer>();
    core.source.on(kind, V, () => answer.promise);
    const n = 8;
    const responses = Promise.all(Array.from({ length: n }, () => core.get(at(kind))));
    // Every request has looked in the store, found nothing and gone on into the miss (and the
    // leader has looked once more under the lock) before the source answers.
    await core.store.emptyReads(core.key(V, kind), n + 1);
    await turn();
    expect(core.source.count()).toBe(1);
    answer.resolve(upstream);
    for (const r of await responses) {
      expect([r.status, r.headers['x-gomodproxy-cache']]).toEqual([200, 'miss']);
      expect(r.body.equals(served)).toBe(true);
    }
    expect(core.source.count()).toBe(1);
  });

  const refusals: { name: string; kind: 'info' | 'mod'; body: string; line: RegExp }[] = [
    {
      name: 'an .info of another version',
      kind: 'info',
      body: info('v1.0.1').toString(),
      line: /^upstream fake sent an invalid \.info for example\.com\/m@v1\.0\.0: it describes v1\.0\.1 instead of the requested v1\.0\.0; gomodproxy did not cache it$/,
    },
    {
      name: 'an .info that is an HTML page',
      kind: 'info',
      body: '<!DOCTYPE html>\n<html><body>Sign in to continue</body></html>\n',
      line: /^upstream fake sent an invalid \.info for example\.com\/m@v1\.0\.0: an HTML page instead of JSON; gomodproxy did not cache it$/,
    },
    {
      name: 'an .info that is not JSON',
      kind: 'info',
      body: 'v1.0.0',
      line: /^upstream fake sent an invalid \.info for example\.com\/m@v1\.0\.0: not JSON; gomodproxy did not cache it$/,
    },
    {
      name: 'an .info without a valid Version',
      kind: 'info',
      body: '{"Version":"1.0.0"}',
      line: /^upstream fake sent an invalid \.info for example\.com\/m@v1\.0\.0: Version "1\.0\.0" is not a valid semantic version; gomodproxy did not cache it$/,
    },
    {
      name: 'a go.mod that is an HTML page',
      kind: 'mod',
      body: '<html><head></head></html>',
      line: /^upstream fake sent an HTML page instead of the go\.mod of example\.com\/m@v1\.0\.0; gomodproxy did not cache it$/,
    },
    {
      name: 'a go.mod that does not parse',
      kind: 'mod',
      body: 'module example.com/m\nrequire (\n',
      line: /^upstream fake sent an invalid go\.mod for example\.com\/m@v1\.0\.0 \(.*unterminated block.*\); gomodproxy did not cache it$/,
    },
  ];

  it.each(refusals)('refuses $name with one line (502), stores nothing, and remembers the refusal', async ({ kind, body, line }) => {
    const core = await startCore();
    core.source.on(kind, V, Buffer.from(body));

    const first = await core.get(at(kind));
    expect(first.status).toBe(502);
    const said = oneLine(first);
    expect(said).toMatch(/; it asks the upstream again in 60s$/);
    const reason = said.replace(/; it asks the upstream again in 60s$/, '');
    expect(reason).toMatch(line);
    expect(first.headers['retry-after']).toBe('60');
    expect(first.headers['cache-control']).toBe('no-store');

    // Asked again: the same line from memory of the refusal, with when the upstream is asked next.
    const second = await core.get(at(kind));
    expect(second.status).toBe(502);
    expect(second.headers['x-gomodproxy-cache']).toBe('refused');
    const again = /^(.*); it asks the upstream again in (\d+)s$/.exec(oneLine(second));
    expect(again?.[1]).toBe(reason);
    const left = Number(again?.[2]);
    expect(left).toBeGreaterThanOrEqual(1);
    expect(left).toBeLessThanOrEqual(60);
    expect(second.headers['retry-after']).toBe(String(left));
    expect(core.source.count()).toBe(1);

    await core.drain();
    expect(await moduleFiles(core)).toEqual([]);
    expect(core.memory.get(core.key(V, kind))).toBeUndefined();
    expect(await counter(core.metrics.invalidArtifacts, { kind, reason: 'malformed' })).toBe(1);
  });

  it('with cache.refusedTtl 0, a refused answer is not remembered: the next request asks again', async () => {
    const core = await startCore({ flags: { 'cache.refusedTtl': 0 } });
    core.source.on('info', V, info('v1.0.1'));
    for (const n of [1, 2]) {
      const r = await core.get(at('info'));
      expect(r.status).toBe(502);
      expect(oneLine(r)).toMatch(/it describes v1\.0\.1 instead of the requested v1\.0\.0; gomodproxy did not cache it$/);
      expect(r.headers['x-gomodproxy-cache']).toBeUndefined();
      expect(core.source.count()).toBe(n);
    }
  });
});

describe('Artifacts: not found', () => {
  const cases: { kind: 'info' | 'mod' | 'zip'; answer: 'not-found' | 'gone'; status: number }[] = [
    { kind: 'info', answer: 'not-found', status: 404 },
    { kind: 'mod', answer: 'not-found', status: 404 },
    { kind: 'zip', answer: 'not-found', status: 404 },
    { kind: 'info', answer: 'gone', status: 410 },
    { kind: 'zip', answer: 'gone', status: 410 },
  ];

  it.each(cases)('$kind $answer: $status, remembered for cache.notFoundTtl, and nothing is created in the data folder', async ({ kind, answer, status }) => {
    const core = await startCore({ flags: { 'cache.notFoundTtl': '30s' } });
    const err = notFound(`${MOD}@${V}`, answer);
    core.source.on(kind, V, err);
    const before = await core.tree();

    const first = await core.get(at(kind));
    expect(first.status).toBe(status);
    expect(oneLine(first)).toBe(err.message);
    expect(first.headers['cache-control']).toBe('public, max-age=30');

    const second = await core.get(at(kind));
    expect(second.status).toBe(status);
    expect(oneLine(second)).toBe(err.message);
    expect(second.headers['x-gomodproxy-cache']).toBe('negative');
    expect(second.headers['cache-control']).toMatch(/^public, max-age=([1-9]|[12]\d|30)$/);
    expect(second.headers.age).toMatch(/^\d+$/);
    expect(core.source.count()).toBe(1);

    await core.drain();
    const after = await core.tree();
    expect(after.files).toEqual(before.files);
    // At most the one folder of lock files, shared by every key; nothing named after the request.
    expect(after.dirs.filter((d) => !before.dirs.includes(d) && d !== 'state/locks')).toEqual([]);
    expect((await core.tree()).files.filter((f) => f.startsWith('state/locks/'))).toEqual([]);
  });

  it.each(['info', 'mod', 'zip'] as const)('%s not found with cache.notFoundTtl 0: asked again, and still nothing stored', async (kind) => {
    const core = await startCore({ flags: { 'cache.notFoundTtl': 0 } });
    const before = await core.tree();
    for (const n of [1, 2]) {
      const r = await core.get(at(kind));
      expect(r.status).toBe(404);
      expect(r.headers['x-gomodproxy-cache']).toBeUndefined();
      expect(r.headers['cache-control']).toBe('no-store');
      expect(core.source.count()).toBe(n);
    }
    await core.drain();
    const after = await core.tree();
    expect(after.files).toEqual(before.files);
    expect(after.dirs.filter((d) => !before.dirs.includes(d) && d !== 'state/locks')).toEqual([]);
  });

  it.each(['info', 'mod', 'zip'] as const)('%s: an upstream failure (502) is relayed and not remembered', async (kind) => {
    const core = await startCore();
    core.source.on(kind, V, broken());
    for (const n of [1, 2]) {
      const r = await core.get(at(kind));
      expect(r.status).toBe(502);
      expect(oneLine(r)).toBe('upstream fake answered 502 Bad Gateway');
      expect(core.source.count()).toBe(n);
    }
    await core.drain();
    expect(await moduleFiles(core)).toEqual([]);
  });
});

describe('Artifacts: zip misses', () => {
  it.each([
    { size: 'known', known: true },
    { size: 'unknown', known: false },
  ])(
    'streams a zip to several clients while it arrives (size $size), with one source call, then commits it byte-exact with its .ziphash',
    async ({ known }) => {
      const zip = await bigZip;
      const core = await startCore();
      const feed = new Feed(known ? zip.data.length : undefined);
      core.source.on('zip', V, () => Promise.resolve(feed.body));
      const parts = chunks(zip.data, 32 * 1024);
      const first = parts.slice(0, 4);
      expect(Buffer.concat(first).length).toBeGreaterThan(HOLDBACK_BYTES);
      feed.write(...first);

      const clients = [core.download(at('zip')), core.download(at('zip')), core.download(at('zip'))];
      for (const c of clients) {
        const head = await c.head;
        expect(head.status).toBe(200);
        expect(head.headers['x-gomodproxy-cache']).toBe('miss');
        expect(head.headers['content-type']).toBe('application/zip');
        expect(head.headers['content-length']).toBe(known ? String(zip.data.length) : undefined);
        await c.reached(1);
      }
      // Every client has bytes while most of the zip has not even left the upstream.
      for (const c of clients) expect(c.received).toBeLessThanOrEqual(Buffer.concat(first).length - HOLDBACK_BYTES);
      expect(await core.store.head(core.key(V, 'zip'))).toBeNull();
      expect(core.source.count('zip')).toBe(1);

      feed.write(...parts.slice(4));
      feed.end();
      for (const c of clients) expect((await c.body).equals(zip.data)).toBe(true);
      await core.drain();
      expect((await stored(core, core.key(V, 'zip')))?.equals(zip.data)).toBe(true);
      expect((await stored(core, `${MOD}/@v/${V}.ziphash`))?.toString()).toBe(zip.h1);
      expect(await moduleFiles(core)).toEqual([`${MOD}/@v/${V}.zip`, `${MOD}/@v/${V}.ziphash`]);

      const hit = await core.get(at('zip'));
      expect([hit.status, hit.headers['x-gomodproxy-cache'], hit.headers['content-length']]).toEqual([200, 'hit', String(zip.data.length)]);
      expect(hit.body.equals(zip.data)).toBe(true);
      expect(core.source.count()).toBe(1);
    },
  );

  it.each([
    { from: 'memory', flags: {} },
    { from: 'the store, streamed', flags: { 'cache.memory.maxItemBytes': '1KiB' } },
  ])('serves a stored zip from $from with its ETag, 304 and HEAD', async ({ flags }) => {
    const zip = await smallZip;
    const core = await startCore({ flags });
    core.source.on('zip', V, () => Promise.resolve({ stream: streamOf(zip.data), size: zip.data.length }));
    expect((await core.get(at('zip'))).body.equals(zip.data)).toBe(true);
    await core.drain();

    const hit = await core.get(at('zip'));
    expect([hit.status, hit.headers['x-gomodproxy-cache'], hit.headers['cache-control']]).toEqual([200, 'hit', IMMUTABLE]);
    expect(hit.body.equals(zip.data)).toBe(true);
    const etag = hit.headers.etag as string;
    expect(etag).toMatch(/^".+"$/);
    const again = await core.get(at('zip'), { 'if-none-match': etag });
    expect([again.status, again.body.length, again.headers.etag]).toEqual([304, 0, etag]);
    const head = await core.get(at('zip'), {}, 'HEAD');
    expect([head.status, head.headers['content-length'], head.body.length]).toEqual([200, String(zip.data.length), 0]);
    expect(core.source.count()).toBe(1);
  });

  const badZips: { name: string; make: () => Promise<Buffer>; line: RegExp }[] = [
    {
      name: 'a file outside module@version/',
      make: () =>
        rawZip([
          [`${MOD}@${V}/go.mod`, GOMOD],
          ['example.com/other@v1.0.0/x.go', 'package x\n'],
        ]),
      line: /^upstream fake sent an invalid zip for example\.com\/m@v1\.0\.0: .*example\.com\/other@v1\.0\.0\/x\.go.*; gomodproxy did not cache it$/,
    },
    {
      name: 'a truncated zip',
      make: async () => {
        const z = (await smallZip).data;
        return z.subarray(0, z.length - 40);
      },
      line: /^upstream fake sent an invalid zip for example\.com\/m@v1\.0\.0: .+; gomodproxy did not cache it$/,
    },
  ];

  it.each(badZips.flatMap((b) => [true, false].map((known) => ({ ...b, known, size: known ? 'known' : 'unknown' }))))(
    'refuses $name (size $size): 502 with one line before any byte, nothing stored, remembered',
    async ({ make, line, known }) => {
      const bad = await make();
      const core = await startCore();
      core.source.on('zip', V, () => Promise.resolve({ stream: streamOf(bad), size: known ? bad.length : undefined }));

      const first = await core.get(at('zip'));
      expect(first.status).toBe(502);
      const said = oneLine(first);
      expect(said).toMatch(/; it asks the upstream again in 60s$/);
      expect(said.replace(/; it asks the upstream again in 60s$/, '')).toMatch(line);

      const second = await core.get(at('zip'));
      expect(second.status).toBe(502);
      expect(second.headers['x-gomodproxy-cache']).toBe('refused');
      expect(oneLine(second)).toMatch(/; it asks the upstream again in \d+s$/);
      expect(core.source.count()).toBe(1);

      await core.drain();
      expect(await moduleFiles(core)).toEqual([]);
      expect(await counter(core.metrics.invalidArtifacts, { kind: 'zip', reason: 'invalid-zip' })).toBe(1);
    },
  );

  it('refuses a large invalid zip found out only at its end: the clients reading it see a failed transfer, nothing stored, remembered', async () => {
    const big = await rawZip([
      [`${MOD}@${V}/go.mod`, GOMOD],
      [`${MOD}@${V}/data.bin`, noise(320 * 1024)],
      ['example.com/other@v1.0.0/x.go', 'package x\n'],
    ]);
    const core = await startCore();
    const feed = new Feed(big.length);
    core.source.on('zip', V, () => Promise.resolve(feed.body));
    const parts = chunks(big, 32 * 1024);
    feed.write(...parts.slice(0, 4));
    const client = core.download(at('zip'));
    expect((await client.head).status).toBe(200);
    await client.reached(1);
    feed.write(...parts.slice(4));
    feed.end();
    await expect(client.body).rejects.toThrow();
    await core.drain();
    expect(await moduleFiles(core)).toEqual([]);
    const again = await core.get(at('zip'));
    expect([again.status, again.headers['x-gomodproxy-cache']]).toEqual([502, 'refused']);
    expect(oneLine(again)).toMatch(/^upstream fake sent an invalid zip for example\.com\/m@v1\.0\.0: .*example\.com\/other@v1\.0\.0\/x\.go/);
    expect(core.source.count()).toBe(1);
  });

  it.each([
    { size: 'known', known: true },
    { size: 'unknown', known: false },
  ])(
    'a source that dies mid-zip (size $size): the client transfer fails, never a short 200, nothing stored, the next request fetches again',
    async ({ known }) => {
      const zip = await bigZip;
      const core = await startCore();
      const size = known ? zip.data.length : undefined;
      const feed = new Feed(size);
      core.source.on('zip', V, () => Promise.resolve(feed.body));
      const parts = chunks(zip.data, 32 * 1024);
      feed.write(...parts.slice(0, 5));

      const client = core.download(at('zip'));
      expect((await client.head).status).toBe(200);
      await client.reached(1);
      feed.die();
      await expect(client.body).rejects.toThrow();
      expect(client.received).toBeLessThan(zip.data.length);

      await core.drain();
      expect(await moduleFiles(core)).toEqual([]);
      expect(await core.coordination.holder(core.key(V, 'zip'))).toBeNull();

      // Not remembered: the upstream is asked again, and this time the zip is whole.
      const retry = new Feed(size);
      retry.write(zip.data);
      retry.end();
      core.source.on('zip', V, () => Promise.resolve(retry.body));
      const r = await core.get(at('zip'));
      expect([r.status, r.headers['x-gomodproxy-cache']]).toEqual([200, 'miss']);
      expect(r.body.equals(zip.data)).toBe(true);
      expect(core.source.count('zip')).toBe(2);
      await core.drain();
      expect((await stored(core, core.key(V, 'zip')))?.equals(zip.data)).toBe(true);
    },
  );

  it('a request that arrives while a failed zip fetch is still cleaning up starts a fetch of its own instead of inheriting the failure', async () => {
    const zip = await bigZip;
    const core = await startCore();
    const feed = new Feed(zip.data.length);
    core.source.on('zip', V, () => Promise.resolve(feed.body));
    feed.write(...chunks(zip.data, 32 * 1024).slice(0, 5));
    const client = core.download(at('zip'));
    expect((await client.head).status).toBe(200);
    await client.reached(1);
    // The failed fetch stops in the middle of removing its staging file.
    const cleanup = deferred<void>();
    const reached = deferred<void>();
    core.store.abortHold = { reached: () => reached.resolve(), until: cleanup.promise };
    feed.die();
    await expect(client.body).rejects.toThrow();
    await reached.promise;
    core.store.abortHold = undefined;

    const retry = new Feed(zip.data.length);
    retry.write(zip.data);
    retry.end();
    core.source.on('zip', V, () => Promise.resolve(retry.body));
    const key = core.key(V, 'zip');
    const looked = core.store.emptyReads(key, core.store.emptyReadCount(key) + 1);
    const late = core.get(at('zip'));
    // The late request has found nothing stored and gone on into its miss.
    await looked;
    await turn();
    cleanup.resolve();
    const r = await late;
    expect([r.status, r.headers['x-gomodproxy-cache']]).toEqual([200, 'miss']);
    expect(r.body.equals(zip.data)).toBe(true);
    expect(core.source.count('zip')).toBe(2);
    await core.drain();
    expect((await stored(core, core.key(V, 'zip')))?.equals(zip.data)).toBe(true);
  });

  it('another process over the same data folder, arriving while a failed fetch still holds its lock and staging file, fetches the zip itself', async () => {
    const zip = await bigZip;
    const a = await startCore();
    const feed = new Feed(zip.data.length);
    a.source.on('zip', V, () => Promise.resolve(feed.body));
    // Less than the held-back tail: no reader anywhere has been sent a byte of it.
    feed.write(zip.data.subarray(0, HOLDBACK_BYTES / 2));
    const first = a.get(at('zip'));
    const cleanup = deferred<void>();
    const reached = deferred<void>();
    a.store.abortHold = { reached: () => reached.resolve(), until: cleanup.promise };
    await a.store.nextFreeBytes();
    await turn();
    feed.die();
    expect((await first).status).toBe(502);
    await reached.promise;

    // Process B counts its looks at the lock's holder.
    let looks = 0;
    let third: () => void = () => undefined;
    const lookedThrice = new Promise<void>((r) => (third = r));
    const b = await startCore({
      data: a.config.data,
      coordination: (data) => {
        const c = new HostCoordination(data);
        const holder = c.holder.bind(c);
        c.holder = (key) => {
          if (++looks === 3) third();
          return holder(key);
        };
        return c;
      },
    });
    b.source.on('zip', V, () => Promise.resolve({ stream: Readable.from([zip.data]), size: zip.data.length }));
    const late = b.get(at('zip'));
    // B has found the lock held, looked at the staging file, and polled it once more.
    await lookedThrice;
    cleanup.resolve();
    const r = await late;
    expect([r.status, r.headers['x-gomodproxy-cache']]).toEqual([200, 'miss']);
    expect(r.body.equals(zip.data)).toBe(true);
    expect(b.source.count('zip')).toBe(1);
    await b.drain();
    expect((await stored(b, b.key(V, 'zip')))?.equals(zip.data)).toBe(true);
  });

  it('a source whose zip body breaks while the fetch waits for room on the disk: 502 with one line, the error heard', async () => {
    const zip = await bigZip;
    const core = await startCore();
    const feed = new Feed(zip.data.length);
    feed.write(zip.data.subarray(0, 10_000));
    core.source.on('zip', V, () => Promise.resolve(feed.body));
    // The fetch has the upstream's body, and is still asking the disk for room when the body breaks.
    const room = deferred<void>();
    core.store.hold = room.promise;
    const asked = core.store.nextFreeBytes();
    const pending = core.get(at('zip'));
    pending.catch(() => undefined);
    await asked;
    let listeners: number;
    try {
      listeners = feed.stream.listenerCount('error');
    } finally {
      feed.die();
      await turn();
      core.store.hold = undefined;
      room.resolve();
    }
    // Someone must hear it: an unheard stream error is an uncaught exception, and the worker exits.
    expect(listeners).toBeGreaterThan(0);
    const r = await pending;
    expect(r.status).toBe(502);
    expect(oneLine(r)).toBe(
      `upstream fake broke off after 0 of ${zip.data.length} bytes of example.com/m@v1.0.0.zip; gomodproxy did not cache it; retry later`,
    );
    await core.drain();
    expect(await moduleFiles(core)).toEqual([]);
  });

  it('drain() settles only once a zip fetch has ended, not when its clients could start reading', async () => {
    const zip = await bigZip;
    const core = await startCore();
    const feed = new Feed(zip.data.length);
    core.source.on('zip', V, () => Promise.resolve(feed.body));
    const parts = chunks(zip.data, 32 * 1024);
    feed.write(...parts.slice(0, 4));
    const client = core.download(at('zip'));
    await client.reached(1);

    let drained = false;
    const draining = core.artifacts.drain().then(() => {
      drained = true;
    });
    await turn();
    await turn();
    // The upstream has not sent the rest: the fetch cannot have ended.
    expect(drained).toBe(false);
    feed.write(...parts.slice(4));
    feed.end();
    await draining;
    expect((await stored(core, core.key(V, 'zip')))?.equals(zip.data)).toBe(true);
    expect((await client.body).equals(zip.data)).toBe(true);
  });
});

describe('Artifacts: storage space', () => {
  it.each([
    { size: 'known', known: true },
    { size: 'unknown (room for the largest zip is claimed)', known: false },
  ])('a zip larger than the room left is 507 with one line before any header, and the source body is discarded (size $size)', async ({ known }) => {
    const zip = await bigZip;
    const core = await startCore({ flags: { 'cache.minFree': '1MiB' } });
    core.store.free = 2 ** 20 + 100 * 1024;
    const feed = new Feed(known ? zip.data.length : undefined);
    feed.write(zip.data.subarray(0, 32 * 1024));
    core.source.on('zip', V, () => Promise.resolve(feed.body));

    const r = await core.get(at('zip'));
    expect(r.status).toBe(507);
    expect(oneLine(r)).toMatch(
      new RegExp(
        `^gomodproxy cannot store example\\.com/m@v1\\.0\\.0\\.zip \\(${known ? '320 KiB' : '500 MiB'}\\): its disk has 1\\.1 MiB free and keeps 1\\.0 MiB in reserve \\(cache\\.minFree\\); nothing was cached; its operator must free space in the data folder, then retry$`,
      ),
    );
    expect(feed.stream.destroyed).toBe(true);
    await core.drain();
    expect(await moduleFiles(core)).toEqual([]);
    expect(await counter(core.metrics.storageErrors, { op: 'write', reason: 'no-space' })).toBe(1);

    // Not remembered: with room again, the next request fetches and keeps it.
    core.store.free = 2 ** 40;
    const retry = new Feed(zip.data.length);
    retry.write(zip.data);
    retry.end();
    core.source.on('zip', V, () => Promise.resolve(retry.body));
    const ok = await core.get(at('zip'));
    expect(ok.status).toBe(200);
    expect(ok.body.equals(zip.data)).toBe(true);
    expect(core.source.count('zip')).toBe(2);
    await core.drain();
    expect((await stored(core, core.key(V, 'zip')))?.equals(zip.data)).toBe(true);
  });

  it.each([
    { kind: 'info' as const, upstream: info(V) },
    { kind: 'mod' as const, upstream: GOMOD },
  ])('a small $kind is served (200) but not stored when the disk has no room beyond its reserve', async ({ kind, upstream }) => {
    const core = await startCore({ flags: { 'cache.minFree': '1MiB' } });
    core.store.free = 2 ** 20;
    core.source.on(kind, V, upstream);
    const r = await core.get(at(kind));
    expect([r.status, r.headers['x-gomodproxy-cache']]).toEqual([200, 'miss']);
    expect(r.body.equals(upstream)).toBe(true);
    await core.drain();
    expect(await moduleFiles(core)).toEqual([]);
    expect(await counter(core.metrics.storageErrors, { op: 'write', reason: 'no-space' })).toBe(1);
    // This process still answers it from memory, without asking again.
    const again = await core.get(at(kind));
    expect([again.status, again.headers['x-gomodproxy-cache']]).toEqual([200, 'hit']);
    expect(core.source.count()).toBe(1);
  });
});

describe('Artifacts: immutability', () => {
  it('once stored, a source that later answers different bytes is never asked and changes nothing served', async () => {
    const zip = await smallZip;
    const core = await startCore();
    core.source
      .on('info', V, info(V))
      .on('mod', V, GOMOD)
      .on('zip', V, () => Promise.resolve({ stream: streamOf(zip.data), size: zip.data.length }));
    const first: Record<string, { body: Buffer; etag: string | undefined }> = {};
    for (const kind of ['info', 'mod', 'zip'] as const) {
      const r = await core.get(at(kind));
      expect(r.status).toBe(200);
      first[kind] = { body: r.body, etag: r.headers.etag };
    }
    await core.drain();

    // The upstream is re-tagged: every answer differs now.
    const retagged = await moduleZip(V, { 'go.mod': GOMOD, 'm.go': 'package m // moved\n' });
    const later = new FakeSource();
    later
      .on('info', V, info(V, '2030-01-01T00:00:00Z'))
      .on('mod', V, Buffer.from('module example.com/m\n\ngo 1.22\n'))
      .on('zip', V, () => Promise.resolve({ stream: streamOf(retagged.data), size: retagged.data.length }));
    core.source.on('info', V, info(V, '2030-01-01T00:00:00Z'));
    // A restarted process over the same data folder, whose upstream now says otherwise.
    const restarted = await startCore({ data: core.config.data, sources: [later] });
    for (const c of [core, restarted]) {
      for (const kind of ['info', 'mod', 'zip'] as const) {
        c.memory.delete(c.key(V, kind));
        const r = await c.get(at(kind));
        expect([kind, r.status, r.headers['x-gomodproxy-cache']]).toEqual([kind, 200, 'hit']);
        expect(r.body.equals(first[kind]?.body as Buffer)).toBe(true);
        if (kind !== 'zip') expect(r.headers.etag).toBe(first[kind]?.etag);
      }
    }
    expect(core.source.count()).toBe(3);
    expect(later.count()).toBe(0);
    expect((await stored(core, core.key(V, 'zip')))?.equals(zip.data)).toBe(true);
  });
});

/** A zip body that has all its bytes already. */
function streamOf(data: Buffer): Feed['stream'] {
  const f = new Feed(data.length);
  f.write(data);
  f.end();
  return f.stream;
}
