// Credentials reach only their host: a git smart-HTTP server that demands Basic auth gets them;
// another host (also when the user's insteadOf sends the request there) never sees them; no git
// command line and no error message ever carries them.
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ProxyError } from '../../src/errors.js';
import { escapePath } from '../../src/module/index.js';
import { GitSource, observeSpawns, type GitSourceOptions } from '../../src/sources/git/index.js';
import { createRepo, gitEnv } from '../helpers/gitrepo.js';
import { run } from '../helpers/proc.js';
import { cleanupAll, makeTempDir } from '../helpers/tmp.js';
import { startGitHttpServer, type GitHttpServer } from './httpgit.js';
import { zipH1 } from './util.js';

const SECRET = 's3cr3t-Pa55word';
const TOKEN = 'tok-0123456789abcdef';
let root: string;
let secured: GitHttpServer;
let tokenServer: GitHttpServer;
let open: GitHttpServer;
let gitConfig: string;

async function bareRepo(dir: string, modPath: string): Promise<void> {
  const work = await createRepo(`${dir}.work`);
  await work.write({ 'go.mod': `module ${modPath}\n\ngo 1.21\n`, 'a.go': 'package p\n' });
  await work.commit('one');
  await work.tag('v1.0.0');
  const r = await run('git', ['clone', '-q', '--bare', work.dir, dir], { env: gitEnv() });
  if (r.code !== 0) throw new Error(r.stderr);
}

beforeAll(async () => {
  root = await makeTempDir('git-creds');
  await bareRepo(path.join(root, 'srv', 'private.git'), 'corp.example/private');
  await bareRepo(path.join(root, 'srv', 'other.git'), 'corp.example/other');
  await bareRepo(path.join(root, 'tok', 'private.git'), 'corp.example/tok');
  secured = await startGitHttpServer(path.join(root, 'srv'), { username: 'alice', password: SECRET });
  tokenServer = await startGitHttpServer(path.join(root, 'tok'), { username: 'x-access-token', password: TOKEN });
  open = await startGitHttpServer(path.join(root, 'srv'));
  gitConfig = path.join(root, 'gitconfig');
  // The user's own git config sends "redirected.example" paths to the open server: a host the
  // credential is not for.
  await writeFile(gitConfig, `[url "${open.url}/"]\n\tinsteadOf = ${secured.url}/redirected/\n`);
});
afterAll(cleanupAll);

function source(extra: Partial<GitSourceOptions> = {}): GitSource {
  return new GitSource({
    cacheDir: path.join(root, `cache-${Math.random().toString(36).slice(2)}`),
    maxCacheBytes: 0,
    timeoutMs: 30_000,
    refsTtlMs: 0,
    discoveryTtlMs: 0,
    shallow: true,
    concurrency: 4,
    insecure: '',
    repos: [
      { prefix: 'corp.example/private', url: `${secured.url}/private.git` },
      { prefix: 'corp.example/other', url: `${open.url}/other.git` },
      { prefix: 'corp.example/redirected', url: `${secured.url}/redirected/private.git` },
      { prefix: 'corp.example/tok', url: `${tokenServer.url}/private.git` },
    ],
    credentials: [
      { host: secured.host, username: 'alice', password: SECRET, allowHttp: true },
      { host: tokenServer.host, token: TOKEN, allowHttp: true },
    ],
    env: { ...gitEnv(), GIT_CONFIG_GLOBAL: gitConfig, HOME: root },
    ...extra,
  });
}

const mod = (p: string) => ({ path: p, escaped: escapePath(p) });
const v1 = { version: 'v1.0.0', escaped: 'v1.0.0' };
const ctx = { via: 'test' };

describe('git credentials', () => {
  test('reach their host only, never a command line or a message', async () => {
    const argv: string[] = [];
    const stop = observeSpawns((cmd, args) => argv.push([cmd, ...args].join(' ')));
    const logs: string[] = [];
    const src = source({ log: { warn: (o, m) => logs.push(JSON.stringify(o) + m), info: (o, m) => logs.push(JSON.stringify(o) + m) } });
    try {
      const info = JSON.parse((await src.info(mod('corp.example/private'), v1, ctx)).toString()) as { Version: string };
      expect(info.Version).toBe('v1.0.0');
      expect(await zipH1(await src.zip(mod('corp.example/private'), v1, ctx))).toMatch(/^h1:/);
      const basic = `Basic ${Buffer.from(`alice:${SECRET}`).toString('base64')}`;
      expect(secured.authorizations).toContain(basic);

      // The token is sent as a password, with the default user name, to its own host.
      const tok = JSON.parse((await src.info(mod('corp.example/tok'), v1, ctx)).toString()) as { Version: string };
      expect(tok.Version).toBe('v1.0.0');
      expect(tokenServer.authorizations).toContain(`Basic ${Buffer.from(`x-access-token:${TOKEN}`).toString('base64')}`);

      // Another host needing no credentials gets none.
      const other = JSON.parse((await src.info(mod('corp.example/other'), v1, ctx)).toString()) as { Version: string };
      expect(other.Version).toBe('v1.0.0');
      // The user's insteadOf moves a URL of the secured host to the open one: git asks the
      // helper about the host it really talks to, and the helper has nothing for it.
      const redirected = JSON.parse((await src.info(mod('corp.example/redirected'), v1, ctx)).toString()) as { Version: string };
      expect(redirected.Version).toBe('v1.0.0');
      expect(open.authorizations.length).toBeGreaterThan(0);
      expect(open.authorizations.every((a) => a === '')).toBe(true);
      expect(secured.authorizations.every((a) => a === '' || a === basic)).toBe(true);
    } finally {
      stop();
    }
    expect(argv.length).toBeGreaterThan(0);
    for (const a of [...argv, ...logs]) {
      expect(a).not.toContain(SECRET);
      expect(a).not.toContain(TOKEN);
    }
  });

  test('missing or refused credentials are a clear error, not "not found"', async () => {
    const none = source({ credentials: [] });
    const err1 = await none.info(mod('corp.example/private'), v1, ctx).catch((e: unknown) => e);
    expect(err1).toBeInstanceOf(ProxyError);
    expect((err1 as ProxyError).status).toBe(502);
    expect((err1 as ProxyError).message).toMatch(/credentials/);

    const wrong = source({ credentials: [{ host: secured.host, username: 'alice', password: 'wrong-password', allowHttp: true }] });
    const err2 = await wrong.info(mod('corp.example/private'), v1, ctx).catch((e: unknown) => e);
    expect((err2 as ProxyError).status).toBe(502);
    expect((err2 as ProxyError).message).not.toContain('wrong-password');

    // Plain http is refused for a credential unless allowHttp says otherwise.
    const httpsOnly = source({ credentials: [{ host: secured.host, username: 'alice', password: SECRET }] });
    const err3 = await httpsOnly.info(mod('corp.example/private'), v1, ctx).catch((e: unknown) => e);
    expect((err3 as ProxyError).status).toBe(502);
  });

  test('credentials asked for a repository whose page is 404 (as GitHub does for missing ones): "not found", as for cmd/go', async () => {
    const { default: http } = await import('node:http');
    const server = http.createServer((req, res) => {
      if ((req.url ?? '').includes('/info/refs')) {
        res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="x"' });
        res.end();
        return;
      }
      res.writeHead(404);
      res.end('no such repository');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    try {
      const src = source({ repos: [{ prefix: 'corp.example/ghost', url: `http://127.0.0.1:${port}/ghost` }] });
      const err = (await src.list(mod('corp.example/ghost'), ctx).catch((e: unknown) => e)) as ProxyError;
      expect(err.status).toBe(404);
      expect(err.message).toMatch(/does not exist, or it is private/);
    } finally {
      server.close();
    }
  });

  test('a repository that does not exist is "not found"', async () => {
    const src = source({ repos: [{ prefix: 'corp.example/missing', url: `${open.url}/missing.git` }] });
    const err = await src.list(mod('corp.example/missing'), ctx).catch((e: unknown) => e);
    expect((err as ProxyError).status).toBe(404);
  });
});
