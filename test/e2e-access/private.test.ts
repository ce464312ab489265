// Private stays private (DESIGN invariant 3): a recording public upstream and a recording checksum
// database (x/mod's own server), two proxies — one told its private patterns in its config, one
// through GOPRIVATE in its environment — and every kind of request for a private module: list,
// @latest, .info, a branch and a commit query, .mod, .zip, a checksum-database lookup, and the
// go command's whole download. Not one request naming a private module may reach the upstream or
// the database, while the public module of the same run does reach both (so the test can fail).
// Private modules come straight from git and match the go command's GOPROXY=direct answers;
// the last test fetches one from a git HTTP server that demands credentials, which only the
// proxy has, and checks the credential appears nowhere.
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { hashZipFile } from '../../src/modzip/index.js';
import { accessLines, expectOneLineError, listFiles, waitFor } from '../e2e/util.js';
import { addToDb } from '../e2e-sumdb/util.js';
import { startGitHttpServer, type GitHttpServer } from '../git/httpgit.js';
import { createGoEnv, type GoEnv } from '../helpers/goenv.js';
import { gitEnv } from '../helpers/gitrepo.js';
import { startProxy, type ProxyProcess } from '../helpers/gomodproxy.js';
import { get, type HttpResponse } from '../helpers/http.js';
import { run } from '../helpers/proc.js';
import { cleanupAll, makeTempDir } from '../helpers/tmp.js';
import { startTestUpstream, type TestUpstream } from '../helpers/upstream.js';
import { buildModuleWorld, type World } from '../helpers/world.js';
import { startGoSumdb, type GoSumdbServer } from '../sumdb/helpers.js';
import { basic, findSecrets, proxyOutput, startProxyWithConfig } from './util.js';

const PUB = 'github.com/gmp-pub/lib';
const PRIV = 'github.com/gmp-priv/secret';
const CORP = 'github.com/gmp-corp/internal';
const VAULT = 'github.com/gmp-vault/kit';
/** Anything naming a private module, raw or case-escaped, in any request path. */
const PRIVATE_NAME = /gmp-priv|gmp-corp|gmp-vault/i;

const GIT_USER = 'proxy-bot';
const GIT_PASSWORD = 'git-Http-Secret-5b7e21c9';

let world: World;
let vaultWorld: World;
let upstream: TestUpstream;
let db: GoSumdbServer;
let gitServer: GitHttpServer;
/** `private` in its config file. */
let byConfig: ProxyProcess;
/** GOPRIVATE in its environment. */
let byEnv: ProxyProcess;
const goOutputs: Array<[string, string]> = [];

beforeAll(async () => {
  world = await buildModuleWorld({
    modules: [
      { path: PUB, versions: [{ version: 'v1.0.0' }, { version: 'v1.1.0' }] },
      // v1.1.0, then an untagged commit on main: `main` resolves to a pseudo-version
      { path: PRIV, versions: [{ version: 'v1.0.0' }, { version: 'v1.1.0' }, {}], queries: ['main'], latest: true },
      { path: CORP, versions: [{ version: 'v1.0.0' }, { version: 'v1.2.0' }] },
    ],
  });
  vaultWorld = await buildModuleWorld({ modules: [{ path: VAULT, versions: [{ version: 'v0.1.0' }, { version: 'v0.2.0' }] }] });

  db = await startGoSumdb();
  // The database knows the private versions too: a leaked lookup would succeed, not fail loudly.
  await addToDb(db, world, [`${PUB}@v1.0.0`, `${PUB}@v1.1.0`, `${PRIV}@v1.0.0`, `${PRIV}@v1.1.0`, `${CORP}@v1.0.0`]);
  // The upstream's tree holds the private modules as well (the world fetched them): a leaked
  // request would be answered, so only the recording can tell.
  upstream = await startTestUpstream({ root: world.downloadDir });

  // The vault repository behind git's smart-HTTP protocol, demanding Basic credentials.
  const srv = await makeTempDir('git-srv');
  const bare = path.join(srv, 'kit.git');
  const clone = await run('git', ['clone', '-q', '--bare', vaultWorld.repos.get(VAULT)!.dir, bare], { env: gitEnv() });
  expect(clone.code, clone.stderr).toBe(0);
  gitServer = await startGitHttpServer(srv, { username: GIT_USER, password: GIT_PASSWORD });
  // The proxy's git config: the world's repos as files, and the vault module at the HTTP server.
  const proxyGitConfig = path.join(srv, 'proxy-gitconfig');
  const worldConfig = await readFile(world.goEnv.gitConfig, 'utf8');
  await writeFile(proxyGitConfig, `${worldConfig}\n[url "${gitServer.url}/kit.git"]\n\tinsteadOf = https://${VAULT}\n`);

  const sumdbEnv = { GOMODPROXY_SUMDB: `${db.vkey} ${db.url}` };
  [byConfig, byEnv] = await Promise.all([
    startProxyWithConfig(
      {
        private: 'github.com/gmp-priv,github.com/gmp-vault',
        git: { credentials: [{ host: gitServer.host, username: GIT_USER, password: GIT_PASSWORD, allowHttp: true }] },
      },
      { upstream: upstream.url, env: { ...sumdbEnv, GIT_CONFIG_GLOBAL: proxyGitConfig } },
    ),
    startProxy({ upstream: upstream.url, env: { ...sumdbEnv, GOPRIVATE: 'github.com/gmp-corp', GIT_CONFIG_GLOBAL: world.goEnv.gitConfig } }),
  ]);
});
afterAll(cleanupAll);

/** The go user: GOPRIVATE unset (everything goes through the proxy), the database reached through the proxy. */
async function goUser(proxy: ProxyProcess, gonosumdb: string): Promise<GoEnv> {
  return createGoEnv({ goproxy: proxy.url, gosumdb: db.vkey, gonosumdb });
}

async function go(env: GoEnv, args: string[]): Promise<string> {
  const r = await env.go(args);
  goOutputs.push([`go ${args.join(' ')}`, r.stdout + r.stderr]);
  return r.stdout;
}

/** The h1 of zip bytes (what go.sum records). */
async function h1(zip: Buffer): Promise<string> {
  const dir = await makeTempDir('zip');
  const file = path.join(dir, 'm.zip');
  await writeFile(file, zip);
  return hashZipFile(file);
}

interface KindResults {
  list: HttpResponse;
  latest: HttpResponse;
  info: HttpResponse;
  branch: HttpResponse;
  commit: HttpResponse;
  mod: HttpResponse;
  zip: HttpResponse;
  missing: HttpResponse;
  lookup: HttpResponse;
}

/** Every kind of request for `mod` through `proxy`. */
async function everyKind(proxy: ProxyProcess, mod: string, version: string, commit: string): Promise<KindResults> {
  const base = `${proxy.url}/${mod}`;
  return {
    list: await get(`${base}/@v/list`),
    latest: await get(`${base}/@latest`),
    info: await get(`${base}/@v/${version}.info`),
    branch: await get(`${base}/@v/main.info`),
    commit: await get(`${base}/@v/${commit}.info`),
    mod: await get(`${base}/@v/${version}.mod`),
    zip: await get(`${base}/@v/${version}.zip`),
    // a version that does not exist must not fall through to any other source
    missing: await get(`${base}/@v/v9.9.9.info`),
    lookup: await get(`${proxy.url}/sumdb/${db.name}/lookup/${mod}@${version}`),
  };
}

function leakedTo(): { upstream: string[]; db: Promise<string[]> } {
  return {
    upstream: upstream.requests.filter((r) => PRIVATE_NAME.test(r.path) || PRIVATE_NAME.test(r.rawPath)).map((r) => r.rawPath),
    db: db.requests().then((all) => all.filter((p) => PRIVATE_NAME.test(p))),
  };
}

describe('private stays private', () => {
  test('private (config): every kind of request is answered from git, as GOPROXY=direct answers; nothing reaches the upstream or the database', async () => {
    const v100 = world.get(`${PRIV}@v1.0.0`);
    const main = world.queries.get(`${PRIV}@main`)!;
    const commit = main.Version.slice(-12);
    const r = await everyKind(byConfig, PRIV, 'v1.0.0', commit);

    expect(r.list.status).toBe(200);
    expect(r.list.text().split('\n').filter(Boolean).sort()).toEqual(['v1.0.0', 'v1.1.0']);
    expect(r.latest.status).toBe(200);
    // direct mode: @latest is the default branch's head (the go command prefers the list's highest tag)
    expect(r.latest.json<{ Version: string }>().Version).toBe(main.Version);
    expect(r.info.status).toBe(200);
    expect(r.info.json<{ Version: string; Time: string }>()).toMatchObject({ Version: 'v1.0.0', Time: v100.Info.Time });
    expect(r.branch.json<{ Version: string; Time: string }>()).toMatchObject({ Version: main.Version, Time: main.Info.Time });
    expect(r.commit.json<{ Version: string }>().Version).toBe(main.Version);
    expect(r.mod.text()).toBe(v100.modText);
    expect(r.zip.status).toBe(200);
    expect(await h1(r.zip.body)).toBe(v100.Sum);
    expect(expectOneLineError(r.missing, 404)).toMatch(/v9\.9\.9/);
    // The proxy refuses to look a private module up, and says what the client should set.
    expect(expectOneLineError(r.lookup, 404)).toMatch(/private to this gomodproxy .*GONOSUMDB/);

    // The go command through the proxy (GOPRIVATE unset): byte-exact with its direct answers, and
    // the public module of the same run verified through the proxy's database.
    const env = await goUser(byConfig, 'github.com/gmp-priv');
    const mods = [`${PUB}@v1.0.0`, `${PRIV}@v1.0.0`, `${PRIV}@v1.1.0`, `${PRIV}@${main.Version}`];
    const got = await env.modDownloadJson(mods);
    goOutputs.push(['go mod download', JSON.stringify(got)]);
    expect(got.map((x) => [x.Path, x.Version, x.Sum, x.GoModSum])).toEqual(
      mods.map((m) => [world.get(m).Path, world.get(m).Version, world.get(m).Sum, world.get(m).GoModSum]),
    );
    expect((await go(env, ['list', '-m', '-versions', PRIV])).trim()).toBe(`${PRIV} v1.0.0 v1.1.0`);
    expect(JSON.parse(await go(env, ['list', '-m', '-json', `${PRIV}@latest`])).Version).toBe('v1.1.0');
    const [q] = await env.modDownloadJson([`${PRIV}@main`]);
    expect([q?.Version, q?.Sum]).toEqual([main.Version, main.Sum]);

    const leaks = leakedTo();
    expect(leaks.upstream).toEqual([]);
    expect(await leaks.db).toEqual([]);
    // The test can fail: the public module did go to both.
    expect(upstream.count((x) => x.path.startsWith(`/${PUB}/`))).toBeGreaterThan(0);
    expect(await db.requests()).toContain(`/lookup/${PUB}@v1.0.0`);
    // and the proxy says where each private answer came from
    await waitFor(() => accessLines(byConfig).some((l) => l.module === PRIV && l.kind === 'zip' && l.status === 200), 'the private zip in the access log');
    const sources = new Set(
      accessLines(byConfig)
        .filter((l) => l.module === PRIV && l.status === 200 && l.source !== undefined)
        .map((l) => String(l.source)),
    );
    expect([...sources]).toEqual(['direct']);
  });

  test("GOPRIVATE in the proxy's environment: the same for every kind of request", async () => {
    const c100 = world.get(`${CORP}@v1.0.0`);
    const head = await run('git', ['rev-parse', 'HEAD'], { cwd: world.repos.get(CORP)!.dir, env: gitEnv() });
    const r = await everyKind(byEnv, CORP, 'v1.0.0', head.stdout.trim().slice(0, 12));
    expect(r.list.text().split('\n').filter(Boolean).sort()).toEqual(['v1.0.0', 'v1.2.0']);
    expect(r.latest.json<{ Version: string }>().Version).toBe('v1.2.0');
    expect(r.info.json<{ Version: string; Time: string }>()).toMatchObject({ Version: 'v1.0.0', Time: c100.Info.Time });
    expect(r.branch.json<{ Version: string }>().Version).toBe('v1.2.0');
    expect(r.commit.json<{ Version: string }>().Version).toBe('v1.2.0');
    expect(r.mod.text()).toBe(c100.modText);
    expect(await h1(r.zip.body)).toBe(c100.Sum);
    expectOneLineError(r.missing, 404);
    expectOneLineError(r.lookup, 404);

    const env = await goUser(byEnv, 'github.com/gmp-corp');
    const mods = [`${PUB}@v1.1.0`, `${CORP}@v1.0.0`, `${CORP}@v1.2.0`];
    const got = await env.modDownloadJson(mods);
    expect(got.map((x) => [x.Sum, x.GoModSum])).toEqual(mods.map((m) => [world.get(m).Sum, world.get(m).GoModSum]));

    const leaks = leakedTo();
    expect(leaks.upstream).toEqual([]);
    expect(await leaks.db).toEqual([]);
    expect(upstream.count((x) => x.path === `/${PUB}/@v/v1.1.0.zip`)).toBeGreaterThan(0);
    expect(await db.requests()).toContain(`/lookup/${PUB}@v1.1.0`);
  });

  test('a client that does not know a module is private is told so by the proxy, and nothing is leaked', async () => {
    // GONOSUMDB unset on the client: the go command asks the proxy's /sumdb/ for the private module.
    const env = await createGoEnv({ goproxy: byConfig.url, gosumdb: db.vkey });
    const [r] = await env.modDownloadJson([`${PRIV}@v1.1.0`], undefined, { allowErrors: true });
    goOutputs.push(['go mod download (no GONOSUMDB)', JSON.stringify(r)]);
    expect(r?.Error).toMatch(/private to this gomodproxy .*GONOSUMDB/);
    expect(leakedTo().upstream).toEqual([]);
    expect(await leakedTo().db).toEqual([]);
  });

  test('from a git HTTP server that requires credentials: only the proxy has them; the go user gets the module; the credential is nowhere', async () => {
    const env = await goUser(byConfig, 'github.com/gmp-vault');
    const mods = [`${VAULT}@v0.1.0`, `${VAULT}@v0.2.0`];
    const got = await env.modDownloadJson(mods);
    expect(got.map((x) => [x.Sum, x.GoModSum])).toEqual(mods.map((m) => [vaultWorld.get(m).Sum, vaultWorld.get(m).GoModSum]));
    expect((await go(env, ['list', '-m', '-versions', VAULT])).trim()).toBe(`${VAULT} v0.1.0 v0.2.0`);
    // The credentials went to the git server (and a request without them was refused first).
    const sent = basic(GIT_USER, GIT_PASSWORD);
    expect(gitServer.authorizations).toContain(sent);
    expect(gitServer.authorizations.every((a) => a === '' || a === sent)).toBe(true);

    expect(leakedTo().upstream).toEqual([]);
    expect(await leakedTo().db).toEqual([]);

    // The credential appears in no log line, no go output, and no file in the data folder.
    const texts: Array<[string, string]> = [...proxyOutput(byConfig, 'proxy'), ...proxyOutput(byEnv, 'proxy (env)'), ...goOutputs];
    for (const f of await listFiles(byConfig.dataDir)) {
      const text = await readFile(path.join(byConfig.dataDir, f)).then(
        (b) => b.toString('latin1'),
        () => '',
      );
      texts.push([`data/${f}`, text]);
    }
    const secrets = [GIT_PASSWORD, Buffer.from(`${GIT_USER}:${GIT_PASSWORD}`).toString('base64')];
    expect(findSecrets(texts, secrets)).toEqual([]);
  });
});
