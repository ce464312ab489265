// The go environment's isolation and the git repository builder, checked with the real tools.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { createRepo, insteadOf, symlinkTo } from '../helpers/gitrepo.js';
import { createGoEnv, parseJsonStream, sharedGoCache } from '../helpers/goenv.js';
import { concurrent } from '../helpers/http.js';
import { cleanupAll, makeTempDir } from '../helpers/tmp.js';

afterAll(cleanupAll);

describe('createGoEnv', () => {
  test("ignores the developer's go, git and proxy settings", async () => {
    const saved = { ...process.env };
    Object.assign(process.env, {
      GOPROXY: 'https://leak.invalid',
      GOFLAGS: '-mod=vendor',
      GONOPROXY: 'leak.invalid',
      GOPRIVATE: 'leak.invalid',
      GONOSUMDB: 'leak.invalid',
      HTTPS_PROXY: 'http://127.0.0.1:9',
      http_proxy: 'http://127.0.0.1:9',
      GIT_DIR: '/nonexistent',
    });
    let env;
    try {
      env = await createGoEnv();
    } finally {
      process.env = saved;
    }
    const r = await env.go(['env', '-json']);
    const v = JSON.parse(r.stdout) as Record<string, string>;
    expect(v).toMatchObject({
      GOPROXY: 'off',
      GOSUMDB: 'off',
      GOFLAGS: '-modcacherw',
      GONOPROXY: '',
      GOPRIVATE: '',
      GONOSUMDB: '',
      GOTOOLCHAIN: 'local',
      GOMODCACHE: env.gomodcache,
      GOPATH: env.gopath,
      GOCACHE: sharedGoCache(),
    });
    // GOENV=off: go reports no env file at all (it prints the file's path, not the setting)
    expect(v.GOENV).toBe('');
    expect(env.vars().GOENV).toBe('off');
    const vars = env.vars();
    for (const k of ['HTTPS_PROXY', 'http_proxy', 'GIT_DIR']) expect(vars[k], k).toBeUndefined();
    expect(vars).toMatchObject({ HOME: env.home, GIT_CONFIG_GLOBAL: env.gitConfig, GIT_CONFIG_NOSYSTEM: '1' });
  });

  test('per-env and per-call settings; undefined removes a default', async () => {
    const env = await createGoEnv({ goproxy: 'http://127.0.0.1:1', goprivate: 'github.com/gmp-test', goinsecure: 'example.com' });
    const read = async (extra?: Record<string, string | undefined>) =>
      JSON.parse((await env.go(['env', '-json', 'GOPROXY', 'GOPRIVATE', 'GONOSUMDB', 'GOINSECURE', 'GOSUMDB'], { env: extra })).stdout) as Record<
        string,
        string
      >;
    expect(await read()).toEqual({
      GOPROXY: 'http://127.0.0.1:1',
      GOPRIVATE: 'github.com/gmp-test',
      GONOSUMDB: 'github.com/gmp-test',
      GOINSECURE: 'example.com',
      GOSUMDB: 'off',
    });
    const changed = await read({ GOPROXY: 'direct', GONOSUMDB: 'x.example', GOSUMDB: undefined });
    expect(changed).toMatchObject({ GOPROXY: 'direct', GONOSUMDB: 'x.example', GOSUMDB: 'sum.golang.org' });
  });

  test('go failures throw with the output unless allowed', async () => {
    const env = await createGoEnv();
    await expect(env.go(['mod', 'download', 'github.com/gmp-test/none@v1.0.0'])).rejects.toThrow(/exited 1[\s\S]*GOPROXY=off/);
    const r = await env.go(['mod', 'download', 'github.com/gmp-test/none@v1.0.0'], { allowFail: true });
    expect(r.code).toBe(1);
    const objs = await env.modDownloadJson(['github.com/gmp-test/none@v1.0.0', 'github.com/gmp-test/other@v1.0.0'], undefined, { allowErrors: true });
    expect(objs.map((o) => o.Path)).toEqual(['github.com/gmp-test/none', 'github.com/gmp-test/other']);
    expect(objs[0]?.Error).toContain('module lookup disabled by GOPROXY=off');
    await expect(env.modDownloadJson(['github.com/gmp-test/none@v1.0.0'])).rejects.toThrow(/module lookup disabled/);
  });

  test('newModule and readGoSum', async () => {
    const env = await createGoEnv();
    const dir = await env.newModule(path.join(env.root, 'm'), 'example.com/m', 'require example.com/dep v1.0.0');
    expect(await readFile(path.join(dir, 'go.mod'), 'utf8')).toBe('module example.com/m\n\ngo 1.21\n\nrequire example.com/dep v1.0.0\n');
    expect((await env.readGoSum(dir)).size).toBe(0);
    const listed = await env.go(['list', '-m'], { cwd: dir });
    expect(listed.stdout.trim()).toBe('example.com/m');
  });
});

test('parseJsonStream splits concatenated values, braces inside strings included', () => {
  expect(parseJsonStream('{\n\t"a": "}{\\"",\n\t"b": [1, {"c": 2}]\n}\n{"d": null}\n')).toEqual([{ a: '}{"', b: [1, { c: 2 }] }, { d: null }]);
  expect(parseJsonStream('')).toEqual([]);
  expect(() => parseJsonStream('{"a": 1')).toThrow(/truncated/);
  expect(() => parseJsonStream('go: error\n{}')).toThrow(/unexpected/);
});

describe('git repositories', () => {
  test('fixed dates give the same hashes every time; tags, branches, symlinks', async () => {
    const build = async () => {
      const repo = await createRepo(path.join(await makeTempDir('repo'), 'r'));
      await repo.write({ 'go.mod': 'module github.com/gmp-test/r\n', 'a.go': 'package r\n', 'link.go': symlinkTo('a.go') });
      const c1 = await repo.commit('one', { date: '2024-02-03T04:05:06Z' });
      await repo.tag('v1.0.0');
      await repo.tag('v1.0.1', { annotated: true });
      await repo.write({ 'b/b.go': Buffer.from('package b\n') });
      const c2 = await repo.commit('two');
      return { repo, c1, c2 };
    };
    const [x, y] = await concurrent(2, build);
    expect(x!.c1).toBe(y!.c1);
    expect(x!.c2).toBe(y!.c2);
    const { repo, c1, c2 } = x!;
    expect(await repo.head()).toBe(c2);
    expect(await repo.head('v1.0.1')).toBe(c1);
    expect((await repo.git(['log', '-1', '--format=%an <%ae> %aI %cI', c1])).trim()).toBe(
      'gomodproxy test <test@gomodproxy.invalid> 2024-02-03T04:05:06+00:00 2024-02-03T04:05:06+00:00',
    );
    expect((await repo.git(['cat-file', '-p', 'v1.0.1'])).split('\n').find((l) => l.startsWith('tagger'))).toMatch(/ 1706933106 \+0000$/);
    expect(await repo.git(['ls-files', '-s', 'link.go'])).toMatch(/^120000 /);

    await repo.moveTag('v1.0.0', c2);
    expect(await repo.head('v1.0.0')).toBe(c2);
    await repo.moveTag('v1.0.1', 'HEAD', { annotated: 'moved' });
    expect(await repo.head('v1.0.1')).toBe(c2);
    await repo.deleteTag('v1.0.0');
    await expect(repo.head('v1.0.0')).rejects.toThrow();

    await repo.branch('dev', c1);
    await repo.checkout('dev');
    expect(await repo.currentBranch()).toBe('dev');
    expect(await repo.head()).toBe(c1);
    await repo.checkout('topic', { create: true });
    await repo.remove(['a.go']);
    const c3 = await repo.commit('drop a');
    expect((await repo.git(['ls-tree', '--name-only', c3])).split('\n').filter(Boolean)).toEqual(['go.mod', 'link.go']);
    await expect(repo.write({ '../escape': 'x' })).rejects.toThrow(/escapes/);
  });

  test('insteadOf lets GOPROXY=direct fetch a github.com path from a local repo; symlinks stay out of the zip', async () => {
    const repo = await createRepo(path.join(await makeTempDir('direct'), 'solo'));
    await repo.write({ 'go.mod': 'module github.com/gmp-test/solo\n', 'solo.go': 'package solo\n', 'alias.go': symlinkTo('solo.go') });
    await repo.commit('init', { date: '2024-06-01T12:00:00Z' });
    await repo.tag('v0.1.0');
    const env = await createGoEnv({ goprivate: 'github.com/gmp-test' });
    await insteadOf(env, 'https://github.com/gmp-test/solo', repo.dir);
    const [r] = await env.modDownloadJson(['github.com/gmp-test/solo@v0.1.0'], { GOPROXY: 'direct' });
    expect(r).toMatchObject({ Version: 'v0.1.0', Origin: { VCS: 'git', URL: 'https://github.com/gmp-test/solo', Ref: 'refs/tags/v0.1.0' } });
    expect(JSON.parse(await readFile(r!.Info!, 'utf8'))).toMatchObject({ Time: '2024-06-01T12:00:00Z' });
    const zip = await readFile(r!.Zip!);
    expect(zip.includes(Buffer.from('@v0.1.0/solo.go'))).toBe(true);
    expect(zip.includes(Buffer.from('alias.go'))).toBe(false);
  });
});
