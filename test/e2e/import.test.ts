// `gomodproxy import` of a module cache the real go command made, where it stored versions
// without their .info: `go mod tidy` keeps .mod and .zip only, and a version needed only for
// its go.mod in the module graph (required by a dependency, not selected) has nothing but the
// .mod. Every imported version must then be servable by an offline gomodproxy (upstream off)
// with the go command getting the same go.sum lines as straight from the repositories; what
// cannot be made servable is named, and nothing of it is written.
import { cp, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createGoEnv, type GoEnv } from '../helpers/goenv.js';
import { cliEntry, startProxy } from '../helpers/gomodproxy.js';
import { run, scrubbedEnv, type RunResult } from '../helpers/proc.js';
import { cleanupAll, makeTempDir } from '../helpers/tmp.js';
import { startTestUpstream, type TestUpstream } from '../helpers/upstream.js';
import { addVersionToWorld, buildModuleWorld, type World } from '../helpers/world.js';

const A = 'github.com/gmp-imp/a';
const B = 'github.com/gmp-imp/b';
const C = 'github.com/gmp-imp/c';
const P = 'github.com/gmp-imp/p';
const APP = 'example.com/app';

let world: World;
let upstream: TestUpstream;
let pseudo: string;
/** The client's GOMODCACHE/cache/download after `go mod tidy`: what is imported. */
let cache: string;
let appDir: string;
let goSum: string;
let client: GoEnv;

function esc(p: string): string {
  return p.replace(/[A-Z]/g, (c) => `!${c.toLowerCase()}`);
}

async function filesOf(root: string, mod: string): Promise<string[]> {
  return (await readdir(path.join(root, esc(mod), '@v')).catch(() => [] as string[])).filter((f) => /\.(info|mod|zip)$/.test(f)).sort();
}

function gomodproxy(args: string[], env: Record<string, string> = {}): Promise<RunResult> {
  return run(process.execPath, [cliEntry, ...args], {
    // No network, no checksum database (test/e2e-sumdb checks imports against one); the world's
    // git config, so that a private module can come straight from its repository.
    env: {
      ...scrubbedEnv(),
      GOSUMDB: 'off',
      GOENV: 'off',
      GIT_CONFIG_GLOBAL: world.goEnv.gitConfig,
      GIT_CONFIG_NOSYSTEM: '1',
      GIT_TERMINAL_PROMPT: '0',
      ...env,
    },
    timeoutMs: 120_000,
  });
}

beforeAll(async () => {
  world = await buildModuleWorld(
    {
      modules: [
        { path: A, versions: [{ version: 'v1.0.0' }, { version: 'v1.1.0' }] },
        // An untagged commit on a branch (a pseudo-version), then a release on main.
        { path: C, versions: [{ branch: 'dev' }, { version: 'v1.0.0', branch: 'main' }], queries: ['dev'] },
        { path: P, versions: [{ version: 'v1.0.0' }, { version: 'v1.1.0' }] },
      ],
    },
    { fresh: true },
  );
  pseudo = world.queries.get(`${C}@dev`)!.Version;
  expect(pseudo).toMatch(/^v0\.0\.0-\d{14}-[0-9a-f]{12}$/);
  // B predates module graph pruning (go 1.16): the go command reads the go.mod of everything it
  // requires, even versions the build does not select.
  await addVersionToWorld(world, B, {
    version: 'v1.0.0',
    goMod: `module ${B}\n\ngo 1.16\n\nrequire (\n\t${A} v1.0.0\n\t${C} ${pseudo}\n\t${P} v1.0.0\n)\n`,
  });
  upstream = await startTestUpstream({ root: world.downloadDir });

  client = await createGoEnv({ goproxy: upstream.url });
  appDir = await client.newModule(await makeTempDir('import-app'), APP, `\nrequire (\n\t${A} v1.1.0\n\t${B} v1.0.0\n\t${C} v1.0.0\n\t${P} v1.1.0\n)\n`);
  await writeFile(path.join(appDir, 'app.go'), `package app\n\nimport (\n\t_ "${A}"\n\t_ "${B}"\n\t_ "${C}"\n\t_ "${P}"\n)\n`);
  await client.go(['mod', 'tidy'], { cwd: appDir });
  goSum = await readFile(path.join(appDir, 'go.sum'), 'utf8');
  cache = client.downloadDir;
}, 240_000);
afterAll(cleanupAll);

test('the go command stored these versions without their .info', async () => {
  // Selected versions: .mod and .zip from `go mod tidy`; versions only in the graph: the .mod alone.
  expect(await filesOf(cache, A)).toEqual(['v1.0.0.mod', 'v1.1.0.mod', 'v1.1.0.zip']);
  expect(await filesOf(cache, B)).toEqual(['v1.0.0.mod', 'v1.0.0.zip']);
  expect(await filesOf(cache, C)).toEqual([`${pseudo}.mod`, 'v1.0.0.mod', 'v1.0.0.zip']);
  expect(await filesOf(cache, P)).toEqual(['v1.0.0.mod', 'v1.1.0.mod', 'v1.1.0.zip']);
  expect(goSum).toContain(`${A} v1.0.0/go.mod ${world.get(`${A}@v1.0.0`).GoModSum}\n`);
  expect(goSum).toContain(`${C} ${pseudo}/go.mod ${world.get(`${C}@${pseudo}`).GoModSum}\n`);
});

describe('a folder that cannot be imported', () => {
  test('a missing folder: one line that says so, and a non-zero exit', async () => {
    const missing = path.join(await makeTempDir('import-missing'), 'nope');
    const r = await gomodproxy(['import', missing, '--data', await makeTempDir('import-data')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`gomodproxy import: ${missing} does not exist; give a GOPROXY-layout folder such as $(go env GOMODCACHE)/cache/download\n`);
    expect(r.stdout).toBe('');
    const file = path.join(await makeTempDir('import-file'), 'cache.zip');
    await writeFile(file, 'not a folder');
    const f = await gomodproxy(['import', file, '--data', await makeTempDir('import-data')]);
    expect({ code: f.code, stderr: f.stderr }).toEqual({
      code: 2,
      stderr: `gomodproxy import: ${file} is not a folder; give a GOPROXY-layout folder such as $(go env GOMODCACHE)/cache/download\n`,
    });
  });

  test('a GOMODCACHE instead of its cache/download: no versions, and where they are', async () => {
    const r = await gomodproxy(['import', client.gomodcache, '--data', await makeTempDir('import-data')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      `gomodproxy import: no module versions in ${client.gomodcache} (expected <module>/@v/<version>.mod, .zip, .info); it looks like a GOMODCACHE: import ${path.join(client.gomodcache, 'cache', 'download')}\n`,
    );
  });
});

describe('with upstream off', () => {
  test('a pseudo-version gets its .info from its own time; each tagged version is named with why, and nothing of it is written', async () => {
    const data = await makeTempDir('import-off');
    const r = await gomodproxy(['import', cache, '--data', data, '--upstream', 'off']);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stdout).toBe(
      `imported 1 module versions into ${data} (1 with the .info derived from the pseudo-version; 1 without a zip (the folder had only their go.mod; serve fetches the zip when asked, if it has an upstream)), 0 already present, 6 not imported\n`,
    );
    const refused = r.stderr.split('\n').filter((l) => l.startsWith('skip '));
    expect(refused.map((l) => l.slice(5, l.indexOf(':'))).sort()).toEqual([
      `${A}@v1.0.0`,
      `${A}@v1.1.0`,
      `${B}@v1.0.0`,
      `${C}@v1.0.0`,
      `${P}@v1.0.0`,
      `${P}@v1.1.0`,
    ]);
    const a100 = refused.find((l) => l.startsWith(`skip ${A}@v1.0.0:`));
    expect(a100).toBe(
      `skip ${A}@v1.0.0: the folder has no .info for it (the go command stored only its go.mod), the time of a tagged version is in none of its files, and fetching the .info failed (module lookup disabled by upstream=off (${A}@v1.0.0 is not in gomodproxy's cache)); import with an upstream that has it (--upstream), or run go mod download ${A}@v1.0.0 where the folder was made, so that the go command stores its .info`,
    );
    expect(r.stderr).toContain('6 module versions were not imported');
    for (const m of [A, B, P]) expect(await filesOf(data, m), m).toEqual([]);
    expect(await filesOf(data, C)).toEqual([`${pseudo}.info`, `${pseudo}.mod`]);
    const info = JSON.parse(await readFile(path.join(data, esc(C), '@v', `${pseudo}.info`), 'utf8')) as Record<string, unknown>;
    // Exactly the time the go command recorded when it resolved the commit itself.
    expect(info).toEqual({ Version: pseudo, Time: world.queries.get(`${C}@dev`)!.Info.Time });
  });
});

describe('with upstreams', () => {
  let data: string;
  let result: RunResult;

  beforeAll(async () => {
    data = await makeTempDir('import-up');
    upstream.requests.length = 0;
    // P is private: its .info comes from its repository, and its name never reaches the upstream.
    result = await gomodproxy(['import', cache, '--data', data, '--upstream', upstream.url], { GOMODPROXY_PRIVATE: P });
  }, 180_000);

  test('every version is imported: the pseudo-version derived, the tagged ones fetched as serve would', async () => {
    expect(result.code, result.stderr).toBe(0);
    // Not a terminal: plain progress lines, the last one when all is done, and nothing else.
    const lines = result.stderr.trimEnd().split('\n');
    expect(
      lines.every((l) => /^import: \d+\/7 versions imported, /.test(l)),
      result.stderr,
    ).toBe(true);
    expect(lines.at(-1)).toMatch(/^import: 7\/7 versions imported, [\d.]+ KiB of [\d.]+ KiB, /);
    expect(result.stderr).not.toContain('\r');
    expect(result.stdout).toMatch(
      /^imported 7 module versions into .* \(1 with the \.info derived from the pseudo-version; 6 with a missing \.info or \.mod fetched through the upstreams; 3 without a zip .*\), 0 already present, 0 not imported\n$/,
    );
    const asked = upstream.requests.map((q) => q.path).sort();
    expect(asked).toEqual([`/${A}/@v/v1.0.0.info`, `/${A}/@v/v1.1.0.info`, `/${B}/@v/v1.0.0.info`, `/${C}/@v/v1.0.0.info`]);
    for (const k of [`${A}@v1.0.0`, `${A}@v1.1.0`, `${B}@v1.0.0`, `${C}@v1.0.0`, `${P}@v1.0.0`, `${P}@v1.1.0`]) {
      const [m, v] = k.split('@') as [string, string];
      const info = JSON.parse(await readFile(path.join(data, esc(m), '@v', `${v}.info`), 'utf8')) as { Version: string; Time: string };
      expect({ Version: info.Version, Time: info.Time }, k).toEqual({ Version: v, Time: world.get(k).Info.Time });
    }
  });

  test('served offline, the go command gets the same go.sum lines and versions as from the repositories', async () => {
    expect(result.code).toBe(0);
    const served = await startProxy({ upstream: 'off', dataDir: data });
    const env = await createGoEnv({ goproxy: served.url });
    // A fresh copy of the app without its go.sum: tidy recomputes every line through the proxy.
    const app = await makeTempDir('import-app-offline');
    await cp(path.join(appDir, 'go.mod'), path.join(app, 'go.mod'));
    await cp(path.join(appDir, 'app.go'), path.join(app, 'app.go'));
    await env.go(['mod', 'tidy'], { cwd: app });
    expect(await readFile(path.join(app, 'go.sum'), 'utf8')).toBe(goSum);
    // Every go.sum line is the one direct mode computed from the repositories.
    for (const line of goSum.trim().split('\n')) {
      const [m, v, h] = line.split(' ') as [string, string, string];
      const e = world.get(`${m}@${v.replace(/\/go\.mod$/, '')}`);
      expect(h, line).toBe(v.endsWith('/go.mod') ? e.GoModSum : e.Sum);
    }
    // The selected versions download whole; the ones that were only in the graph list with their time.
    const got = await env.modDownloadJson([`${A}@v1.1.0`, `${B}@v1.0.0`, `${C}@v1.0.0`, `${P}@v1.1.0`]);
    expect(got.map((g) => [g.Path, g.Version, g.Sum, g.GoModSum])).toEqual(
      [`${A}@v1.1.0`, `${B}@v1.0.0`, `${C}@v1.0.0`, `${P}@v1.1.0`].map((k) => [
        world.get(k).Path,
        world.get(k).Version,
        world.get(k).Sum,
        world.get(k).GoModSum,
      ]),
    );
    for (const k of [`${A}@v1.0.0`, `${C}@${pseudo}`, `${P}@v1.0.0`]) {
      const listed = JSON.parse((await env.go(['list', '-m', '-json', k], { cwd: app })).stdout) as { Version: string; Time: string; GoModSum?: string };
      const [, v] = k.split('@') as [string, string];
      const want = k === `${C}@${pseudo}` ? world.queries.get(`${C}@dev`)! : world.get(k);
      expect({ Version: listed.Version, Time: listed.Time }, k).toEqual({ Version: v, Time: want.Info.Time });
    }
    expect((await env.go(['list', '-m', '-versions', A])).stdout).toBe(`${A} v1.0.0 v1.1.0\n`);
  });
});
