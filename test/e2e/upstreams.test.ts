// Upstream handling: the GOPROXY `,` and `|` rules, structured upstreams (failover,
// round-robin, health with cool-down), credentials, timeouts, corporate egress proxies and
// loop detection. Every upstream is a real HTTP server; every proxy a real process.
import http from 'node:http';
import net, { type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createGoEnv } from '../helpers/goenv.js';
import { startProxy, type ProxyProcess } from '../helpers/gomodproxy.js';
import { get } from '../helpers/http.js';
import { cleanupAll, registerCleanup } from '../helpers/tmp.js';
import { startTestUpstream, type TestUpstream } from '../helpers/upstream.js';
import { buildModuleWorld, type World, type WorldSpec } from '../helpers/world.js';
import { expectOneLineError, freePort, freePorts } from './util.js';

const M = 'github.com/gmp-test/up';
const VERSIONS = ['v1.0.0', 'v1.1.0', 'v1.2.0', 'v1.3.0'];
const spec: WorldSpec = { modules: [{ path: M, versions: VERSIONS.map((version) => ({ version })) }] };

let world: World;

beforeAll(async () => {
  world = await buildModuleWorld(spec);
});
afterAll(cleanupAll);

/** A fresh upstream serving the world (each test counts its own requests). */
function upstream(): Promise<TestUpstream> {
  return startTestUpstream({ root: world.downloadDir });
}

/** An upstream that has been shut down: connections are refused. */
async function deadUpstream(): Promise<TestUpstream> {
  const u = await upstream();
  await u.kill();
  return u;
}

function structured(list: Record<string, unknown>[], extra: Record<string, string> = {}): Record<string, string> {
  return { GOMODPROXY_UPSTREAMS: JSON.stringify(list), ...extra };
}

const sumOf = (v: string): [string, string, string] => {
  const e = world.get(`${M}@${v}`);
  return [e.Version, e.Sum, e.GoModSum];
};

async function goDownload(proxy: ProxyProcess, versions: string[]) {
  const env = await createGoEnv({ goproxy: proxy.url });
  return env.modDownloadJson(
    versions.map((v) => `${M}@${v}`),
    undefined,
    { allowErrors: true },
  );
}

describe('GOPROXY list syntax', () => {
  test('`,`: 404 and 410 fall through to the next entry', async () => {
    const [u404, u410, good] = await Promise.all([upstream(), upstream(), upstream()]);
    u404.on(/./, { status: 404, body: 'not found: nothing here' });
    u410.on(/./, { status: 410, body: 'gone: nothing here' });
    const proxy = await startProxy({ upstream: `${u404.url},${u410.url},${good.url}` });
    const rs = await goDownload(proxy, ['v1.0.0', 'latest']);
    expect(rs.map((r) => [r.Version, r.Sum, r.GoModSum, r.Error])).toEqual([
      [...sumOf('v1.0.0'), undefined],
      [...sumOf('v1.3.0'), undefined],
    ]);
    expect(u404.count()).toBeGreaterThan(0);
    expect(u410.count()).toBe(u404.count());
    // every outbound request carries the loop-detection header
    for (const r of [...u404.requests, ...u410.requests, ...good.requests]) expect(r.headers['x-gomodproxy-via'], r.path).toBeTruthy();
    expect(good.count(/\.zip$/)).toBe(2);
  });

  test('`,`: a 500 or an unreachable upstream stops the list; the go command prints a clear error', async () => {
    const [u500, dead, good] = await Promise.all([upstream(), deadUpstream(), upstream()]);
    u500.on(/./, { status: 500, body: 'internal trouble in the test upstream' });
    const proxy = await startProxy({ upstream: `${u500.url},${good.url}` });
    const [r] = await goDownload(proxy, ['v1.0.0']);
    expect(r!.Error).toMatch(/502 Bad Gateway/);
    expect(r!.Error).toContain(`server response: upstream ${u500.url} answered 500`);
    expect(r!.Error).toContain('internal trouble in the test upstream');
    const line = expectOneLineError(await get(`${proxy.url}/${M}/@v/list`), 502);
    expect(line).toContain(u500.url);
    expect(good.count()).toBe(0);

    const viaDead = await startProxy({ upstream: `${dead.url},${good.url}` });
    const [r2] = await goDownload(viaDead, ['v1.0.0']);
    expect(r2!.Error).toMatch(/50[24] (Bad Gateway|Gateway Timeout)/);
    expect(r2!.Error).toContain(dead.url);
    expect(good.count()).toBe(0);
  });

  test('`|`: a 500 or an unreachable upstream falls through', async () => {
    const [u500, dead, good] = await Promise.all([upstream(), deadUpstream(), upstream()]);
    u500.on(/./, { status: 500 });
    const proxy = await startProxy({ upstream: `${u500.url}|${dead.url}|${good.url}` });
    const rs = await goDownload(proxy, ['v1.1.0', 'latest']);
    expect(rs.map((r) => [r.Version, r.Sum, r.GoModSum, r.Error])).toEqual([
      [...sumOf('v1.1.0'), undefined],
      [...sumOf('v1.3.0'), undefined],
    ]);
    expect(u500.count()).toBeGreaterThan(0);
    expect(good.count(/\.zip$/)).toBe(2);
  });
});

describe('structured upstreams', () => {
  test('failover: a dead first replica and a failing second one, the third answers', async () => {
    const [dead, u500, good] = await Promise.all([deadUpstream(), upstream(), upstream()]);
    u500.on(/./, { status: 500 });
    const proxy = await startProxy({
      env: structured([{ url: dead.url }, { url: u500.url }, { url: good.url }], { GOMODPROXY_BALANCE: 'failover' }),
    });
    const rs = await goDownload(proxy, ['v1.2.0']);
    expect(rs.map((r) => [r.Version, r.Sum, r.GoModSum, r.Error])).toEqual([[...sumOf('v1.2.0'), undefined]]);
    expect(u500.count()).toBeGreaterThan(0);
    expect(good.count(/\.(info|mod|zip)$/)).toBe(3);
  });

  test('round-robin: requests alternate between two replicas', async () => {
    const [r1, r2] = await Promise.all([upstream(), upstream()]);
    const proxy = await startProxy({
      env: structured([
        { url: r1.url, balance: 'round-robin' },
        { url: r2.url, balance: 'round-robin' },
      ]),
    });
    const order: string[] = [];
    for (const v of VERSIONS) {
      for (const ext of ['info', 'mod']) {
        const [c1, c2] = [r1.count(), r2.count()];
        const res = await get(`${proxy.url}/${M}/@v/${v}.${ext}`);
        expect(res.status).toBe(200);
        const d1 = r1.count() - c1;
        const d2 = r2.count() - c2;
        expect(d1 + d2).toBe(1);
        order.push(d1 === 1 ? 'r1' : 'r2');
      }
    }
    // strictly alternating, whichever replica went first
    for (let i = 1; i < order.length; i++) expect(order[i], order.join(' ')).not.toBe(order[i - 1]);
    expect(r1.count()).toBe(4);
    expect(r2.count()).toBe(4);
  });

  test('health: after N failures a replica is skipped during its cool-down; /readyz is 503 when all are down, /healthz stays 200', async () => {
    const [bad, good] = await Promise.all([upstream(), upstream()]);
    bad.on(/./, { status: 500 });
    const proxy = await startProxy({
      env: structured([{ url: bad.url }, { url: good.url }], { GOMODPROXY_HEALTH_FAILURES: '2', GOMODPROXY_HEALTH_COOLDOWN: '60s' }),
    });
    const keys = VERSIONS.flatMap((v) => ['info', 'mod', 'zip'].map((ext) => `/${M}/@v/${v}.${ext}`));
    for (const k of keys.slice(0, 6)) expect((await get(`${proxy.url}${k}`)).status).toBe(200);
    // the first two requests tried the bad replica, then it was left alone
    expect(bad.count()).toBe(2);
    expect(good.count()).toBe(6);
    expect((await get(`${proxy.url}/readyz`)).status).toBe(200);

    good.on(/./, { status: 500 });
    const failed = [];
    for (const k of keys.slice(6, 10)) failed.push(await get(`${proxy.url}${k}`));
    for (const r of failed) expectOneLineError(r, 502);
    expect(bad.count()).toBe(2);
    expect(good.count()).toBe(8); // two more failures, then its cool-down too
    expect(failed[3]!.text()).toMatch(/cool-down/);

    const ready = await get(`${proxy.url}/readyz`);
    expect(ready.status).toBe(503);
    expect(ready.text().trim().split('\n')).toHaveLength(1);
    expect((await get(`${proxy.url}/healthz`)).status).toBe(200);
    const metrics = (await get(`${proxy.url}/metrics`)).text();
    expect(metrics).toContain(`gomodproxy_upstream_healthy{upstream="${bad.url}"} 0`);
    expect(metrics).toContain(`gomodproxy_upstream_healthy{upstream="${good.url}"} 0`);
  });

  test('credentials: basic and bearer reach the upstream, and appear in no log, error line or metric', async () => {
    const secrets = { user: 'gmp-user', password: 'S3cret-pa55word', token: 'tok-9f8e7d6c5b4a', urlPassword: 'in-url-pa55' };
    const [ub, ut, uu] = await Promise.all([upstream(), upstream(), upstream()]);
    for (const u of [ub, ut, uu]) u.on(/v1\.3\.0\.info$/, { status: 401, body: 'unauthorized: bad credentials' });
    const basic = await startProxy({ env: structured([{ url: ub.url, username: secrets.user, password: secrets.password }]) });
    const bearer = await startProxy({ env: structured([{ url: ut.url, token: secrets.token }]) });
    const inUrl = await startProxy({ upstream: uu.url.replace('http://', `http://${secrets.user}:${secrets.urlPassword}@`) });

    const bodies: string[] = [];
    for (const p of [basic, bearer, inUrl]) {
      const rs = await goDownload(p, ['v1.0.0']);
      expect(rs.map((r) => [r.Version, r.Sum, r.GoModSum, r.Error])).toEqual([[...sumOf('v1.0.0'), undefined]]);
      const refused = await get(`${p.url}/${M}/@v/v1.3.0.info`);
      expect(refused.status).toBeGreaterThanOrEqual(400);
      bodies.push(refused.text(), (await get(`${p.url}/metrics`)).text());
    }
    const basicAuth = `Basic ${Buffer.from(`${secrets.user}:${secrets.password}`).toString('base64')}`;
    const urlAuth = `Basic ${Buffer.from(`${secrets.user}:${secrets.urlPassword}`).toString('base64')}`;
    expect(new Set(ub.requests.map((r) => r.headers.authorization))).toEqual(new Set([basicAuth]));
    expect(new Set(ut.requests.map((r) => r.headers.authorization))).toEqual(new Set([`Bearer ${secrets.token}`]));
    expect(new Set(uu.requests.map((r) => r.headers.authorization))).toEqual(new Set([urlAuth]));

    const everything = [...[basic, bearer, inUrl].flatMap((p) => [JSON.stringify(p.logs()), p.stderr()]), ...bodies].join('\n');
    for (const s of [secrets.password, secrets.token, secrets.urlPassword, basicAuth.slice(6), urlAuth.slice(6)]) {
      expect(everything.includes(s), `secret ${s} leaked`).toBe(false);
    }
  });

  test('redirects from an upstream are followed, without its credentials going to another origin', async () => {
    const [withCreds, storage] = await Promise.all([upstream(), upstream()]);
    // like proxy.golang.org sending zips from object storage
    withCreds.on(/\.zip$/, { status: 302, headers: { Location: `${storage.url}/${M}/@v/v1.2.0.zip` } });
    const p = await startProxy({ env: structured([{ url: withCreds.url, token: 'tok-redirect-secret' }]) });
    const rs = await goDownload(p, ['v1.2.0']);
    expect(rs.map((r) => [r.Version, r.Sum, r.GoModSum, r.Error])).toEqual([[...sumOf('v1.2.0'), undefined]]);
    expect(withCreds.count(/\.zip$/)).toBe(1);
    expect(storage.count(/\.zip$/)).toBe(1);
    expect(withCreds.requests.every((r) => r.headers.authorization === 'Bearer tok-redirect-secret')).toBe(true);
    expect(storage.requests.map((r) => r.headers.authorization)).toEqual([undefined]);
  });

  test("a stalled upstream gives 504 from the upstream's own short timeouts, each naming what stalled", async () => {
    const slow = await upstream();
    slow.on(/v1\.0\.0\.info$/, { stall: true }); // never answers: first-byte timeout
    slow.on(/v1\.0\.0\.mod$/, { slowBody: { chunk: 4, intervalMs: 600_000 } }); // goes silent mid-body: idle timeout
    // The global timeouts, and the client's, are far longer than the test may run: a 504 can only
    // come from this upstream's 600 ms ones (ignoring them would hang the test instead).
    const proxy = await startProxy({
      env: structured([{ url: slow.url, timeouts: { connect: '600ms', firstByte: '600ms', idle: '600ms' } }], {
        GOMODPROXY_TIMEOUTS_CONNECT: '10m',
        GOMODPROXY_TIMEOUTS_FIRST_BYTE: '10m',
        GOMODPROXY_TIMEOUTS_IDLE: '10m',
      }),
    });
    for (const [ext, why] of [
      ['info', /did not start answering within timeouts.firstByte/],
      ['mod', /stalled: silent for longer than timeouts.idle .* while sending/],
    ] as const) {
      const r = await get(`${proxy.url}/${M}/@v/v1.0.0.${ext}`, undefined, { timeoutMs: 600_000 });
      const line = expectOneLineError(r, 504);
      expect(line).toContain(slow.url);
      expect(line).toMatch(why);
    }
    // the go command reports the 504
    const [r] = await goDownload(proxy, ['v1.0.0']);
    expect(r!.Error).toMatch(/504 Gateway Timeout/);
  });

  test('HTTP_PROXY egress is honoured (and NO_PROXY bypasses it)', async () => {
    const fwd = await startForwardProxy();
    const up = await upstream();
    const proxy = await startProxy({ upstream: up.url, env: { HTTP_PROXY: fwd.url, HTTPS_PROXY: fwd.url } });
    const rs = await goDownload(proxy, ['v1.0.0']);
    expect(rs.map((r) => [r.Version, r.Sum, r.GoModSum, r.Error])).toEqual([[...sumOf('v1.0.0'), undefined]]);
    expect(up.count(/\.(info|mod|zip)$/)).toBe(3);
    // undici tunnels through the egress proxy (CONNECT) or sends absolute-form requests to it
    expect(fwd.seen.length).toBeGreaterThan(0);
    for (const s of fwd.seen) expect(s.target).toMatch(new RegExp(`^(http://)?127\\.0\\.0\\.1:${up.port}`));

    const before = fwd.seen.length;
    const bypass = await startProxy({ upstream: up.url, env: { HTTP_PROXY: fwd.url, NO_PROXY: '127.0.0.1' } });
    expect((await get(`${bypass.url}/${M}/@v/v1.1.0.info`)).status).toBe(200);
    expect(fwd.seen.length).toBe(before);
  });
});

describe('loop detection', () => {
  test('a proxy whose upstream is itself answers 508', async () => {
    const port = await freePort();
    const self = await startProxy({ upstream: `http://127.0.0.1:${port}`, args: ['--listen', `127.0.0.1:${port}`] });
    const line = expectOneLineError(await get(`${self.url}/${M}/@v/list`), 508);
    expect(line).toMatch(/loop/);
    expectOneLineError(await get(`${self.url}/${M}/@v/v1.0.0.zip`), 508);
    const [r] = await goDownload(self, ['v1.0.0']);
    expect(r!.Error).toMatch(/508/);
  });

  test("two proxies that are each other's upstream answer 508", async () => {
    const [pa, pb] = (await freePorts(2)) as [number, number];
    const a = await startProxy({ upstream: `http://127.0.0.1:${pb}`, args: ['--listen', `127.0.0.1:${pa}`] });
    await startProxy({ upstream: `http://127.0.0.1:${pa}`, args: ['--listen', `127.0.0.1:${pb}`] });
    const line = expectOneLineError(await get(`${a.url}/${M}/@v/v1.0.0.info`), 508);
    expect(line).toMatch(/loop/);
  });
});

/** A minimal forward proxy (CONNECT tunnels and absolute-form requests) that records what it was asked. */
async function startForwardProxy(): Promise<{ url: string; seen: { method: string; target: string }[] }> {
  const seen: { method: string; target: string }[] = [];
  const sockets = new Set<Socket>();
  const server = http.createServer((req, res) => {
    seen.push({ method: req.method ?? '', target: req.url ?? '' });
    let target: URL;
    try {
      target = new URL(req.url ?? '');
    } catch {
      res.writeHead(400).end();
      return;
    }
    const out = http.request(
      { host: target.hostname, port: target.port, path: `${target.pathname}${target.search}`, method: req.method, headers: req.headers },
      (ur) => {
        res.writeHead(ur.statusCode ?? 502, ur.headers);
        ur.pipe(res);
      },
    );
    out.on('error', () => res.destroy());
    req.pipe(out);
  });
  server.on('connect', (req: http.IncomingMessage, socket: Socket, headBytes: Buffer) => {
    seen.push({ method: 'CONNECT', target: req.url ?? '' });
    const [host, port] = (req.url ?? '').split(':');
    const out = net.connect(Number(port), host, () => {
      socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (headBytes.length) out.write(headBytes);
      out.pipe(socket);
      socket.pipe(out);
    });
    sockets.add(out);
    out.on('error', () => socket.destroy());
    socket.on('error', () => out.destroy());
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  registerCleanup(
    () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  );
  return { url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`, seen };
}
