// Publishing private modules without a repository, against a real server and the real go
// command: `gomodproxy publish` of a git checkout (its .git, a nested module and vendored
// packages must stay out, as zip.CreateFromDir leaves them out) and a curl-style PUT of a zip Go
// itself made; then `go get`, `go list -m -versions`, @latest and a retraction through the
// proxy, with go.sum lines equal to x/mod's for the same files. Immutability (409 with both
// hashes, a no-op for the same bytes), who may publish, which routes take it, the version rules,
// the audit lines, and that nothing naming a published module reaches the upstream or the
// checksum database (both recording, both able to answer it).
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createReadStream } from 'node:fs';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { gomodproxy } from '../e2e-sumdb/util.js';
import { readAudit, startProxyWithConfig } from '../e2e-access/util.js';
import { gitEnv } from '../helpers/gitrepo.js';
import { createGoEnv, type GoEnv } from '../helpers/goenv.js';
import type { ProxyProcess } from '../helpers/gomodproxy.js';
import { runGoTool } from '../helpers/gotools.js';
import { get } from '../helpers/http.js';
import { run } from '../helpers/proc.js';
import { cleanupAll, makeTempDir } from '../helpers/tmp.js';
import { startTestUpstream, type TestUpstream } from '../helpers/upstream.js';
import { startGoSumdb, type GoSumdbServer } from '../sumdb/helpers.js';
import { accessLines, expectOneLineError, waitFor } from './util.js';

const LIB = 'corp.example/platform/lib';
const API = 'corp.example/platform/api';
const OTHER = 'other.example/x';

const LEAK = /corp\.example/;

let proxy: ProxyProcess;
let upstream: TestUpstream;
let db: GoSumdbServer;
let dataDir: string;
let auditFile: string;
let ci: string;
let dev: string;
let ops: string;
let srcRoot: string;

interface GoCreate {
  err: string | null;
  h1: string | null;
  files?: string[];
}

/** What x/mod's CreateFromDir makes of `dir`: the zip file and its go.sum lines. */
async function goZip(dir: string, mod: string, version: string): Promise<{ zip: string; lines: string[] }> {
  const zip = path.join(await makeTempDir('gozip'), 'm.zip');
  const made = JSON.parse(await runGoTool('modzip', ['create', dir, mod, version, zip])) as GoCreate;
  expect(made.err).toBeNull();
  const modHash = JSON.parse(await runGoTool('modzip', ['gomodhash', path.join(dir, 'go.mod')])) as { h1: string };
  return { zip, lines: [`${mod} ${version} ${made.h1}`, `${mod} ${version}/go.mod ${modHash.h1}`] };
}

/** A module folder; with `git` it is a real checkout (a .git folder and a commit). */
async function moduleDir(name: string, files: Record<string, string>, git = false): Promise<string> {
  const dir = path.join(srcRoot, name);
  for (const [f, content] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(dir, f)), { recursive: true });
    await writeFile(path.join(dir, f), content);
  }
  if (git) {
    for (const args of [
      ['init', '-q'],
      ['add', '-A'],
      ['-c', 'user.name=t', '-c', 'user.email=t@example.com', 'commit', '-qm', 'x'],
    ]) {
      const r = await run('git', args, { cwd: dir, env: gitEnv() });
      expect(r.code, r.stderr).toBe(0);
    }
  }
  return dir;
}

function libFiles(version: string, goModExtra = ''): Record<string, string> {
  return {
    'go.mod': `module ${LIB}\n\ngo 1.21\n${goModExtra}`,
    'lib.go': `package lib\n\nfunc Version() string { return "${version}" }\n`,
    'internal/util/util.go': 'package util\n',
    // Another module inside the checkout, and vendored code: neither belongs in the zip.
    'tools/go.mod': 'module corp.example/platform/lib/tools\n\ngo 1.21\n',
    'tools/tools.go': 'package tools\n',
    'vendor/example.com/dep/dep.go': 'package dep\n',
    'vendor/modules.txt': '# example.com/dep v1.0.0\n',
  };
}

async function publishCli(dir: string, version: string, token = ci, extra: string[] = []): Promise<{ code: number; stdout: string; stderr: string }> {
  return gomodproxy(['publish', dir, '--version', version, '--url', proxy.url, ...extra], { GOMODPROXY_TOKEN: token });
}

async function put(
  mod: string,
  version: string,
  body: Buffer | string | NodeJS.ReadableStream,
  headers: Record<string, string> = {},
  token: string | null = ci,
) {
  const res = await request(`${proxy.url}/-/api/publish/${mod}/@v/${version}`, {
    method: 'PUT',
    headers: { connection: 'close', ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers },
    body: body as Buffer,
  });
  const text = await res.body.text();
  return { status: res.statusCode, json: JSON.parse(text) as Record<string, unknown> };
}

/** The user of the published modules: everything through the proxy, GONOSUMDB for them, the recording database for the rest. */
async function goUser(): Promise<GoEnv> {
  return createGoEnv({ goproxy: proxy.url, gosumdb: `${db.vkey} ${db.url}`, gonosumdb: 'corp.example' });
}

beforeAll(async () => {
  srcRoot = await makeTempDir('publish-src');
  db = await startGoSumdb();
  upstream = await startTestUpstream({ root: await makeTempDir('empty-upstream') });
  const dir = await makeTempDir('publish');
  dataDir = path.join(dir, 'data');
  auditFile = path.join(dir, 'audit.jsonl');
  ci = (await gomodproxy(['token', 'create', '--user', 'ci', '--scope', 'publish', '--data', dataDir])).stdout.trim();
  dev = (await gomodproxy(['token', 'create', '--user', 'dev', '--data', dataDir])).stdout.trim();
  ops = (await gomodproxy(['token', 'create', '--user', 'ops', '--data', dataDir])).stdout.trim();
  proxy = await startProxyWithConfig(
    {
      // The whole domain: looking for the module of a package, the go command also asks for the
      // path's prefixes (corp.example), which a narrower pattern would send to the upstream.
      routes: [{ match: 'corp.example', publish: true }],
      auth: { admin: ['user:ops'], audit: { enabled: true, file: auditFile } },
    },
    { upstream: upstream.url, dataDir, env: { GOMODPROXY_SUMDB: `${db.vkey} ${db.url}` } },
  );
});
afterAll(cleanupAll);

describe('publish, then the go command', () => {
  test('gomodproxy publish of a checkout, and a curl-style PUT of a zip Go made: go get, go list -m -versions, @latest, go.sum as x/mod computes it', async () => {
    // v1.0.0 from a git checkout with the CLI.
    const v1 = await moduleDir('lib-v1.0.0', libFiles('v1.0.0'), true);
    const expected1 = await goZip(v1, LIB, 'v1.0.0');
    const r1 = await publishCli(v1, 'v1.0.0');
    expect(r1.code, r1.stderr).toBe(0);
    expect(r1.stdout.trim().split('\n')).toEqual(expected1.lines);

    // v1.1.0 as a CI job without our CLI would: the zip in the body, no Content-Type (curl -T).
    const v11 = await moduleDir('lib-v1.1.0', libFiles('v1.1.0'));
    const expected11 = await goZip(v11, LIB, 'v1.1.0');
    const up = await put(LIB, 'v1.1.0', createReadStream(expected11.zip), { 'content-length': String((await stat(expected11.zip)).size) });
    expect(up.status).toBe(201);
    expect(up.json).toMatchObject({ module: LIB, version: 'v1.1.0', unchanged: false, goSum: expected11.lines });

    // A second module, as multipart (mod + zip), the way `curl -F mod=@go.mod -F zip=@m.zip -X PUT` sends it.
    const apiDir = await moduleDir('api', {
      'go.mod': `module ${API}\n\ngo 1.21\n\nrequire ${LIB} v1.1.0\n`,
      'api.go': `package api\n\nimport "${LIB}"\n\nvar V = lib.Version()\n`,
    });
    const expectedApi = await goZip(apiDir, API, 'v0.1.0');
    const form = new FormData();
    form.append('mod', new Blob([await readFile(path.join(apiDir, 'go.mod'))]), 'go.mod');
    form.append('zip', new Blob([await readFile(expectedApi.zip)]), 'module.zip');
    const res = await fetch(`${proxy.url}/-/api/publish/${API}/@v/v0.1.0`, { method: 'PUT', headers: { authorization: `Bearer ${ci}` }, body: form });
    expect(res.status).toBe(201);
    expect(((await res.json()) as { goSum: string[] }).goSum).toEqual(expectedApi.lines);

    // The go user.
    const env = await goUser();
    const app = await env.newModule(path.join(env.root, 'app'), 'corp.example/app');
    await writeFile(
      path.join(app, 'main.go'),
      `package main\n\nimport (\n\t"fmt"\n\n\t"${API}"\n\t"${LIB}"\n)\n\nfunc main() { fmt.Println(lib.Version(), api.V) }\n`,
    );
    await env.go(['get', `${API}@v0.1.0`], { cwd: app });
    const sum = await env.readGoSum(app);
    // api needs lib v1.1.0.
    for (const line of [...expected11.lines, ...expectedApi.lines]) {
      const [p, v, h] = line.split(' ');
      expect(sum.get(`${p} ${v}`)).toBe(h);
    }
    const [d1] = await env.modDownloadJson([`${LIB}@v1.0.0`]);
    expect([`${LIB} v1.0.0 ${d1!.Sum}`, `${LIB} v1.0.0/go.mod ${d1!.GoModSum}`]).toEqual(expected1.lines);
    const out = await env.go(['run', '.'], { cwd: app });
    expect(out.stdout.trim()).toBe('v1.1.0 v1.1.0');

    expect((await env.go(['list', '-m', '-versions', LIB])).stdout.trim()).toBe(`${LIB} v1.0.0 v1.1.0`);
    expect(JSON.parse((await env.go(['list', '-m', '-json', `${LIB}@latest`])).stdout).Version).toBe('v1.1.0');
    const latest = await get(`${proxy.url}/${LIB}/@latest`);
    expect(latest.json<{ Version: string; Time: string }>().Version).toBe('v1.1.0');
    expect(Date.parse(latest.json<{ Time: string }>().Time)).toBeGreaterThan(Date.now() - 3_600_000);

    // Retraction the normal way: v1.2.0's go.mod retracts v1.1.0.
    const v12 = await moduleDir('lib-v1.2.0', libFiles('v1.2.0', '\nretract v1.1.0 // broken\n'));
    expect((await publishCli(v12, 'v1.2.0')).code).toBe(0);
    const env2 = await goUser();
    expect((await env2.go(['list', '-m', '-versions', LIB])).stdout.trim()).toBe(`${LIB} v1.0.0 v1.2.0`);
    expect((await env2.go(['list', '-m', '-retracted', '-versions', LIB])).stdout.trim()).toBe(`${LIB} v1.0.0 v1.1.0 v1.2.0`);
    expect(JSON.parse((await env2.go(['list', '-m', '-json', `${LIB}@latest`])).stdout).Version).toBe('v1.2.0');

    // The admin API sees where the versions came from.
    const page = await request(`${proxy.url}/-/api/modules/${LIB}`, { headers: { authorization: `Bearer ${ops}` } });
    const body = (await page.body.json()) as { private: boolean; versions: Array<{ version: string; source: string }> };
    expect(body.private).toBe(true);
    expect(body.versions.map((v) => [v.version, v.source])).toEqual([
      ['v1.2.0', 'publish'],
      ['v1.1.0', 'publish'],
      ['v1.0.0', 'publish'],
    ]);
  });

  test('a version that was not published is a plain not-found, and is found once it is', async () => {
    const miss = await get(`${proxy.url}/${LIB}/@v/v1.3.0.info`);
    expect(expectOneLineError(miss, 404)).toMatch(/has not been published/);
    const dir = await moduleDir('lib-v1.3.0', libFiles('v1.3.0'));
    expect((await publishCli(dir, 'v1.3.0')).code).toBe(0);
    expect((await get(`${proxy.url}/${LIB}/@v/v1.3.0.info`)).status).toBe(200);
    expect(expectOneLineError(await get(`${proxy.url}/${LIB}/@v/main.info`), 404)).toMatch(/only its published versions/);
  });
});

describe('published versions never change', () => {
  test('the same content again is a no-op; other content is a 409 that names both hashes', async () => {
    const dir = await moduleDir('lib-v1.0.0-again', libFiles('v1.0.0'));
    const again = await publishCli(dir, 'v1.0.0');
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toMatch(/already published with this content; nothing changed/);

    const before = (await get(`${proxy.url}/${LIB}/@v/v1.0.0.info`)).text();
    const other = await moduleDir('lib-v1.0.0-other', libFiles('v1.0.0-but-different'));
    const theirs = await goZip(other, LIB, 'v1.0.0');
    const clash = await put(LIB, 'v1.0.0', await readFile(theirs.zip), { 'content-type': 'application/zip' });
    expect(clash.status).toBe(409);
    const stored = (await goZip(path.join(srcRoot, 'lib-v1.0.0'), LIB, 'v1.0.0')).lines[0]!.split(' ')[2]!;
    expect(clash.json.error).toContain(stored);
    expect(clash.json.error).toContain(theirs.lines[0]!.split(' ')[2]);
    const cli = await publishCli(other, 'v1.0.0');
    expect(cli.code).toBe(1);
    expect(cli.stderr).toMatch(/already published with other content/);
    expect((await get(`${proxy.url}/${LIB}/@v/v1.0.0.info`)).text()).toBe(before);
  });
});

describe('who may publish what', () => {
  test('a user without the publish role gets a 403, nobody signed in a 401', async () => {
    const dir = await moduleDir('lib-v1.4.0', libFiles('v1.4.0'));
    const zip = (await goZip(dir, LIB, 'v1.4.0')).zip;
    const noRole = await put(LIB, 'v1.4.0', await readFile(zip), {}, dev);
    expect(noRole.status).toBe(403);
    expect(noRole.json.error).toMatch(/denied for user dev/);
    expect((await put(LIB, 'v1.4.0', await readFile(zip), {}, null)).status).toBe(401);
    // A publish token is no admin token.
    const admin = await request(`${proxy.url}/-/api/stats`, { headers: { authorization: `Bearer ${ci}` } });
    await admin.body.dump();
    expect(admin.statusCode).toBe(403);
    expect((await get(`${proxy.url}/${LIB}/@v/v1.4.0.info`)).status).toBe(404);
  });

  test('only under a route with publish: true, only canonical versions that fit the path', async () => {
    const otherDir = await moduleDir('other', { 'go.mod': `module ${OTHER}\n`, 'x.go': 'package x\n' });
    const outside = await publishCli(otherDir, 'v1.0.0');
    expect(outside.code).toBe(1);
    expect(outside.stderr).toMatch(/not under a route with publish: true/);

    const dir = await moduleDir('lib-v2', libFiles('v2'));
    const zip = await readFile((await goZip(dir, LIB, 'v1.5.0')).zip);
    const cases: Array<[string, RegExp]> = [
      ['v1.5', /canonical version/],
      // A zip made for v1.5.0 is not one of v1.6.0: every entry has the wrong prefix.
      ['v1.6.0', /invalid/],
      // v2 needs /v2 in the path, or +incompatible, which is for modules without a go.mod.
      ['v2.0.0', /should be v0 or v1, not v2/],
    ];
    for (const [version, why] of cases) {
      const r = await put(LIB, version, zip);
      expect([r.status, r.json.error]).toEqual([400, expect.stringMatching(why)]);
    }
    const incompatible = await goZip(dir, LIB, 'v2.0.0+incompatible');
    const inc = await put(LIB, 'v2.0.0+incompatible', await readFile(incompatible.zip));
    expect([inc.status, inc.json.error]).toEqual([400, expect.stringMatching(/\+incompatible versions are for modules without a go\.mod/)]);
    // The go.mod must name the module it is published as.
    const wrong = await moduleDir('wrong-name', { 'go.mod': 'module corp.example/platform/elsewhere\n', 'a.go': 'package a\n' });
    const wrongZip = await goZip(wrong, LIB, 'v1.7.0');
    const named = await put(LIB, 'v1.7.0', await readFile(wrongZip.zip));
    expect([named.status, named.json.error]).toEqual([400, expect.stringMatching(/declares module corp\.example\/platform\/elsewhere/)]);
    // A mod part other than the zip's go.mod.
    const form = new FormData();
    form.append('mod', new Blob([`module ${LIB}\n\ngo 1.22\n`]));
    form.append('zip', new Blob([zip]));
    const pair = await fetch(`${proxy.url}/-/api/publish/${LIB}/@v/v1.5.0`, { method: 'PUT', headers: { authorization: `Bearer ${ci}` }, body: form });
    expect(pair.status).toBe(400);
    expect(((await pair.json()) as { error: string }).error).toMatch(/not the zip's go\.mod/);
    // Not a zip at all.
    const junk = await put(LIB, 'v1.5.0', 'hello', { 'content-type': 'application/zip' });
    expect(junk.status).toBe(400);
    expect((await get(`${proxy.url}/${LIB}/@v/v1.5.0.info`)).status).toBe(404);
  });
});

describe('audit and privacy', () => {
  test('every publish has its access line and audit line; nothing naming a published module left the proxy', async () => {
    await waitFor(() => accessLines(proxy).filter((l) => l.kind === 'publish').length >= 8, 'the publish access lines');
    const published = accessLines(proxy).find((l) => l.kind === 'publish' && l.status === 201 && l.version === 'v1.0.0');
    expect(published).toMatchObject({ module: LIB, user: 'ci', method: 'PUT' });
    expect(accessLines(proxy).find((l) => l.kind === 'publish' && l.status === 409)).toMatchObject({ module: LIB, version: 'v1.0.0', user: 'ci' });
    const audit = await waitFor(async () => {
      const lines = (await readAudit(auditFile)).filter((a) => a.kind === 'publish');
      return lines.length >= 8 ? lines : undefined;
    }, 'the publish audit lines');
    expect(audit.find((a) => a.status === 201 && a.version === 'v1.1.0')).toMatchObject({ user: 'ci', module: LIB, allowed: true });
    expect(audit.find((a) => a.status === 403)).toMatchObject({ user: 'dev', module: LIB, allowed: false });

    // The database lookup of a published module is refused by the proxy itself.
    const lookup = await get(`${proxy.url}/sumdb/${db.name}/lookup/${LIB}@v1.0.0`);
    expect(expectOneLineError(lookup, 404)).toMatch(/private to this gomodproxy/);
    expect(upstream.requests.filter((r) => LEAK.test(r.rawPath)).map((r) => r.rawPath)).toEqual([]);
    expect((await db.requests()).filter((p) => LEAK.test(p))).toEqual([]);
    // The recording works: a module of the default route does reach the upstream.
    await get(`${proxy.url}/${OTHER}/@v/list`);
    expect(upstream.count((r) => r.path.startsWith(`/${OTHER}/`))).toBeGreaterThan(0);
  });
});
