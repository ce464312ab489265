// Repository discovery: cmd/go's static table, VCS qualifiers with scheme probing, ?go-get=1
// <meta> discovery served by a local HTTP server (prefix rules, several tags, `mod` entries,
// the subdirectory field), the configured mapping, and GOINSECURE's plain-http fallback.
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { defaultMetaFetcher, Discovery, type MetaFetcher, type RepoRoot } from '../../src/sources/git/discovery.js';
import { GitSourceError } from '../../src/sources/git/errors.js';
import { matchGoImport, parseMetaGoImports } from '../../src/sources/git/meta.js';
import { cleanupAll, makeTempDir, registerCleanup } from '../helpers/tmp.js';
import { issue, makeCa } from '../access/support/pki.js';

/** Pages by path (with the ?go-get=1 query stripped); status 200 unless given. */
const pages = new Map<string, { status?: number; body: string }>();
let base: string;
const requested: string[] = [];

beforeAll(async () => {
  const server = http.createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://x');
    requested.push(`${u.pathname}${u.search}`);
    const p = pages.get(u.pathname);
    res.writeHead(p?.status ?? (p ? 200 : 404), { 'content-type': 'text/html' });
    res.end(p?.body ?? '<html><body>nothing here</body></html>');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  registerCleanup(() => new Promise<void>((r) => server.close(() => r())));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(cleanupAll);

const meta = (...tags: string[]): string =>
  `<!DOCTYPE html><html><head>${tags.map((t) => `<meta name="go-import" content="${t}">`).join('\n')}</head><body>go get</body></html>`;

/** Sends https://<host>/<path>?go-get=1 to the local server as /<host>/<path>. */
const localFetcher: MetaFetcher = async (url) => {
  const local = `${base}/${url.host}${url.pathname === '/' ? '' : url.pathname}${url.search}`;
  const res = await fetch(local);
  return { status: res.status, url: url.href, body: await res.text() };
};

function discovery(opts: Partial<ConstructorParameters<typeof Discovery>[0]> = {}): Discovery {
  return new Discovery({ probe: async () => false, fetchMeta: localFetcher, ttlMs: 0, ...opts });
}

async function fails(p: Promise<unknown>): Promise<GitSourceError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(GitSourceError);
  return e as GitSourceError;
}

describe('static table', () => {
  const d = discovery();
  test.each([
    ['github.com/a/b', { vcs: 'git', repo: 'https://github.com/a/b', root: 'github.com/a/b' }],
    ['github.com/a/b/c/v2', { vcs: 'git', repo: 'https://github.com/a/b', root: 'github.com/a/b' }],
    ['bitbucket.org/a/b/c', { vcs: 'git', repo: 'https://bitbucket.org/a/b', root: 'bitbucket.org/a/b' }],
    ['hub.jazz.net/git/user1/proj/x', { vcs: 'git', repo: 'https://hub.jazz.net/git/user1/proj', root: 'hub.jazz.net/git/user1/proj' }],
    ['git.apache.org/thrift.git/lib/go', { vcs: 'git', repo: 'https://git.apache.org/thrift.git', root: 'git.apache.org/thrift.git' }],
    // The root pattern's [\w.-]+ takes the ".git" too, in RE2 as here.
    ['git.openstack.org/a/b.git/c', { vcs: 'git', repo: 'https://git.openstack.org/a/b.git', root: 'git.openstack.org/a/b.git' }],
    ['git.openstack.org/a/b/c', { vcs: 'git', repo: 'https://git.openstack.org/a/b', root: 'git.openstack.org/a/b' }],
    ['chiselapp.com/user/kyle/repository/fossilgg', { vcs: 'fossil', repo: 'https://chiselapp.com/user/kyle/repository/fossilgg' }],
  ])('%s', async (p, want) => {
    expect(await d.lookup(p)).toMatchObject({ ...want, subDir: '', custom: false });
  });

  test('errors in the go command words', async () => {
    expect((await fails(d.lookup('github.com/a/b.git'))).message).toBe('invalid version control suffix in github.com/ path');
    expect((await fails(d.lookup('github.com/a'))).message).toBe('invalid github.com import path "github.com/a"');
    expect((await fails(d.lookup('example.net/x'))).message).toBe('no modules on example.net');
    expect((await fails(d.lookup('not a path'))).kind).toBe('not-found');
  });
});

describe('VCS qualifier', () => {
  test('probes secure schemes in order; GOINSECURE adds the others', async () => {
    const tried: string[] = [];
    const probe = async (_vcs: string, scheme: string, repo: string) => {
      tried.push(`${scheme}://${repo}`);
      return scheme === 'ssh';
    };
    const d = discovery({ probe });
    expect(await d.lookup('example.org/repo.git/sub/pkg')).toMatchObject({ vcs: 'git', repo: 'ssh://example.org/repo', root: 'example.org/repo.git' });
    expect(tried).toEqual(['https://example.org/repo', 'git+ssh://example.org/repo', 'ssh://example.org/repo']);
    tried.length = 0;
    const insecure = discovery({ probe, insecure: 'example.org' });
    await insecure.lookup('example.org/repo.git');
    expect(tried).toEqual([
      'git://example.org/repo',
      'https://example.org/repo',
      'http://example.org/repo',
      'git+ssh://example.org/repo',
      'ssh://example.org/repo',
    ]);
    tried.length = 0;
    // GIT_ALLOW_PROTOCOL decides which schemes count as secure, as it does for cmd/go.
    const allow = discovery({ probe, gitAllowProtocol: 'file:https' });
    expect((await fails(allow.lookup('example.org/repo.git'))).message).toBe('no secure protocol found for repository');
    expect(tried).toEqual(['https://example.org/repo']);
  });

  test('other version control systems are recognized (and left to the go command)', async () => {
    expect(await discovery().lookup('example.org/repo.hg/x')).toMatchObject({ vcs: 'hg', repo: 'https://example.org/repo', root: 'example.org/repo.hg' });
  });
});

describe('configured mapping', () => {
  test('longest prefix wins, before anything else', async () => {
    const d = discovery({
      repos: [
        { prefix: 'github.com/corp', url: 'ssh://git@git.corp/all.git' },
        { prefix: 'github.com/corp/special', url: 'https://git.corp/special.git', subdir: 'go' },
      ],
    });
    expect(await d.lookup('github.com/corp/special/x/v2')).toEqual<RepoRoot>({
      vcs: 'git',
      repo: 'https://git.corp/special.git',
      root: 'github.com/corp/special',
      subDir: 'go',
      custom: true,
    });
    expect(await d.lookup('github.com/corp/other')).toMatchObject({ repo: 'ssh://git@git.corp/all.git', root: 'github.com/corp' });
    expect(await d.lookup('github.com/corporate/x')).toMatchObject({ repo: 'https://github.com/corporate/x', custom: false });
  });
});

describe('?go-get=1 meta discovery', () => {
  test('exact match, deeper path verified against the prefix page, 4th field', async () => {
    pages.set('/vanity.example/lib', { body: meta('vanity.example/lib git https://code.example/lib.git') });
    pages.set('/vanity.example/lib/sub/pkg', { body: meta('vanity.example/lib git https://code.example/lib.git') });
    pages.set('/vanity.example/mono', { body: meta('vanity.example/mono git https://code.example/mono.git go/src') });
    pages.set('/vanity.example/mono/v2', { body: meta('vanity.example/mono git https://code.example/mono.git go/src') });
    const d = discovery();
    expect(await d.lookup('vanity.example/lib')).toEqual<RepoRoot>({
      vcs: 'git',
      repo: 'https://code.example/lib.git',
      root: 'vanity.example/lib',
      subDir: '',
      custom: true,
    });
    requested.length = 0;
    expect(await d.lookup('vanity.example/lib/sub/pkg')).toMatchObject({ root: 'vanity.example/lib' });
    expect(requested).toEqual(['/vanity.example/lib/sub/pkg?go-get=1', '/vanity.example/lib?go-get=1']);
    expect(await d.lookup('vanity.example/mono/v2')).toMatchObject({ root: 'vanity.example/mono', subDir: 'go/src' });
  });

  test('a prefix page that disagrees is refused', async () => {
    pages.set('/liar.example/a/b', { body: meta('liar.example/a git https://evil.example/a.git') });
    pages.set('/liar.example/a', { body: meta('liar.example/a git https://good.example/a.git') });
    expect((await fails(discovery().lookup('liar.example/a/b'))).message).toMatch(/disagree about go-import for liar.example\/a/);
  });

  test('several tags: mod entries first, hiding git ones of the same prefix; two matches are an error', async () => {
    pages.set('/multi.example/m', { body: meta('multi.example/m git https://code.example/m.git', 'multi.example/m mod https://goproxy.example') });
    expect(await discovery().lookup('multi.example/m')).toMatchObject({ vcs: 'mod', repo: 'https://goproxy.example' });
    pages.set('/two.example/m', { body: meta('two.example/m git https://code.example/m.git', 'two.example hg https://code.example/hg') });
    expect((await fails(discovery().lookup('two.example/m'))).message).toMatch(/multiple meta tags match import path "two.example\/m"/);
  });

  test('no tags, no match, bad repo roots, non-200 pages with tags', async () => {
    pages.set('/empty.example/x', { body: '<html><head><title>x</title></head><body></body></html>' });
    expect((await fails(discovery().lookup('empty.example/x'))).message).toMatch(/no go-import meta tag found/);
    pages.set('/other.example/x', { body: meta('other.example/y git https://code.example/y.git') });
    expect((await fails(discovery().lookup('other.example/x'))).message).toMatch(/meta tag other.example\/y did not match import path other.example\/x/);
    pages.set('/file.example/x', { body: meta('file.example/x git file:///etc') });
    expect((await fails(discovery().lookup('file.example/x'))).message).toMatch(/file scheme disallowed/);
    pages.set('/noscheme.example/x', { body: meta('noscheme.example/x git code.example/x') });
    expect((await fails(discovery().lookup('noscheme.example/x'))).message).toMatch(/no scheme/);
    pages.set('/cvs.example/x', { body: meta('cvs.example/x cvs https://code.example/x') });
    expect((await fails(discovery().lookup('cvs.example/x'))).message).toMatch(/unknown vcs "cvs"/);
    pages.set('/status.example/x', { status: 404, body: meta('status.example/x git https://code.example/x.git') });
    expect(await discovery().lookup('status.example/x')).toMatchObject({ repo: 'https://code.example/x.git' });
    expect((await fails(discovery().lookup('missing.example/x'))).kind).toBe('not-found');
  });
});

describe('a failed repository-root lookup is "not found", as for cmd/go', () => {
  // cmd/go's modfetch.lookupDirect turns every failure of vcs.RepoRootForImportPath into
  // not-exist, and its package-to-module search needs that for the path prefixes that are not
  // modules. The failures here are real: the default fetcher against a name that never resolves
  // (.test is reserved), a closed port, a server with a certificate nobody trusts, and pages.
  const routes = new Map<string, string>();
  let real: MetaFetcher;
  /** The default fetcher, with routed hosts sent to local servers and pages.example to the page server. */
  const routed: MetaFetcher = (url, insecure) => {
    if (url.host.endsWith('pages.example')) return localFetcher(url, insecure);
    const to = routes.get(url.host);
    return real(to ? new URL(`${to}${url.pathname}${url.search}`) : url, insecure);
  };
  const proxyVars = ['HTTP_PROXY', 'HTTPS_PROXY', 'ALL_PROXY', 'NO_PROXY', 'http_proxy', 'https_proxy', 'all_proxy', 'no_proxy'];
  const saved = new Map<string, string | undefined>();

  beforeAll(async () => {
    // The default fetcher honours HTTPS_PROXY: a developer's own must not stand between it and these hosts.
    for (const k of proxyVars) {
      saved.set(k, process.env[k]);
      delete process.env[k];
    }
    real = defaultMetaFetcher(10_000);
    const closed = http.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const closedPort = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    routes.set('refused.example', `https://127.0.0.1:${closedPort}`);
    const pki = await makeTempDir('discovery-tls');
    const ca = await makeCa(pki, 'untrusted-ca');
    const leaf = await issue(ca, pki, { name: 'tls', subject: '/CN=tls.example', san: 'DNS:tls.example,IP:127.0.0.1', usage: 'serverAuth' });
    const tls = https.createServer({ key: leaf.key, cert: leaf.cert }, (_req, res) => res.end(meta('tls.example/m git https://code.example/m.git')));
    await new Promise<void>((r) => tls.listen(0, '127.0.0.1', r));
    registerCleanup(() => new Promise<void>((r) => tls.close(() => r())));
    routes.set('tls.example', `https://127.0.0.1:${(tls.address() as AddressInfo).port}`);
    pages.set('/plain.pages.example/m', { body: '<html><head><title>no tags</title></head><body></body></html>' });
    pages.set('/gone.pages.example/m', { status: 404, body: '<html><body>gone</body></html>' });
    pages.set('/private.pages.example/m', { status: 403, body: '<html><body>sign in</body></html>' });
    pages.set('/down.pages.example/m', { status: 503, body: '<html><body>maintenance</body></html>' });
  });
  afterAll(() => {
    for (const [k, v] of saved) if (v !== undefined) process.env[k] = v;
  });

  const network = [/map it with git\.repos/, /HTTPS_PROXY/];
  test.each([
    {
      why: 'DNS failure',
      path: 'nowhere.test/x/text/cases',
      cause: /: getaddrinfo (ENOTFOUND|EAI_AGAIN) nowhere\.test/,
      advice: [...network, /let gomodproxy reach nowhere\.test/],
      unreachable: true,
    },
    {
      why: 'connection refused',
      path: 'refused.example/x/pkg',
      cause: /: connect ECONNREFUSED 127\.0\.0\.1:\d+/,
      advice: [...network, /let gomodproxy reach refused\.example/],
      unreachable: true,
    },
    {
      why: 'TLS failure',
      path: 'tls.example/m',
      cause: /: unable to verify the first certificate/,
      advice: [/map it with git\.repos/, /trust the certificate of tls\.example \(NODE_EXTRA_CA_CERTS\)/, /git\.insecure/],
      unreachable: true,
    },
    {
      why: 'no meta tag',
      path: 'plain.pages.example/m',
      cause: /: fetching plain\.pages\.example\/m: no go-import meta tag found in https:\/\/plain\.pages\.example\/m\?go-get=1/,
      advice: [/map it with git\.repos/],
      unreachable: false,
    },
    {
      why: 'status 404',
      path: 'gone.pages.example/m',
      cause: /: reading https:\/\/gone\.pages\.example\/m\?go-get=1: 404/,
      advice: [/map it with git\.repos/],
      unreachable: false,
    },
    {
      why: 'status 403',
      path: 'private.pages.example/m',
      cause: /: reading https:\/\/private\.pages\.example\/m\?go-get=1: 403/,
      advice: [/private module, map it with git\.repos/, /git\.credentials/],
      unreachable: false,
    },
    {
      why: 'status 503',
      path: 'down.pages.example/m',
      cause: /: reading https:\/\/down\.pages\.example\/m\?go-get=1: 503/,
      advice: [/map it with git\.repos/],
      unreachable: true,
    },
  ])('$why: not-found, with the cause and what to do in one line', async ({ path, cause, advice, unreachable }) => {
    const e = await fails(discovery({ fetchMeta: routed }).lookup(path));
    expect(e.kind).toBe('not-found');
    expect(e.unreachable).toBe(unreachable);
    expect(e.message).not.toMatch(/[\r\n]/);
    expect(e.message).toMatch(/^cannot look up its repository: /);
    expect(e.message).toMatch(cause);
    for (const a of advice) expect(e.message).toMatch(a);
  });

  test('an unreachable host names the host; the URL asked for is the one shown, not where it was routed', async () => {
    const e = await fails(discovery({ fetchMeta: routed }).lookup('refused.example/x/pkg'));
    expect(e.message).toMatch(/^cannot look up its repository: https:\/\/refused\.example\/x\/pkg\?go-get=1: /);
  });

  test('a not-found of an unreachable host is remembered briefly, a page without tags for the whole TTL', async () => {
    let now = 1_000_000;
    let fetched = 0;
    const d = discovery({
      ttlMs: 600_000,
      unreachableTtlMs: 5_000,
      now: () => now,
      fetchMeta: (url, insecure) => {
        fetched++;
        return routed(url, insecure);
      },
    });
    const twice = async (p: string): Promise<number> => {
      const before = fetched;
      await fails(d.lookup(p));
      await fails(d.lookup(p));
      return fetched - before;
    };
    expect(await twice('nowhere.test/x')).toBe(1);
    expect(await twice('plain.pages.example/m')).toBe(1);
    now += 5_001;
    expect(await twice('nowhere.test/x')).toBe(1);
    expect(await twice('plain.pages.example/m')).toBe(0);
    now += 600_000;
    expect(await twice('plain.pages.example/m')).toBe(1);
  });

  test('answers are reused for the TTL; failures that are not "not found" are not remembered', async () => {
    let n = 0;
    const d = discovery({
      ttlMs: 60_000,
      fetchMeta: async (url) => {
        n++;
        return { status: 200, url: url.href, body: meta('ttl.example/x git https://code.example/x.git') };
      },
    });
    await d.lookup('ttl.example/x');
    await d.lookup('ttl.example/x');
    expect(n).toBe(1);
    const broken = discovery({
      ttlMs: 60_000,
      probe: async () => {
        n++;
        throw new GitSourceError('upstream', 'git is broken');
      },
    });
    await fails(broken.lookup('example.org/repo.git'));
    await fails(broken.lookup('example.org/repo.git'));
    expect(n).toBe(3);
  });
});

describe('default ?go-get=1 fetcher', () => {
  test('https only, unless insecure: then plain http after https fails', async () => {
    const f = defaultMetaFetcher(5_000);
    pages.set('/x', { body: meta('127.0.0.1/x git https://code.example/x.git') });
    const port = new URL(base).port;
    await expect(f(new URL(`https://127.0.0.1:${port}/x?go-get=1`), false)).rejects.toThrow();
    const r = await f(new URL(`https://127.0.0.1:${port}/x?go-get=1`), true);
    expect(r.url).toBe(`http://127.0.0.1:${port}/x?go-get=1`);
    expect(parseMetaGoImports(r.body)).toHaveLength(1);
  });
});

describe('meta tag parsing', () => {
  test('lenient HTML: case, quotes, entities, comments; stops at <body> and </head>', () => {
    const html = `<!-- <meta name="go-import" content="a.example/c git https://c"> -->
      <HTML><HEAD><META NAME="go-import" CONTENT='a.example/x git https://a.example/x?x=1&amp;y=2'>
      <meta name=go-import content="a.example/y hg https://a.example/y">
      <meta name="go-import" content="too few">
      <meta name="go-import" content="a.example/z git https://a.example/z sub/dir">
      <meta name="go-source" content="a.example/x _ _ _">
      </head><meta name="go-import" content="a.example/after git https://after">`;
    expect(parseMetaGoImports(html)).toEqual([
      { prefix: 'a.example/x', vcs: 'git', repoRoot: 'https://a.example/x?x=1&y=2', subDir: '' },
      { prefix: 'a.example/y', vcs: 'hg', repoRoot: 'https://a.example/y', subDir: '' },
      { prefix: 'a.example/z', vcs: 'git', repoRoot: 'https://a.example/z', subDir: 'sub/dir' },
    ]);
    expect(parseMetaGoImports('<body><meta name="go-import" content="a git b"></body>')).toEqual([]);
  });

  test('matching is by whole path elements', () => {
    const list = parseMetaGoImports(meta('a.example/x git https://x', 'a.example/xy git https://xy'));
    expect(matchGoImport(list, 'a.example/xy/z').repoRoot).toBe('https://xy');
    expect(matchGoImport(list, 'a.example/x').repoRoot).toBe('https://x');
  });
});
