// The checksum database reached the way the go command reaches it when GOSUMDB has no URL: through
// the first upstream proxy that answers /sumdb/<name>/supported. Here gomodproxy A has two upstreams,
// a plain proxy without /sumdb/ (404) and gomodproxy B, which knows the database's URL; A must skip
// the first and send every database request through B.
import { afterAll, beforeAll, expect, test } from 'vitest';
import { accessLines, waitFor } from '../e2e/util.js';
import { createGoEnv } from '../helpers/goenv.js';
import { startProxy, type ProxyProcess } from '../helpers/gomodproxy.js';
import { cleanupAll } from '../helpers/tmp.js';
import { startTestUpstream, type TestUpstream } from '../helpers/upstream.js';
import { buildModuleWorld, type World } from '../helpers/world.js';
import { startGoSumdb, type GoSumdbServer } from '../sumdb/helpers.js';
import { addToDb, cachedFile, esc, exists, moduleZip } from './util.js';

const ONE = 'github.com/gmp-route/One';
const TWO = 'github.com/gmp-route/two';

let world: World;
let db: GoSumdbServer;
let upstream: TestUpstream;
let b: ProxyProcess;
let a: ProxyProcess;

beforeAll(async () => {
  world = await buildModuleWorld({
    modules: [
      { path: ONE, versions: [{ version: 'v1.0.0' }] },
      { path: TWO, versions: [{ version: 'v1.0.0' }, { version: 'v1.1.0' }] },
    ],
  });
  db = await startGoSumdb();
  await addToDb(db, world, [`${ONE}@v1.0.0`, `${TWO}@v1.0.0`, `${TWO}@v1.1.0`]);
  upstream = await startTestUpstream({ root: world.downloadDir });
  // B is told with `serve --sumdb`; A reads GOSUMDB from its environment, as the go command would.
  b = await startProxy({ upstream: upstream.url, args: ['--sumdb', `${db.vkey} ${db.url}`] });
  // No URL: A must find the database through an upstream that supports it, as the go command would.
  a = await startProxy({ upstream: `${upstream.url},${b.url}`, env: { GOSUMDB: db.vkey } });
});
afterAll(cleanupAll);

test('gomodproxy uses the first upstream whose /sumdb/<name>/supported answers 200', async () => {
  const env = await createGoEnv({ goproxy: a.url, gosumdb: db.vkey });
  const mods = [`${ONE}@v1.0.0`, `${TWO}@v1.0.0`];
  const got = await env.modDownloadJson(mods);
  expect(got.map((r) => [r.Sum, r.GoModSum])).toEqual(mods.map((m) => [world.get(m).Sum, world.get(m).GoModSum]));

  // A asked the plain upstream first (404), then B (200), and says so.
  expect(upstream.count(`/sumdb/${db.name}/supported`)).toBeGreaterThanOrEqual(1);
  const reached = await a.waitForLog((l) => l.msg === 'checksum database reached through an upstream proxy');
  expect(String(reached.via)).toContain(b.url.replace(/^http:\/\//, ''));
  // Nothing but the probe went to the plain upstream's /sumdb/.
  expect(upstream.requests.filter((r) => r.path.startsWith('/sumdb/')).map((r) => r.path)).toEqual(
    upstream.requests.filter((r) => r.path === `/sumdb/${db.name}/supported`).map((r) => r.path),
  );
  // B carried A's lookups and tiles, and B (the only one with the URL) asked the database.
  // Access lines are written in batches, up to 200 ms late: wait until B's are all there.
  const wanted = [`/sumdb/${db.name}/supported`, `/sumdb/${db.name}/lookup/${esc(ONE)}@v1.0.0`, `/sumdb/${db.name}/lookup/${TWO}@v1.0.0`];
  const viaB = await waitFor(() => {
    const paths = accessLines(b).map((l) => String(l.path));
    return wanted.every((w) => paths.includes(w)) && paths.some((p) => p.startsWith(`/sumdb/${db.name}/tile/`)) ? paths : undefined;
  }, "the supported probe, both lookups and tiles in B's access log");
  expect(viaB).toEqual(expect.arrayContaining(wanted));
  expect(await db.requests()).toEqual(expect.arrayContaining([`/lookup/${esc(ONE)}@v1.0.0`, `/lookup/${TWO}@v1.0.0`]));
  // The go command's own lookups went to A's /sumdb/.
  // Access lines are written in batches, up to 200 ms late: wait for A's.
  await waitFor(
    () => accessLines(a).some((l) => String(l.path) === `/sumdb/${db.name}/lookup/${esc(ONE)}@v1.0.0`),
    "the go command's lookup in A's access log",
  );
});

test('artifacts fetched by A are verified through the upstream route too', async () => {
  // B would pass a tampered zip on (it got it from the same upstream, but A asks the plain upstream first).
  const fake = await moduleZip(TWO, 'v1.1.0', { 'go.mod': `module ${TWO}\n`, 'x.go': 'package two\n\nconst Evil = 1\n' });
  upstream.on(`/${TWO}/@v/v1.1.0.zip`, { replaceBody: fake, contentType: 'application/zip' });
  const env = await createGoEnv({ goproxy: a.url, gosumdb: db.vkey });
  const [r] = await env.modDownloadJson([`${TWO}@v1.1.0`], undefined, { allowErrors: true });
  expect(r?.Error).toContain('checksum mismatch');
  expect(r?.Error).toContain(world.get(`${TWO}@v1.1.0`).Sum);
  expect(await exists(cachedFile(a.dataDir, TWO, 'v1.1.0', 'zip'))).toBe(false);
});
