// Offline mode with the real go command: a gomodproxy fills its cache online (a recording upstream,
// x/mod's own checksum database reached through the proxy's /sumdb/), is restarted offline over the
// same data folder with the same upstream and database still configured, and a go user with a cold
// cache downloads, lists, and `go get`s through it: the same go.sum lines as before, @latest as the
// go command chooses it from the cached versions, and not one request reaches the upstream or the
// database. What was never cached is a 404 whose one line the go command prints: the proxy is
// offline, the module version is not in its cache, how to add it; the go command's fallback to its
// next GOPROXY entry still works on it.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { expectOneLineError, waitFor } from './util.js';
import { addToDb, esc } from '../e2e-sumdb/util.js';
import { createGoEnv, type GoEnv, type GoModDownload } from '../helpers/goenv.js';
import { startProxy, type ProxyProcess } from '../helpers/gomodproxy.js';
import { get } from '../helpers/http.js';
import { cleanupAll, makeTempDir } from '../helpers/tmp.js';
import { startTestUpstream, type TestUpstream } from '../helpers/upstream.js';
import { buildModuleWorld, type World } from '../helpers/world.js';
import { startGoSumdb, type GoSumdbServer } from '../sumdb/helpers.js';

const REL = 'github.com/gmp-off/rel';
const PRE = 'github.com/gmp-off/Pre';
const TIP = 'github.com/gmp-off/tip';
const APP = 'github.com/gmp-off/app';
const NEVER = 'github.com/gmp-off/never';

let world: World;
let upstream: TestUpstream;
let db: GoSumdbServer;
let offline: ProxyProcess;
let tip: string;
/** Every version fetched online. */
let cachedVersions: string[];
/** What the go command got online, per path@version. */
const online = new Map<string, Pick<GoModDownload, 'Sum' | 'GoModSum'>>();
let onlineGoSum: string;
let dbRequestsBefore: number;

function userEnv(proxyUrl: string, extra: Record<string, string> = {}): Promise<GoEnv> {
  return createGoEnv({ goproxy: proxyUrl, gosumdb: db.vkey, env: extra });
}

/** `go get target` in a new module: its go.sum. */
async function getGoSum(env: GoEnv, target: string): Promise<string> {
  const dir = await env.newModule(await makeTempDir('offline-get'), 'example.com/user');
  await env.go(['get', target], { cwd: dir });
  return readFile(path.join(dir, 'go.sum'), 'utf8');
}

beforeAll(async () => {
  world = await buildModuleWorld({
    modules: [
      { path: REL, versions: [{ version: 'v1.0.0' }, { version: 'v1.1.0' }, { version: 'v1.2.0-rc.1' }] },
      // Upper case in the path: escaped in every URL and file name.
      { path: PRE, versions: [{ version: 'v0.1.0-alpha' }, { version: 'v0.2.0-beta' }] },
      // No tag at all: its only version is a pseudo-version.
      { path: TIP, versions: [{}], queries: ['main'] },
      {
        path: APP,
        versions: [
          { version: 'v1.0.0', goMod: `module ${APP}\n\ngo 1.21\n\nrequire ${REL} v1.1.0\n`, files: { 'app.go': `package app\n\nimport _ "${REL}"\n` } },
        ],
      },
      { path: NEVER, versions: [{ version: 'v1.0.0' }] },
    ],
  });
  tip = world.queries.get(`${TIP}@main`)!.Version;
  db = await startGoSumdb();
  await addToDb(db, world, [...world.expected.keys()]);
  upstream = await startTestUpstream({ root: world.downloadDir });
  const data = await makeTempDir('offline-data');
  const proxyEnv = { GOMODPROXY_SUMDB: `${db.vkey} ${db.url}` };

  // Online: the go command fills the cache through the proxy, verifying through its /sumdb/.
  const first = await startProxy({ upstream: upstream.url, dataDir: data, env: proxyEnv });
  cachedVersions = [...world.expected.keys()].filter((k) => !k.startsWith(`${NEVER}@`));
  const env = await userEnv(first.url);
  for (const r of await env.modDownloadJson(cachedVersions)) online.set(`${r.Path}@${r.Version}`, { Sum: r.Sum, GoModSum: r.GoModSum });
  onlineGoSum = await getGoSum(env, `${APP}@v1.0.0`);
  await first.stop();

  // Offline, the upstream and the database still configured: neither may be asked anything.
  offline = await startProxy({ upstream: upstream.url, dataDir: data, env: { ...proxyEnv, GOMODPROXY_OFFLINE: 'true' } });
  upstream.reset();
  dbRequestsBefore = (await db.requests()).length;
}, 240_000);
afterAll(cleanupAll);

/** Nothing reached the upstream or the checksum database since the restart. */
async function nothingLeft(): Promise<void> {
  expect(upstream.requests.map((r) => r.rawPath)).toEqual([]);
  expect((await db.requests()).slice(dbRequestsBefore)).toEqual([]);
}

describe('offline, from the cache the go command filled online', () => {
  test('go mod download -json: the same sums as online and as the repositories', async () => {
    const env = await userEnv(offline.url);
    const got = await env.modDownloadJson(cachedVersions);
    expect(got.map((g) => [`${g.Path}@${g.Version}`, g.Sum, g.GoModSum])).toEqual(cachedVersions.map((k) => [k, online.get(k)?.Sum, online.get(k)?.GoModSum]));
    expect(got.map((g) => g.Sum)).toEqual(cachedVersions.map((k) => world.get(k).Sum));
    expect(offline.logs().find((l) => l.msg === 'listening')).toMatchObject({ offline: true });
    await nothingLeft();
  });

  test('go list -m -versions lists the cached releases and pre-releases; @latest is chosen as the go command chooses', async () => {
    const env = await userEnv(offline.url);
    const versions = await env.go(['list', '-m', '-versions', REL, PRE, TIP]);
    expect(versions.stdout).toBe(`${REL} v1.0.0 v1.1.0 v1.2.0-rc.1\n${PRE} v0.1.0-alpha v0.2.0-beta\n${TIP}\n`);
    const latest = async (m: string): Promise<string> =>
      (JSON.parse((await env.go(['list', '-m', '-json', `${m}@latest`])).stdout) as { Version: string }).Version;
    // The highest release; else the highest pre-release; else (nothing tagged) the pseudo-version.
    expect([await latest(REL), await latest(PRE), await latest(TIP)]).toEqual(['v1.1.0', 'v0.2.0-beta', tip]);
    // The proxy's own @latest says the same.
    const r = await get(`${offline.url}/${REL}/@latest`);
    expect(JSON.parse(r.text())).toMatchObject({ Version: 'v1.1.0', Time: world.get(`${REL}@v1.1.0`).Info.Time });
    await nothingLeft();
  });

  test('go get mod@latest in a new module: the go.sum the online run wrote, verified through /sumdb/ from the cache', async () => {
    const env = await userEnv(offline.url);
    expect(await getGoSum(env, `${APP}@latest`)).toBe(onlineGoSum);
    // The go command did look the modules up: the proxy answered from the records it kept.
    // Access lines reach stdout in batches, up to 200 ms late: wait for both.
    const wanted = [`/sumdb/${db.name}/lookup/${APP}@v1.0.0`, `/sumdb/${db.name}/lookup/${REL}@v1.1.0`];
    const lookups = await waitFor(() => {
      const l = offline.logs().filter((x) => x.log === 'access' && String(x.path).startsWith(`/sumdb/${db.name}/lookup/`));
      return wanted.every((w) => l.some((x) => x.path === w)) ? l : undefined;
    }, 'both lookups in the access log');
    expect(lookups.map((l) => [l.path, l.status])).toEqual(
      expect.arrayContaining([
        [`/sumdb/${db.name}/lookup/${APP}@v1.0.0`, 200],
        [`/sumdb/${db.name}/lookup/${REL}@v1.1.0`, 200],
      ]),
    );
    await nothingLeft();
  });

  test('a query naming a cached version is answered; a branch, a version or a module never cached is 404 with the offline line', async () => {
    const meta = await get(`${offline.url}/${REL}/@v/v1.0.0+meta.info`);
    expect([meta.status, JSON.parse(meta.text()).Version]).toEqual([200, 'v1.0.0']);
    const line = (subject: string, spec: string): string =>
      `not found: gomodproxy is offline and ${subject} is not in its cache; add it on a connected machine with gomodproxy prefetch ${spec} (then bring the data folder here), or with gomodproxy import <folder>`;
    expect(expectOneLineError(await get(`${offline.url}/${TIP}/@v/main.info`), 404)).toBe(
      line(`${TIP}@main (resolving a branch, tag or commit needs an upstream)`, `${TIP}@main`),
    );
    for (const ext of ['info', 'mod', 'zip']) {
      expect(expectOneLineError(await get(`${offline.url}/${REL}/@v/v1.9.9.${ext}`), 404)).toBe(line(`${REL}@v1.9.9`, `${REL}@v1.9.9`));
    }
    expect(expectOneLineError(await get(`${offline.url}/${NEVER}/@v/list`), 404)).toBe(line(`any version of ${NEVER}`, `${NEVER}@latest`));
    expect(expectOneLineError(await get(`${offline.url}/${NEVER}/@latest`), 404)).toBe(line(`any version of ${NEVER}`, `${NEVER}@latest`));
    // The checksum database: a record never kept, a tile never fetched.
    expect(expectOneLineError(await get(`${offline.url}/sumdb/${db.name}/lookup/${NEVER}@v1.0.0`), 404)).toMatch(
      new RegExp(
        `^not found: gomodproxy is offline and the ${db.name} record of ${NEVER}@v1\\.0\\.0 is not in its cache; add the module with gomodproxy prefetch`,
      ),
    );
    expect(expectOneLineError(await get(`${offline.url}/sumdb/${db.name}/tile/8/0/007`), 404)).toMatch(
      /^not found: gomodproxy is offline and tile\/8\/0\/007 of checksum database/,
    );
    expect((await get(`${offline.url}/sumdb/${db.name}/supported`)).status).toBe(200);
    expect((await get(`${offline.url}/readyz`)).status).toBe(200);
    await nothingLeft();
  });

  test('the go command prints the offline line for a module never cached', async () => {
    const env = await userEnv(offline.url);
    const [r] = await env.modDownloadJson([`${NEVER}@v1.0.0`], undefined, { allowErrors: true });
    expect(r?.Error).toContain(`${offline.url}/${NEVER}/@v/v1.0.0.info: 404 Not Found`);
    expect(r?.Error).toContain(
      `server response: not found: gomodproxy is offline and ${NEVER}@v1.0.0 is not in its cache; add it on a connected machine with gomodproxy prefetch ${NEVER}@v1.0.0`,
    );
    const get1 = await env.go(['get', `${NEVER}@latest`], {
      cwd: await env.newModule(await makeTempDir('offline-never'), 'example.com/user'),
      allowFail: true,
    });
    expect(get1.code).not.toBe(0);
    expect(get1.stderr).toContain(`server response: not found: gomodproxy is offline and any version of ${NEVER} is not in its cache`);
    await nothingLeft();
  });

  test('the 404 keeps the go command falling through to its next GOPROXY entry', async () => {
    const env = await createGoEnv({ goproxy: `${offline.url},${upstream.url}` });
    const [r] = await env.modDownloadJson([`${NEVER}@v1.0.0`]);
    expect(r?.Sum).toBe(world.get(`${NEVER}@v1.0.0`).Sum);
    // The go command went on to the upstream itself; the proxy still asked nothing.
    expect(upstream.requests.filter((q) => q.headers['x-gomodproxy-via'] !== undefined)).toEqual([]);
    expect(upstream.count(`/${NEVER}/@v/v1.0.0.zip`)).toBe(1);
    expect((await get(`${offline.url}/${esc(PRE)}/@v/list`)).text()).toBe('v0.1.0-alpha\nv0.2.0-beta\n');
  });
});
