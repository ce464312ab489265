// The real go command, with GOSUMDB naming only a key, verifying modules through gomodproxy's
// /sumdb/ endpoints; gomodproxy reaching a local checksum database (x/mod's own server) at its URL,
// refusing tampered upstream artifacts, keeping private modules away from the database, and
// answering from its cache once the database is gone.
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { hashGoMod, hashZipFile } from '../../src/modzip/index.js';
import { expectOneLineError, accessLines, waitFor } from '../e2e/util.js';
import { createGoEnv, type GoEnv } from '../helpers/goenv.js';
import { startProxy, type ProxyProcess } from '../helpers/gomodproxy.js';
import { get } from '../helpers/http.js';
import { cleanupAll, registerCleanup, removeTree } from '../helpers/tmp.js';
import { startTestUpstream, type TestUpstream } from '../helpers/upstream.js';
import { buildModuleWorld, type World } from '../helpers/world.js';
import { startGoSumdb, type GoSumdbServer } from '../sumdb/helpers.js';
import { addToDb, cachedFile, dbHits, esc, exists, metric, moduleZip } from './util.js';

const ALPHA = 'github.com/gmp-sdb/alpha';
const UPPER = 'github.com/gmp-sdb/Upper';
const APP = 'github.com/gmp-sdb/app';
const TAMPER = 'github.com/gmp-sdb/tamper';
const SECRET = 'github.com/gmp-private/secret';

const PUBLIC = [`${ALPHA}@v1.0.0`, `${ALPHA}@v1.1.0`, `${UPPER}@v1.0.0`, `${APP}@v1.0.0`, `${TAMPER}@v1.0.0`, `${TAMPER}@v1.1.0`, `${TAMPER}@v1.2.0`];

let world: World;
let db: GoSumdbServer;
let upstream: TestUpstream;
let proxy: ProxyProcess;
let DB: string;

/** A go env with a cold module cache that knows the database only by its key: everything goes through the proxy. */
function goEnv(extra: Record<string, string> = {}): Promise<GoEnv> {
  return createGoEnv({ goproxy: proxy.url, gosumdb: db.vkey, env: extra });
}

beforeAll(async () => {
  world = await buildModuleWorld({
    modules: [
      { path: ALPHA, versions: [{ version: 'v1.0.0' }, { version: 'v1.1.0', files: { 'alpha.go': 'package alpha\n\nconst V = 11\n' } }] },
      { path: UPPER, versions: [{ version: 'v1.0.0' }] },
      {
        path: APP,
        versions: [
          {
            version: 'v1.0.0',
            goMod: `module ${APP}\n\ngo 1.21\n\nrequire ${ALPHA} v1.1.0\n`,
            files: { 'app.go': `package app\n\nimport _ "${ALPHA}"\n` },
          },
        ],
      },
      { path: TAMPER, versions: [{ version: 'v1.0.0' }, { version: 'v1.1.0' }, { version: 'v1.2.0' }] },
      { path: SECRET, versions: [{ version: 'v1.0.0' }] },
    ],
  });
  db = await startGoSumdb();
  DB = db.name;
  // The database holds every public version with the hashes the go command computed directly.
  await addToDb(db, world, PUBLIC);
  upstream = await startTestUpstream({ root: world.downloadDir });
  proxy = await startProxy({
    upstream: upstream.url,
    env: { GOMODPROXY_SUMDB: `${db.vkey} ${db.url}`, GOMODPROXY_NO_SUMDB: 'github.com/gmp-private' },
  });
});
afterAll(cleanupAll);

describe('the go command through gomodproxy /sumdb/', () => {
  test('go mod download -json and go get verify through the proxy; go.sum equals the direct answers', async () => {
    const env = await goEnv();
    const mods = [`${ALPHA}@v1.0.0`, `${ALPHA}@v1.1.0`, `${UPPER}@v1.0.0`];
    const got = await env.modDownloadJson(mods);
    expect(got.map((r) => ({ Path: r.Path, Version: r.Version, Sum: r.Sum, GoModSum: r.GoModSum }))).toEqual(
      mods.map((m) => {
        const e = world.get(m);
        return { Path: e.Path, Version: e.Version, Sum: e.Sum, GoModSum: e.GoModSum };
      }),
    );
    // The go command kept what it verified, as it does for any database it reaches.
    expect(await exists(path.join(env.downloadDir, 'sumdb', DB, 'lookup', `${esc(UPPER)}@v1.0.0`))).toBe(true);

    const dir = await env.newModule(path.join(env.root, 'main'), 'example.com/main');
    await env.go(['get', `${APP}@v1.0.0`], { cwd: dir });
    const sum = await env.readGoSum(dir);
    // Every line go get wrote is the direct answer, and the modules it needed are all there.
    for (const [key, h1] of sum) {
      const [p, v] = key.split(' ') as [string, string];
      const e = world.get(`${p}@${v.replace(/\/go\.mod$/, '')}`);
      expect(h1, key).toBe(v.endsWith('/go.mod') ? e.GoModSum : e.Sum);
    }
    expect([...sum.keys()]).toEqual(expect.arrayContaining([`${APP} v1.0.0/go.mod`, `${ALPHA} v1.1.0/go.mod`, `${ALPHA} v1.1.0`]));

    // The go command asked the proxy, and the proxy (only it knows the URL) asked the database.
    // Access lines reach stdout in batches: wait for every line asserted on, not merely the first.
    const expected = [`/sumdb/${DB}/supported`, `/sumdb/${DB}/lookup/${ALPHA}@v1.0.0`, `/sumdb/${DB}/lookup/${esc(UPPER)}@v1.0.0`];
    await waitFor(() => {
      const seen = accessLines(proxy).map((l) => String(l.path));
      return expected.every((p) => seen.includes(p)) && seen.some((p) => p.startsWith(`/sumdb/${DB}/tile/`));
    }, 'the lookups and tile requests in the access log');
    const sumdbLines = accessLines(proxy).filter((l) => String(l.path).startsWith(`/sumdb/${DB}/`));
    const paths = sumdbLines.map((l) => String(l.path));
    expect(paths).toContain(`/sumdb/${DB}/supported`);
    expect(paths).toContain(`/sumdb/${DB}/lookup/${ALPHA}@v1.0.0`);
    expect(paths).toContain(`/sumdb/${DB}/lookup/${esc(UPPER)}@v1.0.0`);
    expect(paths.some((p) => /\/tile\/8\/0\//.test(p))).toBe(true);
    expect(sumdbLines.every((l) => l.status === 200 && l.kind === 'sumdb')).toBe(true);
    const reached = await db.requests();
    expect(reached).toContain(`/lookup/${ALPHA}@v1.0.0`);
    expect(reached).toContain(`/lookup/${esc(UPPER)}@v1.0.0`);
    expect(reached).toContain(`/lookup/${APP}@v1.0.0`);
    expect(reached.some((p) => p.startsWith('/tile/8/0/'))).toBe(true);
    // The proxy stored each zip with its verified hash beside it.
    const e = world.get(`${ALPHA}@v1.0.0`);
    expect(await readFile(cachedFile(proxy.dataDir, ALPHA, 'v1.0.0', 'ziphash'), 'utf8')).toBe(e.Sum);
  });

  test('the proxy answers supported/latest/tiles itself; unknown databases and endpoints are 404', async () => {
    expect((await get(`${proxy.url}/sumdb/${DB}/supported`)).status).toBe(200);
    const latest = await get(`${proxy.url}/sumdb/${DB}/latest`);
    expect(latest.status).toBe(200);
    expect(latest.text()).toMatch(new RegExp(`^go.sum database tree\\n${PUBLIC.length}\\n`));
    expectOneLineError(await get(`${proxy.url}/sumdb/sum.golang.org/supported`), 404);
    expectOneLineError(await get(`${proxy.url}/sumdb/${DB}/nonsense`), 404);
    expectOneLineError(await get(`${proxy.url}/sumdb/${DB}/lookup/${ALPHA}`), 400);
    expectOneLineError(await get(`${proxy.url}/sumdb/${DB}/tile/8/0/abc`), 400);
    expectOneLineError(await get(`${proxy.url}/sumdb/${DB}/lookup/github.com/gmp-sdb/nowhere@v1.0.0`), 404);
  });
});

describe('private modules never reach the database', () => {
  test('fetched through the proxy without a lookup; a client lookup of one is refused with a hint', async () => {
    const env = await goEnv({ GONOSUMDB: 'github.com/gmp-private' });
    const [r] = await env.modDownloadJson([`${SECRET}@v1.0.0`]);
    expect(r?.Sum).toBe(world.get(`${SECRET}@v1.0.0`).Sum);
    expect(await exists(cachedFile(proxy.dataDir, SECRET, 'v1.0.0', 'zip'))).toBe(true);

    // A client that does not know the module is private asks the proxy's /sumdb/: the proxy says no.
    const lookup = await get(`${proxy.url}/sumdb/${DB}/lookup/${SECRET}@v1.0.0`);
    const line = expectOneLineError(lookup, 404);
    expect(line).toContain(SECRET);
    expect(line).toMatch(/GONOSUMDB|GOPRIVATE/);
    const unaware = await goEnv();
    const [failed] = await unaware.modDownloadJson([`${SECRET}@v1.0.0`], undefined, { allowErrors: true });
    expect(failed?.Error).toMatch(/GONOSUMDB|GOPRIVATE/);

    expect(await dbHits(db, 'gmp-private')).toEqual([]);
  });
});

describe('tampered upstream artifacts are refused', () => {
  test('a valid zip with other content: one-line error naming both hashes, nothing cached, counted', async () => {
    const want = world.get(`${TAMPER}@v1.0.0`).Sum;
    const fake = await moduleZip(TAMPER, 'v1.0.0', { 'go.mod': `module ${TAMPER}\n\ngo 1.21\n`, 'evil.go': 'package tamper\n\nconst Evil = true\n' });
    const tmp = await mkdtemp(path.join(os.tmpdir(), 'gmp-fake-'));
    registerCleanup(() => removeTree(tmp));
    await writeFile(path.join(tmp, 'fake.zip'), fake);
    const got = await hashZipFile(path.join(tmp, 'fake.zip'));
    upstream.on(`/${TAMPER}/@v/v1.0.0.zip`, { replaceBody: fake, contentType: 'application/zip' });
    const before = await metric(proxy.url, 'gomodproxy_checksum_mismatches_total', { kind: 'zip' });

    // The first request for the refused zip is answered with a cut connection (the BUG test below);
    // the go command then gets the remembered one-line refusal.
    await get(`${proxy.url}/${TAMPER}/@v/v1.0.0.zip`).catch(() => null);
    const env = await goEnv();
    const [r] = await env.modDownloadJson([`${TAMPER}@v1.0.0`], undefined, { allowErrors: true });
    expect(r?.Error).toContain('checksum mismatch');
    expect(r?.Error).toContain(got);
    expect(r?.Error).toContain(want);

    const direct = expectOneLineError(await get(`${proxy.url}/${TAMPER}/@v/v1.0.0.zip`), 502);
    expect(direct).toContain(`${TAMPER}@v1.0.0`);
    expect(direct).toContain(got);
    expect(direct).toContain(want);
    expect(await exists(cachedFile(proxy.dataDir, TAMPER, 'v1.0.0', 'zip'))).toBe(false);
    expect(await exists(cachedFile(proxy.dataDir, TAMPER, 'v1.0.0', 'ziphash'))).toBe(false);
    expect(await metric(proxy.url, 'gomodproxy_checksum_mismatches_total', { kind: 'zip' })).toBeGreaterThan(before);
    await proxy.waitForLog((l) => l.msg === 'checksum mismatch: refused an upstream artifact' && l.module === TAMPER && l.kind === 'zip');
  });

  // BUG (artifacts.ts, reported): the zip miss path sends its 200 head before the zip is checked, so
  // when the check refuses it the first client sees a cut connection, not this line; refusals other
  // than a mismatch (a fork, the database unreachable) are not remembered, so every client does.
  test('the first client of a refused zip gets the one-line error, not a cut connection', async () => {
    const fake = await moduleZip(TAMPER, 'v1.2.0', { 'go.mod': `module ${TAMPER}\n`, 'evil.go': 'package tamper\n' });
    upstream.on(`/${TAMPER}/@v/v1.2.0.zip`, { replaceBody: fake, contentType: 'application/zip' });
    const line = expectOneLineError(await get(`${proxy.url}/${TAMPER}/@v/v1.2.0.zip`), 502);
    expect(line).toContain('checksum mismatch');
  });

  test('a different go.mod: refused the same way', async () => {
    const want = world.get(`${TAMPER}@v1.1.0`).GoModSum;
    const fakeMod = `module ${TAMPER}\n\ngo 1.21\n\nrequire example.com/evil v1.0.0\n`;
    const got = hashGoMod(Buffer.from(fakeMod));
    upstream.on(`/${TAMPER}/@v/v1.1.0.mod`, { replaceBody: fakeMod, contentType: 'text/plain; charset=utf-8' });
    const before = await metric(proxy.url, 'gomodproxy_checksum_mismatches_total', { kind: 'mod' });

    const env = await goEnv();
    const [r] = await env.modDownloadJson([`${TAMPER}@v1.1.0`], undefined, { allowErrors: true });
    expect(r?.Error).toContain('checksum mismatch');
    expect(r?.Error).toContain(got);
    expect(r?.Error).toContain(want);
    const direct = expectOneLineError(await get(`${proxy.url}/${TAMPER}/@v/v1.1.0.mod`), 502);
    expect(direct).toContain(`${TAMPER}@v1.1.0/go.mod`);
    expect(direct).toContain(got);
    expect(direct).toContain(want);
    expect(await exists(cachedFile(proxy.dataDir, TAMPER, 'v1.1.0', 'mod'))).toBe(false);
    expect(await metric(proxy.url, 'gomodproxy_checksum_mismatches_total', { kind: 'mod' })).toBeGreaterThan(before);
  });
});

describe('the database down after warm-up', () => {
  test('cached lookups and tiles still answer the go command', async () => {
    await db.close();
    // A cold go env: its own sumdb state is empty, so it really asks the proxy for everything.
    const env = await goEnv();
    const mods = [`${ALPHA}@v1.0.0`, `${ALPHA}@v1.1.0`, `${UPPER}@v1.0.0`];
    const got = await env.modDownloadJson(mods);
    expect(got.map((r) => r.Sum)).toEqual(mods.map((m) => world.get(m).Sum));
    expect((await get(`${proxy.url}/sumdb/${DB}/latest`)).status).toBe(200);
    // A version the proxy never looked up cannot be vouched for: a clear error, not a hang.
    const line = expectOneLineError(await get(`${proxy.url}/sumdb/${DB}/lookup/${APP}@v9.9.9`), 502);
    expect(line).toContain(DB);
  });

  test('also after a restart: the verified tree, lookups and tiles are on disk, not only in memory', async () => {
    await proxy.kill(); // a crash: what it verified is already on disk
    proxy = await startProxy({
      upstream: upstream.url,
      dataDir: proxy.dataDir,
      env: { GOMODPROXY_SUMDB: `${db.vkey} ${db.url}`, GOMODPROXY_NO_SUMDB: 'github.com/gmp-private' },
    });
    const env = await goEnv();
    const mods = [`${ALPHA}@v1.0.0`, `${UPPER}@v1.0.0`];
    const got = await env.modDownloadJson(mods);
    expect(got.map((r) => r.GoModSum)).toEqual(mods.map((m) => world.get(m).GoModSum));
    const latest = await get(`${proxy.url}/sumdb/${DB}/latest`);
    expect(latest.status).toBe(200);
    expect(latest.text()).toMatch(new RegExp(`^go.sum database tree\\n${PUBLIC.length}\\n`));
    await proxy.waitForLog((l) => String(l.msg).includes('serving the last verified tree'));
  });
});
