// Hits answered off the socket (fasthits.ts) keep the read rules: with sign-in configured (and no
// audit or limits, so the socket path is in front), a version a signed-in user brought into memory
// is refused to an anonymous client exactly as before, a signed-in client's hits go through the
// full path, and only open modules' anonymous hits are answered off the socket.
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { expectOneLineError } from '../e2e/util.js';
import { Agent } from 'undici';
import { get, type HttpResponse } from '../helpers/http.js';
import type { ProxyProcess } from '../helpers/gomodproxy.js';
import { cleanupAll, makeTempDir } from '../helpers/tmp.js';
import { startTestUpstream, type TestUpstream } from '../helpers/upstream.js';
import { buildModuleWorld, type World } from '../helpers/world.js';
import { basic, startProxyWithConfig, writeHtpasswd } from './util.js';

const OPEN = 'github.com/gmp-fast/open';
const TEAM = 'github.com/gmp-fast/team';
const HIDDEN = 'github.com/gmp-fast/hidden';

let world: World;
let upstream: TestUpstream;
let proxy: ProxyProcess;

beforeAll(async () => {
  world = await buildModuleWorld({ modules: [OPEN, TEAM, HIDDEN].map((p) => ({ path: p, versions: [{ version: 'v1.0.0' }] })) });
  upstream = await startTestUpstream({ root: world.downloadDir });
  const dir = await makeTempDir('fasthits-auth');
  const htpasswd = path.join(dir, 'htpasswd');
  await writeHtpasswd(htpasswd, { alice: 'wonderland' });
  proxy = await startProxyWithConfig(
    {
      read: ['anonymous'],
      routes: [
        { match: TEAM, read: ['user:alice'] },
        { match: HIDDEN, read: ['user:alice'], deniedAs: 'not-found' },
      ],
      auth: { htpasswd },
    },
    { upstream: upstream.url, workers: 1 },
  );
});
afterAll(cleanupAll);

/**
 * A GET on a connection of its own: a connection that node:http took over (a signed-in request
 * goes there) stays there, so a reused one would never reach the socket path.
 */
async function fresh(url: string, headers: Record<string, string> = {}): Promise<HttpResponse> {
  const dispatcher = new Agent({ pipelining: 0 });
  try {
    return await get(url, headers, { dispatcher });
  } finally {
    await dispatcher.close();
  }
}

async function socketHits(): Promise<number> {
  const m = (await get(`${proxy.url}/metrics`)).body.toString();
  return Number(/^gomodproxy_socket_hits_total (\d+)$/m.exec(m)?.[1] ?? NaN);
}

describe('hits off the socket with sign-in configured', () => {
  test('restricted versions in memory stay refused to anonymous clients; open ones are answered off the socket', async () => {
    const alice = { Authorization: basic('alice', 'wonderland') };
    for (const m of [TEAM, HIDDEN, OPEN]) {
      for (const kind of ['info', 'mod', 'zip']) {
        const r = await get(`${proxy.url}/${m}/@v/v1.0.0.${kind}`, alice);
        expect(r.status, `${m} ${kind}`).toBe(200);
      }
    }
    const before = await socketHits();
    expect(before).toBe(0);
    for (const kind of ['info', 'mod', 'zip']) {
      // Now in this process's memory: the anonymous client is still asked to sign in, or told nothing is there.
      expectOneLineError(await fresh(`${proxy.url}/${TEAM}/@v/v1.0.0.${kind}`), 401);
      expect((await fresh(`${proxy.url}/${HIDDEN}/@v/v1.0.0.${kind}`)).status).toBe(401);
      const wrong = await fresh(`${proxy.url}/${TEAM}/@v/v1.0.0.${kind}`, { Authorization: basic('alice', 'nope') });
      expect(wrong.status).toBe(401);
      // A signed-in hit is a hit, through the full path.
      const hit = await fresh(`${proxy.url}/${TEAM}/@v/v1.0.0.${kind}`, alice);
      expect([hit.status, hit.headers['x-gomodproxy-cache']]).toEqual([200, 'hit']);
    }
    expect(await socketHits()).toBe(before);
    // A zip enters memory when it is first read back from the store, not when it is fetched: the
    // first round's zip goes through node:http, the second round's comes off the socket.
    for (const round of [1, 2]) {
      for (const kind of ['info', 'mod', 'zip']) {
        const open = await fresh(`${proxy.url}/${OPEN}/@v/v1.0.0.${kind}`);
        expect([open.status, open.headers['x-gomodproxy-cache'], open.body.length > 0]).toEqual([200, 'hit', true]);
      }
      expect(await socketHits()).toBe(before + (round === 1 ? 2 : 5));
    }
  });
});
