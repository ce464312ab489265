// The proof that the git source is byte-exact with the go command: for every fixture layout,
// the real go command with GOPROXY=direct and the same go command through a running gomodproxy
// whose only upstream is `direct` must agree on version lists, latest, every version's .info
// (time and origin), .mod bytes, and the h1 of zip and go.mod, and on queries (branches, hash
// prefixes, non-canonical tags) and the versions they resolve to. Expected answers are never
// stored: they come from the go command, now.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { escapePath } from '../../src/module/index.js';
import { GitSource } from '../../src/sources/git/index.js';
import { createGoEnv, parseJsonStream, type GoEnv, type GoModDownload } from '../helpers/goenv.js';
import { addInsteadOf } from '../helpers/gitrepo.js';
import { startProxy, type ProxyProcess } from '../helpers/gomodproxy.js';
import { cleanupAll, makeTempDir } from '../helpers/tmp.js';
import { buildFixtures, fixtures, OWNER, type Fixture, type Marks } from './fixtures.js';
import { zipH1 } from './util.js';

interface Built {
  fixture: Fixture;
  marks: Marks;
  repo: { dir: string };
}

let built: Map<string, Built>;
let direct: GoEnv;
let viaProxy: GoEnv;
let proxy: ProxyProcess;
let gitConfig: string;

/** fixture name -> check -> 'ok' | failure text (the conformance matrix). */
const matrix = new Map<string, Map<string, string>>();
/** check -> [comparisons, of which both sides failed alike]. */
const counts = new Map<string, [number, number]>();
function record(fixture: string, check: string, problem: string | undefined, bothFailed = false): void {
  const c = counts.get(check) ?? [0, 0];
  counts.set(check, [c[0] + 1, c[1] + (bothFailed ? 1 : 0)]);
  let row = matrix.get(fixture);
  if (!row) matrix.set(fixture, (row = new Map()));
  const prev = row.get(check);
  if (problem) row.set(check, prev && prev !== 'ok' ? `${prev}; ${problem}` : problem);
  else if (!prev) row.set(check, 'ok');
}
const fixtureOf = (modPath: string): string => modPath.slice(OWNER.length + 1).split('/')[0] as string;

const modules = (): { fixture: string; path: string; check: Fixture['modules'][number]; marks: Marks }[] =>
  [...built.values()].flatMap((b) => b.fixture.modules.map((check) => ({ fixture: b.fixture.name, path: check.path, check, marks: b.marks })));

beforeAll(async () => {
  const root = await makeTempDir('git-conformance');
  built = (await buildFixtures(path.join(root, 'repos'))) as Map<string, Built>;
  direct = await createGoEnv({ root: path.join(root, 'direct'), goproxy: 'direct' });
  gitConfig = direct.gitConfig;
  for (const b of built.values()) await addInsteadOf(gitConfig, `https://${OWNER}/${b.fixture.name}`, b.repo.dir);
  proxy = await startProxy({
    upstream: 'direct',
    // Two worker processes share one data folder: fetches into the shared repositories cross processes.
    workers: 2,
    env: {
      GIT_CONFIG_GLOBAL: gitConfig,
      GOMODPROXY_SUMDB: 'off',
      // Answer every list/latest/query afresh: the checks below change repositories between rounds.
      GOMODPROXY_CACHE_TTL: '0',
      GOMODPROXY_CACHE_STALE_WHILE_REVALIDATE: '0',
      GOMODPROXY_GIT_REFS_TTL: '0',
      GOMODPROXY_LOG_ACCESS: 'false',
    },
  });
  viaProxy = await createGoEnv({ root: path.join(root, 'proxy'), goproxy: proxy.url });
}, 180_000);

afterAll(async () => {
  const checks = [...new Set([...matrix.values()].flatMap((r) => [...r.keys()]))];
  const lines = [`fixture`.padEnd(16) + checks.map((c) => c.padEnd(9)).join('')];
  for (const f of fixtures) {
    const row = matrix.get(f.name);
    lines.push(f.name.padEnd(16) + checks.map((c) => (row?.get(c) === undefined ? '-' : row.get(c) === 'ok' ? 'ok' : 'FAIL').padEnd(9)).join(''));
  }
  const totals = [...counts].map(([c, [n, f]]) => `${c}: ${n} comparisons (${f} where both failed alike)`).join('; ');
  console.log(`conformance matrix (${fixtures.length} fixtures, ${modules().length} modules):\n${lines.join('\n')}\n${totals}`);
  await cleanupAll();
});

async function goJson(env: GoEnv, args: string[]): Promise<Record<string, unknown>[]> {
  const r = await env.go(args, { allowFail: true, timeoutMs: 600_000 });
  try {
    return parseJsonStream(r.stdout) as Record<string, unknown>[];
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${r.stderr}`, { cause: err });
  }
}

const errText = (e: unknown): string | undefined =>
  e === undefined ? undefined : typeof e === 'string' ? e : String((e as { Err?: string }).Err ?? JSON.stringify(e));

/** A proxy failure must be a "not found" the go command can fall back from, never a 5xx. */
function proxyErrorProblem(msg: string): string | undefined {
  return /\b(500|502|503|504) /.test(msg) ? `proxy answered an error status: ${msg.split('\n').slice(0, 3).join(' ')}` : undefined;
}

/**
 * The line the proxy answered must be the go command's own error, where both are about resolving
 * a version (zip-rule errors are worded by modzip, and some failures happen in the client).
 */
function errorWordingProblem(direct: string, viaProxy: string): string | undefined {
  const m = /server response: (.*)$/s.exec(viaProxy);
  if (!m) return undefined;
  const response = (m[1] as string).trim();
  if (!/: invalid (pseudo-)?version: /.test(direct)) return undefined;
  return response === direct ? undefined : `error wording: direct ${JSON.stringify(direct)}, proxy ${JSON.stringify(response)}`;
}

describe('git source vs go command (GOPROXY=direct)', () => {
  test('version lists (with and without retracted) and @latest', async () => {
    const paths = modules().map((m) => m.path);
    const run = (env: GoEnv) =>
      Promise.all([
        goJson(env, ['list', '-m', '-e', '-json', '-versions', ...paths]),
        goJson(env, ['list', '-m', '-e', '-json', '-versions', '-retracted', ...paths]),
        goJson(env, ['list', '-m', '-e', '-json', ...paths.map((p) => `${p}@latest`)]),
      ]);
    const [d, p] = await Promise.all([run(direct), run(viaProxy)]);
    const problems: string[] = [];
    for (const [i, check] of (['list', 'list -retracted', 'latest'] as const).entries()) {
      const byPath = (xs: Record<string, unknown>[]) => new Map(xs.map((x) => [x.Path as string, x]));
      const dm = byPath(d[i] as Record<string, unknown>[]);
      const pm = byPath(p[i] as Record<string, unknown>[]);
      for (const mp of paths) {
        const a = dm.get(mp);
        const b = pm.get(mp);
        let problem: string | undefined;
        if (!a || !b) problem = `missing output (direct ${!!a}, proxy ${!!b})`;
        else if (!!a.Error !== !!b.Error) problem = `direct error ${errText(a.Error)} / proxy error ${errText(b.Error)}`;
        else if (b.Error) problem = proxyErrorProblem(errText(b.Error) as string);
        else if (check === 'latest') {
          for (const k of ['Version', 'Time', 'GoVersion', 'Retracted', 'Deprecated']) {
            if (JSON.stringify(a[k]) !== JSON.stringify(b[k])) problem = `${k}: direct ${JSON.stringify(a[k])}, proxy ${JSON.stringify(b[k])}`;
          }
        } else if (JSON.stringify(a.Versions ?? []) !== JSON.stringify(b.Versions ?? [])) {
          problem = `versions: direct ${JSON.stringify(a.Versions ?? [])}, proxy ${JSON.stringify(b.Versions ?? [])}`;
        }
        record(fixtureOf(mp), check === 'latest' ? 'latest' : 'list', problem, !!a?.Error && !!b?.Error);
        if (problem) problems.push(`${mp} ${check}: ${problem}`);
      }
    }
    expect(problems).toEqual([]);
  });

  /** Downloads args with both go envs (fresh caches) and compares what they got. */
  async function compareDownloads(
    args: string[],
    check: string,
    exactInfo: boolean,
    envs = { d: direct, p: viaProxy },
  ): Promise<{ problems: string[]; direct: Map<string, GoModDownload> }> {
    const key = (o: GoModDownload) => `${o.Path}@${o.Query ?? o.Version}`;
    const [d, p] = await Promise.all([envs.d, envs.p].map((env) => env.modDownloadJson(args, undefined, { allowErrors: true, timeoutMs: 600_000 })));
    const dm = new Map((d as GoModDownload[]).map((o) => [key(o), o]));
    const pm = new Map((p as GoModDownload[]).map((o) => [key(o), o]));
    const problems: string[] = [];
    for (const arg of args) {
      const a = dm.get(arg);
      const b = pm.get(arg);
      let problem: string | undefined;
      if (!a || !b) problem = `missing output (direct ${!!a}, proxy ${!!b})`;
      else if (!!a.Error !== !!b.Error) problem = `direct: ${a.Error ?? a.Version} / proxy: ${b.Error ?? b.Version}`;
      else if (b.Error) {
        problem = proxyErrorProblem(b.Error) ?? errorWordingProblem(a.Error as string, b.Error);
      } else {
        for (const k of ['Version', 'Sum', 'GoModSum'] as const) if (a[k] !== b[k]) problem = `${k}: direct ${a[k]}, proxy ${b[k]}`;
        const [ai, bi, am, bm] = await Promise.all([a.Info, b.Info, a.GoMod, b.GoMod].map((f) => readFile(f as string, 'utf8')));
        if (am !== bm) problem = `.mod bytes differ: direct ${JSON.stringify(am)}, proxy ${JSON.stringify(bm)}`;
        if (exactInfo) {
          if (ai !== bi) problem = `.info differs: direct ${ai}, proxy ${bi}`;
        } else {
          // When several queries resolve to one version, whichever wrote the .info last wins in
          // the go command's cache: compare what a query determines.
          const x = JSON.parse(ai as string) as { Version: string; Time: string; Origin?: Record<string, string> };
          const y = JSON.parse(bi as string) as typeof x;
          for (const k of ['Version', 'Time'] as const) if (x[k] !== y[k]) problem = `.info ${k}: direct ${x[k]}, proxy ${y[k]}`;
          for (const k of ['VCS', 'URL', 'Subdir', 'Hash'])
            if (x.Origin?.[k] !== y.Origin?.[k]) problem = `.info Origin.${k}: direct ${x.Origin?.[k]}, proxy ${y.Origin?.[k]}`;
        }
      }
      const mp = arg.slice(0, arg.lastIndexOf('@'));
      record(fixtureOf(mp), check, problem, !!a?.Error && !!b?.Error);
      if (problem) problems.push(`${arg} (${check}): ${problem}`);
    }
    return { problems, direct: dm };
  }

  test('every version: .info, .mod, h1 of zip and go.mod', async () => {
    const listed = await goJson(direct, ['list', '-m', '-e', '-json', '-versions', '-retracted', ...modules().map((m) => m.path)]);
    const versions = new Map(listed.map((x) => [x.Path as string, (x.Versions as string[] | undefined) ?? []]));
    const args = new Set<string>();
    for (const m of modules()) {
      for (const v of versions.get(m.path) ?? []) args.add(`${m.path}@${v}`);
      for (const v of m.check.versions?.(m.marks) ?? []) args.add(`${m.path}@${v}`);
    }
    const { problems } = await compareDownloads([...args], 'versions', true);
    expect(problems).toEqual([]);
  });

  test('queries: branches, hash prefixes, non-canonical tags, latest', async () => {
    // One query per module per round, so no two queries of a module race for one .info file.
    const rounds: string[][] = [];
    for (const m of modules()) {
      (m.check.queries?.(m.marks) ?? []).forEach((q, i) => (rounds[i] ??= []).push(`${m.path}@${q}`));
    }
    const problems: string[] = [];
    for (const round of rounds) problems.push(...(await compareDownloads(round, 'queries', false)).problems);
    expect(problems).toEqual([]);
  });

  test('after a tag moved and a branch was deleted', async () => {
    const moved = built.get('movedtag') as Built;
    const deleted = built.get('deletedbranch') as Built;
    // What the proxy served before the changes (the earlier tests downloaded these through it;
    // the pseudo-version is asked for by name too, so the proxy holds its .info as well).
    const [feature] = await direct.modDownloadJson([`${OWNER}/deletedbranch@feature`]);
    const first = await createGoEnv({ goproxy: proxy.url });
    const before = await first.modDownloadJson([`${OWNER}/movedtag@v1.0.0`, `${OWNER}/deletedbranch@${feature?.Version}`], undefined, { allowErrors: true });
    await moved.fixture.mutate?.(moved.repo as never, moved.marks);
    await deleted.fixture.mutate?.(deleted.repo as never, deleted.marks);
    const problems: string[] = [];

    // Immutability: a fresh client through the proxy still gets what was served.
    const fresh = await createGoEnv({ goproxy: proxy.url });
    const again = await fresh.modDownloadJson([`${OWNER}/movedtag@v1.0.0`, `${OWNER}/deletedbranch@${before[1]?.Version}`], undefined, { allowErrors: true });
    if (!before[0]?.Sum || again[0]?.Sum !== before[0].Sum)
      problems.push(`movedtag@v1.0.0 changed through the proxy: ${before[0]?.Sum ?? before[0]?.Error} -> ${again[0]?.Sum ?? again[0]?.Error}`);
    if (!before[1]?.Sum || again[1]?.Sum !== before[1].Sum)
      problems.push(`deletedbranch: the pseudo-version served before changed through the proxy: ${before[1]?.Error ?? again[1]?.Error}`);
    // A query now resolving to the moved tag gets the version the proxy already served.
    const [main] = await fresh.modDownloadJson([`${OWNER}/movedtag@main`], undefined, { allowErrors: true });
    if (main?.Version !== 'v1.0.0' || main.Sum !== before[0]?.Sum)
      problems.push(`movedtag@main through the proxy: ${main?.Version} ${main?.Sum ?? main?.Error}`);

    // Anything not served before follows the repository as it is now, exactly as a fresh go does.
    const freshDirect = await createGoEnv({ goproxy: 'direct' });
    await addInsteadOf(freshDirect.gitConfig, `https://${OWNER}/movedtag`, moved.repo.dir);
    await addInsteadOf(freshDirect.gitConfig, `https://${OWNER}/deletedbranch`, deleted.repo.dir);
    const freshProxyClient = await createGoEnv({ goproxy: proxy.url });
    const r = await compareDownloads(
      [
        `${OWNER}/deletedbranch@feature`,
        `${OWNER}/deletedbranch@${deleted.marks.hash.f1}`,
        `${OWNER}/deletedbranch@${(deleted.marks.hash.f2 as string).slice(0, 12)}`,
      ],
      'mutated',
      false,
      { d: freshDirect, p: freshProxyClient },
    );
    problems.push(...r.problems);

    // The shared bare-repository cache is not stale: a new source on the proxy's cache (a restart)
    // resolves the moved tag where it points now, like a fresh go command.
    const src = new GitSource({
      cacheDir: path.join(proxy.dataDir, 'vcs'),
      maxCacheBytes: 0,
      timeoutMs: 60_000,
      refsTtlMs: 0,
      discoveryTtlMs: 0,
      shallow: true,
      concurrency: 4,
      repos: [],
      insecure: '',
      credentials: [],
      env: { ...process.env, GIT_CONFIG_GLOBAL: gitConfig, GIT_CONFIG_NOSYSTEM: '1' },
    });
    const mod = { path: `${OWNER}/movedtag`, escaped: escapePath(`${OWNER}/movedtag`) };
    const v = { version: 'v1.0.0', escaped: 'v1.0.0' };
    const [now] = await freshDirect.modDownloadJson([`${OWNER}/movedtag@v1.0.0`]);
    const info = JSON.parse((await src.info(mod, v, { via: 'test' })).toString()) as { Origin: { Hash: string } };
    const h1 = await zipH1(await src.zip(mod, v, { via: 'test' }));
    if (info.Origin.Hash !== moved.marks.hash.c2) problems.push(`movedtag: moved tag resolved to ${info.Origin.Hash}, want ${moved.marks.hash.c2}`);
    if (h1 !== now?.Sum) problems.push(`movedtag: moved tag zip ${h1}, go says ${now?.Sum}`);
    for (const f of ['movedtag', 'deletedbranch']) record(f, 'mutated', problems.filter((x) => x.includes(f)).join('; ') || undefined);
    expect(problems).toEqual([]);
  });
});
