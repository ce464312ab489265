// The Go sumdb test server and our client, both checked against the real go command: the go command
// verifies downloads through the server (GOSUMDB="<vkey> <url>"), refuses a wrong hash, and reports
// a rewritten history; our client reads and writes the go command's own sumdb files and agrees.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SumdbClient, SumdbForkError, openNote, newVerifier, parseTree } from '../../src/sumdb/index.js';
import type { SumdbOps } from '../../src/sumdb/index.js';
import { createGoEnv } from '../helpers/goenv.js';
import type { GoEnv } from '../helpers/goenv.js';
import { cleanupAll } from '../helpers/tmp.js';
import { buildModuleWorld } from '../helpers/world.js';
import type { World } from '../helpers/world.js';
import { startGoSumdb } from './helpers.js';
import type { GoSumdbServer } from './helpers.js';

const HELLO = 'github.com/gmp-sumdb/hello';
const UPPER = 'github.com/gmp-sumdb/Upper-Case';

/** The go command's sumdb state as SumdbOps: GOPATH/pkg/sumdb for config, GOMODCACHE/cache/download/sumdb for the cache. */
class GoFilesOps implements SumdbOps {
  remote: string[] = [];
  constructor(
    private readonly env: GoEnv,
    private readonly url: string | null,
  ) {}
  async readRemote(p: string): Promise<Buffer> {
    this.remote.push(p);
    if (this.url === null) throw new Error(`unexpected remote read ${p}`);
    const res = await fetch(this.url + p);
    if (!res.ok) throw Object.assign(new Error(`${res.status}`), { status: res.status });
    return Buffer.from(await res.arrayBuffer());
  }
  private configPath(file: string): string {
    return path.join(this.env.gopath, 'pkg', 'sumdb', file);
  }
  async readConfig(file: string): Promise<Buffer> {
    return readFile(this.configPath(file)).catch(() => Buffer.alloc(0));
  }
  async writeConfig(file: string, oldValue: Buffer, newValue: Buffer): Promise<boolean> {
    // The go command is not running meanwhile, so read-compare-write is enough here.
    if (!(await this.readConfig(file)).equals(oldValue)) return false;
    await mkdir(path.dirname(this.configPath(file)), { recursive: true });
    await writeFile(this.configPath(file), newValue);
    return true;
  }
  async readCache(file: string): Promise<Buffer | null> {
    return readFile(path.join(this.env.gomodcache, 'cache', 'download', 'sumdb', file)).catch(() => null);
  }
  async writeCache(file: string, data: Buffer): Promise<void> {
    const p = path.join(this.env.gomodcache, 'cache', 'download', 'sumdb', file);
    await mkdir(path.dirname(p), { recursive: true });
    await writeFile(p, data);
  }
  log(): void {}
  securityError(): void {}
}

let world: World;
let db: GoSumdbServer;
let env: GoEnv;
const lines = (pathAtVersion: string, wrong = false): string[] => {
  const e = world.get(pathAtVersion);
  const sum = wrong ? `h1:${Buffer.alloc(32, 9).toString('base64')}` : e.Sum;
  return [`${e.Path} ${e.Version} ${sum}`, `${e.Path} ${e.Version}/go.mod ${e.GoModSum}`];
};
/** Runs `go mod download -json`; `output` joins stdout (where -json puts per-module errors) and stderr. */
async function download(mod: string): Promise<{ code: number; output: string }> {
  const r = await env.go(['mod', 'download', '-json', mod], { allowFail: true });
  return { code: r.code, output: r.stdout + r.stderr };
}
const treeSize = (note: Buffer): number => parseTree(openNote(note, [newVerifier(db.vkey)]).text).n;

beforeAll(async () => {
  world = await buildModuleWorld({
    modules: [
      { path: HELLO, versions: ['v1.0.0', 'v1.1.0', 'v1.2.0', 'v1.3.0'].map((version) => ({ version })) },
      { path: UPPER, versions: [{ version: 'v1.0.0' }] },
    ],
  });
  db = await startGoSumdb('sumdb.gomodproxy.test');
  env = await createGoEnv({ goproxy: `file://${world.downloadDir}`, gosumdb: `${db.vkey} ${db.url}` });
});
afterAll(cleanupAll);

describe('the go command with the Go test sumdb', () => {
  it('verifies downloads through it, with ! escaping in lookups', async () => {
    await db.add([...lines(`${HELLO}@v1.0.0`), ...lines(`${UPPER}@v1.0.0`)]);
    const r = await download(`${HELLO}@v1.0.0`);
    expect(r.code, r.output).toBe(0);
    expect((await download(`${UPPER}@v1.0.0`)).code).toBe(0);
    const seen = await db.requests();
    expect(seen).toContain(`/lookup/${HELLO}@v1.0.0`);
    expect(seen).toContain('/lookup/github.com/gmp-sumdb/!upper-!case@v1.0.0');
    expect(seen.some((p) => p.startsWith('/tile/8/0/'))).toBe(true);
  });

  it('leaves files our client can verify offline', async () => {
    const ops = new GoFilesOps(env, null);
    const client = new SumdbClient({ verifierKey: db.vkey, ops });
    expect(await client.lookup(HELLO, 'v1.0.0')).toEqual(lines(`${HELLO}@v1.0.0`));
    expect(await client.lookup(UPPER, 'v1.0.0')).toEqual(lines(`${UPPER}@v1.0.0`));
    expect(ops.remote).toEqual([]);
  });

  it('accepts the tree our client persisted for it', async () => {
    await db.add(lines(`${HELLO}@v1.1.0`));
    const ops = new GoFilesOps(env, db.url);
    expect(await new SumdbClient({ verifierKey: db.vkey, ops }).lookup(HELLO, 'v1.1.0')).toEqual(lines(`${HELLO}@v1.1.0`));
    const latest = path.join(env.gopath, 'pkg', 'sumdb', db.name, 'latest');
    expect(treeSize(await readFile(latest))).toBe(3);
    const before = (await db.requests()).length;
    const r = await download(`${HELLO}@v1.1.0`);
    expect(r.code, r.output).toBe(0);
    // The go command found our lookup and tiles in its cache: nothing new was asked of the database.
    expect((await db.requests()).length).toBe(before);
  });

  it('refuses a download whose hash the database contradicts', async () => {
    await db.add(lines(`${HELLO}@v1.2.0`, true));
    const r = await download(`${HELLO}@v1.2.0`);
    expect(r.code).not.toBe(0);
    expect(r.output).toMatch(/checksum mismatch/);
    expect(r.output).toContain(`${db.name}: h1:${Buffer.alloc(32, 9).toString('base64')}`);
  });

  it('reports a rewritten history, as our client does', async () => {
    const latest = path.join(env.gopath, 'pkg', 'sumdb', db.name, 'latest');
    const seen = await readFile(latest);
    expect(treeSize(seen)).toBe(4);
    await db.fork(1);
    await db.add(lines(`${HELLO}@v1.3.0`));

    // Our client first, on a copy of the go command's state (the go command will not change it either).
    const ops = new GoFilesOps(env, db.url);
    const err = await new SumdbClient({ verifierKey: db.vkey, ops }).lookup(HELLO, 'v1.3.0').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SumdbForkError);
    expect((err as SumdbForkError).oldNote.equals(seen)).toBe(true);

    const r = await download(`${HELLO}@v1.3.0`);
    expect(r.code).not.toBe(0);
    expect(r.output).toContain('SECURITY ERROR');
    expect(r.output).toContain('go.sum database server misbehavior detected!');
    // The same report, byte for byte: both notes and the same proof hashes.
    expect(r.output).toContain(`old database:\n\t${seen.toString().replaceAll('\n', '\n\t')}`);
    expect(r.output).toContain((err as SumdbForkError).proof);
    expect((await readFile(latest)).equals(seen)).toBe(true);
  });
});
