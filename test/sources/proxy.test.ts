// ProxySource against a local node:http server on port 0: what it sends (the path, escaped as
// the go command escapes it, the base path, credentials, the via header), how each status maps
// to a ProxyError (and so to what our client sees, and whether the upstream is rested), the one
// line taken from a text/plain body and never from HTML, size limits, timeouts (504), redirects.
import http, { type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { UpstreamSpec } from '../../src/config/index.js';
import { ProxyError, type FailureKind } from '../../src/errors.js';
import { MAX_INFO_BYTES, MAX_ZIP_BYTES, ProxySource, type FetchContext, type ModuleRef, type VersionRef } from '../../src/sources/index.js';
import { wire } from '../../src/sources/proxy.js';

interface Seen {
  /** The request target exactly as it arrived. */
  url: string;
  headers: IncomingHttpHeaders;
}

interface Upstream {
  url: string;
  seen: Seen[];
}

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

const servers: { server: http.Server; sockets: Set<Socket> }[] = [];
const sources: ProxySource[] = [];

/** A server that records every request and answers with `handler`. */
async function upstream(handler: Handler, basePath = ''): Promise<Upstream> {
  const seen: Seen[] = [];
  const sockets = new Set<Socket>();
  const server = http.createServer((req, res) => {
    seen.push({ url: req.url ?? '', headers: req.headers });
    handler(req, res);
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  servers.push({ server, sockets });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}${basePath}`, seen };
}

function source(url: string, extra: Partial<UpstreamSpec> = {}): ProxySource {
  const s = new ProxySource({
    kind: 'proxy',
    url,
    priority: 0,
    balance: 'failover',
    fallthrough: 'not-found',
    // Generous unless a test is about a timeout: a busy machine must not turn an answer into a 504.
    timeouts: { connect: 30_000, firstByte: 30_000, idle: 30_000 },
    ...extra,
  });
  sources.push(s);
  return s;
}

afterEach(async () => {
  await Promise.all(sources.splice(0).map((s) => s.close()));
  for (const { server, sockets } of servers.splice(0)) {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  }
});

const M: ModuleRef = { path: 'example.com/m', escaped: 'example.com/m' };
const V: VersionRef = { version: 'v1.0.0', escaped: 'v1.0.0' };
const CTX: FetchContext = { via: 'gmp-test-instance' };

async function failure(p: Promise<unknown>): Promise<ProxyError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(ProxyError);
    return err as ProxyError;
  }
  throw new Error('expected a ProxyError');
}

/** Answers with a Content-Length (as proxies do for files); `body` absent: no body at all. */
const answer =
  (status: number, body?: string, headers: Record<string, string> = {}): Handler =>
  (_req, res) => {
    res.writeHead(status, body === undefined ? headers : { 'Content-Length': String(Buffer.byteLength(body)), ...headers });
    res.end(body);
  };
const text = (status: number, body: string): Handler => answer(status, body, { 'Content-Type': 'text/plain; charset=utf-8' });

describe('what it sends', () => {
  it('GETs <base>/<module>/@v/<version>.<ext> (and list, @latest) with its user agent and the via header', async () => {
    const up = await upstream(answer(200, 'ok'), '/some/base/');
    const s = source(up.url);
    expect(s.id).toBe(up.url);
    const got = [
      await s.info(M, V, CTX),
      await s.mod(M, V, CTX),
      await s.list(M, CTX),
      await s.latest(M, CTX),
      await s.fetchPath('sumdb/sum.golang.org/supported', 100, CTX),
    ];
    expect(got.map(String)).toEqual(['ok', 'ok', 'ok', 'ok', 'ok']);
    const zip = await s.zip(M, V, CTX);
    for await (const _ of zip.stream) void _;
    expect(up.seen.map((r) => r.url)).toEqual([
      '/some/base/example.com/m/@v/v1.0.0.info',
      '/some/base/example.com/m/@v/v1.0.0.mod',
      '/some/base/example.com/m/@v/list',
      '/some/base/example.com/m/@latest',
      '/some/base/sumdb/sum.golang.org/supported',
      '/some/base/example.com/m/@v/v1.0.0.zip',
    ]);
    for (const r of up.seen) {
      expect(r.headers['user-agent']).toMatch(/^gomodproxy\//);
      expect(r.headers['x-gomodproxy-via']).toBe('gmp-test-instance');
      expect(r.headers.authorization).toBeUndefined();
    }
  });

  it('sends the configured credentials: Basic user:password, or a Bearer token', async () => {
    const up = await upstream(answer(200, 'ok'));
    await source(up.url, { auth: { kind: 'basic', username: 'ci', password: 'p:ss w0rd' } }).list(M, CTX);
    await source(up.url, { auth: { kind: 'bearer', token: 'tok-123' } }).list(M, CTX);
    expect(up.seen.map((r) => r.headers.authorization)).toEqual([`Basic ${Buffer.from('ci:p:ss w0rd').toString('base64')}`, 'Bearer tok-123']);
  });

  // [module path escaped, version escaped, the path the go command would request]
  const paths: [string, string, string][] = [
    ['github.com/!azure/go', 'v1.0.0', 'github.com/%21azure/go/@v/v1.0.0.info'],
    ['example.com/m', 'v1.0.0+incompatible', 'example.com/m/@v/v1.0.0+incompatible.info'],
    ['example.com/m', 'feature branch', 'example.com/m/@v/feature%20branch.info'],
    ['example.com/m', 'a#b%c?d&e', 'example.com/m/@v/a%23b%25c%3Fd&e.info'],
    ['example.com/caf\u00e9', 'v1.0.0', 'example.com/caf%C3%A9/@v/v1.0.0.info'],
    ['example.com/~x$&+:=@y', 'v1.0.0', 'example.com/~x$&+:=@y/@v/v1.0.0.info'],
    ['example.com/a;b,c', 'v1.0.0', 'example.com/a%3Bb%2Cc/@v/v1.0.0.info'],
  ];
  it.each(paths)('escapes %s @ %s as the go command does (url.PathEscape per segment)', async (mod, ver, want) => {
    const up = await upstream(answer(200, '{}'));
    await source(up.url).info({ path: mod, escaped: mod }, { version: ver, escaped: ver }, CTX);
    expect(up.seen.map((r) => r.url)).toEqual([`/${want}`]);
    // and what the upstream decodes is the case-encoded path it was meant to be
    expect(decodeURIComponent(up.seen[0]!.url)).toBe(`/${mod}/@v/${ver}.info`);
    expect(wire(`${mod}/@v/${ver}`)).toBe(want.replace(/\.info$/, ''));
  });
});

describe('status mapping', () => {
  const what = 'example.com/m@v1.0.0.info';
  // [title, handler, kind, our status, relayed status, outage (rests the upstream), message (the upstream's id is <id>)]
  const cases: [string, Handler, FailureKind, number, number, boolean, string][] = [
    [
      '404 with a text/plain reason: that reason, verbatim',
      text(404, 'not found: example.com/m@v1.0.0: invalid version: unknown revision v1.0.0\n'),
      'not-found',
      404,
      404,
      false,
      'not found: example.com/m@v1.0.0: invalid version: unknown revision v1.0.0',
    ],
    ['404 with no body', answer(404), 'not-found', 404, 404, false, `not found: ${what} (<id> answered 404)`],
    [
      '404 with an HTML page: not its text',
      answer(404, '<html><body>Not Found</body></html>', { 'Content-Type': 'text/html' }),
      'not-found',
      404,
      404,
      false,
      `not found: ${what} (<id> answered 404)`,
    ],
    ['410', text(410, 'gone: retracted upstream\n'), 'gone', 410, 410, false, 'gone: retracted upstream'],
    [
      '401',
      text(401, 'bad token'),
      'upstream',
      502,
      401,
      false,
      `upstream <id> answered 401 for ${what} (bad token); the upstream wants credentials and gomodproxy sent none: set upstreams[].token (or upstreams[].username/password) for this upstream`,
    ],
    [
      '403',
      text(403, 'forbidden'),
      'upstream',
      502,
      403,
      false,
      `upstream <id> answered 403 for ${what} (forbidden); the upstream refuses to serve it to gomodproxy; its operator decides what it serves, so ask them, or get the module from another source`,
    ],
    [
      '429',
      text(429, 'slow down'),
      'upstream',
      502,
      429,
      true,
      `upstream <id> answered 429 for ${what} (slow down); the upstream is rate-limiting gomodproxy; retry later`,
    ],
    [
      '500: the first non-blank line of the body only',
      text(500, '\n\ndatabase down\n\tat main.go:12\n'),
      'upstream',
      502,
      500,
      true,
      `upstream <id> answered 500 for ${what} (database down); retry later, or ask the gomodproxy operator to check this upstream`,
    ],
    [
      '502 with an HTML error page: no line from it',
      answer(502, '<!DOCTYPE html><title>Bad Gateway</title>', { 'Content-Type': 'text/html; charset=utf-8' }),
      'upstream',
      502,
      502,
      true,
      `upstream <id> answered 502 for ${what}; retry later, or ask the gomodproxy operator to check this upstream`,
    ],
    [
      '503 without a Content-Type: the body is read as text',
      answer(503, 'maintenance'),
      'upstream',
      502,
      503,
      true,
      `upstream <id> answered 503 for ${what} (maintenance); retry later, or ask the gomodproxy operator to check this upstream`,
    ],
    [
      '508: a loop, with its reason',
      text(508, 'request loop detected'),
      'loop',
      508,
      508,
      true,
      'upstream <id> reports a request loop: request loop detected; fix the upstream settings',
    ],
    [
      '508 without a reason',
      answer(508),
      'loop',
      508,
      508,
      true,
      'upstream <id> reports a request loop: it is configured to use this gomodproxy as its upstream; fix the upstream settings',
    ],
    [
      '204: any other status is an error too',
      answer(204),
      'upstream',
      502,
      204,
      false,
      `upstream <id> answered 204 for ${what}; retry later, or ask the gomodproxy operator to check this upstream`,
    ],
  ];
  it.each(cases)('%s', async (_title, handler, kind, status, upstreamStatus, outage, message) => {
    const up = await upstream(handler);
    const err = await failure(source(up.url).info(M, V, CTX));
    expect({ kind: err.kind, status: err.status, upstreamStatus: err.upstreamStatus, outage: err.isOutage, message: err.message }).toEqual({
      kind,
      status,
      upstreamStatus,
      outage,
      message: message.replaceAll('<id>', up.url),
    });
    expect(err.isNotFound).toBe(kind === 'not-found' || kind === 'gone');
  });

  it('the line is one line and bounded, however long the body and its first line', async () => {
    const long = `${'x'.repeat(3000)}\n${'more\n'.repeat(5000)}`;
    const up = await upstream(text(500, long));
    const err = await failure(source(up.url).info(M, V, CTX));
    expect(err.message).not.toMatch(/[\r\n]/);
    expect(err.message).toContain(`(${'x'.repeat(397)}...);`);
    expect(err.message.length).toBeLessThan(600);
  });
});

describe('sizes', () => {
  it('an answer at the limit is taken; one byte more is refused, by Content-Length or by counting, as an answer about that file, not an outage', async () => {
    const exact = Buffer.alloc(MAX_INFO_BYTES, 0x61);
    const over = Buffer.alloc(MAX_INFO_BYTES + 1, 0x61);
    const up = await upstream((req, res) => {
      if (req.url?.includes('exact')) return answer(200, exact.toString())(req, res);
      if (req.url?.includes('length')) return answer(200, over.toString())(req, res);
      // No Content-Length: chunked, so only counting can tell.
      res.writeHead(200);
      res.write(over.subarray(0, 1000));
      res.end(over.subarray(1000));
    });
    const s = source(up.url);
    const v = (version: string): VersionRef => ({ version, escaped: version });
    expect((await s.info(M, v('exact'), CTX)).length).toBe(MAX_INFO_BYTES);
    const byLength = await failure(s.info(M, v('length'), CTX));
    expect(byLength.message).toBe(
      `upstream ${up.url} answered ${MAX_INFO_BYTES + 1} bytes for example.com/m@length.info, over the ${MAX_INFO_BYTES}-byte limit for this kind of file`,
    );
    const byCount = await failure(s.info(M, v('chunked'), CTX));
    expect(byCount.message).toBe(
      `upstream ${up.url} sent more than ${MAX_INFO_BYTES} bytes for example.com/m@chunked.info, over the limit for this kind of file`,
    );
    for (const err of [byLength, byCount]) {
      expect([err.kind, err.status, err.upstreamStatus, err.isOutage]).toEqual(['upstream', 502, 200, false]);
    }
  });

  it('a zip is streamed with its size; one declared over 500 MiB is refused before a byte of it is read', async () => {
    const body = Buffer.from('PK-not-really-a-zip');
    const up = await upstream((req, res) => {
      if (req.url?.includes('huge')) {
        res.writeHead(200, { 'Content-Length': String(MAX_ZIP_BYTES + 1) });
        res.flushHeaders(); // and nothing more: the body is never sent
        return;
      }
      answer(200, body.toString())(req, res);
    });
    const s = source(up.url);
    const z = await s.zip(M, V, CTX);
    expect(z.size).toBe(body.length);
    const chunks: Buffer[] = [];
    for await (const c of z.stream) chunks.push(c as Buffer);
    expect(Buffer.concat(chunks).equals(body)).toBe(true);
    const err = await failure(s.zip(M, { version: 'v9.0.0-huge', escaped: 'v9.0.0-huge' }, CTX));
    expect(err.message).toBe(
      `upstream ${up.url} offers a ${MAX_ZIP_BYTES + 1}-byte zip for example.com/m@v9.0.0-huge, over the go command's 500 MiB limit; the module cannot be used`,
    );
    expect([err.kind, err.upstreamStatus, err.isOutage]).toEqual(['upstream', 200, false]);
  });
});

describe('transport failures', () => {
  it('no answer before the first-byte timeout: 504 that says the upstream did not answer', async () => {
    const up = await upstream(() => undefined); // accepts, never answers
    const err = await failure(source(up.url, { timeouts: { connect: 30_000, firstByte: 200, idle: 30_000 } }).info(M, V, CTX));
    expect([err.kind, err.status, err.isOutage]).toEqual(['timeout', 504, true]);
    expect(err.message).toBe(
      `upstream ${up.url} did not start answering within timeouts.firstByte (200ms) for example.com/m@v1.0.0.info; retry later, or raise timeouts.firstByte (upstreams[].timeouts.firstByte for one upstream) if it is just slow`,
    );
  });

  it('a body that goes silent past the idle timeout: 504 that says it stalled (a zip stream fails with the timeout for the caller to report)', async () => {
    const up = await upstream((_req, res) => {
      res.writeHead(200, { 'Content-Length': '100' });
      res.write('{"Vers'); // and then nothing
    });
    const s = source(up.url, { timeouts: { connect: 30_000, firstByte: 30_000, idle: 200 } });
    const err = await failure(s.info(M, V, CTX));
    expect([err.kind, err.status, err.isOutage]).toEqual(['timeout', 504, true]);
    expect(err.message).toBe(
      `upstream ${up.url} stalled: silent for longer than timeouts.idle (200ms) while sending example.com/m@v1.0.0.info; retry later, or raise timeouts.idle (upstreams[].timeouts.idle for one upstream)`,
    );
    const z = await s.zip(M, V, CTX);
    expect(z.size).toBe(100);
    const streamErr = await (async () => {
      try {
        for await (const _ of z.stream) void _;
      } catch (e) {
        return e as { code?: string };
      }
      return undefined;
    })();
    expect(streamErr?.code).toBe('UND_ERR_BODY_TIMEOUT');
  });

  it('a refused connection: 502 naming the upstream and the cause, an outage', async () => {
    const up = await upstream(answer(200));
    const url = up.url;
    for (const { server, sockets } of servers.splice(0)) {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    }
    const err = await failure(source(url).list(M, CTX));
    expect([err.kind, err.status, err.isOutage]).toEqual(['upstream', 502, true]);
    expect(err.message).toBe(
      `cannot connect to ${url.replace('http://', '')} for upstream ${url} (ECONNREFUSED) while fetching the version list of example.com/m; check the upstream URL setting (upstream, or upstreams[].url), and HTTPS_PROXY/NO_PROXY if gomodproxy reaches the internet through an egress proxy`,
    );
  });

  it('a cancelled fetch (the client went away) is reported as cancelled, not as the upstream failing', async () => {
    const up = await upstream(() => undefined);
    const ac = new AbortController();
    const p = source(up.url).info(M, V, { ...CTX, signal: ac.signal });
    await new Promise<void>((r) => {
      const wait = (): void => void (up.seen.length > 0 ? r() : setImmediate(wait));
      wait();
    });
    ac.abort();
    const err = await failure(p);
    expect([err.kind, err.status]).toEqual(['unavailable', 503]);
    expect(err.message).toBe(`fetch of example.com/m@v1.0.0.info from ${up.url} was cancelled`);
  });
});

describe('redirects', () => {
  it('are followed (as proxies that keep zips in object storage send them), with credentials only to the same origin', async () => {
    const storage = await upstream(answer(200, 'from storage'));
    const up = await upstream((req, res) => {
      if (req.url === '/example.com/m/@v/v1.0.0.info') return answer(302, '', { Location: '/moved/v1.0.0.info' })(req, res);
      if (req.url === '/moved/v1.0.0.info') return answer(307, '', { Location: `${storage.url}/blob/1` })(req, res);
      answer(404)(req, res);
    });
    const s = source(up.url, { auth: { kind: 'bearer', token: 'tok-redirect' } });
    expect((await s.info(M, V, CTX)).toString()).toBe('from storage');
    expect(up.seen.map((r) => [r.url, r.headers.authorization])).toEqual([
      ['/example.com/m/@v/v1.0.0.info', 'Bearer tok-redirect'],
      ['/moved/v1.0.0.info', 'Bearer tok-redirect'],
    ]);
    expect(storage.seen.map((r) => [r.url, r.headers.authorization])).toEqual([['/blob/1', undefined]]);
  });

  it('ten are followed; the answer after ten more is reported as that status, not an outage', async () => {
    let n = 0;
    const up = await upstream((req, res) => {
      n++;
      if (req.url?.startsWith('/hop/10')) return answer(200, 'ten hops')(req, res);
      if (req.url?.startsWith('/loop')) return answer(302, '', { Location: `/loop/${n}` })(req, res);
      const hop = req.url?.startsWith('/hop/') ? Number(req.url.split('/')[2]) : 0;
      answer(302, '', { Location: `/hop/${hop + 1}` })(req, res);
    });
    const s = source(up.url);
    expect((await s.list(M, CTX)).toString()).toBe('ten hops');
    expect(n).toBe(11);
    n = 0;
    const err = await failure(s.fetchPath('loop', 100, CTX));
    expect(n).toBe(11);
    expect([err.kind, err.upstreamStatus, err.isOutage]).toEqual(['upstream', 302, false]);
    expect(err.message).toBe(`upstream ${up.url} answered 302 for loop; retry later, or ask the gomodproxy operator to check this upstream`);
  });
});

describe('wire', () => {
  it.each([
    ['example.com/m', 'example.com/m'],
    ['github.com/!azure/go', 'github.com/%21azure/go'],
    ['x.y/a b/c', 'x.y/a%20b/c'],
    ['x.y/\u4e16', 'x.y/%E4%B8%96'],
    ['x.y/a\u0000b', 'x.y/a%00b'],
    ['x.y/-_.~$&+:=@', 'x.y/-_.~$&+:=@'],
    ['', ''],
  ])('%j -> %j', (escaped, want) => {
    expect(wire(escaped)).toBe(want);
  });
});
