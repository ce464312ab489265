// A checksum database that rewrites its history (x/mod's server after /-/fork, then a new record):
// gomodproxy has a verified tree that the new one does not extend, so it must say so loudly, count
// it, and refuse to vouch for anything new, also after a restart (the tree it trusts is persisted).
import { afterAll, beforeAll, expect, test } from 'vitest';
import { expectOneLineError } from '../e2e/util.js';
import { createGoEnv } from '../helpers/goenv.js';
import { startProxy, type ProxyProcess } from '../helpers/gomodproxy.js';
import { get } from '../helpers/http.js';
import { cleanupAll } from '../helpers/tmp.js';
import { startTestUpstream, type TestUpstream } from '../helpers/upstream.js';
import { buildModuleWorld, type World } from '../helpers/world.js';
import { startGoSumdb, type GoSumdbServer } from '../sumdb/helpers.js';
import { addToDb, cachedFile, exists, metric } from './util.js';

const OLD = 'github.com/gmp-fork/old';
const NEW = 'github.com/gmp-fork/new';

let world: World;
let db: GoSumdbServer;
let upstream: TestUpstream;
let proxy: ProxyProcess;

beforeAll(async () => {
  world = await buildModuleWorld({
    modules: [
      { path: OLD, versions: [{ version: 'v1.0.0' }, { version: 'v1.1.0' }] },
      { path: NEW, versions: [{ version: 'v1.0.0' }] },
    ],
  });
  db = await startGoSumdb();
  await addToDb(db, world, [`${OLD}@v1.0.0`, `${OLD}@v1.1.0`]);
  upstream = await startTestUpstream({ root: world.downloadDir });
  proxy = await startProxy({ upstream: upstream.url, env: { GOMODPROXY_SUMDB: `${db.vkey} ${db.url}` } });
});
afterAll(cleanupAll);

test('a forked tree is detected, counted, logged, and nothing new is verified', async () => {
  // Warm up: the proxy verifies and keeps a tree of 2 records.
  const warm = await createGoEnv({ goproxy: proxy.url, gosumdb: db.vkey });
  await warm.modDownloadJson([`${OLD}@v1.0.0`]);
  expect(await metric(proxy.url, 'gomodproxy_sumdb_forks_total')).toBe(0);

  // The database rewrites record 0 and grows: its new tree is not an extension of the old one.
  await db.fork(0);
  await addToDb(db, world, [`${NEW}@v1.0.0`]);

  const env = await createGoEnv({ goproxy: proxy.url, gosumdb: db.vkey });
  const [r] = await env.modDownloadJson([`${NEW}@v1.0.0`], undefined, { allowErrors: true });
  expect(r?.Error).toMatch(/SECURITY/);
  expect(await metric(proxy.url, 'gomodproxy_sumdb_forks_total')).toBeGreaterThan(0);
  const logged = await proxy.waitForLog((l) => l.level === 'fatal' && String(l.msg).includes('misbehavior'));
  expect(String(logged.report)).toContain('SECURITY ERROR');
  expect(String(logged.report)).toContain('go.sum database tree');

  // Fetching the new module's files directly: refused with the same SECURITY line, nothing cached.
  const line = expectOneLineError(await get(`${proxy.url}/${NEW}/@v/v1.0.0.mod`), 502);
  expect(line).toMatch(/^SECURITY ERROR/);
  expect(line).toContain(db.name);
  // A zip is refused with the same line: the database is asked before a byte of it is sent.
  expect(expectOneLineError(await get(`${proxy.url}/${NEW}/@v/v1.0.0.zip`), 502)).toMatch(/^SECURITY ERROR/);
  expect(await exists(cachedFile(proxy.dataDir, NEW, 'v1.0.0', 'zip'))).toBe(false);
  expect(await exists(cachedFile(proxy.dataDir, NEW, 'v1.0.0', 'mod'))).toBe(false);
  expectOneLineError(await get(`${proxy.url}/sumdb/${db.name}/latest`), 502);

  // What was verified before the fork is still served from the cache.
  const again = await createGoEnv({ goproxy: proxy.url, gosumdb: 'off' });
  const [old] = await again.modDownloadJson([`${OLD}@v1.0.0`]);
  expect(old?.Sum).toBe(world.get(`${OLD}@v1.0.0`).Sum);
});

test('the trusted tree survives a restart: the fork is still refused', async () => {
  await proxy.kill(); // a crash: what it verified is already on disk
  proxy = await startProxy({ upstream: upstream.url, dataDir: proxy.dataDir, env: { GOMODPROXY_SUMDB: `${db.vkey} ${db.url}` } });
  const line = expectOneLineError(await get(`${proxy.url}/${OLD}/@v/v1.1.0.mod`), 502);
  expect(line).toMatch(/^SECURITY ERROR/);
  expect(await metric(proxy.url, 'gomodproxy_sumdb_forks_total')).toBeGreaterThan(0);
  expect(await exists(cachedFile(proxy.dataDir, OLD, 'v1.1.0', 'mod'))).toBe(false);
});
