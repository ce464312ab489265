// The world builder and the test upstream, checked against the real go command: what go fetched
// directly from the git repos, served back by the upstream, is accepted by go with the same sums.
import { cp, lstat, mkdir, readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createGoEnv } from '../helpers/goenv.js';
import { get } from '../helpers/http.js';
import { cleanupAll, makeTempDir } from '../helpers/tmp.js';
import { startTestUpstream, type TestUpstream } from '../helpers/upstream.js';
import { addVersionToWorld, buildModuleWorld, type World, type WorldSpec } from '../helpers/world.js';

const A = 'github.com/gmp-test/alpha';
const A2 = 'github.com/gmp-test/alpha/v2';
const N = 'github.com/gmp-test/nomod';

const spec: WorldSpec = {
  modules: [
    {
      path: A,
      versions: [
        { version: 'v1.0.0', date: '2023-03-01T10:00:00Z' },
        { version: 'v1.1.0', date: '2023-03-02T10:00:00Z', files: { 'alpha.go': 'package alpha\n\nconst V = 11\n', 'sub/sub.go': 'package sub\n' } },
        { version: 'v1.2.0-pre', date: '2023-03-03T10:00:00Z', annotated: true },
        // an untagged commit: later heads of main get pseudo-versions on top of v1.2.0-pre
        { date: '2023-03-04T10:30:15Z' },
      ],
      latest: true,
      queries: ['main'],
    },
    {
      path: A2,
      versions: [{ version: 'v2.0.0', date: '2023-03-05T10:00:00Z', files: { 'alpha.go': 'package alpha\n\nconst V = 2\n' } }],
    },
    {
      path: N,
      versions: [
        { version: 'v1.0.0', goMod: null, date: '2023-04-01T00:00:00Z' },
        { version: 'v1.0.1', goMod: null, date: '2023-04-02T00:00:00Z', files: { 'nomod.go': 'package nomod\n', 'README.md': '# nomod\n' } },
      ],
    },
  ],
};

const released = [`${A}@v1.0.0`, `${A}@v1.1.0`, `${A}@v1.2.0-pre`, `${A2}@v2.0.0`, `${N}@v1.0.0`, `${N}@v1.0.1`];

let world: World;
let upstream: TestUpstream;

beforeAll(async () => {
  world = await buildModuleWorld(spec);
  upstream = await startTestUpstream({ root: world.downloadDir });
});
afterAll(cleanupAll);

describe('buildModuleWorld', () => {
  test('fetches every tagged version and the queries through the real go command', async () => {
    for (const key of released) {
      const e = world.get(key);
      expect(e.Sum).toMatch(/^h1:[A-Za-z0-9+/]{43}=$/);
      expect(e.GoModSum).toMatch(/^h1:[A-Za-z0-9+/]{43}=$/);
      expect(e.Info.Version).toBe(key.split('@')[1]);
    }
    // fixed committer dates are what go reports as Time
    expect(world.get(`${A}@v1.0.0`).Info.Time).toBe('2023-03-01T10:00:00Z');
    expect(world.get(`${A}@v1.2.0-pre`).Info.Time).toBe('2023-03-03T10:00:00Z');

    // latest prefers the highest release over a higher pre-release
    expect(world.queries.get(`${A}@latest`)?.Version).toBe('v1.1.0');

    // @main is the v2 commit (last on main): a pseudo-version after v1.2.0-pre, dated by the committer date
    const headHash = await world.repos.get(A)!.head('main');
    const main = world.queries.get(`${A}@main`)!;
    expect(main.Version).toBe(`v1.2.0-pre.0.20230305100000-${headHash.slice(0, 12)}`);
    expect(world.expected.get(`${A}@${main.Version}`)).toBe(main);
  });

  test('writes go.mod files, /v2 subdirectories and modules without go.mod as asked', async () => {
    expect(world.get(`${A}@v1.0.0`).modText).toBe(`module ${A}\n\ngo 1.21\n`);
    expect(world.get(`${A2}@v2.0.0`).modText).toBe(`module ${A2}\n\ngo 1.21\n`);
    // no go.mod: the go command synthesises exactly "module <path>\n"
    expect(world.get(`${N}@v1.0.0`).modText).toBe(`module ${N}\n`);
    const repo = world.repos.get(A)!;
    // alpha/v2 lives in alpha's repository: repos are keyed by repo root
    expect([...world.repos.keys()].sort()).toEqual([A, N]);
    expect((await repo.git(['tag', '--list'])).split('\n').filter(Boolean).sort()).toEqual(['v1.0.0', 'v1.1.0', 'v1.2.0-pre', 'v2.0.0']);
    expect((await repo.git(['cat-file', '-t', 'v1.2.0-pre'])).trim()).toBe('tag');
    expect((await repo.git(['cat-file', '-t', 'v1.1.0'])).trim()).toBe('commit');
    // v1.1.0 replaced v1.0.0's files; the zip holds exactly its files
    const zip = await readFile(world.get(`${A}@v1.1.0`).files.zip);
    expect(zip.includes(Buffer.from(`${A}@v1.1.0/sub/sub.go`))).toBe(true);
    expect(zip.includes(Buffer.from(`${A}@v1.1.0/alpha.go`))).toBe(true);
    // v2 lives in v2/ and is a nested module, so alpha@main does not contain it
    const mainZip = await readFile(world.queries.get(`${A}@main`)!.files.zip);
    expect(mainZip.includes(Buffer.from('/v2/'))).toBe(false);
  });

  test('caches identical worlds within the process: the same object, nothing built or fetched again', async () => {
    const tree = async (): Promise<string[]> => {
      const out: string[] = [];
      for (const root of [world.downloadDir, ...[...world.repos.values()].map((r) => r.dir)]) {
        for (const e of await readdir(root, { recursive: true, withFileTypes: true })) {
          const full = path.join(e.parentPath, e.name);
          out.push(`${full} ${(await lstat(full)).mtimeMs}`);
        }
      }
      return out.sort();
    };
    const before = await tree();
    const again = await buildModuleWorld(JSON.parse(JSON.stringify(spec)) as WorldSpec);
    // A build makes a new World (and new repos); the same object means none ran.
    expect(again).toBe(world);
    // Nor did it touch the repositories or the go command's cache (no git, no go run).
    expect(await tree()).toEqual(before);
  });
});

describe('startTestUpstream serving the world', () => {
  test('go mod download through the upstream gives the same sums as GOPROXY=direct', async () => {
    const env = await createGoEnv({ goproxy: upstream.url });
    upstream.reset();
    const wanted = [...released, `${A}@${world.queries.get(`${A}@main`)!.Version}`];
    const got = await env.modDownloadJson(wanted);
    expect(got.map((r) => `${r.Path}@${r.Version}`)).toEqual(wanted);
    for (const r of got) {
      const e = world.get(`${r.Path}@${r.Version}`);
      expect({ Sum: r.Sum, GoModSum: r.GoModSum }).toEqual({ Sum: e.Sum, GoModSum: e.GoModSum });
      // the upstream served go's own .info bytes, Origin included
      expect(await readFile(r.Info!, 'utf8')).toBe(e.infoText);
    }
    // each artifact fetched once, by the go command's default client
    expect(upstream.count(`/${A}/@v/v1.0.0.zip`)).toBe(1);
    expect(upstream.count(/\.zip$/)).toBe(wanted.length);
    expect(upstream.requests.every((r) => r.method === 'GET' && String(r.headers['user-agent']).startsWith('Go-http-client/'))).toBe(true);
  });

  test('go list -m -versions and @latest through the upstream', async () => {
    const env = await createGoEnv({ goproxy: upstream.url });
    const versions = await env.go(['list', '-m', '-versions', A]);
    // the pseudo-version in the cache's list file is not a listed version
    expect(versions.stdout.trim()).toBe(`${A} v1.0.0 v1.1.0 v1.2.0-pre`);
    const noMod = await env.go(['list', '-m', '-versions', N]);
    expect(noMod.stdout.trim()).toBe(`${N} v1.0.0 v1.0.1`);

    upstream.reset();
    const latest = JSON.parse((await env.go(['list', '-m', '-json', `${A}@latest`])).stdout) as { Version: string; Time: string };
    expect(latest.Version).toBe(world.queries.get(`${A}@latest`)!.Version);
    expect(latest.Time).toBe('2023-03-02T10:00:00Z');
    expect(upstream.count(`/${A}/@v/list`)).toBe(1);
  });

  test('go get in a main module records the world sums in go.sum', async () => {
    const env = await createGoEnv({ goproxy: upstream.url });
    const dir = await env.newModule(path.join(env.root, 'main'), 'example.com/consumer');
    await env.go(['get', `${A}@v1.1.0`, `${N}@v1.0.1`], { cwd: dir });
    const sums = await env.readGoSum(dir);
    const a = world.get(`${A}@v1.1.0`);
    const n = world.get(`${N}@v1.0.1`);
    expect(sums.get(`${A} v1.1.0`)).toBe(a.Sum);
    expect(sums.get(`${A} v1.1.0/go.mod`)).toBe(a.GoModSum);
    expect(sums.get(`${N} v1.0.1/go.mod`)).toBe(n.GoModSum);
    const listed = await env.go(['list', '-m', 'all'], { cwd: dir });
    expect(listed.stdout).toContain(`${A} v1.1.0`);
  });

  test('response headers and not-found answers look like proxy.golang.org', async () => {
    const list = await get(`${upstream.url}/${A}/@v/list`);
    expect(list.status).toBe(200);
    expect(list.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(list.text()).toContain('v1.2.0-pre\n');
    const info = await get(`${upstream.url}/${A}/@v/v1.0.0.info`);
    expect(info.headers['content-type']).toBe('application/json');
    expect(info.text()).toBe(world.get(`${A}@v1.0.0`).infoText);
    const zip = await get(`${upstream.url}/${A}/@v/v1.0.0.zip`);
    expect(zip.headers['content-type']).toBe('application/zip');
    expect(Number(zip.headers['content-length'])).toBe(zip.body.length);
    expect(zip.body.equals(await readFile(world.get(`${A}@v1.0.0`).files.zip))).toBe(true);
    const mod = await get(`${upstream.url}/${N}/@v/v1.0.0.mod`);
    expect(mod.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(mod.text()).toBe(`module ${N}\n`);

    for (const p of [`/${A}/@latest`, `/${A}/@v/v9.9.9.info`, `/${A}/@v/v1.0.0.ziphash`, `/${A}/@v/v1.0.0.lock`, '/github.com/gmp-test/none/@v/list']) {
      const r = await get(upstream.url + p);
      expect(r.status, p).toBe(404);
      expect(r.headers['content-type']).toBe('text/plain; charset=utf-8');
      expect(r.text()).toMatch(/^not found: .*\n$/);
    }
    expect((await get(`${upstream.url}/${A}/@v/../../x/@v/list`)).status).toBe(404);
  });

  test('a base path, a generated list and an @latest file', async () => {
    // a hand-made tree: .info/.mod/.zip but no list file, plus an explicit @latest
    const root = await makeTempDir('tree');
    const src = path.join(world.downloadDir, A, '@v');
    const dst = path.join(root, A, '@v');
    await mkdir(dst, { recursive: true });
    for (const f of await readdir(src)) {
      if (/^v1\.(0|1)\.0\.(info|mod|zip)$/.test(f)) await cp(path.join(src, f), path.join(dst, f));
    }
    await cp(path.join(src, 'v1.0.0.info'), path.join(root, A, '@latest'));
    const up = await startTestUpstream({ root, basePath: '/mirror/' });
    expect(up.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/mirror$/);

    const list = await get(`${up.url}/${A}/@v/list`);
    expect(list.text().split('\n').filter(Boolean).sort()).toEqual(['v1.0.0', 'v1.1.0']);
    expect((await get(`http://127.0.0.1:${up.port}/${A}/@v/list`)).status).toBe(404);

    const env = await createGoEnv({ goproxy: up.url });
    expect((await env.go(['list', '-m', '-versions', A])).stdout.trim()).toBe(`${A} v1.0.0 v1.1.0`);
    // @latest is only consulted when the list is empty: remove the versions from the list
    up.on(`/${A}/@v/list`, { replaceBody: '' });
    const latest = JSON.parse((await env.go(['list', '-m', '-json', `${A}@latest`])).stdout) as { Version: string };
    expect(latest.Version).toBe('v1.0.0');
    expect(up.count(`/${A}/@latest`)).toBe(1);
    const fromGo = up.requests.filter((r) => String(r.headers['user-agent']).startsWith('Go-http-client/'));
    expect(fromGo.length).toBeGreaterThan(0);
    expect(fromGo.every((r) => r.rawPath.startsWith('/mirror/'))).toBe(true);
    await up.close();
  });

  test('addVersionToWorld makes a new version appear upstream', async () => {
    const env = await createGoEnv({ goproxy: upstream.url });
    expect((await env.go(['list', '-m', '-versions', A])).stdout.trim()).toBe(`${A} v1.0.0 v1.1.0 v1.2.0-pre`);
    const added = await addVersionToWorld(world, A, { version: 'v1.3.0', date: '2023-05-01T00:00:00Z' }, { queries: ['latest'] });
    expect(added?.Version).toBe('v1.3.0');
    expect(world.queries.get(`${A}@latest`)?.Version).toBe('v1.3.0');
    expect((await env.go(['list', '-m', '-versions', A])).stdout.trim()).toBe(`${A} v1.0.0 v1.1.0 v1.2.0-pre v1.3.0`);
    const [r] = await env.modDownloadJson([`${A}@latest`]);
    expect(r?.Version).toBe('v1.3.0');
    expect(r?.Sum).toBe(added?.Sum);
    // the changed world is no longer handed out as the cached one
    const other = await buildModuleWorld(spec);
    expect(other).not.toBe(world);
    expect(other.expected.has(`${A}@v1.3.0`)).toBe(false);
  });

  test('cleanModCache empties the cache so the next download goes upstream again', async () => {
    const env = await createGoEnv({ goproxy: upstream.url });
    await env.modDownloadJson([`${A}@v1.0.0`]);
    await env.cleanModCache();
    await expect(readdir(env.gomodcache)).rejects.toThrow();
    upstream.reset();
    await env.modDownloadJson([`${A}@v1.0.0`]);
    expect(upstream.count(`/${A}/@v/v1.0.0.zip`)).toBe(1);
  });
});
