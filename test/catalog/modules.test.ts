// The module index over a real disk store: built by one walk, then kept by the changes it is
// told of; search ranks prefixes before substrings; a walk that runs while changes arrive keeps
// them; only artifact keys count.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { FsBlobStore } from '../../src/cache/fs.js';
import { ModuleIndex, changeOfKey, originBytes, originKey } from '../../src/catalog/index.js';
import type { StoreChange } from '../../src/cluster/coordination.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function store(): Promise<FsBlobStore> {
  const d = await mkdtemp(path.join(tmpdir(), 'gmp-index-'));
  dirs.push(d);
  return new FsBlobStore(d);
}

const log = pino({ level: 'silent' });

function change(module: string, version: string, kind: StoreChange['kind'], size: number | null): StoreChange {
  return { module, version, kind, size, mtimeMs: 1_700_000_000_000 };
}

describe('changeOfKey', () => {
  it('reads module and version from their case-encoded forms, and only for .info, .mod and .zip', () => {
    expect(changeOfKey('github.com/!azure/sdk/v2/@v/v2.1.0-!r!c.1.zip', 5, 9)).toEqual({
      module: 'github.com/Azure/sdk/v2',
      version: 'v2.1.0-RC.1',
      kind: 'zip',
      size: 5,
      mtimeMs: 9,
    });
    for (const k of [
      'example.com/m/@v/list',
      'example.com/m/@v/v1.0.0.ziphash',
      'example.com/m/@v/v1.0.0.origin',
      'example.com/m/@latest',
      'x/@v/latest.info',
      'example.com/m/@v/v1.0.0.zip.tmp-1',
    ]) {
      expect(changeOfKey(k, 1, 1)).toBeNull();
    }
  });
});

describe('ModuleIndex', () => {
  it('is built from one walk of the store: artifacts only, never mutable answers or state', async () => {
    const s = await store();
    const info = Buffer.from('{"Version":"v1.0.0","Time":"2024-01-02T03:04:05Z"}');
    await s.put('example.com/a/@v/v1.0.0.info', info);
    await s.put('example.com/a/@v/v1.0.0.mod', Buffer.from('module example.com/a\n'));
    await s.put('example.com/a/@v/v1.0.0.zip', Buffer.alloc(1000));
    await s.put('example.com/a/@v/list', Buffer.from('v1.0.0\n'));
    await s.put(originKey('example.com/a', 'v1.0.0'), originBytes({ source: 'https://up.example', at: '2024-05-06T00:00:00.000Z' }));
    await s.put('mutable/example.com/b/@v/v9.0.0.info', Buffer.from('{}'));
    await s.put('state/x/@v/v1.0.0.info', Buffer.from('{}'));
    const index = new ModuleIndex({ store: s, log, rescanMs: 0 });
    await index.ready();
    expect(index.totals()).toEqual({ modules: 1, versions: 1, bytes: 1000 + 21 + info.length, zips: 1, zipBytes: 1000 });
    const [v] = await index.details('example.com/a');
    expect(v).toMatchObject({
      version: 'v1.0.0',
      info: info.length,
      mod: 21,
      zip: 1000,
      time: '2024-01-02T03:04:05Z',
      origin: { source: 'https://up.example' },
    });
  });

  it('keeps the changes it is told of; a module goes when its last version does', () => {
    const index = new ModuleIndex({ store: null as unknown as FsBlobStore, log, rescanMs: 0 });
    index.apply([
      change('example.com/m', 'v1.0.0', 'info', 10),
      change('example.com/m', 'v1.0.0', 'mod', 5),
      change('example.com/m', 'v1.0.0', 'zip', 100),
      change('example.com/m', 'v1.1.0', 'mod', 20),
      // A query's .info alone: not a version the proxy holds.
      change('example.com/m', 'v1.2.0', 'info', 7),
    ]);
    expect(index.totals()).toMatchObject({ modules: 1, versions: 2, bytes: 142, zips: 1 });
    index.apply([change('example.com/m', 'v1.0.0', 'zip', null)]);
    expect(index.totals()).toMatchObject({ versions: 2, bytes: 42, zips: 0 });
    index.apply([
      change('example.com/m', 'v1.0.0', 'info', null),
      change('example.com/m', 'v1.0.0', 'mod', null),
      change('example.com/m', 'v1.1.0', 'mod', null),
      change('example.com/m', 'v1.2.0', 'info', null),
    ]);
    expect(index.totals()).toMatchObject({ modules: 0, versions: 0, bytes: 0 });
    expect(index.search('', { offset: 0, limit: 10 }).total).toBe(0);
    // A removal of what it never had changes nothing.
    index.apply([change('example.com/x', 'v1.0.0', 'zip', null)]);
    expect(index.totals().modules).toBe(0);
  });

  it('ranks path prefixes before substrings, case-insensitively, pages, and hides what the caller may not read', () => {
    const index = new ModuleIndex({ store: null as unknown as FsBlobStore, log, rescanMs: 0 });
    for (const p of ['golang.org/x/text', 'github.com/acme/golang-tools', 'golang.org/x/mod', 'corp.example/Golang/secret', 'example.com/other']) {
      index.apply([change(p, 'v1.0.0', 'mod', 1)]);
    }
    const paths = (q: string, visible?: (p: string) => boolean): string[] => index.search(q, { offset: 0, limit: 100, visible }).modules.map((m) => m.path);
    expect(paths('golang')).toEqual(['golang.org/x/mod', 'golang.org/x/text', 'corp.example/Golang/secret', 'github.com/acme/golang-tools']);
    expect(paths('GOLANG.ORG/X/')).toEqual(['golang.org/x/mod', 'golang.org/x/text']);
    expect(paths('golang', (p) => !p.startsWith('corp.example/'))).toEqual(['golang.org/x/mod', 'golang.org/x/text', 'github.com/acme/golang-tools']);
    expect(index.search('golang', { offset: 1, limit: 2 })).toMatchObject({
      total: 4,
      modules: [{ path: 'golang.org/x/text' }, { path: 'corp.example/Golang/secret' }],
    });
    expect(index.modulesMatching(['golang.org/x/*', 'example.com/other'])).toEqual(['example.com/other', 'golang.org/x/mod', 'golang.org/x/text']);
  });

  it('a search after a module comes or goes sees it; totals follow every change', () => {
    const index = new ModuleIndex({ store: null as unknown as FsBlobStore, log, rescanMs: 0 });
    const paths = (q: string): string[] => index.search(q, { offset: 0, limit: 100 }).modules.map((m) => m.path);
    index.apply([change('example.com/Alpha', 'v1.0.0', 'mod', 1)]);
    expect(paths('alpha')).toEqual(['example.com/Alpha']);
    expect(index.totals().modules).toBe(1);
    index.apply([change('example.com/alphabet', 'v1.0.0', 'mod', 2)]);
    expect(paths('ALPHA')).toEqual(['example.com/Alpha', 'example.com/alphabet']);
    expect(index.totals()).toMatchObject({ modules: 2, bytes: 3 });
    index.apply([change('example.com/Alpha', 'v1.0.0', 'mod', null)]);
    expect(paths('alpha')).toEqual(['example.com/alphabet']);
    expect(index.totals()).toMatchObject({ modules: 1, bytes: 2 });
    // What a caller does with the totals it got does not change the next caller's.
    index.totals().modules = 99;
    expect(index.totals().modules).toBe(1);
    // A viewer's share: only what it may see, and the whole stays as it was.
    index.apply([change('corp.example/secret', 'v1.0.0', 'mod', 5)]);
    expect(index.totals((p) => !p.startsWith('corp.'))).toMatchObject({ modules: 1, versions: 1, bytes: 2 });
    expect(index.totals()).toMatchObject({ modules: 2, bytes: 7 });
  });

  it('lists the modules stored most recently, newest first, among those the caller may read', () => {
    const index = new ModuleIndex({ store: null as unknown as FsBlobStore, log, rescanMs: 0 });
    const at = (module: string, version: string, mtimeMs: number): StoreChange => ({ module, version, kind: 'mod', size: 1, mtimeMs });
    index.apply([at('example.com/a', 'v1.0.0', 10), at('example.com/b', 'v1.0.0', 30), at('example.com/c', 'v1.0.0', 20), at('corp.example/d', 'v1.0.0', 40)]);
    // A new version of an old module makes it recent again.
    index.apply([at('example.com/a', 'v1.1.0', 50)]);
    const recent = (limit: number, visible?: (p: string) => boolean): string[] => index.recent(limit, visible).map((m) => m.path);
    expect(recent(3)).toEqual(['example.com/a', 'corp.example/d', 'example.com/b']);
    expect(recent(3, (p) => !p.startsWith('corp.'))).toEqual(['example.com/a', 'example.com/b', 'example.com/c']);
    expect(recent(10)).toHaveLength(4);
    expect(recent(0)).toEqual([]);
    expect(index.recent(1)[0]).toMatchObject({ path: 'example.com/a', latest: 'v1.1.0', versions: 2, storedMs: 50 });
  });

  it('calls the highest release latest, over pre-releases and pseudo-versions', () => {
    const index = new ModuleIndex({ store: null as unknown as FsBlobStore, log, rescanMs: 0 });
    const m = 'example.com/m';
    index.apply([change(m, 'v1.3.0-rc.1', 'mod', 1), change(m, 'v1.2.0', 'mod', 1), change(m, 'v1.9.1-0.20240101000000-abcdefabcdef', 'mod', 1)]);
    expect(index.summary(m)).toMatchObject({ latest: 'v1.2.0', versions: 3 });
    expect(index.versions(m).map((v) => v.version)).toEqual(['v1.9.1-0.20240101000000-abcdefabcdef', 'v1.3.0-rc.1', 'v1.2.0']);
    // A version with only a zip is not a version the proxy serves.
    index.apply([change(m, 'v2.0.0+incompatible', 'zip', 5)]);
    expect(index.summary(m)).toMatchObject({ latest: 'v1.2.0', versions: 3 });
  });

  it('a rescan keeps changes told while it walked, and forgets what the store no longer holds', async () => {
    const s = await store();
    await s.put('example.com/gone/@v/v1.0.0.mod', Buffer.from('module example.com/gone\n'));
    const index = new ModuleIndex({ store: s, log, rescanMs: 0 });
    await index.ready();
    await s.delete('example.com/gone/@v/v1.0.0.mod');
    const walking = index.rescan();
    // Heard while the walk is under way (the walk may or may not see the file).
    await s.put('example.com/new/@v/v1.0.0.mod', Buffer.from('module example.com/new\n'));
    index.apply([change('example.com/new', 'v1.0.0', 'mod', 20)]);
    await walking;
    expect(index.search('', { offset: 0, limit: 10 }).modules.map((m) => m.path)).toEqual(['example.com/new']);
  });
});
