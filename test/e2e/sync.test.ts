// Scheduled sync against a server with two workers over one data folder: a job that runs every
// second and watches a pattern fetches a version as soon as the upstream publishes it, with no
// client asking, and every worker lists it at once although lists are cached for an hour. The
// job ran once per tick (one upstream request for the new zip; no two runs for one tick, none
// overlapping), and its metrics and status say what it did. A job run by hand (POST
// /-/api/sync/<name>) watches a module path before any version of it is cached.
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { cachedFile, exists, gomodproxy } from '../e2e-sumdb/util.js';
import { startProxyWithConfig } from '../e2e-access/util.js';
import { createGoEnv } from '../helpers/goenv.js';
import { startProxy, type ProxyProcess } from '../helpers/gomodproxy.js';
import { get, http, type HttpResponse } from '../helpers/http.js';
import { cleanupAll, makeTempDir } from '../helpers/tmp.js';
import { startTestUpstream, type TestUpstream } from '../helpers/upstream.js';
import { addVersionToWorld, buildModuleWorld, type World } from '../helpers/world.js';
import { waitFor } from './util.js';

const S = 'github.com/gmp-sync/s';
const T = 'github.com/gmp-sync/t';

interface SyncJob {
  id: string;
  kind: 'sync';
  name: string;
  state: 'queued' | 'running' | 'succeeded' | 'failed';
  runner: string;
  created: string;
  started?: string;
  finished?: string;
  progress: { fetched: number; present: number; failed: number };
  failures: unknown[];
  sync: { tick?: string; modules: number; refreshed: number; versionsAdded: number };
  error?: string;
}

interface SyncStatus {
  name: string;
  schedule: string;
  nextRun: string | null;
  running: boolean;
  lastRun?: { job: string; result: string; versionsAdded: number; failures: number };
  lastSuccess?: string;
}

let world: World;
let upstream: TestUpstream;
let admin: string;

beforeAll(async () => {
  world = await buildModuleWorld(
    {
      modules: [
        { path: S, versions: [{ version: 'v1.0.0' }] },
        { path: T, versions: [{ version: 'v0.1.0' }, { version: 'v0.2.0' }] },
      ],
    },
    { fresh: true },
  );
  upstream = await startTestUpstream({ root: world.downloadDir });
}, 240_000);
afterAll(cleanupAll);

function api(proxy: ProxyProcess, p: string, method: 'GET' | 'POST' = 'GET'): Promise<HttpResponse> {
  return http(`${proxy.url}/-/api/${p}`, { method, headers: { authorization: `Bearer ${admin}`, connection: 'close' } });
}

function metric(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    sum += Number(line.split(' ').at(-1));
  }
  return sum;
}

/** The list as each of the two workers answers it (new connections until both have). */
async function listsOfEveryWorker(proxy: ProxyProcess, mod: string): Promise<Set<string>> {
  const byPid = new Map<number, string>();
  for (let i = 0; i < 200 && byPid.size < 2; i++) {
    const r = await get(`${proxy.url}/${mod}/@v/list`, { connection: 'close' });
    const line = proxy
      .logs()
      .filter((l) => l.log === 'access' && l.path === `/${mod}/@v/list`)
      .at(-1);
    byPid.set(Number(line?.pid), r.body.toString());
  }
  expect(byPid.size).toBe(2);
  return new Set(byPid.values());
}

describe('a sync job every second, over two workers', () => {
  let proxy: ProxyProcess;
  let dataDir: string;

  beforeAll(async () => {
    dataDir = path.join(await makeTempDir('sync'), 'data');
    admin = (await gomodproxy(['token', 'create', '--user', 'ops', '--data', dataDir])).stdout.trim();
    // What a client fetched before: the cached module the pattern will match.
    const before = await startProxy({ upstream: upstream.url, dataDir });
    const [first] = await (await createGoEnv({ goproxy: before.url })).modDownloadJson([`${S}@v1.0.0`]);
    expect(first?.Sum).toBe(world.get(`${S}@v1.0.0`).Sum);
    await before.stop();
    proxy = await startProxyWithConfig(
      {
        cache: { ttl: '1h' },
        auth: { admin: ['user:ops'] },
        sync: [{ name: 'mirror', schedule: '* * * * * *', watch: ['github.com/gmp-sync/*'], versions: 'all' }],
      },
      { upstream: upstream.url, dataDir, workers: 2 },
    );
  });

  test('a version the upstream publishes is fetched with no client asking, listed by every worker at once, once per tick', async () => {
    // Both workers remember the list (for an hour, as far as cache.ttl goes).
    expect(await listsOfEveryWorker(proxy, S)).toEqual(new Set(['v1.0.0\n']));
    // The go command writes a version's list line before its zip: the upstream lists it once it is whole.
    const listRule = upstream.on(`/${S}/@v/list`, { replaceBody: 'v1.0.0\n' });
    const published = await addVersionToWorld(world, S, { version: 'v1.1.0' });
    listRule.remove();
    const zip = `/${S}/@v/v1.1.0.zip`;
    await waitFor(() => exists(cachedFile(dataDir, S, 'v1.1.0', 'info')), 'the sync job to fetch v1.1.0');
    expect(await exists(cachedFile(dataDir, S, 'v1.1.0', 'zip'))).toBe(true);
    expect(upstream.count(zip)).toBe(1);
    // No client asked for it: no request for it reached the proxy but the job's.
    expect(proxy.logs().filter((l) => l.log === 'access' && typeof l.path === 'string' && l.path.includes('v1.1.0') && l.ip !== '')).toEqual([]);
    expect(await listsOfEveryWorker(proxy, S)).toEqual(new Set(['v1.0.0\nv1.1.0\n']));

    // Served from the cache, byte-exact with the upstream.
    const r = await get(`${proxy.url}${zip}`);
    expect(r.status).toBe(200);
    expect(r.headers['x-gomodproxy-cache']).toBe('hit');
    const [got] = await (await createGoEnv({ goproxy: proxy.url })).modDownloadJson([`${S}@v1.1.0`]);
    expect([got?.Sum, got?.GoModSum]).toEqual([published?.Sum, published?.GoModSum]);

    // Later runs find it there: still one upstream request for it.
    const runs = async (): Promise<SyncJob[]> => (await api(proxy, 'jobs?kind=sync&limit=1000')).json<{ jobs: SyncJob[] }>().jobs;
    const seen = (await runs()).length;
    await waitFor(async () => (await runs()).filter((j) => j.state === 'succeeded').length >= seen + 2, 'two more runs');
    expect(upstream.count(zip)).toBe(1);

    // Both workers schedule the job; one run per tick across them, never two at once.
    expect(
      new Set(
        proxy
          .logs()
          .filter((l) => l.msg === 'sync jobs scheduled')
          .map((l) => l.pid),
      ).size,
    ).toBe(2);
    const done = (await runs()).filter((j) => j.finished !== undefined).sort((a, b) => a.started!.localeCompare(b.started!));
    expect(done.length).toBeGreaterThanOrEqual(3);
    const ticks = done.map((j) => j.sync.tick);
    expect(new Set(ticks).size).toBe(ticks.length);
    for (let i = 1; i < done.length; i++) expect(done[i]!.started! >= done[i - 1]!.finished!, `${done[i - 1]!.id} and ${done[i]!.id} overlap`).toBe(true);
    expect(done.every((j) => j.state === 'succeeded' && j.sync.modules === 1 && j.sync.refreshed === 1)).toBe(true);
    expect(done.reduce((n, j) => n + j.sync.versionsAdded, 0)).toBe(1);

    const metrics = (await get(`${proxy.url}/metrics`)).text();
    expect(metric(metrics, 'gomodproxy_sync_versions_added_total', { job: 'mirror' })).toBe(1);
    expect(metric(metrics, 'gomodproxy_sync_failures_total', { job: 'mirror' })).toBe(0);
    expect(metric(metrics, 'gomodproxy_sync_runs_total', { job: 'mirror', result: 'succeeded' })).toBeGreaterThanOrEqual(3);
    expect(metric(metrics, 'gomodproxy_sync_last_success_timestamp_seconds', { job: 'mirror' })).toBeGreaterThan(Date.parse('2024-01-01') / 1000);
    expect(metric(metrics, 'gomodproxy_sync_duration_seconds_count', { job: 'mirror' })).toBeGreaterThanOrEqual(3);

    const status = (await api(proxy, 'sync')).json<{ sync: SyncStatus[] }>().sync;
    expect(status).toEqual([
      expect.objectContaining({
        name: 'mirror',
        schedule: '* * * * * *',
        nextRun: expect.any(String),
        lastSuccess: expect.any(String),
        lastRun: expect.objectContaining({ failures: 0 }),
      }),
    ]);
    // While runs come every second, one by hand finds the job busy or runs it: never two at once.
    const now = await api(proxy, 'sync/mirror', 'POST');
    expect([202, 409]).toContain(now.status);
  });
});

describe('a sync job run by hand', () => {
  test('watches a module path before anything of it is cached, runs its prefetch file again, and names one it cannot read; unknown jobs are 404', async () => {
    const dataDir = path.join(await makeTempDir('sync-now'), 'data');
    admin = (await gomodproxy(['token', 'create', '--user', 'ops', '--data', dataDir])).stdout.trim();
    const lists = await makeTempDir('sync-lists');
    await writeFile(path.join(lists, 'modules.txt'), `# what the offline build needs\n${T}@v0.1.0\n`);
    const proxy = await startProxyWithConfig(
      {
        auth: { admin: ['user:ops'] },
        sync: [
          { name: 'yearly', schedule: '0 0 1 1 *', timezone: 'UTC', watch: T, versions: { newest: 1 } },
          { name: 'from-file', schedule: '0 0 1 1 *', prefetch: path.join(lists, 'modules.txt') },
          { name: 'no-file', schedule: '0 0 1 1 *', prefetch: path.join(lists, 'missing.txt') },
        ],
      },
      { upstream: upstream.url, dataDir },
    );
    const runNow = async (name: string): Promise<SyncJob> => {
      const r = await api(proxy, `sync/${name}`, 'POST');
      expect(r.status, r.text()).toBe(202);
      const url = r.json<{ url: string }>().url;
      return waitFor(async () => {
        const j = (await http(`${proxy.url}${url}`, { headers: { authorization: `Bearer ${admin}` } })).json<{ job: SyncJob }>().job;
        return j.state === 'succeeded' || j.state === 'failed' ? j : undefined;
      }, `the run of ${name} to end`);
    };
    const status = (await api(proxy, 'sync')).json<{ sync: SyncStatus[] }>().sync;
    expect(status[0]).toEqual(expect.objectContaining({ name: 'yearly', running: false, nextRun: expect.stringMatching(/-01-01T00:00:00/) }));
    expect(status[0]?.lastRun).toBeUndefined();

    const job = await runNow('yearly');
    expect(job).toMatchObject({ kind: 'sync', name: 'yearly', state: 'succeeded', sync: { modules: 1, refreshed: 1, versionsAdded: 1 } });
    expect(job.sync.tick).toBeUndefined();
    // The newest of its one major version, and nothing older.
    expect(await exists(cachedFile(dataDir, T, 'v0.2.0', 'zip'))).toBe(true);
    expect(await exists(cachedFile(dataDir, T, 'v0.1.0', 'info'))).toBe(false);
    // The job's status follows its record.
    const after = await waitFor(async () => {
      const st = (await api(proxy, 'sync')).json<{ sync: SyncStatus[] }>().sync[0];
      return st?.lastRun?.result !== 'running' && !st?.running ? st : undefined;
    }, 'the status to show the run ended');
    expect(after.lastRun).toMatchObject({ job: job.id, result: 'succeeded', versionsAdded: 1, failures: 0 });
    expect(after.lastSuccess).toEqual(expect.any(String));

    // The prefetch file is read at each run: what it names is fetched; a file that is not there fails the run, saying so.
    expect(await runNow('from-file')).toMatchObject({ state: 'succeeded', sync: { modules: 0, versionsAdded: 1 } });
    expect(await exists(cachedFile(dataDir, T, 'v0.1.0', 'zip'))).toBe(true);
    const missing = await runNow('no-file');
    expect(missing.state).toBe('failed');
    expect(missing.error).toMatch(/^the prefetch file was not run: cannot read .*missing\.txt \(ENOENT\); fix sync\[\]\.prefetch$/);

    const unknown = await api(proxy, 'sync/nightly', 'POST');
    expect(unknown.status).toBe(404);
    expect(unknown.json<{ error: string }>().error).toBe('no sync job "nightly"; configured: yearly, from-file, no-file');
  });
});
