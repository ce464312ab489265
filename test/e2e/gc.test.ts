// Garbage collection end to end: a real server with two workers over a data folder filled past
// gc.maxBytes by the real go command, collected by `gomodproxy gc` and by the server's own
// schedule while clients keep fetching cached and evicted versions through it. Shown: the module
// data ends under the limit, no client got anything but a whole 200 with the upstream's bytes,
// pinned versions (a config glob, and a pin added through the admin API) stay, and what was
// evicted comes back byte-exact from the upstream, with the go command's own h1: hashes.
import { readFile, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { GcReport } from '../../src/catalog/index.js';
import { startProxyWithConfig } from '../e2e-access/util.js';
import { esc, gomodproxy, metric } from '../e2e-sumdb/util.js';
import { createGoEnv } from '../helpers/goenv.js';
import type { ProxyProcess } from '../helpers/gomodproxy.js';
import { http } from '../helpers/http.js';
import { cleanupAll, makeTempDir, registerCleanup } from '../helpers/tmp.js';
import { startTestUpstream, type TestUpstream } from '../helpers/upstream.js';
import { buildModuleWorld, type World } from '../helpers/world.js';
import { incompressible, waitFor } from './util.js';

const ZIP_DATA = 200 << 10;
const LIMIT = 900 << 10;
const PINNED = 'github.com/gmp-gc/Pinned';
const KEPT = 'github.com/gmp-gc/keep';
const VERSIONS: [string, string[]][] = [
  ['github.com/gmp-gc/a', ['v1.0.0', 'v1.1.0', 'v1.2.0']],
  ['github.com/gmp-gc/b', ['v1.0.0', 'v1.1.0']],
  [PINNED, ['v1.0.0']],
  [KEPT, ['v1.0.0', 'v1.1.0']],
];
const ALL = VERSIONS.flatMap(([m, vs]) => vs.map((v) => `${m}@${v}`));

let world: World;
let upstream: TestUpstream;
let dataDir: string;
let token: string;
let reader: string;
let proxy: ProxyProcess;

function configFor(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    upstream: upstream.url,
    // Zips stream from the store, not from a worker's memory: a collection really takes them away under the readers.
    cache: { memory: { maxItemBytes: '16KiB' } },
    auth: { admin: ['user:ops'] },
    gc: { maxBytes: LIMIT, pin: [PINNED], servedFlush: '1s', ...extra },
  };
}

beforeAll(async () => {
  let seed = 0;
  world = await buildModuleWorld({
    modules: VERSIONS.map(([p, vs]) => ({
      path: p,
      versions: vs.map((version) => ({ version, files: { 'x.go': 'package x\n', 'data.bin': incompressible(ZIP_DATA, ++seed) } })),
    })),
  });
  upstream = await startTestUpstream({ root: world.downloadDir });
  dataDir = path.join(await makeTempDir('gc-e2e'), 'data');
  token = (await gomodproxy(['token', 'create', '--user', 'ops', '--data', dataDir])).stdout.trim();
  reader = (await gomodproxy(['token', 'create', '--user', 'dev', '--data', dataDir])).stdout.trim();
  expect(token).not.toBe('');
  proxy = await startProxyWithConfig(configFor(), { dataDir, workers: 2, maxLogLines: 200_000 });
});
afterAll(cleanupAll);

/** Module data in the data folder, counted as the collector counts it: every file under a folder whose name has a dot. */
async function moduleBytes(): Promise<number> {
  let total = 0;
  const walk = async (dir: string): Promise<void> => {
    for (const e of await readdir(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) await walk(p);
      else if (!/\.(partial|lock|tmp-[0-9a-f]+)$/.test(e.name)) total += (await stat(p)).size;
    }
  };
  for (const e of await readdir(dataDir, { withFileTypes: true })) if (e.isDirectory() && e.name.includes('.')) await walk(path.join(dataDir, e.name));
  return total;
}

function fileOf(pv: string, ext: 'info' | 'mod' | 'zip'): string {
  const [m, v] = pv.split('@') as [string, string];
  return path.join(dataDir, esc(m), '@v', `${esc(v)}.${ext}`);
}

const exists = (f: string): Promise<boolean> =>
  stat(f).then(
    () => true,
    () => false,
  );

interface LoadResult {
  requests: number;
  failures: string[];
}

/**
 * Clients fetching every version's .info, .mod and .zip through the proxy, in a loop, comparing
 * each answer with the upstream's bytes; bounded (stops by itself after maxRequests or maxMs).
 */
function startLoad(clients: number, maxRequests = 20_000, maxMs = 90_000): { result: Promise<LoadResult>; stop(): void; requests(): number } {
  const agent = new Agent({ connections: clients, keepAliveTimeout: 1_000 });
  registerCleanup(() => agent.close());
  const targets = ALL.flatMap((pv) => (['info', 'mod', 'zip'] as const).map((ext) => ({ pv, ext })));
  const expected = new Map<string, Promise<Buffer>>();
  const want = (pv: string, ext: 'info' | 'mod' | 'zip'): Promise<Buffer> => {
    const k = `${pv}.${ext}`;
    let p = expected.get(k);
    if (!p) {
      p = readFile(world.get(pv).files[ext]);
      expected.set(k, p);
    }
    return p;
  };
  const deadline = Date.now() + maxMs;
  let stopped = false;
  let n = 0;
  const failures: string[] = [];
  const client = async (i: number): Promise<void> => {
    for (let k = i * 7; !stopped && n < maxRequests && Date.now() < deadline; k++) {
      const { pv, ext } = targets[k % targets.length]!;
      const [m, v] = pv.split('@') as [string, string];
      const url = `${proxy.url}/${esc(m)}/@v/${v}.${ext}`;
      n++;
      try {
        const res = await request(url, { dispatcher: agent, headersTimeout: 30_000, bodyTimeout: 30_000 });
        const body = Buffer.from(await res.body.arrayBuffer());
        if (res.statusCode !== 200) failures.push(`${url}: ${res.statusCode} ${body.toString().trim()}`);
        else if (!body.equals(await want(pv, ext))) failures.push(`${url}: ${body.length} bytes that differ from the upstream's`);
      } catch (err) {
        failures.push(`${url}: ${(err as Error).message}`);
      }
    }
  };
  const result = Promise.all(Array.from({ length: clients }, (_x, i) => client(i))).then(() => ({ requests: n, failures }));
  return {
    result,
    stop: () => {
      stopped = true;
    },
    requests: () => n,
  };
}

async function fillThroughGo(): Promise<void> {
  const env = await createGoEnv({ goproxy: proxy.url });
  const got = await env.modDownloadJson(ALL);
  for (const r of got) expect(r.Sum, `${r.Path}@${r.Version}`).toBe(world.get(`${r.Path}@${r.Version}`).Sum);
}

async function runGcCommand(...args: string[]): Promise<GcReport> {
  const r = await gomodproxy(['gc', '--config', (proxy as ProxyProcess & { configFile: string }).configFile, '--data', dataDir, '--json', ...args]);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as GcReport;
}

const pinsApi = (method: 'GET' | 'POST' | 'DELETE', body?: unknown, tok: string | null = token, suffix = '') =>
  http(`${proxy.url}/-/api/pins${suffix}`, {
    method,
    headers: { ...(tok ? { authorization: `Bearer ${tok}` } : {}), 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });

describe('pins through the admin API', () => {
  test('an admin pins a version; the config pin is listed too and cannot be removed here; others are refused with JSON errors', async () => {
    const created = await pinsApi('POST', { pattern: `${KEPT}@v1.0.0`, note: 'the release build' });
    expect(created.status).toBe(201);
    expect(created.json()).toMatchObject({ created: true, pinned: { pattern: `${KEPT}@v1.0.0`, note: 'the release build', by: 'ops', source: 'api' } });
    // Another worker answers the list: the pins live in the store, not in one process.
    const listed = await http(`${proxy.url}/-/api/pins`, { headers: { authorization: `Bearer ${token}`, connection: 'close' } });
    expect(listed.json<{ pins: { pattern: string; source: string }[] }>().pins.map((p) => [p.pattern, p.source])).toEqual([
      [PINNED, 'config'],
      [`${KEPT}@v1.0.0`, 'api'],
    ]);
    const anonymous = await pinsApi('POST', { pattern: 'example.com/x' }, null);
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers['content-type']).toMatch(/^application\/json/);
    expect((await pinsApi('POST', { pattern: 'example.com/x' }, reader)).status).toBe(403);
    const bad = await pinsApi('POST', { pattern: 'a.example, b.example' });
    expect(bad.status).toBe(400);
    expect(bad.json<{ error: string }>().error).toMatch(/without spaces or commas/);
    const fromConfig = await pinsApi('DELETE', undefined, token, `/${PINNED}`);
    expect(fromConfig.status).toBe(409);
    expect(fromConfig.json<{ error: string }>().error).toMatch(/gc\.pin in the configuration/);
    // A pin added and removed again (by path, and by a JSON body).
    expect((await pinsApi('POST', { pattern: 'example.com/tmp/*' })).status).toBe(201);
    expect((await pinsApi('DELETE', undefined, token, '/example.com/tmp/*')).json()).toMatchObject({ unpinned: { pattern: 'example.com/tmp/*' } });
    expect((await pinsApi('DELETE', { pattern: 'example.com/tmp/*' })).status).toBe(404);
    const audit = await waitFor(
      () => proxy.logs().find((l) => l.log === 'access' && l.path === '/-/api/pins' && l.method === 'POST' && l.status === 201),
      'the pin in the access log',
    );
    expect(audit).toMatchObject({ kind: 'admin', user: 'ops', module: `${KEPT}@v1.0.0` });
  });
});

describe('gomodproxy gc under load', () => {
  test('fills past the limit; a collection while clients fetch brings it under; nobody sees an error; pinned versions stay; evicted ones come back byte-exact', async () => {
    await fillThroughGo();
    const before = await moduleBytes();
    expect(before).toBeGreaterThan(LIMIT);

    const zipRequests = (pv: string): number => upstream.count(`/${esc(pv.split('@')[0]!)}/@v/${pv.split('@')[1]}.zip`);
    const filled = new Map(ALL.map((pv) => [pv, zipRequests(pv)]));
    const load = startLoad(4);
    await waitFor(() => load.requests() >= 50, 'clients under way');
    const report = await runGcCommand();
    // Evicted versions are fetched again under the same load, while readers of other zips go on.
    const afterGc = load.requests();
    await waitFor(() => load.requests() >= afterGc + 3 * ALL.length * 3, 'clients going on after the collection');
    load.stop();
    const { requests, failures } = await load.result;

    expect(failures).toEqual([]);
    expect(requests).toBeGreaterThan(100);
    expect(report.before.bytes).toBeGreaterThan(LIMIT);
    expect(report.after.bytes).toBeLessThanOrEqual(LIMIT);
    expect(report.after.underLimit).toBe(true);
    expect(report.evicted.zip).toBeGreaterThanOrEqual(3);
    expect(report.kept.pinned.versions).toBe(2);
    expect(report.removed.some((e) => e.module === PINNED || (e.module === KEPT && e.version === 'v1.0.0'))).toBe(false);
    // The clients asked for what was evicted, and got it (fetched again from the upstream) without an error.
    const evictedUnderLoad = report.removed.filter((e) => e.kind === 'zip').map((e) => `${e.module}@${e.version}`);
    for (const pv of evictedUnderLoad) expect(zipRequests(pv), pv).toBeGreaterThan(filled.get(pv) ?? 0);

    // Quiet now: what the clients fetched back is collected again, and the folder itself is under the limit.
    const quiet = await runGcCommand();
    expect(await moduleBytes()).toBe(quiet.after.bytes);
    expect(quiet.after.bytes).toBeLessThanOrEqual(LIMIT);
    for (const pv of [`${PINNED}@v1.0.0`, `${KEPT}@v1.0.0`])
      for (const ext of ['info', 'mod', 'zip'] as const) expect(await exists(fileOf(pv, ext)), `${pv}.${ext}`).toBe(true);

    // What was evicted comes back from the upstream, with the go command's own hashes.
    const evicted = [...new Set(quiet.removed.filter((e) => e.kind === 'zip').map((e) => `${e.module}@${e.version}`))];
    expect(evicted.length).toBeGreaterThan(0);
    for (const pv of evicted) expect(await exists(fileOf(pv, 'zip'))).toBe(false);
    const counts = new Map(evicted.map((pv) => [pv, zipRequests(pv)]));
    const again = await (await createGoEnv({ goproxy: proxy.url })).modDownloadJson(evicted);
    for (const r of again) expect(r.Sum, `${r.Path}@${r.Version}`).toBe(world.get(`${r.Path}@${r.Version}`).Sum);
    for (const pv of evicted) expect(zipRequests(pv), pv).toBe((counts.get(pv) ?? 0) + 1);
    for (const pv of evicted) expect((await readFile(fileOf(pv, 'zip'))).equals(await readFile(world.get(pv).files.zip))).toBe(true);
  });
});

describe('the schedule', () => {
  test('with gc.schedule, one process of the two workers collects at a time, under load, and the metrics say so', async () => {
    await proxy.stop();
    proxy = await startProxyWithConfig(configFor({ schedule: '* * * * * *' }), { dataDir, workers: 2, maxLogLines: 200_000 });
    await fillThroughGo();
    const load = startLoad(4);
    const runs = (): Record<string, unknown>[] => proxy.logs().filter((l) => l.msg === 'garbage collection done');
    await waitFor(() => runs().some((l) => Number(l.freedBytes) > 0), 'a scheduled collection that freed something');
    const during = runs().length;
    await waitFor(() => runs().length >= during + 2 && load.requests() > 200, 'more scheduled collections under load');
    load.stop();
    const { failures } = await load.result;
    expect(failures).toEqual([]);

    // Once the clients stopped, the next collection leaves the folder under the limit.
    const stoppedAt = Date.now();
    const last = await waitFor(() => runs().find((l) => Number(l.startedMs) > stoppedAt), 'a collection after the load');
    expect(Number(last.bytes)).toBeLessThanOrEqual(LIMIT);
    expect(last.underLimit).toBe(true);

    // The store's lock: no two collections ever overlapped, whichever worker ran them.
    const spans = runs()
      .map((l) => [Number(l.startedMs), Number(l.finishedMs)] as const)
      .sort((a, b) => a[0] - b[0]);
    for (let i = 1; i < spans.length; i++) expect(spans[i]![0]).toBeGreaterThanOrEqual(spans[i - 1]![1]);

    for (const pv of [`${PINNED}@v1.0.0`, `${KEPT}@v1.0.0`]) expect(await exists(fileOf(pv, 'zip')), pv).toBe(true);
    expect(await metric(proxy.url, 'gomodproxy_gc_last_run_timestamp_seconds')).toBeGreaterThanOrEqual(Math.floor(Number(last.finishedMs) / 1000));
    expect(await metric(proxy.url, 'gomodproxy_gc_evicted_total', { kind: 'zip' })).toBeGreaterThan(0);
    expect(await metric(proxy.url, 'gomodproxy_gc_freed_bytes_total')).toBeGreaterThan(0);
    const storeBytes = await metric(proxy.url, 'gomodproxy_gc_store_bytes');
    expect(storeBytes).toBeGreaterThan(0);
  });
});
