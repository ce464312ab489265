// `gomodproxy verify` over a data folder filled by a real proxy through the real go command: a healthy
// cache passes; a zip or .mod changed on disk is found (against the .ziphash and the checksum
// database, or offline against the .ziphash and the records kept earlier); --purge removes the bad
// versions and rewrites their lists, after which the proxy fetches and verifies them again.
import { readFile, rm, truncate, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { waitFor } from '../e2e/util.js';
import { createGoEnv } from '../helpers/goenv.js';
import { startProxy, type ProxyProcess } from '../helpers/gomodproxy.js';
import { cleanupAll } from '../helpers/tmp.js';
import { startTestUpstream, type TestUpstream } from '../helpers/upstream.js';
import { buildModuleWorld, type World } from '../helpers/world.js';
import { startGoSumdb, type GoSumdbServer } from '../sumdb/helpers.js';
import { addToDb, cachedFile, esc, exists, gomodproxy, moduleZip } from './util.js';

const ONE = 'github.com/gmp-verify/one';
const TWO = 'github.com/gmp-verify/Two';
const PRIV = 'github.com/gmp-vprivate/p';
const ALL = [`${ONE}@v1.0.0`, `${ONE}@v1.1.0`, `${TWO}@v1.0.0`, `${PRIV}@v1.0.0`];

let world: World;
let db: GoSumdbServer;
let upstream: TestUpstream;
let proxy: ProxyProcess;
let sumdbEnv: Record<string, string>;

function verify(...args: string[]): ReturnType<typeof gomodproxy> {
  return gomodproxy(['verify', '--data', proxy.dataDir, '--upstream', 'off', ...args], sumdbEnv);
}

async function fill(): Promise<void> {
  const env = await createGoEnv({ goproxy: proxy.url, gosumdb: db.vkey, gonosumdb: 'github.com/gmp-vprivate' });
  await env.modDownloadJson(ALL);
  // The proxy rewrites each module's list off the request path.
  await waitFor(
    async () => (await readFile(path.join(proxy.dataDir, esc(ONE), '@v', 'list'), 'utf8').catch(() => '')) === 'v1.0.0\nv1.1.0\n',
    'the list of one',
  );
}

beforeAll(async () => {
  world = await buildModuleWorld({
    modules: [
      { path: ONE, versions: [{ version: 'v1.0.0' }, { version: 'v1.1.0' }] },
      { path: TWO, versions: [{ version: 'v1.0.0' }] },
      { path: PRIV, versions: [{ version: 'v1.0.0' }] },
    ],
  });
  db = await startGoSumdb();
  await addToDb(db, world, [`${ONE}@v1.0.0`, `${ONE}@v1.1.0`, `${TWO}@v1.0.0`]);
  upstream = await startTestUpstream({ root: world.downloadDir });
  sumdbEnv = { GOMODPROXY_SUMDB: `${db.vkey} ${db.url}`, GOMODPROXY_NO_SUMDB: 'github.com/gmp-vprivate' };
  proxy = await startProxy({ upstream: upstream.url, env: sumdbEnv });
  await fill();
});
afterAll(cleanupAll);

describe('gomodproxy verify', () => {
  test('--help names the options', async () => {
    const r = await gomodproxy(['verify', '--help']);
    expect(r.code).toBe(0);
    for (const opt of ['--offline', '--purge', '--data', '--sumdb', '--concurrency']) expect(r.stdout).toContain(opt);
  });

  test('a healthy cache: exit 0, every public version checked against the database, the private one never sent', async () => {
    const r = await verify();
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain('verified 4 versions of 3 modules');
    expect(r.stdout).toContain('4 ok, 0 bad');
    expect(r.stdout).toContain('3 checked against the database');
    expect(r.stdout).toContain('1 private');
    // Not a terminal: plain progress lines, no bar.
    expect(r.stderr).not.toContain('\r');
    expect((await db.requests()).filter((p) => p.includes('gmp-vprivate'))).toEqual([]);
  });

  test('a zip, a .mod and a private zip changed on disk: exit 1, each reported with its hashes', async () => {
    const oneZip = cachedFile(proxy.dataDir, ONE, 'v1.0.0', 'zip');
    const fake = await moduleZip(ONE, 'v1.0.0', { 'go.mod': `module ${ONE}\n`, 'evil.go': 'package one\n' });
    await writeFile(oneZip, fake);
    await writeFile(cachedFile(proxy.dataDir, TWO, 'v1.0.0', 'mod'), `module ${TWO}\n\ngo 1.21\n\nrequire example.com/evil v1.0.0\n`);
    const privZip = cachedFile(proxy.dataDir, PRIV, 'v1.0.0', 'zip');
    const privSize = (await readFile(privZip)).length;
    await truncate(privZip, privSize - 10);

    const r = await verify();
    expect(r.code, r.stdout + r.stderr).toBe(1);
    const bad = r.stdout.split('\n').filter((l) => l.startsWith('BAD '));
    expect(bad).toHaveLength(3);
    const one = bad.find((l) => l.startsWith(`BAD ${ONE}@v1.0.0:`))!;
    expect(one).toContain('.ziphash');
    expect(one).toContain(world.get(`${ONE}@v1.0.0`).Sum);
    expect(one).toContain(`checksum database ${db.name}`);
    const two = bad.find((l) => l.startsWith(`BAD ${TWO}@v1.0.0:`))!;
    expect(two).toContain(world.get(`${TWO}@v1.0.0`).GoModSum);
    expect(two).toContain('.mod');
    expect(bad.find((l) => l.startsWith(`BAD ${PRIV}@v1.0.0:`))).toContain('invalid');
    expect(r.stdout).toContain('1 ok, 3 bad');
    expect(r.stdout).toContain('--purge');
  });

  test('--offline finds the same without reaching the database', async () => {
    const before = (await db.requests()).length;
    const r = await verify('--offline');
    expect(r.code, r.stdout + r.stderr).toBe(1);
    const bad = r.stdout
      .split('\n')
      .filter((l) => l.startsWith('BAD '))
      .map((l) => l.slice(4, l.indexOf(':')));
    expect(bad.sort()).toEqual([`${ONE}@v1.0.0`, `${PRIV}@v1.0.0`, `${TWO}@v1.0.0`].sort());
    // The tampered .mod is caught only by the database record the proxy verified and kept.
    expect(r.stdout).toContain(`records ${world.get(`${TWO}@v1.0.0`).GoModSum}`);
    expect(r.stdout).toContain('offline');
    expect((await db.requests()).length).toBe(before);
  });

  test('--purge removes the bad versions and rewrites their lists; the proxy then fetches them again', async () => {
    const r = await verify('--purge');
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(r.stdout.split('\n').filter((l) => l.startsWith('PURGED '))).toHaveLength(3);
    for (const ext of ['info', 'mod', 'zip', 'ziphash'] as const) {
      expect(await exists(cachedFile(proxy.dataDir, ONE, 'v1.0.0', ext)), `${ONE} ${ext}`).toBe(false);
      expect(await exists(cachedFile(proxy.dataDir, TWO, 'v1.0.0', ext)), `${TWO} ${ext}`).toBe(false);
    }
    expect(await exists(cachedFile(proxy.dataDir, ONE, 'v1.1.0', 'zip'))).toBe(true);
    expect(await readFile(path.join(proxy.dataDir, esc(ONE), '@v', 'list'), 'utf8')).toBe('v1.1.0\n');
    expect(await readFile(path.join(proxy.dataDir, esc(TWO), '@v', 'list'), 'utf8')).toBe('');

    const after = await verify();
    expect(after.code, after.stdout + after.stderr).toBe(0);
    expect(after.stdout).toContain('verified 1 versions of 1 modules');

    // A restarted proxy (its memory cache holds nothing purged) fetches and verifies them again.
    await proxy.kill(); // a crash: what it verified is already on disk
    proxy = await startProxy({ upstream: upstream.url, dataDir: proxy.dataDir, env: sumdbEnv });
    await rm(path.join(proxy.dataDir, esc(ONE), '@v', 'list'));
    await fill();
    const again = await verify();
    expect(again.code, again.stdout + again.stderr).toBe(0);
    expect(again.stdout).toContain('verified 4 versions of 3 modules');
  });
});

describe('gomodproxy import', () => {
  test('checks public modules against the checksum database: a tampered zip is refused, the rest imported', async () => {
    const { cp, mkdtemp } = await import('node:fs/promises');
    const os = await import('node:os');
    const from = await mkdtemp(path.join(os.tmpdir(), 'gmp-import-src-'));
    await cp(world.downloadDir, from, { recursive: true });
    const tampered = path.join(from, esc(ONE), '@v', 'v1.1.0.zip');
    await writeFile(tampered, await moduleZip(ONE, 'v1.1.0', { 'go.mod': `module ${ONE}\n`, 'evil.go': 'package one\n' }));
    const into = await mkdtemp(path.join(os.tmpdir(), 'gmp-import-data-'));
    const r = await gomodproxy(['import', from, '--data', into], sumdbEnv);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`skip ${ONE.replace(/\//g, '\\/')}@v1\\.1\\.0: SECURITY: checksum mismatch`));
    expect(await exists(cachedFile(into, ONE, 'v1.1.0', 'zip'))).toBe(false);
    for (const [m, v] of [
      [ONE, 'v1.0.0'],
      [TWO, 'v1.0.0'],
      [PRIV, 'v1.0.0'],
    ] as const) {
      expect(await exists(cachedFile(into, m, v, 'zip')), `${m}@${v}`).toBe(true);
    }
    // The private module was imported without naming it to the database.
    expect((await db.requests()).some((p) => p.includes('gmp-vprivate'))).toBe(false);
    await rm(from, { recursive: true, force: true });
    await rm(into, { recursive: true, force: true });
  });
});
