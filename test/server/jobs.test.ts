// Jobs and sync without a server: which versions a sync selects (Go's order, per major version,
// +incompatible and pre-releases included), which cached modules its patterns watch, and job
// records that a second store over the same folder (another worker, another instance) reads,
// including a job whose runner died, and a history bounded without dropping a running job.
import { describe, expect, it } from 'vitest';
import { FsBlobStore } from '../../src/cache/fs.js';
import { JobStore, isJobId, newJobId, type JobRecord } from '../../src/server/jobs.js';
import { isModulePathPattern, selectVersions } from '../../src/server/sync.js';
import { ModuleIndex } from '../../src/catalog/index.js';
import pino from 'pino';
import { makeTempDir } from '../helpers/tmp.js';

describe('selectVersions', () => {
  const list = [
    'v1.0.0',
    'v1.10.0',
    'v1.9.0',
    'v1.10.1-rc.1',
    'v0.9.0',
    'v0.10.0',
    'v2.0.0+incompatible',
    'v2.1.0+incompatible',
    'v3.0.0-beta.2',
    'v3.0.0-beta.10',
    'v3.0.0-alpha',
    'v1.2.3-0.20230101000000-abcdefabcdef',
    'not-a-version',
    'v1.0.0',
  ];

  it('latest selects nothing itself: @latest is chosen by the go command rules, through the app', () => {
    expect(selectVersions(list, 'latest')).toEqual([]);
  });

  it('all: every listed version once, newest first; no pseudo-versions or junk', () => {
    expect(selectVersions(list, 'all')).toEqual([
      'v3.0.0-beta.10',
      'v3.0.0-beta.2',
      'v3.0.0-alpha',
      'v2.1.0+incompatible',
      'v2.0.0+incompatible',
      'v1.10.1-rc.1',
      'v1.10.0',
      'v1.9.0',
      'v1.0.0',
      'v0.10.0',
      'v0.9.0',
    ]);
  });

  it('newest N per major: numbers compared as numbers, a pre-release below its release, +incompatible by its major', () => {
    expect(selectVersions(list, { newest: 2 })).toEqual([
      'v3.0.0-beta.10',
      'v3.0.0-beta.2',
      'v2.1.0+incompatible',
      'v2.0.0+incompatible',
      'v1.10.1-rc.1',
      'v1.10.0',
      'v0.10.0',
      'v0.9.0',
    ]);
    expect(selectVersions(list, { newest: 1 })).toEqual(['v3.0.0-beta.10', 'v2.1.0+incompatible', 'v1.10.1-rc.1', 'v0.10.0']);
    expect(selectVersions(['v1.1.0', 'v1.1.0-rc.1', 'v1.0.0'], { newest: 2 })).toEqual(['v1.1.0', 'v1.1.0-rc.1']);
    expect(selectVersions([], { newest: 3 })).toEqual([]);
  });
});

describe('watched modules', () => {
  it('a plain module path is watched before it is cached; a glob is not a module', () => {
    expect(isModulePathPattern('github.com/acme/tool')).toBe(true);
    expect(isModulePathPattern('github.com/acme/*')).toBe(false);
    expect(isModulePathPattern('corp')).toBe(false);
  });

  it('the cached modules matching GOPRIVATE-style patterns, from the module index (escaped paths unescaped)', async () => {
    const store = new FsBlobStore(await makeTempDir('sync-modules'));
    for (const key of [
      'github.com/acme/!tool/@v/v1.0.0.mod',
      'github.com/acme/!tool/@v/v1.1.0.mod',
      'github.com/acme/lib/@v/v0.1.0.mod',
      'github.com/acme/lib/@v/v0.1.0.info',
      'github.com/other/x/@v/v1.0.0.mod',
      'example.com/only-info/@v/v1.0.0.info',
      'mutable/github.com/acme/gone/@v/list',
      'state/jobs/20260101T000000.000Z-00000000.json',
    ]) {
      await store.put(key, Buffer.from('x'));
    }
    const modules = new ModuleIndex({ store, log: pino({ level: 'silent' }), rescanMs: 0 });
    await modules.ready();
    expect(modules.modulesMatching(['github.com/acme/*'])).toEqual(['github.com/acme/Tool', 'github.com/acme/lib']);
    expect(modules.modulesMatching(['github.com', 'example.com'])).toEqual(['github.com/acme/Tool', 'github.com/acme/lib', 'github.com/other/x']);
    expect(modules.modulesMatching(['github.com/acme/Tool'])).toEqual(['github.com/acme/Tool']);
    expect(modules.modulesMatching([])).toEqual([]);
  });
});

function record(id: string, state: JobRecord['state'], updated = new Date()): JobRecord {
  return {
    id,
    kind: 'prefetch',
    state,
    what: 'prefetch 1 module',
    runner: 'gmp-test host pid 1',
    created: updated.toISOString(),
    updated: updated.toISOString(),
    progress: { done: 1, total: 2, bytes: 10, fetched: 1, present: 0, failed: 0 },
    failures: [],
    failuresOmitted: 0,
  };
}

describe('job records', () => {
  it('ids sort as their jobs were made and are safe in a URL and a store key', () => {
    const a = newJobId(new Date('2026-01-02T03:04:05.006Z'));
    const b = newJobId(new Date('2026-01-02T03:04:05.007Z'));
    expect(a).toMatch(/^20260102T030405\.006Z-[0-9a-f]{8}$/);
    expect([b, a].sort()).toEqual([a, b]);
    expect(isJobId(a)).toBe(true);
    expect(isJobId('../../etc/passwd')).toBe(false);
  });

  it('a record one process writes, another store over the same folder reads, updates included', async () => {
    const dir = await makeTempDir('jobs-store');
    const here = new JobStore(new FsBlobStore(dir));
    const there = new JobStore(new FsBlobStore(dir));
    const r = record(newJobId(), 'running');
    await here.put(r);
    expect(await there.get(r.id)).toEqual(r);
    const done = { ...r, state: 'succeeded' as const, finished: new Date().toISOString(), progress: { ...r.progress, done: 2, fetched: 2 } };
    await here.put(done);
    expect(await there.get(r.id)).toEqual(done);
    expect(await there.get(newJobId())).toBeNull();
    expect(await there.get('not-an-id')).toBeNull();
  });

  it('a job whose runner stopped writing it is reported failed, with the runner named', async () => {
    const dir = await makeTempDir('jobs-abandoned');
    const store = new JobStore(new FsBlobStore(dir), 60_000);
    const r = record(newJobId(), 'running', new Date(Date.now() - 120_000));
    await store.put(r);
    const seen = await new JobStore(new FsBlobStore(dir), 60_000).get(r.id);
    expect(seen?.state).toBe('failed');
    expect(seen?.error).toMatch(/^abandoned: gmp-test host pid 1 stopped updating it at /);
  });

  it('lists newest first, by kind, and keeps the newest N records, never one still running', async () => {
    const dir = await makeTempDir('jobs-prune');
    const store = new JobStore(new FsBlobStore(dir));
    const t0 = Date.parse('2026-01-01T00:00:00.000Z');
    const ids = Array.from({ length: 6 }, (_, i) => newJobId(new Date(t0 + i * 1000)));
    // The oldest job still runs (a long prefetch among many short sync runs).
    await store.put(record(ids[0]!, 'running'));
    for (const id of ids.slice(1)) await store.put({ ...record(id, 'succeeded'), kind: 'sync', name: 'n' });
    expect((await store.list(3)).map((r) => r.id)).toEqual([ids[5], ids[4], ids[3]]);
    expect((await store.list(10, { kind: 'prefetch' })).map((r) => r.id)).toEqual([ids[0]]);
    expect(await store.prune(2)).toBe(3);
    expect(await store.ids()).toEqual([ids[5], ids[4], ids[0]]);
  });
});
