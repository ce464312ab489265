// POST /-/api/prefetch against a server with two workers: an administrator's job fills the cache
// through the server's own app (a private socket), its record is read from either worker while it
// runs and once it is done, and afterwards, with the upstream gone, the real go command gets every
// version with the same h1: hashes as straight from the upstream. Requests of jobs are counted
// apart from clients'. Unauthenticated, non-admin, malformed and offline calls are refused in JSON.
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { cachedFile, exists, gomodproxy } from '../e2e-sumdb/util.js';
import { startProxyWithConfig } from '../e2e-access/util.js';
import { createGoEnv } from '../helpers/goenv.js';
import type { ProxyProcess } from '../helpers/gomodproxy.js';
import { get, http, type HttpResponse } from '../helpers/http.js';
import { cleanupAll, makeTempDir } from '../helpers/tmp.js';
import { startTestUpstream, type TestUpstream } from '../helpers/upstream.js';
import { buildModuleWorld, type World } from '../helpers/world.js';
import { waitFor } from './util.js';

const A = 'github.com/gmp-jobs/a';
const B = 'github.com/gmp-jobs/B';
const C = 'github.com/gmp-jobs/c';

interface Job {
  id: string;
  kind: string;
  state: 'queued' | 'running' | 'succeeded' | 'failed';
  what: string;
  by?: string;
  runner: string;
  progress: { done: number; total: number; fetched: number; present: number; failed: number; bytes: number };
  failures: { module?: string; version?: string; query?: string; reason: string }[];
  error?: string;
}

let world: World;
let upstream: TestUpstream;
let proxy: ProxyProcess;
let dataDir: string;
let admin: string;
let developer: string;

beforeAll(async () => {
  world = await buildModuleWorld({
    modules: [
      { path: A, versions: [{ version: 'v1.0.0' }, { version: 'v1.1.0' }] },
      { path: B, versions: [{ version: 'v1.0.0', goMod: `module ${B}\n\ngo 1.21\n\nrequire ${A} v1.0.0\n` }] },
      { path: C, versions: [{ version: 'v0.1.0' }] },
    ],
  });
  upstream = await startTestUpstream({ root: world.downloadDir });
  dataDir = path.join(await makeTempDir('jobs'), 'data');
  admin = (await gomodproxy(['token', 'create', '--user', 'ops', '--data', dataDir])).stdout.trim();
  developer = (await gomodproxy(['token', 'create', '--user', 'dev', '--data', dataDir])).stdout.trim();
  // C may be read by ops alone: the jobs' own requests must not be refused for it.
  proxy = await startProxyWithConfig(
    { routes: [{ match: C, read: ['user:ops'] }], auth: { admin: ['user:ops'] } },
    { upstream: upstream.url, dataDir, workers: 2 },
  );
}, 240_000);
afterAll(cleanupAll);

function api(p: string, opts: { method?: 'GET' | 'POST'; token?: string; body?: unknown } = {}): Promise<HttpResponse> {
  const headers: Record<string, string> = { connection: 'close' };
  if (opts.token !== undefined) headers.authorization = `Bearer ${opts.token}`;
  if (opts.body !== undefined) headers['content-type'] = 'application/json';
  return http(`${proxy.url}/-/api/${p}`, {
    method: opts.method ?? 'GET',
    headers,
    body: opts.body === undefined ? undefined : typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body),
  });
}

/**
 * Polls the job on new connections (so both workers answer) until it has ended and each worker
 * has answered for it; returns it and the pids that answered.
 */
async function untilDone(url: string): Promise<{ job: Job; answeredBy: Set<number> }> {
  let answeredBy = new Set<number>();
  const job = await waitFor(async () => {
    const r = await http(`${proxy.url}${url}`, { headers: { authorization: `Bearer ${admin}`, connection: 'close' } });
    expect(r.status, r.text()).toBe(200);
    answeredBy = new Set(
      proxy
        .logs()
        .filter((l) => l.log === 'access' && l.path === url)
        .map((l) => Number(l.pid)),
    );
    const j = r.json<{ job: Job }>().job;
    return (j.state === 'succeeded' || j.state === 'failed') && answeredBy.size === 2 ? j : undefined;
  }, `job ${url} to end, as both workers answer`);
  return { job, answeredBy };
}

function metric(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    sum += Number(line.split(' ').at(-1));
  }
  return sum;
}

describe('POST /-/api/prefetch', () => {
  test('refused in JSON without a credential, for a non-admin, and for a body it cannot read', async () => {
    const anonymous = await api('prefetch', { method: 'POST', body: { modules: [`${A}@v1.0.0`] } });
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers['content-type']).toMatch(/^application\/json/);
    expect(anonymous.json<{ error: string }>().error).toBeTruthy();
    const dev = await api('prefetch', { method: 'POST', token: developer, body: { modules: [`${A}@v1.0.0`] } });
    expect(dev.status).toBe(403);
    expect(dev.json<{ error: string }>().error).toMatch(/dev/);
    const cases: [unknown, RegExp][] = [
      [{ modules: ['github.com/gmp-jobs/a'] }, /modules\[0\]: "github.com\/gmp-jobs\/a" is not module@version/],
      [{ modules: [`${A}@v1.0.0`], deps: 'yes' }, /"deps" must be true or false/],
      [{ module: `${A}@v1.0.0` }, /unknown field "module"; the body takes "modules", "text" \(with "name"\), and "deps"/],
      [{ text: `${A}@v1.0.0\nnot a spec\n` }, /^text:2: "not" is not module@version/],
      [{ text: `${A} v1.0.0 h1:abc=\nnonsense\n`, name: 'go.sum' }, /^go.sum:2: expected "<module> <version>\[\/go.mod\] h1:<hash>"/],
      [{ text: 'x', name: '../go.sum' }, /"name" must be a file name/],
      [{}, /nothing to fetch/],
      ['[1, 2]', /must be a JSON object/],
    ];
    for (const [body, message] of cases) {
      const r = await api('prefetch', { method: 'POST', token: admin, body });
      expect({ status: r.status, error: r.json<{ error: string }>().error }).toEqual({ status: 400, error: expect.stringMatching(message) });
    }
    expect(upstream.requests).toEqual([]);
  });

  test('a job fills the cache through either worker; afterwards, with the upstream gone, the go command gets the same hashes', async () => {
    const posted = await api('prefetch', { method: 'POST', token: admin, body: { modules: [`${B}@v1.0.0`, `${A}@latest`], deps: true } });
    expect(posted.status, posted.text()).toBe(202);
    const { job: first, url } = posted.json<{ job: Job; url: string }>();
    expect(url).toBe(`/-/api/jobs/${first.id}`);
    expect(posted.headers.location).toBe(url);
    expect(first).toMatchObject({ kind: 'prefetch', by: 'ops', what: 'prefetch 2 modules, with their requirements' });
    expect(['queued', 'running']).toContain(first.state);

    const { job, answeredBy } = await untilDone(url);
    // Polled on new connections: each worker read the record from the store, not only the one running it.
    expect(answeredBy.size).toBe(2);
    expect(job.failures).toEqual([]);
    expect(job).toMatchObject({ state: 'succeeded', progress: { total: 3, done: 3, fetched: 3, present: 0, failed: 0 } });
    expect(job.progress.bytes).toBeGreaterThan(0);
    for (const k of [`${B}@v1.0.0`, `${A}@v1.1.0`, `${A}@v1.0.0`]) {
      const [m, v] = k.split('@') as [string, string];
      for (const ext of ['info', 'mod', 'zip'] as const) expect(await exists(cachedFile(dataDir, m, v, ext)), `${k} .${ext}`).toBe(true);
    }

    // A second job for what is there: present, and not one upstream request.
    const before = upstream.requests.length;
    const again = await api('prefetch', { method: 'POST', token: admin, body: { text: `module example.com/app\n\ngo 1.21\n\nrequire ${A} v1.1.0\n` } });
    expect(again.status, again.text()).toBe(202);
    const second = (await untilDone(again.json<{ url: string }>().url)).job;
    expect(second).toMatchObject({ state: 'succeeded', what: 'prefetch a text (go.mod, 1 entries)', progress: { total: 1, present: 1, fetched: 0 } });
    expect(upstream.requests.length).toBe(before);

    // The jobs' requests are not clients' requests.
    const metrics = (await get(`${proxy.url}/metrics`)).text();
    expect(metric(metrics, 'gomodproxy_job_requests_total', { kind: 'zip' })).toBeGreaterThanOrEqual(3);
    expect(metric(metrics, 'gomodproxy_requests_total', { kind: 'zip' })).toBe(0);

    const listed = await api('jobs?kind=prefetch', { token: admin });
    expect(listed.json<{ jobs: Job[] }>().jobs.map((j) => j.id)).toEqual([second.id, first.id]);

    await upstream.kill();
    const env = await createGoEnv({ goproxy: proxy.url });
    const got = await env.modDownloadJson([`${B}@v1.0.0`, `${A}@v1.1.0`, `${A}@v1.0.0`]);
    expect(got.map((g) => `${g.Path} ${g.Version} ${g.Sum} ${g.GoModSum} ${g.Error ?? ''}`)).toEqual(
      [`${B}@v1.0.0`, `${A}@v1.1.0`, `${A}@v1.0.0`].map((k) => {
        const w = world.get(k);
        return `${w.Path} ${w.Version} ${w.Sum} ${w.GoModSum} `;
      }),
    );
    await upstream.restart();
  });

  test('a module only ops may read is fetched all the same; a version the upstream lacks fails the job, named with the server line', async () => {
    const denied = await get(`${proxy.url}/${C}/@v/v0.1.0.info`);
    expect(denied.status).not.toBe(200);
    const posted = await api('prefetch', { method: 'POST', token: admin, body: { modules: [`${C}@v0.1.0`, `${C}@v0.9.9`] } });
    const { job } = await untilDone(posted.json<{ url: string }>().url);
    expect(job).toMatchObject({ state: 'failed', progress: { fetched: 1, failed: 1 } });
    expect(job.failures).toEqual([{ module: C, version: 'v0.9.9', reason: expect.stringMatching(/^\.mod: not found/) }]);
    expect(await exists(cachedFile(dataDir, C, 'v0.1.0', 'zip'))).toBe(true);
  });

  test('GET /-/api/jobs/<id> of no job: 404 in JSON', async () => {
    for (const id of ['20200101T000000.000Z-00000000', 'nonsense']) {
      const r = await api(`jobs/${id}`, { token: admin });
      expect(r.status).toBe(404);
      expect(r.json<{ error: string }>().error).toMatch(/^no job ".*": it never existed, or is older than the jobs.history kept/);
    }
  });
});

describe('offline', () => {
  test('POST /-/api/prefetch is refused in JSON: nothing can be fetched', async () => {
    const offline = await startProxyWithConfig({ offline: true, auth: { admin: ['user:ops'] } }, { dataDir });
    const r = await http(`${offline.url}/-/api/prefetch`, {
      method: 'POST',
      headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
      body: JSON.stringify({ modules: [`${A}@v1.0.0`] }),
    });
    expect(r.status).toBe(409);
    expect(r.json<{ error: string }>().error).toMatch(/^gomodproxy is offline .* so nothing can be fetched/);
  });
});
