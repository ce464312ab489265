// The admin API's read side against a real server with two workers, filled by the real go
// command: stats, search and module pages come from the module index, which every worker keeps
// as the others commit and purge (announced through the primary), and which a rescan brings up
// to date with what another instance wrote behind its back.
import { cp, stat } from 'node:fs/promises';
import path from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { escapePath } from '../../src/module/index.js';
import { gomodproxy } from '../e2e-sumdb/util.js';
import { startProxyWithConfig } from '../e2e-access/util.js';
import type { ProxyProcess } from '../helpers/gomodproxy.js';
import { createGoEnv } from '../helpers/goenv.js';
import { cleanupAll, makeTempDir } from '../helpers/tmp.js';
import { startTestUpstream, type TestUpstream } from '../helpers/upstream.js';
import { buildModuleWorld, type World } from '../helpers/world.js';
import { waitFor } from './util.js';

const A = 'github.com/gmp-adm/Alpha';
const B = 'github.com/gmp-adm/beta';
const C = 'github.com/gmp-adm/gamma-alpha';
const LATE = 'github.com/gmp-adm/late';
let world: World;
let dataDir: string;
let upstream: TestUpstream;
let proxy: ProxyProcess;
let token: string;
let reader: string;

interface Json {
  [k: string]: unknown;
}

async function api(p: string, opts: { token?: string | undefined; method?: 'GET' | 'DELETE' } = {}): Promise<{ status: number; body: Json }> {
  const t = opts.token === undefined && !('token' in opts) ? token : opts.token;
  const res = await request(`${proxy.url}/-/api/${p}`, {
    method: opts.method ?? 'GET',
    headers: { connection: 'close', ...(t ? { authorization: `Bearer ${t}` } : {}) },
  });
  expect(res.headers['content-type']).toMatch(/^application\/json/);
  return { status: res.statusCode, body: (await res.body.json()) as Json };
}

/** Asks until both workers have answered (new connections spread over them), returning each one's answer. */
async function fromEveryWorker(p: string): Promise<Json[]> {
  const byPid = new Map<number, Json>();
  for (let i = 0; i < 200 && byPid.size < 2; i++) {
    const r = await api(p);
    expect(r.status).toBe(200);
    const line = proxy
      .logs()
      .filter((l) => l.log === 'access' && l.path === `/-/api/${p}`)
      .at(-1);
    byPid.set(Number(line?.pid), r.body);
  }
  expect(byPid.size).toBe(2);
  return [...byPid.values()];
}

beforeAll(async () => {
  world = await buildModuleWorld({
    modules: [
      { path: A, versions: [{ version: 'v1.0.0' }, { version: 'v1.1.0' }, { version: 'v1.2.0-rc.1' }] },
      { path: B, versions: [{ version: 'v0.1.0' }] },
      { path: C, versions: [{ version: 'v0.3.0' }] },
      { path: LATE, versions: [{ version: 'v1.0.0' }] },
    ],
  });
  upstream = await startTestUpstream({ root: world.downloadDir });
  dataDir = path.join(await makeTempDir('admin-api'), 'data');
  token = (await gomodproxy(['token', 'create', '--user', 'ops', '--data', dataDir])).stdout.trim();
  reader = (await gomodproxy(['token', 'create', '--user', 'dev', '--data', dataDir])).stdout.trim();
  proxy = await startProxyWithConfig(
    // No rescan during the test: what every worker knows, it heard from the others.
    {
      cache: { indexRescan: '0s' },
      auth: { admin: ['user:ops'] },
      routes: [{ match: C, private: true, sources: upstream.url }],
      gc: { maxBytes: '1GiB', schedule: '0 3 * * *' },
      sync: [{ name: 'nightly', schedule: '0 4 * * *', watch: ['github.com/gmp-adm/*'] }],
    },
    { upstream: upstream.url, dataDir, workers: 2 },
  );
  const env = await createGoEnv({ goproxy: proxy.url, goprivate: '' });
  await env.modDownloadJson([`${A}@v1.0.0`, `${A}@v1.1.0`, `${A}@v1.2.0-rc.1`, `${B}@v0.1.0`, `${C}@v0.3.0`]);
  // Hits, for the ratio.
  await (await createGoEnv({ goproxy: proxy.url, goprivate: '' })).modDownloadJson([`${A}@v1.0.0`, `${B}@v0.1.0`]);
});
afterAll(cleanupAll);

describe('GET /-/api/modules', () => {
  test('finds modules by path prefix first, then by substring, case-insensitively, in pages, in every worker', async () => {
    for (const body of await fromEveryWorker('modules?q=github.com/gmp-adm/')) {
      expect(body.total).toBe(3);
      expect((body.modules as Json[]).map((m) => m.path)).toEqual([A, B, C]);
    }
    const { body } = await api('modules?q=ALPHA');
    // Alpha's path does not start with "alpha", so both contain it: path order.
    expect((body.modules as Json[]).map((m) => m.path)).toEqual([A, C]);
    const alpha = (body.modules as Json[])[0] as Json;
    expect(alpha).toMatchObject({ path: A, versions: 3, latest: 'v1.1.0' });
    const page = await api('modules?q=gmp-adm&offset=1&limit=1');
    expect(page.body).toMatchObject({ total: 3, offset: 1, limit: 1 });
    expect((page.body.modules as Json[]).map((m) => m.path)).toEqual([B]);
    const bad = await api('modules?limit=ten');
    expect(bad.status).toBe(400);
    expect(bad.body.error).toMatch(/limit must be a non-negative integer/);
  });

  test('a module page: versions newest first, with the .info time, sizes on disk, source and verification', async () => {
    const { status, body } = await api(`modules/${A}`);
    expect(status).toBe(200);
    const versions = body.versions as Json[];
    expect(versions.map((v) => v.version)).toEqual(['v1.2.0-rc.1', 'v1.1.0', 'v1.0.0']);
    for (const v of versions) {
      const e = world.get(`${A}@${v.version as string}`);
      expect(v.time).toBe(e.Info.Time);
      const dir = path.join(dataDir, escapePath(A), '@v');
      const size = v.size as Json;
      expect(size.zip).toBe((await stat(path.join(dir, `${v.version as string}.zip`))).size);
      expect(size.mod).toBe((await stat(path.join(dir, `${v.version as string}.mod`))).size);
      expect(size.info).toBe((await stat(path.join(dir, `${v.version as string}.info`))).size);
      expect(v.source).toBe(upstream.url);
      expect(v.verification).toBe('unverified');
    }
    expect(body).toMatchObject({ module: A, latest: 'v1.1.0', private: false });
    // A private route's versions are private, whoever asks.
    const priv = await api(`modules/${C}`);
    expect(priv.body).toMatchObject({ private: true });
    expect((priv.body.versions as Json[])[0]).toMatchObject({ version: 'v0.3.0', verification: 'private' });
    // One version; the case-encoded path works too.
    const one = await api(`modules/${escapePath(A)}/@v/v1.1.0`);
    expect(one.body).toMatchObject({ module: A, version: 'v1.1.0', time: world.get(`${A}@v1.1.0`).Info.Time });
    expect((await api(`modules/${A}/@v/v9.9.9`)).status).toBe(404);
    expect((await api('modules/example.com/none')).body.error).toMatch(/is not in the cache/);
    expect((await api('modules/not a path')).status).toBe(400);
  });

  test('a purge through one worker leaves the version out of every worker\u2019s index', async () => {
    const del = await api(`modules/${B}/@v/v0.1.0`, { method: 'DELETE' });
    expect(del.status).toBe(200);
    for (const body of await fromEveryWorker('modules?q=gmp-adm/beta')) expect(body.total).toBe(0);
  });

  test('what another instance stores behind the server\u2019s back appears at the next rescan', async () => {
    const otherData = path.join(await makeTempDir('admin-api-rescan'), 'data');
    const t = (await gomodproxy(['token', 'create', '--user', 'ops', '--data', otherData])).stdout.trim();
    const other = await startProxyWithConfig({ cache: { indexRescan: '1s' }, auth: { admin: ['user:ops'] } }, { upstream: upstream.url, dataDir: otherData });
    const count = async (): Promise<number> => {
      const res = await request(`${other.url}/-/api/modules?q=${LATE}`, { headers: { authorization: `Bearer ${t}` } });
      return ((await res.body.json()) as Json).total as number;
    };
    expect(await count()).toBe(0);
    // Copied into the data folder as an instance sharing it would have written it: nobody announced it.
    const from = path.join(world.downloadDir, escapePath(LATE), '@v');
    await cp(from, path.join(otherData, escapePath(LATE), '@v'), { recursive: true });
    await waitFor(async () => ((await count()) === 1 ? true : undefined), 'the copied module in the index');
  });
});

describe('GET /-/api/stats', () => {
  test('counts what the store holds and how requests were answered', async () => {
    const { status, body } = await api('stats');
    expect(status).toBe(200);
    const store = body.store as Json;
    expect(store.description).toMatch(/^fs:/);
    // Alpha's three versions and gamma's (beta was purged above).
    expect(store).toMatchObject({ modules: 2, versions: 4, zips: 4 });
    expect(store.bytes).toBeGreaterThan(store.zipBytes as number);
    const requests = body.requests as Json;
    expect(requests.hits).toBeGreaterThan(0);
    expect(requests.misses).toBeGreaterThan(0);
    expect(requests.hitRatio).toBeGreaterThan(0);
    expect(requests.hitRatio).toBeLessThan(1);
    expect(body.upstreams).toEqual([expect.objectContaining({ id: upstream.url, healthy: true })]);
    expect(body).toMatchObject({ offline: false, coordination: { degraded: null } });
    // The parts other concerns add: garbage collection's limits, the sync jobs.
    expect(body.gc).toMatchObject({ maxBytes: 2 ** 30, schedule: { cron: '0 3 * * *' }, lastRun: null });
    expect(body.sync).toEqual([expect.objectContaining({ name: 'nightly', schedule: '0 4 * * *', running: false })]);
    // The web UI's operations page says the same, in words.
    const page = await request(`${proxy.url}/-/ui/admin`, { headers: { authorization: `Bearer ${token}` } });
    expect(page.statusCode).toBe(200);
    const text = await page.body.text();
    expect(text).toContain('Module data at most 1.0 GiB, on schedule 0 3 * * *; not run yet.');
    const row = text.replace(/\s+/g, ' ');
    expect(row).toMatch(
      /<td data-label="Job">nightly<\/td> <td data-label="Schedule"><code>0 4 \* \* \*<\/code><\/td> <td data-label="Last run">–<\/td> <td data-label="Result">not run yet<\/td>/,
    );
  });

  test('anonymous users and users who are not admins get a JSON refusal', async () => {
    const anonymous = await api('stats', { token: undefined });
    expect(anonymous.status).toBe(401);
    expect(anonymous.body.error).toEqual(expect.any(String));
    const dev = await api('modules?q=', { token: reader });
    expect(dev.status).toBe(403);
    expect(dev.body.error).toMatch(/dev/);
    const wrong = await api('stats', { method: 'DELETE' });
    expect(wrong.status).toBe(405);
    expect(wrong.body.error).toMatch(/use GET \/-\/api\/stats/);
  });
});
