// Garbage collection, rule by rule, over a real disk store in a temp folder: which files go, in
// what order, and what stays and why. Times are the store's mtimes (set by the test) and served
// records the test writes; the collector's clock is the test's, so nothing depends on how long
// anything takes.
import { spawn } from 'node:child_process';
import { mkdir, readFile, readdir, stat, utimes } from 'node:fs/promises';
import { hostname } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { ListedBlob } from '../../src/cache/blobstore.js';
import { FsBlobStore } from '../../src/cache/fs.js';
import { artifactKey, localListKey, zipHashKey } from '../../src/cache/keys.js';
import {
  GarbageCollector,
  GC_LOCK_KEY,
  GcBusyError,
  PinStore,
  SERVED_FOLDED_KEY,
  type GcDeps,
  type GcRemoved,
  type GcReport,
} from '../../src/catalog/index.js';
import { HostCoordination } from '../../src/cluster/coordination.js';
import { escapePath } from '../../src/module/index.js';
import { cleanupAll, makeTempDir } from '../helpers/tmp.js';

afterAll(cleanupAll);

const DAY = 86_400_000;
/** The collector's "now": far from the real clock on purpose, so only the test's times count. */
const NOW = Date.UTC(2030, 0, 1);

/** A store whose listing can lie about one file's mtime (a file stored again after the listing). */
class TestStore extends FsBlobStore {
  staleListing = new Set<string>();
  override async *listStats(prefix: string): AsyncIterable<ListedBlob> {
    for await (const b of super.listStats(prefix)) yield this.staleListing.has(b.key) ? { ...b, mtimeMs: b.mtimeMs - 5000 } : b;
  }
}

interface VersionSpec {
  module?: string;
  version: string;
  /** Zip bytes; 0: no zip. */
  zip?: number;
  /** Days before NOW the files were stored. */
  storedDaysAgo?: number;
  origin?: string;
}

class Fixture {
  readonly coordination: HostCoordination;
  readonly pins: PinStore;
  removedEvents: GcRemoved[][] = [];
  refetch: (modulePath: string) => string | null = () => null;
  offline: string | null = null;
  served: GcDeps['served'];
  sweeps = 0;

  constructor(
    readonly root: string,
    readonly store: TestStore,
    configPins: string[] = [],
  ) {
    this.coordination = new HostCoordination(root);
    this.pins = new PinStore(store, this.coordination, configPins);
  }

  static async create(configPins: string[] = []): Promise<Fixture> {
    const root = await makeTempDir('gc');
    return new Fixture(root, new TestStore(root), configPins);
  }

  gc(policy: { maxBytes?: number | null; maxAgeMs?: number | null } = {}): GarbageCollector {
    const deps: GcDeps = {
      store: this.store,
      coordination: this.coordination,
      refetchable: (p) => this.refetch(p),
      offline: this.offline,
      pins: this.pins,
      policy: { maxBytes: policy.maxBytes ?? null, maxAgeMs: policy.maxAgeMs ?? null },
      onRemoved: (entries) => {
        this.removedEvents.push(entries);
      },
      sweepLeftovers: () => {
        this.sweeps++;
        return Promise.resolve({ files: 0, bytes: 0 });
      },
      now: () => NOW,
    };
    if (this.served) deps.served = this.served;
    return new GarbageCollector(deps);
  }

  async run(policy: { maxBytes?: number | null; maxAgeMs?: number | null; dryRun?: boolean } = {}): Promise<GcReport> {
    const r = await this.gc(policy).run({ dryRun: policy.dryRun ?? false });
    if (!r) throw new Error('the run was skipped');
    return r;
  }

  /** Writes a version's files (.info, .mod, and a zip with its hash when zip > 0), stored `storedDaysAgo` before NOW. */
  async add(v: VersionSpec): Promise<void> {
    const mod = escapePath(v.module ?? 'example.com/m');
    const when = new Date(NOW - (v.storedDaysAgo ?? 50) * DAY);
    const files: [string, Buffer][] = [
      [artifactKey(mod, v.version, 'info'), Buffer.from(JSON.stringify({ Version: v.version, Time: '2024-01-01T00:00:00Z' }))],
      [artifactKey(mod, v.version, 'mod'), Buffer.from(`module ${v.module ?? 'example.com/m'}\n`)],
    ];
    if (v.zip) {
      files.push([artifactKey(mod, v.version, 'zip'), Buffer.alloc(v.zip, 7)], [zipHashKey(mod, v.version), Buffer.from('h1:abc=')]);
    }
    if (v.origin) files.push([`${mod}/@v/${v.version}.origin`, Buffer.from(JSON.stringify({ source: v.origin }))]);
    for (const [key, data] of files) {
      await this.store.put(key, data);
      await utimes(this.store.localPath(key), when, when);
    }
    await this.store.put(localListKey(mod), Buffer.from('list placeholder\n'));
  }

  /** A served record as another process would have written it: key -> days before NOW. */
  async servedRecord(name: string, times: Record<string, number>, owner = { instance: 'i', host: 'elsewhere', pid: 1 }): Promise<void> {
    const served = Object.fromEntries(Object.entries(times).map(([k, d]) => [k, NOW - d * DAY]));
    const writtenMs = Math.max(...Object.values(served));
    await this.store.put(`state/served/${name}.json`, Buffer.from(JSON.stringify({ format: 1, owner, writtenMs, served })));
  }

  async files(): Promise<string[]> {
    const out: string[] = [];
    for await (const k of this.store.list('')) if (!k.startsWith('state/')) out.push(k);
    return out.sort();
  }
}

/** The pid of a process that has exited. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '']);
  await new Promise((r) => child.once('exit', r));
  return child.pid as number;
}

const zipOf = (v: string, m = 'example.com/m'): string => artifactKey(escapePath(m), v, 'zip');
const infoOf = (v: string, m = 'example.com/m'): string => artifactKey(escapePath(m), v, 'info');
const modOf = (v: string, m = 'example.com/m'): string => artifactKey(escapePath(m), v, 'mod');
const removedKeys = (r: GcReport): string[] => r.removed.map((e) => e.key);

describe('garbage collection: size (least recently served first)', () => {
  it('evicts the least recently served zips, and their hashes, until the module data is under maxBytes', async () => {
    const f = await Fixture.create();
    for (const v of ['v1.0.0', 'v1.1.0', 'v1.2.0', 'v1.3.0']) await f.add({ version: v, zip: 10_000, storedDaysAgo: 40 });
    // Served: v1.2.0 longest ago, then v1.0.0; the others recently. Two records, merged by the latest time.
    await f.servedRecord('a', { [zipOf('v1.0.0')]: 20, [zipOf('v1.1.0')]: 1, [zipOf('v1.2.0')]: 30 });
    await f.servedRecord('b', { [zipOf('v1.3.0')]: 2, [zipOf('v1.2.0')]: 25 });
    const before = (await f.run({ dryRun: true })).before.bytes;

    const r = await f.run({ maxBytes: before - 15_000 });

    expect(removedKeys(r)).toEqual([zipOf('v1.2.0'), zipHashKey('example.com/m', 'v1.2.0'), zipOf('v1.0.0'), zipHashKey('example.com/m', 'v1.0.0')]);
    expect(r.removed.every((e) => e.why === 'size')).toBe(true);
    expect(r.evicted).toMatchObject({ zip: 2, ziphash: 2, info: 0, mod: 0 });
    expect(r.versions).toEqual({ zipOnly: 2, whole: 0 });
    expect(r.after.underLimit).toBe(true);
    expect(r.after.bytes).toBe(before - r.freedBytes);
    // Their .info and .mod stay: the versions were asked for recently enough, and only zips had to go.
    const left = await f.files();
    expect(left).toContain(infoOf('v1.2.0'));
    expect(left).toContain(modOf('v1.0.0'));
    expect(left).not.toContain(zipOf('v1.2.0'));
    expect(f.removedEvents.flat().map((e) => `${e.version} ${e.kind}`)).toEqual(['v1.2.0 zip', 'v1.2.0 ziphash', 'v1.0.0 zip', 'v1.0.0 ziphash']);
  });

  it('counts the time a file was stored as served (a miss is served as it is stored)', async () => {
    const f = await Fixture.create();
    await f.add({ version: 'v1.0.0', zip: 10_000, storedDaysAgo: 1 });
    await f.add({ version: 'v1.1.0', zip: 10_000, storedDaysAgo: 9 });
    // Served 5 days ago, but v1.0.0 was stored (fetched) more recently than that.
    await f.servedRecord('a', { [zipOf('v1.0.0')]: 5, [zipOf('v1.1.0')]: 3 });
    const r = await f.run({ maxBytes: (await f.run({ dryRun: true })).before.bytes - 5_000 });
    expect(removedKeys(r)).toEqual([zipOf('v1.1.0'), zipHashKey('example.com/m', 'v1.1.0')]);
  });

  it('then, still over the limit, the .info and .mod of versions without a zip, .info first, and rewrites the list', async () => {
    const f = await Fixture.create();
    await f.add({ version: 'v1.0.0', zip: 0, storedDaysAgo: 30 });
    await f.add({ version: 'v1.1.0', zip: 0, storedDaysAgo: 10 });
    await f.add({ version: 'v1.2.0', zip: 2000, storedDaysAgo: 20 });
    const before = (await f.run({ dryRun: true })).before.bytes;
    // The zip (2000 bytes and a 7-byte hash) is not enough; the oldest metadata (~80 bytes) is.
    const r = await f.run({ maxBytes: before - 2050 });
    // The zip first (however recent), then the oldest version's metadata.
    expect(removedKeys(r)).toEqual([zipOf('v1.2.0'), zipHashKey('example.com/m', 'v1.2.0'), infoOf('v1.0.0'), modOf('v1.0.0')]);
    expect(r.versions).toEqual({ zipOnly: 1, whole: 1 });
    expect(await readFile(path.join(f.root, 'example.com/m/@v/list'), 'utf8')).toBe('v1.1.0\nv1.2.0\n');
  });
});

describe('garbage collection: age (maxAge since last served)', () => {
  it('removes every version nobody asked for within maxAge, zip and metadata, even under maxBytes', async () => {
    const f = await Fixture.create();
    await f.add({ version: 'v1.0.0', zip: 1000, storedDaysAgo: 100 });
    await f.add({ version: 'v1.1.0', zip: 1000, storedDaysAgo: 100 });
    await f.add({ version: 'v1.2.0', zip: 1000, storedDaysAgo: 100 });
    // v1.1.0's .mod was asked for 3 days ago (a go.mod walk), its zip long ago; v1.2.0 not at all since stored.
    await f.servedRecord('a', { [modOf('v1.1.0')]: 3, [zipOf('v1.1.0')]: 80, [zipOf('v1.0.0')]: 2 });

    const r = await f.run({ maxAgeMs: 30 * DAY, maxBytes: 10 ** 9 });

    expect(r.removed.every((e) => e.why === 'age')).toBe(true);
    // v1.1.0 loses its zip (not served for 80 days) but keeps .info/.mod (asked for 3 days ago); v1.2.0 goes entirely.
    expect(removedKeys(r).sort()).toEqual(
      [
        zipOf('v1.1.0'),
        zipHashKey('example.com/m', 'v1.1.0'),
        zipOf('v1.2.0'),
        zipHashKey('example.com/m', 'v1.2.0'),
        infoOf('v1.2.0'),
        modOf('v1.2.0'),
      ].sort(),
    );
    expect(r.versions).toEqual({ zipOnly: 1, whole: 1 });
    expect(await readFile(path.join(f.root, 'example.com/m/@v/list'), 'utf8')).toBe('v1.0.0\nv1.1.0\n');
  });

  it('a module left with no version loses its list and its folders; other empty folders go too', async () => {
    const f = await Fixture.create();
    await f.add({ module: 'example.com/gone', version: 'v1.0.0', zip: 1000, storedDaysAgo: 100 });
    await f.add({ module: 'example.com/stays', version: 'v1.0.0', zip: 1000, storedDaysAgo: 1 });
    await mkdir(path.join(f.root, 'example.com/empty/sub/@v'), { recursive: true });
    await mkdir(path.join(f.root, 'mutable/example.com/old/@v'), { recursive: true });

    const r = await f.run({ maxAgeMs: 30 * DAY });

    expect(await f.files()).toEqual(
      [
        infoOf('v1.0.0', 'example.com/stays'),
        modOf('v1.0.0', 'example.com/stays'),
        zipOf('v1.0.0', 'example.com/stays'),
        zipHashKey('example.com/stays', 'v1.0.0'),
        localListKey('example.com/stays'),
      ].sort(),
    );
    const dirs = await readdir(path.join(f.root, 'example.com'));
    expect(dirs.sort()).toEqual(['stays']);
    await expect(stat(path.join(f.root, 'mutable'))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(r.emptyFolders).toBeGreaterThanOrEqual(6);
    expect(f.sweeps).toBe(1);
  });
});

describe('garbage collection: what is never evicted', () => {
  it('pinned versions, by a config glob and by a pin @version added at run time, even over the limit', async () => {
    const f = await Fixture.create(['example.com/team/*']);
    await f.add({ module: 'example.com/team/a', version: 'v1.0.0', zip: 5000, storedDaysAgo: 100 });
    await f.add({ module: 'example.com/m', version: 'v1.0.0', zip: 5000, storedDaysAgo: 100 });
    await f.add({ module: 'example.com/m', version: 'v1.1.0', zip: 5000, storedDaysAgo: 100 });
    await f.pins.add('example.com/m@v1.1.0', { note: 'release build', by: 'ops' });

    const r = await f.run({ maxBytes: 1000, maxAgeMs: 30 * DAY });

    expect(removedKeys(r).sort()).toEqual([infoOf('v1.0.0'), modOf('v1.0.0'), zipOf('v1.0.0'), zipHashKey('example.com/m', 'v1.0.0')].sort());
    expect(r.kept.pinned.versions).toBe(2);
    expect(r.kept.pinned.examples.sort()).toEqual([
      'example.com/m@v1.1.0: pinned by example.com/m@v1.1.0',
      'example.com/team/a@v1.0.0: pinned by example.com/team/*',
    ]);
    expect(r.after.underLimit).toBe(false);
    expect(r.notes.join('\n')).toMatch(/still over the limit: what is left is pinned/);
  });

  it('nothing at all while offline: the report says so and why', async () => {
    const f = await Fixture.create();
    f.offline = 'gomodproxy is offline';
    await f.add({ version: 'v1.0.0', zip: 5000, storedDaysAgo: 100 });
    const r = await f.run({ maxBytes: 1, maxAgeMs: DAY });
    expect(r.removed).toEqual([]);
    expect(r.nothingEvictable).toBe('gomodproxy is offline');
    expect(r.after.underLimit).toBe(false);
    expect(await f.files()).toContain(zipOf('v1.0.0'));
  });

  it('versions imported or published here (their .origin), and modules whose route cannot fetch them', async () => {
    const f = await Fixture.create();
    await f.add({ version: 'v1.0.0', zip: 5000, storedDaysAgo: 100, origin: 'import' });
    await f.add({ version: 'v1.1.0', zip: 5000, storedDaysAgo: 100, origin: 'publish' });
    await f.add({ version: 'v1.2.0', zip: 5000, storedDaysAgo: 100, origin: 'proxy' });
    await f.add({ module: 'corp.example/private', version: 'v1.0.0', zip: 5000, storedDaysAgo: 100 });
    f.refetch = (p) => (p.startsWith('corp.example/') ? 'its route has no source' : null);

    const r = await f.run({ maxBytes: 1, maxAgeMs: DAY });

    // v1.2.0 came through a proxy: it goes, .origin with its .info.
    expect(removedKeys(r)).toEqual([
      zipOf('v1.2.0'),
      zipHashKey('example.com/m', 'v1.2.0'),
      infoOf('v1.2.0'),
      'example.com/m/@v/v1.2.0.origin',
      modOf('v1.2.0'),
    ]);
    expect(r.evicted.origin).toBe(1);
    expect(r.kept['not-refetchable'].versions).toBe(3);
    expect(r.kept['not-refetchable'].examples.join('\n')).toMatch(/v1\.0\.0: imported/);
    expect(r.kept['not-refetchable'].examples.join('\n')).toMatch(/v1\.1\.0: published/);
    expect(r.kept['not-refetchable'].examples.join('\n')).toMatch(/private@v1\.0\.0: its route has no source/);
  });

  it('a zip whose fetch lock is held; the next least recently served goes instead', async () => {
    const f = await Fixture.create();
    await f.add({ version: 'v1.0.0', zip: 5000, storedDaysAgo: 30 });
    await f.add({ version: 'v1.1.0', zip: 5000, storedDaysAgo: 20 });
    const lock = await f.coordination.tryLock(zipOf('v1.0.0'));
    expect(lock).not.toBeNull();
    try {
      const r = await f.run({ maxBytes: (await f.run({ dryRun: true })).before.bytes - 1000 });
      expect(removedKeys(r)).toEqual([zipOf('v1.1.0'), zipHashKey('example.com/m', 'v1.1.0')]);
      expect(r.kept['in-use'].examples).toEqual(['example.com/m@v1.0.0: its zip is being fetched or written']);
    } finally {
      await lock?.release();
    }
  });

  it('a file stored again after the listing (a stale plan), and an age eviction of a key served here since the last flush', async () => {
    const f = await Fixture.create();
    await f.add({ version: 'v1.0.0', zip: 5000, storedDaysAgo: 100 });
    await f.add({ version: 'v1.1.0', zip: 5000, storedDaysAgo: 100 });
    await f.add({ version: 'v1.2.0', zip: 5000, storedDaysAgo: 100 });
    f.store.staleListing.add(zipOf('v1.0.0'));
    f.served = { flush: () => Promise.resolve(), servedSinceFlush: (k) => k === zipOf('v1.1.0') };
    const r = await f.run({ maxAgeMs: DAY });
    expect(r.kept.changed.examples).toEqual(['example.com/m@v1.0.0: its zip was stored again during the collection']);
    expect(r.kept['served-since-plan'].examples).toEqual(['example.com/m@v1.1.0: its zip was served during the collection']);
    expect(await f.files()).toEqual(expect.arrayContaining([zipOf('v1.0.0'), zipOf('v1.1.0'), infoOf('v1.0.0'), infoOf('v1.1.0')]));
    expect(await f.files()).not.toContain(zipOf('v1.2.0'));
  });

  it('the metadata of a version whose zip was stored during the collection', async () => {
    const f = await Fixture.create();
    await f.add({ version: 'v1.0.0', zip: 0, storedDaysAgo: 100 });
    // The listing saw no zip; one is there by the time the .info would go.
    const store = f.store;
    const key = zipOf('v1.0.0');
    const list = store.listStats.bind(store);
    store.listStats = async function* (prefix: string) {
      for await (const b of list(prefix)) yield b;
      await store.put(key, Buffer.from('zip stored meanwhile'));
    };
    const r = await f.run({ maxAgeMs: DAY });
    expect(r.removed).toEqual([]);
    expect(r.kept.changed.examples).toEqual(['example.com/m@v1.0.0: its zip was stored during the collection']);
  });
});

describe('garbage collection: a dry run and the lock', () => {
  it('a dry run reports what would go and changes nothing in the store', async () => {
    const f = await Fixture.create();
    for (const v of ['v1.0.0', 'v1.1.0']) await f.add({ version: v, zip: 5000, storedDaysAgo: 100 });
    await f.servedRecord('a', { [zipOf('v1.0.0')]: 90 });
    await mkdir(path.join(f.root, 'example.com/empty'), { recursive: true });
    const snapshot = async (): Promise<string[]> => {
      const out: string[] = [];
      const walk = async (dir: string): Promise<void> => {
        for (const e of await readdir(dir, { withFileTypes: true })) {
          const p = path.join(dir, e.name);
          if (e.isDirectory()) {
            out.push(`${p}/`);
            await walk(p);
          } else out.push(`${p} ${(await stat(p)).mtimeMs} ${(await readFile(p)).toString('base64')}`);
        }
      };
      await walk(f.root);
      return out.sort();
    };
    const before = await snapshot();
    const r = await f.run({ maxAgeMs: DAY, dryRun: true });
    expect(r.dryRun).toBe(true);
    expect(r.evicted).toMatchObject({ zip: 2, info: 2, mod: 2 });
    expect(r.leftovers).toBeNull();
    expect(await snapshot()).toEqual(before);
    expect(f.removedEvents).toEqual([]);
  });

  it('one collection at a time per store; a real run saves its report for status()', async () => {
    const f = await Fixture.create();
    await f.add({ version: 'v1.0.0', zip: 5000, storedDaysAgo: 100 });
    const held = await f.coordination.tryLock(GC_LOCK_KEY);
    await expect(f.gc({ maxAgeMs: DAY }).run()).rejects.toBeInstanceOf(GcBusyError);
    await held?.release();
    const gc = f.gc({ maxAgeMs: DAY });
    expect((await gc.status()).lastRun).toBeNull();
    const r = await gc.run({ trigger: 'schedule' });
    const status = await gc.status();
    expect(status.limits).toEqual({ maxBytes: null, maxAgeMs: DAY });
    expect(status.lastRun).toMatchObject({ trigger: 'schedule', freedBytes: r?.freedBytes, startedMs: NOW });
    // Another process's tick of the same schedule, a moment later, skips.
    expect(await gc.run({ unlessRanWithinMs: 30_000 })).toBeNull();
  });
});

describe('served records', () => {
  it('a collection folds every record into one and each owner then keeps only what it served since', async () => {
    const f = await Fixture.create();
    await f.add({ version: 'v1.0.0', zip: 5000, storedDaysAgo: 1 });
    const { ServedRecorder } = await import('../../src/catalog/index.js');
    const rec = new ServedRecorder(f.store, { instance: 'gmp-t', host: 'h', pid: 42 });
    rec.record(zipOf('v1.0.0'));
    rec.record(infoOf('v1.0.0'));
    expect(rec.servedSinceFlush(zipOf('v1.0.0'))).toBe(true);
    await rec.flush();
    expect(rec.servedSinceFlush(zipOf('v1.0.0'))).toBe(false);
    const own = JSON.parse(await readFile(f.store.localPath(rec.key), 'utf8')) as { served: Record<string, number> };
    expect(Object.keys(own.served).sort()).toEqual([infoOf('v1.0.0'), zipOf('v1.0.0')].sort());
    // A process of this host that died left its record: folded like the others, then removed, no marker left for it.
    const dead = await deadPid();
    await f.servedRecord(
      `gmp-t-${hostname()}-${dead}`,
      { [modOf('v1.0.0')]: 3, 'example.com/evicted/@v/v9.0.0.zip': 3 },
      { instance: 'gmp-t', host: hostname(), pid: dead },
    );

    const r = await f.run({ maxBytes: 10 ** 9 });

    expect(r.servedRecordsFolded).toBe(2);
    const folded = JSON.parse(await readFile(f.store.localPath(SERVED_FOLDED_KEY), 'utf8')) as { served: Record<string, number> };
    // What is no longer in the store is forgotten.
    expect(Object.keys(folded.served).sort()).toEqual([infoOf('v1.0.0'), modOf('v1.0.0'), zipOf('v1.0.0')].sort());
    expect(folded.served[zipOf('v1.0.0')]).toBe(own.served[zipOf('v1.0.0')]);
    await expect(stat(f.store.localPath(rec.key))).rejects.toMatchObject({ code: 'ENOENT' });

    // The owner reads the marker, forgets what was folded, and writes only what is new.
    rec.record(modOf('v1.0.0'));
    await rec.flush();
    const after = JSON.parse(await readFile(f.store.localPath(rec.key), 'utf8')) as { served: Record<string, number> };
    expect(Object.keys(after.served)).toEqual([modOf('v1.0.0')]);
    expect((await readdir(path.join(f.root, 'state/served'))).sort()).toEqual(['gmp-t-h-42.json']);
  });
});

describe('pins', () => {
  it('are listed (config first), added with a note and who, removed; a config pin cannot be removed at run time', async () => {
    const f = await Fixture.create(['example.com/team/*']);
    const { pin, created } = await f.pins.add('example.com/m@v1.2.3', { note: 'release', by: 'ops' });
    expect(created).toBe(true);
    expect(pin).toMatchObject({ pattern: 'example.com/m@v1.2.3', note: 'release', by: 'ops', source: 'api' });
    expect((await f.pins.add('example.com/m@v1.2.3', { note: 'still the release' })).created).toBe(false);
    // Another process (a second PinStore over the same store) sees the same pins.
    const other = new PinStore(f.store, f.coordination, ['example.com/team/*']);
    expect((await other.list()).map((p) => [p.pattern, p.source, p.note])).toEqual([
      ['example.com/team/*', 'config', undefined],
      ['example.com/m@v1.2.3', 'api', 'still the release'],
    ]);
    await expect(f.pins.remove('example.com/team/*')).rejects.toMatchObject({ status: 409 });
    expect(await other.remove('example.com/m@v1.2.3')).toMatchObject({ pattern: 'example.com/m@v1.2.3' });
    expect(await f.pins.remove('example.com/m@v1.2.3')).toBeNull();
    for (const bad of ['', 'a.com,b.com', 'example.com/m@latest', 'example.com/[x', 'example.com/m@v1.2']) {
      await expect(f.pins.add(bad), bad).rejects.toMatchObject({ status: 400 });
    }
  });
});
