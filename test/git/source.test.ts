// The git source's machinery: the shared cache under concurrency (two sources on one folder, as
// two processes would be), the disk bound, process deadlines and reaping, `mod` meta tags
// answered by the proxy they name, and the go-command source for other version control systems.
import { execFileSync } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ProxyError } from '../../src/errors.js';
import { escapePath } from '../../src/module/index.js';
import { GoCmdSource } from '../../src/sources/gocmd.js';
import { GitSource, runningProcesses, type GitSourceOptions } from '../../src/sources/git/index.js';
import { du } from '../../src/sources/git/store.js';
import { createGoEnv, type GoEnv } from '../helpers/goenv.js';
import { addInsteadOf, createRepo, gitEnv, type GitRepo } from '../helpers/gitrepo.js';
import { cleanupAll, makeTempDir, registerCleanup } from '../helpers/tmp.js';
import { appendCommits } from './fixtures.js';
import { zipH1 } from './util.js';

const OWNER = 'github.com/gmp-src';
let root: string;
let gitConfig: string;
let repo: GitRepo;
let direct: GoEnv;
const ctx = { via: 'test' };
const mod = (p: string) => ({ path: p, escaped: escapePath(p) });
const ver = (v: string) => ({ version: v, escaped: v });

beforeAll(async () => {
  root = await makeTempDir('git-source');
  repo = await createRepo(path.join(root, 'repos', 'many'));
  await repo.write({ 'go.mod': `module ${OWNER}/many\n\ngo 1.21\n`, 'a.go': 'package many\n' });
  await repo.commit('first');
  for (let i = 0; i < 8; i++) {
    await repo.write({ [`f${i}.go`]: `package many // ${i}\n` });
    await repo.commit(`v${i}`);
    await repo.tag(`v1.${i}.0`);
  }
  await appendCommits(repo, 50, 'tail');
  direct = await createGoEnv({ root: path.join(root, 'direct'), goproxy: 'direct' });
  gitConfig = direct.gitConfig;
  await addInsteadOf(gitConfig, `https://${OWNER}/many`, repo.dir);
});
afterAll(cleanupAll);

function source(cacheDir: string, extra: Partial<GitSourceOptions> = {}): GitSource {
  const s = new GitSource({
    cacheDir,
    maxCacheBytes: 0,
    timeoutMs: 60_000,
    refsTtlMs: 0,
    discoveryTtlMs: 60_000,
    shallow: true,
    concurrency: 8,
    insecure: '',
    repos: [],
    credentials: [],
    env: { ...gitEnv(), GIT_CONFIG_GLOBAL: gitConfig, HOME: root },
    ...extra,
  });
  registerCleanup(() => s.close());
  return s;
}

describe('shared repository cache', () => {
  test('concurrent requests from two sources (two processes) on one cache agree with the go command', async () => {
    const cache = path.join(root, 'cache-shared');
    const a = source(cache);
    const b = source(cache);
    const versions = Array.from({ length: 8 }, (_, i) => `v1.${i}.0`);
    const want = new Map((await direct.modDownloadJson(versions.map((v) => `${OWNER}/many@${v}`))).map((o) => [o.Version, o.Sum]));
    const [mainInfo] = await direct.modDownloadJson([`${OWNER}/many@main`]);
    const jobs: Promise<void>[] = [];
    for (const [i, v] of versions.entries()) {
      for (const s of [a, b]) {
        jobs.push(
          (async () => {
            expect(await zipH1(await s.zip(mod(`${OWNER}/many`), ver(v), ctx))).toBe(want.get(v));
          })(),
        );
        if (i % 2 === 0) {
          jobs.push(
            (async () => {
              const info = JSON.parse((await s.info(mod(`${OWNER}/many`), ver('main'), ctx)).toString()) as { Version: string };
              expect(info.Version).toBe(mainInfo?.Version);
            })(),
          );
        }
      }
    }
    await Promise.all(jobs);
    // One repository directory for the remote, whoever fetched into it.
    const dirs = execFileSync('ls', [cache])
      .toString()
      .split('\n')
      .filter((n) => /^[0-9a-f]{64}$/.test(n));
    expect(dirs).toHaveLength(1);
    expect(runningProcesses()).toBe(0);
  });

  test('the disk bound evicts least recently used repositories that are not in use', async () => {
    const cache = path.join(root, 'cache-bounded');
    const other = await createRepo(path.join(root, 'repos', 'small'));
    await other.write({ 'go.mod': `module ${OWNER}/small\n`, 'a.go': 'package small\n' });
    await other.commit('one');
    await other.tag('v0.1.0');
    await addInsteadOf(gitConfig, `https://${OWNER}/small`, other.dir);
    const repoDirs = () =>
      execFileSync('ls', [cache])
        .toString()
        .split('\n')
        .filter((n) => /^[0-9a-f]{64}$/.test(n));
    // A bound of one byte: every repository is over it, so whatever is idle goes.
    const s = source(cache, { maxCacheBytes: 1 });
    // A repository in use (a request, or a zip still streaming from it) stays.
    const busy = s.store.get(`https://${OWNER}/many`);
    busy.active++;
    await s.info(mod(`${OWNER}/many`), ver('v1.0.0'), ctx);
    await s.info(mod(`${OWNER}/small`), ver('v0.1.0'), ctx);
    await s.store.gc();
    expect(repoDirs()).toEqual([path.basename(busy.dir)]);
    busy.active--;
    await s.store.gc();
    expect(repoDirs()).toHaveLength(0);
    expect(await du(cache)).toBeLessThan(1 << 20);
    // Everything still works afterwards (the repository is fetched again).
    const info = JSON.parse((await s.info(mod(`${OWNER}/small`), ver('v0.1.0'), ctx)).toString()) as { Version: string };
    expect(info.Version).toBe('v0.1.0');
  });
});

describe('processes', () => {
  test('a git that hangs is killed at its deadline (with what it started) and reported as a timeout', async () => {
    const sockets: net.Socket[] = [];
    const hang = net.createServer((sock) => sockets.push(sock));
    await new Promise<void>((r) => hang.listen(0, '127.0.0.1', r));
    registerCleanup(() => {
      for (const sk of sockets) sk.destroy();
      return new Promise<void>((r) => hang.close(() => r()));
    });
    const port = (hang.address() as AddressInfo).port;
    const s = source(path.join(root, 'cache-hang'), { timeoutMs: 1_500, repos: [{ prefix: 'hang.example/x', url: `http://127.0.0.1:${port}/x.git` }] });
    const t0 = Date.now();
    const err = await s.list(mod('hang.example/x'), ctx).catch((e: unknown) => e);
    // Ended by the deadline (the server never answers or closes), and reported as a timeout.
    expect(err).toBeInstanceOf(ProxyError);
    expect((err as ProxyError).kind).toBe('timeout');
    expect((err as ProxyError).status).toBe(504);
    expect((err as ProxyError).message).toMatch(/timed out/);
    expect((err as ProxyError).message).toContain(`127.0.0.1:${port}`);
    // A lower bound only: git was given its 1.5 s, not killed at once (with room for a timer that
    // fires early by the event loop's cached time, which load makes stale).
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1_000);
    expect(runningProcesses()).toBe(0);
    const left = execFileSync('ps', ['-eo', 'args'])
      .toString()
      .split('\n')
      .filter((l) => l.includes(`127.0.0.1:${port}`));
    expect(left).toEqual([]);
  });
});

describe('a failed ls-remote', () => {
  // cmd/go (codehost gitRepo.loadRefs) calls a repository missing only when a plain GET of its
  // http(s) URL answers 404 or 410; git's own "not found" proves nothing by itself (hosts say it
  // for private repositories too, and a path can be wrong for other reasons).
  let url: string;
  const proxyVars = ['HTTP_PROXY', 'HTTPS_PROXY', 'ALL_PROXY', 'NO_PROXY', 'http_proxy', 'https_proxy', 'all_proxy', 'no_proxy'];
  const saved = new Map<string, string | undefined>();
  beforeAll(async () => {
    // The plain GET honours HTTPS_PROXY: a developer's own must not stand between it and the local server.
    for (const k of proxyVars) {
      saved.set(k, process.env[k]);
      delete process.env[k];
    }
    const pageStatus: Record<string, number> = { '/signin/x.git': 200, '/gone/x.git': 410, '/missing/x.git': 404 };
    const server = http.createServer((req, res) => {
      const u = new URL(req.url ?? '/', 'http://x');
      if (u.pathname.endsWith('/info/refs')) {
        res.writeHead(404, { 'content-type': 'text/plain' });
        res.end('Repository not found\n');
        return;
      }
      res.writeHead(pageStatus[u.pathname] ?? 500, { 'content-type': 'text/html' });
      res.end('<html><body>a page</body></html>');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    registerCleanup(() => new Promise<void>((r) => server.close(() => r())));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => {
    for (const [k, v] of saved) if (v !== undefined) process.env[k] = v;
  });

  const listVia = async (repoURL: string): Promise<ProxyError> => {
    const s = source(path.join(root, `cache-lsremote-${Math.random().toString(36).slice(2)}`), { repos: [{ prefix: 'corp.example/m', url: repoURL }] });
    const err = await s.list(mod('corp.example/m'), ctx).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ProxyError);
    return err as ProxyError;
  };

  test.each([
    { why: 'git says not found, the page is 404', repo: '/missing/x.git', status: 404, says: /does not exist, or it is private/ },
    { why: 'git says not found, the page is 410', repo: '/gone/x.git', status: 404, says: /does not exist, or it is private/ },
    { why: 'git says not found, the page is 200 (a sign-in page)', repo: '/signin/x.git', status: 502, says: /not found/ },
  ])('over http: $why -> $status', async ({ repo, status, says }) => {
    const err = await listVia(`${url}${repo}`);
    expect(err.status).toBe(status);
    expect(err.message).toMatch(says);
  });

  test('a remote that is not http(s) is never "not found" by git\'s words alone', async () => {
    const err = await listVia(path.join(root, 'no-such-repository.git'));
    expect(err.status).toBe(502);
    expect(err.message).toMatch(/git finds no repository there: check the URL \(git\.repos/);
  });

  test('a host git cannot resolve: an error that names the host and the settings', async () => {
    const err = await listVia('https://nowhere.test/x.git');
    expect(err.status).toBe(502);
    expect(err.message).toMatch(/Could not resolve host: nowhere\.test/);
    expect(err.message).toMatch(/let gomodproxy reach nowhere\.test, e\.g\. through HTTPS_PROXY, or map the module with git\.repos/);
  });
});

describe('other sources behind direct', () => {
  test('a `mod` meta tag is answered by the proxy it names', async () => {
    const seen: string[] = [];
    const upstream = http.createServer((req, res) => {
      seen.push(req.url ?? '');
      if (req.url === '/vanity.example/m/@v/list') {
        res.end('v1.0.0\n');
        return;
      }
      res.writeHead(404);
      res.end('not found');
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    registerCleanup(() => new Promise<void>((r) => upstream.close(() => r())));
    const url = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
    const s = source(path.join(root, 'cache-mod'), {
      fetchMeta: async (u) => ({ status: 200, url: u.href, body: `<meta name="go-import" content="vanity.example/m mod ${url}">` }),
    });
    expect((await s.list(mod('vanity.example/m'), ctx)).toString()).toBe('v1.0.0\n');
    expect(seen).toEqual(['/vanity.example/m/@v/list']);
  });

  test('another version control system without gocmd: a clear "not here"', async () => {
    const s = source(path.join(root, 'cache-hg'), {
      fetchMeta: async (u) => ({ status: 200, url: u.href, body: '<meta name="go-import" content="hg.example/m hg https://hg.example/m">' }),
    });
    const err = (await s.list(mod('hg.example/m'), ctx).catch((e: unknown) => e)) as ProxyError;
    expect(err.status).toBe(404);
    expect(err.message).toMatch(/uses hg.*gocmd/);
  });

  test('gocmd: the go command as a source gives the same bytes', async () => {
    const g = new GoCmdSource({ dir: path.join(root, 'gocmd'), timeoutMs: 120_000, env: { ...direct.vars(), GIT_CONFIG_GLOBAL: gitConfig } });
    const [want] = await direct.modDownloadJson([`${OWNER}/many@v1.3.0`]);
    const m = mod(`${OWNER}/many`);
    expect((await g.list(m, ctx)).toString()).toBe(Array.from({ length: 8 }, (_, i) => `v1.${i}.0\n`).join(''));
    const info = JSON.parse((await g.info(m, ver('v1.3.0'), ctx)).toString()) as { Version: string; Time: string };
    expect(info.Version).toBe('v1.3.0');
    const { readFile } = await import('node:fs/promises');
    expect((await g.mod(m, ver('v1.3.0'), ctx)).toString()).toBe(await readFile(want?.GoMod as string, 'utf8'));
    expect(await zipH1(await g.zip(m, ver('v1.3.0'), ctx))).toBe(want?.Sum);
    const err = (await g.info(m, ver('v9.9.9'), ctx).catch((e: unknown) => e)) as ProxyError;
    expect(err.status).toBe(404);
  });
});
