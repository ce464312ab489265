// Fair shares per client and who the client is: the request rate limit (429 with Retry-After,
// per address, the go command printing the line), the cap on one client's concurrent upstream
// fetches (its queue never holds up another client's miss), and X-Forwarded-For believed only
// from configured reverse proxies (the access log, the audit log and the rate limit all see the
// forwarded address only then). 127.0.0.2 is a second loopback address on Linux: a second client.
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { accessLines, expectOneLineError, sleep, waitFor } from '../e2e/util.js';
import { createGoEnv } from '../helpers/goenv.js';
import type { ProxyProcess } from '../helpers/gomodproxy.js';
import type { HttpResponse } from '../helpers/http.js';
import { cleanupAll, makeTempDir, registerCleanup } from '../helpers/tmp.js';
import { Agent, request } from 'undici';
import { startTestUpstream, type TestUpstream } from '../helpers/upstream.js';
import { buildModuleWorld, type World } from '../helpers/world.js';
import { gomodproxy } from '../e2e-sumdb/util.js';
import { fetchAs, readAudit, startProxyWithConfig } from './util.js';

const LIM = 'github.com/gmp-lim/rated';
const FAST = 'github.com/gmp-lim/fast';
const SLOW = ['github.com/gmp-lim/slow1', 'github.com/gmp-lim/slow2', 'github.com/gmp-lim/slow3'];
const A = { localAddress: '127.0.0.1' };
const B = { localAddress: '127.0.0.2' };

let world: World;
let upstream: TestUpstream;
let rated: ProxyProcess;
let capped: ProxyProcess;
let forwarded: ProxyProcess;
let auditFile: string;

beforeAll(async () => {
  world = await buildModuleWorld({
    modules: [LIM, FAST, ...SLOW].map((p) => ({ path: p, versions: [{ version: 'v1.0.0' }] })),
  });
  upstream = await startTestUpstream({ root: world.downloadDir });
  auditFile = path.join(await makeTempDir('audit'), 'audit.jsonl');
  [rated, capped, forwarded] = await Promise.all([
    startProxyWithConfig({ auth: { rateLimit: { requestsPerSecond: 1, burst: 2 } } }, { upstream: upstream.url }),
    startProxyWithConfig({ auth: { fetchConcurrencyPerClient: 1 } }, { upstream: upstream.url }),
    startProxyWithConfig(
      { trustedProxies: ['127.0.0.2'], auth: { audit: { enabled: true, file: auditFile }, rateLimit: { requestsPerSecond: 0.2, burst: 3 } } },
      { upstream: upstream.url },
    ),
  ]);
});
afterAll(cleanupAll);

function retryAfter(res: HttpResponse): number {
  const v = res.headers['retry-after'] ?? '';
  expect(v, 'Retry-After').toMatch(/^\d+$/);
  return Number(v);
}

describe('rate limit', () => {
  test('over the rate: 429 with Retry-After and one line; another address is not affected; after Retry-After it works again', async () => {
    const url = `${rated.url}/${LIM}/@v/v1.0.0.info`;
    const burst = await Promise.all(Array.from({ length: 6 }, () => fetchAs(url, A)));
    const statuses = burst.map((r) => r.status);
    expect(statuses.filter((s) => s === 200).length).toBeGreaterThanOrEqual(1);
    expect(statuses.filter((s) => s === 200).length).toBeLessThanOrEqual(3);
    const limited = burst.filter((r) => r.status === 429);
    expect(limited.length).toBeGreaterThanOrEqual(3);
    let wait = 0;
    for (const r of limited) {
      expect(expectOneLineError(r, 429)).toMatch(/^too many requests; retry in \d+ s$/);
      wait = Math.max(wait, retryAfter(r));
    }
    expect(wait).toBeGreaterThanOrEqual(1);
    // The other client has its own budget.
    expect((await fetchAs(url, B)).status).toBe(200);
    // The go command (from 127.0.0.1, still over its budget) prints the line.
    const env = await createGoEnv({ goproxy: rated.url });
    await Promise.all([fetchAs(url, A), fetchAs(url, A)]);
    const [r] = await env.modDownloadJson([`${LIM}@v1.0.0`], undefined, { allowErrors: true });
    expect(r?.Error).toMatch(/429 Too Many Requests\n\tserver response: too many requests; retry in \d+ s/);
    // After the advertised wait the client is served again.
    const again = await fetchAs(url, A);
    const more = again.status === 429 ? retryAfter(again) : 0;
    await sleep(more * 1000 + 50);
    expect((await fetchAs(url, A)).status).toBe(200);
    // /healthz is never limited (probes must not be refused)
    expect((await Promise.all(Array.from({ length: 5 }, () => fetchAs(`${rated.url}/healthz`, A)))).map((x) => x.status)).toEqual([200, 200, 200, 200, 200]);
  });
});

describe('upstream fetches per client', () => {
  test("one client's queued misses do not hold up another client's miss", async () => {
    const slowInfo = (r: { path: string }) => SLOW.some((s) => r.path === `/${s}/@v/v1.0.0.info`);
    for (const s of SLOW) upstream.on(`/${s}/@v/v1.0.0.info`, { delayMs: 1_000 });
    // A's first fetch is held until B has been served: A's slot is certainly taken meanwhile,
    // however slowly B's request goes through.
    let releaseFirst!: () => void;
    upstream.once(slowInfo, { hold: new Promise<void>((r) => (releaseFirst = r)) });
    const fromA = Promise.all(SLOW.map((s) => fetchAs(`${capped.url}/${s}/@v/v1.0.0.info`, A)));
    await upstream.waitForRequest(slowInfo);
    // A holds its one slot; its other two misses wait. B's miss goes straight to the upstream.
    const b = await fetchAs(`${capped.url}/${FAST}/@v/v1.0.0.info`, B);
    expect(b.status).toBe(200);
    expect(upstream.count(`/${FAST}/@v/v1.0.0.info`)).toBe(1);
    expect(upstream.count(slowInfo)).toBe(1);
    const released = Date.now();
    releaseFirst();
    // A's misses are all answered, one upstream fetch at a time.
    const a = await fromA;
    expect(a.map((r) => r.status)).toEqual([200, 200, 200]);
    expect(a.map((r) => r.json<{ Version: string }>().Version)).toEqual(['v1.0.0', 'v1.0.0', 'v1.0.0']);
    const times = upstream.requests.filter(slowInfo).map((r) => r.time);
    expect(times).toHaveLength(3);
    // Lower bounds only: the second fetch came after the first was let go, the third at least the
    // second's 1 s delay after it.
    expect(times[1]!, 'the next fetch starts after the previous one ended').toBeGreaterThanOrEqual(released);
    expect(times[2]! - times[1]!, 'the next fetch starts after the previous one ended').toBeGreaterThanOrEqual(950);
    // Hits need no slot: all three again, at once, from the cache.
    const hits = await Promise.all(SLOW.map((s) => fetchAs(`${capped.url}/${s}/@v/v1.0.0.info`, A)));
    expect(hits.map((r) => r.headers['x-gomodproxy-cache'])).toEqual(['hit', 'hit', 'hit']);
    expect(upstream.count(slowInfo)).toBe(3);
  });
});

describe('upstream fetches per client: a full queue', () => {
  test('past the queue bound (1000 waiting) a miss is 429 with Retry-After and one line, not a 500; the queue then drains', async () => {
    const Q = 'github.com/gmp-lim/queue';
    // The first miss holds the client's one slot until every other miss has arrived; a thousand
    // of them wait behind it.
    let releaseFirst!: () => void;
    upstream.once((r) => r.path.startsWith(`/${Q}/@v/`), { hold: new Promise<void>((r) => (releaseFirst = r)) });
    const agent = new Agent({ connections: 1100, keepAliveTimeout: 1_000 });
    registerCleanup(() => agent.close());
    const miss = (i: number) =>
      request(`${capped.url}/${Q}/@v/v0.0.${i}.info`, { dispatcher: agent }).then(async (r) => ({
        status: r.statusCode,
        headers: r.headers,
        text: await r.body.text(),
      }));
    const first = miss(0);
    await upstream.waitForRequest((r) => r.path.startsWith(`/${Q}/@v/`));
    // 1002 more: a thousand can wait, the rest are refused at once. Refusals come only from a full
    // queue, so two of them mean all 1002 have arrived: then the first may finish.
    let refusedSoFar = 0;
    const pending = Array.from({ length: 1002 }, (_, i) =>
      miss(i + 1).then((r) => {
        if (r.status === 429) refusedSoFar++;
        return r;
      }),
    );
    await waitFor(() => refusedSoFar >= 2, 'two misses refused by the full queue');
    releaseFirst();
    const rest = await Promise.all(pending);
    const all = [await first, ...rest];
    const refused = all.filter((r) => r.status === 429);
    expect(all.filter((r) => r.status !== 404 && r.status !== 429).map((r) => `${r.status} ${r.text}`)).toEqual([]);
    expect(refused.length).toBeGreaterThanOrEqual(1);
    for (const r of refused) {
      expect(r.text).toBe('too many upstream fetches from this client at once (limit 1); retry in a moment\n');
      expect(String(r.headers['retry-after'])).toMatch(/^\d+$/);
      expect(String(r.headers['content-type'])).toMatch(/^text\/plain/);
    }
    // The others were all answered (404: those versions do not exist), one fetch at a time.
    expect(all.filter((r) => r.status === 404).length).toBeGreaterThanOrEqual(1001);
    expect(capped.logs().filter((l) => l.level === 50)).toEqual([]);
  });
});

describe('X-Forwarded-For', () => {
  test('believed only from trustedProxies: access log, audit log and the rate limit see the forwarded address only then', async () => {
    const url = (v: string) => `${forwarded.url}/${LIM}/@v/${v}.info`;
    // From an untrusted address the header is ignored, whatever it says.
    await fetchAs(url('v0.0.1'), A, { 'x-forwarded-for': '203.0.113.7' });
    // From the trusted proxy: its client's address.
    await fetchAs(url('v0.0.2'), B, { 'x-forwarded-for': '203.0.113.7' });
    // A chain: the nearest hop that is not a trusted proxy.
    await fetchAs(url('v0.0.3'), B, { 'x-forwarded-for': '198.51.100.1, 203.0.113.8, 127.0.0.2' });
    // Garbage in the header: the socket's address.
    await fetchAs(url('v0.0.4'), B, { 'x-forwarded-for': 'not-an-address' });
    // Hops written with a port, as some load balancers do.
    await fetchAs(url('v0.0.5'), B, { 'x-forwarded-for': '203.0.113.9:52311' });
    await fetchAs(url('v0.0.6'), B, { 'x-forwarded-for': '[2001:db8::7]:443' });

    const want: Record<string, string> = {
      'v0.0.1': '127.0.0.1',
      'v0.0.2': '203.0.113.7',
      'v0.0.3': '203.0.113.8',
      'v0.0.4': '127.0.0.2',
      'v0.0.5': '203.0.113.9',
      'v0.0.6': '2001:db8::7',
    };
    const lines = await waitFor(() => {
      const l = accessLines(forwarded).filter((x) => String(x.path).includes('/@v/v0.0.'));
      return l.length >= 6 ? l : undefined;
    }, 'six access lines');
    for (const [v, ip] of Object.entries(want)) expect(lines.find((l) => String(l.path).endsWith(`${v}.info`))?.ip, v).toBe(ip);
    const audit = await waitFor(async () => {
      const l = (await readAudit(auditFile)).filter((x) => String(x.version).startsWith('v0.0.'));
      return l.length >= 6 ? l : undefined;
    }, 'six audit lines');
    for (const [v, ip] of Object.entries(want)) expect(audit.find((l) => l.version === v)?.address, v).toBe(ip);

    // The rate limit counts the forwarded client: two clients behind the trusted proxy have their own budgets...
    const behind = async (ip: string, n: number) =>
      (await Promise.all(Array.from({ length: n }, () => fetchAs(url('v1.0.0'), B, { 'x-forwarded-for': ip })))).map((r) => r.status);
    expect((await behind('192.0.2.10', 5)).filter((s) => s === 429).length).toBeGreaterThanOrEqual(2);
    expect(await behind('192.0.2.11', 2)).toEqual([200, 200]);
    // ...while a client rotating the header itself gains nothing.
    const rotating = await Promise.all(Array.from({ length: 5 }, (_, i) => fetchAs(url('v1.0.0'), A, { 'x-forwarded-for': `192.0.2.${100 + i}` })));
    expect(rotating.filter((r) => r.status === 429).length).toBeGreaterThanOrEqual(2);
  });
});

describe('trustedProxies settings', () => {
  test('an entry that is not an address or a whole CIDR range is a configuration error naming it (exit 2), never "trust everyone"', async () => {
    for (const entry of ['10.0.0.0/', '10.0.0.0/33', '10.0.0.0/8x', 'fd00::/129', 'proxy.internal']) {
      const dir = await makeTempDir('bad-trusted');
      const r = await gomodproxy(['serve', '--listen', '127.0.0.1:0', '--data', dir, '--upstream', 'off', '--workers', '1'], {
        GOMODPROXY_TRUSTED_PROXIES: entry,
      });
      expect(r.code, `${entry}: ${r.stdout}${r.stderr}`).toBe(2);
      expect(r.stderr).toContain('trustedProxies');
      expect(r.stderr).toContain(entry);
      expect(r.stderr).not.toMatch(/\n\s+at /);
      expect(r.stdout).not.toContain('"listening"');
    }
  });
});
