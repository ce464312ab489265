// The cache core as one of several instances: a zip fetched by an instance on another host is
// waited for (Coordination.released) and then read from the store, with no fetch of our own;
// one that outlasts cache.followTimeout is fetched here too; a leader that lost its lock does not
// commit; invalidation drops mutable answers (and, with a version, artifacts) from memory, and
// the admin API refuses anyone when no sign-in method is configured. Coordination is the host's
// lock files with another instance's hold on top, as Redis would report it.
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { HostCoordination, type FetchLock, type HolderInfo } from '../../src/cluster/coordination.js';
import { cleanupAll } from '../helpers/tmp.js';
import { MOD, deferred, info, moduleZip, startCore, type Deferred } from './cachecore.js';

afterEach(cleanupAll);

const V = 'v1.0.0';
const GOMOD = Buffer.from('module example.com/m\n\ngo 1.21\n');
const zipPath = `/${MOD}/@v/${V}.zip`;

/** Host coordination, plus keys that an instance on another host holds until the test lets go. */
class Elsewhere extends HostCoordination {
  private readonly held = new Map<string, Deferred<void>>();
  readonly waited: string[] = [];
  private readonly waits: ((key: string) => void)[] = [];
  lose = false;

  holdRemotely(key: string): void {
    this.held.set(key, deferred<void>());
  }

  letGo(key: string): void {
    this.held.get(key)?.resolve();
    this.held.delete(key);
  }

  /** Resolves once a follower waits on key. */
  followerWaits(key: string): Promise<void> {
    if (this.waited.includes(key)) return Promise.resolve();
    return new Promise((resolve) => this.waits.push((k) => k === key && resolve()));
  }

  override async tryLock(key: string, info?: { staging?: string }): Promise<FetchLock | null> {
    if (this.held.has(key)) return null;
    const lock = await super.tryLock(key, info);
    if (!lock || !this.lose) return lock;
    // As a holder whose lock expired and went to another instance finds it.
    return { ...lock, stillHeld: () => Promise.resolve(false) };
  }

  override async holder(key: string): Promise<HolderInfo | null> {
    return this.held.has(key) ? { host: 'another-host.example' } : super.holder(key);
  }

  override async released(key: string, timeoutMs: number): Promise<void> {
    const h = this.held.get(key);
    if (!h) return super.released(key, timeoutMs);
    this.waited.push(key);
    for (const w of this.waits) w(key);
    await Promise.race([h.promise, new Promise((r) => setTimeout(r, timeoutMs))]);
  }
}

describe('several instances', () => {
  it('a zip another host is fetching is waited for, then read from the store: no fetch here', async () => {
    let co!: Elsewhere;
    const core = await startCore({ coordination: (d) => (co = new Elsewhere(d)) });
    const zip = await moduleZip(V, { 'go.mod': GOMOD, 'm.go': 'package m\n' });
    core.source.on('zip', V, { stream: (await import('node:stream')).Readable.from([zip.data]), size: zip.data.length });
    const key = core.key(V, 'zip');
    co.holdRemotely(key);
    const got = core.get(zipPath);
    await co.followerWaits(key);
    // The other instance commits, then lets go (Redis publishes the release).
    await core.store.put(key, zip.data);
    co.letGo(key);
    const res = await got;
    expect(res.status).toBe(200);
    expect(res.body.equals(zip.data)).toBe(true);
    expect(core.source.count()).toBe(0);
  });

  it('a fetch on another host that outlasts cache.followTimeout is made here too', async () => {
    let co!: Elsewhere;
    const core = await startCore({ flags: { 'cache.followTimeout': '50ms' }, coordination: (d) => (co = new Elsewhere(d)) });
    const zip = await moduleZip(V, { 'go.mod': GOMOD, 'm.go': 'package m\n' });
    core.source.on('zip', V, { stream: (await import('node:stream')).Readable.from([zip.data]), size: zip.data.length });
    const key = core.key(V, 'zip');
    co.holdRemotely(key);
    const res = await core.get(zipPath);
    expect(res.status).toBe(200);
    expect(res.body.equals(zip.data)).toBe(true);
    expect(core.source.count()).toBe(1);
    expect(co.waited).toContain(key);
    await core.drain();
    expect((await core.store.head(key))?.size).toBe(zip.data.length);
  });

  it('a leader whose lock went to another holder serves its checked bytes and commits them only if nobody else has', async () => {
    let co!: Elsewhere;
    const core = await startCore({ coordination: (d) => (co = new Elsewhere(d)) });
    co.lose = true;
    const zip = await moduleZip(V, { 'go.mod': GOMOD, 'm.go': 'package m\n' });
    core.source.on('zip', V, { stream: (await import('node:stream')).Readable.from([zip.data]), size: zip.data.length });
    const res = await core.get(zipPath);
    expect(res.status).toBe(200);
    expect(res.body.equals(zip.data)).toBe(true);
    await core.drain();
    expect((await core.store.head(core.key(V, 'zip')))?.size).toBe(zip.data.length);
  });

  it('a leader finding a commit in place when it is done keeps that one: immutable means never replaced', async () => {
    let co!: Elsewhere;
    const core = await startCore({ coordination: (d) => (co = new Elsewhere(d)) });
    co.lose = true;
    const first = await moduleZip(V, { 'go.mod': GOMOD, 'm.go': 'package m // first\n' });
    const late = await moduleZip(V, { 'go.mod': GOMOD, 'm.go': 'package m // late\n' });
    const { Readable } = await import('node:stream');
    const gate = deferred<void>();
    const key = core.key(V, 'zip');
    core.source.on('zip', V, async () => {
      // The newer holder commits while we are still fetching.
      await core.store.put(key, first.data);
      gate.resolve();
      return { stream: Readable.from([late.data]), size: late.data.length };
    });
    const res = await core.get(zipPath);
    await gate.promise;
    expect(res.status).toBe(200);
    await core.drain();
    const kept = await core.store.getBuffer(key, 1 << 20);
    expect(kept?.data.equals(first.data)).toBe(true);
    expect(co.lose).toBe(true);
  });
});

describe('invalidation', () => {
  it('drops the matching mutable answers from memory and the store; other modules keep theirs', async () => {
    const core = await startCore({ flags: { 'cache.ttl': '1h' } });
    core.source.on('list', undefined, Buffer.from('v1.0.0\n'));
    expect((await core.get(`/${MOD}/@v/list`)).text).toBe('v1.0.0\n');
    core.source.on('list', undefined, Buffer.from('v1.0.0\nv1.1.0\n'));
    // Fresh for an hour: the new tag is not seen...
    expect((await core.get(`/${MOD}/@v/list`)).text).toBe('v1.0.0\n');
    await core.drain();
    // ...until it is invalidated; a pattern that matches nothing changes nothing.
    expect(await core.app.invalidations.invalidate({ pattern: 'example.com/other' })).toEqual({ stored: 0 });
    expect((await core.get(`/${MOD}/@v/list`)).text).toBe('v1.0.0\n');
    expect(await core.app.invalidations.invalidate({ pattern: 'example.com/*' })).toEqual({ stored: 1 });
    expect((await core.get(`/${MOD}/@v/list`)).text).toBe('v1.0.0\nv1.1.0\n');
    expect(core.source.calls.filter((c) => c.kind === 'list')).toHaveLength(2);
    // A plain path looks in its own folder of answers only, and finds the module and those below it.
    await core.drain();
    core.source.on('list', undefined, Buffer.from('v1.0.0\nv1.1.0\nv1.2.0\n'));
    expect(await core.app.invalidations.invalidate({ pattern: 'example.com' })).toEqual({ stored: 1 });
    expect((await core.get(`/${MOD}/@v/list`)).text).toBe('v1.0.0\nv1.1.0\nv1.2.0\n');
  });

  it('with a version, that version leaves every memory cache too (a purge)', async () => {
    const core = await startCore();
    core.source.on('info', V, info(V));
    expect((await core.get(`/${MOD}/@v/${V}.info`)).status).toBe(200);
    const key = core.key(V, 'info');
    expect(core.memory.get(key)).toBeDefined();
    await core.app.invalidations.invalidate({ pattern: MOD, version: 'v1.0.1' });
    expect(core.memory.get(key)).toBeDefined();
    await core.app.invalidations.invalidate({ pattern: MOD });
    expect(core.memory.get(key)).toBeDefined();
    await core.app.invalidations.invalidate({ pattern: MOD, version: V });
    expect(core.memory.get(key)).toBeUndefined();
  });

  it('the admin API refuses everyone, in JSON, when no sign-in method is configured', async () => {
    const core = await startCore();
    const res = await request(`${core.url}/-/api/invalidate`, { method: 'POST', body: JSON.stringify({ pattern: MOD }) });
    expect(res.statusCode).toBe(401);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    const body = (await res.body.json()) as { error: string };
    expect(body.error).toMatch(/admin API needs a signed-in administrator/);
    // Other methods still get the protocol's one line.
    const put = await request(`${core.url}/${MOD}/@v/list`, { method: 'PUT', body: 'x' });
    expect(put.statusCode).toBe(405);
    await put.body.dump();
  });
});
