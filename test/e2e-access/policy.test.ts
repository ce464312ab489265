// The operator's policy for public modules: deny rules by pattern (with "!" exclusions) answer
// 403 with the reason for every kind of request, before anything is fetched; deny rules for a
// version range hide those versions from lists, refuse them by exact version and refuse @latest
// and query answers naming one, so `go get M@latest` picks the newest allowed version; and in
// allow-list mode only listed modules are served.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { expectOneLineError } from '../e2e/util.js';
import { createGoEnv } from '../helpers/goenv.js';
import { get, head } from '../helpers/http.js';
import type { ProxyProcess } from '../helpers/gomodproxy.js';
import { cleanupAll } from '../helpers/tmp.js';
import { startTestUpstream, type TestUpstream } from '../helpers/upstream.js';
import { buildModuleWorld, type World } from '../helpers/world.js';
import { startProxyWithConfig } from './util.js';

const EVIL = 'github.com/gmp-bad/evil';
const FINE = 'github.com/gmp-bad/fine';
const RANGED = 'github.com/gmp-pol/ranged';
const OTHER = 'github.com/gmp-other/ok';
const OWN = 'github.com/gmp-polown/internal';
const REASON = 'CVE-2099-0001: remote code execution, use github.com/gmp-bad/fine';
const RANGE_REASON = 'v1.2.x leaks credentials; fixed in v1.3.0';

let world: World;
let upstream: TestUpstream;
let proxy: ProxyProcess;
let allowOnly: ProxyProcess;

beforeAll(async () => {
  world = await buildModuleWorld({
    modules: [
      { path: EVIL, versions: [{ version: 'v1.0.0' }], queries: ['main'] },
      { path: FINE, versions: [{ version: 'v1.0.0' }] },
      { path: RANGED, versions: [{ version: 'v1.0.0' }, { version: 'v1.1.0' }, { version: 'v1.2.0' }, { version: 'v1.2.1' }] },
      { path: OTHER, versions: [{ version: 'v1.0.0' }] },
      { path: OWN, versions: [{ version: 'v0.3.0' }] },
    ],
  });
  upstream = await startTestUpstream({ root: world.downloadDir });
  [proxy, allowOnly] = await Promise.all([
    startProxyWithConfig(
      {
        deny: [
          { match: ['github.com/gmp-bad/*', '!github.com/gmp-bad/fine'], reason: REASON },
          { match: RANGED, versions: '>=v1.2.0 <v1.3.0', reason: RANGE_REASON },
        ],
      },
      { upstream: upstream.url },
    ),
    // Allow-list mode with a private pattern: the operator's own modules come from git, unlisted.
    startProxyWithConfig(
      { allow: 'github.com/gmp-pol,github.com/gmp-bad/fine', private: 'github.com/gmp-polown' },
      { upstream: upstream.url, env: { GIT_CONFIG_GLOBAL: world.goEnv.gitConfig } },
    ),
  ]);
});
afterAll(cleanupAll);

describe('deny by pattern', () => {
  test('every kind of request is 403 with the reason, and nothing is fetched for it', async () => {
    const kinds = ['@v/list', '@latest', '@v/v1.0.0.info', '@v/main.info', '@v/v1.0.0.mod', '@v/v1.0.0.zip'];
    for (const k of kinds) {
      for (const method of ['GET', 'HEAD'] as const) {
        const res = method === 'GET' ? await get(`${proxy.url}/${EVIL}/${k}`) : await head(`${proxy.url}/${EVIL}/${k}`);
        if (method === 'HEAD') {
          expect(res.status, k).toBe(403);
          continue;
        }
        const line = expectOneLineError(res, 403);
        expect(line, k).toContain(REASON);
        expect(line, k).toContain(EVIL);
      }
    }
    expect(upstream.count((r) => r.path.includes('gmp-bad/evil'))).toBe(0);

    const env = await createGoEnv({ goproxy: proxy.url });
    const [r] = await env.modDownloadJson([`${EVIL}@v1.0.0`], undefined, { allowErrors: true });
    expect(r?.Error).toMatch(
      new RegExp(`403 Forbidden\\n\\tserver response: github\\.com/gmp-bad/evil is blocked by this proxy: ${REASON.replace(/[.()]/g, '\\$&')}`),
    );
    const got = await env.go(['list', '-m', '-versions', EVIL], { allowFail: true });
    expect(got.code).not.toBe(0);
    expect(got.stderr).toContain(REASON);
  });

  test('an excluded path ("!") of the same pattern is served', async () => {
    const env = await createGoEnv({ goproxy: proxy.url });
    const [r] = await env.modDownloadJson([`${FINE}@v1.0.0`]);
    expect(r?.Sum).toBe(world.get(`${FINE}@v1.0.0`).Sum);
  });
});

describe('deny a version range', () => {
  test('the denied versions are 403 by exact version, missing from the list; go picks the newest allowed', async () => {
    for (const v of ['v1.2.0', 'v1.2.1']) {
      for (const ext of ['info', 'mod', 'zip']) {
        const line = expectOneLineError(await get(`${proxy.url}/${RANGED}/@v/${v}.${ext}`), 403);
        expect(line).toBe(`${RANGED}@${v} is blocked by this proxy: ${RANGE_REASON}`);
      }
    }
    expect(upstream.count((r) => /\/v1\.2\.[01]\.(mod|zip)$/.test(r.path))).toBe(0);
    const list = await get(`${proxy.url}/${RANGED}/@v/list`);
    expect(list.status).toBe(200);
    expect(list.text().split('\n').filter(Boolean).sort()).toEqual(['v1.0.0', 'v1.1.0']);
    // the allowed versions are served as usual
    expect((await get(`${proxy.url}/${RANGED}/@v/v1.1.0.info`)).json<{ Version: string }>().Version).toBe('v1.1.0');

    const env = await createGoEnv({ goproxy: proxy.url });
    expect((await env.go(['list', '-m', '-versions', RANGED])).stdout.trim()).toBe(`${RANGED} v1.0.0 v1.1.0`);
    const dir = await env.newModule(`${env.root}/app`, 'example.com/app');
    await env.go(['get', `${RANGED}@latest`], { cwd: dir });
    const sum = await env.readGoSum(dir);
    expect(sum.get(`${RANGED} v1.1.0`)).toBe(world.get(`${RANGED}@v1.1.0`).Sum);
    expect([...sum.keys()].filter((k) => k.includes('v1.2.'))).toEqual([]);
    // asked for a denied version by name, the go command prints the reason
    const [r] = await env.modDownloadJson([`${RANGED}@v1.2.1`], undefined, { allowErrors: true });
    expect(r?.Error).toContain(`403 Forbidden\n\tserver response: ${RANGED}@v1.2.1 is blocked by this proxy: ${RANGE_REASON}`);
  });

  test('@latest and queries that resolve to a denied version are refused with the reason', async () => {
    // The upstream's own @latest names v1.2.1; a query "v1.2" resolves to it too.
    const info121 = world.get(`${RANGED}@v1.2.1`).infoText;
    upstream.on(`/${RANGED}/@latest`, { replaceBody: info121, contentType: 'application/json' });
    upstream.on(`/${RANGED}/@v/v1.2.info`, { replaceBody: info121, contentType: 'application/json' });
    const latest = expectOneLineError(await get(`${proxy.url}/${RANGED}/@latest`), 403);
    expect(latest).toContain(RANGE_REASON);
    expect(latest).toContain('v1.2.1');
    const query = expectOneLineError(await get(`${proxy.url}/${RANGED}/@v/v1.2.info`), 403);
    expect(query).toContain(RANGE_REASON);
    // a query resolving to an allowed version is fine
    upstream.on(`/${RANGED}/@v/v1.1.info`, { replaceBody: world.get(`${RANGED}@v1.1.0`).infoText, contentType: 'application/json' });
    expect((await get(`${proxy.url}/${RANGED}/@v/v1.1.info`)).json<{ Version: string }>().Version).toBe('v1.1.0');
  });
});

describe('allow-list mode', () => {
  test('only listed modules are served; every other is 403 saying it is not on the allow list', async () => {
    const env = await createGoEnv({ goproxy: allowOnly.url });
    const mods = [`${RANGED}@v1.2.1`, `${FINE}@v1.0.0`];
    const got = await env.modDownloadJson(mods);
    expect(got.map((r) => r.Sum)).toEqual(mods.map((m) => world.get(m).Sum));
    for (const m of [OTHER, EVIL]) {
      const [r] = await env.modDownloadJson([`${m}@v1.0.0`], undefined, { allowErrors: true });
      expect(r?.Error).toContain(`403 Forbidden\n\tserver response: ${m} is not on this proxy's allow list; ask its operator to allow it`);
      for (const k of ['@v/list', '@latest', '@v/v1.0.0.info', '@v/v1.0.0.mod', '@v/v1.0.0.zip']) {
        expect(expectOneLineError(await get(`${allowOnly.url}/${m}/${k}`), 403)).toContain('allow list');
      }
    }
    expect(upstream.count((r) => r.path.startsWith(`/${OTHER}/`))).toBe(0);
  });

  test('private modules are not subject to the allow list (it governs what comes in from outside)', async () => {
    const env = await createGoEnv({ goproxy: allowOnly.url });
    const [r] = await env.modDownloadJson([`${OWN}@v0.3.0`]);
    expect([r?.Sum, r?.GoModSum]).toEqual([world.get(`${OWN}@v0.3.0`).Sum, world.get(`${OWN}@v0.3.0`).GoModSum]);
    expect(upstream.count((x) => x.path.includes('gmp-polown'))).toBe(0);
  });
});
