// `gomodproxy prefetch` against a recording upstream and a checksum database (x/mod's own
// server): from a go.sum the real go command wrote, from arguments (exact versions and queries),
// and with --deps from one module version to its whole requirement graph; then an offline
// gomodproxy over the filled folder gives the go command the same go.sum as the repositories do.
// A second run fetches nothing (not one upstream request); a version the upstream does not have,
// or sends corrupt or tampered, is named with the server's own one-line reason and exits 1; an
// input that cannot be read exits 2.
import { cp, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { addToDb, cachedFile, exists, moduleZip } from '../e2e-sumdb/util.js';
import { createGoEnv, type GoEnv } from '../helpers/goenv.js';
import { cliEntry, startProxy } from '../helpers/gomodproxy.js';
import { get } from '../helpers/http.js';
import { run, scrubbedEnv, type RunResult } from '../helpers/proc.js';
import { cleanupAll, makeTempDir } from '../helpers/tmp.js';
import { startTestUpstream, type TestUpstream } from '../helpers/upstream.js';
import { buildModuleWorld, type World } from '../helpers/world.js';
import { startGoSumdb, type GoSumdbServer } from '../sumdb/helpers.js';

const A = 'github.com/gmp-pf/a';
const B = 'github.com/gmp-pf/b';
const C = 'github.com/gmp-pf/c';
const APP = 'github.com/gmp-pf/app';
const BAD = 'github.com/gmp-pf/bad';
const RET = 'github.com/gmp-pf/ret';
const CLIENT = 'example.com/client';

let world: World;
let upstream: TestUpstream;
let db: GoSumdbServer;
let pseudo: string;
/** The client module (go.mod, client.go) and the go.sum `go mod tidy` wrote for it straight from the upstream. */
let clientDir: string;
let goSum: string;

interface Event {
  module: string;
  version?: string;
  query?: string;
  from: string;
  result: 'fetched' | 'present' | 'failed';
  bytes: number;
  error?: string;
}

interface Prefetched extends RunResult {
  events: Event[];
  summary: { fetched: number; present: number; failed: number; bytes: number } | undefined;
}

async function prefetch(args: string[], env: Record<string, string> = {}): Promise<Prefetched> {
  const r = await run(process.execPath, [cliEntry, 'prefetch', ...args], {
    env: { ...scrubbedEnv(), GOENV: 'off', GOMODPROXY_UPSTREAM: upstream.url, GOMODPROXY_SUMDB: `${db.vkey} ${db.url}`, ...env },
    timeoutMs: 120_000,
  });
  // Not a terminal: one JSON line per version on stdout, then the summary.
  const lines = r.stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Event & { summary?: Prefetched['summary'] });
  return { ...r, events: lines.filter((l) => l.summary === undefined), summary: lines.find((l) => l.summary !== undefined)?.summary };
}

/** path@version of every event, sorted, with its result. */
function results(p: Prefetched): string[] {
  return p.events.map((e) => `${e.module}@${e.version ?? e.query} ${e.result}`).sort();
}

beforeAll(async () => {
  world = await buildModuleWorld({
    modules: [
      { path: A, versions: [{ version: 'v1.0.0' }, { version: 'v1.1.0' }, { version: 'v1.2.0-rc.1' }] },
      // v1.0.0, then an untagged commit on a branch: `dev` is a pseudo-version.
      { path: C, versions: [{ version: 'v1.0.0' }, { branch: 'dev' }], queries: ['dev'] },
      {
        path: B,
        versions: [
          {
            version: 'v1.0.0',
            // Before graph pruning (go 1.16): whoever needs it needs the go.mod of all it requires.
            goMod: `module ${B}\n\ngo 1.16\n\nrequire (\n\t${A} v1.0.0\n\t${C} v1.0.0\n)\n`,
            files: { 'b.go': `package b\n\nimport (\n\t_ "${A}"\n\t_ "${C}"\n)\n` },
          },
        ],
      },
      {
        path: APP,
        versions: [
          {
            version: 'v1.0.0',
            goMod: `module ${APP}\n\ngo 1.21\n\nrequire (\n\t${A} v1.1.0\n\t${B} v1.0.0\n)\n\nrequire ${C} v1.0.0 // indirect\n`,
            files: { 'app.go': `package app\n\nimport (\n\t_ "${A}"\n\t_ "${B}"\n)\n` },
          },
        ],
      },
      { path: BAD, versions: [{ version: 'v1.0.0' }, { version: 'v1.1.0' }] },
      // The highest version retracts itself: latest is v1.0.0.
      { path: RET, versions: [{ version: 'v1.0.0' }, { version: 'v1.1.0', goMod: `module ${RET}\n\ngo 1.21\n\nretract v1.1.0 // broken\n` }] },
    ],
  });
  pseudo = world.queries.get(`${C}@dev`)!.Version;
  db = await startGoSumdb();
  await addToDb(db, world, [...world.expected.keys()]);
  upstream = await startTestUpstream({ root: world.downloadDir });
  // A branch is resolved by the upstream; the test upstream serves a download cache, which has no
  // branch names in it: it answers `dev` as a real proxy would.
  resetUpstream();

  // The client: requires the app; go mod tidy straight from the upstream writes its go.sum. At
  // go 1.16 (before graph pruning) its graph holds a version needed only for its go.mod.
  const direct = await createGoEnv({ goproxy: upstream.url });
  clientDir = await makeTempDir('pf-client');
  await writeFile(path.join(clientDir, 'go.mod'), `module ${CLIENT}\n\ngo 1.16\n\nrequire ${APP} v1.0.0\n`);
  await writeFile(path.join(clientDir, 'client.go'), `package client\n\nimport _ "${APP}"\n`);
  await direct.go(['mod', 'tidy'], { cwd: clientDir });
  goSum = await readFile(path.join(clientDir, 'go.sum'), 'utf8');
}, 240_000);
afterAll(cleanupAll);

/** Forgets the upstream's requests and rules, but keeps it answering the branch query. */
function resetUpstream(): void {
  upstream.reset();
  upstream.on(`/${C}/@v/dev.info`, { replaceBody: world.queries.get(`${C}@dev`)!.infoText, contentType: 'application/json' });
}

/** The go.sum lines as (module version[/go.mod]) keys. */
function sumKeys(text: string): string[] {
  return text
    .trim()
    .split('\n')
    .map((l) => l.split(' ').slice(0, 2).join(' '));
}

/** An offline gomodproxy over `data` (its upstream and database still configured: it must ask neither). */
async function offlineProxy(data: string): Promise<string> {
  const p = await startProxy({
    upstream: upstream.url,
    dataDir: data,
    env: { GOMODPROXY_OFFLINE: 'true', GOMODPROXY_SUMDB: `${db.vkey} ${db.url}` },
  });
  return p.url;
}

/** A copy of the client module without its go.sum, and a go env with a cold cache pointed at `proxyUrl`. */
async function freshClient(proxyUrl: string): Promise<{ env: GoEnv; dir: string }> {
  const env = await createGoEnv({ goproxy: proxyUrl });
  const dir = path.join(env.root, 'client');
  await mkdir(dir);
  for (const f of ['go.mod', 'client.go']) await cp(path.join(clientDir, f), path.join(dir, f));
  return { env, dir };
}

describe('from a go.sum', () => {
  let data: string;
  let first: Prefetched;

  beforeAll(async () => {
    data = await makeTempDir('pf-gosum');
    first = await prefetch(['--data', data, path.join(clientDir, 'go.sum')]);
  });

  test('every version go.sum names is fetched: whole for its zip lines, .info and .mod for its /go.mod-only lines', async () => {
    expect({ code: first.code, stderr: first.stderr.split('\n').filter((l) => l.startsWith('gomodproxy prefetch:')) }).toEqual({ code: 0, stderr: [] });
    const whole = new Set<string>();
    const modOnly = new Set<string>();
    for (const k of sumKeys(goSum)) {
      const [m, v] = k.split(' ') as [string, string];
      if (v.endsWith('/go.mod')) modOnly.add(`${m}@${v.slice(0, -7)}`);
      else whole.add(`${m}@${v}`);
    }
    for (const k of whole) modOnly.delete(k);
    // The graph has a version needed for its go.mod only (b requires a v1.0.0; the build selects v1.1.0).
    expect([...modOnly]).toContain(`${A}@v1.0.0`);
    expect(results(first)).toEqual([...whole, ...modOnly].map((k) => `${k} fetched`).sort());
    for (const k of [...whole, ...modOnly]) {
      const [m, v] = k.split('@') as [string, string];
      expect(await readFile(cachedFile(data, m, v, 'mod'), 'utf8'), k).toBe(world.get(k).modText);
      expect(JSON.parse(await readFile(cachedFile(data, m, v, 'info'), 'utf8')), k).toMatchObject({ Version: v, Time: world.get(k).Info.Time });
      expect(await exists(cachedFile(data, m, v, 'zip')), k).toBe(whole.has(k));
    }
    for (const k of whole) {
      const [m, v] = k.split('@') as [string, string];
      expect(await readFile(cachedFile(data, m, v, 'ziphash'), 'utf8'), k).toBe(world.get(k).Sum);
    }
    expect(first.summary).toMatchObject({ fetched: whole.size + modOnly.size, present: 0, failed: 0 });
    expect(first.summary!.bytes).toBeGreaterThan(0);
    expect(first.stderr).toContain(`prefetched ${whole.size + modOnly.size} module versions into ${data}`);
    // Verified: the proxy asked the database for every version it fetched.
    for (const k of whole) expect(await db.requests()).toContain(`/lookup/${k}`);
  });

  test('a second run skips every version without one upstream request', async () => {
    resetUpstream();
    const dbBefore = (await db.requests()).length;
    const again = await prefetch(['--data', data, path.join(clientDir, 'go.sum')]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.events.every((e) => e.result === 'present' && e.bytes === 0)).toBe(true);
    expect(again.summary).toMatchObject({ fetched: 0, present: first.summary!.fetched, failed: 0, bytes: 0 });
    expect(upstream.requests.map((r) => r.path)).toEqual([]);
    expect((await db.requests()).length).toBe(dbBefore);
  });

  test('offline over the filled folder, the go command tidies the client to the same go.sum', async () => {
    const url = await offlineProxy(data);
    resetUpstream();
    const { env, dir } = await freshClient(url);
    await env.go(['mod', 'tidy'], { cwd: dir });
    expect(await readFile(path.join(dir, 'go.sum'), 'utf8')).toBe(goSum);
    expect(upstream.requests).toEqual([]);
  });
});

describe('from arguments', () => {
  test('exact versions and queries: latest is the highest release, a branch its pseudo-version, a shorthand its highest match', async () => {
    const data = await makeTempDir('pf-args');
    const r = await prefetch(['--data', data, `${A}@latest`, `${C}@dev`, `${A}@v1.0.0`, `${C}@v1`, `${A}@<v1.1.0`, `${RET}@latest`]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.events.map((e) => [e.module, e.query, e.version, e.result])).toEqual(
      expect.arrayContaining([
        [A, 'latest', 'v1.1.0', 'fetched'],
        [C, 'dev', pseudo, 'fetched'],
        [A, '<v1.1.0', 'v1.0.0', 'fetched'],
        [C, 'v1', 'v1.0.0', 'fetched'],
        [RET, 'latest', 'v1.0.0', 'fetched'],
      ]),
    );
    // A@<v1.1.0 is v1.0.0, asked for by name too: fetched once. The go.mod that says what is
    // retracted is kept with its .info, so that offline the go command sees the retraction too.
    expect(r.events).toHaveLength(6);
    expect(r.events.find((e) => e.module === RET && e.version === 'v1.1.0')).toMatchObject({ from: `its go.mod decides ${RET}@latest`, result: 'fetched' });
    expect(await exists(cachedFile(data, RET, 'v1.1.0', 'info'))).toBe(true);
    expect(await exists(cachedFile(data, RET, 'v1.1.0', 'zip'))).toBe(false);
    for (const k of [`${A}@v1.1.0`, `${A}@v1.0.0`, `${C}@${pseudo}`, `${C}@v1.0.0`, `${RET}@v1.0.0`]) {
      const [m, v] = k.split('@') as [string, string];
      expect(await readFile(cachedFile(data, m, v, 'ziphash'), 'utf8'), k).toBe(world.get(k).Sum);
    }
    const url = await offlineProxy(data);
    const env = await createGoEnv({ goproxy: url });
    const latest = async (m: string): Promise<string> =>
      (JSON.parse((await env.go(['list', '-m', '-json', `${m}@latest`])).stdout) as { Version: string }).Version;
    expect([await latest(A), await latest(RET), await latest(C)]).toEqual(['v1.1.0', 'v1.0.0', 'v1.0.0']);
  });

  test('module@version lines from a file and from standard input', async () => {
    const data = await makeTempDir('pf-lines');
    const list = path.join(await makeTempDir('pf-list'), 'modules.txt');
    await writeFile(list, `# what the air-gapped build needs\n${A}@v1.0.0\n\n${C}@v1.0.0 // the released one\n`);
    const r = await prefetch(['--data', data, list]);
    expect({ code: r.code, got: results(r) }).toEqual({ code: 0, got: [`${A}@v1.0.0 fetched`, `${C}@v1.0.0 fetched`] });
    const stdin = await run(process.execPath, [cliEntry, 'prefetch', '--data', data, '-'], {
      env: { ...scrubbedEnv(), GOMODPROXY_UPSTREAM: upstream.url, GOMODPROXY_SUMDB: `${db.vkey} ${db.url}` },
      input: `${A}@v1.0.0\n${A}@v1.1.0\n`,
    });
    expect(stdin.code, stdin.stderr).toBe(0);
    expect(stdin.stdout).toContain(`"module":"${A}","version":"v1.0.0","from":"standard input:1","result":"present"`);
    expect(stdin.stdout).toContain(`"module":"${A}","version":"v1.1.0","from":"standard input:2","result":"fetched"`);
  });
});

describe('--deps', () => {
  test('from one version, its whole requirement graph; offline, the go command then gets the same go.sum; a second run asks nothing', async () => {
    const data = await makeTempDir('pf-deps');
    const r = await prefetch(['--data', data, '--deps', '-j', '2', `${APP}@v1.0.0`]);
    expect(r.code, r.stderr).toBe(0);
    // Every required version, not just the selected ones: a v1.0.0 (b's requirement) too.
    const graph = [`${APP}@v1.0.0`, `${A}@v1.1.0`, `${B}@v1.0.0`, `${C}@v1.0.0`, `${A}@v1.0.0`];
    expect(results(r)).toEqual(graph.map((k) => `${k} fetched`).sort());
    expect(r.events.find((e) => e.module === B)?.from).toBe(`required by ${APP}@v1.0.0`);
    for (const k of graph) {
      const [m, v] = k.split('@') as [string, string];
      expect(await readFile(cachedFile(data, m, v, 'ziphash'), 'utf8'), k).toBe(world.get(k).Sum);
    }

    const url = await offlineProxy(data);
    resetUpstream();
    const { env, dir } = await freshClient(url);
    await env.go(['mod', 'tidy'], { cwd: dir });
    expect(await readFile(path.join(dir, 'go.sum'), 'utf8')).toBe(goSum);
    const got = await env.modDownloadJson(graph);
    expect(got.map((g) => [g.Path, g.Version, g.Sum, g.GoModSum])).toEqual(
      graph.map((k) => [world.get(k).Path, world.get(k).Version, world.get(k).Sum, world.get(k).GoModSum]),
    );
    expect(upstream.requests).toEqual([]);

    const again = await prefetch(['--data', data, '--deps', `${APP}@v1.0.0`]);
    expect(again.code, again.stderr).toBe(0);
    expect(results(again)).toEqual(graph.map((k) => `${k} present`).sort());
    expect(upstream.requests).toEqual([]);
  });

  test('from a go.mod: its requirements and what they require', async () => {
    const data = await makeTempDir('pf-gomod');
    const r = await prefetch(['--data', data, '--deps', path.join(clientDir, 'go.mod')]);
    expect(r.code, r.stderr).toBe(0);
    expect(results(r)).toEqual([`${APP}@v1.0.0`, `${A}@v1.1.0`, `${B}@v1.0.0`, `${C}@v1.0.0`, `${A}@v1.0.0`].map((k) => `${k} fetched`).sort());
  });
});

describe('beside a running server over the same data folder', () => {
  test('a zip the server is fetching is not fetched again: prefetch waits on the same lock and reads it as it streams in', async () => {
    const data = await makeTempDir('pf-beside');
    resetUpstream();
    const server = await startProxy({ upstream: upstream.url, dataDir: data, env: { GOMODPROXY_SUMDB: `${db.vkey} ${db.url}` } });
    const zip = `/${B}/@v/v1.0.0.zip`;
    let release!: () => void;
    // The server's fetch of the zip waits until prefetch has begun on the same version, then trickles in.
    upstream.on(zip, { hold: new Promise<void>((r) => (release = r)), slowBody: { chunk: 64, intervalMs: 50 } });
    const client = get(`${server.url}${zip}`);
    await upstream.waitForRequest(zip);
    const running = prefetch(['--data', data, `${B}@v1.0.0`]);
    await upstream.waitForRequest(`/${B}/@v/v1.0.0.mod`);
    release();
    const [r, served] = await Promise.all([running, client]);
    expect(r.code, r.stderr).toBe(0);
    expect(results(r)).toEqual([`${B}@v1.0.0 fetched`]);
    expect(served.status).toBe(200);
    expect(upstream.count(zip)).toBe(1);
    expect(await readFile(cachedFile(data, B, 'v1.0.0', 'ziphash'), 'utf8')).toBe(world.get(`${B}@v1.0.0`).Sum);
    resetUpstream();
  });
});

describe('failures', () => {
  test('a corrupt zip, a tampered zip and a missing version are each named with the reason; the rest is fetched; exit 1', async () => {
    const data = await makeTempDir('pf-bad');
    resetUpstream();
    upstream.on(`/${BAD}/@v/v1.0.0.zip`, { replaceBody: 'this is not a zip file', contentType: 'application/zip' });
    const fake = await moduleZip(BAD, 'v1.1.0', { 'go.mod': `module ${BAD}\n\ngo 1.21\n`, 'evil.go': 'package bad\n\nconst Evil = true\n' });
    upstream.on(`/${BAD}/@v/v1.1.0.zip`, { replaceBody: fake, contentType: 'application/zip' });
    const r = await prefetch(['--data', data, `${BAD}@v1.0.0`, `${BAD}@v1.1.0`, `${A}@v1.9.9`, `${A}@v1.0.0`, `${A}@nosuchbranch`]);
    expect(r.code).toBe(1);
    expect(results(r)).toEqual(
      [`${A}@nosuchbranch failed`, `${A}@v1.0.0 fetched`, `${A}@v1.9.9 failed`, `${BAD}@v1.0.0 failed`, `${BAD}@v1.1.0 failed`].sort(),
    );
    const named = r.stderr.split('\n').filter((l) => l.startsWith('gomodproxy prefetch: github.com/'));
    expect(named).toHaveLength(4);
    expect(named).toEqual(
      expect.arrayContaining([
        expect.stringMatching(
          new RegExp(`^gomodproxy prefetch: ${BAD}@v1\\.0\\.0: \\.zip: upstream ${upstream.url} sent an invalid zip for ${BAD}@v1\\.0\\.0: `),
        ),
        expect.stringMatching(new RegExp(`^gomodproxy prefetch: ${BAD}@v1\\.1\\.0: \\.zip: SECURITY: checksum mismatch for ${BAD}@v1\\.1\\.0: `)),
        expect.stringMatching(new RegExp(`^gomodproxy prefetch: ${A}@v1\\.9\\.9: \\.mod: not found: `)),
        expect.stringMatching(new RegExp(`^gomodproxy prefetch: ${A}@nosuchbranch: not found: `)),
      ]),
    );
    expect(r.stderr).toContain('gomodproxy prefetch: 4 failed (each named above with the reason)');
    expect(r.summary).toMatchObject({ fetched: 1, failed: 4 });
    // Nothing of a refused version is kept, but its go.mod, which passed.
    expect(await exists(cachedFile(data, BAD, 'v1.0.0', 'zip'))).toBe(false);
    expect(await exists(cachedFile(data, BAD, 'v1.0.0', 'info'))).toBe(false);
    expect(await exists(cachedFile(data, BAD, 'v1.1.0', 'zip'))).toBe(false);
    resetUpstream();
  });

  test('an upstream that does not have a zip: not found, named; exit 1', async () => {
    const data = await makeTempDir('pf-404');
    const rule = upstream.on(`/${C}/@v/v1.0.0.zip`, { status: 404, body: 'not found: gone from this upstream' });
    const r = await prefetch(['--data', data, `${C}@v1.0.0`]);
    rule.remove();
    expect(r.code).toBe(1);
    expect(r.events).toEqual([
      expect.objectContaining({ module: C, version: 'v1.0.0', result: 'failed', error: expect.stringMatching(/^\.zip: not found: /) }),
    ]);
    expect(r.stderr).toMatch(new RegExp(`^gomodproxy prefetch: ${C}@v1\\.0\\.0: \\.zip: not found: `, 'm'));
  });

  test('an input that cannot be read: exit 2, naming the file (and line), nothing fetched', async () => {
    const data = await makeTempDir('pf-unreadable');
    resetUpstream();
    const missing = path.join(data, 'no-such-go.sum');
    const a = await prefetch(['--data', data, missing]);
    expect({ code: a.code, stdout: a.stdout }).toEqual({ code: 2, stdout: '' });
    expect(a.stderr).toMatch(
      new RegExp(`^gomodproxy prefetch: cannot read ${missing.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(ENOENT\\); give module@version`),
    );
    const garbled = path.join(data, 'go.sum');
    await writeFile(garbled, `${A} v1.0.0 h1:abc=\nthis line is not one\n`);
    const b = await prefetch(['--data', data, garbled]);
    expect(b.code).toBe(2);
    expect(b.stderr).toBe(`gomodproxy prefetch: ${garbled}:2: expected "<module> <version>[/go.mod] h1:<hash>", got "this line is not one"\n`);
    const none = await prefetch(['--data', data]);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/^gomodproxy prefetch: nothing to fetch: give module@version/);
    const offline = await prefetch(['--data', data, `${A}@v1.0.0`], { GOMODPROXY_UPSTREAM: 'off' });
    expect(offline.code).toBe(2);
    expect(offline.stderr).toMatch(/the configuration is offline/);
    expect(upstream.requests).toEqual([]);
  });
});
