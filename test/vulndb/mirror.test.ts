// The mirror's refresh against a file:// source, over the real disk store: what a refresh
// fetches, keeps and removes, and the sources it refuses (caught mid-update, entries of the wrong
// shape), which must leave the last good snapshot in place.
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { FsBlobStore } from '../../src/cache/fs.js';
import { HostCoordination } from '../../src/cluster/coordination.js';
import { VulnMirror } from '../../src/vulndb/index.js';
import { cleanupAll, makeTempDir } from '../helpers/tmp.js';

afterAll(cleanupAll);

interface E {
  id: string;
  modified: string;
  module: string;
}

async function writeSource(dir: string, entries: E[], over: { db?: string; modules?: E[] } = {}): Promise<void> {
  await rm(dir, { recursive: true, force: true });
  await mkdir(path.join(dir, 'index'), { recursive: true });
  await mkdir(path.join(dir, 'ID'), { recursive: true });
  const w = (name: string, v: unknown): Promise<void> => writeFile(path.join(dir, name), JSON.stringify(v));
  await w('index/db.json', {
    modified:
      over.db ??
      entries
        .map((e) => e.modified)
        .sort()
        .at(-1),
  });
  await w(
    'index/vulns.json',
    entries.map((e) => ({ id: e.id, modified: e.modified })),
  );
  const mods = over.modules ?? entries;
  await w(
    'index/modules.json',
    [...new Set(mods.map((e) => e.module))].map((m) => ({
      path: m,
      vulns: mods.filter((e) => e.module === m).map((e) => ({ id: e.id, modified: e.modified })),
    })),
  );
  for (const e of entries) {
    await w(`ID/${e.id}.json`, {
      id: e.id,
      modified: e.modified,
      affected: [{ package: { name: e.module, ecosystem: 'Go' }, ranges: [{ type: 'SEMVER', events: [{ introduced: '0' }] }] }],
    });
  }
}

async function mirror(): Promise<{ m: VulnMirror; src: string; data: string }> {
  const root = await makeTempDir('vulnmirror');
  const src = path.join(root, 'src');
  const data = path.join(root, 'data');
  await mkdir(data, { recursive: true });
  const m = new VulnMirror({
    store: new FsBlobStore(data),
    coordination: new HostCoordination(data),
    log: pino({ level: 'silent' }),
    url: pathToFileURL(src).href,
    ttlMs: 3_600_000,
    offline: false,
    concurrency: 2,
    timeouts: { connect: 1000, firstByte: 1000, idle: 1000 },
    eager: false,
  });
  return { m, src, data };
}

const A: E = { id: 'GO-1', modified: '2024-01-01T00:00:00Z', module: 'example.com/a' };
const B: E = { id: 'GO-2', modified: '2024-02-01T00:00:00Z', module: 'example.com/b' };

describe('refreshVulndb', () => {
  it('fetches what changed, keeps what did not, removes what the source dropped', async () => {
    const { m, src, data } = await mirror();
    await writeSource(src, [A, B]);
    expect(await m.refreshVulndb()).toMatchObject({ status: 'updated', entries: 2, fetched: 2, removed: 0, modified: B.modified });
    expect(await m.refreshVulndb()).toMatchObject({ status: 'current', fetched: 0 });
    const B2 = { ...B, modified: '2024-03-01T00:00:00Z' };
    await writeSource(src, [B2]);
    expect(await m.refreshVulndb()).toMatchObject({ status: 'updated', entries: 1, fetched: 1, removed: 1 });
    expect((await readdir(path.join(data, 'vulndb', 'ID'))).sort()).toEqual(['GO-2.json', 'GO-2.json.gz']);
    expect(m.affected.findings('example.com/b', 'v1.0.0').map((f) => f.id)).toEqual(['GO-2']);
    expect(m.affected.has('example.com/a')).toBe(false);
    m.close();
  });

  it('refuses a source caught mid-update or of the wrong shape, and keeps the last snapshot', async () => {
    const { m, src } = await mirror();
    await writeSource(src, [A]);
    expect((await m.refreshVulndb()).status).toBe('updated');
    const refused = async (why: RegExp): Promise<void> => {
      const r = await m.refreshVulndb();
      expect(r).toMatchObject({ status: 'failed', modified: A.modified, entries: 1 });
      expect(r.reason).toMatch(why);
      expect(m.affected.findings('example.com/a', 'v1.0.0').map((f) => f.id)).toEqual(['GO-1']);
    };
    await writeSource(src, [A], { db: '2024-06-01T00:00:00Z' });
    await refused(/newer than every entry/);
    await writeSource(src, [A, B], { modules: [A] });
    await refused(/index\/modules\.json does not say so/);
    await writeSource(src, [A, B]);
    await writeFile(path.join(src, 'ID', 'GO-2.json'), JSON.stringify({ id: 'GO-3', modified: B.modified }));
    await refused(/holds the entry "GO-3", not GO-2/);
    await rm(path.join(src, 'index', 'vulns.json'));
    await refused(/has no index\/vulns\.json/);
    m.close();
  });

  it('offline, it asks nothing', async () => {
    const { src, data } = await mirror();
    await writeSource(src, [A]);
    const off = new VulnMirror({
      store: new FsBlobStore(data),
      coordination: new HostCoordination(data),
      log: pino({ level: 'silent' }),
      url: pathToFileURL(src).href,
      ttlMs: 1000,
      offline: true,
      concurrency: 1,
      timeouts: { connect: 1000, firstByte: 1000, idle: 1000 },
      eager: true,
    });
    expect(await off.refreshVulndb()).toMatchObject({ status: 'skipped', reason: expect.stringMatching(/offline/) });
    expect(off.held).toBe(false);
    off.close();
  });
});
