// Operating gomodproxy: health and readiness, Prometheus metrics, the JSON access log, --help
// on every command, configuration errors that name the setting and its variable, and the
// zero-config start that takes its upstream from GOPROXY.
import { statSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createGoEnv } from '../helpers/goenv.js';
import { cliEntry, startProxy } from '../helpers/gomodproxy.js';
import { get, head } from '../helpers/http.js';
import { run, scrubbedEnv } from '../helpers/proc.js';
import { cleanupAll, makeTempDir } from '../helpers/tmp.js';
import { startTestUpstream, type TestUpstream } from '../helpers/upstream.js';
import { buildModuleWorld, type World, type WorldSpec } from '../helpers/world.js';
import { accessLines, freePort, waitFor } from './util.js';

const O = 'github.com/gmp-test/ops';
const spec: WorldSpec = { modules: [{ path: O, versions: [{ version: 'v1.0.0' }, { version: 'v1.1.0' }] }] };

let world: World;
let up: TestUpstream;
let zipSize: number;

beforeAll(async () => {
  world = await buildModuleWorld(spec);
  up = await startTestUpstream({ root: world.downloadDir });
  zipSize = statSync(world.get(`${O}@v1.0.0`).files.zip).size;
});
afterAll(cleanupAll);

/** Prometheus text -> `name{k="v",...}` (labels sorted) -> value. */
function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$/.exec(line);
    if (!m) continue;
    const labels = [...(m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((l) => `${l[1]}="${l[2]}"`).sort();
    out.set(`${m[1]}{${labels.join(',')}}`, Number(m[3]));
  }
  return out;
}

function metric(ms: Map<string, number>, name: string, labels: Record<string, string>): number | undefined {
  const key = `${name}{${Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .sort()
    .join(',')}}`;
  return ms.get(key);
}

async function runCli(args: string[], opts: { env?: Record<string, string>; cwd?: string } = {}) {
  const cwd = opts.cwd ?? (await makeTempDir('cli'));
  // generous: a loaded CI machine can be slow to start node; a hang is still caught
  return run(process.execPath, [cliEntry, ...args], { env: { ...scrubbedEnv(), ...opts.env }, cwd, timeoutMs: 60_000 });
}

describe('health, readiness, metrics, access log', () => {
  test('/healthz and /readyz answer 200 when all is well (GET and HEAD)', async () => {
    const p = await startProxy({ upstream: up.url });
    for (const ep of ['/healthz', '/readyz']) {
      const r = await get(`${p.url}${ep}`);
      expect({ ep, status: r.status }).toEqual({ ep, status: 200 });
      expect(r.headers['content-type']).toMatch(/^text\/plain/);
      expect(r.headers['cache-control']).toMatch(/no-store|no-cache/);
      expect((await head(`${p.url}${ep}`)).status).toBe(200);
    }
  });

  test('/metrics: requests by kind and status, cache hit/miss, upstream requests, bytes served', async () => {
    const p = await startProxy({ upstream: up.url });
    const base = `${p.url}/${O}/@v`;
    expect((await get(`${base}/v1.0.0.info`)).status).toBe(200); // miss
    expect((await get(`${base}/v1.0.0.info`)).status).toBe(200); // hit
    expect((await get(`${base}/v1.0.0.zip`)).status).toBe(200); // miss
    expect((await get(`${base}/v1.0.0.zip`)).status).toBe(200); // hit
    expect((await get(`${base}/list`)).status).toBe(200);
    expect((await get(`${p.url}/github.com/gmp-test/nope/@v/v1.0.0.info`)).status).toBe(404);
    up.on('/github.com/gmp-test/broken/@v/v1.0.0.info', { status: 500 });
    expect((await get(`${p.url}/github.com/gmp-test/broken/@v/v1.0.0.info`)).status).toBe(502);
    const res = await get(`${p.url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain/);
    const ms = parseMetrics(res.text());
    const want: [string, Record<string, string>, number][] = [
      ['gomodproxy_requests_total', { kind: 'info', status: '200' }, 2],
      ['gomodproxy_requests_total', { kind: 'zip', status: '200' }, 2],
      ['gomodproxy_requests_total', { kind: 'list', status: '200' }, 1],
      ['gomodproxy_requests_total', { kind: 'info', status: '404' }, 1],
      ['gomodproxy_cache_results_total', { kind: 'zip', result: 'miss' }, 1],
      ['gomodproxy_cache_results_total', { kind: 'zip', result: 'hit' }, 1],
      ['gomodproxy_cache_results_total', { kind: 'info', result: 'hit' }, 1],
      ['gomodproxy_upstream_requests_total', { upstream: up.url, kind: 'zip', outcome: 'ok' }, 1],
      ['gomodproxy_upstream_requests_total', { upstream: up.url, kind: 'info', outcome: 'ok' }, 1],
      ['gomodproxy_upstream_requests_total', { upstream: up.url, kind: 'info', outcome: 'not-found' }, 1],
      ['gomodproxy_bytes_served_total', { kind: 'zip' }, 2 * zipSize],
      ['gomodproxy_requests_total', { kind: 'info', status: '502' }, 1],
      ['gomodproxy_upstream_requests_total', { upstream: up.url, kind: 'info', outcome: 'error' }, 1],
      ['gomodproxy_upstream_errors_total', { upstream: up.url, reason: 'upstream' }, 1],
    ];
    const got = want.map(([name, labels]) => [name, labels, metric(ms, name, labels)]);
    expect(got).toEqual(want);
    // durations are histograms
    expect([...ms.keys()].some((k) => k.startsWith('gomodproxy_request_duration_seconds_bucket{'))).toBe(true);
    expect([...ms.keys()].some((k) => k.startsWith('gomodproxy_upstream_duration_seconds_bucket{'))).toBe(true);
  });

  test('one JSON access-log line per request, with module, version, kind, status, cache and bytes', async () => {
    const p = await startProxy({ upstream: up.url });
    const base = `${p.url}/${O}/@v`;
    const requests: [string, () => Promise<unknown>][] = [
      ['zip miss', () => get(`${base}/v1.1.0.zip`)],
      ['zip hit', () => get(`${base}/v1.1.0.zip`)],
      ['mod miss', () => get(`${base}/v1.1.0.mod`)],
      ['info head', () => head(`${base}/v1.1.0.info`)],
      ['list', () => get(`${base}/list`)],
      ['not found', () => get(`${p.url}/github.com/gmp-test/nope/@v/v1.0.0.zip`)],
      ['bad request', () => get(`${base}/v1.0.mod`)],
      ['healthz', () => get(`${p.url}/healthz`)],
    ];
    for (const [, fn] of requests) await fn();
    // One more request, sent after every other had its answer: its line is written after theirs,
    // so once it is there, any second line for one of them would be too.
    await get(`${p.url}/readyz`);
    const all = await waitFor(() => {
      const l = accessLines(p);
      return l.some((x) => x.path === '/readyz') ? l : undefined;
    }, 'the access line of the last request');
    expect(all.map((l) => l.path).slice(requests.length)).toEqual(['/readyz']);
    const lines = all.slice(0, requests.length);
    expect(p.logs().filter((l) => l.nonJson)).toEqual([]);
    const pick = (l: Record<string, unknown>) => ({ kind: l.kind, module: l.module, version: l.version, status: l.status, cache: l.cache, bytes: l.bytes });
    const zipV = world.get(`${O}@v1.1.0`);
    const zipLen = statSync(zipV.files.zip).size;
    expect(lines.map(pick).slice(0, 5)).toEqual([
      { kind: 'zip', module: O, version: 'v1.1.0', status: 200, cache: 'miss', bytes: zipLen },
      { kind: 'zip', module: O, version: 'v1.1.0', status: 200, cache: 'hit', bytes: zipLen },
      { kind: 'mod', module: O, version: 'v1.1.0', status: 200, cache: 'miss', bytes: Buffer.byteLength(zipV.modText) },
      { kind: 'info', module: O, version: 'v1.1.0', status: 200, cache: 'miss', bytes: 0 },
      { kind: 'list', module: O, version: undefined, status: 200, cache: 'miss', bytes: expect.any(Number) as number },
    ]);
    expect(pick(lines[5]!)).toMatchObject({ kind: 'zip', module: 'github.com/gmp-test/nope', version: 'v1.0.0', status: 404 });
    expect(lines[6]!.status).toBe(400);
    expect(lines[7]!.status).toBe(200);
    expect(lines[0]!.source).toBe(up.url);
    for (const l of lines) {
      expect(typeof l.ms).toBe('number');
      expect(typeof l.time === 'string' || typeof l.time === 'number').toBe(true);
      expect(typeof l.path).toBe('string');
      expect(typeof l.method).toBe('string');
    }
  });
});

describe('command line', () => {
  test('--help works for the main command and every subcommand', async () => {
    const main = await runCli(['--help']);
    expect(main.code).toBe(0);
    expect(main.stdout).toMatch(/^Usage: gomodproxy/);
    const commands = [...main.stdout.slice(main.stdout.indexOf('Commands:')).matchAll(/^ {2}([a-z][a-z-]*)/gm)].map((m) => m[1]!).filter((c) => c !== 'help');
    expect(commands).toContain('serve');
    expect(commands).toContain('import');
    const runs = await Promise.all(
      commands
        .flatMap((c) => [
          [c, '--help'],
          ['help', c],
        ])
        .map(async (args) => ({ args, r: await runCli(args) })),
    );
    for (const { args, r } of runs) {
      expect({ args, code: r.code, stderr: r.stderr }).toEqual({ args, code: 0, stderr: '' });
      expect(r.stdout).toMatch(new RegExp(`^Usage: gomodproxy ${args[0] === 'help' ? args[1] : args[0]}`));
    }
    const serve = runs.find(({ args }) => args[0] === 'serve')!.r.stdout;
    for (const flag of ['--listen', '--data', '--upstream', '--config', '--workers', '--path-prefix']) expect(serve).toContain(flag);
  });

  test('config validation: a bad value in YAML or in the environment names the key and the variable, exit code 2', async () => {
    const dir = await makeTempDir('config');
    const yaml = async (name: string, text: string): Promise<string> => {
      const f = path.join(dir, name);
      await writeFile(f, text);
      return f;
    };
    // (`listen` comes from the file in that case: a --listen flag would override it)
    const cases: { why: string; args?: string[]; env?: Record<string, string>; mention: string[]; noListenFlag?: boolean }[] = [
      {
        why: 'bad duration in YAML',
        args: ['--config', await yaml('ttl.yaml', 'cache:\n  ttl: banana\n')],
        mention: ['cache.ttl', 'GOMODPROXY_CACHE_TTL', 'ttl.yaml'],
      },
      { why: 'bad duration in env', env: { GOMODPROXY_CACHE_TTL: 'banana' }, mention: ['cache.ttl', 'GOMODPROXY_CACHE_TTL'] },
      {
        why: 'bad listen in YAML',
        args: ['--config', await yaml('listen.yaml', 'listen: nowhere\n')],
        mention: ['listen', 'GOMODPROXY_LISTEN'],
        noListenFlag: true,
      },
      { why: 'bad number in env', env: { GOMODPROXY_HEALTH_FAILURES: 'many' }, mention: ['health.failures', 'GOMODPROXY_HEALTH_FAILURES'] },
      { why: 'bad enum in YAML', args: ['--config', await yaml('balance.yaml', 'balance: random\n')], mention: ['balance', 'GOMODPROXY_BALANCE'] },
      {
        why: 'bad upstreams entry in YAML',
        args: ['--config', await yaml('ups.yaml', 'upstreams:\n  - url: http://127.0.0.1:9\n    balance: random\n')],
        mention: ['upstreams', 'balance', 'GOMODPROXY_UPSTREAMS'],
      },
      {
        why: 'bad upstreams entry in env',
        env: { GOMODPROXY_UPSTREAMS: '[{"url":"http://127.0.0.1:9","balance":"random"}]' },
        mention: ['upstreams', 'balance', 'GOMODPROXY_UPSTREAMS'],
      },
      { why: 'unknown key in YAML', args: ['--config', await yaml('unknown.yaml', 'cach:\n  ttl: 1s\n')], mention: ['cach'] },
      { why: 'unknown variable', env: { GOMODPROXY_CACHE_TTLL: '1s' }, mention: ['GOMODPROXY_CACHE_TTLL'] },
      { why: 'bad upstream list', env: { GOMODPROXY_UPSTREAM: 'ftp://example.invalid' }, mention: ['upstream', 'GOMODPROXY_UPSTREAM'] },
    ];
    const failures: string[] = [];
    await Promise.all(
      cases.map(async (c) => {
        const data = await makeTempDir('config-data');
        const listen = c.noListenFlag ? [] : ['--listen', '127.0.0.1:0'];
        const r = await runCli(['serve', ...listen, '--data', data, ...(c.args ?? [])], { env: c.env, cwd: data });
        const missing = c.mention.filter((m) => !r.stderr.includes(m));
        if (r.code !== 2 || missing.length > 0 || /\n\s+at /.test(r.stderr) || r.stdout.includes('"listening"')) {
          failures.push(`${c.why}: exit ${r.code}, missing ${JSON.stringify(missing)} in stderr: ${JSON.stringify(r.stderr.slice(0, 600))}`);
        }
      }),
    );
    expect(failures).toEqual([]);
  });
});

describe('zero configuration', () => {
  test('no config, GOPROXY in the environment: its entries minus off and minus this server are the upstream', async () => {
    const port = await freePort();
    const goproxy = `off,http://localhost:${port},http://127.0.0.1:${port}/,${up.url},off`;
    const p = await startProxy({ args: ['--listen', `127.0.0.1:${port}`], env: { GOPROXY: goproxy } });
    const listening = await p.waitForLog((l) => l.msg === 'listening');
    expect(listening.upstream).toBe(up.url);
    const before = up.count();
    const env = await createGoEnv({ goproxy: p.url });
    const rs = await env.modDownloadJson([`${O}@v1.0.0`, `${O}@latest`]);
    expect(rs.map((r) => [r.Version, r.Sum])).toEqual([
      ['v1.0.0', world.get(`${O}@v1.0.0`).Sum],
      ['v1.1.0', world.get(`${O}@v1.1.0`).Sum],
    ]);
    expect(up.count()).toBeGreaterThan(before);
    expect(accessLines(p).filter((l) => l.status === 508)).toEqual([]);
  });

  test('no config and no GOPROXY: https://proxy.golang.org,direct', async () => {
    const p = await startProxy({});
    const listening = await p.waitForLog((l) => l.msg === 'listening');
    expect(listening.upstream).toBe('https://proxy.golang.org,direct');
  });
});
