// A full disk is an error at the start, never a cut 200. The server's data folder is a small
// tmpfs of its own (mounted in a private mount namespace), filled by the test: a zip that
// cannot be stored is refused with one line before any byte is sent; small answers are served
// whole without being kept; the failure is logged as an error and counted against storage,
// never against the (healthy) upstream; /readyz says the disk is low; freeing space heals it.
import { readFile, rm, writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createGoEnv } from '../helpers/goenv.js';
import { startProxy, type ProxyProcess } from '../helpers/gomodproxy.js';
import { get } from '../helpers/http.js';
import { cleanupAll } from '../helpers/tmp.js';
import { startTestUpstream, type TestUpstream } from '../helpers/upstream.js';
import { buildModuleWorld, type World } from '../helpers/world.js';
import { expectOneLineError, incompressible, listFiles, streamGet, waitFor } from './util.js';

const M = 'github.com/gmp-test/disk';
const MiB = 1 << 20;
const ZIP_DATA = 6 * MiB;
const VERSIONS = ['v1.0.0', 'v1.1.0', 'v1.2.0', 'v1.3.0'];
const RESERVE = 2 * MiB;

let world: World;
let up: TestUpstream;
let proxy: ProxyProcess;

beforeAll(async () => {
  world = await buildModuleWorld({
    modules: [
      { path: M, versions: VERSIONS.map((version, i) => ({ version, files: { 'disk.go': 'package disk\n', 'data.bin': incompressible(ZIP_DATA, 90 + i) } })) },
    ],
  });
  up = await startTestUpstream({ root: world.downloadDir });
  proxy = await startProxy({
    upstream: up.url,
    tmpfsBytes: 32 * MiB,
    env: { GOMODPROXY_CACHE_MIN_FREE: String(RESERVE), GOMODPROXY_CACHE_NOT_FOUND_TTL: '0' },
  });
});
afterAll(cleanupAll);

const filler = (): string => `${proxy.dataView}/filler.bin`;

/** Fills the server's disk so that about `free` bytes are left (0: completely full). */
async function leaveFree(free: number): Promise<void> {
  await rm(filler(), { force: true });
  const { statfs } = await import('node:fs/promises');
  const st = await statfs(proxy.dataView);
  const avail = st.bavail * st.bsize;
  if (free === 0) {
    // Write until the file system refuses: tmpfs rounds to pages.
    await writeFile(filler(), Buffer.alloc(avail)).catch(() => undefined);
    for (let more = 64 * 1024; more >= 1; more = Math.floor(more / 2)) {
      await writeFile(filler(), Buffer.alloc(more), { flag: 'a' }).catch(() => undefined);
    }
    return;
  }
  await writeFile(filler(), Buffer.alloc(Math.max(0, avail - free)));
}

async function metric(name: string): Promise<string[]> {
  return (await get(`${proxy.url}/metrics`))
    .text()
    .split('\n')
    .filter((l) => l.startsWith(name));
}

/** Nothing of a version is in the data folder: not stored, nothing partial, no folder made for it. */
async function expectNothingStored(v: string): Promise<void> {
  const files = (await listFiles(proxy.dataView)).filter((f) => f.startsWith(`${M}/@v/${v}.`) || /\.partial$|\.tmp-/.test(f));
  expect(files).toEqual([]);
}

describe('a disk too full for a miss', () => {
  test('a zip that does not fit is refused with one line before any byte; storage is blamed, not the upstream', async () => {
    const v = VERSIONS[0]!;
    await leaveFree(ZIP_DATA - MiB);
    const res = await get(`${proxy.url}/${M}/@v/${v}.zip`);
    const line = expectOneLineError(res, 507);
    expect(line).toMatch(/cannot store .*disk\/@v|cannot store github\.com\/gmp-test\/disk@v1\.0\.0\.zip/);
    expect(line).toContain('cache.minFree');
    expect(line).toContain('nothing was cached');
    await expectNothingStored(v);
    await proxy.waitForLog((l) => l.level === 'error' && l.msg === 'disk too full to store a miss');
    expect(await metric('gomodproxy_storage_errors_total{op="write",reason="no-space"}')).not.toEqual([]);
    expect(await metric(`gomodproxy_upstream_errors_total{upstream="${up.url}"`)).toEqual([]);
    expect(await metric(`gomodproxy_upstream_healthy{upstream="${up.url}"} 1`)).toHaveLength(1);
    // Free space is above the reserve: the server is still ready for what fits.
    expect((await get(`${proxy.url}/readyz`)).status).toBe(200);
  });

  test('the go command prints that line, not "unexpected EOF"', async () => {
    const v = VERSIONS[0]!;
    await leaveFree(ZIP_DATA - MiB);
    const env = await createGoEnv({ goproxy: proxy.url });
    const [r] = await env.modDownloadJson([`${M}@${v}`], undefined, { allowErrors: true });
    expect(r?.Error).toContain('507');
    expect(r?.Error).toContain('cache.minFree');
    expect(r?.Error).not.toContain('unexpected EOF');
  });

  test('at 100% full, .info, .mod and the list are served whole without being kept; /readyz says the disk is low', async () => {
    const v = VERSIONS[1]!;
    await leaveFree(0);
    const info = await get(`${proxy.url}/${M}/@v/${v}.info`);
    expect(info.status).toBe(200);
    expect(info.text()).toBe(world.get(`${M}@${v}`).infoText);
    const mod = await get(`${proxy.url}/${M}/@v/${v}.mod`);
    expect(mod.status).toBe(200);
    expect(mod.text()).toBe(world.get(`${M}@${v}`).modText);
    const list = await get(`${proxy.url}/${M}/@v/list`);
    expect(list.status).toBe(200);
    expect(list.text().split('\n').filter(Boolean).sort()).toEqual(VERSIONS);
    const zip = await get(`${proxy.url}/${M}/@v/${v}.zip`);
    expect(expectOneLineError(zip, 507)).toContain('disk');
    await expectNothingStored(v);
    const ready = await get(`${proxy.url}/readyz`);
    expect(ready.status).toBe(503);
    expect(ready.text()).toContain('disk low');
  });

  test('once space is freed, the same zip is fetched, stored and served byte-exact, and /readyz is 200 again', async () => {
    const v = VERSIONS[0]!;
    await rm(filler(), { force: true });
    const res = await get(`${proxy.url}/${M}/@v/${v}.zip`);
    expect(res.status).toBe(200);
    expect(res.body.equals(await readFile(world.get(`${M}@${v}`).files.zip))).toBe(true);
    await waitFor(async () => (await listFiles(proxy.dataView)).includes(`${M}/@v/${v}.zip`), 'the zip to be committed');
    expect((await get(`${proxy.url}/readyz`)).status).toBe(200);
  });

  test('a disk that fills while a zip streams in cuts that transfer, logs a storage error, and leaves nothing partial', async () => {
    const v = VERSIONS[2]!;
    await rm(filler(), { force: true });
    const errorsBefore = await metric(`gomodproxy_upstream_errors_total{upstream="${up.url}"`);
    up.on(`/${M}/@v/${v}.zip`, { slowBody: { chunk: 256 * 1024, intervalMs: 30 } });
    let filled = false;
    const r = await streamGet(`${proxy.url}/${M}/@v/${v}.zip`, async () => {
      if (filled) return;
      filled = true;
      await leaveFree(0);
    });
    expect(r.status).toBe(200);
    expect(r.error).toBeDefined();
    await proxy.waitForLog((l) => l.level === 'error' && String(l.msg).startsWith('writing the zip failed'));
    expect(await metric(`gomodproxy_upstream_errors_total{upstream="${up.url}"`)).toEqual(errorsBefore);
    await waitFor(async () => (await listFiles(proxy.dataView)).filter((f) => /\.partial$/.test(f)).length === 0, 'the staging file to be removed');
    await expectNothingStored(v);
    await rm(filler(), { force: true });
    up.reset();
    const again = await get(`${proxy.url}/${M}/@v/${v}.zip`);
    expect(again.status).toBe(200);
    expect(again.body.equals(await readFile(world.get(`${M}@${v}`).files.zip))).toBe(true);
  });
});
