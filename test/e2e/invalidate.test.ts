// `gomodproxy invalidate` against one server without Redis: through its admin API, with an
// admin's API token; a new version is listed at once instead of after cache.ttl; every worker
// drops it (relayed through the primary); a wrong or missing credential is refused with a line.
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { gomodproxy } from '../e2e-sumdb/util.js';
import { startProxyWithConfig } from '../e2e-access/util.js';
import type { ProxyProcess } from '../helpers/gomodproxy.js';
import { get } from '../helpers/http.js';
import { cleanupAll, makeTempDir } from '../helpers/tmp.js';
import { startTestUpstream, type TestUpstream } from '../helpers/upstream.js';
import { buildModuleWorld, type World } from '../helpers/world.js';
import { createGoEnv } from '../helpers/goenv.js';
import { listFiles, waitFor } from './util.js';

const M = 'example.com/gmp-inv/m';
const W = 'github.com/gmp-inv/Purged';
let world: World;
let dataDir: string;
let upstream: TestUpstream;
let proxy: ProxyProcess;
let token: string;
let reader: string;

beforeAll(async () => {
  world = await buildModuleWorld({ modules: [{ path: W, versions: [{ version: 'v1.0.0' }, { version: 'v1.1.0' }] }] });
  upstream = await startTestUpstream({ root: world.downloadDir });
  upstream.on(`/${M}/@v/list`, { replaceBody: 'v1.0.0\n' });
  dataDir = path.join(await makeTempDir('inv'), 'data');
  const created = await gomodproxy(['token', 'create', '--user', 'ops', '--data', dataDir]);
  expect(created.code, created.stderr).toBe(0);
  token = created.stdout.trim();
  reader = (await gomodproxy(['token', 'create', '--user', 'dev', '--data', dataDir])).stdout.trim();
  proxy = await startProxyWithConfig({ cache: { ttl: '1h' }, auth: { admin: ['user:ops'] } }, { upstream: upstream.url, dataDir, workers: 2 });
});
afterAll(cleanupAll);

/** The list as each of the two workers answers it (new connections until both have answered). */
async function listsOfEveryWorker(): Promise<Set<string>> {
  const byPid = new Map<number, string>();
  for (let i = 0; i < 200 && byPid.size < 2; i++) {
    const r = await get(`${proxy.url}/${M}/@v/list`, { connection: 'close' });
    const line = proxy
      .logs()
      .filter((l) => l.log === 'access' && l.path === `/${M}/@v/list`)
      .at(-1);
    byPid.set(Number(line?.pid), r.body.toString());
  }
  expect(byPid.size).toBe(2);
  return new Set(byPid.values());
}

describe('gomodproxy invalidate', () => {
  test('a new version is listed by every worker at once, instead of after cache.ttl', async () => {
    expect(await listsOfEveryWorker()).toEqual(new Set(['v1.0.0\n']));
    upstream.on(`/${M}/@v/list`, { replaceBody: 'v1.0.0\nv1.1.0\n' });
    expect(await listsOfEveryWorker()).toEqual(new Set(['v1.0.0\n']));
    const r = await gomodproxy(['invalidate', M, '--url', proxy.url, '--token', token]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^invalidated ${M} on ${proxy.url}: \\d+ stored answers dropped\\n$`));
    expect(await listsOfEveryWorker()).toEqual(new Set(['v1.0.0\nv1.1.0\n']));
    const audit = proxy.logs().find((l) => l.log === 'access' && l.path === '/-/api/invalidate');
    expect(audit).toMatchObject({ method: 'POST', kind: 'admin', status: 200, user: 'ops', module: M });
  });

  test('a user who is not an admin, no credential, or a bad target: refused with one line, exit 1', async () => {
    const notAdmin = await gomodproxy(['invalidate', M, '--url', proxy.url, '--token', reader]);
    expect(notAdmin.code).toBe(1);
    expect(notAdmin.stderr).toMatch(/refused \(403\): .*dev/);
    const anonymous = await gomodproxy(['invalidate', M, '--url', proxy.url]);
    expect(anonymous.code).toBe(1);
    expect(anonymous.stderr).toMatch(/refused \(401\)/);
    const bad = await gomodproxy(['invalidate', `${M}@latest`, '--url', proxy.url, '--token', token]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/invalid version "latest"/);
  });
});

describe('DELETE /-/api/modules/<path>/@v/<version>', () => {
  const EW = 'github.com/gmp-inv/!purged';
  const del = (target: string, tok?: string) =>
    import('undici').then(({ request }) =>
      request(`${proxy.url}/-/api/modules/${target}`, { method: 'DELETE', headers: tok ? { authorization: `Bearer ${tok}` } : {} }),
    );

  test('purges a version from the store and every worker; it comes back, byte-exact, from the upstream', async () => {
    const env = await createGoEnv({ goproxy: proxy.url });
    const [first] = await env.modDownloadJson([`${W}@v1.0.0`]);
    expect(first?.Sum).toBe(world.get(`${W}@v1.0.0`).Sum);
    const files = async (): Promise<string[]> => (await listFiles(dataDir)).filter((f) => f.startsWith(`${EW}/@v/v1.0.0.`)).sort();
    // Where it came from is recorded beside it, just after its .info.
    await waitFor(async () => ((await files()).length === 5 ? true : undefined), 'the version and its origin');
    expect(await files()).toEqual([`${EW}/@v/v1.0.0.info`, `${EW}/@v/v1.0.0.mod`, `${EW}/@v/v1.0.0.origin`, `${EW}/@v/v1.0.0.zip`, `${EW}/@v/v1.0.0.ziphash`]);
    const before = upstream.count(`/${EW}/@v/v1.0.0.zip`);

    const refused = await del(`${W}/@v/v1.0.0`, reader);
    expect(refused.statusCode).toBe(403);
    await refused.body.dump();
    const res = await del(`${W}/@v/v1.0.0`, token);
    expect(res.statusCode).toBe(200);
    const body = (await res.body.json()) as { purged: { module: string; version: string }; deleted: string[] };
    expect(body.purged).toEqual({ module: W, version: 'v1.0.0' });
    expect(body.deleted.sort()).toEqual([
      `${EW}/@v/v1.0.0.info`,
      `${EW}/@v/v1.0.0.mod`,
      `${EW}/@v/v1.0.0.origin`,
      `${EW}/@v/v1.0.0.zip`,
      `${EW}/@v/v1.0.0.ziphash`,
    ]);
    expect(await files()).toEqual([]);
    const line = await waitFor(() => proxy.logs().find((l) => l.log === 'access' && l.method === 'DELETE' && l.status === 200), 'the purge in the access log');
    expect(line).toMatchObject({ kind: 'admin', status: 200, user: 'ops', module: W, version: 'v1.0.0' });

    // Gone from every worker's memory: each fetches it again (once), and gets the same bytes.
    const again = await (await createGoEnv({ goproxy: proxy.url })).modDownloadJson([`${W}@v1.0.0`]);
    expect(again[0]?.Sum).toBe(world.get(`${W}@v1.0.0`).Sum);
    expect(upstream.count(`/${EW}/@v/v1.0.0.zip`)).toBe(before + 1);
    // Nothing to purge, a bad version or path: JSON errors.
    const none = await del(`${EW}/@v/v1.1.0`, token);
    expect(none.statusCode).toBe(404);
    expect(((await none.body.json()) as { error: string }).error).toMatch(/not in the cache; nothing was purged/);
    const bad = await del(`${W}/@v/latest`, token);
    expect(bad.statusCode).toBe(400);
    expect(((await bad.body.json()) as { error: string }).error).toMatch(/invalid version "latest"/);
  });
});
