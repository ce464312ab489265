// What a go user reads when an upstream fails: one line that names the upstream, the module or
// file, and the setting or party that can fix it, and says "retry" only where retrying can help.
// Each case is a real failure: a local server on port 0 answering with that status, a closed
// port, a name that cannot resolve, a server that stays silent, an untrusted certificate.
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import http from 'node:http';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { UpstreamSpec } from '../../src/config/index.js';
import { ProxyError } from '../../src/errors.js';
import { SourceChain } from '../../src/sources/chain.js';
import { ProxySource } from '../../src/sources/proxy.js';
import { issue, makeCa } from '../access/support/pki.js';
import { cleanupAll, makeTempDir } from '../helpers/tmp.js';

const MOD = { path: 'github.com/Corp/lib', escaped: 'github.com/!corp/lib' };
const V = { version: 'v1.2.3', escaped: 'v1.2.3' };
const ctx = { via: 'gmp-test' };

let server: http.Server;
let base: string;
const sockets = new Set<net.Socket>();

beforeAll(async () => {
  // The first path element says how to answer: /<status>/... with a text/plain reason, /silent/... never.
  server = http.createServer((req, res) => {
    const first = (req.url ?? '/').split('/')[1] ?? '';
    if (first === 'silent') return;
    if (first === 'stall') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('v1.0.0\n');
      return;
    }
    const status = Number(first);
    res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' });
    res.end(`reason from the upstream for ${status}\nsecond line never shown\n`);
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
});

afterAll(async () => {
  for (const s of sockets) s.destroy();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await cleanupAll();
});

function spec(url: string, extra: Partial<UpstreamSpec> = {}): UpstreamSpec {
  return {
    kind: 'proxy',
    url,
    priority: 0,
    balance: 'failover',
    fallthrough: 'not-found',
    timeouts: { connect: 5_000, firstByte: 10_000, idle: 10_000 },
    ...extra,
  };
}

/** The error a fetch of MOD@V's .zip (or the list) fails with. */
async function failure(source: ProxySource, what: 'zip' | 'info' | 'list' = 'zip'): Promise<ProxyError> {
  try {
    if (what === 'zip') await source.zip(MOD, V, ctx);
    else if (what === 'info') await source.info(MOD, V, ctx);
    else await source.list(MOD, ctx);
  } catch (err) {
    expect(err).toBeInstanceOf(ProxyError);
    return err as ProxyError;
  } finally {
    await source.close();
  }
  throw new Error('the fetch did not fail');
}

function expectOneLine(err: ProxyError): void {
  expect(err.message).not.toMatch(/[\r\n]/);
  expect(err.message).not.toContain('second line');
}

describe('an upstream that answers with an error status', () => {
  test('400: the upstream rejects the request; retrying will not help', async () => {
    const err = await failure(new ProxySource(spec(`${base}/400`)));
    expectOneLine(err);
    expect(err.message).toContain(`upstream ${base}/400 answered 400 for github.com/Corp/lib@v1.2.3.zip (reason from the upstream for 400)`);
    expect(err.message).toContain('rejects this request as invalid, so retrying will not help');
    expect(err.message).not.toMatch(/retry later/);
    expect(err.status).toBe(502);
    // An answer about this request, not an outage: the upstream is not rested for it.
    expect(err.isOutage).toBe(false);
  });

  test('another 4xx: retrying will not help either', async () => {
    const err = await failure(new ProxySource(spec(`${base}/422`)), 'info');
    expectOneLine(err);
    expect(err.message).toContain('answered 422 for github.com/Corp/lib@v1.2.3.info');
    expect(err.message).toContain('retrying will not help');
    expect(err.message).not.toMatch(/retry later/);
  });

  test("403: names the module and file, and that the upstream's operator decides", async () => {
    const err = await failure(new ProxySource(spec(`${base}/403`)));
    expectOneLine(err);
    expect(err.message).toContain('answered 403 for github.com/Corp/lib@v1.2.3.zip');
    expect(err.message).toContain('refuses to serve it to gomodproxy; its operator decides what it serves');
    expect(err.message).not.toMatch(/retry/);
  });

  test('401 without credentials: name the settings that give some', async () => {
    const err = await failure(new ProxySource(spec(`${base}/401`)), 'list');
    expectOneLine(err);
    expect(err.message).toContain('answered 401 for the version list of github.com/Corp/lib');
    expect(err.message).toContain('gomodproxy sent none: set upstreams[].token (or upstreams[].username/password)');
  });

  test("401 with credentials: the upstream refused gomodproxy's credentials", async () => {
    const err = await failure(new ProxySource(spec(`${base}/401`, { auth: { kind: 'bearer', token: 'secret-token' } })));
    expectOneLine(err);
    expect(err.message).toContain("the upstream refused gomodproxy's credentials: fix upstreams[].token (or upstreams[].username/password)");
    expect(err.message).not.toContain('secret-token');
  });

  test('429: rate limited, retry later', async () => {
    const err = await failure(new ProxySource(spec(`${base}/429`)));
    expect(err.message).toContain('rate-limiting gomodproxy; retry later');
    expect(err.isOutage).toBe(true);
  });

  test('5xx: the upstream is in trouble, retry later', async () => {
    const err = await failure(new ProxySource(spec(`${base}/503`)));
    expectOneLine(err);
    expect(err.message).toContain('answered 503 for github.com/Corp/lib@v1.2.3.zip (reason from the upstream for 503); retry later');
    expect(err.isOutage).toBe(true);
  });
});

describe('an upstream that cannot be reached', () => {
  test('a name that does not resolve: the host, the upstream URL setting and HTTPS_PROXY/NO_PROXY', async () => {
    const err = await failure(new ProxySource(spec('https://goproxy.nowhere.invalid:8443')));
    expectOneLine(err);
    expect(err.message).toMatch(
      /^cannot resolve the host goproxy\.nowhere\.invalid:8443 of upstream https:\/\/goproxy\.nowhere\.invalid:8443 \((ENOTFOUND|EAI_AGAIN)\) while fetching github\.com\/Corp\/lib@v1\.2\.3\.zip/,
    );
    expect(err.message).toContain('check the upstream URL setting (upstream, or upstreams[].url), and HTTPS_PROXY/NO_PROXY');
  });

  test('a closed port: the host, the upstream URL setting and HTTPS_PROXY/NO_PROXY', async () => {
    const probe = net.createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as net.AddressInfo).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const err = await failure(new ProxySource(spec(`http://127.0.0.1:${port}`)));
    expectOneLine(err);
    expect(err.message).toContain(`cannot connect to 127.0.0.1:${port} for upstream http://127.0.0.1:${port} (ECONNREFUSED)`);
    expect(err.message).toContain('check the upstream URL setting (upstream, or upstreams[].url), and HTTPS_PROXY/NO_PROXY');
  });

  test('no connection in time: names timeouts.connect', async () => {
    // A TCP server that never speaks TLS: the connection is not made within the connect timeout.
    const mute = net.createServer((s) => {
      sockets.add(s);
      s.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => mute.listen(0, '127.0.0.1', resolve));
    const port = (mute.address() as net.AddressInfo).port;
    try {
      const err = await failure(new ProxySource(spec(`https://127.0.0.1:${port}`, { timeouts: { connect: 300, firstByte: 10_000, idle: 10_000 } })));
      expectOneLine(err);
      expect(err.kind).toBe('timeout');
      expect(err.message).toContain('within timeouts.connect (300ms)');
      expect(err.message).toContain('raise timeouts.connect (upstreams[].timeouts.connect for one upstream)');
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => mute.close(() => resolve()));
    }
  });

  test('no answer in time: names timeouts.firstByte', async () => {
    const err = await failure(new ProxySource(spec(`${base}/silent`, { timeouts: { connect: 5_000, firstByte: 300, idle: 10_000 } })));
    expectOneLine(err);
    expect(err.kind).toBe('timeout');
    expect(err.message).toContain('did not start answering within timeouts.firstByte (300ms) for github.com/Corp/lib@v1.2.3.zip');
  });

  test('a body that stops: names timeouts.idle', async () => {
    const err = await failure(new ProxySource(spec(`${base}/stall`, { timeouts: { connect: 5_000, firstByte: 10_000, idle: 300 } })), 'list');
    expectOneLine(err);
    expect(err.kind).toBe('timeout');
    expect(err.message).toContain('stalled: silent for longer than timeouts.idle (300ms) while sending the version list of github.com/Corp/lib');
  });

  test('an untrusted certificate: the host and NODE_EXTRA_CA_CERTS', async () => {
    const dir = await makeTempDir('proxy-errors-pki');
    const ca = await makeCa(dir, 'private-ca');
    const leaf = await issue(ca, dir, { name: 'upstream', subject: '/CN=127.0.0.1', san: 'IP:127.0.0.1', usage: 'serverAuth' });
    const tls: HttpsServer = createHttpsServer({ key: leaf.key, cert: leaf.cert }, (_req, res) => res.end('v1.0.0\n'));
    await new Promise<void>((resolve) => tls.listen(0, '127.0.0.1', resolve));
    const port = (tls.address() as net.AddressInfo).port;
    try {
      const err = await failure(new ProxySource(spec(`https://127.0.0.1:${port}`)));
      expectOneLine(err);
      expect(err.message).toContain(`the TLS certificate of 127.0.0.1:${port} (upstream https://127.0.0.1:${port}) is not trusted`);
      expect(err.message).toContain('NODE_EXTRA_CA_CERTS=<ca.pem>');
    } finally {
      tls.closeAllConnections();
      await new Promise<void>((resolve) => tls.close(() => resolve()));
    }
  });
});

describe('a chain whose upstreams are all resting', () => {
  test('says when they are tried again, and why they failed', async () => {
    const chain = new SourceChain([spec(`${base}/503`)], (s) => new ProxySource(s), { failures: 1, cooldownMs: 60_000 });
    try {
      const attempt = (): Promise<ProxyError> =>
        chain
          .run('zip', (s) => s.zip(MOD, V, ctx))
          .then(
            () => {
              throw new Error('the fetch did not fail');
            },
            (err: unknown) => err as ProxyError,
          );
      const first = await attempt();
      expect(first.message).toContain('answered 503');
      const second = await attempt();
      expectOneLine(second);
      expect(second.message).toMatch(
        new RegExp(
          `^every upstream of priority 0 \\(${base.replace(/[.]/g, '\\.')}/503\\) failed health\\.failures times in a row and is in its cool-down \\(health\\.cooldown\\) \\(last failure: upstream .* answered 503 .*\\); it is tried again in \\d+s: retry then`,
        ),
      );
    } finally {
      await chain.close();
    }
  });
});
