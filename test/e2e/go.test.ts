// The real go command through gomodproxy, compared with the same command straight to the test
// upstream and with GOPROXY=direct from the world's git repositories: same versions, same
// go.sum lines, same bytes. Then the cache as the go command sees it: across a restart with the
// upstream gone, as a file:// GOPROXY, and filled by `gomodproxy import`.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createGoEnv, type GoEnv, type GoModDownload, type GoVars } from '../helpers/goenv.js';
import { cliEntry, startProxy, type ProxyProcess } from '../helpers/gomodproxy.js';
import { run, scrubbedEnv } from '../helpers/proc.js';
import { cleanupAll, makeTempDir } from '../helpers/tmp.js';
import { startTestUpstream, type TestUpstream } from '../helpers/upstream.js';
import { buildModuleWorld, type World, type WorldSpec } from '../helpers/world.js';
import { accessLines, listFiles, waitFor, waitForAccess } from './util.js';

const A = 'github.com/gmp-test/alpha';
const A2 = 'github.com/gmp-test/alpha/v2';
const N = 'github.com/gmp-test/nomod';
const U = 'github.com/gmp-test/Upper';
const APP = 'github.com/gmp-test/app';

const spec: WorldSpec = {
  modules: [
    // /v2 in the major subdirectory of the same repository
    { path: A2, versions: [{ version: 'v2.0.0', files: { 'alpha.go': 'package alpha\n\nconst V = 2\n' } }] },
    {
      path: A,
      versions: [
        { version: 'v1.0.0' },
        { version: 'v1.1.0', files: { 'alpha.go': 'package alpha\n\nconst V = 11\n', 'sub/sub.go': 'package sub\n' } },
        { version: 'v1.2.0-rc.1', annotated: true },
        {}, // untagged head of main: a pseudo-version
      ],
      latest: true,
      queries: ['main'],
    },
    {
      path: N,
      versions: [
        { version: 'v1.0.0', goMod: null },
        { version: 'v2.0.0+incompatible', goMod: null, files: { 'nomod.go': 'package nomod\n\nconst V = 2\n' } },
      ],
    },
    // upper case in path and version: `!` escaping on the wire and on disk
    { path: U, versions: [{ version: 'v1.0.0' }, { version: 'v1.1.0-RC1' }] },
    {
      path: APP,
      versions: [
        {
          version: 'v1.0.0',
          goMod: `module ${APP}\n\ngo 1.21\n\nrequire github.com/gmp-test/alpha v1.1.0\n`,
          files: { 'app.go': 'package app\n\nimport _ "github.com/gmp-test/alpha"\n' },
        },
      ],
    },
  ],
};

let world: World;
let upstream: TestUpstream;
let proxy: ProxyProcess;
let pseudo: string;
let exact: string[];
let direct: GoEnv;

function esc(p: string): string {
  return p.replace(/[A-Z]/g, (c) => `!${c.toLowerCase()}`);
}

/** What go.sum / go mod download care about, one object per module. */
function sums(rs: GoModDownload[]): { Path: string; Version: string; Sum?: string; GoModSum?: string; Error?: string }[] {
  return rs.map((r) => ({ Path: r.Path, Version: r.Version, Sum: r.Sum, GoModSum: r.GoModSum, Error: r.Error }));
}

/** A fresh go env (cold module cache) pointed at `goproxy`. */
function envFor(goproxy: string): Promise<GoEnv> {
  return createGoEnv({ goproxy });
}

/**
 * Makes the test upstream answer as a real proxy does where the go command's download cache it
 * serves falls short: branch queries and @latest (the cache keeps no file for them), and complete
 * version lists (go's cache `list` can omit versions, e.g. it lacked v1.1.0-RC1 of Upper).
 */
function answerQueries(up: TestUpstream): void {
  const lists = new Map<string, string[]>();
  for (const e of world.expected.values()) {
    if (/\d{14}-[0-9a-f]{12}$/.test(e.Version)) continue; // pseudo-versions are not listed
    lists.set(e.Path, [...(lists.get(e.Path) ?? []), e.Version]);
  }
  for (const [m, versions] of lists) {
    up.on(`/${esc(m)}/@v/list`, { replaceBody: versions.map((v) => `${v}\n`).join(''), contentType: 'text/plain; charset=utf-8' });
  }
  for (const [key, e] of world.queries) {
    const q = key.slice(key.lastIndexOf('@') + 1);
    if (q === 'latest') {
      up.on(`/${esc(e.Path)}/@latest`, { replaceBody: e.infoText, contentType: 'application/json' });
    } else {
      up.on(`/${esc(e.Path)}/@v/${q}.info`, { replaceBody: e.infoText, contentType: 'application/json' });
    }
  }
}

beforeAll(async () => {
  world = await buildModuleWorld(spec);
  pseudo = world.queries.get(`${A}@main`)!.Version;
  exact = [
    `${A}@v1.0.0`,
    `${A}@v1.1.0`,
    `${A}@v1.2.0-rc.1`,
    `${A}@${pseudo}`,
    `${A2}@v2.0.0`,
    `${N}@v1.0.0`,
    `${N}@v2.0.0+incompatible`,
    `${U}@v1.0.0`,
    `${U}@v1.1.0-RC1`,
    `${APP}@v1.0.0`,
  ];
  upstream = await startTestUpstream({ root: world.downloadDir });
  answerQueries(upstream);
  proxy = await startProxy({ upstream: upstream.url });
  direct = await createGoEnv();
  await world.configureGit(direct);
});
afterAll(cleanupAll);

/** Runs the same go command through the proxy, straight at the upstream, and in direct mode. */
async function threeWays(args: string[], cwdFor?: (env: GoEnv) => Promise<string>): Promise<{ proxy: string; upstream: string; direct: string }> {
  const out: Record<string, string> = {};
  const setups: [string, GoEnv, GoVars | undefined][] = [
    ['proxy', await envFor(proxy.url), undefined],
    ['upstream', await envFor(upstream.url), undefined],
    ['direct', await createGoEnv(), world.directEnv],
  ];
  await world.configureGit(setups[2]![1]);
  await Promise.all(
    setups.map(async ([name, env, vars]) => {
      const cwd = cwdFor ? await cwdFor(env) : undefined;
      const r = await env.go(args, { env: vars, cwd });
      out[name] = r.stdout;
    }),
  );
  return out as { proxy: string; upstream: string; direct: string };
}

describe('go mod download', () => {
  test('exact versions: /v2, no go.mod, +incompatible, pre-release, upper case, pseudo-version — same sums and bytes as upstream and direct', async () => {
    const [viaProxy, viaUpstream] = await Promise.all([
      envFor(proxy.url).then((e) => e.modDownloadJson(exact)),
      envFor(upstream.url).then((e) => e.modDownloadJson(exact)),
    ]);
    const expected = exact.map((k) => {
      const e = world.get(k);
      return { Path: e.Path, Version: e.Version, Sum: e.Sum, GoModSum: e.GoModSum, Error: undefined };
    });
    expect(sums(viaProxy)).toEqual(expected);
    expect(sums(viaUpstream)).toEqual(expected);
    for (const r of viaProxy) {
      const e = world.get(`${r.Path}@${r.Version}`);
      // byte-exact: the zip and go.mod the go command stored are the ones direct mode made
      expect((await readFile(r.Zip!)).equals(await readFile(e.files.zip)), `${r.Path}@${r.Version}.zip`).toBe(true);
      expect(await readFile(r.GoMod!, 'utf8')).toBe(e.modText);
      const info = JSON.parse(await readFile(r.Info!, 'utf8')) as { Version: string; Time: string };
      expect({ Version: info.Version, Time: info.Time }).toEqual({ Version: e.Info.Version, Time: e.Info.Time });
    }
    // the no-go.mod module's synthesized .mod is exactly "module <path>\n" (drives +incompatible)
    expect(await readFile(viaProxy.find((r) => r.Version === 'v2.0.0+incompatible')!.GoMod!, 'utf8')).toBe(`module ${N}\n`);
  });

  test('queries (latest, branch, semver prefix) resolve as upstream and direct do', async () => {
    const queries = [`${A}@latest`, `${A}@main`, `${A}@v1.1`, `${A}@v1.2.0-rc.1`, `${A2}@latest`, `${N}@latest`, `${U}@latest`, `${U}@v1.1.0-RC1`];
    const [viaProxy, viaUpstream, viaDirect] = await Promise.all([
      envFor(proxy.url).then((e) => e.modDownloadJson(queries)),
      envFor(upstream.url).then((e) => e.modDownloadJson(queries)),
      direct.modDownloadJson(queries, world.directEnv),
    ]);
    expect(sums(viaProxy)).toEqual(sums(viaDirect));
    expect(sums(viaUpstream)).toEqual(sums(viaDirect));
    expect(viaProxy.map((r) => r.Version)).toEqual(['v1.1.0', pseudo, 'v1.1.0', 'v1.2.0-rc.1', 'v2.0.0', 'v2.0.0+incompatible', 'v1.0.0', 'v1.1.0-RC1']);
  });
});

describe('go get / go list', () => {
  test('go get of several modules writes the same go.mod and go.sum as upstream and direct', async () => {
    const mains = new Map<string, string>();
    const mkMain = async (env: GoEnv): Promise<string> => {
      const dir = await env.newModule(path.join(env.root, 'main'), 'example.com/main');
      mains.set(env.root, dir);
      return dir;
    };
    const args = ['get', `${APP}@v1.0.0`, `${U}@v1.1.0-RC1`, `${N}@v2.0.0+incompatible`, `${A2}@v2.0.0`];
    const envs: [GoEnv, GoVars | undefined][] = [
      [await envFor(proxy.url), undefined],
      [await envFor(upstream.url), undefined],
      [await createGoEnv(), world.directEnv],
    ];
    await world.configureGit(envs[2]![0]);
    const results = await Promise.all(
      envs.map(async ([env, vars]) => {
        const dir = await mkMain(env);
        await env.go(args, { cwd: dir, env: vars });
        const first = { goMod: await readFile(path.join(dir, 'go.mod'), 'utf8'), goSum: [...(await env.readGoSum(dir))] };
        // a branch query: go get M@main pins the branch head's pseudo-version
        await env.go(['get', `${A}@main`], { cwd: dir, env: vars });
        const second = { goMod: await readFile(path.join(dir, 'go.mod'), 'utf8'), goSum: [...(await env.readGoSum(dir))] };
        return { first, second };
      }),
    );
    const [p, u, d] = results;
    expect(p!.first).toEqual(d!.first);
    expect(u!.first).toEqual(d!.first);
    expect(p!.second).toEqual(d!.second);
    expect(p!.first.goSum).toContainEqual([`${A} v1.1.0`, world.get(`${A}@v1.1.0`).Sum]);
    expect(p!.first.goSum).toContainEqual([`${U} v1.1.0-RC1`, world.get(`${U}@v1.1.0-RC1`).Sum]);
    expect(p!.first.goSum).toContainEqual([`${N} v2.0.0+incompatible/go.mod`, world.get(`${N}@v2.0.0+incompatible`).GoModSum]);
    expect(p!.second.goMod).toContain(`${A} ${pseudo}`);
    expect(p!.second.goSum).toContainEqual([`${A} ${pseudo}`, world.get(`${A}@${pseudo}`).Sum]);
  });

  test('go list -m -versions', async () => {
    const out = await threeWays(['list', '-m', '-versions', A, A2, N, U]);
    expect(out.proxy).toBe(out.direct);
    expect(out.upstream).toBe(out.direct);
    expect(out.proxy).toBe([`${A} v1.0.0 v1.1.0 v1.2.0-rc.1`, `${A2} v2.0.0`, `${N} v1.0.0 v2.0.0+incompatible`, `${U} v1.0.0 v1.1.0-RC1`].join('\n') + '\n');
  });

  test('go list -m -json M@latest', async () => {
    const mods = [A, A2, N, U, APP];
    const pick = (s: string): unknown =>
      s
        .trim()
        .split(/\n(?=\{)/)
        .map((j) => {
          const o = JSON.parse(j) as Record<string, unknown>;
          return { Path: o.Path, Version: o.Version, Time: o.Time, GoVersion: o.GoVersion, Error: o.Error };
        });
    const out = await threeWays(['list', '-m', '-json', ...mods.map((m) => `${m}@latest`)]);
    expect(pick(out.proxy)).toEqual(pick(out.direct));
    expect(pick(out.upstream)).toEqual(pick(out.direct));
    expect((pick(out.proxy) as { Version: string }[]).map((o) => o.Version)).toEqual(['v1.1.0', 'v2.0.0', 'v2.0.0+incompatible', 'v1.0.0', 'v1.0.0']);
  });
});

describe('the cache as the go command sees it', () => {
  test('survives a restart with the upstream gone: every artifact is a hit', async () => {
    const up = await startTestUpstream({ root: world.downloadDir });
    answerQueries(up);
    const dataDir = await makeTempDir('restart-data');
    const first = await startProxy({ upstream: up.url, dataDir });
    const before = sums(await (await envFor(first.url)).modDownloadJson(exact));
    const listBefore = (await (await envFor(first.url)).go(['list', '-m', '-versions', A, U])).stdout;
    expect(await first.stop('SIGTERM')).toBe(0);
    await up.kill();
    const seen = up.count();

    const second = await startProxy({ upstream: up.url, dataDir });
    const env = await envFor(second.url);
    expect(sums(await env.modDownloadJson(exact))).toEqual(before);
    expect((await env.go(['list', '-m', '-versions', A, U])).stdout).toBe(listBefore);
    expect(up.count()).toBe(seen);
    const artifacts = await waitForAccess(second, '.zip', exact.length);
    const lines = accessLines(second).filter((l) => ['info', 'mod', 'zip'].includes(String(l.kind)));
    expect(artifacts.length).toBe(exact.length);
    expect(lines.length).toBeGreaterThanOrEqual(exact.length * 3);
    expect(lines.filter((l) => l.cache !== 'hit' || l.status !== 200).map((l) => `${String(l.path)} ${String(l.status)} ${String(l.cache)}`)).toEqual([]);
  });

  test('the data folder is a file:// GOPROXY for what was fetched', async () => {
    // make sure everything was fetched through the shared proxy (hits if an earlier test did it)
    const fetched = sums(await (await envFor(proxy.url)).modDownloadJson(exact));
    // the per-module version list is rewritten off the request path: wait for it
    for (const m of [A, A2, N, U, APP]) {
      await waitFor(async () => {
        const text = await readFile(path.join(proxy.dataDir, esc(m), '@v', 'list'), 'utf8').catch(() => '');
        const want = exact.filter((k) => k.startsWith(`${m}@`)).map((k) => k.slice(m.length + 1));
        return want.every((v) => text.split('\n').includes(v));
      }, `${m}/@v/list in the data folder`);
    }
    const env = await envFor(`file://${proxy.dataDir}`);
    expect(sums(await env.modDownloadJson(exact))).toEqual(fetched);
    const versions = await env.go(['list', '-m', '-versions', A, N, U]);
    expect(versions.stdout).toBe([`${A} v1.0.0 v1.1.0 v1.2.0-rc.1`, `${N} v1.0.0 v2.0.0+incompatible`, `${U} v1.0.0 v1.1.0-RC1`].join('\n') + '\n');
    // no transient files left behind in a folder that the go command reads as a proxy
    expect((await listFiles(proxy.dataDir)).filter((f) => /\.(partial|lock|tmp-[0-9a-f]+)$/.test(f))).toEqual([]);
  });

  test('gomodproxy import of a GOMODCACHE/cache/download, then served with upstream off', async () => {
    const dataDir = await makeTempDir('import-data');
    // No network in tests: no checksum database for the import (test/e2e-sumdb checks imports against one).
    const r = await run(process.execPath, [cliEntry, 'import', world.downloadDir, '--data', dataDir], {
      env: { ...scrubbedEnv(), GOSUMDB: 'off' },
      cwd: dataDir,
      timeoutMs: 60_000,
    });
    // Not a terminal: the only other output is plain progress lines.
    expect({ code: r.code, stderr: r.stderr.split('\n').filter((l) => l !== '' && !l.startsWith('import: ')) }).toEqual({ code: 0, stderr: [] });
    expect(r.stdout).toMatch(/imported \d+ module versions/);
    const served = await startProxy({ upstream: 'off', dataDir });
    const env = await envFor(served.url);
    const got = sums(await env.modDownloadJson(exact));
    expect(got).toEqual(
      exact.map((k) => ({ Path: world.get(k).Path, Version: world.get(k).Version, Sum: world.get(k).Sum, GoModSum: world.get(k).GoModSum, Error: undefined })),
    );
    expect((await env.go(['list', '-m', '-versions', A, U])).stdout).toBe(`${A} v1.0.0 v1.1.0 v1.2.0-rc.1\n${U} v1.0.0 v1.1.0-RC1\n`);
    const latest = JSON.parse((await env.go(['list', '-m', '-json', `${A}@latest`])).stdout) as { Version: string };
    expect(latest.Version).toBe('v1.1.0');
    // something that was never imported is "not found" (the go command's fallback signal), not an error
    const miss = await env.go(['mod', 'download', '-json', `${A}@v1.9.9`], { allowFail: true });
    expect(miss.code).not.toBe(0);
    expect(miss.stdout).toMatch(/404 Not Found/);
  });
});
