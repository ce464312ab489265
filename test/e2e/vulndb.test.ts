// The vulnerability database mirror against the real govulncheck: a small OSV database the test
// writes (served by a recording static server, no network), a vulnerable module the test builds
// with git and the go command, served through the proxy, and a project that calls the vulnerable
// function. govulncheck with -db http://<proxy>/vuln/ must report exactly what it reports with
// the database read directly (-db file://...). Then: the TTL refresh picks up a new entry, a
// source that is down leaves the last snapshot served, an entry of the wrong shape is never
// stored, offline nothing is fetched, the admin API names each cached version's
// vulnerabilities, and refuseVulnerable turns vulnerable versions away with a 403 line.
import { cp, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import zlib from 'node:zlib';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { gomodproxy } from '../e2e-sumdb/util.js';
import { startProxyWithConfig } from '../e2e-access/util.js';
import { createGoEnv, parseJsonStream, type GoEnv } from '../helpers/goenv.js';
import type { ProxyProcess } from '../helpers/gomodproxy.js';
import { govulncheckBinary } from '../helpers/govulncheck.js';
import { get } from '../helpers/http.js';
import { describeRun, run } from '../helpers/proc.js';
import { cleanupAll, makeTempDir } from '../helpers/tmp.js';
import { startTestUpstream, type TestUpstream } from '../helpers/upstream.js';
import { buildModuleWorld, type World } from '../helpers/world.js';
import { expectOneLineError, rawRequest, waitFor } from './util.js';

const LIB = 'github.com/gmp-vuln/lib';
const SAFE = 'github.com/gmp-vuln/safe';

interface Osv {
  id: string;
  modified: string;
  aliases: string[];
  summary: string;
  module: string;
  events: Array<{ introduced?: string; fixed?: string }>;
  symbols: string[];
}

const ENTRIES: Osv[] = [
  {
    id: 'GO-2024-9001',
    modified: '2024-03-01T10:00:00Z',
    aliases: ['CVE-2024-90001'],
    summary: 'Parse panics on crafted input',
    module: LIB,
    events: [{ introduced: '0' }, { fixed: '1.0.1' }],
    symbols: ['Parse'],
  },
  {
    id: 'GO-2024-9002',
    modified: '2024-03-02T10:00:00Z',
    aliases: [],
    summary: 'Format leaks memory',
    module: LIB,
    events: [{ introduced: '0.9.0' }, { fixed: '1.1.0' }],
    symbols: ['Format'],
  },
  {
    id: 'GO-2024-9003',
    modified: '2024-03-03T10:00:00Z',
    aliases: [],
    summary: 'Something in a module nobody uses',
    module: 'github.com/gmp-vuln/unused',
    events: [{ introduced: '0' }],
    symbols: ['X'],
  },
];

const ADDED: Osv = {
  id: 'GO-2024-9004',
  modified: '2024-04-01T00:00:00Z',
  aliases: [],
  summary: 'New',
  module: SAFE,
  events: [{ introduced: '0' }],
  symbols: ['OK'],
};

let world: World;
let goUpstream: TestUpstream;
let source: TestUpstream;
let osvDir: string;
let proxy: ProxyProcess;
let dataDir: string;
let ops: string;
let govulncheck: string;
let app: string;
let env: GoEnv;

function osvJson(e: Osv): Record<string, unknown> {
  return {
    schema_version: '1.3.1',
    id: e.id,
    modified: e.modified,
    published: '2024-01-01T00:00:00Z',
    aliases: e.aliases,
    summary: e.summary,
    details: `${e.summary}.`,
    affected: [
      {
        package: { name: e.module, ecosystem: 'Go' },
        ranges: [{ type: 'SEMVER', events: e.events }],
        ecosystem_specific: { imports: [{ path: e.module, symbols: e.symbols }] },
      },
    ],
    database_specific: { url: `https://pkg.go.dev/vuln/${e.id}` },
  };
}

/** Writes the database as x/vulndb lays it out: indexes and entries, each as .json and .json.gz. */
async function writeDb(dir: string, entries: Osv[], override: Record<string, unknown> = {}): Promise<void> {
  const files: Record<string, unknown> = {
    'index/db.json': {
      modified: entries
        .map((e) => e.modified)
        .sort()
        .at(-1),
    },
    'index/vulns.json': entries.map((e) => ({ id: e.id, modified: e.modified, aliases: e.aliases })),
    'index/modules.json': [...new Set(entries.map((e) => e.module))].sort().map((m) => ({
      path: m,
      vulns: entries
        .filter((e) => e.module === m)
        .map((e) => ({ id: e.id, modified: e.modified, ...(e.events.at(-1)?.fixed ? { fixed: e.events.at(-1)?.fixed } : {}) })),
    })),
    ...Object.fromEntries(entries.map((e) => [`ID/${e.id}.json`, osvJson(e)])),
    ...override,
  };
  for (const [name, value] of Object.entries(files)) {
    const text = Buffer.from(JSON.stringify(value));
    await mkdir(path.dirname(path.join(dir, name)), { recursive: true });
    await writeFile(path.join(dir, name), text);
    await writeFile(path.join(dir, `${name}.gz`), zlib.gzipSync(text));
  }
}

async function scan(db: string): Promise<{ findings: unknown[]; osvs: string[] }> {
  const r = await run(govulncheck, ['-db', db, '-format', 'json', './...'], { cwd: app, env: env.vars(), timeoutMs: 300_000 });
  expect(r.code, describeRun(govulncheck, ['-db', db], r)).toBe(0);
  const messages = parseJsonStream(r.stdout) as Array<Record<string, unknown>>;
  const findings = messages.filter((m) => m.finding).map((m) => m.finding);
  const osvs = messages.filter((m) => m.osv).map((m) => (m.osv as { id: string }).id);
  return { findings: findings.map((f) => JSON.stringify(f)).sort(), osvs: osvs.sort() };
}

async function api(p: string): Promise<Record<string, unknown>> {
  const res = await request(`${proxy.url}/-/api/${p}`, { headers: { authorization: `Bearer ${ops}` } });
  return (await res.body.json()) as Record<string, unknown>;
}

beforeAll(async () => {
  world = await buildModuleWorld({
    modules: [
      {
        path: LIB,
        versions: [
          { version: 'v1.0.0', files: { 'lib.go': 'package lib\n\nfunc Parse(s string) string { return s }\n\nfunc Format(s string) string { return s }\n' } },
          {
            version: 'v1.0.1',
            files: { 'lib.go': 'package lib\n\nfunc Parse(s string) string { return "[" + s + "]" }\n\nfunc Format(s string) string { return s }\n' },
          },
          {
            version: 'v1.1.0',
            files: {
              'lib.go': 'package lib\n\nfunc Parse(s string) string { return "[" + s + "]" }\n\nfunc Format(s string) string { return "<" + s + ">" }\n',
            },
          },
        ],
      },
      { path: SAFE, versions: [{ version: 'v0.1.0', files: { 'safe.go': 'package safe\n\nfunc OK() bool { return true }\n' } }] },
    ],
  });
  goUpstream = await startTestUpstream({ root: world.downloadDir });
  osvDir = await makeTempDir('osv');
  await writeDb(osvDir, ENTRIES);
  source = await startTestUpstream({ root: osvDir, anyFile: true });
  govulncheck = await govulncheckBinary();
  dataDir = path.join(await makeTempDir('vulndb'), 'data');
  ops = (await gomodproxy(['token', 'create', '--user', 'ops', '--data', dataDir])).stdout.trim();
  // Two workers: one refresh between them (a lock in the store), and each serves the snapshot.
  proxy = await startProxyWithConfig({ vulndb: { url: source.url, ttl: '1s' } }, { upstream: goUpstream.url, dataDir, workers: 2 });

  env = await createGoEnv({ goproxy: proxy.url });
  app = await env.newModule(path.join(env.root, 'app'), 'example.com/app', `require (\n\t${LIB} v1.0.0\n\t${SAFE} v0.1.0\n)\n`);
  await writeFile(
    path.join(app, 'main.go'),
    `package main\n\nimport (\n\t"fmt"\n\n\t"${LIB}"\n\t"${SAFE}"\n)\n\nfunc main() { fmt.Println(lib.Parse("x"), safe.OK()) }\n`,
  );
  await env.go(['mod', 'tidy'], { cwd: app });
  await env.modDownloadJson([`${LIB}@v1.0.1`]);
}, 900_000);
afterAll(cleanupAll);

describe('govulncheck through the mirror', () => {
  test('-db http://<proxy>/vuln/ reports what the database read directly reports', async () => {
    const direct = await scan(pathToFileURL(osvDir).href);
    // The test can fail: the direct scan does find the called vulnerability, at the symbol.
    expect(direct.findings.some((f) => (f as string).includes('"GO-2024-9001"') && (f as string).includes('"function":"Parse"'))).toBe(true);
    expect(direct.osvs).toContain('GO-2024-9002');
    const mirrored = await scan(`${proxy.url}/vuln/`);
    expect(mirrored).toEqual(direct);
    // govulncheck asked for the gzip files, and the mirror's own folder is a database too.
    expect(proxy.logs().some((l) => l.log === 'access' && l.path === '/vuln/index/modules.json.gz' && l.status === 200)).toBe(true);
    expect(await scan(pathToFileURL(path.join(dataDir, 'vulndb')).href)).toEqual(direct);
  });

  test('every endpoint, plain and gzip; unknown entries and paths are one-line 404s', async () => {
    const db = await get(`${proxy.url}/vuln/index/db.json`);
    expect(db.json()).toEqual({ modified: '2024-03-03T10:00:00Z' });
    const gz = await get(`${proxy.url}/vuln/ID/GO-2024-9001.json.gz`);
    expect(gz.headers['content-type']).toBe('application/gzip');
    expect(gz.headers['content-encoding']).toBeUndefined();
    expect(JSON.parse(zlib.gunzipSync(gz.body).toString()).id).toBe('GO-2024-9001');
    const vulns = await get(`${proxy.url}/vuln/index/vulns.json`);
    expect(vulns.json<Array<{ id: string }>>().map((v) => v.id)).toEqual(ENTRIES.map((e) => e.id));
    expect(expectOneLineError(await get(`${proxy.url}/vuln/ID/GO-2000-0000.json`), 404)).toMatch(/no ID\/GO-2000-0000\.json/);
    expect((await rawRequest(proxy.url, '/vuln/ID/../index/db.json')).status).toBe(404);
  });
});

describe('the admin API and the policy', () => {
  test('each cached version lists its known vulnerabilities with the first fixed version', async () => {
    const page = await api(`modules/${LIB}`);
    const byVersion = new Map(
      (page.versions as Array<{ version: string; vulnerabilities: Array<{ id: string; fixed: string | null }> }>).map((v) => [v.version, v.vulnerabilities]),
    );
    expect(byVersion.get('v1.0.0')).toEqual([
      { id: 'GO-2024-9001', aliases: ['CVE-2024-90001'], summary: 'Parse panics on crafted input', fixed: 'v1.0.1' },
      { id: 'GO-2024-9002', aliases: [], summary: 'Format leaks memory', fixed: 'v1.1.0' },
    ]);
    expect(byVersion.get('v1.0.1')?.map((v) => v.id)).toEqual(['GO-2024-9002']);
    expect((await api(`modules/${SAFE}`)).versions).toMatchObject([{ version: 'v0.1.0', vulnerabilities: [] }]);
    expect((await api('stats')).vulndb).toMatchObject({ url: source.url, modified: '2024-03-03T10:00:00Z', entries: 3, lastError: null });
  });

  test('refuseVulnerable: a 403 line with the advisories and the fix; lists leave those versions out', async () => {
    const strict = await startProxyWithConfig({ vulndb: { url: source.url, refuseVulnerable: true } }, { upstream: goUpstream.url });
    const v100 = await waitFor(async () => {
      const r = await get(`${strict.url}/${LIB}/@v/v1.0.0.info`);
      return r.status === 403 ? r : undefined;
    }, 'the strict proxy to load the database');
    const line = expectOneLineError(v100, 403);
    expect(line).toContain('GO-2024-9001 (fixed in v1.0.1)');
    expect(line).toContain('GO-2024-9002 (fixed in v1.1.0)');
    expectOneLineError(await get(`${strict.url}/${LIB}/@v/v1.0.1.zip`), 403);
    expect((await get(`${strict.url}/${LIB}/@v/v1.1.0.info`)).status).toBe(200);
    expect((await get(`${strict.url}/${LIB}/@v/list`)).text().split('\n').filter(Boolean)).toEqual(['v1.1.0']);
    expect((await get(`${strict.url}/${SAFE}/@v/v0.1.0.mod`)).status).toBe(200);
  });
});

describe('keeping the mirror', () => {
  test('the TTL refresh brings a new entry; a source that is down leaves the snapshot served', async () => {
    const added: Osv = {
      id: 'GO-2024-9004',
      modified: '2024-04-01T00:00:00Z',
      aliases: [],
      summary: 'New',
      module: SAFE,
      events: [{ introduced: '0' }],
      symbols: ['OK'],
    };
    await writeDb(osvDir, [...ENTRIES, added]);
    await waitFor(async () => (await get(`${proxy.url}/vuln/index/db.json`)).text().includes('2024-04-01'), 'the new snapshot to be mirrored');
    expect((await get(`${proxy.url}/vuln/ID/GO-2024-9004.json`)).status).toBe(200);
    const found = await waitFor(async () => {
      const v = ((await api(`modules/${SAFE}`)).versions as Array<{ vulnerabilities: unknown[] }>)[0]!;
      return v.vulnerabilities.length > 0 ? v.vulnerabilities : undefined;
    }, 'the admin API to see the new entry');
    expect(found).toMatchObject([{ id: 'GO-2024-9004', fixed: null }]);

    await source.kill();
    await waitFor(async () => ((await api('stats')).vulndb as { lastError: string | null }).lastError !== null, 'a failed refresh to be recorded');
    const db = await get(`${proxy.url}/vuln/index/db.json.gz`);
    expect(db.status).toBe(200);
    expect(JSON.parse(zlib.gunzipSync(db.body).toString())).toEqual({ modified: '2024-04-01T00:00:00Z' });
    expect((await get(`${proxy.url}/vuln/ID/GO-2024-9004.json`)).status).toBe(200);
    await source.restart();
  });

  test('an entry of the wrong shape fails the refresh, and nothing of it is stored', async () => {
    const next: Osv = {
      id: 'GO-2024-9005',
      modified: '2024-05-01T00:00:00Z',
      aliases: [],
      summary: 'Bad',
      module: SAFE,
      events: [{ introduced: '0' }],
      symbols: ['OK'],
    };
    // Its file holds another entry: a source that mixed files up.
    await writeDb(osvDir, [...ENTRIES, next], { 'ID/GO-2024-9005.json': { ...osvJson(next), id: 'GO-2024-9999' } });
    await waitFor(async () => {
      const s = (await api('stats')).vulndb as { lastError: string | null };
      return s.lastError?.includes('holds the entry "GO-2024-9999", not GO-2024-9005');
    }, 'the refresh to refuse the entry');
    expect((await get(`${proxy.url}/vuln/ID/GO-2024-9005.json`)).status).toBe(404);
    expect((await get(`${proxy.url}/vuln/index/db.json`)).json()).toEqual({ modified: '2024-04-01T00:00:00Z' });
    await writeDb(osvDir, [...ENTRIES, ADDED]);
  });

  test('offline: a copied mirror is served and nothing is fetched; without one, a one-line 404', async () => {
    const copy = path.join(await makeTempDir('vulndb-offline'), 'data');
    await cp(path.join(dataDir, 'vulndb'), path.join(copy, 'vulndb'), { recursive: true });
    // A source of their own, which would answer: only its recording can tell that nobody asked.
    const theirs = await startTestUpstream({ root: osvDir, anyFile: true });
    const offline = await startProxyWithConfig({ offline: true, vulndb: { url: theirs.url, ttl: '1s' } }, { dataDir: copy });
    const empty = await startProxyWithConfig({ offline: true, vulndb: { url: theirs.url, ttl: '1s' } });
    expect((await get(`${offline.url}/vuln/index/db.json`)).json()).toEqual({ modified: '2024-04-01T00:00:00Z' });
    expect((await get(`${offline.url}/vuln/ID/GO-2024-9004.json`)).status).toBe(200);
    expect(expectOneLineError(await get(`${empty.url}/vuln/index/db.json`), 404)).toMatch(/offline and holds no copy of the vulnerability database/);
    // Filled on a connected machine by the command, as a server's refresh fills it.
    const synced = path.join(await makeTempDir('vulndb-sync'), 'data');
    const sync = await gomodproxy(['vulndb', '--data', synced, '--url', source.url]);
    expect(sync.code, sync.stderr).toBe(0);
    expect(JSON.parse(sync.stdout)).toMatchObject({ status: 'updated', entries: 4, fetched: 4 });
    const fromSync = await startProxyWithConfig({ offline: true, vulndb: { url: theirs.url } }, { dataDir: synced });
    expect((await get(`${fromSync.url}/vuln/ID/GO-2024-9004.json`)).json<{ id: string }>().id).toBe('GO-2024-9004');
    // Past a few TTLs of theirs.
    await new Promise((r) => setTimeout(r, 2500));
    expect(theirs.requests).toEqual([]);
  });
});
