// Unit tests of offline mode (OfflineAnswers, and the artifacts' refused misses) over a real disk
// store filled by hand, through the real app over HTTP. The app's source is a fake that would
// answer everything: its call count staying 0 is what shows that offline nothing is asked.
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { heldCandidate, latestOrder } from '../../src/server/offline.js';
import { cleanupAll } from '../helpers/tmp.js';
import { MOD, info, oneLine, startCore, type Core } from './cachecore.js';

afterEach(cleanupAll);

const PSEUDO_OLD = 'v0.0.0-20240102030405-abcdefabcdef';
const PSEUDO_NEW = 'v1.0.1-0.20240203040506-123456789abc';
const GOMOD = `module ${MOD}\n`;

/** Puts files of MOD's versions in the core's data folder, as a fetch would have left them. */
async function hold(core: Core, versions: Record<string, ReadonlyArray<'info' | 'mod' | 'zip'>>): Promise<void> {
  const dir = path.join(core.config.data, MOD, '@v');
  await mkdir(dir, { recursive: true });
  for (const [v, exts] of Object.entries(versions)) {
    for (const ext of exts) await writeFile(path.join(dir, `${v}.${ext}`), ext === 'info' ? info(v) : ext === 'mod' ? GOMOD : 'zip bytes');
  }
}

/** An offline core whose fake source is scripted to answer everything: it must never be asked. */
async function offlineCore(flags: Record<string, unknown> = {}): Promise<Core> {
  const core = await startCore({ flags: { offline: true, ...flags } });
  core.source.on('list', undefined, Buffer.from('v9.0.0\n')).on('latest', undefined, info('v9.0.0'));
  return core;
}

function offlineLine(subject: string, spec: string): string {
  return `not found: gomodproxy is offline and ${subject} is not in its cache; add it on a connected machine with gomodproxy prefetch ${spec} (then bring the data folder here), or with gomodproxy import <folder>`;
}

describe('offline: the version list', () => {
  it('lists the versions held with a .mod, releases and pre-releases, never pseudo-versions', async () => {
    const core = await offlineCore();
    await hold(core, { 'v1.0.0': ['info', 'mod', 'zip'], 'v1.1.0': ['mod'], 'v1.2.0-pre': ['info', 'mod'], [PSEUDO_NEW]: ['info', 'mod'], 'v1.3.0': ['info'] });
    const r = await core.get(`/${MOD}/@v/list`);
    expect([r.status, r.text, r.headers['cache-control'], r.headers['content-type']]).toEqual([
      200,
      'v1.0.0\nv1.1.0\nv1.2.0-pre\n',
      'no-cache',
      'text/plain; charset=utf-8',
    ]);
    expect(core.source.calls).toEqual([]);
  });

  it('a module of which nothing is held: 404 with the offline line', async () => {
    const core = await offlineCore();
    const r = await core.get(`/${MOD}/@v/list`);
    expect([r.status, oneLine(r)]).toEqual([404, offlineLine(`any version of ${MOD}`, `${MOD}@latest`)]);
    expect(core.source.calls).toEqual([]);
  });

  it('only pseudo-versions held: an empty list (the go command then asks @latest)', async () => {
    const core = await offlineCore();
    await hold(core, { [PSEUDO_OLD]: ['info', 'mod'] });
    const r = await core.get(`/${MOD}/@v/list`);
    expect([r.status, r.text]).toEqual([200, '']);
  });

  it('versions denied by policy are left out', async () => {
    const core = await offlineCore({ deny: [{ match: MOD, versions: 'v1.1.0' }] });
    await hold(core, { 'v1.0.0': ['info', 'mod'], 'v1.1.0': ['info', 'mod'] });
    expect((await core.get(`/${MOD}/@v/list`)).text).toBe('v1.0.0\n');
    expect(JSON.parse((await core.get(`/${MOD}/@latest`)).text)).toMatchObject({ Version: 'v1.0.0' });
  });
});

describe('offline: @latest as the go command would choose', () => {
  it.each([
    ['the highest release', { 'v1.0.0': ['info', 'mod'], 'v1.1.0': ['info', 'mod'], 'v1.2.0-rc.1': ['info', 'mod'], [PSEUDO_NEW]: ['info', 'mod'] }, 'v1.1.0'],
    ['else the highest pre-release', { 'v1.2.0-rc.1': ['info', 'mod'], 'v1.2.0-rc.2': ['info', 'mod'], [PSEUDO_NEW]: ['info', 'mod'] }, 'v1.2.0-rc.2'],
    ['else the highest pseudo-version', { [PSEUDO_OLD]: ['info', 'mod'], [PSEUDO_NEW]: ['info', 'mod'] }, PSEUDO_NEW],
    ['a version without its .info cannot be the answer', { 'v1.0.0': ['info', 'mod'], 'v1.1.0': ['mod'] }, 'v1.0.0'],
  ] as const)('%s', async (_name, held, want) => {
    const core = await offlineCore();
    await hold(core, held);
    const r = await core.get(`/${MOD}/@latest`);
    expect([r.status, r.text, r.headers['content-type']]).toEqual([200, info(want).toString(), 'application/json']);
    expect(core.source.calls).toEqual([]);
  });

  it('nothing held: 404 with the offline line', async () => {
    const core = await offlineCore();
    await hold(core, { 'v1.0.0': ['mod'] });
    const r = await core.get(`/${MOD}/@latest`);
    expect([r.status, oneLine(r)]).toEqual([404, offlineLine(`any version of ${MOD}`, `${MOD}@latest`)]);
  });
});

describe('offline: queries and artifacts', () => {
  it('a query naming a held canonical version is answered with its .info; a branch or an unheld version is 404', async () => {
    const core = await offlineCore();
    await hold(core, { 'v1.0.0': ['info', 'mod', 'zip'] });
    const meta = await core.get(`/${MOD}/@v/v1.0.0+build.5.info`);
    expect([meta.status, meta.text]).toEqual([200, info('v1.0.0').toString()]);
    const branch = await core.get(`/${MOD}/@v/main.info`);
    expect([branch.status, oneLine(branch)]).toEqual([404, offlineLine(`${MOD}@main (resolving a branch, tag or commit needs an upstream)`, `${MOD}@main`)]);
    const other = await core.get(`/${MOD}/@v/v1.5.0+meta.info`);
    expect([other.status, oneLine(other)]).toEqual([404, offlineLine(`${MOD}@v1.5.0`, `${MOD}@v1.5.0`)]);
    expect(core.source.calls).toEqual([]);
  });

  it('held artifacts are served; a miss of .info, .mod or .zip is 404 with the offline line, and nothing is written', async () => {
    const core = await offlineCore();
    core.source.on('info', 'v2.0.0', info('v2.0.0'));
    await hold(core, { 'v1.0.0': ['info', 'mod', 'zip'] });
    expect((await core.get(`/${MOD}/@v/v1.0.0.mod`)).text).toBe(GOMOD);
    expect((await core.get(`/${MOD}/@v/v1.0.0.zip`)).text).toBe('zip bytes');
    const before = await core.tree();
    for (const ext of ['info', 'mod', 'zip']) {
      const r = await core.get(`/${MOD}/@v/v1.1.0.${ext}`);
      expect([r.status, oneLine(r)], ext).toEqual([404, offlineLine(`${MOD}@v1.1.0`, `${MOD}@v1.1.0`)]);
    }
    expect(await core.tree()).toEqual(before);
    expect(core.source.calls).toEqual([]);
  });

  it('/readyz is ready although no upstream could be asked', async () => {
    const core = await offlineCore();
    const r = await core.get('/readyz');
    expect([r.status, r.text]).toEqual([200, 'ready\n']);
  });
});

describe('offline: the choices, as pure functions', () => {
  it('latestOrder: releases high to low, then pre-releases, then pseudo-versions', () => {
    expect(latestOrder(['v0.9.0', 'v1.0.0', 'v1.1.0-rc.1', PSEUDO_NEW, 'v2.0.0+incompatible'])).toEqual([
      'v2.0.0+incompatible',
      'v1.0.0',
      'v0.9.0',
      'v1.1.0-rc.1',
      PSEUDO_NEW,
    ]);
  });

  it('heldCandidate: the canonical version a query names, or none', () => {
    expect(heldCandidate('example.com/m', 'v1.2.3+meta')).toBe('v1.2.3');
    expect(heldCandidate('example.com/m', 'v2.0.0')).toBe('v2.0.0+incompatible');
    expect(heldCandidate('example.com/m/v2', 'v2.1.0+x')).toBe('v2.1.0');
    expect(heldCandidate('example.com/m', 'v1.2')).toBeUndefined();
    expect(heldCandidate('example.com/m', 'main')).toBeUndefined();
    expect(heldCandidate('example.com/m', 'abcdef012345')).toBeUndefined();
    expect(heldCandidate('example.com/m/v2', 'v1.0.0+x')).toBeUndefined();
  });
});

describe('offline: the setting', () => {
  const cwd = '/nonexistent-dir-for-test';
  it('offline: true, GOMODPROXY_OFFLINE, or an upstream list that is just off; offline: false keeps upstream off as it was', () => {
    expect(loadConfig({ env: {}, cwd, flags: { upstream: 'https://a.example' } }).offline).toBe(false);
    expect(loadConfig({ env: {}, cwd, flags: { upstream: 'https://a.example', offline: true } }).offline).toBe(true);
    expect(loadConfig({ env: { GOMODPROXY_OFFLINE: 'true' }, cwd, flags: { upstream: 'https://a.example' } }).offline).toBe(true);
    expect(loadConfig({ env: {}, cwd, flags: { upstream: 'off' } }).offline).toBe(true);
    expect(loadConfig({ env: { GOMODPROXY_UPSTREAM: 'off', GOMODPROXY_OFFLINE: 'false' }, cwd }).offline).toBe(false);
    expect(loadConfig({ env: {}, cwd, flags: { upstreams: [{ url: 'off' }] } }).offline).toBe(true);
  });

  it('a route that names its own sources is said to be unused', () => {
    const c = loadConfig({ env: {}, cwd, flags: { offline: true, routes: [{ match: 'corp.example/*', sources: 'direct' }] } });
    expect(c.warnings).toContain('routes[0].sources (direct) is not used: gomodproxy is offline and fetches nothing');
  });
});
